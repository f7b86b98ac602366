private import CAzureIoTOpenSSL
private import CAzureIoTShims
public import Logging
import WebSocketCodec

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An encrypted byte stream over TCP, on the system OpenSSL: SNI, host-name verification, TLS 1.2 minimum, the
/// system or a caller's trust roots, and an optional client certificate.
///
/// Sockets are non-blocking; every wait is a suspension on the I/O reactor's thread, honours task cancellation and
/// its timeout. One task may read while another writes; OpenSSL calls are serialised internally.
public final class TLSConnection: Sendable {
    /// Our end's role.
    public enum Role: Sendable {
        /// We connected.
        case client
        /// We accepted.
        case server
    }

    private struct Session: @unchecked Sendable {
        let ssl: OpaquePointer
        /// The socket, read and written directly when the connection is ``TLSConnection/isPlaintext``.
        let fd: Int32
        /// No TLS: bytes go to and from the socket as they are (the emulator's plain AMQP port for Event Hubs
        /// clients' development mode). The `SSL` object is never used then.
        var plaintext = false
        var closed = false
        /// The WebSocket layer, once the connection has been upgraded.
        var webSocket: WebSocketFraming?
    }

    private let session: AdaptiveLock<Session>
    private let fd: Int32
    /// Keeps the `SSL_CTX` alive as long as the `SSL` made from it.
    private let context: TLSContext
    private let logger: Logger
    /// Our end's role.
    public let role: Role
    /// The host we connected to, or the peer's address for accepted connections.
    public let peerName: String

