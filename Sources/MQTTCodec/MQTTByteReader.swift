/// A bounds-checked cursor over a complete packet body: every read that would run past the end throws
/// ``MQTTCodecError/Code/truncated`` at that offset; nothing here can ask for more bytes.
struct MQTTByteReader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// The offset from the start of the body.
    var offset: Int { self.index - self.bytes.startIndex }
    /// Bytes not read yet.
    var remaining: Int { self.bytes.endIndex - self.index }

    mutating func readByte() throws(MQTTCodecError) -> UInt8 {
        guard self.index < self.bytes.endIndex else { throw self.truncated("a byte") }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    mutating func readUInt16() throws(MQTTCodecError) -> UInt16 {
        guard self.remaining >= 2 else { throw self.truncated("a two-byte integer") }
        defer { self.index += 2 }
        return UInt16(self.bytes[self.index]) << 8 | UInt16(self.bytes[self.index + 1])
    }

    mutating func readBytes(_ count: Int) throws(MQTTCodecError) -> ArraySlice<UInt8> {
        guard count >= 0, self.remaining >= count else { throw self.truncated("\(count) bytes") }
        defer { self.index += count }
        return self.bytes[self.index..<(self.index + count)]
    }

    /// A two-byte length followed by that many bytes.
    mutating func readBinary() throws(MQTTCodecError) -> ArraySlice<UInt8> {
        try self.readBytes(Int(try self.readUInt16()))
    }

    /// A two-byte length followed by well-formed UTF-8 without U+0000 [MQTT-1.5.3-1, MQTT-1.5.3-2].
    mutating func readString() throws(MQTTCodecError) -> String {
        let start = self.offset
        let raw = try self.readBinary()
        let string = raw.withUnsafeBufferPointer { bytes -> String? in
            if ByteScan.contains(bytes, 0) { return nil }
            // ASCII needs no further validation; anything else goes through the standard library's validator.
            return ByteScan.isASCII(bytes)
                ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
        }
        guard let string else {
            throw MQTTCodecError(.invalidUTF8, "a string is not well-formed UTF-8 or contains U+0000", offset: start)
        }
        return string
    }

    /// Throws ``MQTTCodecError/Code/trailingBytes`` if anything is left.
    func expectEnd() throws(MQTTCodecError) {
        guard self.remaining == 0 else {
            throw MQTTCodecError(.trailingBytes, "\(self.remaining) bytes after the last field", offset: self.offset)
        }
    }

    private func truncated(_ what: String) -> MQTTCodecError {
        MQTTCodecError(.truncated, "the packet ends where \(what) should be", offset: self.offset)
    }
}
