/// Splits a byte stream into MQTT packets.
///
/// ``nextFrame(in:)`` returns `nil` while a packet is incomplete and then consumes nothing; it throws only for a
/// bad fixed header (Remaining Length over 4 bytes or not minimal, a size above ``maximumPacketSize``), checked
/// before the body is buffered. Body errors come from ``MQTTPacket/decode(firstByte:body:)``.
public struct MQTTFramer: Sendable {
    /// The largest packet accepted, header included (default 256 KiB + 1 KiB for IoT Hub's message limit).
    public var maximumPacketSize: Int

    /// A framer with a size limit.
    public init(maximumPacketSize: Int = 257 * 1024) {
        self.maximumPacketSize = maximumPacketSize
    }

    /// A delimited packet: its first byte and where its body lies in the buffer.
    public struct Frame: Sendable, Equatable {
        /// The fixed header's first byte: packet type and flags.
        public var firstByte: UInt8
        /// Where the variable header and payload lie in the buffer.
        public var body: Range<Int>
        /// The index just past the packet.
        public var end: Int { self.body.upperBound }
    }

    /// Finds the packet starting at `buffer.startIndex`, or `nil` if more bytes are needed.
    public func nextFrame(in buffer: ArraySlice<UInt8>) throws(MQTTCodecError) -> Frame? {
        let start = buffer.startIndex
        guard buffer.count >= 2 else { return nil }
        var length = 0
        var multiplier = 1
        var index = start + 1
        while true {
            guard index < buffer.endIndex else { return nil }
            let byte = buffer[index]
            let digits = index - start
            if digits > 1 && byte == 0 {
                throw MQTTCodecError(.malformedRemainingLength, "the Remaining Length is not minimally encoded")
            }
            length += Int(byte & 0x7F) * multiplier
            index += 1
            if byte & 0x80 == 0 { break }
            guard digits < 4 else {
                throw MQTTCodecError(.malformedRemainingLength, "the Remaining Length takes more than 4 bytes")
            }
            multiplier *= 128
        }
        let total = index - start + length
        guard total <= self.maximumPacketSize else {
            throw MQTTCodecError(
                .packetTooLarge,
                "a packet of \(total) bytes exceeds the limit of \(self.maximumPacketSize)"
            )
        }
        guard buffer.endIndex - index >= length else { return nil }
        return Frame(firstByte: buffer[start], body: index..<(index + length))
    }

    /// Finds, decodes and removes every complete packet at the front of `buffer`.
    public func decodePackets(from buffer: inout [UInt8]) throws(MQTTCodecError) -> [MQTTPacket] {
        var packets: [MQTTPacket] = []
        try self.decodePackets(from: &buffer, into: &packets)
        return packets
    }

    /// Like ``decodePackets(from:)``, appending to `packets`, so that a reader can reuse one array (and its
    /// storage) for every read.
    public func decodePackets(from buffer: inout [UInt8], into packets: inout [MQTTPacket]) throws(MQTTCodecError) {
        var position = buffer.startIndex
        while let frame = try self.nextFrame(in: buffer[position...]) {
            packets.append(try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body]))
            position = frame.end
        }
        if position > buffer.startIndex { buffer.removeSubrange(buffer.startIndex..<position) }
    }
}
