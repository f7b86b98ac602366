/// SUBSCRIBE (§3.8): packet id and one or more (topic filter, requested QoS) pairs.
public struct SubscribePacket: Sendable, Equatable {
    /// One requested subscription.
    public struct Subscription: Sendable, Equatable {
        /// The topic filter (wildcards allowed).
        public var topicFilter: String
        /// The maximum QoS requested.
        public var qos: MQTTQoS
        /// A value with these fields.
        public init(topicFilter: String, qos: MQTTQoS) {
            self.topicFilter = topicFilter
            self.qos = qos
        }
    }

    /// The packet identifier (never 0).
    public var packetId: UInt16
    /// The requested subscriptions, at least one.
    public var subscriptions: [Subscription]

    /// A value with these fields.
    public init(packetId: UInt16, subscriptions: [Subscription]) {
        self.packetId = packetId
        self.subscriptions = subscriptions
    }

    func validate() throws(MQTTCodecError) {
        guard self.packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]") }
        guard !self.subscriptions.isEmpty else {
            throw MQTTCodecError(.emptySubscription, "SUBSCRIBE needs a topic filter [MQTT-3.8.3-3]")
        }
        for subscription in self.subscriptions { try MQTTTopic.validateFilter(subscription.topicFilter) }
    }

    var bodySize: Int { 2 + self.subscriptions.reduce(0) { $0 + 3 + $1.topicFilter.utf8.count } }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeUInt16(self.packetId)
        for subscription in self.subscriptions {
            writer.writeString(subscription.topicFilter)
            writer.writeByte(subscription.qos.rawValue)
        }
    }

    init(decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        self.packetId = try reader.readUInt16()
        guard self.packetId != 0 else {
            throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]", offset: 0)
        }
        var subscriptions: [Subscription] = []
        while reader.remaining > 0 {
            let filterOffset = reader.offset
            let filter = try reader.readString()
            do { try MQTTTopic.validateFilter(filter) } catch {
                throw MQTTCodecError(error.code, error.message, offset: filterOffset)
            }
            let qosOffset = reader.offset
            let options = try reader.readByte()
            guard options & 0xFC == 0, let qos = MQTTQoS(rawValue: options) else {
                throw MQTTCodecError(
                    .invalidQoS,
                    "requested QoS byte \(options) is not 0, 1 or 2 [MQTT-3.8.3-4]",
                    offset: qosOffset
                )
            }
            subscriptions.append(Subscription(topicFilter: filter, qos: qos))
        }
        guard !subscriptions.isEmpty else {
            throw MQTTCodecError(
                .emptySubscription,
                "SUBSCRIBE without a topic filter [MQTT-3.8.3-3]",
                offset: reader.offset
            )
        }
        self.subscriptions = subscriptions
    }
}

/// SUBACK (§3.9): packet id and one return code per requested subscription.
public struct SubAckPacket: Sendable, Equatable {
    /// A SUBACK return code: granted QoS 0, 1 or 2, or 0x80 failure.
    public struct ReturnCode: RawRepresentable, Hashable, Sendable {
        /// The value on the wire.
        public let rawValue: UInt8
        /// A value from its wire value (open-ended: unknown values are kept).
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Subscribed with QoS 0.
        public static let grantedQoS0 = ReturnCode(rawValue: 0)
        /// Subscribed with QoS 1.
        public static let grantedQoS1 = ReturnCode(rawValue: 1)
        /// Subscribed with QoS 2.
        public static let grantedQoS2 = ReturnCode(rawValue: 2)
        /// The subscription was refused (0x80).
        public static let failure = ReturnCode(rawValue: 0x80)
    }

    /// The packet identifier (never 0).
    public var packetId: UInt16
    /// One result per requested subscription, in order.
    public var returnCodes: [ReturnCode]

    /// A value with these fields.
    public init(packetId: UInt16, returnCodes: [ReturnCode]) {
        self.packetId = packetId
        self.returnCodes = returnCodes
    }

    init(decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        self.packetId = try reader.readUInt16()
        guard self.packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0", offset: 0) }
        var codes: [ReturnCode] = []
        while reader.remaining > 0 {
            let offset = reader.offset
            let byte = try reader.readByte()
            guard byte <= 2 || byte == 0x80 else {
                throw MQTTCodecError(
                    .invalidAcknowledgement,
                    "SUBACK return code \(byte) is not allowed [MQTT-3.9.3-2]",
                    offset: offset
                )
            }
            codes.append(ReturnCode(rawValue: byte))
        }
        guard !codes.isEmpty else {
            throw MQTTCodecError(.invalidAcknowledgement, "SUBACK without return codes", offset: reader.offset)
        }
        self.returnCodes = codes
    }

    func validate() throws(MQTTCodecError) {
        guard self.packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0") }
        guard !self.returnCodes.isEmpty, self.returnCodes.allSatisfy({ $0.rawValue <= 2 || $0 == .failure }) else {
            throw MQTTCodecError(.invalidAcknowledgement, "SUBACK needs return codes 0, 1, 2 or 0x80")
        }
    }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeUInt16(self.packetId)
        for code in self.returnCodes { writer.writeByte(code.rawValue) }
    }
}

/// UNSUBSCRIBE (§3.10): packet id and one or more topic filters.
public struct UnsubscribePacket: Sendable, Equatable {
    /// The packet identifier (never 0).
    public var packetId: UInt16
    /// The filters to remove, at least one.
    public var topicFilters: [String]

    /// A value with these fields.
    public init(packetId: UInt16, topicFilters: [String]) {
        self.packetId = packetId
        self.topicFilters = topicFilters
    }

    func validate() throws(MQTTCodecError) {
        guard self.packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]") }
        guard !self.topicFilters.isEmpty else {
            throw MQTTCodecError(.emptySubscription, "UNSUBSCRIBE needs a topic filter [MQTT-3.10.3-2]")
        }
        for filter in self.topicFilters { try MQTTTopic.validateFilter(filter) }
    }

    var bodySize: Int { 2 + self.topicFilters.reduce(0) { $0 + 2 + $1.utf8.count } }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeUInt16(self.packetId)
        for filter in self.topicFilters { writer.writeString(filter) }
    }

    init(decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        self.packetId = try reader.readUInt16()
        guard self.packetId != 0 else {
            throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]", offset: 0)
        }
        var filters: [String] = []
        while reader.remaining > 0 {
            let offset = reader.offset
            let filter = try reader.readString()
            do { try MQTTTopic.validateFilter(filter) } catch {
                throw MQTTCodecError(error.code, error.message, offset: offset)
            }
            filters.append(filter)
        }
        guard !filters.isEmpty else {
            throw MQTTCodecError(
                .emptySubscription,
                "UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]",
                offset: reader.offset
            )
        }
        self.topicFilters = filters
    }
}
