import Foundation

/// A small, fast, seedable generator (SplitMix64) for randomized tests. Each test draws its seed from
/// `AZURE_IOT_TEST_SEED` when set, otherwise from the system, and puts ``seed`` into the message of every
/// expectation, so a failure prints the seed and `AZURE_IOT_TEST_SEED=<seed> swift test --filter …` replays it.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The seed this generator started from.
    public let seed: UInt64
    private var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    /// A generator seeded from `AZURE_IOT_TEST_SEED`, or from the system when it is not set.
    public init() {
        let fixed = ProcessInfo.processInfo.environment["AZURE_IOT_TEST_SEED"].flatMap { UInt64($0) }
        self.init(seed: fixed ?? UInt64.random(in: .min ... .max))
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// What a failing expectation prints: how to replay the run.
    public var replay: String { "AZURE_IOT_TEST_SEED=\(self.seed)" }
}
