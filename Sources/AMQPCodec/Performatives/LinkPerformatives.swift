/// A link's `source` (0x28) or `target` (0x29) terminus. Only the address is typed (it is all IoT Hub uses); the other
/// fields (durable, expiry-policy, timeout, dynamic, …) are kept as received, so a decoded terminus encodes back to
/// the same bytes.
public struct AMQPTerminus: Sendable, Equatable {
    /// The descriptor code of `source`.
    public static let sourceCode: UInt64 = 0x28
    /// The descriptor code of `target`.
    public static let targetCode: UInt64 = 0x29
    /// The node address (IoT Hub: e.g. `/devices/{id}/messages/events`).
    public var address: String?

    /// The fields after the address, as received (empty for a terminus made here).
    public var otherFields: [AMQPValue]

    /// A terminus with only an address.
    public init(address: String?, otherFields: [AMQPValue] = []) {
        self.address = address
        self.otherFields = otherFields
    }

    /// Decodes a `source` (when `source` is true) or `target` composite.
    public init(_ value: AMQPValue, source: Bool) throws(AMQPCodecError) {
        let f = try AMQPFields(
            value,
            code: source ? Self.sourceCode : Self.targetCode,
            symbol: source ? "amqp:source:list" : "amqp:target:list",
            typeName: source ? "source" : "target"
        )
        self.address = try f.optional(0).map { value throws(AMQPCodecError) -> String in
            guard let text = value.text else {
                throw AMQPCodecError(.invalidField, "the terminus address is not a string")
            }
            return text
        }
        self.otherFields = f.fields(from: 1)
    }

    /// The `source` or `target` composite it encodes to.
    public func value(source: Bool) -> AMQPValue {
        let code = source ? Self.sourceCode : Self.targetCode
        let address: AMQPValue? = self.address.map { .string($0) }
        guard !self.otherFields.isEmpty else { return AMQPFields.encode(code: code, [address]) }
        return .described(descriptor: .ulong(code), value: .list([address ?? .null] + self.otherFields))
    }
}

/// `attach` (0x12): opens a link.
public struct AMQPAttach: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x12
    /// The link name, unique per container pair.
    public var name: String
    /// The link handle (the sender's local number for the link).
    public var handle: UInt32
    /// false: we send (sender); true: we receive (receiver).
    public var isReceiver: Bool
    /// 0 unsettled, 1 settled, 2 mixed (default).
    public var senderSettleMode: UInt8?
    /// 0 first (default), 1 second.
    public var receiverSettleMode: UInt8?
    /// Where messages come from.
    public var source: AMQPTerminus?
    /// Where messages go.
    public var target: AMQPTerminus?
    /// The sender's first delivery count (senders only).
    public var initialDeliveryCount: UInt32?
    /// The largest message accepted (nil: no limit).
    public var maxMessageSize: UInt64?
    /// Link properties (IoT Hub: `com.microsoft:client-version`, `com.microsoft:api-version`).
    public var properties: [AMQPMapEntry]?

    /// A value with these fields.
    public init(
        name: String,
        handle: UInt32,
        isReceiver: Bool,
        senderSettleMode: UInt8? = nil,
        receiverSettleMode: UInt8? = nil,
        source: AMQPTerminus? = nil,
        target: AMQPTerminus? = nil,
        initialDeliveryCount: UInt32? = nil,
        maxMessageSize: UInt64? = nil,
        properties: [AMQPMapEntry]? = nil
    ) {
        self.name = name
        self.handle = handle
        self.isReceiver = isReceiver
        self.senderSettleMode = senderSettleMode
        self.receiverSettleMode = receiverSettleMode
        self.source = source
        self.target = target
        self.initialDeliveryCount = initialDeliveryCount
        self.maxMessageSize = maxMessageSize
        self.properties = properties
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:attach:list", typeName: "attach")
        guard let name = try f.string(0, "name"), let handle = try f.uint(1, "handle"),
            let role = try f.boolean(2, "role")
        else {
            throw AMQPCodecError(.invalidField, "attach lacks name, handle or role")
        }
        self.name = name
        self.handle = handle
        self.isReceiver = role
        self.senderSettleMode = try f.ubyte(3, "snd-settle-mode")
        self.receiverSettleMode = try f.ubyte(4, "rcv-settle-mode")
        self.source = try f.optional(5).map { value throws(AMQPCodecError) in try AMQPTerminus(value, source: true) }
        self.target = try f.optional(6).map { value throws(AMQPCodecError) in try AMQPTerminus(value, source: false) }
        self.initialDeliveryCount = try f.uint(9, "initial-delivery-count")
        self.maxMessageSize = try f.ulong(10, "max-message-size")
        self.properties = try f.map(13, "properties")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                .string(self.name), .uint(self.handle), .boolean(self.isReceiver),
                self.senderSettleMode.map { .ubyte($0) },
                self.receiverSettleMode.map { .ubyte($0) }, self.source?.value(source: true),
                self.target?.value(source: false),
                nil, nil, self.initialDeliveryCount.map { .uint($0) }, self.maxMessageSize.map { .ulong($0) }, nil, nil,
                self.properties.map { .map($0) },
            ]
        )
    }
}

