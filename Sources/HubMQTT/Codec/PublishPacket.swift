/// PUBLISH (§3.3): topic, QoS, DUP and RETAIN flags, packet id (QoS 1 and 2), payload.
public struct PublishPacket: Sendable, Equatable {
    /// The topic name (no wildcards).
    public var topic: String
    /// The application message.
    public var payload: [UInt8]
    /// The delivery guarantee.
    public var qos: MQTTQoS
    /// Whether the broker retains the message.
    public var retain: Bool
    /// Whether this is a redelivery (DUP flag).
    public var duplicate: Bool
    /// The packet id; required (non-zero) for QoS 1 and 2, absent for QoS 0.
    public var packetId: UInt16?

    /// A PUBLISH; `packetId` is required for QoS 1 and 2.
    public init(topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false, duplicate: Bool = false, packetId: UInt16? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.duplicate = duplicate
        self.packetId = packetId
    }

    enum Flag {
        static let retain: UInt8 = 0x01
        static let qosShift: UInt8 = 1
        static let qosMask: UInt8 = 0x06
        static let duplicate: UInt8 = 0x08
    }

    var flags: UInt8 {
        var flags = self.qos.rawValue << Flag.qosShift
        if self.retain { flags |= Flag.retain }
        if self.duplicate { flags |= Flag.duplicate }
        return flags
    }

    func validate() throws(MQTTCodecError) {
        try MQTTTopic.validateName(self.topic)
        if self.qos == .atMostOnce {
            guard self.packetId == nil else { throw MQTTCodecError(.invalidQoS, "a QoS 0 PUBLISH has no packet id") }
            guard !self.duplicate else { throw MQTTCodecError(.invalidQoS, "DUP must be 0 for QoS 0 [MQTT-3.3.1-2]") }
        } else {
            guard let packetId else { throw MQTTCodecError(.zeroPacketIdentifier, "a QoS \(self.qos.rawValue) PUBLISH needs a packet id") }
            guard packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]") }
        }
    }

    var bodySize: Int { 2 + self.topic.utf8.count + (self.qos == .atMostOnce ? 0 : 2) + self.payload.count }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeString(self.topic)
        if let packetId { writer.writeUInt16(packetId) }
        writer.bytes.append(contentsOf: self.payload)
    }

    init(flags: UInt8, decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        guard let qos = MQTTQoS(rawValue: (flags & Flag.qosMask) >> Flag.qosShift) else {
            throw MQTTCodecError(.invalidQoS, "PUBLISH with QoS 3 [MQTT-3.3.1-4]", offset: 0)
        }
        let duplicate = flags & Flag.duplicate != 0
        if qos == .atMostOnce && duplicate {
            throw MQTTCodecError(.invalidQoS, "DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]", offset: 0)
        }
        self.qos = qos
        self.duplicate = duplicate
        self.retain = flags & Flag.retain != 0
        let topicOffset = reader.offset
        self.topic = try reader.readString()
        do { try MQTTTopic.validateName(self.topic) } catch { throw MQTTCodecError(error.code, error.message, offset: topicOffset) }
        if qos == .atMostOnce {
            self.packetId = nil
        } else {
            let idOffset = reader.offset
            let packetId = try reader.readUInt16()
            guard packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]", offset: idOffset) }
            self.packetId = packetId
        }
        self.payload = Array(reader.readRest())
    }
}
