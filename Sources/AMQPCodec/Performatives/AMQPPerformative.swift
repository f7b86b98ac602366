/// Every frame body this client sends or receives, decoded from its descriptor.
public enum AMQPPerformative: Sendable, Equatable {
    /// `open` (0x10).
    case open(AMQPOpen)
    /// `begin` (0x11).
    case begin(AMQPBegin)
    /// `attach` (0x12).
    case attach(AMQPAttach)
    /// `flow` (0x13).
    case flow(AMQPFlow)
    /// A transfer and the message bytes that follow it in the frame.
    case transfer(AMQPTransfer, payload: [UInt8])
    /// `disposition` (0x15).
    case disposition(AMQPDisposition)
    /// `detach` (0x16).
    case detach(AMQPDetach)
    /// `end` (0x17).
    case end(AMQPEndOrClose)
    /// `close` (0x18).
    case close(AMQPEndOrClose)
    /// `sasl-mechanisms` (0x40).
    case saslMechanisms(SASLMechanisms)
    /// `sasl-init` (0x41).
    case saslInit(SASLInit)
    /// `sasl-challenge` (0x42) with its data.
    case saslChallenge([UInt8])
    /// `sasl-response` (0x43) with its data.
    case saslResponse([UInt8])
    /// `sasl-outcome` (0x44).
    case saslOutcome(SASLOutcome)

    /// Decodes a frame body. Throws ``AMQPCodecError`` for malformed bytes, unknown descriptors, missing mandatory
    /// fields and trailing bytes after anything but a transfer.
    public static func decode(_ body: [UInt8]) throws(AMQPCodecError) -> AMQPPerformative {
        var decoder = AMQPDecoder(body[...])
        let value = try decoder.decodeValue()
        guard case .described(let descriptor, _) = value,
            let code = descriptor.unsignedInteger ?? descriptor.text.flatMap({ Self.symbolicCodes[$0] })
        else {
            throw AMQPCodecError(.unexpectedDescriptor, "a frame body must start with a described performative")
        }
        if code == AMQPTransfer.descriptorCode {
            return .transfer(try AMQPTransfer(value), payload: Array(body[(body.startIndex + decoder.offset)...]))
        }
        guard decoder.remaining == 0 else {
            throw AMQPCodecError(
                .trailingBytes,
                "\(decoder.remaining) bytes after the performative",
                offset: decoder.offset
            )
        }
        switch code {
        case AMQPOpen.descriptorCode: return .open(try AMQPOpen(value))
        case AMQPBegin.descriptorCode: return .begin(try AMQPBegin(value))
        case AMQPAttach.descriptorCode: return .attach(try AMQPAttach(value))
        case AMQPFlow.descriptorCode: return .flow(try AMQPFlow(value))
        case AMQPDisposition.descriptorCode: return .disposition(try AMQPDisposition(value))
        case AMQPDetach.descriptorCode: return .detach(try AMQPDetach(value))
        case AMQPEndOrClose.endCode: return .end(try AMQPEndOrClose(value, close: false))
        case AMQPEndOrClose.closeCode: return .close(try AMQPEndOrClose(value, close: true))
        case SASLMechanisms.descriptorCode: return .saslMechanisms(try SASLMechanisms(value))
        case SASLInit.descriptorCode: return .saslInit(try SASLInit(value))
        case 0x42, 0x43:
            let f = try AMQPFields(
                value,
                code: code,
                symbol: code == 0x42 ? "amqp:sasl-challenge:list" : "amqp:sasl-response:list",
                typeName: code == 0x42 ? "sasl-challenge" : "sasl-response"
            )
            guard let bytes = try f.binary(0, "data") else {
                throw AMQPCodecError(.invalidField, "a SASL challenge/response lacks its data")
            }
            return code == 0x42 ? .saslChallenge(bytes) : .saslResponse(bytes)
        case SASLOutcome.descriptorCode: return .saslOutcome(try SASLOutcome(value))
        default:
            throw AMQPCodecError(.unexpectedDescriptor, "unknown performative 0x\(String(code, radix: 16))")
        }
    }

    /// The symbolic descriptors (part 2 §2.7, part 5 §5.3) and their numeric codes.
    static let symbolicCodes: [String: UInt64] = [
        "amqp:open:list": 0x10, "amqp:begin:list": 0x11, "amqp:attach:list": 0x12, "amqp:flow:list": 0x13,
        "amqp:transfer:list": 0x14, "amqp:disposition:list": 0x15, "amqp:detach:list": 0x16, "amqp:end:list": 0x17,
        "amqp:close:list": 0x18, "amqp:sasl-mechanisms:list": 0x40, "amqp:sasl-init:list": 0x41,
        "amqp:sasl-challenge:list": 0x42, "amqp:sasl-response:list": 0x43, "amqp:sasl-outcome:list": 0x44,
    ]

    /// How many fields each connection-level performative has (part 2 §2.7).
    static let fieldCounts: [UInt64: Int] = [
        0x10: 10, 0x11: 8, 0x12: 14, 0x13: 11, 0x14: 11, 0x15: 6, 0x16: 3, 0x17: 1, 0x18: 1,
    ]

    /// The frame body with every field of the performative written, absent ones as `null`, where ``encoded()``
    /// leaves trailing absent fields out (both are valid AMQP). For peers that index a performative's fields without
    /// checking how many arrived: Azure's Python Event Hubs client (pyamqp) is one.
    public func encodedWithAllFields() throws(AMQPCodecError) -> [UInt8] {
        let value: AMQPValue
        var payload: [UInt8] = []
        switch self {
        case .open(let p): value = p.value
        case .begin(let p): value = p.value
        case .attach(let p): value = p.value
        case .flow(let p): value = p.value
        case .transfer(let p, let bytes):
            value = p.value
            payload = bytes
        case .disposition(let p): value = p.value
        case .detach(let p): value = p.value
        case .end(let p): value = p.value(close: false)
        case .close(let p): value = p.value(close: true)
        default: return try self.encoded()
        }
        guard case .described(.ulong(let code), .list(var fields)) = value, let count = Self.fieldCounts[code] else {
            return try self.encoded()
        }
        while fields.count < count { fields.append(.null) }
        return try AMQPEncoder.encode(.described(descriptor: .ulong(code), value: .list(fields))) + payload
    }

    /// The frame body: the performative, then (for a transfer) the payload.
    public func encoded() throws(AMQPCodecError) -> [UInt8] {
        switch self {
        case .open(let p): return try AMQPEncoder.encode(p.value)
        case .begin(let p): return try AMQPEncoder.encode(p.value)
        case .attach(let p): return try AMQPEncoder.encode(p.value)
        case .flow(let p): return try AMQPEncoder.encode(p.value)
        case .transfer(let p, let payload): return try AMQPEncoder.encode(p.value) + payload
        case .disposition(let p): return try AMQPEncoder.encode(p.value)
        case .detach(let p): return try AMQPEncoder.encode(p.value)
        case .end(let p): return try AMQPEncoder.encode(p.value(close: false))
        case .close(let p): return try AMQPEncoder.encode(p.value(close: true))
        case .saslMechanisms(let p): return try AMQPEncoder.encode(p.value)
        case .saslInit(let p): return try AMQPEncoder.encode(p.value)
        case .saslChallenge(let data): return try AMQPEncoder.encode(AMQPFields.encode(code: 0x42, [.binary(data)]))
        case .saslResponse(let data): return try AMQPEncoder.encode(AMQPFields.encode(code: 0x43, [.binary(data)]))
        case .saslOutcome(let p): return try AMQPEncoder.encode(p.value)
        }
    }
}
