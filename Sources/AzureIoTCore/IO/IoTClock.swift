/// Time as the clients see it: timers (heartbeats, token renewal, back-off, operation time-outs) and the wall clock
/// that tokens are issued against. ``SystemClock`` is real time; tests pass a virtual clock (`ManualClock` in the test
/// support) and advance it, so timer-driven behaviour is tested in milliseconds without sleeping.
package protocol IoTClock: Sendable {
    /// Monotonic time since an arbitrary origin.
    func now() -> Duration
    /// Wall-clock seconds since 1970, what SAS tokens count in.
    func unixSeconds() -> UInt64
    /// Suspends for `duration` of this clock's time; throws `CancellationError` as soon as the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// Real time: `CLOCK_MONOTONIC`, `CLOCK_REALTIME` and `Task.sleep`.
package struct SystemClock: IoTClock {
    package init() {}

    package func now() -> Duration { .nanoseconds(Int64(truncatingIfNeeded: MonotonicClock.now())) }

    package func unixSeconds() -> UInt64 { UnixTime.now() }

    package func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}
