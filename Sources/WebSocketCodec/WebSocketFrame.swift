/// One WebSocket frame (RFC 6455 §5.2): what it carries, not how it was masked on the wire.
public struct WebSocketFrame: Sendable, Hashable {
    /// The frame types RFC 6455 defines.
    public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The 4-bit opcode.
        public let rawValue: UInt8
        /// An opcode from its 4-bit value; `nil` for the values RFC 6455 reserves.
        public init?(rawValue: UInt8) {
            guard [0x0, 0x1, 0x2, 0x8, 0x9, 0xA].contains(rawValue) else { return nil }
            self.rawValue = rawValue
        }
        private init(uncheckedRawValue: UInt8) { self.rawValue = uncheckedRawValue }

        /// A further fragment of the message in progress.
        public static let continuation = Opcode(uncheckedRawValue: 0x0)
        /// The first frame of a text message.
        public static let text = Opcode(uncheckedRawValue: 0x1)
        /// The first frame of a binary message (what MQTT and AMQP ride in).
        public static let binary = Opcode(uncheckedRawValue: 0x2)
        /// Close (§5.5.1).
        public static let close = Opcode(uncheckedRawValue: 0x8)
        /// Ping (§5.5.2).
        public static let ping = Opcode(uncheckedRawValue: 0x9)
        /// Pong (§5.5.3).
        public static let pong = Opcode(uncheckedRawValue: 0xA)

        /// Close, ping and pong.
        public var isControl: Bool { self.rawValue & 0x8 != 0 }

        /// The opcode's name.
        public var description: String {
            switch self.rawValue {
            case 0x0: return "continuation"
            case 0x1: return "text"
            case 0x2: return "binary"
            case 0x8: return "close"
            case 0x9: return "ping"
            default: return "pong"
            }
        }
    }

    /// Whether this is the last frame of its message.
    public var fin: Bool
    /// The frame type.
    public var opcode: Opcode
    /// The application data, unmasked.
    public var payload: [UInt8]

    /// A frame.
    public init(fin: Bool = true, opcode: Opcode, payload: [UInt8] = []) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }

    /// The longest payload a control frame may carry (§5.5).
    public static let maximumControlPayload = 125

    /// Appends the frame as it goes on the wire: masked with `maskingKey` when given (every client-to-server frame
    /// must be, §5.3), with the shortest length encoding. Throws ``WebSocketCodecError/Code/invalidControlFrame`` for a
    /// control frame over 125 bytes or not final.
    public func encode(into buffer: inout [UInt8], maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil)
        throws(WebSocketCodecError)
    {
        if self.opcode.isControl {
            guard self.fin, self.payload.count <= Self.maximumControlPayload else {
                throw WebSocketCodecError(
                    .invalidControlFrame,
                    "a \(self.opcode) frame must be final and carry at most 125 bytes (it has \(self.payload.count))"
                )
            }
        }
        Self.encodeHeader(
            fin: self.fin,
            opcode: self.opcode,
            payloadLength: self.payload.count,
            maskingKey: maskingKey,
            into: &buffer
        )
        let count = self.payload.count
        guard let key = maskingKey else {
            buffer.append(contentsOf: self.payload)
            return
        }
        let start = buffer.count
        buffer.append(contentsOf: self.payload)
        buffer.withUnsafeMutableBytes { bytes in
            Self.applyMask(key, to: UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + count)]))
        }
    }

    /// XORs `bytes` with the masking key, byte `i` with key byte `i % 4` (§5.3); masking and unmasking are the same.
    /// Eight bytes at a time.
    public static func applyMask(_ key: (UInt8, UInt8, UInt8, UInt8), to bytes: UnsafeMutableRawBufferPointer) {
        // The key repeated twice, as a word whose bytes in memory are key.0 … key.3, key.0 … key.3.
        let quad = UInt64(key.0) | UInt64(key.1) << 8 | UInt64(key.2) << 16 | UInt64(key.3) << 24
        let wide = UInt64(littleEndian: quad | quad << 32)
        var index = 0
        while index + 8 <= bytes.count {
            let value = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            bytes.storeBytes(of: value ^ wide, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            switch index & 3 {
            case 0: bytes[index] ^= key.0
            case 1: bytes[index] ^= key.1
            case 2: bytes[index] ^= key.2
            default: bytes[index] ^= key.3
            }
            index += 1
        }
    }

    /// Appends a frame header: FIN and opcode, the shortest length encoding of `payloadLength`, and the masking key
    /// when given. The payload (masked with that key by whoever writes it) follows. For writers that frame bytes they
    /// do not hold as an array; control-frame rules are the caller's (see ``encode(into:maskingKey:)``).
    public static func encodeHeader(
        fin: Bool,
        opcode: Opcode,
        payloadLength: Int,
        maskingKey: (UInt8, UInt8, UInt8, UInt8)?,
        into buffer: inout [UInt8]
    ) {
        buffer.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = maskingKey == nil ? 0 : 0x80
        let count = max(0, payloadLength)
        if count < 126 {
            buffer.append(maskBit | UInt8(count))
        } else if count <= 0xFFFF {
            buffer.append(maskBit | 126)
            buffer.append(UInt8(count >> 8))
            buffer.append(UInt8(count & 0xFF))
        } else {
            buffer.append(maskBit | 127)
            let length = UInt64(count)
            for shift in stride(from: 56, through: 0, by: -8) {
                buffer.append(UInt8(truncatingIfNeeded: length >> UInt64(shift)))
            }
        }
        if let key = maskingKey {
            buffer.append(key.0)
            buffer.append(key.1)
            buffer.append(key.2)
            buffer.append(key.3)
        }
    }

    /// The frame as bytes; see ``encode(into:maskingKey:)``.
    public func encoded(maskingKey: (UInt8, UInt8, UInt8, UInt8)? = nil) throws(WebSocketCodecError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(self.payload.count + 14)
        try self.encode(into: &buffer, maskingKey: maskingKey)
        return buffer
    }

    /// A Close frame with `code` and a UTF-8 `reason` (cut to fit the 125-byte limit at a character boundary); no
    /// body when `code` is `nil`.
    public static func close(code: UInt16?, reason: String = "") -> WebSocketFrame {
        guard let code else { return WebSocketFrame(opcode: .close) }
        var payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var reasonBytes: [UInt8] = []
        for character in reason {
            let bytes = Array(String(character).utf8)
            guard reasonBytes.count + bytes.count <= Self.maximumControlPayload - 2 else { break }
            reasonBytes += bytes
        }
        payload += reasonBytes
        return WebSocketFrame(opcode: .close, payload: payload)
    }
}
