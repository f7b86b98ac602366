/// Reads and writes the field list of an AMQP composite type (a described list): omitted trailing fields read as
/// absent, `null` reads as absent, a missing mandatory field throws ``AMQPCodecError/Code/invalidField``.
struct AMQPFields {
    private let values: [AMQPValue]
    private let typeName: String

    /// Opens `value` as the composite `typeName` with descriptor `code` / `symbol`.
    init(_ value: AMQPValue, code: UInt64, symbol: String, typeName: String) throws(AMQPCodecError) {
        guard case .described(let descriptor, let body) = value else {
            throw AMQPCodecError(.invalidField, "\(typeName) must be a described list")
        }
        guard descriptor.unsignedInteger == code || descriptor == .symbol(symbol) else {
            throw AMQPCodecError(
                .unexpectedDescriptor,
                "expected \(typeName) (0x\(String(code, radix: 16))), got \(descriptor)"
            )
        }
        guard case .list(let values) = body else {
            throw AMQPCodecError(.invalidField, "\(typeName)'s body is not a list")
        }
        self.values = values
        self.typeName = typeName
    }

    /// The fields from `index` on, as sent (nulls included).
    func fields(from index: Int) -> [AMQPValue] { index < self.values.count ? Array(self.values[index...]) : [] }

    /// Field `index`, or nil when omitted or null.
    func optional(_ index: Int) -> AMQPValue? {
        guard index < self.values.count, self.values[index] != .null else { return nil }
        return self.values[index]
    }

    func mandatory(_ index: Int, _ name: String) throws(AMQPCodecError) -> AMQPValue {
        guard let value = self.optional(index) else {
            throw AMQPCodecError(.invalidField, "\(self.typeName) lacks its mandatory field '\(name)'")
        }
        return value
    }

    func string(_ index: Int, _ name: String) throws(AMQPCodecError) -> String? {
        guard let value = self.optional(index) else { return nil }
        guard case .string(let text) = value else { throw self.wrongType(name, "string") }
        return text
    }

    func symbol(_ index: Int, _ name: String) throws(AMQPCodecError) -> String? {
        guard let value = self.optional(index) else { return nil }
        guard case .symbol(let text) = value else { throw self.wrongType(name, "symbol") }
        return text
    }

    func uint(_ index: Int, _ name: String) throws(AMQPCodecError) -> UInt32? {
        guard let value = self.optional(index) else { return nil }
        guard case .uint(let number) = value else { throw self.wrongType(name, "uint") }
        return number
    }

    func ushort(_ index: Int, _ name: String) throws(AMQPCodecError) -> UInt16? {
        guard let value = self.optional(index) else { return nil }
        guard case .ushort(let number) = value else { throw self.wrongType(name, "ushort") }
        return number
    }

    func ubyte(_ index: Int, _ name: String) throws(AMQPCodecError) -> UInt8? {
        guard let value = self.optional(index) else { return nil }
        guard case .ubyte(let number) = value else { throw self.wrongType(name, "ubyte") }
        return number
    }

    func ulong(_ index: Int, _ name: String) throws(AMQPCodecError) -> UInt64? {
        guard let value = self.optional(index) else { return nil }
        guard case .ulong(let number) = value else { throw self.wrongType(name, "ulong") }
        return number
    }

    func boolean(_ index: Int, _ name: String) throws(AMQPCodecError) -> Bool? {
        guard let value = self.optional(index) else { return nil }
        guard case .boolean(let flag) = value else { throw self.wrongType(name, "boolean") }
        return flag
    }

    func binary(_ index: Int, _ name: String) throws(AMQPCodecError) -> [UInt8]? {
        guard let value = self.optional(index) else { return nil }
        guard case .binary(let bytes) = value else { throw self.wrongType(name, "binary") }
        return bytes
    }

    /// A symbol or an array of symbols (the spec's `multiple="true"`).
    func symbols(_ index: Int, _ name: String) throws(AMQPCodecError) -> [String]? {
        guard let value = self.optional(index) else { return nil }
        switch value {
        case .symbol(let text): return [text]
        case .array(let elements):
            var result: [String] = []
            for element in elements {
                guard case .symbol(let text) = element else { throw self.wrongType(name, "symbol array") }
                result.append(text)
            }
            return result
        default: throw self.wrongType(name, "symbol array")
        }
    }

    func map(_ index: Int, _ name: String) throws(AMQPCodecError) -> [AMQPMapEntry]? {
        guard let value = self.optional(index) else { return nil }
        guard case .map(let entries) = value else { throw self.wrongType(name, "map") }
        return entries
    }

    private func wrongType(_ name: String, _ expected: String) -> AMQPCodecError {
        AMQPCodecError(.invalidField, "\(self.typeName).\(name) is not a \(expected)")
    }

    /// The described list for `fields`, trailing absent fields omitted.
    static func encode(code: UInt64, _ fields: [AMQPValue?]) -> AMQPValue {
        var values = fields.map { $0 ?? .null }
        while values.last == .null { values.removeLast() }
        return .described(descriptor: .ulong(code), value: .list(values))
    }
}

extension Optional where Wrapped == [String] {
    /// Symbols as a field value: an array of symbols, or absent.
    var symbolArray: AMQPValue? { self.map { .array($0.map { .symbol($0) }) } }
}
