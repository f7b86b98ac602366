import AzureIoTCore
import Testing

@testable import HubMQTT

/// The MQTT client's lifecycle driven event by event in virtual time: no sockets, no sleeps. A `randomUnit` of 0.5
/// puts every wait in the middle of the policy's jitter, so the back-off is exactly 1 s, 2 s, 4 s …
@Suite("MQTT connection lifecycle (state machine)")
struct MQTTConnectionStateTests {
    typealias Instant = Duration
    /// Virtual time, as a clock passed to the session reads it.
    let start: Duration = .seconds(1000)
    let middle = 0.5

    func machine(
        policy: RetryPolicy = RetryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(30)),
        keepAlive: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(30)
    ) -> MQTTConnectionState {
        MQTTConnectionState(
            retryPolicy: policy,
            keepAlive: keepAlive,
            connectTimeout: connectTimeout,
            drainTimeout: .seconds(10)
        )
    }

    func at(_ seconds: Double) -> Instant { self.start + .milliseconds(Int64(seconds * 1000)) }

    static let dropped = HubMQTTError(.notConnected, "the connection was lost")
    static let refused = HubMQTTError(.connectionRefused, "CONNACK 5", status: 5)

    /// Connects from idle up to connected; returns the generation.
    @discardableResult
    func connect(_ state: inout MQTTConnectionState, at seconds: Double) -> Int {
        #expect(state.connectRequested(now: self.at(seconds)) == .open)
        guard case .subscribe(let generation) = state.connectionAccepted() else {
            Issue.record("CONNACK did not lead to SUBSCRIBE")
            return -1
        }
        #expect(state.subscribed(generation: generation, now: self.at(seconds)) == .connected(reconcileTwin: false))
        return generation
    }

    @Test("first connect: CONNECT, CONNACK, SUBSCRIBE, SUBACK; a second connect() is already connected")
    func firstConnect() {
        var state = self.machine()
        #expect(state.phase == .idle)
        #expect(state.connectRequested(now: self.at(0)) == .open)
        #expect(state.phase == .connecting)
        #expect(state.connectRequested(now: self.at(0)) == .wait, "a second connect() waits for the attempt under way")
        #expect(state.connectionAccepted() == .subscribe(generation: 1))
        #expect(state.isConnected == false, "not connected before SUBACK")
        #expect(state.subscribed(generation: 1, now: self.at(0.1)) == .connected(reconcileTwin: false))
        #expect(state.phase == .connected(generation: 1, since: self.at(0.1)))
        #expect(state.connectRequested(now: self.at(1)) == .alreadyConnected)
    }

    @Test("loss during CONNECT on first connect: retried after the policy's first delay, within the connect time-out")
    func lossDuringConnect() {
        var state = self.machine()
        _ = state.connectRequested(now: self.at(0))
        #expect(
            state.attemptFailed(Self.dropped, classification: .transient, now: self.at(0.2), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(1), reason: Self.dropped.message)
        )
        #expect(state.retryDue(now: self.at(1.0)) == .none, "not before the wait is over")
        #expect(state.retryDue(now: self.at(1.2)) == .openConnection)
        #expect(state.connectionAccepted() == .subscribe(generation: 1))
        #expect(state.subscribed(generation: 1, now: self.at(1.3)) == .connected(reconcileTwin: false))
    }

    @Test("loss during SUBACK: the loss itself changes nothing, the failed SUBSCRIBE is the attempt failing")
    func lossDuringSubscribe() {
        var state = self.machine()
        _ = state.connectRequested(now: self.at(0))
        #expect(state.connectionAccepted() == .subscribe(generation: 1))
        #expect(
            state.connectionLost(generation: 1, reason: "closed", now: self.at(0.1), randomUnit: self.middle) == .none
        )
        #expect(
            state.attemptFailed(Self.dropped, classification: .transient, now: self.at(0.1), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(1), reason: Self.dropped.message)
        )
        #expect(
            state.subscribed(generation: 1, now: self.at(0.2)) == .none,
            "a late SUBACK of the dropped connection counts for nothing"
        )
        #expect(state.isConnected == false)
    }

    @Test("loss during a reconnect: a late report from the old connection starts nothing")
    func lossDuringReconnect() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        #expect(
            state.connectionLost(generation: generation, reason: "reset", now: self.at(100), randomUnit: self.middle)
                == .reconnect(dropGeneration: generation, after: .seconds(1), reason: "reset")
        )
        // The reader and the keep-alive timer of the same connection both report it: one reconnect only.
        #expect(
            state.connectionLost(
                generation: generation,
                reason: "keep-alive",
                now: self.at(100.1),
                randomUnit: self.middle
            ) == .none
        )
        #expect(state.retryDue(now: self.at(101)) == .openConnection)
        #expect(
            state.connectionLost(generation: generation, reason: "late", now: self.at(101.1), randomUnit: self.middle)
                == .none
        )
        #expect(state.connectionAccepted() == .subscribe(generation: generation + 1))
        #expect(
            state.subscribed(generation: generation + 1, now: self.at(101.2)) == .connected(reconcileTwin: true),
            "after a reconnect the twin is read again"
        )
    }

    @Test("disconnect during a reconnect: the retry timer and a connection that comes up anyway do nothing")
    func disconnectDuringReconnect() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        _ = state.connectionLost(generation: generation, reason: "reset", now: self.at(10), randomUnit: self.middle)
        let first = state.shutDown()
        let second = state.shutDown()
        #expect(first && !second, "shut down once")
        #expect(state.retryDue(now: self.at(20)) == .none)
        #expect(state.connectionAccepted() == .discardConnection)
        #expect(
            state.attemptFailed(Self.dropped, classification: .transient, now: self.at(20), randomUnit: self.middle)
                == .none
        )
        guard case .fail(let error) = state.connectRequested(now: self.at(21)) else {
            Issue.record("connect after shutdown must fail")
            return
        }
        #expect(error.code == .shutDown)
    }

    @Test("token renewal falling due during a reconnect does nothing until the new connection is up")
    func renewalDuringReconnect() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        _ = state.connectionLost(generation: generation, reason: "reset", now: self.at(10), randomUnit: self.middle)
        #expect(
            state.tick(
                generation: generation,
                now: self.at(10.5),
                lastOutbound: self.at(0),
                inflight: 2,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            ) == .none
        )
        _ = state.retryDue(now: self.at(11))
        #expect(
            state.tick(
                generation: generation,
                now: self.at(11.1),
                lastOutbound: self.at(0),
                inflight: 2,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            ) == .none
        )
    }

    @Test(
        "a server that closes right after every CONNACK: the back-off keeps growing (1, 2, 4, 8 … 30 s), it never starts over"
    )
    func flappingServer() {
        var state = self.machine()
        var now = 0.0
        var generation = self.connect(&state, at: now)
        var delays: [Duration] = []
        for _ in 0..<7 {
            now += 0.05
            guard
                case .reconnect(_, let delay, _) = state.connectionLost(
                    generation: generation,
                    reason: "closed",
                    now: self.at(now),
                    randomUnit: self.middle
                )
            else {
                Issue.record("a loss must schedule a reconnect")
                return
            }
            delays.append(delay)
            now += Double(delay.components.seconds)
            #expect(state.retryDue(now: self.at(now)) == .openConnection)
            guard case .subscribe(let next) = state.connectionAccepted() else { return }
            generation = next
            _ = state.subscribed(generation: generation, now: self.at(now))
        }
        #expect(delays == [1, 2, 4, 8, 16, 30, 30].map { Duration.seconds($0) })
        // Five CONNECTs in the first 31 s instead of hundreds a second.
    }

    @Test("a connection that stayed up past the policy's stable time starts the back-off over")
    func stableConnectionResets() {
        var state = self.machine()
        var generation = self.connect(&state, at: 0)
        for (lostAt, expected) in [(0.1, 1), (1.2, 2), (3.3, 4)] {
            guard
                case .reconnect(_, let delay, _) = state.connectionLost(
                    generation: generation,
                    reason: "x",
                    now: self.at(lostAt),
                    randomUnit: self.middle
                )
            else { return }
            #expect(delay == .seconds(expected))
            _ = state.retryDue(now: self.at(lostAt + Double(expected)))
            guard case .subscribe(let next) = state.connectionAccepted() else { return }
            generation = next
            _ = state.subscribed(generation: next, now: self.at(lostAt + Double(expected)))
        }
        // Up from 7.3 s to 100 s: more than the default 60 s.
        #expect(
            state.connectionLost(generation: generation, reason: "x", now: self.at(100), randomUnit: self.middle)
                == .reconnect(dropGeneration: generation, after: .seconds(1), reason: "x")
        )
    }

    @Test(
        "CONNACK refused on first connect: retried like a reconnect, then connect fails with retriesExhausted and the refusal as cause"
    )
    func refusedFirstConnect() {
        var state = self.machine()
        _ = state.connectRequested(now: self.at(0))
        #expect(
            state.attemptFailed(Self.refused, classification: .permanent, now: self.at(0.1), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(1), reason: Self.refused.message)
        )
        _ = state.retryDue(now: self.at(1.1))
        #expect(
            state.attemptFailed(Self.refused, classification: .permanent, now: self.at(1.2), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(2), reason: Self.refused.message)
        )
        _ = state.retryDue(now: self.at(3.2))
        guard
            case .failConnect(let error) = state.attemptFailed(
                Self.refused,
                classification: .permanent,
                now: self.at(3.3),
                randomUnit: self.middle
            )
        else {
            Issue.record("the third refusal must end the first connect")
            return
        }
        #expect(error.code == .retriesExhausted)
        #expect((error.underlying as? HubMQTTError)?.code == .connectionRefused)
        #expect((error.underlying as? HubMQTTError)?.status == 5)
        #expect(state.phase == .idle, "the application may call connect() again")
        #expect(state.connectRequested(now: self.at(4)) == .open)
    }

    @Test("CONNACK refused on later reconnects: the same limit, then the session gives up and shuts down")
    func refusedReconnects() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        _ = state.connectionLost(generation: generation, reason: "x", now: self.at(100), randomUnit: self.middle)
        var now = 101.0
        var outcome = MQTTConnectionState.Action.none
        for _ in 0..<3 {
            #expect(state.retryDue(now: self.at(now)) == .openConnection)
            outcome = state.attemptFailed(
                Self.refused,
                classification: .permanent,
                now: self.at(now),
                randomUnit: self.middle
            )
            now += 10
        }
        guard case .giveUp(let error) = outcome else {
            Issue.record("three refusals must end the retries, got \(outcome)")
            return
        }
        #expect(error.code == .retriesExhausted)
        #expect(state.phase == .shutDown)
    }

    @Test("transient failures on first connect stop at the connect time-out with the last failure")
    func firstConnectDeadline() {
        var state = self.machine(connectTimeout: .seconds(5))
        _ = state.connectRequested(now: self.at(0))
        let unreachable = HubMQTTError(.connectionFailed, "connection refused")
        #expect(
            state.attemptFailed(unreachable, classification: .transient, now: self.at(0), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(1), reason: unreachable.message)
        )
        _ = state.retryDue(now: self.at(1))
        #expect(
            state.attemptFailed(unreachable, classification: .transient, now: self.at(1), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(2), reason: unreachable.message)
        )
        _ = state.retryDue(now: self.at(3))
        // The next wait (4 s) would end past 5 s.
        #expect(
            state.attemptFailed(unreachable, classification: .transient, now: self.at(3), randomUnit: self.middle)
                == .failConnect(unreachable)
        )
        #expect(state.phase == .idle)
        // A per-call time-out replaces the configured one: 2 s leaves no room for the second wait.
        _ = state.connectRequested(now: self.at(10), timeout: .seconds(2))
        #expect(
            state.attemptFailed(unreachable, classification: .transient, now: self.at(10), randomUnit: self.middle)
                == .reconnect(dropGeneration: nil, after: .seconds(1), reason: unreachable.message)
        )
        _ = state.retryDue(now: self.at(11))
        #expect(
            state.attemptFailed(unreachable, classification: .transient, now: self.at(11), randomUnit: self.middle)
                == .failConnect(unreachable)
        )
    }

    @Test("a cancelled first connect returns to idle; a reconnect cannot be abandoned that way")
    func abandonedFirstConnect() {
        var state = self.machine()
        _ = state.connectRequested(now: self.at(0))
        let abandoned = state.firstConnectAbandoned()
        #expect(abandoned)
        #expect(state.phase == .idle)
        #expect(state.connectionAccepted() == .discardConnection)
        let generation = self.connect(&state, at: 1)
        _ = state.connectionLost(generation: generation, reason: "x", now: self.at(2), randomUnit: self.middle)
        let abandonedReconnect = state.firstConnectAbandoned()
        #expect(abandonedReconnect == false)
    }

    @Test(
        "keep-alive: PINGREQ after a quiet keep-alive period, once; an answer clears it; no answer drops the connection"
    )
    func keepAlive() {
        var state = self.machine(keepAlive: .seconds(10))
        let generation = self.connect(&state, at: 0)
        func tick(_ now: Double, lastOutbound: Double = 0) -> MQTTConnectionState.Action {
            state.tick(
                generation: generation,
                now: self.at(now),
                lastOutbound: self.at(lastOutbound),
                inflight: 0,
                tokenNeedsRenewal: false,
                randomUnit: self.middle
            )
        }
        #expect(tick(9) == .none)
        #expect(tick(10) == .sendPing)
        #expect(tick(11, lastOutbound: 10) == .none, "one PINGREQ outstanding at a time")
        state.packetReceived(generation: generation)
        #expect(tick(20, lastOutbound: 10) == .sendPing)
        #expect(tick(30, lastOutbound: 20) == .none, "exactly one keep-alive is still in time")
        #expect(
            tick(30.5, lastOutbound: 20)
                == .reconnect(
                    dropGeneration: generation,
                    after: .seconds(1),
                    reason: "no answer to PINGREQ within the keep-alive"
                )
        )
        #expect(tick(31) == .none, "a stale tick of the dropped connection")
    }

    @Test(
        "token renewal drains: no new PUBLISH, the in-flight ones are acknowledged, then DISCONNECT and a new connection"
    )
    func renewalDrains() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        #expect(
            state.tick(
                generation: generation,
                now: self.at(50),
                lastOutbound: self.at(50),
                inflight: 3,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            )
                == .startDraining(generation: generation)
        )
        #expect(state.isConnected, "twin calls still go out while draining")
        #expect(
            state.tick(
                generation: generation,
                now: self.at(51),
                lastOutbound: self.at(50),
                inflight: 1,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            ) == .none
        )
        #expect(state.drained(generation: generation) == .renewConnection(generation: generation))
        #expect(state.phase == .connecting)
        #expect(state.connectionAccepted() == .subscribe(generation: generation + 1))
        #expect(state.subscribed(generation: generation + 1, now: self.at(51.1)) == .connected(reconcileTwin: true))
    }

    @Test(
        "token renewal with nothing in flight renews at once; one whose PUBACKs do not come renews at the drain deadline"
    )
    func renewalWithoutAndPastDrain() {
        var state = self.machine()
        var generation = self.connect(&state, at: 0)
        #expect(
            state.tick(
                generation: generation,
                now: self.at(50),
                lastOutbound: self.at(50),
                inflight: 0,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            )
                == .renewConnection(generation: generation)
        )
        guard case .subscribe(let next) = state.connectionAccepted() else { return }
        generation = next
        _ = state.subscribed(generation: generation, now: self.at(51))
        #expect(
            state.tick(
                generation: generation,
                now: self.at(60),
                lastOutbound: self.at(60),
                inflight: 5,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            )
                == .startDraining(generation: generation)
        )
        #expect(
            state.tick(
                generation: generation,
                now: self.at(69),
                lastOutbound: self.at(60),
                inflight: 5,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            ) == .none
        )
        #expect(
            state.tick(
                generation: generation,
                now: self.at(70),
                lastOutbound: self.at(60),
                inflight: 5,
                tokenNeedsRenewal: true,
                randomUnit: self.middle
            )
                == .renewConnection(generation: generation)
        )
    }

    @Test("a loss while draining reconnects at once, without a back-off")
    func lossWhileDraining() {
        var state = self.machine()
        let generation = self.connect(&state, at: 0)
        _ = state.tick(
            generation: generation,
            now: self.at(1),
            lastOutbound: self.at(1),
            inflight: 2,
            tokenNeedsRenewal: true,
            randomUnit: self.middle
        )
        #expect(
            state.connectionLost(generation: generation, reason: "closed", now: self.at(2), randomUnit: self.middle)
                == .reconnect(dropGeneration: generation, after: .zero, reason: "closed")
        )
        #expect(state.retryDue(now: self.at(2)) == .openConnection)
    }

    @Test("connect() while reconnecting waits; after the session gave up it fails")
    func connectWhileReconnecting() {
        var state = self.machine(policy: RetryPolicy(maximumPermanentFailures: 1))
        let generation = self.connect(&state, at: 0)
        _ = state.connectionLost(generation: generation, reason: "x", now: self.at(1), randomUnit: self.middle)
        #expect(state.connectRequested(now: self.at(1.5)) == .wait)
        _ = state.retryDue(now: self.at(2))
        guard
            case .giveUp = state.attemptFailed(
                Self.refused,
                classification: .permanent,
                now: self.at(2),
                randomUnit: self.middle
            )
        else {
            Issue.record("one refusal is the limit here")
            return
        }
        guard case .fail = state.connectRequested(now: self.at(3)) else {
            Issue.record("connect after giving up must fail")
            return
        }
    }
}