    private init(fd: Int32, context: TLSContext, role: Role, peerName: String, logger: Logger) throws(AzureIoTError) {
        guard let ssl = SSL_new(context.pointer) else {
            Glibc.close(fd)
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not create a TLS session",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        SSL_set_fd(ssl, fd)
        azi_ssl_ignore_unexpected_eof(UnsafeMutableRawPointer(ssl))
        if role == .client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
        self.session = AdaptiveLock(Session(ssl: ssl, fd: fd))
        self.fd = fd
        self.context = context
        self.role = role
        self.peerName = peerName
        self.logger = logger
    }

    deinit {
        self.session.withLock { SSL_free($0.ssl) }
        Glibc.close(self.fd)
    }

    // MARK: - Connecting

    /// Connects to `host:port` and completes the TLS handshake within `configuration.connectTimeout`.
    ///
    /// Handshake failures are told apart: ``AzureIoTError/Code/certificateUntrusted``,
    /// ``AzureIoTError/Code/hostnameMismatch``, ``AzureIoTError/Code/certificateExpired``,
    /// ``AzureIoTError/Code/unsupportedTLSVersion``, ``AzureIoTError/Code/clientCertificateRejected``,
    /// ``AzureIoTError/Code/tlsHandshakeFailed``; TCP failures are ``AzureIoTError/Code/nameResolutionFailed``,
    /// ``AzureIoTError/Code/connectionFailed`` and ``AzureIoTError/Code/timedOut``.
    public static func connect(
        host: String,
        port: Int,
        configuration: TLSConfiguration = TLSConfiguration(),
        logger: Logger = TLSConnection.disabledLogger
    ) async throws -> TLSConnection {
        let context = try TLSContext(client: configuration)
        return try await connect(host: host, port: port, context: context, configuration: configuration, logger: logger)
    }

    static func connect(
        host: String,
        port: Int,
        context: TLSContext,
        configuration: TLSConfiguration,
        logger: Logger
    ) async throws -> TLSConnection {
        let deadline = MonotonicClock.deadline(after: configuration.connectTimeout)
        logger.debug("connecting", metadata: ["host": "\(host)", "port": "\(port)"])
        let fd: Int32
        if let opener = configuration.connectionOpener {
            logger.debug("opening the connection", metadata: ["through": "\(opener)"])
            fd = try await opener.openSocket(host: host, port: port, timeout: configuration.connectTimeout)
            try TCPSocket.prepareOpened(fd)
        } else {
            fd = try await TCPSocket.connect(host: host, port: port, deadline: deadline)
        }
        let connection = try TLSConnection(fd: fd, context: context, role: .client, peerName: host, logger: logger)
        let name = configuration.serverName ?? host
        try connection.session.withLock { session throws(AzureIoTError) in
            try Self.configurePeerName(session.ssl, name: name, verify: configuration.verifiesHostname)
        }
        try await connection.handshake(deadline: deadline)
        logger.debug("TLS established", metadata: ["host": "\(host)", "version": "\(connection.protocolVersion)"])
        if let upgrade = configuration.webSocket {
            try await connection.upgrade(to: upgrade, host: host, port: port, deadline: deadline)
            logger.debug(
                "WebSocket established",
                metadata: ["path": "\(upgrade.path)", "protocol": "\(upgrade.subprotocol)"]
            )
        }
        return connection
    }

    /// Wraps an accepted socket and runs the server side of the handshake.
    package static func accept(fd: Int32, peerName: String, context: TLSContext, timeout: Duration, logger: Logger)
        async throws -> TLSConnection
    {
        let connection = try TLSConnection(fd: fd, context: context, role: .server, peerName: peerName, logger: logger)
        try await connection.handshake(deadline: MonotonicClock.deadline(after: timeout))
        return connection
    }

    /// Wraps an accepted socket without TLS: reads and writes go to the socket as they are. Only for servers that
    /// must speak a protocol in the clear (the emulator's plain AMQP port); no WebSocket upgrade is possible on it.
    package static func acceptPlaintext(fd: Int32, peerName: String, context: TLSContext, logger: Logger) throws
        -> TLSConnection
    {
        let connection = try TLSConnection(fd: fd, context: context, role: .server, peerName: peerName, logger: logger)
        connection.session.withLock { $0.plaintext = true }
        return connection
    }

    /// Whether the connection runs without TLS (see `acceptPlaintext`).
    public var isPlaintext: Bool { self.session.withLock { $0.plaintext } }

    private static func configurePeerName(_ ssl: OpaquePointer, name: String, verify: Bool) throws(AzureIoTError) {
        let isIPAddress = name.withCString { text -> Bool in
            var v4 = in_addr()
            var v6 = in6_addr()
            return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
        }
        if !isIPAddress { _ = azi_ssl_set_tlsext_host_name(UnsafeMutableRawPointer(ssl), name) }
        guard verify else { return }
        let ok: Bool
        if isIPAddress {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
        } else {
            ok = SSL_set1_host(ssl, name) == 1
        }
        guard ok else {
            throw AzureIoTError(
                .invalidArgument,
                "'\(name)' is not a valid host name to verify",
                details: OpenSSLErrorQueue.drainText()
            )
        }
    }

    private func handshake(deadline: UInt64?) async throws {
        do {
            try await self.perform(deadline: deadline, during: .handshake) { session -> Step<Void> in
                let result = SSL_do_handshake(session.ssl)
                return result == 1 ? .done(()) : Self.step(session.ssl, result)
            }
        } catch {
            self.close()
            throw error
        }
    }

    // MARK: - WebSockets

    /// Whether the connection carries a WebSocket (RFC 6455) over TLS.
    public var isWebSocket: Bool { self.session.withLock { $0.webSocket != nil } }

    /// The client's opening handshake: the upgrade request for `upgrade`, then the server's `101` answer checked.
    private func upgrade(to upgrade: WebSocketUpgrade, host: String, port: Int, deadline: UInt64?) async throws {
        do {
            var nonce = [UInt8](repeating: 0, count: 16)
            var generator = SystemRandomNumberGenerator()
            for index in nonce.indices { nonce[index] = generator.next() }
            let handshake = try WebSocketClientHandshake(
                host: port == WebSocketUpgrade.defaultPort ? host : "\(host):\(port)",
                path: upgrade.path,
                protocols: [upgrade.subprotocol],
                nonce: nonce
            )
            try await self.write(handshake.requestBytes, timeout: MonotonicClock.remaining(until: deadline))
            var received: [UInt8] = []
            while true {
                if let (chosen, size) = try handshake.parseResponse(received[...]) {
                    guard chosen != nil else {
                        throw AzureIoTError(
                            .webSocketHandshakeFailed,
                            "\(self.peerName) accepted the WebSocket without the sub-protocol \(upgrade.subprotocol)"
                        )
                    }
                    let framing = WebSocketFraming(
                        role: .client,
                        maximumFrameSize: upgrade.maximumFrameSize,
                        leftover: Array(received[size...])
                    )
                    self.session.withLock { $0.webSocket = framing }
                    return
                }
                let more = try await self.read(timeout: MonotonicClock.remaining(until: deadline))
                guard !more.isEmpty else {
                    throw AzureIoTError(
                        .webSocketHandshakeFailed,
                        "\(self.peerName) closed the connection during the WebSocket upgrade"
                    )
                }
                received += more
            }
        } catch let error as WebSocketCodecError {
            self.close()
            throw AzureIoTError(
                .webSocketHandshakeFailed,
                "the WebSocket upgrade at \(self.peerName)\(upgrade.path) failed: \(error.message)",
                underlying: error
            )
        } catch {
            self.close()
            throw error
        }
    }

    /// The server's opening handshake: reads the client's upgrade request, answers `101` with the first offered
    /// sub-protocol that `protocols` names (as the client spelled it), and returns it. A request for a path not in
    /// `paths` (compared without a trailing slash or query),
    /// malformed or without a sub-protocol in common is answered with an HTTP error and throws
    /// ``AzureIoTError/Code/webSocketHandshakeFailed``; nothing is read past `maximumRequestSize` or `timeout`.
    package func acceptWebSocket(
        paths: [String],
        protocols: [String],
        maximumFrameSize: Int = 1 << 20,
        maximumRequestSize: Int = 16 * 1024,
        timeout: Duration
    ) async throws -> String {
        guard !self.isPlaintext else {
            throw AzureIoTError(.invalidArgument, "a connection without TLS takes no WebSocket upgrade")
        }
        let deadline = MonotonicClock.deadline(after: timeout)
        var received: [UInt8] = []
        do {
            while true {
                // A client speaking MQTT or AMQP straight away is told at once rather than when its bytes run out.
                let method = Array("GET /".utf8)
                guard received.prefix(method.count).elementsEqual(method.prefix(received.count)) else {
                    try await self.refuse(400, "not an HTTP GET upgrade request", deadline: deadline)
                }
                if let (request, size) = try WebSocketUpgradeRequest.parse(
                    received[...],
                    maximumSize: maximumRequestSize
                ) {
                    let target = Self.trimmedPath(request.path)
                    guard paths.contains(where: { Self.trimmedPath($0) == target }) else {
                        try await self.refuse(404, "no WebSocket endpoint at \(target)", deadline: deadline)
                    }
                    guard let chosen = request.selectProtocol(from: protocols) else {
                        try await self.refuse(
                            400,
                            "none of the sub-protocols offered is served (\(protocols.joined(separator: ", ")))",
                            deadline: deadline
                        )
                    }
                    try await self.write(
                        request.acceptance(selectedProtocol: chosen),
                        timeout: MonotonicClock.remaining(until: deadline)
                    )
                    let framing = WebSocketFraming(
                        role: .server,
                        maximumFrameSize: maximumFrameSize,
                        leftover: Array(received[size...])
                    )
                    self.session.withLock { $0.webSocket = framing }
                    return chosen
                }
                let more = try await self.read(timeout: MonotonicClock.remaining(until: deadline))
                guard !more.isEmpty else {
                    throw AzureIoTError(
                        .webSocketHandshakeFailed,
                        "the client closed the connection before its upgrade request"
                    )
                }
                received += more
            }
        } catch let error as WebSocketCodecError {
            let status = error.message.contains("Sec-WebSocket-Version") ? 426 : 400
            try? await self.write(
                WebSocketUpgradeRequest.refusal(status: status, reason: error.message),
                timeout: .seconds(1)
            )
            self.close()
            throw AzureIoTError(
                .webSocketHandshakeFailed,
                "a bad WebSocket upgrade request: \(error.message)",
                underlying: error
            )
        } catch {
            self.close()
            throw error
        }
    }

    private static func trimmedPath(_ path: String) -> String {
        var path = Substring(path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        return String(path)
    }

    private func refuse(_ status: Int, _ reason: String, deadline: UInt64?) async throws -> Never {
        try? await self.write(
            WebSocketUpgradeRequest.refusal(status: status, reason: reason),
            timeout: MonotonicClock.remaining(until: deadline)
        )
        throw AzureIoTError(.webSocketHandshakeFailed, "refused a WebSocket upgrade (\(status)): \(reason)")
    }

    // MARK: - Reading and writing

    /// Reads up to `maxBytes` bytes as soon as any arrive. Returns an empty array when the peer has closed.
    /// Throws ``AzureIoTError/Code/timedOut`` if nothing arrives within `timeout` (no timeout by default).
    public func read(maxBytes: Int = 16 * 1024, timeout: Duration? = nil) async throws -> [UInt8] {
        let deadline = MonotonicClock.deadline(after: timeout)
        return try await self.perform(deadline: deadline, during: .transfer) { Self.readStep(&$0, capacity: maxBytes) }
    }

    /// Writes all of `bytes`. Throws ``AzureIoTError/Code/timedOut`` if they cannot all be handed to the kernel
    /// within `timeout` (no timeout by default).
    public func write(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        guard !bytes.isEmpty else { return }
        let deadline = MonotonicClock.deadline(after: timeout)
        var offset = 0
        while offset < bytes.count {
            offset += try await self.perform(deadline: deadline, during: .transfer) { session -> Step<Int> in
                bytes.withUnsafeBytes { buffer in
                    Self.writeStep(&session, UnsafeRawBufferPointer(rebasing: buffer[offset...]))
                }
            }
        }
    }

    /// What a non-waiting read or write found.
    package enum Attempt<Result> {
        /// The operation made progress.
        case done(Result)
        /// Nothing can happen until the socket is readable.
        case needsReadable
        /// Nothing can happen until the socket is writable.
        case needsWritable
    }

    /// Reads what OpenSSL can deliver now without waiting (an empty array when the peer has closed). A caller that
    /// owns both directions of the connection (an actor) reads and writes with these, without lock contention or a
    /// thread hop, and suspends only through ``waitUntilReady(readable:deadline:)``.
    package func readNow(maxBytes: Int = 16 * 1024) throws(AzureIoTError) -> Attempt<[UInt8]> {
        try self.attempt(during: .transfer) { Self.readStep(&$0, capacity: maxBytes) }
    }

    /// Reads what is there now into `buffer` without waiting and without allocating; `.done(0)` is an orderly close.
    /// A reader that keeps one buffer per connection reads with no heap traffic.
    package func readNow(into buffer: UnsafeMutableRawBufferPointer) throws(AzureIoTError) -> Attempt<Int> {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return .done(0) }
        return try self.attempt(during: .transfer) { session -> Step<Int> in
            Self.readStep(&session, into: UnsafeMutableRawBufferPointer(start: base, count: buffer.count))
        }
    }

    /// Writes as much of `bytes` as the socket takes now without waiting; returns how many were written.
    package func writeNow(_ bytes: UnsafeRawBufferPointer) throws(AzureIoTError) -> Attempt<Int> {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .done(0) }
        return try self.attempt(during: .transfer) { session -> Step<Int> in
            Self.writeStep(&session, UnsafeRawBufferPointer(start: base, count: bytes.count))
        }
    }

