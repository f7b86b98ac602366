/// Any AMQP 1.0 value (OASIS AMQP 1.0 part 1, §1.6), as decoded from or encoded to the wire.
public indirect enum AMQPValue: Hashable, Sendable {
    /// `null`.
    case null
    /// `boolean` (`0x56`, or the `true`/`false` constructors).
    case boolean(Bool)
    /// `ubyte`.
    case ubyte(UInt8)
    /// `ushort`.
    case ushort(UInt16)
    /// `uint` (`uint0` and `smalluint` forms when small).
    case uint(UInt32)
    /// `ulong` (`ulong0` and `smallulong` forms when small).
    case ulong(UInt64)
    /// `byte`.
    case byte(Int8)
    /// `short`.
    case short(Int16)
    /// `int` (`smallint` form when small).
    case int(Int32)
    /// `long` (`smalllong` form when small).
    case long(Int64)
    /// `float` (IEEE 754 binary32).
    case float(Float)
    /// `double` (IEEE 754 binary64).
    case double(Double)
    /// IEEE 754 decimal32, carried as its 4 raw bytes.
    case decimal32(UInt32)
    /// IEEE 754 decimal64, carried as its 8 raw bytes.
    case decimal64(UInt64)
    /// IEEE 754 decimal128, carried as its 16 raw bytes.
    case decimal128([UInt8])
    /// `char` (a UTF-32 code point).
    case char(Unicode.Scalar)
    /// Milliseconds since 1970-01-01T00:00:00Z.
    case timestamp(Int64)
    /// 16 bytes.
    case uuid([UInt8])
    /// `binary` (`vbin8`/`vbin32`).
    case binary([UInt8])
    /// `string` (UTF-8, `str8`/`str32`).
    case string(String)
    /// ASCII.
    case symbol(String)
    /// `list` (`list0`, `list8`, `list32`).
    case list([AMQPValue])
    /// `map` (`map8`, `map32`).
    case map([AMQPMapEntry])
    /// Elements of one type.
    case array([AMQPValue])
    /// A described type: a descriptor (ulong code or symbol) and its value.
    case described(descriptor: AMQPValue, value: AMQPValue)
}

/// One key/value pair of an AMQP map, in wire order.
public struct AMQPMapEntry: Hashable, Sendable {
    /// The key.
    public var key: AMQPValue
    /// The value.
    public var value: AMQPValue
    /// A key-value pair.
    public init(_ key: AMQPValue, _ value: AMQPValue) {
        self.key = key
        self.value = value
    }
}

extension AMQPValue {
    /// The value of `key` in a map, or nil.
    public subscript(key: AMQPValue) -> AMQPValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The string of a `.string` or `.symbol`.
    public var text: String? {
        switch self {
        case .string(let value), .symbol(let value): return value
        default: return nil
        }
    }

    /// Any unsigned or non-negative signed integer as UInt64.
    public var unsignedInteger: UInt64? {
        switch self {
        case .ubyte(let value): return UInt64(value)
        case .ushort(let value): return UInt64(value)
        case .uint(let value): return UInt64(value)
        case .ulong(let value): return value
        case .byte(let value): return value >= 0 ? UInt64(value) : nil
        case .short(let value): return value >= 0 ? UInt64(value) : nil
        case .int(let value): return value >= 0 ? UInt64(value) : nil
        case .long(let value): return value >= 0 ? UInt64(value) : nil
        default: return nil
        }
    }
}
