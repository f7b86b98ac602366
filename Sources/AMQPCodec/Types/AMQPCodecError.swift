/// Malformed AMQP 1.0 bytes, or a value that cannot be encoded. Compare on ``code``; ``offset`` is where decoding
/// stopped, when known.
public struct AMQPCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var code: Code
    /// Details for a human.
    public var message: String
    /// The byte offset where decoding stopped.
    public var offset: Int?

    /// Creates an error.
    public init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: AMQPCodecError, rhs: AMQPCodecError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// A readable summary that never contains secrets.
    public var description: String {
        "AMQPCodecError.\(self.code): \(self.message)" + (self.offset.map { " (at offset \($0))" } ?? "")
    }

    /// The kinds of ``AMQPCodecError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// The bytes end before a value does.
        public static let truncated = Code("truncated")
        /// A format code this implementation does not know.
        public static let unknownFormatCode = Code("unknownFormatCode")
        /// A size or count that cannot fit in what remains.
        public static let invalidSize = Code("invalidSize")
        /// Values nest deeper than the limit.
        public static let nestingTooDeep = Code("nestingTooDeep")
        /// Bytes remain after the value.
        public static let trailingBytes = Code("trailingBytes")
        /// A string is not UTF-8, or a symbol is not ASCII.
        public static let invalidText = Code("invalidText")
        /// A boolean byte is neither 0 nor 1, or a char is not a Unicode scalar.
        public static let invalidValue = Code("invalidValue")
        /// Array elements do not share one type.
        public static let heterogeneousArray = Code("heterogeneousArray")
        /// A frame header is invalid (SIZE < 8, DOFF < 2, SIZE above the limit, unknown type).
        public static let invalidFrameHeader = Code("invalidFrameHeader")
        /// The protocol header is not `AMQP 0 1 0 0` or `AMQP 3 1 0 0`.
        public static let invalidProtocolHeader = Code("invalidProtocolHeader")
        /// A composite lacks a mandatory field or has a field of the wrong type.
        public static let invalidField = Code("invalidField")
        /// A described value carries another descriptor than expected.
        public static let unexpectedDescriptor = Code("unexpectedDescriptor")
    }
}