@Suite("Error classification")
struct ErrorClassificationTests {
    @Test(
        "HubMQTTError.isTransient: network trouble, a busy hub and time-outs are; refusals, bad input and shutdown are not"
    )
    func mqtt() {
        #expect(
            HubMQTTError(.connectionFailed, "", underlying: AzureIoTError(.connectionFailed, "refused")).isTransient
        )
        #expect(!HubMQTTError(.connectionFailed, "", underlying: AzureIoTError(.certificateUntrusted, "")).isTransient)
        #expect(HubMQTTError(.connectionRefused, "", status: 3).isTransient, "CONNACK 3: server unavailable")
        #expect(!HubMQTTError(.connectionRefused, "", status: 5).isTransient, "CONNACK 5: not authorized")
        #expect(
            HubMQTTError(.twinRequestFailed, "", status: 429).isTransient
                && HubMQTTError(.twinRequestFailed, "", status: 503).isTransient
        )
        #expect(!HubMQTTError(.twinRequestFailed, "", status: 400).isTransient)
        for code in [HubMQTTError.Code.timedOut, .queueFull, .notConnected] {
            #expect(HubMQTTError(code, "").isTransient, "\(code)")
        }
        for code in [HubMQTTError.Code.retriesExhausted, .shutDown, .messageTooLarge, .invalidArgument, .expired] {
            #expect(!HubMQTTError(code, "").isTransient, "\(code)")
        }
    }
}
