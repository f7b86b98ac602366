#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Monotonic nanoseconds for deadlines (never jumps with the wall clock).
package enum MonotonicClock {
    /// Nanoseconds since an arbitrary fixed point.
    package static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// The deadline `duration` from now, or `nil` for no deadline.
    package static func deadline(after duration: Duration?) -> UInt64? {
        guard let duration else { return nil }
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(0, seconds) * 1_000_000_000 + (seconds >= 0 ? attoseconds / 1_000_000_000 : 0)
        return now() &+ UInt64(nanoseconds)
    }

    /// The time left until `deadline` (zero once it has passed), or `nil` for no deadline.
    static func remaining(until deadline: UInt64?) -> Duration? {
        guard let deadline else { return nil }
        let now = Self.now()
        return deadline > now ? .nanoseconds(Int64(clamping: deadline - now)) : .zero
    }
}
