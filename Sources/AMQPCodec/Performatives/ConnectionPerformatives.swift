/// `open` (0x10): the first frame on a connection.
public struct AMQPOpen: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x10
    /// The sender's container id.
    public var containerId: String
    /// The host name the client connects to (virtual hosting).
    public var hostname: String?
    /// Default 4294967295.
    public var maxFrameSize: UInt32?
    /// Default 65535.
    public var channelMax: UInt16?
    /// Milliseconds.
    public var idleTimeOut: UInt32?
    /// Extension capabilities the sender supports.
    public var offeredCapabilities: [String]?
    /// Extension capabilities the sender can use if offered.
    public var desiredCapabilities: [String]?
    /// Connection or session properties.
    public var properties: [AMQPMapEntry]?

    /// A value with these fields.
    public init(
        containerId: String,
        hostname: String? = nil,
        maxFrameSize: UInt32? = nil,
        channelMax: UInt16? = nil,
        idleTimeOut: UInt32? = nil,
        offeredCapabilities: [String]? = nil,
        desiredCapabilities: [String]? = nil,
        properties: [AMQPMapEntry]? = nil
    ) {
        self.containerId = containerId
        self.hostname = hostname
        self.maxFrameSize = maxFrameSize
        self.channelMax = channelMax
        self.idleTimeOut = idleTimeOut
        self.offeredCapabilities = offeredCapabilities
        self.desiredCapabilities = desiredCapabilities
        self.properties = properties
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:open:list", typeName: "open")
        guard let containerId = try f.string(0, "container-id") else {
            throw AMQPCodecError(.invalidField, "open lacks its mandatory field 'container-id'")
        }
        self.containerId = containerId
        self.hostname = try f.string(1, "hostname")
        self.maxFrameSize = try f.uint(2, "max-frame-size")
        self.channelMax = try f.ushort(3, "channel-max")
        self.idleTimeOut = try f.uint(4, "idle-time-out")
        self.offeredCapabilities = try f.symbols(7, "offered-capabilities")
        self.desiredCapabilities = try f.symbols(8, "desired-capabilities")
        self.properties = try f.map(9, "properties")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                .string(self.containerId), self.hostname.map { .string($0) }, self.maxFrameSize.map { .uint($0) },
                self.channelMax.map { .ushort($0) }, self.idleTimeOut.map { .uint($0) }, nil, nil,
                self.offeredCapabilities.symbolArray, self.desiredCapabilities.symbolArray,
                self.properties.map { .map($0) },
            ]
        )
    }
}

/// `begin` (0x11): starts a session on a channel.
public struct AMQPBegin: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x11
    /// The peer's channel this begin answers (nil when initiating).
    public var remoteChannel: UInt16?
    /// The transfer id of the sender's next transfer.
    public var nextOutgoingId: UInt32
    /// How many transfers the sender accepts.
    public var incomingWindow: UInt32
    /// How many transfers the sender may send.
    public var outgoingWindow: UInt32
    /// The largest link handle the sender accepts.
    public var handleMax: UInt32?
    /// Connection or session properties.
    public var properties: [AMQPMapEntry]?

    /// A value with these fields.
    public init(
        remoteChannel: UInt16? = nil,
        nextOutgoingId: UInt32,
        incomingWindow: UInt32,
        outgoingWindow: UInt32,
        handleMax: UInt32? = nil,
        properties: [AMQPMapEntry]? = nil
    ) {
        self.remoteChannel = remoteChannel
        self.nextOutgoingId = nextOutgoingId
        self.incomingWindow = incomingWindow
        self.outgoingWindow = outgoingWindow
        self.handleMax = handleMax
        self.properties = properties
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:begin:list", typeName: "begin")
        self.remoteChannel = try f.ushort(0, "remote-channel")
        guard let next = try f.uint(1, "next-outgoing-id"), let incoming = try f.uint(2, "incoming-window"),
            let outgoing = try f.uint(3, "outgoing-window")
        else {
            throw AMQPCodecError(.invalidField, "begin lacks a mandatory window field")
        }
        self.nextOutgoingId = next
        self.incomingWindow = incoming
        self.outgoingWindow = outgoing
        self.handleMax = try f.uint(4, "handle-max")
        self.properties = try f.map(7, "properties")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [
                self.remoteChannel.map { .ushort($0) }, .uint(self.nextOutgoingId), .uint(self.incomingWindow),
                .uint(self.outgoingWindow), self.handleMax.map { .uint($0) }, nil, nil,
                self.properties.map { .map($0) },
            ]
        )
    }
}

/// `end` (0x17) and `close` (0x18): the end of a session or connection, with an optional error.
public struct AMQPEndOrClose: Sendable, Equatable {
    /// The descriptor code of `end`.
    public static let endCode: UInt64 = 0x17
    /// The descriptor code of `close`.
    public static let closeCode: UInt64 = 0x18
    /// Why the session or connection ends, if it is an error.
    public var error: AMQPError?

    /// A value with these fields.
    public init(error: AMQPError? = nil) { self.error = error }

    /// Decodes an `end` or (when `close` is true) `close` composite.
    public init(_ value: AMQPValue, close: Bool) throws(AMQPCodecError) {
        let f = try AMQPFields(
            value,
            code: close ? Self.closeCode : Self.endCode,
            symbol: close ? "amqp:close:list" : "amqp:end:list",
            typeName: close ? "close" : "end"
        )
        self.error = try f.optional(0).map { value throws(AMQPCodecError) in try AMQPError(value) }
    }

    /// The `end` or `close` composite it encodes to.
    public func value(close: Bool) -> AMQPValue {
        AMQPFields.encode(code: close ? Self.closeCode : Self.endCode, [self.error?.value])
    }
}
