/// An AMQP message as IoT Hub uses it: the properties section (message id, user id, to, correlation id, content
/// type and encoding, times), application properties, message annotations, and a body of one `data` section or an
/// `amqp-value`.
public struct AMQPMessage: Sendable, Equatable {
    /// The `message-id` property (`$.mid`).
    public var messageId: AMQPValue?
    /// The `user-id` property (`$.uid`).
    public var userId: [UInt8]?
    /// The `to` property.
    public var to: String?
    /// The `subject` property.
    public var subject: String?
    /// The `reply-to` property.
    public var replyTo: String?
    /// The `correlation-id` property (`$.cid`).
    public var correlationId: AMQPValue?
    /// The `content-type` property (`$.ct`, e.g. `application/json`).
    public var contentType: String?
    /// The `content-encoding` property (`$.ce`, e.g. `utf-8`).
    public var contentEncoding: String?
    /// Milliseconds since 1970.
    public var absoluteExpiryTime: Int64?
    /// Milliseconds since 1970.
    public var creationTime: Int64?
    /// `application-properties` (string keys).
    public var applicationProperties: [(String, AMQPValue)]
    /// `message-annotations` (symbol keys).
    public var messageAnnotations: [AMQPMapEntry]
    /// The body as `data` bytes, or nil when the body is an `amqp-value`.
    public var data: [UInt8]?
    /// The body as an `amqp-value`.
    public var value: AMQPValue?

    /// A message with a `data` body or an `amqp-value` body.
    public init(data: [UInt8]? = nil, value: AMQPValue? = nil) {
        self.applicationProperties = []
        self.messageAnnotations = []
        self.data = data
        self.value = value
    }

    /// Messages are equal when every section is.
    public static func == (lhs: AMQPMessage, rhs: AMQPMessage) -> Bool {
        lhs.messageId == rhs.messageId && lhs.userId == rhs.userId && lhs.to == rhs.to && lhs.subject == rhs.subject
            && lhs.replyTo == rhs.replyTo && lhs.correlationId == rhs.correlationId
            && lhs.contentType == rhs.contentType
            && lhs.contentEncoding == rhs.contentEncoding && lhs.absoluteExpiryTime == rhs.absoluteExpiryTime
            && lhs.creationTime == rhs.creationTime && lhs.messageAnnotations == rhs.messageAnnotations
            && lhs.data == rhs.data
            && lhs.value == rhs.value && lhs.applicationProperties.map(\.0) == rhs.applicationProperties.map(\.0)
            && lhs.applicationProperties.map(\.1) == rhs.applicationProperties.map(\.1)
    }

    private enum Section {
        static let messageAnnotations: UInt64 = 0x72
        static let properties: UInt64 = 0x73
        static let applicationProperties: UInt64 = 0x74
        static let data: UInt64 = 0x75
        static let value: UInt64 = 0x77
    }

    /// The bytes a decoded message arrived as, with the message as decoded: while the message is unchanged,
    /// ``encoded()`` returns exactly these bytes (keeping the sender's encodings and the sections not modelled here:
    /// header, delivery annotations, footer).
    private var original: OriginalEncoding?

    /// The message's bytes: the received bytes when it was decoded and not changed since; otherwise
    /// message-annotations, properties, application-properties, then the body.
    public func encoded() throws(AMQPCodecError) -> [UInt8] {
        if let original = self.original, original.message == self { return original.bytes }
        var encoder = AMQPEncoder()
        if !self.messageAnnotations.isEmpty {
            try encoder.encode(
                .described(descriptor: .ulong(Section.messageAnnotations), value: .map(self.messageAnnotations))
            )
        }
        let properties = AMQPFields.encode(
            code: Section.properties,
            [
                self.messageId, self.userId.map { .binary($0) }, self.to.map { .string($0) },
                self.subject.map { .string($0) },
                self.replyTo.map { .string($0) }, self.correlationId, self.contentType.map { .symbol($0) },
                self.contentEncoding.map { .symbol($0) }, self.absoluteExpiryTime.map { .timestamp($0) },
                self.creationTime.map { .timestamp($0) },
            ]
        )
        if case .described(_, .list(let fields)) = properties, !fields.isEmpty { try encoder.encode(properties) }
        if !self.applicationProperties.isEmpty {
            try encoder.encode(
                .described(
                    descriptor: .ulong(Section.applicationProperties),
                    value: .map(self.applicationProperties.map { AMQPMapEntry(.string($0.0), $0.1) })
                )
            )
        }
        if let data = self.data {
            try encoder.encode(.described(descriptor: .ulong(Section.data), value: .binary(data)))
        } else {
            try encoder.encode(.described(descriptor: .ulong(Section.value), value: self.value ?? .null))
        }
        return encoder.bytes
    }

    /// Decodes a message's sections; unknown sections (header, delivery annotations, footer) are skipped; several
    /// `data` sections are concatenated.
    public init(decoding bytes: [UInt8]) throws(AMQPCodecError) {
        self.init()
        var decoder = AMQPDecoder(bytes[...])
        while decoder.remaining > 0 {
            let section = try decoder.decodeValue()
            guard case .described(let descriptor, let body) = section, let code = descriptor.unsignedInteger else {
                throw AMQPCodecError(.invalidField, "a message section must be described")
            }
            switch code {
            case Section.messageAnnotations:
                guard case .map(let entries) = body else {
                    throw AMQPCodecError(.invalidField, "message-annotations is not a map")
                }
                self.messageAnnotations = entries
            case Section.properties:
                let f = try AMQPFields(
                    section,
                    code: Section.properties,
                    symbol: "amqp:properties:list",
                    typeName: "properties"
                )
                self.messageId = f.optional(0)
                self.userId = try f.binary(1, "user-id")
                self.to = f.optional(2)?.text
                self.subject = try f.string(3, "subject")
                self.replyTo = f.optional(4)?.text
                self.correlationId = f.optional(5)
                self.contentType = try f.symbol(6, "content-type")
                self.contentEncoding = try f.symbol(7, "content-encoding")
                if case .timestamp(let time)? = f.optional(8) { self.absoluteExpiryTime = time }
                if case .timestamp(let time)? = f.optional(9) { self.creationTime = time }
            case Section.applicationProperties:
                guard case .map(let entries) = body else {
                    throw AMQPCodecError(.invalidField, "application-properties is not a map")
                }
                var properties: [(String, AMQPValue)] = []
                for entry in entries {
                    guard case .string(let key) = entry.key else {
                        throw AMQPCodecError(.invalidField, "application-properties keys must be strings")
                    }
                    properties.append((key, entry.value))
                }
                self.applicationProperties = properties
            case Section.data:
                guard case .binary(let data) = body else {
                    throw AMQPCodecError(.invalidField, "a data section is not binary")
                }
                self.data = (self.data ?? []) + data
            case Section.value:
                self.value = body
            default:
                continue
            }
        }
        self.original = OriginalEncoding(bytes: bytes, message: self)
    }
}

/// A decoded message's bytes and the message they decoded to (a class, so that ``AMQPMessage`` can hold it).
private final class OriginalEncoding: Sendable {
    let bytes: [UInt8]
    let message: AMQPMessage

    init(bytes: [UInt8], message: AMQPMessage) {
        self.bytes = bytes
        self.message = message
    }
}
