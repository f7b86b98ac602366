/// Appends MQTT's wire primitives to a byte array.
struct MQTTByteWriter {
    var bytes: [UInt8]

    init(capacity: Int) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    mutating func writeByte(_ byte: UInt8) { self.bytes.append(byte) }

    mutating func writeUInt16(_ value: UInt16) {
        self.bytes.append(UInt8(value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// The Remaining Length: 1 to 4 bytes, 7 bits each, least significant first.
    mutating func writeRemainingLength(_ length: Int) {
        var value = length
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value > 0 { byte |= 0x80 }
            self.bytes.append(byte)
        } while value > 0
    }

    /// A two-byte length then the bytes.
    mutating func writeBinary(_ value: some Collection<UInt8>) {
        self.writeUInt16(UInt16(value.count))
        self.bytes.append(contentsOf: value)
    }

    mutating func writeString(_ value: String) {
        var copy = value
        copy.withUTF8 { bytes in
            self.writeUInt16(UInt16(truncatingIfNeeded: bytes.count))
            self.bytes.append(contentsOf: bytes)
        }
    }

    /// The size of a Remaining Length field for `length`.
    static func remainingLengthSize(_ length: Int) -> Int {
        length < 128 ? 1 : length < 16_384 ? 2 : length < 2_097_152 ? 3 : 4
    }

    /// The largest Remaining Length MQTT can express.
    static let maximumRemainingLength = 268_435_455

    /// Checks a string field fits a two-byte length and has no U+0000.
    static func checkString(_ value: String, _ what: String) throws(MQTTCodecError) {
        guard value.utf8.count <= 65_535 else {
            throw MQTTCodecError(.fieldTooLong, "\(what) is longer than 65,535 bytes")
        }
        guard !value.utf8.contains(0) else { throw MQTTCodecError(.invalidUTF8, "\(what) contains U+0000") }
    }
}
