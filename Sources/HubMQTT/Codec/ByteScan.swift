#if canImport(Glibc)
import Glibc
#endif

/// Fast scans over raw bytes for the codec's string checks (glibc's `memchr` is vectorised).
enum ByteScan {
    /// Whether `bytes` contains `byte`.
    @inline(__always)
    static func contains(_ bytes: UnsafeBufferPointer<UInt8>, _ byte: UInt8) -> Bool {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
        return memchr(base, Int32(byte), bytes.count) != nil
    }

    /// Whether every byte is below 0x80, eight at a time.
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var index = 0
        let raw = UnsafeRawPointer(base)
        while index + 8 <= bytes.count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            if base[index] >= 0x80 { return false }
            index += 1
        }
        return true
    }

    /// One pass over a topic name: whether it holds `+`, `#` or NUL, and whether it is all ASCII. Eight bytes at a
    /// time with the "has zero byte" bit trick on the word XORed with each forbidden byte.
    static func scanTopicName(_ bytes: UnsafeBufferPointer<UInt8>) -> (forbidden: Bool, ascii: Bool) {
        guard let base = bytes.baseAddress else { return (false, true) }
        let low: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func zeroBytes(_ word: UInt64) -> UInt64 { (word &- low) & ~word }
        var highBits: UInt64 = 0
        var found: UInt64 = 0
        var index = 0
        let raw = UnsafeRawPointer(base)
        // No early exit: forbidden bytes are rare, and two independent words per round keep the pipeline full.
        while index + 16 <= bytes.count {
            let first = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let second = raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
            highBits |= first | second
            found |= zeroBytes(first) | zeroBytes(first ^ (low &* 0x2B)) | zeroBytes(first ^ (low &* 0x23))
            found |= zeroBytes(second) | zeroBytes(second ^ (low &* 0x2B)) | zeroBytes(second ^ (low &* 0x23))
            index += 16
        }
        if index + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            highBits |= word
            found |= zeroBytes(word) | zeroBytes(word ^ (low &* 0x2B)) | zeroBytes(word ^ (low &* 0x23))
            index += 8
        }
        if found & high != 0 { return (true, highBits & high == 0) }
        var ascii = highBits & high == 0
        while index < bytes.count {
            let byte = base[index]
            if byte == 0 || byte == 0x2B || byte == 0x23 { return (true, ascii) }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        return (false, ascii)
    }
}
