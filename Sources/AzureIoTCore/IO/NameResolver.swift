import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Resolves host names with `getaddrinfo` on ``BlockingCallThreads`` (never on the cooperative pool, which on Linux
/// `DispatchQueue.global()` is), with a deadline and cancellation: a resolution that outlives its caller finishes in
/// the background and is discarded, and one whose caller gave up before it started is not made.
enum NameResolver {
    /// One resolved socket address.
    struct Address: Sendable {
        var family: Int32
        var storage: sockaddr_storage
        var length: socklen_t
    }

    private final class Once: Sendable {
        private let continuation: Mutex<CheckedContinuation<[Address], any Error>?>
        init(_ continuation: CheckedContinuation<[Address], any Error>) { self.continuation = Mutex(continuation) }
        func resume(_ result: Result<[Address], any Error>) {
            self.continuation.withLock { $0.take() }?.resume(with: result)
        }
        /// Whether the caller has its answer already (a time-out or a cancellation).
        var answered: Bool { self.continuation.withLock { $0 == nil } }
    }

    /// The addresses of `host` for TCP on `port`, IPv4 and IPv6, in the order the system prefers.
    static func resolve(host: String, port: Int, deadline: UInt64?) async throws -> [Address] {
        let box = Mutex<Once?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let once = Once(continuation)
                box.withLock { $0 = once }
                if Task.isCancelled { once.resume(.failure(CancellationError())) }
                BlockingCallThreads.shared.run {
                    guard !once.answered else { return }
                    once.resume(Result { try lookup(host: host, port: port) })
                }
                if let deadline {
                    let now = MonotonicClock.now()
                    let delay = deadline > now ? deadline - now : 0
                    DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: delay))) {
                        once.resume(.failure(AzureIoTError(.timedOut, "resolving '\(host)' timed out")))
                    }
                }
            }
        } onCancel: {
            box.withLock { $0 }?.resume(.failure(CancellationError()))
        }
    }

    private static func lookup(host: String, port: Int) throws(AzureIoTError) -> [Address] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            let reason = String(cString: gai_strerror(status))
            throw AzureIoTError(.nameResolutionFailed, "cannot resolve '\(host)': \(reason)")
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let current = node {
            if let address = current.pointee.ai_addr {
                var storage = sockaddr_storage()
                let length = current.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
                }
                addresses.append(Address(family: current.pointee.ai_family, storage: storage, length: length))
            }
            node = current.pointee.ai_next
        }
        guard !addresses.isEmpty else {
            throw AzureIoTError(.nameResolutionFailed, "'\(host)' has no address")
        }
        return addresses
    }
}
