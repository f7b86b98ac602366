/// An AMQP 1.0 frame (part 2, §2.3): 8-byte header (SIZE, DOFF, TYPE, channel), optional extended header, body.
public struct AMQPFrame: Sendable, Equatable {
    /// TYPE: 0 for AMQP frames, 1 for SASL frames.
    public enum FrameType: UInt8, Sendable {
        /// An AMQP frame.
        case amqp = 0
        /// A SASL frame.
        case sasl = 1
    }

    /// AMQP (0) or SASL (1).
    public var type: FrameType
    /// The channel (session) number.
    public var channel: UInt16
    /// The performative and payload; empty for a heartbeat.
    public var body: [UInt8]

    /// A frame.
    public init(type: FrameType = .amqp, channel: UInt16 = 0, body: [UInt8]) {
        self.type = type
        self.channel = channel
        self.body = body
    }

    /// Whether this is an empty frame (a heartbeat).
    public var isHeartbeat: Bool { self.body.isEmpty }

    /// The frame's bytes (DOFF 2, no extended header).
    public var encoded: [UInt8] {
        let size = UInt32(8 + self.body.count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(size))
        withUnsafeBytes(of: size.bigEndian) { bytes.append(contentsOf: $0) }
        bytes += [2, self.type.rawValue, UInt8(self.channel >> 8), UInt8(truncatingIfNeeded: self.channel)]
        bytes += self.body
        return bytes
    }
}

/// The 8-byte protocol header that opens each layer: `AMQP 0 1 0 0` (AMQP) or `AMQP 3 1 0 0` (SASL).
public enum AMQPProtocolHeader: Sendable, Equatable {
    /// `AMQP 0 1 0 0`: the AMQP protocol.
    case amqp
    /// `AMQP 3 1 0 0`: SASL first.
    case sasl

    /// The header's bytes.
    public var bytes: [UInt8] {
        [0x41, 0x4D, 0x51, 0x50, self == .amqp ? 0 : 3, 1, 0, 0]
    }

    /// Parses a header from the first 8 bytes; `nil` if fewer are there. Throws
    /// ``AMQPCodecError/Code/invalidProtocolHeader`` for anything else (another protocol id or version).
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(AMQPCodecError) -> AMQPProtocolHeader? {
        guard bytes.count >= 8 else { return nil }
        let header = Array(bytes.prefix(8))
        switch header {
        case AMQPProtocolHeader.amqp.bytes: return .amqp
        case AMQPProtocolHeader.sasl.bytes: return .sasl
        default:
            throw AMQPCodecError(.invalidProtocolHeader, "protocol header \(header) is not AMQP 0/3 1.0.0")
        }
    }
}

/// Splits a byte stream into frames. ``nextFrame(in:)`` returns `nil` while a frame is incomplete and then consumes
/// nothing; it checks SIZE ≥ 8, DOFF ≥ 2, DOFF × 4 ≤ SIZE, the frame type and SIZE ≤ ``maximumFrameSize`` from the
/// header, before any body is buffered.
public struct AMQPFramer: Sendable {
    /// The negotiated max-frame-size (512 until OPEN is exchanged).
    public var maximumFrameSize: Int

    /// A framer accepting frames up to `maximumFrameSize` bytes (512 until `open` is negotiated).
    public init(maximumFrameSize: Int = 512) { self.maximumFrameSize = maximumFrameSize }

    /// The frame at the start of `buffer` and its total size, or nil if incomplete.
    public func nextFrame(in buffer: ArraySlice<UInt8>) throws(AMQPCodecError) -> (frame: AMQPFrame, size: Int)? {
        guard let header = try Self.header(in: buffer, maximumFrameSize: self.maximumFrameSize) else { return nil }
        let start = buffer.startIndex
        let body = Array(buffer[(start + header.bodyOffset)..<(start + header.size)])
        return (AMQPFrame(type: header.type, channel: header.channel, body: body), header.size)
    }

    /// The checked header of the whole frame at the start of `buffer` (`nil` until all of it is there): SIZE ≥ 8,
    /// DOFF ≥ 2, DOFF × 4 ≤ SIZE, SIZE ≤ `maximumFrameSize` and the frame type are checked from the first 8 bytes,
    /// before any body is buffered. The frame readers of the hot paths share it.
    static func header(in buffer: ArraySlice<UInt8>, maximumFrameSize: Int) throws(AMQPCodecError) -> (
        size: Int, bodyOffset: Int, type: AMQPFrame.FrameType, channel: UInt16
    )? {
        guard buffer.count >= 8 else { return nil }
        let start = buffer.startIndex
        let size =
            Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8
            | Int(buffer[start + 3])
        let dataOffset = Int(buffer[start + 4])
        guard size >= 8 else { throw AMQPCodecError(.invalidFrameHeader, "SIZE \(size) is below 8") }
        guard dataOffset >= 2, dataOffset * 4 <= size else {
            throw AMQPCodecError(.invalidFrameHeader, "DOFF \(dataOffset) is below 2 or beyond the frame")
        }
        guard size <= maximumFrameSize else {
            throw AMQPCodecError(
                .invalidFrameHeader,
                "a frame of \(size) bytes exceeds max-frame-size \(maximumFrameSize)"
            )
        }
        guard let type = AMQPFrame.FrameType(rawValue: buffer[start + 5]) else {
            throw AMQPCodecError(.invalidFrameHeader, "frame type \(buffer[start + 5]) is not AMQP (0) or SASL (1)")
        }
        guard buffer.count >= size else { return nil }
        return (size, dataOffset * 4, type, UInt16(buffer[start + 6]) << 8 | UInt16(buffer[start + 7]))
    }
}
