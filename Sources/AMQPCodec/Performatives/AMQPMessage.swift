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
        encoder.reserveCapacity(self.estimatedSize)
        try self.encode(into: &encoder)
        return encoder.bytes
    }

    /// Appends the bytes ``encoded()`` returns to `buffer`, encoding straight into it: nothing is allocated when
    /// `buffer` has the room. On a throw, `buffer` is left as it was.
    public func encode(appendingTo buffer: inout [UInt8]) throws(AMQPCodecError) {
        if let original = self.original, original.message == self {
            buffer.append(contentsOf: original.bytes)
            return
        }
        let start = buffer.count
        var encoder = AMQPEncoder()
        encoder.exchangeBytes(with: &buffer)
        defer { encoder.exchangeBytes(with: &buffer) }
        encoder.reserveCapacity(self.estimatedSize)
        do {
            try self.encode(into: &encoder)
        } catch {
            encoder.truncate(to: start)
            throw error
        }
    }

    /// Writes the sections straight into `encoder`, field by field, without building ``AMQPValue``s for them: the
    /// same bytes as encoding the sections as values, and one allocation (the output) for a whole message.
    private func encode(into encoder: inout AMQPEncoder) throws(AMQPCodecError) {
        if !self.messageAnnotations.isEmpty {
            encoder.appendDescriptor(Section.messageAnnotations)
            let start = encoder.beginMap()
            for entry in self.messageAnnotations {
                try encoder.encode(entry.key)
                try encoder.encode(entry.value)
            }
            encoder.endMap(start, count: self.messageAnnotations.count * 2)
        }
        // The properties list ends at its last field present; absent fields before it are nulls.
        let fields = self.propertyCount
        if fields > 0 {
            encoder.appendDescriptor(Section.properties)
            let start = encoder.beginList()
            for field in 0..<fields {
                try self.encodeProperty(field, into: &encoder)
            }
            encoder.endList(start, count: fields)
        }
        if !self.applicationProperties.isEmpty {
            encoder.appendDescriptor(Section.applicationProperties)
            let start = encoder.beginMap()
            for (key, value) in self.applicationProperties {
                encoder.appendString(key)
                try encoder.encode(value)
            }
            encoder.endMap(start, count: self.applicationProperties.count * 2)
        }
        if let data = self.data {
            encoder.appendDescriptor(Section.data)
            encoder.appendBinary(data)
        } else {
            encoder.appendDescriptor(Section.value)
            try encoder.encode(self.value ?? .null)
        }
    }

    /// How many fields of the properties list are written: up to the last one present (a null id is absent).
    private var propertyCount: Int {
        if self.creationTime != nil { return 10 }
        if self.absoluteExpiryTime != nil { return 9 }
        if self.contentEncoding != nil { return 8 }
        if self.contentType != nil { return 7 }
        if self.correlationId.map({ $0 != .null }) ?? false { return 6 }
        if self.replyTo != nil { return 5 }
        if self.subject != nil { return 4 }
        if self.to != nil { return 3 }
        if self.userId != nil { return 2 }
        return self.messageId.map { $0 != .null } ?? false ? 1 : 0
    }

    /// Field `index` of the properties list, or a null when it is absent.
    private func encodeProperty(_ index: Int, into encoder: inout AMQPEncoder) throws(AMQPCodecError) {
        switch index {
        case 0: if let value = self.messageId { try encoder.encode(value) } else { encoder.appendNull() }
        case 1: if let value = self.userId { encoder.appendBinary(value) } else { encoder.appendNull() }
        case 2: if let value = self.to { encoder.appendString(value) } else { encoder.appendNull() }
        case 3: if let value = self.subject { encoder.appendString(value) } else { encoder.appendNull() }
        case 4: if let value = self.replyTo { encoder.appendString(value) } else { encoder.appendNull() }
        case 5: if let value = self.correlationId { try encoder.encode(value) } else { encoder.appendNull() }
        case 6: if let value = self.contentType { try encoder.appendSymbol(value) } else { encoder.appendNull() }
        case 7: if let value = self.contentEncoding { try encoder.appendSymbol(value) } else { encoder.appendNull() }
        case 8: if let value = self.absoluteExpiryTime { encoder.appendTimestamp(value) } else { encoder.appendNull() }
        default: if let value = self.creationTime { encoder.appendTimestamp(value) } else { encoder.appendNull() }
        }
    }

    /// About the encoded size (exact for the body and strings, generous for the rest), so that encoding allocates
    /// its output once.
    private var estimatedSize: Int {
        var size = 64 + (self.data?.count ?? 0) + (self.userId?.count ?? 0)
        size += (self.to?.utf8.count ?? 0) + (self.subject?.utf8.count ?? 0) + (self.replyTo?.utf8.count ?? 0)
        size += (self.contentType?.utf8.count ?? 0) + (self.contentEncoding?.utf8.count ?? 0)
        for (key, value) in self.applicationProperties {
            size += key.utf8.count + 5 + 9
            if case .string(let text) = value { size += text.utf8.count }
        }
        return size + self.messageAnnotations.count * 32 + 32
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
