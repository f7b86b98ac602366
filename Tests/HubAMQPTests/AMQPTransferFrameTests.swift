import AzureIoTTestSupport
import HubAMQP
import Testing

/// The transfer hot path against the general codec: the same bytes out, the same fields in, and anything it does not
/// read left to the general decoder, never a trap.
@Suite("AMQP transfer frames: the hot path agrees with the general codec")
struct AMQPTransferFrameTests {
    static func randomHeader(_ random: inout SeededRandom) -> AMQPTransferFrame.Header {
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &random) ? value : nil }
        let numbers: [UInt32] = [0, 1, 255, 256, 65_535, .max]
        return AMQPTransferFrame.Header(
            channel: UInt16.random(in: 0...3, using: &random),
            handle: numbers.randomElement(using: &random)!,
            deliveryId: maybe(numbers.randomElement(using: &random)!),
            deliveryTag: maybe(ArraySlice((0..<Int.random(in: 0...300, using: &random)).map { UInt8($0 & 0xFF) })),
            messageFormat: maybe(numbers.randomElement(using: &random)!),
            settled: maybe(Bool.random(using: &random)),
            more: maybe(Bool.random(using: &random))
        )
    }

    static func general(_ header: AMQPTransferFrame.Header, payload: [UInt8]) throws -> [UInt8] {
        let transfer = AMQPTransfer(
            handle: header.handle,
            deliveryId: header.deliveryId,
            deliveryTag: header.deliveryTag.map(Array.init),
            messageFormat: header.messageFormat,
            settled: header.settled,
            more: header.more
        )
        return AMQPFrame(
            channel: header.channel,
            body: try AMQPPerformative.transfer(transfer, payload: payload).encoded()
        )
        .encoded
    }

    @Test("2,000 random transfers: the same bytes as the general encoder, read back to the same fields and payload")
    func agreesWithGeneralCodec() async throws {
        var random = SeededRandom()
        for iteration in 0..<2000 {
            await yieldToOtherTests(at: iteration)
            let header = Self.randomHeader(&random)
            let payload = (0..<Int.random(in: 0...600, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            var fast: [UInt8] = [9, 9]  // appended after what is there
            try payload.withUnsafeBytes { try AMQPTransferFrame.append(header, payload: $0, to: &fast) }
            let general = try Self.general(header, payload: payload)
            #expect(Array(fast.dropFirst(2)) == general, "\(header)")
            // The payload written in place by a closure, the frame's size filled in afterwards: the same bytes.
            var inPlace: [UInt8] = [9, 9]
            try AMQPTransferFrame.append(header, to: &inPlace) { (buffer: inout [UInt8]) throws(AMQPCodecError) in
                buffer += payload
            }
            #expect(inPlace == fast, "\(header)")
            guard
                case .transfer(let read, let range, let size) = try AMQPTransferFrame.read(
                    general[...],
                    maximumFrameSize: 1 << 20
                )
            else {
                Issue.record("not read: \(header)")
                continue
            }
            #expect(read == header && Array(general[range]) == payload && size == general.count)
            #expect(
                try AMQPTransferFrame.read(general[..<(general.count - 1)], maximumFrameSize: 1 << 20) == .incomplete
            )
        }
    }

    @Test(
        "a payload writer that throws leaves the buffer as it was; a message is encoded in place as encoded() gives it"
    )
    func payloadWrittenInPlace() throws {
        var buffer: [UInt8] = [1, 2, 3]
        #expect(throws: AMQPCodecError.self) {
            try AMQPTransferFrame.append(AMQPTransferFrame.Header(handle: 1), to: &buffer) {
                (out: inout [UInt8]) throws(AMQPCodecError) in
                out += [4, 5, 6]
                throw AMQPCodecError(.invalidText, "refused")
            }
        }
        #expect(buffer == [1, 2, 3])
        var message = AMQPMessage(data: [UInt8](repeating: 0x61, count: 300))
        message.messageId = .string("m-1")
        message.contentType = "application/json"
        message.applicationProperties = [("k", .string("v")), ("n", .long(7))]
        var framed: [UInt8] = [1, 2, 3]
        let header = AMQPTransferFrame.Header(handle: 2, deliveryId: 9, deliveryTag: [0, 0, 0, 9], messageFormat: 0)
        try AMQPTransferFrame.append(header, to: &framed) { (out: inout [UInt8]) throws(AMQPCodecError) in
            try message.encode(appendingTo: &out)
        }
        let expected = try Self.general(header, payload: try message.encoded())
        #expect(Array(framed.dropFirst(3)) == expected)
        // A symbol that is not ASCII cannot be encoded: the buffer is left as it was.
        message.contentType = "appl\u{E9}"
        #expect(throws: AMQPCodecError.self) { try message.encode(appendingTo: &framed) }
        #expect(Array(framed.dropFirst(3)) == expected)
    }

    @Test("other frames, a transfer with a delivery state, a SASL frame and a frame over the limit")
    func leavesTheRestToTheGeneralDecoder() throws {
        let flow = AMQPFrame(
            body: try AMQPPerformative.flow(
                AMQPFlow(nextIncomingId: 0, incomingWindow: 1, nextOutgoingId: 0, outgoingWindow: 1)
            )
            .encoded()
        ).encoded
        #expect(try AMQPTransferFrame.read(flow[...], maximumFrameSize: 65_536) == .other)
        let withState = AMQPFrame(
            body: try AMQPPerformative.transfer(
                AMQPTransfer(handle: 1, deliveryId: 2, deliveryTag: [1], settled: true, state: .accepted),
                payload: [1, 2]
            ).encoded()
        ).encoded
        #expect(try AMQPTransferFrame.read(withState[...], maximumFrameSize: 65_536) == .other)
        let sasl = AMQPFrame(type: .sasl, body: [0x00, 0x53, 0x40, 0x45]).encoded
        #expect(try AMQPTransferFrame.read(sasl[...], maximumFrameSize: 65_536) == .other)
        #expect(throws: AMQPCodecError.self) { try AMQPTransferFrame.read(flow[...], maximumFrameSize: 8) }
    }

    @Test(
        "20,000 mutated transfer frames: never a trap; whatever the hot path reads, the general decoder reads the same"
    )
    func mutatedFrames() async throws {
        var random = SeededRandom()
        for iteration in 0..<20_000 {
            await yieldToOtherTests(at: iteration)
            let header = Self.randomHeader(&random)
            var bytes = try Self.general(header, payload: [1, 2, 3])
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let index = Int.random(in: 8..<bytes.count, using: &random)
                bytes[index] = UInt8.random(in: 0...255, using: &random)
            }
            guard
                case .transfer(let read, let range, _) = try AMQPTransferFrame.read(
                    bytes[...],
                    maximumFrameSize: 1 << 20
                )
            else { continue }
            let body = Array(bytes[8...])
            guard case .transfer(let transfer, let payload) = try AMQPPerformative.decode(body) else {
                Issue.record("the hot path read a transfer the general decoder does not: \(bytes)")
                continue
            }
            #expect(transfer.handle == read.handle && transfer.deliveryId == read.deliveryId)
            #expect(transfer.deliveryTag == read.deliveryTag.map(Array.init))
            #expect(transfer.messageFormat == read.messageFormat && transfer.settled == read.settled)
            #expect(transfer.more == read.more && payload == Array(bytes[range]))
        }
    }
}

