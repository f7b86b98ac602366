import HubMQTT
import Testing

/// Byte-exact vectors for every packet type, field by field, decoded and re-encoded.
@Suite("MQTT codec vectors")
struct MQTTCodecVectorTests {
    static func check(_ packet: MQTTPacket, _ bytes: [UInt8]) throws {
        #expect(try packet.encoded() == bytes, "encode \(packet)")
        var buffer = bytes
        let decoded = try MQTTFramer().decodePackets(from: &buffer)
        #expect(decoded == [packet])
        #expect(buffer.isEmpty)
    }

    @Test("CONNECT with will, user name and password")
    func connect() throws {
        let packet = MQTTPacket.connect(
            ConnectPacket(
                clientId: "d1",
                cleanSession: false,
                keepAliveSeconds: 240,
                will: .init(topic: "w", payload: [0x42], qos: .atLeastOnce, retain: true),
                username: "u",
                password: [0x70]
            )
        )
        try Self.check(
            packet,
            [
                0x10, 26,  // CONNECT, remaining length 26
                0x00, 0x04, 0x4D, 0x51, 0x54, 0x54,  // "MQTT"
                0x04,  // protocol level 4
                0xEC,  // flags: user name, password, will retain, will QoS 1, will; not clean
                0x00, 0xF0,  // keep-alive 240 s
                0x00, 0x02, 0x64, 0x31,  // client id "d1"
                0x00, 0x01, 0x77,  // will topic "w"
                0x00, 0x01, 0x42,  // will payload
                0x00, 0x01, 0x75,  // user name "u"
                0x00, 0x01, 0x70,  // password
            ]
        )
    }

    @Test("CONNECT minimal, clean session")
    func connectMinimal() throws {
        try Self.check(
            .connect(ConnectPacket(clientId: "", cleanSession: true, keepAliveSeconds: 0)),
            [
                0x10, 12, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04,
                0x02,  // clean session only
                0x00, 0x00,  // keep-alive 0
                0x00, 0x00,  // empty client id
            ]
        )
    }

    @Test("CONNACK accepted with session present, and refused with 5")
    func connack() throws {
        try Self.check(.connack(ConnAckPacket(sessionPresent: true, returnCode: .accepted)), [0x20, 0x02, 0x01, 0x00])
        try Self.check(
            .connack(ConnAckPacket(sessionPresent: false, returnCode: .notAuthorized)),
            [0x20, 0x02, 0x00, 0x05]
        )
        // Unknown return codes survive a round trip.
        try Self.check(.connack(ConnAckPacket(returnCode: .init(rawValue: 0x42))), [0x20, 0x02, 0x00, 0x42])
    }

    @Test("PUBLISH QoS 0, QoS 1 with DUP and RETAIN, QoS 2")
    func publish() throws {
        try Self.check(
            .publish(PublishPacket(topic: "a/b", payload: [1, 2])),
            [
                0x30, 7,  // PUBLISH, QoS 0, remaining 7
                0x00, 0x03, 0x61, 0x2F, 0x62,  // topic "a/b"
                0x01, 0x02,  // payload
            ]
        )
        try Self.check(
            .publish(
                PublishPacket(
                    topic: "t",
                    payload: [],
                    qos: .atLeastOnce,
                    retain: true,
                    duplicate: true,
                    packetId: 0x1234
                )
            ),
            [
                0x3B, 5,  // PUBLISH | DUP(8) | QoS 1 (2) | RETAIN (1)
                0x00, 0x01, 0x74,  // topic "t"
                0x12, 0x34,  // packet id
            ]
        )
        try Self.check(
            .publish(PublishPacket(topic: "t", payload: [9], qos: .exactlyOnce, packetId: 1)),
            [
                0x34, 6, 0x00, 0x01, 0x74, 0x00, 0x01, 0x09,
            ]
        )
    }

    @Test("PUBACK, PUBREC, PUBREL (flags 0010), PUBCOMP, UNSUBACK")
    func acknowledgements() throws {
        try Self.check(.puback(packetId: 7), [0x40, 0x02, 0x00, 0x07])
        try Self.check(.pubrec(packetId: 7), [0x50, 0x02, 0x00, 0x07])
        try Self.check(.pubrel(packetId: 7), [0x62, 0x02, 0x00, 0x07])
        try Self.check(.pubcomp(packetId: 7), [0x70, 0x02, 0x00, 0x07])
        try Self.check(.unsuback(packetId: 0xFFFF), [0xB0, 0x02, 0xFF, 0xFF])
    }

    @Test("SUBSCRIBE, SUBACK, UNSUBSCRIBE")
    func subscriptions() throws {
        try Self.check(
            .subscribe(
                SubscribePacket(
                    packetId: 10,
                    subscriptions: [
                        .init(topicFilter: "devices/d1/messages/devicebound/#", qos: .atLeastOnce),
                        .init(topicFilter: "$iothub/twin/res/#", qos: .atMostOnce),
                    ]
                )
            ),
            [
                0x82, 59,  // SUBSCRIBE, flags 0010, remaining 59
                0x00, 0x0A,  // packet id 10
                0x00, 0x21,
            ] + Array("devices/d1/messages/devicebound/#".utf8) + [
                0x01,  // filter, QoS 1
                0x00, 0x12,
            ] + Array("$iothub/twin/res/#".utf8) + [
                0x00  // filter, QoS 0
            ]
        )
        try Self.check(
            .suback(SubAckPacket(packetId: 10, returnCodes: [.grantedQoS1, .failure])),
            [0x90, 0x04, 0x00, 0x0A, 0x01, 0x80]
        )
        try Self.check(
            .unsubscribe(UnsubscribePacket(packetId: 11, topicFilters: ["a/+"])),
            [
                0xA2, 7, 0x00, 0x0B, 0x00, 0x03, 0x61, 0x2F, 0x2B,
            ]
        )
    }

    @Test("PINGREQ, PINGRESP, DISCONNECT")
    func empty() throws {
        try Self.check(.pingreq, [0xC0, 0x00])
        try Self.check(.pingresp, [0xD0, 0x00])
        try Self.check(.disconnect, [0xE0, 0x00])
    }

    @Test("Remaining Length at each size boundary round-trips")
    func remainingLengthBoundaries() throws {
        for (size, header) in [
            (127, [0x7F]), (128, [0x80, 0x01]), (16_383, [0xFF, 0x7F]), (16_384, [0x80, 0x80, 0x01]),
            (2_097_152, [0x80, 0x80, 0x80, 0x01]),
        ] as [(Int, [UInt8])] {
            let payload = [UInt8](repeating: 0xAB, count: size - 3)
            let bytes = try MQTTPacket.publish(PublishPacket(topic: "t", payload: payload)).encoded()
            #expect(Array(bytes[1..<(1 + header.count)]) == header, "size \(size)")
            var buffer = bytes
            let decoded = try MQTTFramer(maximumPacketSize: 3_000_000).decodePackets(from: &buffer)
            #expect(decoded.count == 1)
        }
    }
}