/// `flow` (0x13): session windows and link credit.
public struct AMQPFlow: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x13
    /// The next transfer id the sender of this flow expects (nil before the first begin reply).
    public var nextIncomingId: UInt32?
    /// How many more transfers the sender of this flow accepts on the session.
    public var incomingWindow: UInt32
    /// The transfer id of the next transfer the sender of this flow sends.
    public var nextOutgoingId: UInt32
    /// How many more transfers the sender of this flow may send.
    public var outgoingWindow: UInt32
    /// The link handle (the sender's local number for the link).
    public var handle: UInt32?
    /// The link's delivery count (link flow only).
    public var deliveryCount: UInt32?
    /// How many more deliveries the receiver accepts (link flow only).
    public var linkCredit: UInt32?
    /// Whether the sender should use up or discard its credit.
    public var drain: Bool?

    /// A value with these fields.
    public init(
        nextIncomingId: UInt32?,
        incomingWindow: UInt32,
        nextOutgoingId: UInt32,
        outgoingWindow: UInt32,
        handle: UInt32? = nil,
        deliveryCount: UInt32? = nil,
        linkCredit: UInt32? = nil,
        drain: Bool? = nil
    ) {
        self.nextIncomingId = nextIncomingId
        self.incomingWindow = incomingWindow
        self.nextOutgoingId = nextOutgoingId
        self.outgoingWindow = outgoingWindow
        self.handle = handle
        self.deliveryCount = deliveryCount
        self.linkCredit = linkCredit
        self.drain = drain
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:flow:list", typeName: "flow")
        guard let incoming = try f.uint(1, "incoming-window"), let next = try f.uint(2, "next-outgoing-id"),
            let outgoing = try f.uint(3, "outgoing-window")
        else {
            throw AMQPCodecError(.invalidField, "flow lacks a mandatory window field")
        }
        self.nextIncomingId = try f.uint(0, "next-incoming-id")
        self.incomingWindow = incoming
        self.nextOutgoingId = next
        self.outgoingWindow = outgoing
        self.handle = try f.uint(4, "handle")
        self.deliveryCount = try f.uint(5, "delivery-count")
        self.linkCredit = try f.uint(6, "link-credit")
        self.drain = try f.boolean(8, "drain")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                self.nextIncomingId.map { .uint($0) }, .uint(self.incomingWindow), .uint(self.nextOutgoingId),
                .uint(self.outgoingWindow),
                self.handle.map { .uint($0) }, self.deliveryCount.map { .uint($0) }, self.linkCredit.map { .uint($0) },
                nil,
                self.drain.map { .boolean($0) },
            ]
        )
    }
}

