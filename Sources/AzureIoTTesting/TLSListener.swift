public import AzureIoTCore
public import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A TLS server socket on the same transport as `TLSConnection` (for the emulator and test peers): it accepts TCP
/// connections and runs the server side of the handshake, asking for client certificates as configured.
public final class TLSListener: Sendable {
    private let fd: Int32
    private let context: TLSContext
    private let configuration: TLSServerConfiguration
    private let logger: Logger
    /// A descriptor held in reserve: when the process runs out, it is closed to accept one waiting client and close
    /// it at once (shedding it rather than leaving it hanging in the backlog), then opened again.
    private let reserve = AdaptiveLock<Int32>(-1)
    /// The port actually bound (useful when binding port 0).
    public let port: Int
    /// The address bound.
    public let host: String
    /// Connections are accepted without TLS (``PendingTLSConnection/handshake()`` hands the socket over as it is).
    package let plaintext: Bool
    /// The unix socket's path, for a listener on one (removed when the listener goes).
    package let unixSocketPath: String?

    /// Binds and listens on `host:port` (IPv4 or IPv6 literal; port 0 picks a free port).
    public convenience init(
        host: String = "127.0.0.1",
        port: Int = 0,
        configuration: TLSServerConfiguration,
        logger: Logger = TLSConnection.disabledLogger
    ) throws(AzureIoTError) {
        try self.init(host: host, port: port, configuration: configuration, plaintext: false, logger: logger)
    }

