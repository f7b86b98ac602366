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
        case .ubyte(let number):
            self.bytes.append(F.ubyte)
            self.bytes.append(number)
        case .ushort(let number):
            self.bytes.append(F.ushort)
            self.append(number)
        case .uint(let number):
            if number == 0 {
                self.bytes.append(F.uint0)
            } else if number <= 0xFF {
                self.bytes.append(F.smallUInt)
                self.bytes.append(UInt8(number))
            } else {
                self.bytes.append(F.uint)
                self.append(number)
            }
        case .ulong(let number): self.encodeULong(number)
        case .byte(let number):
            self.bytes.append(F.byte)
            self.bytes.append(UInt8(bitPattern: number))
        case .short(let number):
            self.bytes.append(F.short)
            self.append(UInt16(bitPattern: number))
        case .int(let number):
            if let small = Int8(exactly: number) {
                self.bytes.append(F.smallInt)
                self.bytes.append(UInt8(bitPattern: small))
            } else {
                self.bytes.append(F.int)
                self.append(UInt32(bitPattern: number))
            }
        case .long(let number):
            if let small = Int8(exactly: number) {
                self.bytes.append(F.smallLong)
                self.bytes.append(UInt8(bitPattern: small))
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
        case .binary(let raw): self.appendBinary(raw)
        case .string(let text): self.appendString(text)
        case .symbol(let text): try self.appendSymbol(text)
        case .list(let elements):
            if elements.isEmpty {
                self.bytes.append(F.list0)
            } else {
                let start = self.beginCompound()
                for element in elements { try self.encode(element) }
                self.endCompound(start, count: elements.count, small: F.list8, large: F.list32)
            }
        case .map(let entries):
            let start = self.beginCompound()
            for entry in entries {
                try self.encode(entry.key)
                try self.encode(entry.value)
            }
            self.endCompound(start, count: entries.count * 2, small: F.map8, large: F.map32)
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

    /// Swaps the encoder's bytes with `buffer` (no copy): an encoder can append to a caller's buffer.
    mutating func exchangeBytes(with buffer: inout [UInt8]) {
        swap(&self.bytes, &buffer)
    }

    /// Drops what was written after the first `count` bytes (keeping the storage).
    mutating func truncate(to count: Int) {
        self.bytes.removeSubrange(count...)
    }

    /// Room for `count` more bytes, so that encoding what is known to follow allocates once. Growing a buffer that
    /// already holds other frames at least doubles it, as appending would (an exact reservation per message would
    /// reallocate and copy the whole buffer for every message added to it).
    package mutating func reserveCapacity(_ count: Int) {
        let needed = self.bytes.count + count
        guard self.bytes.capacity < needed else { return }
        self.bytes.reserveCapacity(Swift.max(needed, self.bytes.capacity * 2))
    }

    /// A `binary` value, without copying `raw` anywhere but into the output.
    package mutating func appendBinary(_ raw: [UInt8]) {
        self.appendLength(raw.count, small: AMQPFormatCode.binary8, large: AMQPFormatCode.binary32)
        self.bytes += raw
    }

    /// A `string` value, written straight from the string's UTF-8.
    package mutating func appendString(_ text: String) {
        self.appendLength(text.utf8.count, small: AMQPFormatCode.string8, large: AMQPFormatCode.string32)
        self.bytes.append(contentsOf: text.utf8)
    }

    /// A `symbol` value (ASCII only).
    package mutating func appendSymbol(_ text: String) throws(AMQPCodecError) {
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw AMQPCodecError(.invalidText, "a symbol must be ASCII")
        }
        self.appendLength(text.utf8.count, small: AMQPFormatCode.symbol8, large: AMQPFormatCode.symbol32)
        self.bytes.append(contentsOf: text.utf8)
    }

    /// A `timestamp` value.
    package mutating func appendTimestamp(_ milliseconds: Int64) {
        self.bytes.append(AMQPFormatCode.timestamp)
        self.append(UInt64(bitPattern: milliseconds))
    }

    /// A `null`.
    package mutating func appendNull() { self.bytes.append(AMQPFormatCode.null) }

    /// The constructor of a described value with a numeric descriptor; the value follows.
    package mutating func appendDescriptor(_ code: UInt64) {
        self.bytes.append(AMQPFormatCode.described)
        self.encodeULong(code)
    }

    private mutating func encodeULong(_ number: UInt64) {
        typealias F = AMQPFormatCode
        if number == 0 {
            self.bytes.append(F.ulong0)
        } else if number <= 0xFF {
            self.bytes.append(F.smallULong)
            self.bytes.append(UInt8(number))
        } else {
            self.bytes.append(F.ulong)
            self.append(number)
        }
    }

    /// Starts a list (or map) written in place: its constructor and sizes are filled in by
    /// ``endList(_:count:)`` (``endMap(_:count:)``) once the elements are written. Returns where it starts.
    package mutating func beginList() -> Int { self.beginCompound() }

    /// Ends a list begun at `start` holding `count` elements.
    package mutating func endList(_ start: Int, count: Int) {
        self.endCompound(start, count: count, small: AMQPFormatCode.list8, large: AMQPFormatCode.list32)
    }

    /// Starts a map written in place (see ``beginList()``).
    package mutating func beginMap() -> Int { self.beginCompound() }

    /// Ends a map begun at `start` holding `count` keys and values (twice the entries).
    package mutating func endMap(_ start: Int, count: Int) {
        self.endCompound(start, count: count, small: AMQPFormatCode.map8, large: AMQPFormatCode.map32)
    }

    private mutating func appendLength(_ count: Int, small: UInt8, large: UInt8) {
        if count <= 0xFF {
            self.bytes.append(small)
            self.bytes.append(UInt8(count))
        } else {
            self.bytes.append(large)
            self.append(UInt32(truncatingIfNeeded: count))
        }
    }

    /// Room for a compound's constructor and its 32-bit size and count, written once the body is known.
    private mutating func beginCompound() -> Int {
        let start = self.bytes.count
        for _ in 0..<9 { self.bytes.append(0) }
        return start
    }

    /// Writes the constructor, size and count of the compound begun at `start`, in the small form when the body
    /// fits (the body then moves 6 bytes down, in place): the bytes the encoding of a whole value would be.
    private mutating func endCompound(_ start: Int, count: Int, small: UInt8, large: UInt8) {
        let body = self.bytes.count - start - 9
        if body + 1 <= 0xFF && count <= 0xFF {
            self.bytes.withUnsafeMutableBufferPointer { buffer in
                buffer[start] = small
                buffer[start + 1] = UInt8(body + 1)
                buffer[start + 2] = UInt8(count)
                // Forward, byte by byte: the regions overlap and the body is at most 254 bytes.
                var index = 0
                while index < body {
                    buffer[start + 3 + index] = buffer[start + 9 + index]
                    index += 1
                }
            }
            self.bytes.removeLast(6)
        } else {
            self.bytes.withUnsafeMutableBufferPointer { buffer in
                buffer[start] = large
                let size = UInt32(truncatingIfNeeded: body + 4).bigEndian
                let elements = UInt32(truncatingIfNeeded: count).bigEndian
                withUnsafeBytes(of: size) {
                    for (offset, byte) in $0.enumerated() { buffer[start + 1 + offset] = byte }
                }
                withUnsafeBytes(of: elements) {
                    for (offset, byte) in $0.enumerated() { buffer[start + 5 + offset] = byte }
                }
            }
        }
    }
}
