private import CAzureIoTOpenSSL
import WebSocketCodec

/// How a client asks for a WebSocket over its TLS connection (RFC 6455): IoT Hub and DPS take MQTT and AMQP this way
/// on port 443, at `/$iothub/websocket`, so that they pass firewalls that only let HTTPS out.
public struct WebSocketUpgrade: Sendable, Hashable {
    /// The request path (IoT Hub and the emulator: `/$iothub/websocket`).
    public var path: String
    /// The sub-protocol to ask for: `mqtt` or `AMQPWSB10`.
    public var subprotocol: String
    /// The largest frame (and message) accepted from the server; a larger one closes the connection with 1009.
    public var maximumFrameSize: Int

    /// An upgrade to `subprotocol` at `path`.
    public init(path: String = Self.iotHubPath, subprotocol: String, maximumFrameSize: Int = 1 << 20) {
        self.path = path
        self.subprotocol = subprotocol
        self.maximumFrameSize = maximumFrameSize
    }

    /// IoT Hub's WebSocket path.
    public static let iotHubPath = "/$iothub/websocket"
    /// MQTT over WebSockets, as IoT Hub takes it.
    public static let mqtt = WebSocketUpgrade(subprotocol: "mqtt")
    /// AMQP over WebSockets, as IoT Hub takes it.
    public static let amqp = WebSocketUpgrade(subprotocol: "AMQPWSB10")
    /// The port IoT Hub and DPS serve WebSockets on.
    public static let defaultPort = 443
}

/// The WebSocket layer between TLS and MQTT or AMQP: outgoing bytes become binary frames (masked on a client), and
/// incoming frames become bytes again, with pings answered and the close handshake done here. A value type driven
/// under the connection's lock; it calls OpenSSL for its raw reads and writes but never waits.
struct WebSocketFraming {
    enum Outcome<Result> {
        case done(Result)
        case wantRead
        case wantWrite
        case failed(AzureIoTError)
    }

    private let masks: Bool
    private let decoder: WebSocketFrameDecoder
    private var receiver: WebSocketReceiver
    /// Bytes read from TLS, not yet cut into frames (`inboundStart..<inboundEnd`); the rest is room for reading.
    private var inbound: [UInt8]
    private var inboundStart = 0
    private var inboundEnd: Int
    /// Application bytes from binary frames, not yet handed out (from `payloadStart`).
    private var payload: [UInt8] = []
    private var payloadStart = 0
    /// The frame being written (from `outboundOffset`), and how many application bytes it carries (0: control only).
    private var outbound: [UInt8] = []
    private var outboundOffset = 0
    private var outboundCarries = 0
    /// Application bytes of a data frame fully written that its writer has not been told of yet.
    private var unreported = 0
    /// Control frames (pong, close) to write at the next frame boundary.
    private var control: [UInt8] = []
    /// The peer sent Close: reads end.
    private(set) var closeReceived = false
    /// We sent (or queued) Close: nothing more is written.
    private(set) var closeSent = false
    private var failure: AzureIoTError?

    /// The most bytes one outgoing frame carries; longer writes go out in several frames.
    static let maximumOutgoingFrame = 64 * 1024

    /// Framing for `role`; `leftover` is what followed the upgrade's header block (already frames).
    init(role: TLSConnection.Role, maximumFrameSize: Int, leftover: [UInt8]) {
        self.masks = role == .client
        self.decoder = WebSocketFrameDecoder(
            role: role == .client ? .client : .server,
            maximumFrameSize: maximumFrameSize
        )
        self.receiver = WebSocketReceiver(maximumMessageSize: Int.max)
        self.inbound = leftover
        self.inboundEnd = leftover.count
    }

    // MARK: - Reading

