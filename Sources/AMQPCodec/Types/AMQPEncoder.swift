/// Encodes ``AMQPValue``s, choosing the smallest encoding for each scalar, string and compound.
public struct AMQPEncoder: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty encoder.
    public init() {}

    /// The encoding of one value.
    public static func encode(_ value: AMQPValue) throws(AMQPCodecError) -> [UInt8] {
        var encoder = AMQPEncoder()
        try encoder.encode(value)
        return encoder.bytes
    }

    /// Appends `value`.
    public mutating func encode(_ value: AMQPValue) throws(AMQPCodecError) {
        typealias F = AMQPFormatCode
        switch value {
        case .null: self.bytes.append(F.null)
        case .boolean(let flag): self.bytes.append(flag ? F.booleanTrue : F.booleanFalse)
        case .ubyte(let number): self.bytes += [F.ubyte, number]
        case .ushort(let number):
            self.bytes.append(F.ushort)
            self.append(number)
        case .uint(let number):
            if number == 0 {
                self.bytes.append(F.uint0)
            } else if number <= 0xFF {
                self.bytes += [F.smallUInt, UInt8(number)]
            } else {
                self.bytes.append(F.uint)
                self.append(number)
            }
        case .ulong(let number):
            if number == 0 {
                self.bytes.append(F.ulong0)
            } else if number <= 0xFF {
                self.bytes += [F.smallULong, UInt8(number)]
            } else {
                self.bytes.append(F.ulong)
                self.append(number)
            }
        case .byte(let number): self.bytes += [F.byte, UInt8(bitPattern: number)]
        case .short(let number):
            self.bytes.append(F.short)
            self.append(UInt16(bitPattern: number))
        case .int(let number):
            if Int8(exactly: number) != nil {
                self.bytes += [F.smallInt, UInt8(bitPattern: Int8(number))]
            } else {
                self.bytes.append(F.int)
                self.append(UInt32(bitPattern: number))
            }
        case .long(let number):
            if Int8(exactly: number) != nil {
                self.bytes += [F.smallLong, UInt8(bitPattern: Int8(number))]
            } else {
                self.bytes.append(F.long)
                self.append(UInt64(bitPattern: number))
            }
        default:
            try self.encodeRest(value)
        }
    }

    private mutating func encodeRest(_ value: AMQPValue) throws(AMQPCodecError) {
        typealias F = AMQPFormatCode
        switch value {
        case .float(let number):
            self.bytes.append(F.float)
            self.append(number.bitPattern)
        case .double(let number):
            self.bytes.append(F.double)
            self.append(number.bitPattern)
        case .decimal32(let raw):
            self.bytes.append(F.decimal32)
            self.append(raw)
        case .decimal64(let raw):
            self.bytes.append(F.decimal64)
            self.append(raw)
        case .decimal128(let raw):
            guard raw.count == 16 else { throw AMQPCodecError(.invalidValue, "decimal128 needs 16 bytes") }
            self.bytes.append(F.decimal128)
            self.bytes += raw
        case .char(let scalar):
            self.bytes.append(F.char)
            self.append(scalar.value)
        case .timestamp(let milliseconds):
            self.bytes.append(F.timestamp)
            self.append(UInt64(bitPattern: milliseconds))
        case .uuid(let raw):
            guard raw.count == 16 else { throw AMQPCodecError(.invalidValue, "a uuid needs 16 bytes") }
            self.bytes.append(F.uuid)
            self.bytes += raw
        case .binary(let raw): self.appendVariable(raw, small: F.binary8, large: F.binary32)
        case .string(let text): self.appendVariable(Array(text.utf8), small: F.string8, large: F.string32)
        case .symbol(let text):
            guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
                throw AMQPCodecError(.invalidText, "a symbol must be ASCII")
            }
            self.appendVariable(Array(text.utf8), small: F.symbol8, large: F.symbol32)
        case .list(let elements):
            if elements.isEmpty {
                self.bytes.append(F.list0)
            } else {
                var body = AMQPEncoder()
                for element in elements { try body.encode(element) }
                self.appendCompound(body.bytes, count: elements.count, small: F.list8, large: F.list32)
            }
        case .map(let entries):
            var body = AMQPEncoder()
            for entry in entries {
                try body.encode(entry.key)
                try body.encode(entry.value)
            }
            self.appendCompound(body.bytes, count: entries.count * 2, small: F.map8, large: F.map32)
        case .array(let elements):
            try self.encodeArray(elements)
        case .described(let descriptor, let inner):
            self.bytes.append(F.described)
            try self.encode(descriptor)
            try self.encode(inner)
        default:
            preconditionFailure("scalar handled in encode(_:)")
        }
    }

    // MARK: - Arrays

    /// An array writes one constructor and then every element's body at that constructor's width.
    private mutating func encodeArray(_ elements: [AMQPValue]) throws(AMQPCodecError) {
        let constructor = try Self.arrayConstructor(for: elements)
        var body = AMQPEncoder()
        body.bytes += constructor.prefix
        for element in elements { try body.encodeArrayElement(element, code: constructor.code) }
        let size = body.bytes.count + 1
        if size <= 0xFF && elements.count <= 0xFF {
            self.bytes += [AMQPFormatCode.array8, UInt8(size), UInt8(elements.count)]
        } else {
            self.bytes.append(AMQPFormatCode.array32)
            self.append(UInt32(body.bytes.count + 4))
            self.append(UInt32(elements.count))
        }
        self.bytes += body.bytes
    }

    /// The constructor bytes (descriptor included) and the element format code for an array's elements.
    private static func arrayConstructor(for elements: [AMQPValue]) throws(AMQPCodecError) -> (
        prefix: [UInt8], code: UInt8
    ) {
        typealias F = AMQPFormatCode
        guard let first = elements.first else { return ([F.null], F.null) }
        if case .described(let descriptor, _) = first {
            var inner: [AMQPValue] = []
            for element in elements {
                guard case .described(let other, let value) = element, other == descriptor else {
                    throw AMQPCodecError(.heterogeneousArray, "array elements have different descriptors")
                }
                inner.append(value)
            }
            let (prefix, code) = try arrayConstructor(for: inner)
            return ([F.described] + (try AMQPEncoder.encode(descriptor)) + prefix, code)
        }
        func all(_ test: (AMQPValue) -> Bool) -> Bool { elements.allSatisfy(test) }
        func longest(_ length: (AMQPValue) -> Int?) -> Int { elements.reduce(0) { max($0, length($1) ?? 0) } }
        let code: UInt8
        switch first {
        case .null: code = F.null
        case .boolean: code = F.boolean
        case .ubyte: code = F.ubyte
        case .ushort: code = F.ushort
        case .uint: code = F.uint
        case .ulong: code = F.ulong
        case .byte: code = F.byte
        case .short: code = F.short
        case .int: code = F.int
        case .long: code = F.long
        case .float: code = F.float
        case .double: code = F.double
        case .decimal32: code = F.decimal32
        case .decimal64: code = F.decimal64
        case .decimal128: code = F.decimal128
        case .char: code = F.char
        case .timestamp: code = F.timestamp
        case .uuid: code = F.uuid
        case .binary:
            code =
                longest {
                    if case .binary(let b) = $0 { return b.count }
                    return nil
                } <= 0xFF ? F.binary8 : F.binary32
        case .string:
            code =
                longest {
                    if case .string(let s) = $0 { return s.utf8.count }
                    return nil
                } <= 0xFF ? F.string8 : F.string32
        case .symbol:
            code =
                longest {
                    if case .symbol(let s) = $0 { return s.utf8.count }
                    return nil
                } <= 0xFF ? F.symbol8 : F.symbol32
        case .list: code = F.list32
        case .map: code = F.map32
        case .array: code = F.array32
        case .described: preconditionFailure("handled above")
        }
        let sameKind = all { Self.kind(of: $0) == Self.kind(of: first) }
        guard sameKind else { throw AMQPCodecError(.heterogeneousArray, "array elements must share one type") }
        return ([code], code)
    }

    private static func kind(of value: AMQPValue) -> Int {
        switch value {
        case .null: 0
        case .boolean: 1
        case .ubyte: 2
        case .ushort: 3
        case .uint: 4
        case .ulong: 5
        case .byte: 6
        case .short: 7
        case .int: 8
        case .long: 9
        case .float: 10
        case .double: 11
        case .decimal32: 12
        case .decimal64: 13
        case .decimal128: 14
        case .char: 15
        case .timestamp: 16
        case .uuid: 17
        case .binary: 18
        case .string: 19
        case .symbol: 20
        case .list: 21
        case .map: 22
        case .array: 23
        case .described: 24
        }
    }

    /// Writes an element's body (no constructor) at the width of `code`.
    private mutating func encodeArrayElement(_ value: AMQPValue, code: UInt8) throws(AMQPCodecError) {
        typealias F = AMQPFormatCode
        var value = value
        if case .described(_, let inner) = value { value = inner }
        switch value {
        case .null: break
        case .boolean(let flag): self.bytes.append(flag ? 1 : 0)
        case .ubyte(let number): self.bytes.append(number)
        case .ushort(let number): self.append(number)
        case .uint(let number): self.append(number)
        case .ulong(let number): self.append(number)
        case .byte(let number): self.bytes.append(UInt8(bitPattern: number))
        case .short(let number): self.append(UInt16(bitPattern: number))
        case .int(let number): self.append(UInt32(bitPattern: number))
        case .long(let number): self.append(UInt64(bitPattern: number))
        case .binary(let raw): self.appendSized(raw, wide: code == F.binary32)
        case .string(let text): self.appendSized(Array(text.utf8), wide: code == F.string32)
        case .symbol(let text): self.appendSized(Array(text.utf8), wide: code == F.symbol32)
        case .list(let elements):
            var body = AMQPEncoder()
            for element in elements { try body.encode(element) }
            self.append(UInt32(body.bytes.count + 4))
            self.append(UInt32(elements.count))
            self.bytes += body.bytes
        case .map(let entries):
            var body = AMQPEncoder()
            for entry in entries {
                try body.encode(entry.key)
                try body.encode(entry.value)
            }
            self.append(UInt32(body.bytes.count + 4))
            self.append(UInt32(entries.count * 2))
            self.bytes += body.bytes
        default:
            // Fixed-width scalars and nested arrays: their encoding minus the constructor byte.
            var single = AMQPEncoder()
            try single.encode(value)
            if case .array = value {
                // Nested arrays are always written in the 32-bit form inside an array.
                let inner = single.bytes
                if inner.first == F.array8 {
                    let size = Int(inner[1])
                    let count = Int(inner[2])
                    self.append(UInt32(size - 1 + 4))
                    self.append(UInt32(count))
                    self.bytes += inner[3...]
                } else {
                    self.bytes += inner.dropFirst()
                }
            } else {
                self.bytes += single.bytes.dropFirst()
            }
        }
    }

    // MARK: - Primitives

    private mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    private mutating func appendSized(_ raw: [UInt8], wide: Bool) {
        if wide { self.append(UInt32(raw.count)) } else { self.bytes.append(UInt8(raw.count)) }
        self.bytes += raw
    }

    private mutating func appendVariable(_ raw: [UInt8], small: UInt8, large: UInt8) {
        if raw.count <= 0xFF {
            self.bytes += [small, UInt8(raw.count)]
        } else {
            self.bytes.append(large)
            self.append(UInt32(raw.count))
        }
        self.bytes += raw
    }

    private mutating func appendCompound(_ body: [UInt8], count: Int, small: UInt8, large: UInt8) {
        if body.count + 1 <= 0xFF && count <= 0xFF {
            self.bytes += [small, UInt8(body.count + 1), UInt8(count)]
        } else {
            self.bytes.append(large)
            self.append(UInt32(body.count + 4))
            self.append(UInt32(count))
        }
        self.bytes += body
    }
}
