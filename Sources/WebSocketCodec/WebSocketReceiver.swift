/// Checks the order of frames on one connection and turns them into what the application acts on. Binary data is
/// handed on frame by frame as it arrives (MQTT and AMQP packets need not line up with WebSocket frames or
/// messages), while the size of each message is still counted against ``maximumMessageSize``; text is collected
/// until its last fragment and checked for UTF-8.
public struct WebSocketReceiver: Sendable {
    /// What a frame means to the application.
    public enum Event: Sendable, Hashable {
        /// Bytes of a binary message; `isMessageEnd` on its last fragment.
        case binary([UInt8], isMessageEnd: Bool)
        /// A whole text message.
        case text(String)
        /// A Ping: answer with a Pong carrying the same bytes.
        case ping([UInt8])
        /// A Pong.
        case pong([UInt8])
        /// A Close, with its status code and reason when it carried them: answer with a Close and stop.
        case close(code: UInt16?, reason: String)
    }

    private enum InProgress: Sendable {
        case none
        case binary(count: Int)
        case text([UInt8])
    }

    /// The largest message (all fragments together) accepted.
    public let maximumMessageSize: Int
    private var inProgress: InProgress = .none

    /// A receiver that refuses messages over `maximumMessageSize` bytes.
    public init(maximumMessageSize: Int = 1 << 20) {
        self.maximumMessageSize = max(0, maximumMessageSize)
    }

    /// The event `frame` makes, in the order frames arrived; `nil` for a text fragment before the last. Throws for a continuation with no message started, a
    /// new message while one is unfinished, an oversized message, text or a close reason that is not UTF-8, and a
    /// Close frame RFC 6455 does not allow.
    public mutating func receive(_ frame: WebSocketFrame) throws(WebSocketCodecError) -> Event? {
        switch frame.opcode {
        case .ping: return .ping(frame.payload)
        case .pong: return .pong(frame.payload)
        case .close: return try Self.close(frame.payload)
        case .continuation:
            switch self.inProgress {
            case .none:
                throw WebSocketCodecError(.unexpectedContinuation, "a continuation frame with no message started")
            case .binary(let count):
                return try self.binary(frame, countSoFar: count)
            case .text(let bytes):
                return try self.text(frame, soFar: bytes)
            }
        case .binary:
            guard case .none = self.inProgress else {
                throw WebSocketCodecError(.unexpectedContinuation, "a new message started before the last one ended")
            }
            return try self.binary(frame, countSoFar: 0)
        default:
            guard case .none = self.inProgress else {
                throw WebSocketCodecError(.unexpectedContinuation, "a new message started before the last one ended")
            }
            return try self.text(frame, soFar: [])
        }
    }

    private mutating func binary(_ frame: WebSocketFrame, countSoFar: Int) throws(WebSocketCodecError) -> Event {
        let count = countSoFar + frame.payload.count
        guard count <= self.maximumMessageSize else {
            throw WebSocketCodecError(.messageTooLarge, "a message of more than \(self.maximumMessageSize) bytes")
        }
        self.inProgress = frame.fin ? .none : .binary(count: count)
        return .binary(frame.payload, isMessageEnd: frame.fin)
    }

    private mutating func text(_ frame: WebSocketFrame, soFar: [UInt8]) throws(WebSocketCodecError) -> Event? {
        guard soFar.count + frame.payload.count <= self.maximumMessageSize else {
            throw WebSocketCodecError(.messageTooLarge, "a message of more than \(self.maximumMessageSize) bytes")
        }
        let bytes = soFar + frame.payload
        guard frame.fin else {
            self.inProgress = .text(bytes)
            // An event for the application only comes with the last fragment; until then the bytes wait here.
            return nil
        }
        self.inProgress = .none
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw WebSocketCodecError(.invalidUTF8, "a text message is not valid UTF-8")
        }
        return .text(text)
    }

    private static func close(_ payload: [UInt8]) throws(WebSocketCodecError) -> Event {
        if payload.isEmpty { return .close(code: nil, reason: "") }
        guard payload.count >= 2 else {
            throw WebSocketCodecError(.invalidCloseFrame, "a Close body of one byte")
        }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard Self.isSendable(closeCode: code) else {
            throw WebSocketCodecError(.invalidCloseFrame, "close status \(code) may not be sent")
        }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else {
            throw WebSocketCodecError(.invalidUTF8, "a close reason is not valid UTF-8")
        }
        return .close(code: code, reason: reason)
    }

    /// Whether `code` may appear in a Close frame (§7.4.1–7.4.2 and the IANA registry): 1000–1003, 1007–1014,
    /// 3000–4999. 1004–1006 and 1015 are reserved for reporting, never sent.
    public static func isSendable(closeCode code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}
