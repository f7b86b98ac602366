/// Device twin requests over AMQP (`../shared/reference/azure-iot-protocol.md` §4.6), as IoT Hub and the Azure C and
/// .NET SDKs exchange them on the `/devices/{id}/twin` links: the request names its `operation` and `resource` in
/// message annotations and its `correlation-id` in the properties; the answer echoes the correlation id and carries
/// `status` and `version` annotations. A message on the receiver link without a correlation id is a desired-property
/// patch the hub pushes.
package enum AMQPTwinMessage {
    enum Operation: String, Sendable {
        case get = "GET"
        case patch = "PATCH"
        case put = "PUT"
        case delete = "DELETE"
    }

    /// The resource of a reported-properties PATCH.
    static let reportedProperties = "/properties/reported"
    /// The resource that PUT subscribes to desired-property patches and DELETE unsubscribes.
    static let desiredNotifications = "/notifications/twin/properties/desired"

    /// A request; an empty body goes as a single space, as the Azure SDKs send it.
    static func request(
        _ operation: Operation,
        resource: String?,
        body: [UInt8],
        correlationId: String
    ) -> AMQPMessage {
        var message = AMQPMessage(data: body.isEmpty ? [0x20] : body)
        message.correlationId = .string(correlationId)
        message.messageAnnotations = [AMQPMapEntry(.symbol("operation"), .string(operation.rawValue))]
        if let resource { message.messageAnnotations.append(AMQPMapEntry(.symbol("resource"), .string(resource))) }
        return message
    }

    /// What arrived on the twin receiver link.
    struct Incoming: Sendable {
        /// The request answered; `nil` for a pushed desired-property patch.
        var correlationId: String?
        var status: Int?
        var version: Int?
        var body: [UInt8]
    }

    static func incoming(_ message: AMQPMessage) -> Incoming {
        var incoming = Incoming(correlationId: message.correlationId.flatMap(Self.text), body: message.data ?? [])
        if message.data == nil, case .binary(let bytes)? = message.value { incoming.body = bytes }
        for entry in message.messageAnnotations {
            switch entry.key.text {
            case "status"?: incoming.status = Self.integer(entry.value)
            case "version"?: incoming.version = Self.integer(entry.value)
            default: break
            }
        }
        // A body of one space stands for none.
        if incoming.body == [0x20] { incoming.body = [] }
        return incoming
    }

    /// A correlation id as text: strings as they are, numbers in decimal, UUIDs in their usual form.
    static func text(_ value: AMQPValue) -> String? {
        switch value {
        case .string(let text), .symbol(let text): return text
        case .uuid(let bytes) where bytes.count == 16:
            let hex = bytes.map { byte in
                let digits = Array("0123456789abcdef")
                return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
            }
            return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(
                separator: "-"
            )
        case .binary(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return value.unsignedInteger.map { String($0) } ?? Self.integer(value).map { String($0) }
        }
    }

    /// Any AMQP integer that fits an `Int` (the emulator reads IoT Hub's numbers with it too).
    package static func integer(_ value: AMQPValue) -> Int? {
        switch value {
        case .byte(let n): return Int(n)
        case .short(let n): return Int(n)
        case .int(let n): return Int(n)
        case .long(let n): return Int(n)
        default: return value.unsignedInteger.flatMap { Int(exactly: $0) }
        }
    }
}

/// Direct methods over AMQP (`../shared/reference/azure-iot-protocol.md` §4.7): a request on the
/// `/devices/{id}/methods/devicebound` receiver names the method in the application property `IoThub-methodname`
/// and itself in `correlation-id`; the answer goes on the sender with the same correlation id (as the same AMQP
/// value) and the status in `IoThub-status`.
enum AMQPMethodMessage {
    struct Request: Sendable {
        var name: String
        var correlationId: AMQPValue
        var payload: [UInt8]
    }

    /// Reads a request; `nil` without a method name or correlation id.
    static func request(_ message: AMQPMessage) -> Request? {
        guard let correlationId = message.correlationId,
            let name = message.applicationProperties.first(where: { $0.0 == "IoThub-methodname" })?.1.text
        else { return nil }
        var payload = message.data ?? []
        if message.data == nil, case .binary(let bytes)? = message.value { payload = bytes }
        return Request(name: name, correlationId: correlationId, payload: payload)
    }

    static func response(status: Int, payload: [UInt8], correlationId: AMQPValue) -> AMQPMessage {
        var message = AMQPMessage(data: payload)
        message.correlationId = correlationId
        message.applicationProperties = [("IoThub-status", .int(Int32(clamping: status)))]
        return message
    }
}
