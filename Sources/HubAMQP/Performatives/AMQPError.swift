/// An AMQP `error` (0x1d): a condition symbol such as `amqp:unauthorized-access`, a description and info.
public struct AMQPError: Sendable, Equatable, Error, CustomStringConvertible {
    public static let descriptorCode: UInt64 = 0x1D

    public var condition: String
    public var errorDescription: String?
    public var info: [AMQPMapEntry]?

    public init(condition: String, description: String? = nil, info: [AMQPMapEntry]? = nil) {
        self.condition = condition
        self.errorDescription = description
        self.info = info
    }

    public init(_ value: AMQPValue) throws(AMQPCodecError) {
        let fields = try AMQPFields(value, code: Self.descriptorCode, symbol: "amqp:error:list", typeName: "error")
        guard let condition = try fields.symbol(0, "condition") else {
            throw AMQPCodecError(.invalidField, "error lacks its mandatory field 'condition'")
        }
        self.condition = condition
        self.errorDescription = try fields.string(1, "description")
        self.info = try fields.map(2, "info")
    }

    public var value: AMQPValue {
        AMQPFields.encode(code: Self.descriptorCode, [.symbol(self.condition), self.errorDescription.map { .string($0) }, self.info.map { .map($0) }])
    }

    public var description: String { "\(self.condition)" + (self.errorDescription.map { ": \($0)" } ?? "") }
}