    /// Reads application bytes into `buffer`: `.done(0)` once the peer has closed (WebSocket Close, or TLS or TCP
    /// closed under it).
    mutating func read(_ ssl: OpaquePointer, into buffer: UnsafeMutableRawBufferPointer) -> Outcome<Int> {
        if let failure { return .failed(failure) }
        _ = self.flushControl(ssl)
        while true {
            if self.payloadStart < self.payload.count {
                let count = min(buffer.count, self.payload.count - self.payloadStart)
                self.payload.withUnsafeBytes { source in
                    buffer.baseAddress!.copyMemory(from: source.baseAddress! + self.payloadStart, byteCount: count)
                }
                self.payloadStart += count
                return .done(count)
            }
            if self.closeReceived { return .done(0) }
            let next: (frame: WebSocketFrame, size: Int)?
            do {
                next = try self.decoder.nextFrame(in: self.inbound[self.inboundStart..<self.inboundEnd])
            } catch {
                return .failed(self.violation(error, ssl))
            }
            guard let (frame, size) = next else {
                switch self.fill(ssl) {
                case .done(true): continue
                case .done(false):
                    // TLS or TCP ended without a Close frame: the stream is over all the same.
                    self.closeReceived = true
                    return .done(0)
                case .wantRead: return .wantRead
                case .wantWrite: return .wantWrite
                case .failed(let error): return .failed(error)
                }
            }
            self.inboundStart += size
            if frame.opcode == .text {
                // MQTT and AMQP ride in binary messages only; text is refused at its first fragment, so that a peer
                // cannot pile up an endless text message.
                let error = WebSocketCodecError(.invalidUTF8, "a text message on a binary sub-protocol")
                self.queueClose(code: 1003, reason: "binary only")
                _ = self.flushControl(ssl)
                return .failed(self.fail(.webSocketProtocolViolation, "the peer sent a text message", error))
            }
            let event: WebSocketReceiver.Event?
            do {
                event = try self.receiver.receive(frame)
            } catch {
                return .failed(self.violation(error, ssl))
            }
            switch event {
            case .binary(let bytes, _):
                self.payload = bytes
                self.payloadStart = 0
            case .ping(let bytes):
                self.queueControl(WebSocketFrame(opcode: .pong, payload: bytes))
                _ = self.flushControl(ssl)
            case .pong, .text, nil:
                break
            case .close(let code, _):
                self.closeReceived = true
                // The answer echoes the status (§5.5.1).
                self.queueClose(code: code, reason: "")
                _ = self.flushControl(ssl)
                return .done(0)
            }
        }
    }

