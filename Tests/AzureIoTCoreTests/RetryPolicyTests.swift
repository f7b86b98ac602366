import AzureIoTCore
import Testing

/// The retry policy as a value: delays, jitter, flapping, stable connections and giving up, without clocks.
@Suite("Retry policy")
struct RetryPolicyTests {
    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    @Test("every retry waits, the first one too; waits double up to the cap; jitter stays within ±20 %")
    func delays() {
        var backoff = RetryPolicy.Backoff(policy: RetryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(8)))
        let middle = (0..<6).map { _ in Self.seconds(backoff.connectionLost(after: .zero, randomUnit: 0.5)) }
        #expect(middle == [1, 2, 4, 8, 8, 8])
        var low = RetryPolicy.Backoff(policy: .default)
        var high = RetryPolicy.Backoff(policy: .default)
        #expect(Self.seconds(low.connectionLost(after: .zero, randomUnit: 0)) == 0.8)
        #expect(Self.seconds(high.connectionLost(after: .zero, randomUnit: 0.999_999)) > 1.19)
    }

    @Test("a connection lost right after it was made keeps backing off; one that stayed up starts over")
    func flappingAndStable() {
        var backoff = RetryPolicy.Backoff(
            policy: RetryPolicy(initialDelay: .seconds(1), stableConnection: .seconds(60))
        )
        // Thrown out right after every CONNACK (two devices sharing an identity): 1, 2, 4, 8 s …
        let flapping = (0..<4).map { _ in Self.seconds(backoff.connectionLost(after: .seconds(2), randomUnit: 0.5)) }
        #expect(flapping == [1, 2, 4, 8])
        // A connection that held for a minute: back to 1 s.
        #expect(Self.seconds(backoff.connectionLost(after: .seconds(61), randomUnit: 0.5)) == 1)
    }

    @Test("permanent failures in a row end the retries; a transient one in between starts the count again")
    func permanentLimit() {
        var backoff = RetryPolicy.Backoff(policy: RetryPolicy(maximumPermanentFailures: 3))
        #expect(backoff.attemptFailed(.permanent, reason: "refused", randomUnit: 0.5) == .retry(after: .seconds(1)))
        #expect(backoff.attemptFailed(.permanent, reason: "refused", randomUnit: 0.5) == .retry(after: .seconds(2)))
        #expect(backoff.attemptFailed(.transient, reason: "network", randomUnit: 0.5) == .retry(after: .seconds(4)))
        #expect(backoff.attemptFailed(.permanent, reason: "refused", randomUnit: 0.5) == .retry(after: .seconds(8)))
        #expect(backoff.attemptFailed(.permanent, reason: "refused", randomUnit: 0.5) == .retry(after: .seconds(16)))
        guard case .giveUp(let reason) = backoff.attemptFailed(.permanent, reason: "refused (5)", randomUnit: 0.5)
        else {
            Issue.record("three permanent failures in a row did not end the retries")
            return
        }
        #expect(reason.contains("3 permanent failures") && reason.contains("refused (5)"))
    }

    @Test("an attempt limit ends transient retries too; none keeps them going")
    func attemptLimit() {
        var limited = RetryPolicy.Backoff(policy: RetryPolicy(maximumAttempts: 2))
        #expect(limited.attemptFailed(.transient, reason: "x", randomUnit: 0.5) == .retry(after: .seconds(1)))
        #expect(limited.attemptFailed(.transient, reason: "x", randomUnit: 0.5) == .retry(after: .seconds(2)))
        #expect(
            limited.attemptFailed(.transient, reason: "x", randomUnit: 0.5) == .giveUp("2 attempts failed; the last: x")
        )
        var unlimited = RetryPolicy.Backoff(policy: .default)
        for _ in 0..<1000 { _ = unlimited.attemptFailed(.transient, reason: "x", randomUnit: 0.5) }
        #expect(unlimited.attemptFailed(.transient, reason: "x", randomUnit: 0.5) == .retry(after: .seconds(60)))
    }

    @Test("transport errors: certificates and unusable credentials are permanent, network trouble is transient")
    func classification() {
        for code in [
            AzureIoTError.Code.certificateUntrusted, .hostnameMismatch, .certificateExpired, .clientCertificateRejected,
            .sasTokenExpired,
        ] {
            #expect(RetryPolicy.classify(AzureIoTError(code, "")) == .permanent, "\(code)")
        }
        for code in [
            AzureIoTError.Code.connectionFailed, .nameResolutionFailed, .timedOut, .connectionClosed, .tlsFailure,
            .ioFailure,
        ] {
            #expect(RetryPolicy.classify(AzureIoTError(code, "")) == .transient, "\(code)")
        }
    }

    @Test("a policy with absurd numbers saturates instead of trapping")
    func absurdPolicy() {
        var backoff = RetryPolicy.Backoff(
            policy: RetryPolicy(
                initialDelay: .seconds(Int64.max),
                maximumDelay: .seconds(Int64.max),
                multiplier: 1e300,
                jitter: 5
            )
        )
        for _ in 0..<70 { _ = backoff.connectionLost(after: .zero, randomUnit: 1) }
        #expect(backoff.connectionLost(after: .zero, randomUnit: 1) > .seconds(86_400 * 365))
    }
}
