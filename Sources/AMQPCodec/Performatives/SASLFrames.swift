/// `sasl-mechanisms` (0x40): what the server offers.
public struct SASLMechanisms: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x40
    /// The mechanisms offered, in the server's order.
    public var mechanisms: [String]

    /// A value with these fields.
    public init(mechanisms: [String]) { self.mechanisms = mechanisms }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(
            value,
            code: Self.descriptorCode,
            symbol: "amqp:sasl-mechanisms:list",
            typeName: "sasl-mechanisms"
        )
        guard let mechanisms = try f.symbols(0, "sasl-server-mechanisms") else {
            throw AMQPCodecError(.invalidField, "sasl-mechanisms lacks its mandatory field 'sasl-server-mechanisms'")
        }
        self.mechanisms = mechanisms
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(code: Self.descriptorCode, [.array(self.mechanisms.map { .symbol($0) })])
    }
}

/// `sasl-init` (0x41): the mechanism chosen and its initial response (for PLAIN: `NUL authcid NUL password`).
/// `description` never shows the initial response.
public struct SASLInit: Sendable, Equatable, CustomStringConvertible {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x41
    /// The chosen mechanism, e.g. `PLAIN`.
    public var mechanism: String
    /// The mechanism's first message (PLAIN: `NUL authcid NUL password`); never printed.
    public var initialResponse: [UInt8]?
    /// The host the client wants to reach.
    public var hostname: String?

    /// A value with these fields.
    public init(mechanism: String, initialResponse: [UInt8]? = nil, hostname: String? = nil) {
        self.mechanism = mechanism
        self.initialResponse = initialResponse
        self.hostname = hostname
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:sasl-init:list", typeName: "sasl-init")
        guard let mechanism = try f.symbol(0, "mechanism") else {
            throw AMQPCodecError(.invalidField, "sasl-init lacks its mandatory field 'mechanism'")
        }
        self.mechanism = mechanism
        self.initialResponse = try f.binary(1, "initial-response")
        self.hostname = try f.string(2, "hostname")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [.symbol(self.mechanism), self.initialResponse.map { .binary($0) }, self.hostname.map { .string($0) }]
        )
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "sasl-init(\(self.mechanism), response: \(self.initialResponse == nil ? "nil" : "<redacted>"), hostname: \(self.hostname ?? "nil"))"
    }
}

/// `sasl-outcome` (0x44): the server's verdict.
public struct SASLOutcome: Sendable, Equatable {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x44

    /// A SASL outcome code; open-ended.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The value on the wire.
        public let rawValue: UInt8
        /// A value from its wire value (open-ended: unknown values are kept).
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// 0: authentication succeeded.
        public static let ok = Code(rawValue: 0)
        /// 1: the credentials were refused.
        public static let auth = Code(rawValue: 1)
        /// 2: a system error.
        public static let sys = Code(rawValue: 2)
        /// 3: a permanent system error.
        public static let sysPermanent = Code(rawValue: 3)
        /// 4: a transient system error.
        public static let sysTemporary = Code(rawValue: 4)
        /// A readable summary that never contains secrets.
        public var description: String {
            ["ok", "auth", "sys", "sys-perm", "sys-temp"].indices.contains(Int(self.rawValue))
                ? ["ok", "auth", "sys", "sys-perm", "sys-temp"][Int(self.rawValue)] : "code \(self.rawValue)"
        }
    }

    /// The outcome.
    public var code: Code
    /// Mechanism-specific data.
    public var additionalData: [UInt8]?

    /// A value with these fields.
    public init(code: Code, additionalData: [UInt8]? = nil) {
        self.code = code
        self.additionalData = additionalData
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let f = try AMQPFields(
            value,
            code: Self.descriptorCode,
            symbol: "amqp:sasl-outcome:list",
            typeName: "sasl-outcome"
        )
        guard let code = try f.ubyte(0, "code") else {
            throw AMQPCodecError(.invalidField, "sasl-outcome lacks its mandatory field 'code'")
        }
        self.code = Code(rawValue: code)
        self.additionalData = try f.binary(1, "additional-data")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [.ubyte(self.code.rawValue), self.additionalData.map { .binary($0) }]
        )
    }
}
