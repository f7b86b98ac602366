/// When a client tries again after it lost its connection or an attempt failed, and when it stops.
///
/// - Every retry waits, the first one too: `initialDelay`, then `multiplier` times the last delay, up to
///   `maximumDelay`, each spread by ±`jitter` so that a fleet that lost its hub at once does not come back at once.
/// - The back-off only starts over after a connection that stayed up for `stableConnection`: a device that is
///   thrown out right after every CONNACK (two devices sharing one identity, a hub that closes on connect) keeps
///   backing off instead of reconnecting hundreds of times a second.
/// - Failures are ``Classification/transient`` (network, server busy, throttled) or ``Classification/permanent``
///   (refused credentials, an untrusted or wrong certificate, a disabled device). After `maximumPermanentFailures`
///   permanent failures in a row, or `maximumAttempts` attempts of any kind, the client gives up and says so.
///
/// The policy is a value; ``Backoff`` is the state one client keeps, driven without clocks or sockets.
public struct RetryPolicy: Sendable, Equatable {
    /// The wait before the first retry.
    public var initialDelay: Duration
    /// The longest wait.
    public var maximumDelay: Duration
    /// Each wait is this many times the previous one (at least 1).
    public var multiplier: Double
    /// Each wait is spread by up to this fraction either way (0...1).
    public var jitter: Double
    /// A connection that stayed up at least this long starts the back-off over.
    public var stableConnection: Duration
    /// Permanent failures in a row after which the client gives up.
    public var maximumPermanentFailures: Int
    /// Attempts in a row, of any kind, after which the client gives up; `nil` keeps trying transient failures.
    public var maximumAttempts: Int?

    /// A policy.
    public init(
        initialDelay: Duration = .seconds(1),
        maximumDelay: Duration = .seconds(60),
        multiplier: Double = 2,
        jitter: Double = 0.2,
        stableConnection: Duration = .seconds(60),
        maximumPermanentFailures: Int = 3,
        maximumAttempts: Int? = nil
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.stableConnection = stableConnection
        self.maximumPermanentFailures = maximumPermanentFailures
        self.maximumAttempts = maximumAttempts
    }

    /// 1 s doubling to 60 s with ±20 % jitter; a connection must last a minute to start over; three refusals in a
    /// row end the retries.
    public static let `default` = RetryPolicy()

    /// Whether a failure may go away by itself.
    public enum Classification: Sendable, Equatable {
        /// Network trouble, a busy or throttling server, a connection taken over: try again later.
        case transient
        /// Refused credentials, an untrusted or wrong certificate, a disabled identity: trying again the same way
        /// fails again.
        case permanent
    }

    /// How a transport or credential failure counts: a certificate that is not trusted or does not fit, and
    /// credentials that cannot be used as they are, are permanent; network trouble and the rest are transient.
    public static func classify(_ error: AzureIoTError) -> Classification {
        switch error.code {
        case .certificateUntrusted, .hostnameMismatch, .certificateExpired, .clientCertificateRejected,
            .unsupportedTLSVersion,
            .invalidCertificate, .invalidPrivateKey, .privateKeyMismatch, .malformedSASToken, .invalidBase64,
            .sasTokenExpired, .proxyAuthenticationRequired:
            return .permanent
        default:
            return .transient
        }
    }

    /// What to do after a failure.
    public enum Decision: Sendable, Equatable {
        /// Try again after this wait.
        case retry(after: Duration)
        /// Stop: the reason says why.
        case giveUp(String)
    }

    /// The retry state of one client.
    public struct Backoff: Sendable, Equatable {
        /// The policy in force.
        public let policy: RetryPolicy
        /// Attempts since the back-off last started over.
        public private(set) var attempts = 0
        /// Permanent failures in a row.
        public private(set) var permanentFailures = 0

        /// A fresh state.
        public init(policy: RetryPolicy) { self.policy = policy }

        /// The connection was lost after being up for `uptime`: the wait before reconnecting. `randomUnit` is a
        /// number in `0..<1` that places the wait within the jitter.
        public mutating func connectionLost(after uptime: Duration, randomUnit: Double) -> Duration {
            if uptime >= self.policy.stableConnection {
                self.attempts = 0
            }
            self.permanentFailures = 0
            return self.nextDelay(randomUnit)
        }

        /// An attempt failed: retry after a wait, or give up.
        public mutating func attemptFailed(_ classification: Classification, reason: String, randomUnit: Double)
            -> Decision
        {
            switch classification {
            case .permanent:
                self.permanentFailures += 1
                if self.permanentFailures >= max(1, self.policy.maximumPermanentFailures) {
                    return .giveUp("\(self.permanentFailures) permanent failures in a row; the last: \(reason)")
                }
            case .transient:
                self.permanentFailures = 0
            }
            if let limit = self.policy.maximumAttempts, self.attempts >= limit {
                return .giveUp("\(self.attempts) attempts failed; the last: \(reason)")
            }
            return .retry(after: self.nextDelay(randomUnit))
        }

        /// The next wait: `initialDelay × multiplier^attempts`, capped, with jitter; counts the attempt.
        private mutating func nextDelay(_ randomUnit: Double) -> Duration {
            let policy = self.policy
            let initial = Self.seconds(policy.initialDelay)
            let cap = Self.seconds(policy.maximumDelay)
            let exponent = min(Double(self.attempts), 64)
            let base = min(initial * pow(max(1, policy.multiplier), exponent), cap)
            let spread = min(max(policy.jitter, 0), 1)
            let unit = min(max(randomUnit, 0), 1)
            let jittered = base * (1 - spread + 2 * spread * unit)
            self.attempts += 1
            // Saturates rather than traps for a policy configured with an absurd maximum (about 292 years).
            let milliseconds = min(jittered, cap * (1 + spread)) * 1000
            return .milliseconds(
                milliseconds.isFinite && milliseconds < 9.2e15 ? Int64(max(0, milliseconds)) : 9_200_000_000_000_000
            )
        }

        private static func seconds(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return Double(seconds) + Double(attoseconds) / 1e18
        }

        /// `base` to the power `exponent` without Foundation.
        private func pow(_ base: Double, _ exponent: Double) -> Double {
            var result = 1.0
            for _ in 0..<Int(exponent) {
                result *= base
                if result > 1e12 { break }
            }
            return result
        }
    }
}
