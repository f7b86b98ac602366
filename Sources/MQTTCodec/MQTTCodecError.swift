/// A malformed or invalid MQTT 3.1.1 packet, from the network or from a caller. Compare on ``code``; ``offset`` is
/// the byte (from the start of the packet body) where decoding stopped, when known.
public struct MQTTCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var code: Code
    /// Details for a human.
    public var message: String
    /// The offset in the body where decoding stopped.
    public var offset: Int?

    /// Creates an error.
    public init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: MQTTCodecError, rhs: MQTTCodecError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// A readable summary that never contains secrets.
    public var description: String {
        "MQTTCodecError.\(self.code): \(self.message)" + (self.offset.map { " (at body offset \($0))" } ?? "")
    }

    /// The kinds of ``MQTTCodecError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// The Remaining Length takes more than 4 bytes or is not minimally encoded.
        public static let malformedRemainingLength = Code("malformedRemainingLength")
        /// The packet is larger than the configured maximum.
        public static let packetTooLarge = Code("packetTooLarge")
        /// Packet type 0 or 15.
        public static let reservedPacketType = Code("reservedPacketType")
        /// Fixed-header flag bits that the spec reserves are wrong.
        public static let invalidFixedHeaderFlags = Code("invalidFixedHeaderFlags")
        /// The body ends before a field does.
        public static let truncated = Code("truncated")
        /// Bytes are left over after the last field.
        public static let trailingBytes = Code("trailingBytes")
        /// A string is not well-formed UTF-8 or contains U+0000.
        public static let invalidUTF8 = Code("invalidUTF8")
        /// A topic name is empty or contains `+` or `#`.
        public static let invalidTopicName = Code("invalidTopicName")
        /// A topic filter puts a wildcard where the spec forbids it.
        public static let invalidTopicFilter = Code("invalidTopicFilter")
        /// A packet identifier is 0.
        public static let zeroPacketIdentifier = Code("zeroPacketIdentifier")
        /// A QoS is 3, or a flag contradicts the QoS.
        public static let invalidQoS = Code("invalidQoS")
        /// CONNECT names another protocol than `MQTT`.
        public static let invalidProtocolName = Code("invalidProtocolName")
        /// CONNECT asks for another protocol level than 4 (3.1.1).
        public static let unsupportedProtocolLevel = Code("unsupportedProtocolLevel")
        /// CONNECT flags contradict each other or set the reserved bit.
        public static let invalidConnectFlags = Code("invalidConnectFlags")
        /// CONNACK or SUBACK carries a value the spec does not allow.
        public static let invalidAcknowledgement = Code("invalidAcknowledgement")
        /// SUBSCRIBE or UNSUBSCRIBE carries no topic filter.
        public static let emptySubscription = Code("emptySubscription")
        /// A field is too long to encode (over 65,535 bytes).
        public static let fieldTooLong = Code("fieldTooLong")
    }
}
