private import CAzureIoTByteScan

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

    /// One pass over a topic name: whether it holds `+`, `#` or NUL, and whether it is all ASCII (sixteen bytes at
    /// a time in C with SSE2).
    @inline(__always)
    static func scanTopicName(_ bytes: UnsafeBufferPointer<UInt8>) -> (forbidden: Bool, ascii: Bool) {
        guard let base = bytes.baseAddress else { return (false, true) }
        let verdict = azi_scan_topic_name(base, bytes.count)
        return (verdict & 1 != 0, verdict & 2 == 0)
    }
}
