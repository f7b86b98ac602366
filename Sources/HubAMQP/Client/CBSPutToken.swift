/// A claims-based-security `put-token` exchange on `$cbs` (`../shared/reference/azure-iot-protocol.md` §4.2): the
/// request message carries the token as an AMQP value and `operation`, `type` and `name` (the audience) as
/// application properties; the answer's `correlation-id` names the request and `status-code` says how it went.
enum CBSPutToken {
    /// The request for `token` (the full `SharedAccessSignature …` string) to `audience`, identified by `requestId`.
    static func request(token: String, audience: String, type: String, requestId: UInt64) -> AMQPMessage {
        var message = AMQPMessage(value: .string(token))
        message.messageId = .ulong(requestId)
        message.replyTo = "cbs"
        message.applicationProperties = [
            ("operation", .string("put-token")),
            ("type", .string(type)),
            ("name", .string(audience)),
        ]
        return message
    }

    /// The answer: which request it answers, the status code and its description.
    struct Response {
        var requestId: UInt64
        var status: Int
        var statusDescription: String
    }

    /// Reads an answer; `nil` if it names no request or has no status code.
    static func response(_ message: AMQPMessage) -> Response? {
        guard let requestId = message.correlationId?.unsignedInteger else { return nil }
        var status: Int?
        var description = ""
        for (key, value) in message.applicationProperties {
            switch key {
            case "status-code":
                switch value {
                case .int(let code): status = Int(code)
                case .long(let code): status = Int(code)
                default: status = value.unsignedInteger.map { Int($0) }
                }
            case "status-description":
                description = value.text ?? ""
            default:
                break
            }
        }
        guard let status else { return nil }
        return Response(requestId: requestId, status: status, statusDescription: description)
    }
}
