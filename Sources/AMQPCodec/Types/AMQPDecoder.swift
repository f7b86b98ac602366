/// Decodes ``AMQPValue``s with a bounds-checked cursor: every size and count is checked against the bytes that
/// remain, nesting is capped, and the first bad byte throws ``AMQPCodecError``.
public struct AMQPDecoder {
    /// The deepest nesting of lists, maps, arrays and described values accepted.
    public static let maximumDepth = 32
    /// The most zero-width array elements (nulls, booleans, `uint0`…) accepted in one array.
    static let maximumZeroWidthElements = 65_536

    private let bytes: ArraySlice<UInt8>
    private var index: Int

    /// A decoder over `bytes`.
    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// Decodes exactly one value filling all of `bytes`.
    public static func decode(_ bytes: [UInt8]) throws(AMQPCodecError) -> AMQPValue {
        var decoder = AMQPDecoder(bytes[...])
        let value = try decoder.decodeValue()
        guard decoder.remaining == 0 else {
            throw AMQPCodecError(.trailingBytes, "\(decoder.remaining) bytes after the value", offset: decoder.offset)
        }
        return value
    }

    /// Offset from the start.
    public var offset: Int { self.index - self.bytes.startIndex }
    /// Bytes not read yet.
    public var remaining: Int { self.bytes.endIndex - self.index }

    /// Decodes the next value.
    public mutating func decodeValue() throws(AMQPCodecError) -> AMQPValue {
        try self.decodeValue(depth: 0)
    }

    private mutating func decodeValue(depth: Int) throws(AMQPCodecError) -> AMQPValue {
        guard depth <= Self.maximumDepth else {
            throw AMQPCodecError(.nestingTooDeep, "values nest deeper than \(Self.maximumDepth)", offset: self.offset)
        }
        let code = try self.readByte()
        if code == AMQPFormatCode.described {
            let descriptor = try self.decodeValue(depth: depth + 1)
            let value = try self.decodeValue(depth: depth + 1)
            return .described(descriptor: descriptor, value: value)
        }
        return try self.decodeBody(code: code, depth: depth)
    }

    // MARK: - Bodies