    /// Finishes a write that ``writeNow(_:)`` left incomplete (`attempt`): waits for what the socket needs and offers
    /// the rest of the same bytes again, as OpenSSL requires after a partial write, until all of `bytes` is written.
    /// Throws ``AzureIoTError/Code/timedOut`` when one wait passes `timeout`.
    package func finishWrite(_ bytes: [UInt8], after attempt: Attempt<Int>, timeout: Duration?) async throws {
        var bytes = bytes
        var attempt = attempt
        while !bytes.isEmpty {
            switch attempt {
            case .done(let written):
                bytes.removeFirst(written)
                if bytes.isEmpty { continue }
            case .needsWritable:
                try await self.waitUntilReady(readable: false, timeout: timeout)
            case .needsReadable:
                try await self.waitUntilReady(readable: true, timeout: timeout)
            }
            attempt = try bytes.withUnsafeBytes { try self.writeNow($0) }
        }
    }

    /// Suspends until the socket is readable (or writable), or throws ``AzureIoTError/Code/timedOut`` after
    /// `timeout` (none by default) or `CancellationError` when the task is cancelled.
    nonisolated(nonsending) package func waitUntilReady(readable: Bool, timeout: Duration? = nil) async throws {
        try await self.waitForReadiness(
            readable ? .readable : .writable,
            deadline: MonotonicClock.deadline(after: timeout)
        )
    }

