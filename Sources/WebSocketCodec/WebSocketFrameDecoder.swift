/// Cuts WebSocket frames out of a byte stream that arrives in pieces of any size, checking every rule of RFC 6455
/// §5 that a single frame can break. It keeps no state between frames; ``WebSocketReceiver`` checks the order of
/// frames (fragmentation, control frames in between).
public struct WebSocketFrameDecoder: Sendable {
    /// Which end of the connection decodes: a server requires masked frames, a client refuses them (§5.1).
    public enum Role: Sendable {
        /// Decodes what a client sent.
        case server
        /// Decodes what a server sent.
        case client
    }

    /// Which end decodes.
    public let role: Role
    /// The largest payload one frame may carry; a longer one is refused as soon as its header is read.
    public let maximumFrameSize: Int

    /// A decoder for `role` that refuses frames over `maximumFrameSize` bytes of payload.
    public init(role: Role, maximumFrameSize: Int = 1 << 20) {
        self.role = role
        self.maximumFrameSize = max(Self.minimumFrameSizeLimit, maximumFrameSize)
    }

    /// A limit below this would refuse legal control frames.
    public static let minimumFrameSizeLimit = 125

    /// The next complete frame at the start of `bytes` and how many bytes it took, or `nil` when more bytes are
    /// needed. Throws at the first header byte that breaks a rule, before the payload arrives.
    public func nextFrame(in bytes: ArraySlice<UInt8>) throws(WebSocketCodecError) -> (
        frame: WebSocketFrame, size: Int
    )? {
        let start = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        let first = bytes[start]
        let second = bytes[start + 1]
        guard first & 0x70 == 0 else {
            throw WebSocketCodecError(
                .reservedBitsSet,
                "RSV bits \(String(first & 0x70, radix: 2)) are set; no extension was agreed"
            )
        }
        guard let opcode = WebSocketFrame.Opcode(rawValue: first & 0x0F) else {
            throw WebSocketCodecError(.reservedOpcode, "opcode \(first & 0x0F) is reserved")
        }
        let fin = first & 0x80 != 0
        let masked = second & 0x80 != 0
        switch (self.role, masked) {
        case (.server, false): throw WebSocketCodecError(.maskingViolation, "a client frame must be masked")
        case (.client, true): throw WebSocketCodecError(.maskingViolation, "a server frame must not be masked")
        default: break
        }
        var index = start + 2
        var length = UInt64(second & 0x7F)
        if opcode.isControl {
            guard fin else {
                throw WebSocketCodecError(.invalidControlFrame, "a \(opcode) frame must not be fragmented")
            }
            guard length <= 125 else {
                throw WebSocketCodecError(.invalidControlFrame, "a \(opcode) frame carries at most 125 bytes")
            }
        }
        if length == 126 {
            guard bytes.endIndex - index >= 2 else { return nil }
            length = UInt64(bytes[index]) << 8 | UInt64(bytes[index + 1])
            index += 2
            guard length >= 126 else {
                throw WebSocketCodecError(.malformedLength, "a length of \(length) must use the one-byte form")
            }
        } else if length == 127 {
            guard bytes.endIndex - index >= 8 else { return nil }
            length = 0
            for offset in 0..<8 { length = length << 8 | UInt64(bytes[index + offset]) }
            index += 8
            guard length >> 63 == 0 else {
                throw WebSocketCodecError(.malformedLength, "the 64-bit length has its top bit set")
            }
            guard length > 0xFFFF else {
                throw WebSocketCodecError(.malformedLength, "a length of \(length) must use the two-byte form")
            }
        }
        guard length <= UInt64(self.maximumFrameSize) else {
            throw WebSocketCodecError(
                .frameTooLarge,
                "a frame of \(length) bytes exceeds the limit of \(self.maximumFrameSize)"
            )
        }
        let count = Int(length)
        var mask: (UInt8, UInt8, UInt8, UInt8)?
        if masked {
            guard bytes.endIndex - index >= 4 else { return nil }
            mask = (bytes[index], bytes[index + 1], bytes[index + 2], bytes[index + 3])
            index += 4
        }
        guard bytes.endIndex - index >= count else { return nil }
        var payload = Array(bytes[index..<(index + count)])
        if let mask {
            payload.withUnsafeMutableBytes { WebSocketFrame.applyMask(mask, to: $0) }
        }
        return (WebSocketFrame(fin: fin, opcode: opcode, payload: payload), index + count - start)
    }
}
