import AzureIoTCore

/// The lifecycle of one IoT Hub MQTT client as a value: which connection attempt runs, when to retry, when to ping,
/// when to renew the token, and when to give up. It does no I/O and reads no clock: ``HubMQTTSession`` feeds it events
/// with the time they happened and carries out the actions it returns, so every transition is tested without sockets
/// and in virtual time.
///
/// ```
/// idle ──connect──▶ connecting ──CONNACK──▶ subscribing ──SUBACK──▶ connected ──renewal due──▶ draining
///   ▲                  │  ▲                     │                   │                           │
///   └─ first connect ──┤  └── retry timer ── waiting ◀── loss ───────┘      drained or deadline ─┘─▶ connecting
///      failed          └─ attempt failed ──────┘            (any phase) ── disconnect / gave up ──▶ shut down
/// ```
struct MQTTConnectionState: Sendable {
    /// A point in time as an `IoTClock` reads it (time since the clock's origin).
    typealias Instant = Duration

    /// Where the client is.
    enum Phase: Sendable, Equatable {
        /// Never connected, or the application's first connect failed.
        case idle
        /// TLS, CONNECT and CONNACK under way.
        case connecting
        /// CONNACK accepted on connection `generation`; the SUBSCRIBE is out.
        case subscribing(generation: Int)
        /// Up since `since`.
        case connected(generation: Int, since: Instant)
        /// A planned reconnect (token renewal): no new PUBLISH goes out, the in-flight ones get until `until` for their
        /// PUBACKs, then DISCONNECT and a new connection, so that a renewal resends nothing.
        case draining(generation: Int, until: Instant)
        /// Waiting until `until` before the next attempt.
        case waiting(until: Instant)
        /// Ended by the application or by the retry policy.
        case shutDown
    }

    /// What the session does next.
    enum Action: Sendable, Equatable {
        /// Nothing.
        case none
        /// Open a connection (TLS, CONNECT) and wait for CONNACK.
        case openConnection
        /// Send the SUBSCRIBE on connection `generation`.
        case subscribe(generation: Int)
        /// Close a connection that came up after the client was shut down.
        case discardConnection
        /// Connected: resume whoever waits for the connection; after a reconnect, re-read the twin.
        case connected(reconcileTwin: Bool)
        /// Drop connection `generation` (if any), tell the application, and try again after `delay`.
        case reconnect(dropGeneration: Int?, after: Duration, reason: String)
        /// The application's first connect failed: fail its waiters with the error, back to idle.
        case failConnect(HubMQTTError)
        /// The retry policy gave up: shut the session down with this error.
        case giveUp(HubMQTTError)
        /// Stop taking PUBLISHes off the queue until the next connection.
        case startDraining(generation: Int)
        /// Send DISCONNECT on connection `generation`, close it and open a new one at once.
        case renewConnection(generation: Int)
        /// Send PINGREQ.
        case sendPing
    }

    private(set) var phase = Phase.idle
    /// The connection in use, counted up per accepted CONNACK.
    private(set) var generation = 0
    /// Whether the current attempt is the application's first connect (ends in `failConnect`, not in a retry loop).
    private(set) var isFirstConnect = false
    /// When the application's first connect gives up.
    private var firstConnectDeadline: Instant?
    private var backoff: RetryPolicy.Backoff
    private var pingSentAt: Instant?
    private let keepAlive: Duration
    private let connectTimeout: Duration
    private let drainTimeout: Duration

    init(retryPolicy: RetryPolicy, keepAlive: Duration, connectTimeout: Duration, drainTimeout: Duration) {
        self.backoff = RetryPolicy.Backoff(policy: retryPolicy)
        self.keepAlive = keepAlive
        self.connectTimeout = connectTimeout
        self.drainTimeout = drainTimeout
    }

    /// The connection in use when packets flow on it (connected, draining, or subscribing).
    var liveGeneration: Int? {
        switch self.phase {
        case .subscribing(let generation), .connected(let generation, _), .draining(let generation, _):
            return generation
        default: return nil
        }
    }

    var isConnected: Bool {
        switch self.phase {
        case .connected, .draining: return true
        default: return false
        }
    }

    // MARK: - Connecting

    /// What `connect()` does.
    enum ConnectDecision: Sendable, Equatable {
        case alreadyConnected
        /// Start an attempt and wait for it.
        case open
        /// Wait for the attempt or the reconnect under way.
        case wait
        case fail(HubMQTTError)
    }

    /// The application asked to connect at `now`, within `timeout` (default: the connect time-out).
    mutating func connectRequested(now: Instant, timeout: Duration? = nil) -> ConnectDecision {
        switch self.phase {
        case .connected, .draining:
            return .alreadyConnected
        case .connecting, .subscribing, .waiting:
            return .wait
        case .shutDown:
            return .fail(HubMQTTError(.shutDown, "the client was shut down"))
        case .idle:
            self.phase = .connecting
            self.isFirstConnect = true
            self.firstConnectDeadline = now + (timeout ?? self.connectTimeout)
            self.backoff = RetryPolicy.Backoff(policy: self.backoff.policy)
            return .open
        }
    }

    /// The broker accepted CONNECT.
    mutating func connectionAccepted() -> Action {
        guard case .connecting = self.phase else { return .discardConnection }
        self.generation += 1
        self.pingSentAt = nil
        self.phase = .subscribing(generation: self.generation)
        return .subscribe(generation: self.generation)
    }

