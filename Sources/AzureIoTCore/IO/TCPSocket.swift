#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A non-blocking TCP socket; waits go through ``IOReactor``.
package enum TCPSocket {
    /// Connects to `host:port`, trying each resolved address in turn, and returns the connected descriptor.
    static func connect(host: String, port: Int, deadline: UInt64?) async throws -> Int32 {
        let addresses = try await NameResolver.resolve(host: host, port: port, deadline: deadline)
        var lastError = AzureIoTError(.connectionFailed, "cannot connect to \(host):\(port)")
        for var address in addresses {
            try Task.checkCancellation()
            let fd = socket(
                address.family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                0
            )
            guard fd >= 0 else {
                lastError = AzureIoTError(.ioFailure, "socket() failed: \(errnoText())")
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let status = withUnsafePointer(to: &address.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
            }
            if status == 0 { return fd }
            guard errno == EINPROGRESS else {
                lastError = AzureIoTError(.connectionFailed, "cannot connect to \(host):\(port): \(errnoText())")
                Glibc.close(fd)
                continue
            }
            do {
                try await IOReactor.shared.wait(fd: fd, for: .writable, deadline: deadline)
            } catch let error as AzureIoTError where error.code == .timedOut {
                Glibc.close(fd)
                throw AzureIoTError(.timedOut, "connecting to \(host):\(port) timed out")
            } catch {
                Glibc.close(fd)
                throw error
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
            if socketError == 0 { return fd }
            lastError = AzureIoTError(
                .connectionFailed,
                "cannot connect to \(host):\(port): \(String(cString: strerror(socketError)))"
            )
            Glibc.close(fd)
        }
        throw lastError
    }

    /// Makes a socket that a ``ConnectionOpener`` handed over ready for the reactor: non-blocking, close-on-exec,
    /// no Nagle delay. Closes it and throws when it is not a usable descriptor.
    static func prepareOpened(_ fd: Int32) throws(AzureIoTError) {
        let flags = fcntl(fd, F_GETFL)
        guard fd >= 0, flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            if fd >= 0 { Glibc.close(fd) }
            throw AzureIoTError(.ioFailure, "the connection opener returned an unusable socket")
        }
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    package static func errnoText() -> String { String(cString: strerror(errno)) }
}