    /// One `SSL_read_ex` into the inbound buffer: `.done(true)` with more bytes, `.done(false)` at the end.
    private mutating func fill(_ ssl: OpaquePointer) -> Outcome<Bool> {
        let chunk = 16 * 1024
        if self.inboundStart > 0 {
            let kept = self.inboundEnd - self.inboundStart
            self.inbound.withUnsafeMutableBytes { buffer in
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + self.inboundStart, byteCount: kept)
            }
            self.inboundStart = 0
            self.inboundEnd = kept
        }
        if self.inbound.count - self.inboundEnd < chunk {
            self.inbound.append(contentsOf: repeatElement(0, count: chunk - (self.inbound.count - self.inboundEnd)))
        }
        var read = 0
        let end = self.inboundEnd
        let result = self.inbound.withUnsafeMutableBytes { buffer in
            SSL_read_ex(ssl, buffer.baseAddress! + end, buffer.count - end, &read)
        }
        if result == 1 {
            self.inboundEnd += read
            return .done(true)
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_ZERO_RETURN: return .done(false)
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default: return .failed(TLSConnection.failure(ssl, result))
        }
    }

    // MARK: - Writing

    /// Writes `bytes` as one binary frame (at most ``maximumOutgoingFrame`` of them): `.done(n)` once the whole frame
    /// is with TLS. After a want, offer the same bytes again, as with `SSL_write`.
    mutating func write(_ ssl: OpaquePointer, _ bytes: UnsafeRawBufferPointer) -> Outcome<Int> {
        if let failure { return .failed(failure) }
        if self.closeSent {
            return .failed(AzureIoTError(.connectionClosed, "the WebSocket is closed"))
        }
        while true {
            switch self.finishOutbound(ssl) {
            case .done: break
            case .wantRead: return .wantRead
            case .wantWrite: return .wantWrite
            case .failed(let error): return .failed(error)
            }
            if self.unreported > 0 {
                let carried = self.unreported
                self.unreported = 0
                return .done(min(carried, bytes.count))
            }
            if !self.control.isEmpty {
                swap(&self.outbound, &self.control)
                self.control.removeAll(keepingCapacity: true)
                self.outboundOffset = 0
                self.outboundCarries = 0
                continue
            }
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return .done(0) }
            self.outboundCarries = 0
            let count = min(bytes.count, Self.maximumOutgoingFrame)
            self.outbound.removeAll(keepingCapacity: true)
            self.outboundOffset = 0
            let key = self.masks ? Self.maskingKey() : nil
            WebSocketFrame.encodeHeader(
                fin: true,
                opcode: .binary,
                payloadLength: count,
                maskingKey: key,
                into: &self.outbound
            )
            let start = self.outbound.count
            self.outbound.append(contentsOf: UnsafeRawBufferPointer(start: base, count: count))
            if let key {
                self.outbound.withUnsafeMutableBytes { frame in
                    WebSocketFrame.applyMask(
                        key,
                        to: UnsafeMutableRawBufferPointer(rebasing: frame[start..<(start + count)])
                    )
                }
            }
            self.outboundCarries = count
        }
    }

    /// Queues a Close frame (once); ``flushControl(_:)`` or the next write sends it.
    mutating func queueClose(code: UInt16?, reason: String) {
        guard !self.closeSent else { return }
        self.closeSent = true
        self.queueControl(WebSocketFrame.close(code: code, reason: reason))
    }

    /// Writes queued control frames (after a data frame half written, if any) without waiting; best effort, `true`
    /// when nothing is left to write.
    @discardableResult
    mutating func flushControl(_ ssl: OpaquePointer) -> Bool {
        guard case .done = self.finishOutbound(ssl) else { return false }
        guard !self.control.isEmpty else { return true }
        swap(&self.outbound, &self.control)
        self.control.removeAll(keepingCapacity: true)
        self.outboundOffset = 0
        self.outboundCarries = 0
        if case .done = self.finishOutbound(ssl) { return true }
        return false
    }

    /// Writes the rest of the frame in progress; a data frame's bytes are then owed to its writer (`unreported`).
    private mutating func finishOutbound(_ ssl: OpaquePointer) -> Outcome<Void> {
        let outcome = self.flushOutbound(ssl)
        if case .done = outcome, self.outboundCarries > 0 {
            self.unreported += self.outboundCarries
            self.outboundCarries = 0
        }
        return outcome
    }

    private mutating func queueControl(_ frame: WebSocketFrame) {
        let key = self.masks ? Self.maskingKey() : nil
        // Control frames built here are final and at most 125 bytes (pings are answered with their own payload, which
        // the decoder limits to 125); encoding cannot fail.
        try? frame.encode(into: &self.control, maskingKey: key)
    }

    private mutating func flushOutbound(_ ssl: OpaquePointer) -> Outcome<Void> {
        while self.outboundOffset < self.outbound.count {
            var written = 0
            let offset = self.outboundOffset
            let result = self.outbound.withUnsafeBytes { frame in
                SSL_write_ex(ssl, frame.baseAddress! + offset, frame.count - offset, &written)
            }
            guard result == 1 else {
                switch SSL_get_error(ssl, result) {
                case SSL_ERROR_WANT_READ: return .wantRead
                case SSL_ERROR_WANT_WRITE: return .wantWrite
                default:
                    let error = TLSConnection.failure(ssl, result)
                    self.failure = error
                    return .failed(error)
                }
            }
            self.outboundOffset += written
        }
        return .done(())
    }

    private static func maskingKey() -> (UInt8, UInt8, UInt8, UInt8) {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt32
        return (
            UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8),
            UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24)
        )
    }

    // MARK: - Failures

    /// A frame broke RFC 6455: the peer gets a Close with the matching status, and the connection fails.
    private mutating func violation(_ error: WebSocketCodecError, _ ssl: OpaquePointer) -> AzureIoTError {
        self.queueClose(code: error.closeCode ?? 1002, reason: "")
        _ = self.flushControl(ssl)
        return self.fail(.webSocketProtocolViolation, "the WebSocket peer broke RFC 6455: \(error.message)", error)
    }

    private mutating func fail(_ code: AzureIoTError.Code, _ message: String, _ cause: WebSocketCodecError)
        -> AzureIoTError
    {
        let error = AzureIoTError(code, message, underlying: cause)
        self.failure = error
        return error
    }
}