    /// The SUBACK came for connection `generation`.
    mutating func subscribed(generation: Int, now: Instant) -> Action {
        guard case .subscribing(generation) = self.phase else { return .none }
        let wasFirst = self.isFirstConnect
        self.isFirstConnect = false
        self.firstConnectDeadline = nil
        self.phase = .connected(generation: generation, since: now)
        return .connected(reconcileTwin: !wasFirst)
    }

    /// An attempt failed before it was up (TLS, CONNECT, CONNACK refused, no SUBACK). `randomUnit` in `0..<1` places
    /// the wait within the policy's jitter.
    mutating func attemptFailed(
        _ error: HubMQTTError,
        classification: RetryPolicy.Classification,
        now: Instant,
        randomUnit: Double
    ) -> Action {
        switch self.phase {
        case .connecting, .subscribing: break
        default: return .none
        }
        switch self.backoff.attemptFailed(classification, reason: error.message, randomUnit: randomUnit) {
        case .retry(let delay):
            if self.isFirstConnect, let deadline = self.firstConnectDeadline, now + delay >= deadline {
                return self.endFirstConnect(error)
            }
            self.phase = .waiting(until: now + delay)
            return .reconnect(dropGeneration: nil, after: delay, reason: error.message)
        case .giveUp(let reason):
            let terminal = HubMQTTError(
                .retriesExhausted,
                "gave up connecting: \(reason)",
                status: error.status,
                underlying: error
            )
            if self.isFirstConnect { return self.endFirstConnect(terminal) }
            self.phase = .shutDown
            return .giveUp(terminal)
        }
    }

    private mutating func endFirstConnect(_ error: HubMQTTError) -> Action {
        self.phase = .idle
        self.isFirstConnect = false
        self.firstConnectDeadline = nil
        return .failConnect(error)
    }

    /// The wait before the next attempt is over.
    mutating func retryDue(now: Instant) -> Action {
        guard case .waiting(let until) = self.phase, now >= until else { return .none }
        self.phase = .connecting
        return .openConnection
    }

    /// The application gave up waiting for its first connect (its task was cancelled).
    mutating func firstConnectAbandoned() -> Bool {
        guard self.isFirstConnect else { return false }
        switch self.phase {
        case .connecting, .subscribing, .waiting:
            self.phase = .idle
            self.isFirstConnect = false
            self.firstConnectDeadline = nil
            return true
        default:
            return false
        }
    }

    // MARK: - Losing the connection

    /// Connection `generation` was lost at `now`. While subscribing, the pending SUBACK fails and the attempt reports
    /// it through ``attemptFailed(_:classification:now:randomUnit:)``; a loss while draining reconnects at once.
    mutating func connectionLost(generation: Int, reason: String, now: Instant, randomUnit: Double) -> Action {
        switch self.phase {
        case .connected(generation, let since):
            // A connection that did not stay up long counts as a flap: the back-off goes on rather than starting over.
            let delay = self.backoff.connectionLost(after: now - since, randomUnit: randomUnit)
            self.phase = .waiting(until: now + delay)
            return .reconnect(dropGeneration: generation, after: delay, reason: reason)
        case .draining(generation, _):
            self.phase = .waiting(until: now)
            return .reconnect(dropGeneration: generation, after: .zero, reason: reason)
        default:
            return .none
        }
    }

    /// The application shut the client down (or the session ended). Returns whether it was not shut down yet.
    mutating func shutDown() -> Bool {
        guard self.phase != .shutDown else { return false }
        self.phase = .shutDown
        return true
    }

    // MARK: - Keep-alive and token renewal

    /// A packet arrived on connection `generation`: the broker is alive.
    mutating func packetReceived(generation: Int) {
        if generation == self.liveGeneration { self.pingSentAt = nil }
    }

    /// A timer tick on connection `generation`: ping when nothing went out for a keep-alive period, drop the
    /// connection when a ping went unanswered that long, start draining when the token is due for renewal, and renew
    /// once the drain is done or out of time.
    mutating func tick(
        generation: Int,
        now: Instant,
        lastOutbound: Instant,
        inflight: Int,
        tokenNeedsRenewal: Bool,
        randomUnit: Double
    ) -> Action {
        guard generation == self.liveGeneration else { return .none }
        if let pingSentAt, now - pingSentAt > self.keepAlive {
            return self.connectionLost(
                generation: generation,
                reason: "no answer to PINGREQ within the keep-alive",
                now: now,
                randomUnit: randomUnit
            )
        }
        switch self.phase {
        case .connected where tokenNeedsRenewal:
            self.phase = .draining(generation: generation, until: now + self.drainTimeout)
            return inflight == 0 ? self.drained(generation: generation) : .startDraining(generation: generation)
        case .draining(_, let until) where now >= until || inflight == 0:
            return self.drained(generation: generation)
        default:
            break
        }
        if self.pingSentAt == nil && now - lastOutbound >= self.keepAlive {
            self.pingSentAt = now
            return .sendPing
        }
        return .none
    }

    /// The last PUBACK of a drain came (or the drain ran out of time): renew the connection now.
    mutating func drained(generation: Int) -> Action {
        guard case .draining(generation, _) = self.phase else { return .none }
        self.phase = .connecting
        return .renewConnection(generation: generation)
    }
}
