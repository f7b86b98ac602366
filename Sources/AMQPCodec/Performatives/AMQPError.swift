/// An AMQP `error` (0x1d): a condition symbol such as `amqp:unauthorized-access`, a description and info.
public struct AMQPError: Sendable, Equatable, Error, CustomStringConvertible {
    /// The numeric descriptor code of this composite (OASIS AMQP 1.0).
    public static let descriptorCode: UInt64 = 0x1D

    /// The error condition symbol, e.g. `amqp:unauthorized-access`.
    public var condition: String
    /// A human-readable description.
    public var errorDescription: String?
    /// Extra information.
    public var info: [AMQPMapEntry]?

    /// A value with these fields.
    public init(condition: String, description: String? = nil, info: [AMQPMapEntry]? = nil) {
        self.condition = condition
        self.errorDescription = description
        self.info = info
    }

    /// Decodes it from its described list: omitted trailing fields take their defaults, a missing mandatory field or a wrong type throws ``AMQPCodecError``.
    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let fields = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:error:list", typeName: "error")
        guard let condition = try fields.symbol(0, "condition") else {
            throw AMQPCodecError(.invalidField, "error lacks its mandatory field 'condition'")
        }
        self.condition = condition
        self.errorDescription = try fields.string(1, "description")
        self.info = try fields.map(2, "info")
    }

    /// The described list it encodes to, trailing absent fields left out.
    public var value: AMQPValue {
        AMQPFields.encode(
            code: Self.descriptorCode,
            [.symbol(self.condition), self.errorDescription.map { .string($0) }, self.info.map { .map($0) }]
        )
    }

    /// A readable summary that never contains secrets.
    public var description: String { "\(self.condition)" + (self.errorDescription.map { ": \($0)" } ?? "") }
}
