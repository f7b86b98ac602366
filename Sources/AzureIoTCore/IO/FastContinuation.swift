/// The continuation of the library's hot waits (socket readiness, a sender's PUBACK, the writer task): checked in
/// debug builds, where resuming one twice or never traps with a message and the tests run; unchecked in release,
/// where the checked continuation's extra heap object per wait would be one of the few allocations of a send.
#if DEBUG
    package typealias FastContinuation<T, E: Error> = CheckedContinuation<T, E>
#else
    package typealias FastContinuation<T, E: Error> = UnsafeContinuation<T, E>
#endif

#if DEBUG
    /// `withCheckedThrowingContinuation` in debug builds, `withUnsafeThrowingContinuation` in release.
    @inline(__always)
    package func withFastThrowingContinuation<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (FastContinuation<T, any Error>) -> Void
    ) async throws -> T {
        try await withCheckedThrowingContinuation(isolation: isolation, body)
    }

    /// `withCheckedContinuation` in debug builds, `withUnsafeContinuation` in release.
    @inline(__always)
    package func withFastContinuation<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (FastContinuation<T, Never>) -> Void
    ) async -> T {
        await withCheckedContinuation(isolation: isolation, body)
    }
#else
    /// `withCheckedThrowingContinuation` in debug builds, `withUnsafeThrowingContinuation` in release.
    @inline(__always)
    package func withFastThrowingContinuation<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (FastContinuation<T, any Error>) -> Void
    ) async throws -> T {
        try await withUnsafeThrowingContinuation(isolation: isolation, body)
    }

    /// `withCheckedContinuation` in debug builds, `withUnsafeContinuation` in release.
    @inline(__always)
    package func withFastContinuation<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (FastContinuation<T, Never>) -> Void
    ) async -> T {
        await withUnsafeContinuation(isolation: isolation, body)
    }
#endif