    /// Binds and listens on `host:port`; with `plaintext`, accepted connections skip TLS (the emulator's plain AMQP
    /// port for Event Hubs clients' development mode).
    package init(
        host: String = "127.0.0.1",
        port: Int = 0,
        configuration: TLSServerConfiguration,
        plaintext: Bool,
        logger: Logger = TLSConnection.disabledLogger
    ) throws(AzureIoTError) {
        self.plaintext = plaintext
        self.unixSocketPath = nil
        guard (0...65535).contains(port) else {
            throw AzureIoTError(.invalidArgument, "port \(port) is not in 0...65535 (0 picks a free port)")
        }
        self.context = try configuration.makeContext()
        self.configuration = configuration
        self.logger = logger
        self.host = host
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        if host.contains(":") {
            family = AF_INET6
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                throw AzureIoTError(.invalidArgument, "'\(host)' is not an IP address to listen on")
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
        } else {
            family = AF_INET
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                throw AzureIoTError(.invalidArgument, "'\(host)' is not an IP address to listen on")
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
        }
        let fd = socket(
            family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { throw AzureIoTError(.ioFailure, "socket() failed: \(TCPSocket.errnoText())") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let reason = TCPSocket.errnoText()
            Glibc.close(fd)
            throw AzureIoTError(.ioFailure, "cannot listen on \(host):\(port): \(reason)")
        }
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let boundPort = withUnsafeBytes(of: &storage) { raw -> UInt16 in
            family == AF_INET6
                ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
        self.fd = fd
        self.port = Int(boundPort)
        self.reserve.withLock { $0 = open("/dev/null", O_RDONLY | O_CLOEXEC) }
    }

    /// Listens on a unix socket at `path` (replacing a stale socket file there), without TLS: local APIs such as the
    /// IoT Edge workload API. The socket file is made accessible to the user only.
    package init(
        unixSocketPath path: String,
        configuration: TLSServerConfiguration,
        logger: Logger = TLSConnection.disabledLogger
    ) throws(AzureIoTError) {
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw AzureIoTError(.invalidArgument, "a unix socket path must be 1 to \(capacity - 1) bytes")
        }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        self.context = try configuration.makeContext()
        self.configuration = configuration
        self.logger = logger
        self.plaintext = true
        self.unixSocketPath = path
        self.host = "unix:\(path)"
        self.port = 0
        let fd = socket(
            AF_UNIX,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { throw AzureIoTError(.ioFailure, "socket() failed: \(TCPSocket.errnoText())") }
        var status = stat()
        if lstat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 128) == 0 else {
            let reason = TCPSocket.errnoText()
            Glibc.close(fd)
            throw AzureIoTError(.ioFailure, "cannot listen on the unix socket '\(path)': \(reason)")
        }
        self.fd = fd
        self.reserve.withLock { $0 = open("/dev/null", O_RDONLY | O_CLOEXEC) }
    }

    deinit {
        if let path = self.unixSocketPath { unlink(path) }
        Glibc.close(self.fd)
        self.reserve.withLock { if $0 >= 0 { Glibc.close($0) } }
    }

    /// Sheds one waiting client using the reserve descriptor; whether one was shed.
    private func shedOneWaitingClient() -> Bool {
        self.reserve.withLock { reserve -> Bool in
            guard reserve >= 0 else { return false }
            Glibc.close(reserve)
            let client = Glibc.accept(self.fd, nil, nil)
            if client >= 0 { Glibc.close(client) }
            reserve = open("/dev/null", O_RDONLY | O_CLOEXEC)
            return client >= 0
        }
    }

    /// Waits for the next client and completes its handshake. A failed handshake throws (the listener stays usable).
    /// A server that must not be stalled by a client that connects and sends nothing uses ``acceptConnection()``
    /// and runs each handshake in a task of its own.
    public func accept() async throws -> TLSConnection {
        try await self.acceptConnection().handshake()
    }

    /// Waits for the next TCP client, without its TLS handshake. When the process or the system is out of file
    /// descriptors (or socket buffers), it sheds one waiting client through a descriptor kept in reserve, then waits
    /// and tries again, backing off from 10 ms to 1 s, instead of failing or spinning; it honours cancellation while
    /// it waits.
    public func acceptConnection() async throws -> PendingTLSConnection {
        var backoff: Duration = .milliseconds(10)
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.accept(self.fd, $0, &length)
                }
            }
            if client >= 0 {
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                var one: Int32 = 1
                if self.unixSocketPath == nil {
                    _ = setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
                let peer = self.unixSocketPath == nil ? Self.address(of: storage) : "unix"
                return PendingTLSConnection(fd: client, peerAddress: peer, listener: self)
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK:
                try await IOReactor.shared.wait(fd: self.fd, for: .readable, deadline: nil)
            case EINTR, ECONNABORTED, EPROTO, EPERM:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                let reason = TCPSocket.errnoText()
                let shed = self.shedOneWaitingClient()
                self.logger.warning(
                    "accept() is out of resources; backing off",
                    metadata: ["error": "\(reason)", "wait": "\(backoff)", "shed": "\(shed)"]
                )
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(1))
            default:
                throw AzureIoTError(.ioFailure, "accept() failed: \(TCPSocket.errnoText())")
            }
        }
    }

    /// `a.b.c.d` or an IPv6 literal.
    private static func address(of storage: sockaddr_storage) -> String {
        var storage = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = Int32(storage.ss_family)
        let written = withUnsafePointer(to: &storage) { pointer -> Bool in
            pointer.withMemoryRebound(to: UInt8.self, capacity: MemoryLayout<sockaddr_storage>.size) { raw in
                if family == AF_INET6 {
                    return raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                        var bytes = address.pointee.sin6_addr
                        return inet_ntop(AF_INET6, &bytes, &text, socklen_t(text.count)) != nil
                    }
                }
                return raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var bytes = address.pointee.sin_addr
                    return inet_ntop(AF_INET, &bytes, &text, socklen_t(text.count)) != nil
                }
            }
        }
        return written
            ? String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
    }

    fileprivate func handshake(fd: Int32) async throws -> TLSConnection {
        if self.plaintext {
            return try TLSConnection.acceptPlaintext(
                fd: fd,
                peerName: "client of \(self.host):\(self.port)",
                context: self.context,
                logger: self.logger
            )
        }
        return try await TLSConnection.accept(
            fd: fd,
            peerName: "client of \(self.host):\(self.port)",
            context: self.context,
            timeout: self.configuration.handshakeTimeout,
            logger: self.logger
        )
    }

    /// Stops accepting: pending ``accept()`` calls fail with `AzureIoTError/Code/connectionClosed`.
    public func close() {
        Glibc.shutdown(self.fd, Int32(SHUT_RDWR))
        IOReactor.shared.failWaiters(fd: self.fd, with: AzureIoTError(.connectionClosed, "the listener was closed"))
    }
}

/// A TCP connection a ``TLSListener`` accepted, before its TLS handshake. Either ``handshake()`` it (within the
/// listener's handshake time-out) or let it go: the socket is closed when it is released unused.
public final class PendingTLSConnection: Sendable {
    private let fd: Int32
    private let listener: TLSListener
    private let taken = AdaptiveLock(false)
    /// The client's address (`127.0.0.1`, `::1`, …), for per-source limits and logs.
    public let peerAddress: String

    fileprivate init(fd: Int32, peerAddress: String, listener: TLSListener) {
        self.fd = fd
        self.peerAddress = peerAddress
        self.listener = listener
    }

    /// Runs the server side of the TLS handshake; throws `AzureIoTError/Code/timedOut` past the listener's
    /// handshake time-out. Once called, the connection owns the socket, whatever the outcome.
    public func handshake() async throws -> TLSConnection {
        let first = self.taken.withLock { taken -> Bool in
            defer { taken = true }
            return !taken
        }
        guard first else { throw AzureIoTError(.invalidArgument, "this connection was handed over already") }
        return try await self.listener.handshake(fd: self.fd)
    }

    deinit {
        if !self.taken.withLock({ $0 }) { Glibc.close(self.fd) }
    }
}
