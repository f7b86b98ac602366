public import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS server socket on the same transport as ``TLSConnection`` (for the emulator and test peers): it accepts TCP
/// connections and runs the server side of the handshake, asking for client certificates as configured.
public final class TLSListener: Sendable {
    private let fd: Int32
    private let context: TLSContext
    private let configuration: TLSServerConfiguration
    private let logger: Logger
    /// The port actually bound (useful when binding port 0).
    public let port: Int
    /// The address bound.
    public let host: String

    /// Binds and listens on `host:port` (IPv4 or IPv6 literal; port 0 picks a free port).
    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        configuration: TLSServerConfiguration,
        logger: Logger = TLSConnection.disabledLogger
    ) throws(AzureIoTError) {
        self.context = try TLSContext(server: configuration)
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
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
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
    }

    deinit { Glibc.close(self.fd) }

    /// Waits for the next client and completes its handshake. A failed handshake throws (the listener stays usable).
    public func accept() async throws -> TLSConnection {
        while true {
            let client = Glibc.accept(self.fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                var one: Int32 = 1
                _ = setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return try await TLSConnection.accept(
                    fd: client,
                    peerName: "client of \(self.host):\(self.port)",
                    context: self.context,
                    timeout: self.configuration.handshakeTimeout,
                    logger: self.logger
                )
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                throw AzureIoTError(.ioFailure, "accept() failed: \(TCPSocket.errnoText())")
            }
            try await IOReactor.shared.wait(fd: self.fd, for: .readable, deadline: nil)
        }
    }

    /// Stops accepting: pending ``accept()`` calls fail with ``AzureIoTError/Code/connectionClosed``.
    public func close() {
        Glibc.shutdown(self.fd, Int32(SHUT_RDWR))
        IOReactor.shared.failWaiters(fd: self.fd, with: AzureIoTError(.connectionClosed, "the listener was closed"))
    }
}
