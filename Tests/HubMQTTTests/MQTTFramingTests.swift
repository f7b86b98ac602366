import AzureIoTTestSupport
import HubMQTT
import Testing

@Suite("MQTT framing")
struct MQTTFramingTests {
    static let samples: [MQTTPacket] = [
        .connect(
            ConnectPacket(
                clientId: "dev1",
                cleanSession: false,
                keepAliveSeconds: 60,
                username: "hub/dev1/?api-version=2021-04-12",
                password: Array("SharedAccessSignature sr=x".utf8)
            )
        ),
        .connack(ConnAckPacket(sessionPresent: true)),
        .publish(
            PublishPacket(
                topic: "devices/dev1/messages/events/%24.ct=application%2Fjson",
                payload: Array(repeating: 7, count: 300),
                qos: .atLeastOnce,
                packetId: 65_535
            )
        ),
        .publish(PublishPacket(topic: "x", payload: [])),
        .puback(packetId: 1), .pubrec(packetId: 2), .pubrel(packetId: 3), .pubcomp(packetId: 4),
        .subscribe(
            SubscribePacket(packetId: 5, subscriptions: [.init(topicFilter: "$iothub/twin/res/#", qos: .atLeastOnce)])
        ),
        .suback(SubAckPacket(packetId: 5, returnCodes: [.grantedQoS1])),
        .unsubscribe(UnsubscribePacket(packetId: 6, topicFilters: ["a", "b/+"])),
        .unsuback(packetId: 6), .pingreq, .pingresp, .disconnect,
    ]

    @Test("drip-fed one byte at a time, every packet comes out once, nothing consumed early")
    func dripFeed() throws {
        var stream: [UInt8] = []
        for packet in Self.samples { try packet.encode(into: &stream) }
        let framer = MQTTFramer()
        var buffer: [UInt8] = []
        var decoded: [MQTTPacket] = []
        for byte in stream {
            buffer.append(byte)
            let before = buffer
            let packets = try framer.decodePackets(from: &buffer)
            if packets.isEmpty { #expect(buffer == before) }
            decoded += packets
        }
        #expect(decoded == Self.samples)
        #expect(buffer.isEmpty)
    }

    @Test("every sample round-trips and its size matches what was written")
    func roundTrips() throws {
        for packet in Self.samples {
            let bytes = try packet.encoded()
            let frame = try #require(try MQTTFramer().nextFrame(in: bytes[...]))
            #expect(frame.end == bytes.count)
            #expect(try MQTTPacket.decode(firstByte: frame.firstByte, body: bytes[frame.body]) == packet)
        }
    }

    @Test("random bytes never trap: each prefix either decodes, asks for more, or throws a typed error")
    func randomBytes() async {
        // A trap ends the process before any expectation could report: the seed is printed up front.
        var generator = SeededRandom()
        print("random bytes: \(generator.replay)")
        let framer = MQTTFramer(maximumPacketSize: 4096)
        for iteration in 0..<20_000 {
            await yieldToOtherTests(at: iteration)
            let count = Int.random(in: 0..<40, using: &generator)
            var buffer = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            do { _ = try framer.decodePackets(from: &buffer) } catch {}
        }
    }

    @Test("a CONNECT description never shows the password")
    func redaction() {
        let connect = ConnectPacket(
            clientId: "d",
            username: "u",
            password: Array("SharedAccessSignature sig=secret".utf8)
        )
        #expect(!connect.description.contains("secret"))
        #expect(connect.description.contains("<redacted>"))
    }
}