    /// Sends a TLS close_notify (best effort) and shuts the socket down; pending and later reads and writes fail
    /// with ``AzureIoTError/Code/connectionClosed``. Safe to call more than once.
    public func close() {
        let first = self.session.withLock { session -> Bool in
            guard !session.closed else { return false }
            session.closed = true
            if session.plaintext { return true }
            OpenSSLErrorQueue.clear()
            if session.webSocket != nil {
                // The WebSocket close handshake first (1000, normal closure), best effort.
                session.webSocket?.queueClose(code: 1000, reason: "")
                session.webSocket?.flushControl(session.ssl)
                OpenSSLErrorQueue.clear()
            }
            _ = SSL_shutdown(session.ssl)
            OpenSSLErrorQueue.clear()
            return true
        }
        guard first else { return }
        Glibc.shutdown(self.fd, Int32(SHUT_RDWR))
        IOReactor.shared.failWaiters(
            fd: self.fd,
            with: AzureIoTError(.connectionClosed, "the connection was closed locally")
        )
    }

    // MARK: - Introspection

    /// The negotiated protocol, e.g. `"TLSv1.3"`.
    public var protocolVersion: String {
        self.session.withLock { $0.plaintext ? "none" : String(cString: SSL_get_version($0.ssl)) }
    }

