/// CONNACK (§3.2): session-present flag and return code.
public struct ConnAckPacket: Sendable, Equatable {
    /// A CONNACK return code; open-ended so that unknown values survive a round trip.
    public struct ReturnCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The value on the wire.
        public let rawValue: UInt8
        /// A value from its wire value (open-ended: unknown values are kept).
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// 0: connection accepted.
        public static let accepted = ReturnCode(rawValue: 0)
        /// 1: unacceptable protocol version.
        public static let unacceptableProtocolVersion = ReturnCode(rawValue: 1)
        /// 2: identifier rejected.
        public static let identifierRejected = ReturnCode(rawValue: 2)
        /// 3: server unavailable.
        public static let serverUnavailable = ReturnCode(rawValue: 3)
        /// 4: bad user name or password.
        public static let badUsernameOrPassword = ReturnCode(rawValue: 4)
        /// 5: not authorized (IoT Hub's answer to every failure).
        public static let notAuthorized = ReturnCode(rawValue: 5)

        /// A readable summary that never contains secrets.
        public var description: String {
            switch self.rawValue {
            case 0: return "accepted"
            case 1: return "unacceptable protocol version"
            case 2: return "identifier rejected"
            case 3: return "server unavailable"
            case 4: return "bad user name or password"
            case 5: return "not authorized"
            default: return "return code \(self.rawValue)"
            }
        }
    }

    /// Whether the broker kept a session for this client.
    public var sessionPresent: Bool
    /// The broker's verdict.
    public var returnCode: ReturnCode

    /// A CONNACK.
    public init(sessionPresent: Bool = false, returnCode: ReturnCode = .accepted) {
        self.sessionPresent = sessionPresent
        self.returnCode = returnCode
    }

    init(decoding reader: inout MQTTByteReader) throws(MQTTCodecError) {
        let flags = try reader.readByte()
        guard flags & 0xFE == 0 else {
            throw MQTTCodecError(.invalidAcknowledgement, "CONNACK reserved flag bits are set", offset: 0)
        }
        self.sessionPresent = flags & 0x01 != 0
        self.returnCode = ReturnCode(rawValue: try reader.readByte())
        if self.returnCode != .accepted && self.sessionPresent {
            throw MQTTCodecError(.invalidAcknowledgement, "session present with a refusal [MQTT-3.2.2-4]", offset: 0)
        }
        try reader.expectEnd()
    }

    func writeBody(into writer: inout MQTTByteWriter) {
        writer.writeByte(self.sessionPresent ? 1 : 0)
        writer.writeByte(self.returnCode.rawValue)
    }
}
