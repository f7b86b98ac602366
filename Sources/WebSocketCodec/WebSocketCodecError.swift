/// A WebSocket frame, message or opening handshake that breaks RFC 6455 or a configured limit. Compare on ``code``;
/// ``closeCode`` is the status an endpoint sends in its Close frame before it drops the connection.
public struct WebSocketCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var code: Code
    /// Details for a human.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The status code to close the connection with (RFC 6455 §7.4.1): 1009 for a message or frame over the limit,
    /// 1007 for text that is not UTF-8, 1002 for every other protocol violation; `nil` for handshake failures,
    /// which happen before there is a WebSocket to close.
    public var closeCode: UInt16? {
        switch self.code {
        case .frameTooLarge, .messageTooLarge: return 1009
        case .invalidUTF8: return 1007
        case .malformedHandshake, .handshakeRefused, .handshakeTooLarge: return nil
        default: return 1002
        }
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: WebSocketCodecError, rhs: WebSocketCodecError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// A readable summary.
    public var description: String { "WebSocketCodecError.\(self.code): \(self.message)" }

    /// The kinds of ``WebSocketCodecError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// RSV1, RSV2 or RSV3 is set, and no extension was negotiated (§5.2).
        public static let reservedBitsSet = Code("reservedBitsSet")
        /// An opcode RFC 6455 reserves (3–7, 0xB–0xF).
        public static let reservedOpcode = Code("reservedOpcode")
        /// A client frame without a mask, or a server frame with one (§5.1).
        public static let maskingViolation = Code("maskingViolation")
        /// A payload length not in the minimal encoding, or a 64-bit length with its top bit set (§5.2).
        public static let malformedLength = Code("malformedLength")
        /// A control frame longer than 125 bytes or fragmented (§5.5).
        public static let invalidControlFrame = Code("invalidControlFrame")
        /// A continuation frame with no message started, or a new data frame while one is unfinished (§5.4).
        public static let unexpectedContinuation = Code("unexpectedContinuation")
        /// A frame larger than the configured maximum.
        public static let frameTooLarge = Code("frameTooLarge")
        /// A message (all its fragments) larger than the configured maximum.
        public static let messageTooLarge = Code("messageTooLarge")
        /// Text, or a close reason, that is not valid UTF-8 (§8.1).
        public static let invalidUTF8 = Code("invalidUTF8")
        /// A Close frame with a one-byte body or a status code that may not be sent (§7.4).
        public static let invalidCloseFrame = Code("invalidCloseFrame")
        /// An HTTP upgrade request or response that is not what RFC 6455 §4 requires.
        public static let malformedHandshake = Code("malformedHandshake")
        /// The server answered the upgrade with something other than 101 and the matching accept key.
        public static let handshakeRefused = Code("handshakeRefused")
        /// The upgrade request or response headers exceed the configured size.
        public static let handshakeTooLarge = Code("handshakeTooLarge")
    }
}
