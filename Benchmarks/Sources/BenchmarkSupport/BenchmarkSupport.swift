import Foundation

/// Reads the counters of `Benchmarks/peers/malloc_counter.c` when it is preloaded (nil otherwise).
public enum MallocCounter {
    typealias Reader = @convention(c) () -> UInt64
    static let bytes: Reader? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "azi_bench_malloc_bytes").map {
        unsafeBitCast($0, to: Reader.self)
    }
    static let calls: Reader? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "azi_bench_malloc_calls").map {
        unsafeBitCast($0, to: Reader.self)
    }

    /// Bytes requested and allocation calls so far.
    public static func read() -> (bytes: UInt64?, calls: UInt64?) { (bytes?(), calls?()) }

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
