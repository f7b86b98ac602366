/// CONNECT (MQTT 3.1.1 §3.1): protocol `MQTT` level 4, flags, keep-alive, client id, will, user name, password.
/// `description` never shows the password.
public struct ConnectPacket: Sendable, Equatable {
    /// A last-will message.
    public struct Will: Sendable, Equatable {
        /// The topic the broker publishes the will to.
        public var topic: String
        /// The will message.
        public var payload: [UInt8]
        /// The QoS of the will message.
        public var qos: MQTTQoS
        /// Whether the will is retained.
        public var retain: Bool
        /// A will message.
        public init(topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
        }
    }

    /// The client identifier (IoT Hub: `{deviceId}` or `{deviceId}/{moduleId}`).
    public var clientId: String
    /// Whether the broker discards the previous session.
    public var cleanSession: Bool
    /// The keep-alive interval in seconds (0 turns it off).
    public var keepAliveSeconds: UInt16
    /// The will message, if any.
    public var will: Will?
    /// The user name (IoT Hub: `{hub}/{clientId}/?api-version=…`).
    public var username: String?
    /// The password bytes (IoT Hub: the SAS token); never printed.
    public var password: [UInt8]?

    /// A packet.
    public init(
        clientId: String,
        cleanSession: Bool = true,
        keepAliveSeconds: UInt16 = 240,
        will: Will? = nil,
        username: String? = nil,
        password: [UInt8]? = nil
    ) {
        self.clientId = clientId
        self.cleanSession = cleanSession
        self.keepAliveSeconds = keepAliveSeconds
        self.will = will
        self.username = username
        self.password = password
    }

    private enum Flag {
        static let reserved: UInt8 = 0x01
        static let cleanSession: UInt8 = 0x02
        static let will: UInt8 = 0x04
        static let willQoSShift: UInt8 = 3
        static let willQoSMask: UInt8 = 0x18
        static let willRetain: UInt8 = 0x20
        static let password: UInt8 = 0x40
        static let username: UInt8 = 0x80
    }

    func validate() throws(MQTTCodecError) {
        try MQTTByteWriter.checkString(self.clientId, "the client id")
        if let username { try MQTTByteWriter.checkString(username, "the user name") }
        if self.password != nil && self.username == nil {
            throw MQTTCodecError(.invalidConnectFlags, "a password needs a user name [MQTT-3.1.2-22]")
        }
        if let password, password.count > 65_535 {
            throw MQTTCodecError(.fieldTooLong, "the password is longer than 65,535 bytes")
        }
        if let will {
            try MQTTTopic.validateName(will.topic)
            guard will.payload.count <= 65_535 else {
                throw MQTTCodecError(.fieldTooLong, "the will payload is too long")
            }
        }
    }

    var bodySize: Int {
        10 + 2 + self.clientId.utf8.count
            + (self.will.map { 4 + $0.topic.utf8.count + $0.payload.count } ?? 0)
            + (self.username.map { 2 + $0.utf8.count } ?? 0)
            + (self.password.map { 2 + $0.count } ?? 0)
    }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeString("MQTT")
        writer.writeByte(4)
        var flags: UInt8 = 0
        if self.cleanSession { flags |= Flag.cleanSession }
        if let will {
            flags |= Flag.will | will.qos.rawValue << Flag.willQoSShift
            if will.retain { flags |= Flag.willRetain }
        }
        if self.username != nil { flags |= Flag.username }
        if self.password != nil { flags |= Flag.password }
        writer.writeByte(flags)
        writer.writeUInt16(self.keepAliveSeconds)
        writer.writeString(self.clientId)
        if let will {
            writer.writeString(will.topic)
            writer.writeBinary(will.payload)
        }
        if let username { writer.writeString(username) }
        if let password { writer.writeBinary(password) }
    }

    init(decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        let nameOffset = reader.offset
        guard try reader.readString() == "MQTT" else {
            throw MQTTCodecError(.invalidProtocolName, "the protocol name is not 'MQTT'", offset: nameOffset)
        }
        let level = try reader.readByte()
        guard level == 4 else {
            throw MQTTCodecError(
                .unsupportedProtocolLevel,
                "protocol level \(level) is not 4 (MQTT 3.1.1)",
                offset: reader.offset - 1
            )
        }
        let flagsOffset = reader.offset
        let flags = try reader.readByte()
        guard flags & Flag.reserved == 0 else {
            throw MQTTCodecError(
                .invalidConnectFlags,
                "the reserved CONNECT flag is set [MQTT-3.1.2-3]",
                offset: flagsOffset
            )
        }
        let hasWill = flags & Flag.will != 0
        let willQoSBits = (flags & Flag.willQoSMask) >> Flag.willQoSShift
        guard let willQoS = MQTTQoS(rawValue: willQoSBits) else {
            throw MQTTCodecError(.invalidQoS, "the will QoS is 3 [MQTT-3.1.2-14]", offset: flagsOffset)
        }
        if !hasWill && (willQoSBits != 0 || flags & Flag.willRetain != 0) {
            throw MQTTCodecError(
                .invalidConnectFlags,
                "will QoS or retain set without a will [MQTT-3.1.2-11, -13]",
                offset: flagsOffset
            )
        }
        if flags & Flag.username == 0 && flags & Flag.password != 0 {
            throw MQTTCodecError(
                .invalidConnectFlags,
                "a password without a user name [MQTT-3.1.2-22]",
                offset: flagsOffset
            )
        }
        self.cleanSession = flags & Flag.cleanSession != 0
        self.keepAliveSeconds = try reader.readUInt16()
        self.clientId = try reader.readString()
        if hasWill {
            let topicOffset = reader.offset
            let topic = try reader.readString()
            do { try MQTTTopic.validateName(topic) } catch {
                throw MQTTCodecError(error.code, error.message, offset: topicOffset)
            }
            self.will = Will(
                topic: topic,
                payload: Array(try reader.readBinary()),
                qos: willQoS,
                retain: flags & Flag.willRetain != 0
            )
        } else {
            self.will = nil
        }
        self.username = flags & Flag.username != 0 ? try reader.readString() : nil
        self.password = flags & Flag.password != 0 ? Array(try reader.readBinary()) : nil
        try reader.expectEnd()
    }
}

extension ConnectPacket: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String {
        "CONNECT(clientId: \(self.clientId), cleanSession: \(self.cleanSession), keepAlive: \(self.keepAliveSeconds), "
            + "username: \(self.username ?? "nil"), password: \(self.password == nil ? "nil" : "<redacted>"), will: \(self.will?.topic ?? "nil"))"
    }
}