/// A delivery's state or outcome (part 3, §3.4).
public enum AMQPDeliveryState: Sendable, Equatable {
    /// 0x24.
    case accepted
    /// 0x25, with an error.
    case rejected(AMQPError?)
    /// 0x26.
    case released
    /// 0x27.
    case modified(deliveryFailed: Bool?, undeliverableHere: Bool?)
    /// 0x23: how much of a message was received.
    case received(sectionNumber: UInt32, sectionOffset: UInt64)

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        guard case .described(let descriptor, _) = value,
            let code = descriptor.unsignedInteger ?? Self.code(of: descriptor)
        else {
            throw AMQPCodecError(.invalidField, "a delivery state must be described")
        }
        switch code {
        case 0x24:
            _ = try AMQPFields(value, code: 0x24, symbol: "amqp:accepted:list", typeName: "accepted")
            self = .accepted
        case 0x25:
            let f = try AMQPFields(value, code: 0x25, symbol: "amqp:rejected:list", typeName: "rejected")
            self = .rejected(try f.optional(0).map { value throws(AMQPCodecError) in try AMQPError(value) })
        case 0x26:
            _ = try AMQPFields(value, code: 0x26, symbol: "amqp:released:list", typeName: "released")
            self = .released
        case 0x27:
            let f = try AMQPFields(value, code: 0x27, symbol: "amqp:modified:list", typeName: "modified")
            self = .modified(
                deliveryFailed: try f.boolean(0, "delivery-failed"),
                undeliverableHere: try f.boolean(1, "undeliverable-here")
            )
        case 0x23:
            let f = try AMQPFields(value, code: 0x23, symbol: "amqp:received:list", typeName: "received")
            guard let number = try f.uint(0, "section-number"), let offset = try f.ulong(1, "section-offset") else {
                throw AMQPCodecError(.invalidField, "received lacks its mandatory fields")
            }
            self = .received(sectionNumber: number, sectionOffset: offset)
        default:
            throw AMQPCodecError(.unexpectedDescriptor, "0x\(String(code, radix: 16)) is not a delivery state")
        }
    }

    private static func code(of descriptor: AMQPValue) -> UInt64? {
        switch descriptor.text {
        case "amqp:accepted:list": 0x24
        case "amqp:rejected:list": 0x25
        case "amqp:released:list": 0x26
        case "amqp:modified:list": 0x27
        case "amqp:received:list": 0x23
        default: nil
        }
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        switch self {
        case .accepted: AMQPFields.encode(code: 0x24, [])
        case .rejected(let error): AMQPFields.encode(code: 0x25, [error?.value])
        case .released: AMQPFields.encode(code: 0x26, [])
        case .modified(let failed, let undeliverable):
            AMQPFields.encode(code: 0x27, [failed.map { .boolean($0) }, undeliverable.map { .boolean($0) }])
        case .received(let number, let offset): AMQPFields.encode(code: 0x23, [.uint(number), .ulong(offset)])
        }
    }
}

