/// Writes bytes into memory the caller sized beforehand: the allocation-free path under token minting.
/// The caller guarantees capacity; every method documents how many bytes it may write at most.
struct ByteWriter {
    private(set) var pointer: UnsafeMutablePointer<UInt8>
    private(set) var count = 0

    init(_ pointer: UnsafeMutablePointer<UInt8>) { self.pointer = pointer }

    /// Writes one byte.
    @inline(__always)
    mutating func write(_ byte: UInt8) {
        self.pointer[self.count] = byte
        self.count += 1
    }

    /// Writes `bytes` as they are (at most `bytes.count`).
    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        (self.pointer + self.count).update(from: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        self.count += bytes.count
    }

    /// Writes the UTF-8 of `string` (at most `string.utf8.count`).
    @inline(__always)
    mutating func write(_ string: StaticString) {
        self.write(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    /// Writes RFC 3986 percent-encoded `bytes` (at most `3 * bytes.count`).
    mutating func writePercentEncoded(_ bytes: UnsafeRawBufferPointer) {
        guard let input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let digits: StaticString = "0123456789ABCDEF"
        let hex = digits.utf8Start
        var out = self.pointer + self.count
        for index in 0..<bytes.count {
            let byte = input[index]
            if PercentEncoding.isUnreserved(byte) {
                out.pointee = byte
                out += 1
            } else {
                out[0] = UInt8(ascii: "%")
                out[1] = hex[Int(byte >> 4)]
                out[2] = hex[Int(byte & 0x0F)]
                out += 3
            }
        }
        self.count = out - self.pointer
    }

    /// Writes standard base64 of `bytes` with padding (at most `(bytes.count + 2) / 3 * 4`).
    mutating func writeBase64(_ bytes: UnsafeRawBufferPointer) {
        guard let input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let table: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        let alphabet = table.utf8Start
        var out = self.pointer + self.count
        var index = 0
        let whole = bytes.count - bytes.count % 3
        while index < whole {
            let b0 = Int(input[index])
            let b1 = Int(input[index + 1])
            let b2 = Int(input[index + 2])
            out[0] = alphabet[b0 >> 2]
            out[1] = alphabet[(b0 & 0x03) << 4 | b1 >> 4]
            out[2] = alphabet[(b1 & 0x0F) << 2 | b2 >> 6]
            out[3] = alphabet[b2 & 0x3F]
            out += 4
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let b0 = Int(input[index])
            let b1 = rest == 2 ? Int(input[index + 1]) : 0
            out[0] = alphabet[b0 >> 2]
            out[1] = alphabet[(b0 & 0x03) << 4 | b1 >> 4]
            out[2] = rest == 2 ? alphabet[(b1 & 0x0F) << 2] : UInt8(ascii: "=")
            out[3] = UInt8(ascii: "=")
            out += 4
        }
        self.count = out - self.pointer
    }

    /// Writes `value` in decimal (at most 20 bytes).
    mutating func writeDecimal(_ value: UInt64) {
        var digits = 0
        var remaining = value
        repeat {
            digits += 1
            remaining /= 10
        } while remaining > 0
        remaining = value
        for position in stride(from: digits - 1, through: 0, by: -1) {
            self.pointer[self.count + position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        self.count += digits
    }

}

extension String {
    /// Calls `body` with the string's UTF-8 bytes in contiguous memory.
    @inline(__always)
    func withUTF8Bytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}