/// The disposition hot path against the general codec.
@Suite("AMQP disposition frames: the hot path agrees with the general codec")
struct AMQPDispositionFrameTests {
    static func randomDisposition(_ random: inout SeededRandom) -> AMQPDisposition {
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &random) ? value : nil }
        let numbers: [UInt32] = [0, 1, 255, 256, .max]
        let states: [AMQPDeliveryState?] = [
            nil, .accepted, .released, .rejected(nil), .modified(deliveryFailed: true, undeliverableHere: nil),
        ]
        return AMQPDisposition(
            isReceiver: Bool.random(using: &random),
            first: numbers.randomElement(using: &random)!,
            last: maybe(numbers.randomElement(using: &random)!),
            settled: maybe(Bool.random(using: &random)),
            state: states.randomElement(using: &random)!
        )
    }

    @Test(
        "2,000 random dispositions and 20,000 mutated ones: read in place exactly as the general decoder reads them, or left to it"
    )
    func agreesWithGeneralCodec() async throws {
        var random = SeededRandom()
        var fastReads = 0
        for round in 0..<22_000 {
            await yieldToOtherTests(at: round)
            let disposition = Self.randomDisposition(&random)
            var bytes = AMQPFrame(channel: 3, body: try AMQPPerformative.disposition(disposition).encoded()).encoded
            if round >= 2000 {
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    bytes[Int.random(in: 8..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            let read = try AMQPDispositionFrame.read(bytes[...], maximumFrameSize: 65_536)
            if round < 2000 {
                switch disposition.state {
                case nil, .accepted?, .released?:
                    #expect(read == .disposition(disposition, channel: 3, size: bytes.count), "\(disposition)")
                default:
                    #expect(read == .other)
                }
                #expect(
                    try AMQPDispositionFrame.read(bytes[..<(bytes.count - 1)], maximumFrameSize: 65_536) == .incomplete
                )
            }
            guard case .disposition(let fast, _, _) = read else { continue }
            fastReads += 1
            guard case .disposition(let general)? = try? AMQPPerformative.decode(Array(bytes[8...])) else {
                Issue.record("the hot path read a disposition the general decoder does not: \(bytes)")
                continue
            }
            #expect(fast == general, "\(bytes)")
        }
        #expect(fastReads > 1000)
        let transfer = AMQPFrame(
            body: try AMQPPerformative.transfer(AMQPTransfer(handle: 0, deliveryId: 0), payload: [1]).encoded()
        ).encoded
        #expect(try AMQPDispositionFrame.read(transfer[...], maximumFrameSize: 65_536) == .other)
    }
}

/// The flow hot path against the general codec.
@Suite("AMQP flow frames: the hot path agrees with the general codec")
struct AMQPFlowFrameTests {
    /// A flow's described list with every field the spec has, some of them absent (null) and the trailing ones left
    /// out; `available`, `echo` and `properties` are fields `AMQPFlow` does not keep.
    static func randomFlowBody(_ random: inout SeededRandom) throws -> (AMQPFlow, expectFast: Bool, body: [UInt8]) {
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &random) ? value : nil }
        let numbers: [UInt32] = [0, 1, 255, 256, 65_535, .max]
        func number() -> UInt32 { numbers.randomElement(using: &random)! }
        let flow = AMQPFlow(
            nextIncomingId: maybe(number()),
            incomingWindow: number(),
            nextOutgoingId: number(),
            outgoingWindow: number(),
            handle: maybe(number()),
            deliveryCount: maybe(number()),
            linkCredit: maybe(number()),
            drain: maybe(Bool.random(using: &random))
        )
        let available: AMQPValue = Bool.random(using: &random) ? .uint(number()) : .null
        let echo: AMQPValue = maybe(Bool.random(using: &random)).map { .boolean($0) } ?? .null
        let withProperties = Int.random(in: 0..<4, using: &random) == 0
        let properties: AMQPValue =
            withProperties ? .map([AMQPMapEntry(.symbol("x"), .uint(1))]) : .null
        var fields: [AMQPValue] = [
            flow.nextIncomingId.map { .uint($0) } ?? .null, .uint(flow.incomingWindow), .uint(flow.nextOutgoingId),
            .uint(flow.outgoingWindow), flow.handle.map { .uint($0) } ?? .null,
            flow.deliveryCount.map { .uint($0) } ?? .null, flow.linkCredit.map { .uint($0) } ?? .null, available,
            flow.drain.map { .boolean($0) } ?? .null, echo, properties,
        ]
        // Leave out trailing fields at random, as a peer may (never the four mandatory ones).
        fields.removeLast(Int.random(in: 0...7, using: &random))
        let kept = fields.count
        let encoded = try AMQPEncoder.encode(.described(descriptor: .ulong(0x13), value: .list(fields)))
        var expected = flow
        if kept <= 4 { expected.handle = nil }
        if kept <= 5 { expected.deliveryCount = nil }
        if kept <= 6 { expected.linkCredit = nil }
        if kept <= 8 { expected.drain = nil }
        return (expected, !(withProperties && kept == 11), encoded)
    }

    @Test(
        "2,000 random flows and 20,000 mutated ones: read in place exactly as the general decoder reads them, or left to it"
    )
    func agreesWithGeneralCodec() async throws {
        var random = SeededRandom()
        var fastReads = 0
        for round in 0..<22_000 {
            await yieldToOtherTests(at: round)
            let (flow, expectFast, body) = try Self.randomFlowBody(&random)
            var bytes = AMQPFrame(channel: 2, body: body).encoded
            if round >= 2000 {
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    bytes[Int.random(in: 8..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            let read = try AMQPFlowFrame.read(bytes[...], maximumFrameSize: 65_536)
            if round < 2000 {
                #expect(read == (expectFast ? .flow(flow, channel: 2, size: bytes.count) : .other), "\(flow)")
                #expect(try AMQPFlowFrame.read(bytes[..<(bytes.count - 1)], maximumFrameSize: 65_536) == .incomplete)
                #expect(try AMQPPerformative.decode(Array(bytes[8...])) == .flow(flow))
            }
            guard case .flow(let fast, _, _) = read else { continue }
            fastReads += 1
            guard case .flow(let general)? = try? AMQPPerformative.decode(Array(bytes[8...])) else {
                Issue.record("the hot path read a flow the general decoder does not: \(bytes)")
                continue
            }
            #expect(fast == general, "\(bytes)")
        }
        #expect(fastReads > 1500)
        let disposition = AMQPFrame(
            body: try AMQPPerformative.disposition(AMQPDisposition(isReceiver: true, first: 1)).encoded()
        ).encoded
        #expect(try AMQPFlowFrame.read(disposition[...], maximumFrameSize: 65_536) == .other)
        // A flow with a missing mandatory field is left to the general decoder, which rejects it.
        let broken = AMQPFrame(
            body: try AMQPEncoder.encode(
                .described(descriptor: .ulong(0x13), value: .list([.null, .null, .uint(0), .uint(0)]))
            )
        ).encoded
        #expect(try AMQPFlowFrame.read(broken[...], maximumFrameSize: 65_536) == .other)
        #expect(throws: AMQPCodecError.self) { try AMQPPerformative.decode(Array(broken[8...])) }
    }
}