/// `transfer` (0x14): a message (or part of one) on a link; the payload follows the performative in the frame.
public struct AMQPTransfer: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x14
    /// The link handle (the sender's local number for the link).
    public var handle: UInt32
    /// The delivery id (first frame of a delivery).
    public var deliveryId: UInt32?
    /// The delivery tag chosen by the sender.
    public var deliveryTag: [UInt8]?
    /// The message format (0 for the standard format).
    public var messageFormat: UInt32?
    /// Whether the delivery is settled (needs no further disposition).
    public var settled: Bool?
    /// Whether more frames of the same delivery follow.
    public var more: Bool?
    /// The delivery state (outcome) carried.
    public var state: AMQPDeliveryState?

    /// A value with these fields.
    public init(
        handle: UInt32,
        deliveryId: UInt32? = nil,
        deliveryTag: [UInt8]? = nil,
        messageFormat: UInt32? = nil,
        settled: Bool? = nil,
        more: Bool? = nil,
        state: AMQPDeliveryState? = nil
    ) {
        self.handle = handle
        self.deliveryId = deliveryId
        self.deliveryTag = deliveryTag
        self.messageFormat = messageFormat
        self.settled = settled
        self.more = more
        self.state = state
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:transfer:list", typeName: "transfer")
        guard let handle = try f.uint(0, "handle") else {
            throw AMQPCodecError(.invalidField, "transfer lacks its handle")
        }
        self.handle = handle
        self.deliveryId = try f.uint(1, "delivery-id")
        self.deliveryTag = try f.binary(2, "delivery-tag")
        self.messageFormat = try f.uint(3, "message-format")
        self.settled = try f.boolean(4, "settled")
        self.more = try f.boolean(5, "more")
        self.state = try f.optional(7).map { value throws(AMQPCodecError) in try AMQPDeliveryState(value) }
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                .uint(self.handle), self.deliveryId.map { .uint($0) }, self.deliveryTag.map { .binary($0) },
                self.messageFormat.map { .uint($0) }, self.settled.map { .boolean($0) }, self.more.map { .boolean($0) },
                nil,
                self.state?.value,
            ]
        )
    }
}

/// `disposition` (0x15): settles or updates deliveries `first...last`.
public struct AMQPDisposition: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x15
    /// Whether the sender of this frame is the receiving side (the role field).
    public var isReceiver: Bool
    /// The first delivery id of the range.
    public var first: UInt32
    /// The last delivery id of the range (nil: only `first`).
    public var last: UInt32?
    /// Whether the delivery is settled (needs no further disposition).
    public var settled: Bool?
    /// The delivery state (outcome) carried.
    public var state: AMQPDeliveryState?

    /// A value with these fields.
    public init(
        isReceiver: Bool,
        first: UInt32,
        last: UInt32? = nil,
        settled: Bool? = nil,
        state: AMQPDeliveryState? = nil
    ) {
        self.isReceiver = isReceiver
        self.first = first
        self.last = last
        self.settled = settled
        self.state = state
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(
            value,
            code: Self.descriptorCode,
            symbol: "amqp:disposition:list",
            typeName: "disposition"
        )
        guard let role = try f.boolean(0, "role"), let first = try f.uint(1, "first") else {
            throw AMQPCodecError(.invalidField, "disposition lacks role or first")
        }
        self.isReceiver = role
        self.first = first
        self.last = try f.uint(2, "last")
        self.settled = try f.boolean(3, "settled")
        self.state = try f.optional(4).map { value throws(AMQPCodecError) in try AMQPDeliveryState(value) }
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                .boolean(self.isReceiver), .uint(self.first), self.last.map { .uint($0) },
                self.settled.map { .boolean($0) }, self.state?.value,
            ]
        )
    }
}

/// `detach` (0x16): closes (or suspends) a link, with an optional error.
public struct AMQPDetach: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x16
    /// The link handle (the sender's local number for the link).
    public var handle: UInt32
    /// Whether the link is closed rather than suspended.
    public var closed: Bool?
    /// Why the link ends, if it is an error.
    public var error: AMQPError?

    /// A value with these fields.
    public init(handle: UInt32, closed: Bool? = nil, error: AMQPError? = nil) {
        self.handle = handle
        self.closed = closed
        self.error = error
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:detach:list", typeName: "detach")
        guard let handle = try f.uint(0, "handle") else {
            throw AMQPCodecError(.invalidField, "detach lacks its handle")
        }
        self.handle = handle
        self.closed = try f.boolean(1, "closed")
        self.error = try f.optional(2).map { value throws(AMQPCodecError) in try AMQPError(value) }
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [.uint(self.handle), self.closed.map { .boolean($0) }, self.error?.value]
        )
    }
}
