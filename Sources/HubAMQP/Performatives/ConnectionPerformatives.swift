/// `open` (0x10): the first frame on a connection.
public struct AMQPOpen: Sendable, Equatable {
    public static let descriptorCode: UInt64 = 0x10
    public var containerId: String
    public var hostname: String?
    /// Default 4294967295.
    public var maxFrameSize: UInt32?
    /// Default 65535.
    public var channelMax: UInt16?
    /// Milliseconds.
    public var idleTimeOut: UInt32?
    public var offeredCapabilities: [String]?
    public var desiredCapabilities: [String]?
    public var properties: [AMQPMapEntry]?

    public init(containerId: String, hostname: String? = nil, maxFrameSize: UInt32? = nil, channelMax: UInt16? = nil,
                idleTimeOut: UInt32? = nil, offeredCapabilities: [String]? = nil, desiredCapabilities: [String]? = nil,
                properties: [AMQPMapEntry]? = nil) {
        self.containerId = containerId
        self.hostname = hostname
        self.maxFrameSize = maxFrameSize
        self.channelMax = channelMax
        self.idleTimeOut = idleTimeOut
        self.offeredCapabilities = offeredCapabilities
        self.desiredCapabilities = desiredCapabilities
        self.properties = properties
    }

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

    public var value: AMQPValue {
        AMQPFields.encode(code: Self.descriptorCode, [
            .string(self.containerId), self.hostname.map { .string($0) }, self.maxFrameSize.map { .uint($0) },
            self.channelMax.map { .ushort($0) }, self.idleTimeOut.map { .uint($0) }, nil, nil,
            self.offeredCapabilities.symbolArray, self.desiredCapabilities.symbolArray, self.properties.map { .map($0) },
        ])
    }
}

/// `begin` (0x11): starts a session on a channel.
public struct AMQPBegin: Sendable, Equatable {
    public static let descriptorCode: UInt64 = 0x11
    public var remoteChannel: UInt16?
    public var nextOutgoingId: UInt32
    public var incomingWindow: UInt32
    public var outgoingWindow: UInt32
    public var handleMax: UInt32?
    public var properties: [AMQPMapEntry]?

    public init(remoteChannel: UInt16? = nil, nextOutgoingId: UInt32, incomingWindow: UInt32, outgoingWindow: UInt32,
                handleMax: UInt32? = nil, properties: [AMQPMapEntry]? = nil) {
        self.remoteChannel = remoteChannel
        self.nextOutgoingId = nextOutgoingId
        self.incomingWindow = incomingWindow
        self.outgoingWindow = outgoingWindow
        self.handleMax = handleMax
        self.properties = properties
    }

    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:begin:list", typeName: "begin")
        self.remoteChannel = try f.ushort(0, "remote-channel")
        guard let next = try f.uint(1, "next-outgoing-id"), let incoming = try f.uint(2, "incoming-window"),
              let outgoing = try f.uint(3, "outgoing-window") else {
            throw AMQPCodecError(.invalidField, "begin lacks a mandatory window field")
        }
        self.nextOutgoingId = next
        self.incomingWindow = incoming
        self.outgoingWindow = outgoing
        self.handleMax = try f.uint(4, "handle-max")
        self.properties = try f.map(7, "properties")
    }

    public var value: AMQPValue {
        AMQPFields.encode(code: Self.descriptorCode, [
            self.remoteChannel.map { .ushort($0) }, .uint(self.nextOutgoingId), .uint(self.incomingWindow),
            .uint(self.outgoingWindow), self.handleMax.map { .uint($0) }, nil, nil, self.properties.map { .map($0) },
        ])
    }
}

/// `end` (0x17) and `close` (0x18): the end of a session or connection, with an optional error.
public struct AMQPEndOrClose: Sendable, Equatable {
    public static let endCode: UInt64 = 0x17
    public static let closeCode: UInt64 = 0x18
    public var error: AMQPError?

    public init(error: AMQPError? = nil) { self.error = error }

    public init(_ value: AMQPValue, close: Bool) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: close ? Self.closeCode : Self.endCode,
                               symbol: close ? "amqp:close:list" : "amqp:end:list", typeName: close ? "close" : "end")
        self.error = try f.optional(0).map { value throws(AMQPCodecError) in try AMQPError(value) }
    }

    public func value(close: Bool) -> AMQPValue {
        AMQPFields.encode(code: close ? Self.closeCode : Self.endCode, [self.error?.value])
    }
}