    /// The certificate the peer presented, if any (the server's, or a client's on accepted connections).
    public var peerCertificate: X509Certificate? {
        self.session.withLock { session in SSL_get1_peer_certificate(session.ssl).map { X509Certificate(taking: $0) } }
    }

    /// The certificates the peer sent, leaf first (on accepted connections, the client's leaf and intermediates).
    public var peerCertificateChain: [X509Certificate] {
        self.session.withLock { session in
            var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: 16)
            let count = Int(azi_ssl_peer_chain(UnsafeMutableRawPointer(session.ssl), &pointers, 16))
            let sent = pointers.prefix(count).compactMap { $0.map { X509Certificate(taking: OpaquePointer($0)) } }
            // On a server, OpenSSL's peer chain leaves out the client's leaf.
            guard self.role == .server, let leaf = SSL_get1_peer_certificate(session.ssl) else { return sent }
            return [X509Certificate(taking: leaf)] + sent
        }
    }

    /// A logger that drops everything, the default for callers that pass none.
    public static let disabledLogger = Logger(label: "azure-iot.disabled", factory: { _ in SwiftLogNoOpLogHandler() })

    // MARK: - The non-blocking loop

    private enum Phase { case handshake, transfer }

    private enum Step<Result> {
        case done(Result)
        case wantRead
        case wantWrite
        case failed(AzureIoTError)
    }

    /// Runs `operation` under the session lock until it completes, waiting for readiness in between.
    private func perform<Result>(
        deadline: UInt64?,
        during phase: Phase,
        _ operation: (inout Session) -> Step<Result>
    ) async throws -> Result {
        var yielded = false
        while true {
            try Task.checkCancellation()
            switch self.step(during: phase, operation) {
            case .done(let result):
                return result
            case .failed(let error):
                throw error
            case .wantRead where !yielded && phase == .transfer:
                // On a busy connection the next bytes are often already on their way: give other tasks one turn and
                // try again before paying for a reactor round trip (an epoll re-arm and a wake-up).
                yielded = true
                await Task.yield()
            case .wantRead:
                try await self.waitForReadiness(.readable, deadline: deadline)
            case .wantWrite:
                try await self.waitForReadiness(.writable, deadline: deadline)
            }
        }
    }

    /// Runs `operation` once under the session lock, with failures classified.
    private func step<Result>(during phase: Phase, _ operation: (inout Session) -> Step<Result>) -> Step<Result> {
        self.session.withLock { session -> Step<Result> in
            guard !session.closed else {
                return .failed(AzureIoTError(.connectionClosed, "the connection is closed"))
            }
            OpenSSLErrorQueue.clear()
            let step = operation(&session)
            if case .failed(let error) = step {
                return .failed(self.classify(error, ssl: session.ssl, phase: phase))
            }
            return step
        }
    }

    /// Runs `operation` once, without waiting.
    private func attempt<Result>(during phase: Phase, _ operation: (inout Session) -> Step<Result>)
        throws(AzureIoTError) -> Attempt<Result>
    {
        switch self.step(during: phase, operation) {
        case .done(let result): return .done(result)
        case .wantRead: return .needsReadable
        case .wantWrite: return .needsWritable
        case .failed(let error): throw error
        }
    }

    nonisolated(nonsending) private func waitForReadiness(_ interest: IOReactor.Interest, deadline: UInt64?)
        async throws
    {
        do {
            try await IOReactor.shared.wait(fd: self.fd, for: interest, deadline: deadline)
        } catch let error as AzureIoTError where error.code == .timedOut {
            throw AzureIoTError(.timedOut, "no progress on the TLS connection to \(self.peerName) before the timeout")
        }
    }

    /// One read of up to `capacity` bytes; an orderly close reads as no bytes.
    private static func readStep(_ session: inout Session, capacity: Int) -> Step<[UInt8]> {
        var step: Step<Int> = .done(0)
        let bytes = [UInt8](unsafeUninitializedCapacity: max(1, capacity)) { buffer, count in
            step = Self.readStep(&session, into: UnsafeMutableRawBufferPointer(buffer))
            if case .done(let read) = step { count = read } else { count = 0 }
        }
        switch step {
        case .done: return .done(bytes)
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .failed(let error): return .failed(error)
        }
    }

    /// One read into `buffer`, through the WebSocket layer when there is one; `.done(0)` is an orderly close.
    private static func readStep(_ session: inout Session, into buffer: UnsafeMutableRawBufferPointer) -> Step<Int> {
        if session.plaintext {
            let result = recv(session.fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if result >= 0 { return .done(result) }
            return Self.socketStep(errno, want: .wantRead)
        }
        if session.webSocket != nil {
            return Self.step(session.webSocket!.read(session.ssl, into: buffer))
        }
        var read = 0
        let result = SSL_read_ex(session.ssl, buffer.baseAddress, buffer.count, &read)
        if result == 1 { return .done(read) }
        if SSL_get_error(session.ssl, result) == SSL_ERROR_ZERO_RETURN { return .done(0) }
        return Self.step(session.ssl, result)
    }

    /// One write of `bytes` (not empty), through the WebSocket layer when there is one.
    private static func writeStep(_ session: inout Session, _ bytes: UnsafeRawBufferPointer) -> Step<Int> {
        if session.plaintext {
            let result = send(session.fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            if result >= 0 { return .done(result) }
            return Self.socketStep(errno, want: .wantWrite)
        }
        if session.webSocket != nil {
            return Self.step(session.webSocket!.write(session.ssl, bytes))
        }
        var written = 0
        let result = SSL_write_ex(session.ssl, bytes.baseAddress, bytes.count, &written)
        return result == 1 ? .done(written) : Self.step(session.ssl, result)
    }

    /// A failed `recv`/`send` on a plaintext connection: a want when the socket would block, else the failure.
    private static func socketStep<Result>(_ code: Int32, want: Step<Result>) -> Step<Result> {
        switch code {
        case EAGAIN, EWOULDBLOCK, EINTR: return want
        case ECONNRESET, EPIPE: return .failed(AzureIoTError(.connectionClosed, "the peer closed the connection"))
        default: return .failed(AzureIoTError(.ioFailure, "socket error: \(String(cString: strerror(code)))"))
        }
    }

    private static func step<Result>(_ outcome: WebSocketFraming.Outcome<Result>) -> Step<Result> {
        switch outcome {
        case .done(let result): return .done(result)
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .failed(let error): return .failed(error)
        }
    }

    /// The error behind an OpenSSL result that is neither success nor a want.
    static func failure(_ ssl: OpaquePointer, _ result: Int32) -> AzureIoTError {
        let step: Step<Void> = Self.step(ssl, result)
        if case .failed(let error) = step { return error }
        return AzureIoTError(.tlsFailure, "TLS failure")
    }

    /// Turns an OpenSSL return value into a step, draining the error queue into failures.
    private static func step<Result>(_ ssl: OpaquePointer, _ result: Int32) -> Step<Result> {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .failed(AzureIoTError(.connectionClosed, "the peer closed the TLS session"))
        case SSL_ERROR_SYSCALL:
            let code = errno
            let entries = OpenSSLErrorQueue.drainText()
            if code == 0 || code == ECONNRESET || code == EPIPE {
                return .failed(AzureIoTError(.connectionClosed, "the peer closed the connection", details: entries))
            }
            return .failed(
                AzureIoTError(.ioFailure, "socket error: \(String(cString: strerror(code)))", details: entries)
            )
        default:
            return .failed(AzureIoTError(.tlsFailure, "TLS failure", details: OpenSSLErrorQueue.drainText()))
        }
    }

    /// Refines a failure using the verification result and the OpenSSL reasons.
    private func classify(_ error: AzureIoTError, ssl: OpaquePointer, phase: Phase) -> AzureIoTError {
        guard error.code == .tlsFailure || (phase == .handshake && error.code == .connectionClosed) else {
            return error
        }
        let reasons = error.details
        let peer = self.peerName
        if phase == .handshake && self.role == .client {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                let text = String(cString: X509_verify_cert_error_string(verify))
                switch Int32(verify) {
                case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
                    return AzureIoTError(
                        .hostnameMismatch,
                        "the certificate of \(peer) is not valid for that name: \(text)",
                        details: reasons
                    )
                case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
                    return AzureIoTError(
                        .certificateExpired,
                        "the certificate of \(peer) is outside its validity period: \(text)",
                        details: reasons
                    )
                default:
                    return AzureIoTError(
                        .certificateUntrusted,
                        "the certificate of \(peer) is not trusted (\(text)); for IoT Edge or a private CA pass its root as trustRoots",
                        details: reasons
                    )
                }
            }
        }
        let codes = Set(error.details.compactMap(Self.reasonCode))
        if !codes.isDisjoint(with: Self.versionReasons) {
            return AzureIoTError(.unsupportedTLSVersion, "\(peer) does not speak TLS 1.2 or later", details: reasons)
        }
        if self.role == .client && !codes.isDisjoint(with: Self.clientCertificateReasons) {
            return AzureIoTError(
                .clientCertificateRejected,
                "\(peer) rejected the client certificate (or required one)",
                details: reasons
            )
        }
        if phase == .handshake {
            return AzureIoTError(.tlsHandshakeFailed, "the TLS handshake with \(peer) failed", details: reasons)
        }
        return error
    }

    /// OpenSSL reasons that mean "no common protocol version".
    private static let versionReasons: Set<Int32> = [
        SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, SSL_R_NO_PROTOCOLS_AVAILABLE,
    ]
    /// OpenSSL reasons that mean "the server did not accept our certificate".
    private static let clientCertificateReasons: Set<Int32> = [
        SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_TLSV1_ALERT_UNKNOWN_CA,
        SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN, SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE,
        SSL_R_TLSV1_ALERT_ACCESS_DENIED,
        SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED,
    ]

    /// Extracts the reason number from an `ERR_error_string_n` line (`error:0A000102:SSL routines::…`).
    private static func reasonCode(_ line: String) -> Int32? {
        let parts = line.split(separator: ":")
        guard parts.count > 1, let packed = UInt(parts[1], radix: 16) else { return nil }
        return azi_err_get_reason(packed)
    }
}
