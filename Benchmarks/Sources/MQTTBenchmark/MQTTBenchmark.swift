import AzureIoTCore
import BenchmarkSupport
import Foundation
import HubMQTT

/// usage:
///   MQTTBenchmark client PORT CAFILE COUNT WINDOW [ws]
///                                                   QoS 1 telemetry, 256-byte bodies, over TLS to a local broker
///                                                   (`ws`: in a WebSocket, `/$iothub/websocket`)
///   MQTTBenchmark heap PORT CAFILE COUNT LANES      heap per QoS 1 send at steady state (LD_PRELOAD=malloc_counter.so):
///                                                   COUNT sends after as many for warm-up, LANES senders at once
///   MQTTBenchmark codec COUNT                       PUBLISH encode + decode on one thread (5 passes of COUNT, median),
///                                                   and heap bytes per PUBLISH
@main
enum MQTTBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        switch arguments.count > 1 ? arguments[1] : "" {
        case "client" where arguments.count == 6 || (arguments.count == 7 && arguments[6] == "ws"):
            try await client(
                port: Int(arguments[2])!,
                caFile: arguments[3],
                count: Int(arguments[4])!,
                window: Int(arguments[5])!,
                webSockets: arguments.count == 7
            )
        case "heap" where arguments.count == 6:
            try await heap(
                port: Int(arguments[2])!,
                caFile: arguments[3],
                count: Int(arguments[4])!,
                lanes: Int(arguments[5])!
            )
        case "codec" where arguments.count == 3:
            try codec(count: Int(arguments[2])!)
        default:
            FileHandle.standardError.write(
                Data("usage: MQTTBenchmark client PORT CAFILE COUNT WINDOW [ws] | codec COUNT\n".utf8)
            )
            exit(2)
        }
    }

    static func configuration(port: Int, caFile: String, deviceId: String, window: Int) throws -> HubMQTTConfiguration {
        HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: "bench-hub.azure-devices.net", deviceId: deviceId),
            authentication: .sas(try SymmetricKeyCredential(base64Key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")),
            gatewayHostName: "localhost",
            port: port,
            trustRoots: .pemFile(caFile),
            inflightWindow: window
        )
    }

    /// Sends `count` QoS 1 messages of 256 bytes from `lanes` tasks at once.
    static func send(_ count: Int, lanes: Int, with client: HubMQTTClient) async throws {
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: 256)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var index = lane
                    while index < count {
                        try await client.send(TelemetryMessage(body: body))
                        index += lanes
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func client(port: Int, caFile: String, count: Int, window: Int, webSockets: Bool = false) async throws {
        var configuration = try Self.configuration(port: port, caFile: caFile, deviceId: "bench", window: window)
        configuration.webSockets = webSockets
        let clock = ContinuousClock()
        let start = clock.now
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            try await Self.send(count, lanes: window, with: client)
        }
        let seconds = elapsedSeconds(clock.now - start)
        print(
            String(
                format:
                    "swift HubMQTTClient%@: %d QoS1 msgs x 256 B in %.3f s = %.0f msg/s (window %d, includes connect+TLS)",
                webSockets ? " over WebSockets" : "",
                count,
                seconds,
                Double(count) / seconds,
                window
            )
        )
    }

    static func heap(port: Int, caFile: String, count: Int, lanes: Int) async throws {
        let configuration = try Self.configuration(
            port: port,
            caFile: caFile,
            deviceId: "bench-heap",
            window: max(lanes, 1)
        )
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            try await Self.send(count, lanes: lanes, with: client)
            let systemBefore = MallocCounter.readSystem()
            let before = MallocCounter.read()
            try await Self.send(count, lanes: lanes, with: client)
            let after = MallocCounter.read()
            let systemAfter = MallocCounter.readSystem()
            guard let b0 = before.bytes, let c0 = before.calls, let b1 = after.bytes, let c1 = after.calls else {
                print("swift HubMQTTClient heap: needs LD_PRELOAD=malloc_counter.so")
                return
            }
            print(
                String(
                    format:
                        "swift HubMQTTClient heap per QoS 1 send (256 B, %d sender%@, steady state over %d sends): %.0f bytes in %.1f allocations",
                    lanes,
                    lanes == 1 ? "" : "s",
                    count,
                    Double(b1 - b0) / Double(count),
                    Double(c1 - c0) / Double(count)
                )
                    + MallocCounter.breakdown(
                        systemBefore,
                        systemAfter,
                        total: Double(c1 - c0) / Double(count),
                        per: count
                    )
            )
        }
    }

    static func codec(count: Int) throws {
        let packet = MQTTPacket.publish(
            PublishPacket(
                topic: "devices/bench/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8",
                payload: [UInt8](repeating: 0x78, count: 256),
                qos: .atLeastOnce,
                packetId: 1
            )
        )
        let framer = MQTTFramer()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(512)
        var checksum = 0
        // `buffer` and `checksum` are passed inout rather than captured, so no dynamic exclusivity check is timed.
        func once(_ buffer: inout [UInt8], _ checksum: inout Int) throws {
            buffer.removeAll(keepingCapacity: true)
            try packet.encode(into: &buffer)
            guard let frame = try framer.nextFrame(in: buffer[...]) else { fatalError("incomplete") }
            if case .publish(let decoded) = try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body])
            {
                checksum &+= decoded.payloadBytes.count
            }
        }
        for _ in 0..<10_000 { try once(&buffer, &checksum) }
        let heap = try MallocCounter.perCall(10_000) { try once(&buffer, &checksum) }
        // Five timed passes; the median is the figure (a shared 2-core machine is noisy).
        let clock = ContinuousClock()
        var rates: [Double] = []
        for _ in 0..<5 {
            let start = clock.now
            for _ in 0..<count { try once(&buffer, &checksum) }
            rates.append(Double(count) / elapsedSeconds(clock.now - start) / 1e6)
        }
        precondition(checksum > 0)
        let median = rates.sorted()[2]
        var line = String(
            format:
                "swift codec: PUBLISH (256 B) encode+decode on one thread, median of 5 passes of %d: %.2f M/s (passes: %@)",
            count,
            median,
            rates.map { String(format: "%.2f", $0) }.joined(separator: ", ")
        )
        if let heap {
            line += String(format: "; heap per encode+decode: %.1f allocations, %.0f bytes", heap.calls, heap.bytes)
        } else {
            line += "; heap counts need LD_PRELOAD=malloc_counter.so"
        }
        print(line)
    }
}
