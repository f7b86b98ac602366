import HubMQTT
import Testing

/// One rejection per normative rule the codec enforces; each names the rule.
@Suite("MQTT codec rejections")
struct MQTTCodecRejectionTests {
    static func decode(_ bytes: [UInt8], maximum: Int = 1024) throws(MQTTCodecError) -> [MQTTPacket] {
        var buffer = bytes
        return try MQTTFramer(maximumPacketSize: maximum).decodePackets(from: &buffer)
    }

    @Test(
        "malformed fixed headers and bodies from the network",
        arguments: [
            ([0x30, 0x80, 0x80, 0x80, 0x80, 0x01], MQTTCodecError.Code.malformedRemainingLength),  // 5-byte length
            ([0x30, 0x80, 0x00], .malformedRemainingLength),  // non-minimal length
            ([0x30, 0xFF, 0xFF, 0x7F], .packetTooLarge),  // over the maximum, before buffering
            ([0x00, 0x00], .reservedPacketType),  // type 0
            ([0xF0, 0x00], .reservedPacketType),  // type 15
            ([0x41, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags),  // PUBACK flags must be 0 [MQTT-2.2.2-2]
            ([0x60, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags),  // PUBREL flags must be 0010
            ([0x80, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00], .invalidFixedHeaderFlags),  // SUBSCRIBE flags must be 0010
            ([0xC1, 0x00], .invalidFixedHeaderFlags),  // PINGREQ flags
            ([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01], .invalidQoS),  // PUBLISH QoS 3 [MQTT-3.3.1-4]
            ([0x38, 0x03, 0x00, 0x01, 0x74], .invalidQoS),  // DUP on QoS 0 [MQTT-3.3.1-2]
            ([0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x00], .zeroPacketIdentifier),  // packet id 0 [MQTT-2.3.1-1]
            ([0x40, 0x02, 0x00, 0x00], .zeroPacketIdentifier),  // PUBACK id 0
            ([0x30, 0x04, 0x00, 0x02, 0x61, 0x2B], .invalidTopicName),  // '+' in a topic name [MQTT-3.3.2-2]
            ([0x30, 0x04, 0x00, 0x02, 0x61, 0x23], .invalidTopicName),  // '#' in a topic name
            ([0x30, 0x02, 0x00, 0x00], .invalidTopicName),  // empty topic [MQTT-4.7.3-1]
            ([0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], .invalidUTF8),  // malformed UTF-8 [MQTT-1.5.3-1]
            ([0x30, 0x04, 0x00, 0x02, 0x61, 0x00], .invalidUTF8),  // U+0000 [MQTT-1.5.3-2]
            ([0x30, 0x03, 0x00, 0x05, 0x61], .truncated),  // string longer than the body
            ([0x40, 0x01, 0x00], .truncated),  // PUBACK too short
            ([0x40, 0x03, 0x00, 0x01, 0x00], .trailingBytes),  // PUBACK too long
            ([0xC0, 0x01, 0x00], .trailingBytes),  // PINGREQ with a body
            ([0x20, 0x02, 0x02, 0x00], .invalidAcknowledgement),  // CONNACK reserved bits
            ([0x20, 0x02, 0x01, 0x05], .invalidAcknowledgement),  // session present on refusal [MQTT-3.2.2-4]
            ([0x90, 0x03, 0x00, 0x01, 0x03], .invalidAcknowledgement),  // SUBACK code 3 [MQTT-3.9.3-2]
            ([0x82, 0x02, 0x00, 0x01], .emptySubscription),  // SUBSCRIBE with no filter [MQTT-3.8.3-3]
            ([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03], .invalidQoS),  // requested QoS 3 [MQTT-3.8.3-4]
            ([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x05], .invalidQoS),  // reserved bits in requested QoS
            // "a#b" [MQTT-4.7.1-2]
            ([0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x23, 0x62, 0x00], .invalidTopicFilter),
            // "a+b" [MQTT-4.7.1-3]
            ([0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2B, 0x62, 0x00], .invalidTopicFilter),
            ([0xA2, 0x02, 0x00, 0x01], .emptySubscription),  // UNSUBSCRIBE with no filter [MQTT-3.10.3-2]
        ] as [([UInt8], MQTTCodecError.Code)]
    )
    func networkInput(_ bytes: [UInt8], _ code: MQTTCodecError.Code) {
        #expect(throws: MQTTCodecError(code, "")) { try Self.decode(bytes) }
    }

    static let connectHeader: [UInt8] = [0x00, 0x04, 0x4D, 0x51, 0x54, 0x54]

    @Test(
        "CONNECT rules",
        arguments: [
            (
                [0x00, 0x04, 0x4D, 0x51, 0x49, 0x73, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00],
                MQTTCodecError.Code.invalidProtocolName
            ),
            (connectHeader + [0x03, 0x02, 0x00, 0x00, 0x00, 0x00], .unsupportedProtocolLevel),  // MQTT 3.1
            // reserved bit [MQTT-3.1.2-3]
            (connectHeader + [0x04, 0x03, 0x00, 0x00, 0x00, 0x00], .invalidConnectFlags),
            (connectHeader + [0x04, 0x1A, 0x00, 0x00, 0x00, 0x00], .invalidQoS),  // will QoS 3 [MQTT-3.1.2-14]
            // will QoS without will [MQTT-3.1.2-13]
            (connectHeader + [0x04, 0x0A, 0x00, 0x00, 0x00, 0x00], .invalidConnectFlags),
            // will retain without will [MQTT-3.1.2-15]
            (connectHeader + [0x04, 0x22, 0x00, 0x00, 0x00, 0x00], .invalidConnectFlags),
            // password without user [MQTT-3.1.2-22]
            (connectHeader + [0x04, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], .invalidConnectFlags),
            (connectHeader + [0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01], .trailingBytes),
        ] as [([UInt8], MQTTCodecError.Code)]
    )
    func connectRules(_ body: [UInt8], _ code: MQTTCodecError.Code) {
        #expect(throws: MQTTCodecError(code, "")) { try Self.decode([0x10, UInt8(body.count)] + body) }
    }

    @Test("the encoder refuses what the spec forbids")
    func encoderRules() {
        #expect(throws: MQTTCodecError(.zeroPacketIdentifier, "")) { try MQTTPacket.puback(packetId: 0).encoded() }
        #expect(throws: MQTTCodecError(.zeroPacketIdentifier, "")) {
            try MQTTPacket.publish(PublishPacket(topic: "t", payload: [], qos: .atLeastOnce, packetId: nil)).encoded()
        }
        #expect(throws: MQTTCodecError(.invalidQoS, "")) {
            try MQTTPacket.publish(PublishPacket(topic: "t", payload: [], duplicate: true)).encoded()
        }
        #expect(throws: MQTTCodecError(.invalidTopicName, "")) {
            try MQTTPacket.publish(PublishPacket(topic: "a/#", payload: [])).encoded()
        }
        #expect(throws: MQTTCodecError(.invalidTopicFilter, "")) {
            try MQTTPacket.subscribe(
                SubscribePacket(packetId: 1, subscriptions: [.init(topicFilter: "a/#/b", qos: .atMostOnce)])
            ).encoded()
        }
        #expect(throws: MQTTCodecError(.emptySubscription, "")) {
            try MQTTPacket.unsubscribe(UnsubscribePacket(packetId: 1, topicFilters: [])).encoded()
        }
        #expect(throws: MQTTCodecError(.invalidConnectFlags, "")) {
            try MQTTPacket.connect(ConnectPacket(clientId: "c", password: [1])).encoded()
        }
        #expect(throws: MQTTCodecError(.fieldTooLong, "")) {
            try MQTTPacket.connect(ConnectPacket(clientId: String(repeating: "x", count: 70_000))).encoded()
        }
    }

    /// A QoS 0 PUBLISH whose topic is `topic`, framed.
    static func publish(topic: [UInt8]) -> [UInt8] {
        [0x30, UInt8(2 + topic.count), 0x00, UInt8(topic.count)] + topic
    }

    @Test(
        "a forbidden byte is found at every position of topic names from 1 to 70 bytes (vector blocks, overlapping tail, short names)"
    )
    func forbiddenTopicBytesEverywhere() throws {
        for length in 1...70 {
            let plain = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            #expect(try Self.decode(Self.publish(topic: plain)).count == 1, "length \(length)")
            for position in 0..<length {
                for (byte, code) in [
                    (UInt8(ascii: "+"), MQTTCodecError.Code.invalidTopicName), (UInt8(ascii: "#"), .invalidTopicName),
                    (0, .invalidUTF8),
                ] {
                    var topic = plain
                    topic[position] = byte
                    #expect(throws: MQTTCodecError(code, ""), "byte \(byte) at \(position) of \(length)") {
                        try Self.decode(Self.publish(topic: topic))
                    }
                }
            }
        }
    }

    @Test("non-ASCII topic names at every position: well-formed UTF-8 passes, a stray continuation byte is refused")
    func nonASCIITopicNamesEverywhere() throws {
        for length in 2...70 {
            for position in 0..<(length - 1) {
                var topic = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                topic[position] = 0xC3
                topic[position + 1] = 0xA9
                let packets = try Self.decode(Self.publish(topic: topic))
                guard case .publish(let decoded)? = packets.first else {
                    Issue.record("no PUBLISH for length \(length), position \(position)")
                    continue
                }
                #expect(Array(decoded.topicBytes) == topic)
                topic[position] = 0xA9
                #expect(throws: MQTTCodecError(.invalidUTF8, ""), "stray continuation at \(position) of \(length)") {
                    try Self.decode(Self.publish(topic: topic))
                }
            }
        }
    }

    @Test(
        "valid filters pass",
        arguments: ["#", "+", "a/+/b", "a/#", "+/+", "/", "$iothub/methods/POST/#", "devices/+/messages/devicebound/#"]
    )
    func validFilters(_ filter: String) throws {
        try MQTTTopic.validateFilter(filter)
    }
}
