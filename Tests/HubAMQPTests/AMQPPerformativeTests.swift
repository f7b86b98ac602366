import AzureIoTCore
import HubAMQP
import Testing

@Suite("AMQP performatives and messages")
struct AMQPPerformativeTests {
    static let samples: [AMQPPerformative] = [
        .open(
            AMQPOpen(
                containerId: "dev1",
                hostname: "hub.azure-devices.net",
                maxFrameSize: 65_536,
                channelMax: 65_535,
                idleTimeOut: 240_000,
                properties: [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string("azure-iot-swift/0.1.0"))]
            )
        ),
        .begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 100)),
        .begin(
            AMQPBegin(
                remoteChannel: 0,
                nextOutgoingId: 1,
                incomingWindow: 2_147_483_647,
                outgoingWindow: 2_147_483_647,
                handleMax: 255
            )
        ),
        .attach(
            AMQPAttach(
                name: "sender-1",
                handle: 0,
                isReceiver: false,
                senderSettleMode: 0,
                receiverSettleMode: 0,
                source: AMQPTerminus(address: "sender-1-source"),
                target: AMQPTerminus(address: "/devices/dev1/messages/events"),
                initialDeliveryCount: 0,
                maxMessageSize: UInt64.max,
                properties: [AMQPMapEntry(.symbol("com.microsoft:api-version"), .string("2021-04-12"))]
            )
        ),
        .attach(
            AMQPAttach(
                name: "receiver-1",
                handle: 1,
                isReceiver: true,
                receiverSettleMode: 0,
                source: AMQPTerminus(address: "/devices/dev1/messages/devicebound"),
                target: AMQPTerminus(address: "r")
            )
        ),
        .flow(
            AMQPFlow(
                nextIncomingId: 0,
                incomingWindow: 5000,
                nextOutgoingId: 0,
                outgoingWindow: 100,
                handle: 1,
                deliveryCount: 0,
                linkCredit: 100,
                drain: false
            )
        ),
        .transfer(
            AMQPTransfer(handle: 0, deliveryId: 7, deliveryTag: [0, 0, 0, 7], messageFormat: 0, settled: false),
            payload: [0x00, 0x53, 0x75, 0xA0, 0x01, 0x41]
        ),
        .transfer(AMQPTransfer(handle: 0, more: true), payload: []),
        .disposition(AMQPDisposition(isReceiver: true, first: 7, last: 9, settled: true, state: .accepted)),
        .disposition(
            AMQPDisposition(
                isReceiver: true,
                first: 1,
                settled: true,
                state: .rejected(AMQPError(condition: "amqp:not-allowed", description: "Rejected by application"))
            )
        ),
        .disposition(AMQPDisposition(isReceiver: true, first: 2, settled: true, state: .released)),
        .disposition(
            AMQPDisposition(
                isReceiver: true,
                first: 3,
                settled: true,
                state: .modified(deliveryFailed: true, undeliverableHere: nil)
            )
        ),
        .detach(
            AMQPDetach(
                handle: 0,
                closed: true,
                error: AMQPError(condition: "amqp:unauthorized-access", description: "bad token")
            )
        ),
        .end(AMQPEndOrClose()),
        .close(AMQPEndOrClose(error: AMQPError(condition: "amqp:connection:forced"))),
        .saslMechanisms(SASLMechanisms(mechanisms: ["PLAIN", "ANONYMOUS", "EXTERNAL"])),
        .saslInit(
            SASLInit(
                mechanism: "PLAIN",
                initialResponse: [0] + Array("dev1@sas.hub".utf8) + [0] + Array("token".utf8),
                hostname: "hub.azure-devices.net"
            )
        ),
        .saslChallenge([1, 2]),
        .saslResponse([3]),
        .saslOutcome(SASLOutcome(code: .auth)),
    ]

    @Test("every performative round-trips")
    func roundTrips() throws {
        for performative in Self.samples {
            let bytes = try performative.encoded()
            #expect(try AMQPPerformative.decode(bytes) == performative, "\(performative)")
            // And inside a frame, through the framer.
            let frame = AMQPFrame(type: .amqp, channel: 3, body: bytes)
            let (decoded, size) = try #require(
                try AMQPFramer(maximumFrameSize: 1 << 20).nextFrame(in: frame.encoded[...])
            )
            #expect(size == frame.encoded.count && decoded == frame)
        }
    }

    @Test("sasl-init PLAIN, byte for byte")
    func saslInitVector() throws {
        let bytes = try AMQPPerformative.saslInit(SASLInit(mechanism: "PLAIN", initialResponse: [0, 0x61, 0, 0x62]))
            .encoded()
        #expect(
            bytes == [
                0x00, 0x53, 0x41,  // described, smallulong 0x41 (sasl-init)
                0xC0, 0x0E, 0x02,  // list8: size 14, 2 fields (hostname omitted)
                0xA3, 0x05, 0x50, 0x4C, 0x41, 0x49, 0x4E,  // symbol "PLAIN"
                0xA0, 0x04, 0x00, 0x61, 0x00, 0x62,  // binary: NUL "a" NUL "b"
            ]
        )
        let credentials = SASLPlainCredentials(
            deviceId: "dev1",
            hubHost: "myhub.azure-devices.net",
            token: SASToken.generate(
                for: .device(hubHost: "myhub.azure-devices.net", deviceId: "dev1"),
                key: try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
                expiry: 1
            )
        )
        #expect(credentials.authenticationId == "dev1@sas.myhub")
        #expect(
            credentials.initialResponse.starts(
                with: [0] + Array("dev1@sas.myhub".utf8) + [0] + Array("SharedAccessSignature sr=".utf8)
            )
        )
        #expect(!credentials.description.contains("sig="))
        #expect(
            !SASLInit(mechanism: "PLAIN", initialResponse: credentials.initialResponse).description.contains(
                "Signature"
            )
        )
    }

    @Test("missing mandatory fields, unknown descriptors and wrong field types are refused")
    func refusals() throws {
        let openWithoutContainer = try AMQPEncoder.encode(.described(descriptor: .ulong(0x10), value: .list([])))
        #expect(throws: AMQPCodecError(.invalidField, "")) { try AMQPPerformative.decode(openWithoutContainer) }
        let attachWithoutRole = try AMQPEncoder.encode(
            .described(descriptor: .ulong(0x12), value: .list([.string("n"), .uint(0)]))
        )
        #expect(throws: AMQPCodecError(.invalidField, "")) { try AMQPPerformative.decode(attachWithoutRole) }
        let unknown = try AMQPEncoder.encode(.described(descriptor: .ulong(0x99), value: .list([])))
        #expect(throws: AMQPCodecError(.unexpectedDescriptor, "")) { try AMQPPerformative.decode(unknown) }
        let wrongType = try AMQPEncoder.encode(
            .described(descriptor: .ulong(0x11), value: .list([.null, .string("x"), .uint(1), .uint(1)]))
        )
        #expect(throws: AMQPCodecError(.invalidField, "")) { try AMQPPerformative.decode(wrongType) }
        let trailing = try AMQPPerformative.end(AMQPEndOrClose()).encoded() + [0x40]
        #expect(throws: AMQPCodecError(.trailingBytes, "")) { try AMQPPerformative.decode(trailing) }
        // Symbolic descriptors are accepted.
        let symbolic = try AMQPEncoder.encode(.described(descriptor: .symbol("amqp:close:list"), value: .list([])))
        #expect(try AMQPPerformative.decode(symbolic) == .close(AMQPEndOrClose()))
    }

    @Test("a telemetry message maps IoT Hub's properties to the properties and application-properties sections")
    func message() throws {
        var message = AMQPMessage(data: Array(#"{"temp":21.5}"#.utf8))
        message.messageId = .string("msg-0001")
        message.correlationId = .string("corr-0001")
        message.userId = Array("dev1".utf8)
        message.to = "/devices/dev1/messages/events"
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        message.creationTime = 1_795_000_000_000
        message.applicationProperties = [("a", .string("1")), ("b c", .string("x/y"))]
        message.messageAnnotations = [AMQPMapEntry(.symbol("iothub-interface-id"), .string("urn:x"))]
        let bytes = try message.encoded()
        let decoded = try AMQPMessage(decoding: bytes)
        #expect(decoded == message)
        // A C2D message split over two data sections reads as one body.
        let split =
            try AMQPEncoder.encode(.described(descriptor: .ulong(0x75), value: .binary([1, 2])))
            + AMQPEncoder.encode(.described(descriptor: .ulong(0x75), value: .binary([3])))
        #expect(try AMQPMessage(decoding: split).data == [1, 2, 3])
    }

    @Test("encodedWithAllFields writes every field of each performative and decodes to the same value")
    func allFields() throws {
        let performatives: [(AMQPPerformative, Int)] = [
            (.open(AMQPOpen(containerId: "c")), 10),
            (.begin(AMQPBegin(nextOutgoingId: 1, incomingWindow: 2, outgoingWindow: 3)), 8),
            (.attach(AMQPAttach(name: "l", handle: 0, isReceiver: true, source: AMQPTerminus(address: "a"))), 14),
            (.flow(AMQPFlow(nextIncomingId: 0, incomingWindow: 1, nextOutgoingId: 0, outgoingWindow: 1)), 11),
            (
                .transfer(AMQPTransfer(handle: 0, deliveryId: 1, deliveryTag: [1], messageFormat: 0), payload: [9, 9]),
                11
            ),
            (.disposition(AMQPDisposition(isReceiver: true, first: 0, settled: true, state: .accepted)), 6),
            (.detach(AMQPDetach(handle: 0, closed: true)), 3),
            (.end(AMQPEndOrClose()), 1),
            (.close(AMQPEndOrClose()), 1),
        ]
        for (performative, count) in performatives {
            let bytes = try performative.encodedWithAllFields()
            #expect(try AMQPPerformative.decode(bytes) == performative)
            var decoder = AMQPDecoder(bytes[...])
            guard case .described(_, .list(let fields)) = try decoder.decodeValue() else {
                Issue.record("not a described list")
                continue
            }
            #expect(fields.count == count, "\(performative)")
        }
        // SASL frames are written as encoded() writes them.
        let mechanisms = AMQPPerformative.saslMechanisms(SASLMechanisms(mechanisms: ["PLAIN"]))
        #expect(try mechanisms.encodedWithAllFields() == mechanisms.encoded())
    }
}