    private mutating func decodeBody(code: UInt8, depth: Int) throws(AMQPCodecError) -> AMQPValue {
        typealias F = AMQPFormatCode
        let start = self.offset - 1
        switch code {
        case F.null: return .null
        case F.booleanTrue: return .boolean(true)
        case F.booleanFalse: return .boolean(false)
        case F.boolean:
            let byte = try self.readByte()
            guard byte <= 1 else { throw AMQPCodecError(.invalidValue, "boolean byte \(byte)", offset: start) }
            return .boolean(byte == 1)
        case F.ubyte: return .ubyte(try self.readByte())
        case F.ushort: return .ushort(try self.read(UInt16.self))
        case F.uint: return .uint(try self.read(UInt32.self))
        case F.smallUInt: return .uint(UInt32(try self.readByte()))
        case F.uint0: return .uint(0)
        case F.ulong: return .ulong(try self.read(UInt64.self))
        case F.smallULong: return .ulong(UInt64(try self.readByte()))
        case F.ulong0: return .ulong(0)
        case F.byte: return .byte(Int8(bitPattern: try self.readByte()))
        case F.short: return .short(Int16(bitPattern: try self.read(UInt16.self)))
        case F.int: return .int(Int32(bitPattern: try self.read(UInt32.self)))
        case F.smallInt: return .int(Int32(Int8(bitPattern: try self.readByte())))
        case F.long: return .long(Int64(bitPattern: try self.read(UInt64.self)))
        case F.smallLong: return .long(Int64(Int8(bitPattern: try self.readByte())))
        case F.float: return .float(Float(bitPattern: try self.read(UInt32.self)))
        case F.double: return .double(Double(bitPattern: try self.read(UInt64.self)))
        case F.decimal32: return .decimal32(try self.read(UInt32.self))
        case F.decimal64: return .decimal64(try self.read(UInt64.self))
        case F.decimal128: return .decimal128(Array(try self.readBytes(16)))
        case F.char:
            let raw = try self.read(UInt32.self)
            guard let scalar = Unicode.Scalar(raw) else {
                throw AMQPCodecError(.invalidValue, "char \(raw) is not a Unicode scalar", offset: start)
            }
            return .char(scalar)
        case F.timestamp: return .timestamp(Int64(bitPattern: try self.read(UInt64.self)))
        case F.uuid: return .uuid(Array(try self.readBytes(16)))
        case F.binary8, F.binary32:
            return .binary(Array(try self.readSized(wide: code == F.binary32)))
        case F.string8, F.string32:
            let raw = try self.readSized(wide: code == F.string32)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw AMQPCodecError(.invalidText, "a string is not valid UTF-8", offset: start)
            }
            return .string(text)
        case F.symbol8, F.symbol32:
            let raw = try self.readSized(wide: code == F.symbol32)
            guard raw.allSatisfy({ $0 < 0x80 }) else {
                throw AMQPCodecError(.invalidText, "a symbol is not ASCII", offset: start)
            }
            return .symbol(String(decoding: raw, as: UTF8.self))
        case F.list0: return .list([])
        case F.list8, F.list32:
            return .list(try self.readCompound(wide: code == F.list32, depth: depth, pairs: false).values)
        case F.map8, F.map32:
            let values = try self.readCompound(wide: code == F.map32, depth: depth, pairs: true).values
            return .map(stride(from: 0, to: values.count, by: 2).map { AMQPMapEntry(values[$0], values[$0 + 1]) })
        case F.array8, F.array32:
            return try self.readArray(wide: code == F.array32, depth: depth)
        default:
            throw AMQPCodecError(.unknownFormatCode, "format code 0x\(String(code, radix: 16))", offset: start)
        }
    }

    /// A list or map: size, count, then `count` complete values inside exactly `size` bytes.
    private mutating func readCompound(wide: Bool, depth: Int, pairs: Bool) throws(AMQPCodecError) -> (
        values: [AMQPValue], end: Int
    ) {
        let start = self.offset - 1
        let size = wide ? Int(try self.read(UInt32.self)) : Int(try self.readByte())
        let countWidth = wide ? 4 : 1
        guard size >= countWidth, size <= self.remaining else {
            throw AMQPCodecError(.invalidSize, "a compound of \(size) bytes does not fit", offset: start)
        }
        let end = self.index + size
        let count = wide ? Int(try self.read(UInt32.self)) : Int(try self.readByte())
        guard count <= end - self.index, !pairs || count % 2 == 0 else {
            throw AMQPCodecError(
                .invalidSize,
                "\(count) elements cannot fit in \(size) bytes (or a map has an odd count)",
                offset: start
            )
        }
        var values: [AMQPValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            values.append(try self.decodeValue(depth: depth + 1))
            guard self.index <= end else {
                throw AMQPCodecError(.invalidSize, "an element runs past its compound", offset: start)
            }
        }
        guard self.index == end else {
            throw AMQPCodecError(.invalidSize, "a compound's size and its elements disagree", offset: start)
        }
        return (values, end)
    }

    /// An array: size, count, one constructor (possibly described), then `count` bodies.
    private mutating func readArray(wide: Bool, depth: Int) throws(AMQPCodecError) -> AMQPValue {
        let start = self.offset - 1
        guard depth < Self.maximumDepth else {
            throw AMQPCodecError(.nestingTooDeep, "arrays nest too deep", offset: start)
        }
        let size = wide ? Int(try self.read(UInt32.self)) : Int(try self.readByte())
        let countWidth = wide ? 4 : 1
        guard size >= countWidth + 1, size <= self.remaining else {
            throw AMQPCodecError(.invalidSize, "an array of \(size) bytes does not fit", offset: start)
        }
        let end = self.index + size
        let count = wide ? Int(try self.read(UInt32.self)) : Int(try self.readByte())
        var descriptor: AMQPValue?
        var code = try self.readByte()
        if code == AMQPFormatCode.described {
            descriptor = try self.decodeValue(depth: depth + 1)
            code = try self.readByte()
        }
        let limit = AMQPFormatCode.isZeroWidth(code) ? Self.maximumZeroWidthElements : end - self.index
        guard count <= limit else {
            throw AMQPCodecError(.invalidSize, "\(count) array elements cannot fit in \(size) bytes", offset: start)
        }
        var elements: [AMQPValue] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            let body = try self.decodeArrayElement(code: code, depth: depth + 1)
            elements.append(descriptor.map { .described(descriptor: $0, value: body) } ?? body)
            guard self.index <= end else {
                throw AMQPCodecError(.invalidSize, "an element runs past its array", offset: start)
            }
        }
        guard self.index == end else {
            throw AMQPCodecError(.invalidSize, "an array's size and its elements disagree", offset: start)
        }
        return .array(elements)
    }

    /// An array element is a body without constructor; `boolean` is then one byte, and compounds are decoded as usual.
    private mutating func decodeArrayElement(code: UInt8, depth: Int) throws(AMQPCodecError) -> AMQPValue {
        guard code != AMQPFormatCode.described else {
            throw AMQPCodecError(
                .unknownFormatCode,
                "a described constructor cannot be an array element code",
                offset: self.offset
            )
        }
        return try self.decodeBody(code: code, depth: depth)
    }

    // MARK: - Primitives

    private mutating func readByte() throws(AMQPCodecError) -> UInt8 {
        guard self.index < self.bytes.endIndex else {
            throw AMQPCodecError(.truncated, "the bytes end inside a value", offset: self.offset)
        }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    private mutating func read<T: FixedWidthInteger>(_ type: T.Type) throws(AMQPCodecError) -> T {
        let width = MemoryLayout<T>.size
        guard self.remaining >= width else {
            throw AMQPCodecError(.truncated, "the bytes end inside a \(width)-byte number", offset: self.offset)
        }
        var value: T = 0
        for position in 0..<width { value = value << 8 | T(self.bytes[self.index + position]) }
        self.index += width
        return value
    }

    private mutating func readBytes(_ count: Int) throws(AMQPCodecError) -> ArraySlice<UInt8> {
        guard count >= 0, self.remaining >= count else {
            throw AMQPCodecError(.truncated, "the bytes end inside a \(count)-byte field", offset: self.offset)
        }
        defer { self.index += count }
        return self.bytes[self.index..<(self.index + count)]
    }

    private mutating func readSized(wide: Bool) throws(AMQPCodecError) -> ArraySlice<UInt8> {
        let count = wide ? Int(try self.read(UInt32.self)) : Int(try self.readByte())
        guard count <= self.remaining else {
            throw AMQPCodecError(
                .invalidSize,
                "a \(count)-byte field does not fit in \(self.remaining) bytes",
                offset: self.offset
            )
        }
        return try self.readBytes(count)
    }
}
