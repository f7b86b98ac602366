import Foundation
import Synchronization

/// Reads the counters of `Benchmarks/peers/malloc_counter.c` when it is preloaded (nil otherwise).
public enum MallocCounter {
    typealias Reader = @convention(c) () -> UInt64
    static let bytes: Reader? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "azi_bench_malloc_bytes").map {
        unsafeBitCast($0, to: Reader.self)
    }
    static let calls: Reader? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "azi_bench_malloc_calls").map {
        unsafeBitCast($0, to: Reader.self)
    }

    static let openSSLCalls: Reader? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "azi_bench_malloc_calls_openssl")
        .map { unsafeBitCast($0, to: Reader.self) }
    static let dispatchCalls: Reader? = dlsym(
        UnsafeMutableRawPointer(bitPattern: 0),
        "azi_bench_malloc_calls_dispatch"
    ).map { unsafeBitCast($0, to: Reader.self) }

    /// Bytes requested and allocation calls so far.
    public static func read() -> (bytes: UInt64?, calls: UInt64?) { (bytes?(), calls?()) }

    /// Allocation calls so far made by OpenSSL and by libdispatch (the system libraries under the SDK).
    public static func readSystem() -> (openSSL: UInt64, dispatch: UInt64)? {
        guard let openSSLCalls, let dispatchCalls else { return nil }
        return (openSSLCalls(), dispatchCalls())
    }

    /// "(OpenSSL a, libdispatch b, the rest c)" per operation between two ``readSystem()`` readings and the total
    /// calls per operation, or "" without the interposer.
    public static func breakdown(
        _ before: (openSSL: UInt64, dispatch: UInt64)?,
        _ after: (openSSL: UInt64, dispatch: UInt64)?,
        total: Double,
        per count: Int
    ) -> String {
        guard let before, let after else { return "" }
        let openSSL = Double(after.openSSL - before.openSSL) / Double(count)
        let dispatch = Double(after.dispatch - before.dispatch) / Double(count)
        return String(
            format: " (OpenSSL %.1f, libdispatch %.1f, this SDK and the Swift runtime %.1f)",
            openSSL,
            dispatch,
            total - openSSL - dispatch
        )
    }

    /// Allocations and bytes per call of `body`, run `count` times, or nil without the interposer.
    public static func perCall(_ count: Int, _ body: () throws -> Void) rethrows -> (calls: Double, bytes: Double)? {
        let before = read()
        for _ in 0..<count { try body() }
        let after = read()
        guard let b0 = before.bytes, let c0 = before.calls, let b1 = after.bytes, let c1 = after.calls else {
            return nil
        }
        return (Double(c1 - c0) / Double(count), Double(b1 - b0) / Double(count))
    }
}

/// A duration in seconds.
public func elapsedSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Counts settled operations across tasks and reads the malloc counter once `readAt` have settled, so that a
/// benchmark whose tasks run for the whole count measures its steady state without starting tasks in between.
public final class BenchmarkProgress: Sendable {
    public typealias Reading = (
        counter: (bytes: UInt64?, calls: UInt64?), system: (openSSL: UInt64, dispatch: UInt64)?
    )

    private let settledCount = Atomic<Int>(0)
    private let readAt: Int
    private let stored = Mutex<Reading?>(nil)

    public init(readAt: Int) {
        self.readAt = readAt
        if readAt <= 0 { self.record() }
    }

    /// One more operation settled.
    public func settled() {
        if self.settledCount.wrappingAdd(1, ordering: .relaxed).newValue == self.readAt { self.record() }
    }

    /// The counter as read when `readAt` operations had settled.
    public var reading: Reading {
        self.stored.withLock { $0 } ?? (MallocCounter.read(), MallocCounter.readSystem())
    }

    private func record() {
        let reading = (MallocCounter.readSystem(), MallocCounter.read())
        self.stored.withLock { $0 = (reading.1, reading.0) }
    }
}
