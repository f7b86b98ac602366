import AzureIoTCore
import BenchmarkSupport
import Foundation
import HubAMQP

/// usage:
///   AMQPBenchmark client PORT CAFILE COUNT WINDOW TOKEN   settled sends (256-byte bodies) over TLS + SASL PLAIN
///   AMQPBenchmark codec COUNT                             transfer frame encode + decode, and heap per transfer
@main
enum AMQPBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        switch arguments.count > 1 ? arguments[1] : "" {
        case "client" where arguments.count == 7:
            try await client(
                port: Int(arguments[2])!,
                caFile: arguments[3],
                count: Int(arguments[4])!,
                window: Int(arguments[5])!,
                token: arguments[6]
            )
        case "codec" where arguments.count == 3:
            try codec(count: Int(arguments[2])!)
        default:
            FileHandle.standardError.write(
                Data("usage: AMQPBenchmark client PORT CAFILE COUNT WINDOW TOKEN | codec COUNT\n".utf8)
            )
            exit(2)
        }
    }

    static func client(port: Int, caFile: String, count: Int, window: Int, token: String) async throws {
        let configuration = HubAMQPConfiguration(
            hubHost: "benchhub.azure-devices.net",
            deviceId: "bench",
            tokenSource: FixedTokenCredential(token: try SASToken(parsing: token)),
            gatewayHostName: "localhost",
            port: port,
            trustRoots: .pemFile(caFile),
            operationTimeout: .seconds(120)
        )
        let client = try HubAMQPClient(configuration: configuration)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: 256)
        let clock = ContinuousClock()
        let start = clock.now
        try await client.connect()
        // The lanes run for the whole count (no new tasks during the measurement); the malloc counter is read
        // when `count - measured` sends have been settled and again at the end, so the figure is per settled send
        // at steady state, whatever the number in flight.
        let measured = max(1, count / 10)
        let progress = BenchmarkProgress(readAt: count - measured)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<window {
                group.addTask {
                    var index = lane
                    while index < count {
                        try await client.send(AMQPMessage(data: body))
                        progress.settled()
                        index += window
                    }
                }
            }
            try await group.waitForAll()
        }
        let after = MallocCounter.read()
        let systemAfter = MallocCounter.readSystem()
        let (before, systemBefore) = progress.reading
        await client.close()
        let seconds = elapsedSeconds(clock.now - start)
        var line = String(
            format:
                "swift HubAMQPClient: %d settled sends x 256 B in %.3f s = %.0f msg/s (%d in flight, includes connect+TLS+SASL)",
            count,
            seconds,
            Double(count) / seconds,
            window
        )
        if let b0 = before.bytes, let c0 = before.calls, let b1 = after.bytes, let c1 = after.calls {
            let calls = Double(c1 - c0) / Double(measured)
            line += String(format: "; heap per settled send: %.1f allocations", calls)
            line += MallocCounter.breakdown(systemBefore, systemAfter, total: calls, per: measured)
            line += String(format: ", %.0f bytes", Double(b1 - b0) / Double(measured))
        }
        print(line)
    }

    static func codec(count: Int) throws {
        var message = AMQPMessage(data: [UInt8](repeating: 0x78, count: 256))
        message.messageId = .string("msg-0001")
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        let payload = try message.encoded()
        let framer = AMQPFramer(maximumFrameSize: 65_536)
        var checksum = 0
        func once(_ index: Int) throws {
            let transfer = AMQPPerformative.transfer(
                AMQPTransfer(
                    handle: 0,
                    deliveryId: UInt32(index & 0xFFFF),
                    deliveryTag: [0, 0, 0, 1],
                    messageFormat: 0,
                    settled: false
                ),
                payload: payload
            )
            let frame = AMQPFrame(body: try transfer.encoded()).encoded
            guard let (decoded, _) = try framer.nextFrame(in: frame[...]),
                case .transfer(_, let body) = try AMQPPerformative.decode(decoded.body)
            else { fatalError("round trip") }
            checksum &+= body.count
        }
        let (seconds, heap) = try Self.timed(count, once)
        precondition(checksum > 0)
        var line = String(
            format:
                "swift AMQP codec: %d transfer frames (256 B message) encode+decode in %.3f s = %.2f M/s on one thread",
            count,
            seconds,
            Double(count) / seconds / 1e6
        )
        if let heap {
            line += String(
                format: "; heap per frame encode+decode: %.1f allocations, %.0f bytes",
                heap.calls,
                heap.bytes
            )
        }
        print(line)
        try Self.hotPath(count: count, payload: payload)
    }

    /// The transfer hot path: a frame written into a reused buffer and read in place.
    static func hotPath(count: Int, payload: [UInt8]) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1024)
        var checksum = 0
        let tag: [UInt8] = [0, 0, 0, 1]
        func once(_ index: Int) throws {
            buffer.removeAll(keepingCapacity: true)
            let header = AMQPTransferFrame.Header(
                handle: 0,
                deliveryId: UInt32(index & 0xFFFF),
                deliveryTag: tag[...],
                messageFormat: 0,
                settled: false
            )
            try payload.withUnsafeBytes { try AMQPTransferFrame.append(header, payload: $0, to: &buffer) }
            guard
                case .transfer(let read, let range, _) = try AMQPTransferFrame.read(
                    buffer[...],
                    maximumFrameSize: 65_536
                )
            else { fatalError("round trip") }
            checksum &+= range.count &+ Int(read.deliveryId ?? 0)
        }
        let (seconds, heap) = try Self.timed(count, once)
        precondition(checksum > 0)
        var line = String(
            format:
                "swift AMQP transfer hot path (AMQPTransferFrame): %d frames (256 B message) written and read in %.3f s = %.2f M/s on one thread",
            count,
            seconds,
            Double(count) / seconds / 1e6
        )
        if let heap {
            line += String(format: "; heap per frame: %.1f allocations, %.0f bytes", heap.calls, heap.bytes)
        }
        print(line)
    }

    /// Runs `once` 10,000 times to warm up, 10,000 more under the malloc counter (`nil` heap without it), then
    /// `count` times on the clock; returns the seconds of the timed part and the heap per call.
    static func timed(_ count: Int, _ once: (Int) throws -> Void) throws -> (
        seconds: Double, heap: (calls: Double, bytes: Double)?
    ) {
        for index in 0..<10_000 { try once(index) }
        var sampleIndex = 0
        let heap = try MallocCounter.perCall(10_000) {
            try once(sampleIndex)
            sampleIndex += 1
        }
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<count { try once(index) }
        return (elapsedSeconds(clock.now - start), heap)
    }
}
