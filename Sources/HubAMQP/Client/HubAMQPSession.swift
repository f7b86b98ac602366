import AzureIoTCore
import Foundation
import Logging

/// The AMQP connection behind ``HubAMQPClient``: it does the I/O, timing and waiting; the protocol decisions (links,
/// credit, the session window, settlement, fragmentation) are ``AMQPClientState``'s, whose actions it carries out.
///
/// Authentication is SASL PLAIN, ANONYMOUS/MSSBCBS with CBS put-token, or EXTERNAL with the client certificate. With
/// CBS one connection carries several device identities (a gateway), each in its own slot with its own links and
/// token. Messages stay queued until the peer settles them, across connections: a lost connection is re-established
/// with backoff and the unsettled messages are sent again, so nothing `send` accepted is lost (at least once).
actor HubAMQPSession {
    /// How the connection authenticates.
    enum Mode: Sendable {
        case saslPlain
        case cbs(HubAMQPConfiguration.CBSTokenType)
        case x509(X509Identity)
    }

    /// Connection-level settings.
    struct Settings: Sendable {
        var hubHost: String
        var gatewayHostName: String?
        var port: Int
        var trustRoots: TLSConfiguration.TrustRoots
        var mode: Mode
        var idleTimeout: Duration
        var operationTimeout: Duration
        /// How long `connect` tries by default.
        var connectTimeout: Duration = .seconds(30)
        var clientVersion: String
        var apiVersion: String
        var cloudToDeviceCredit: UInt32
        var reconnects: Bool
        var retryPolicy: RetryPolicy
        /// Messages that may wait for settlement (queued offline or in flight) before `send` throws `queueFull`.
        var maximumQueuedMessages: Int = 1000
        /// A name for the container id.
        var containerName: String
        /// Timers and the wall clock for tokens: real time, or a virtual clock in tests.
        var clock: any IoTClock = SystemClock()
        /// How the TCP connection is opened (`nil`: directly).
        var connectionOpener: (any ConnectionOpener)?
        /// AMQP inside a WebSocket.
        var webSockets = false
        /// Sees every connection event (the device client's metrics).
        var eventObserver: (@Sendable (ConnectionEvent) -> Void)? = nil
        /// A gateway: an identity whose links the hub detaches (refused, or taken over by another connection) loses
        /// only its own links; the connection and the other identities stay.
        var isolatesIdentities = false
    }

    /// A device or module identity on the connection.
    struct Identity: Sendable {
        let deviceId: String
        let moduleId: String?
        let tokenSource: (any SASTokenSource)?
        /// The IoT Plug and Play model id, announced on the telemetry link (`com.microsoft:model-id`).
        var modelId: String? = nil
        let cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation
        /// Where desired-property patches and direct-method calls go once the application asks for them.
        var desired: AsyncStream<DesiredPropertyPatch>.Continuation? = nil
        var methods: AsyncStream<MethodRequest>.Continuation? = nil
        /// This identity's own connection events (a gateway's identities).
        var events: AsyncStream<ConnectionEvent>.Continuation? = nil

        var path: String {
            self.moduleId.map { "/devices/\(self.deviceId)/modules/\($0)" } ?? "/devices/\(self.deviceId)"
        }
        func sasResource(hubHost: String) -> SASResource {
            self.moduleId.map { .module(hubHost: hubHost, deviceId: self.deviceId, moduleId: $0) }
                ?? .device(hubHost: hubHost, deviceId: self.deviceId)
        }
    }

    private enum Lifecycle {
        case idle
        case connecting
        case connected
        case reconnecting
        case closed
    }

    /// One TCP/TLS connection and its read buffer; replaced on every reconnect.
    private struct Transport {
        let connection: TLSConnection
        let writer: TLSWriteQueue
        let generation: UInt64
        var buffer: [UInt8] = []
        var framer = AMQPFramer()
    }

    private let settings: Settings
    private let logger: Logger
    private var identities: [Int: Identity] = [:]
    private var nextSlot = 0

    private var lifecycle = Lifecycle.idle
    private var protocolState: AMQPClientState
    private var transport: Transport?
    private var generation: UInt64 = 0
    private var nextSequence: UInt64 = 0
    /// A sender waiting for its message's settlement.
    private struct SendWaiter {
        let continuation: FastContinuation<Void, any Error>
        /// When the sender gives up, on the session's clock (see ``expireSendWaiters()``).
        let deadline: Duration
        /// Whether the deadline is the message's own expiry (`expired`) rather than the time-out (`timedOut`).
        let expires: Bool
        let timeout: Duration
    }

    private var sendWaiters: [UInt64: SendWaiter] = [:]
    /// Whether a task expires send deadlines: one runs while any sender waits, none otherwise.
    private var sweepingSendDeadlines = false
    /// Transfer frames of the send being queued, and settlements of the disposition being read: buffers reused so
    /// that a settled send allocates nothing for them.
    private var outboundFrames: [UInt8] = []
    /// Whether a flush of ``outboundFrames`` is scheduled: with several sends in flight their transfers wait for it
    /// and go out together (one TLS record, one system call); a lone send writes at once.
    private var flushScheduled = false
    /// The task that runs scheduled flushes, parked between them (`true`: flush, `false`: end). Waking it from the
    /// actor queues it behind the sends already waiting, as a new task would, without allocating one per flush.
    private var flusher: FastContinuation<Bool, Never>?
    private var settlements: [AMQPClientState.Settlement] = []
    private(set) var terminalError: HubAMQPError?
    /// `run()` calls waiting for the session to end.
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private var transportFailure: HubAMQPError?
    private var handshakeWaiters: [CheckedContinuation<Void, any Error>] = []
    private var cbsWaiters: [UInt64: CheckedContinuation<CBSPutToken.Response, any Error>] = [:]
    private var nextCBSRequest: UInt64 = 0
    private var readerTask: Task<Void, Never>?
    private var heartbeatTask: Task<Void, Never>?
    /// The retry state (see `RetryPolicy`) and when the current connection was made, to tell a flap from a
    /// stable connection.
    private var backoff: RetryPolicy.Backoff
    private var connectedAt: Duration?
    // The writer is not bounded here: credit and the in-flight window bound what a client queues, and a full queue
    // must slow senders down (issue #11), not close the connection as the emulator's bounded queues do.
    /// The shortest interval between keep-alive frames, whatever the peer asks for.
    static let minimumHeartbeatInterval: Duration = .milliseconds(500)
    private var renewalTasks: [Int: Task<Void, Never>] = [:]
    /// A PLAIN renewal waiting for the messages in flight to be settled.
    private var drainWaiter: CheckedContinuation<Void, Never>?
    private var reconnectTask: Task<Void, Never>?

    /// What an identity uses beyond telemetry and cloud-to-device messages: twin requests, desired-property
    /// patches, direct methods. Their links are attached on first use and on every reconnect.
    enum Feature: Hashable, Sendable {
        case twin
        case desiredProperties
        case methods
    }
    private var features: [Int: Set<Feature>] = [:]
    /// Identities whose links the hub detached on this connection (a gateway): their sends fail with this until the
    /// next connection attaches them again.
    private var slotFailures: [Int: HubAMQPError] = [:]
    /// Where connection events go (the single-identity client's `connectionEvents`).
    private var events: AsyncStream<ConnectionEvent>.Continuation?

    private func emit(_ kind: ConnectionEvent.Kind, _ reason: String) {
        let event = ConnectionEvent(kind: kind, reason: reason)
        self.events?.yield(event)
        self.settings.eventObserver?(event)
    }
    private var twinWaiters: [String: CheckedContinuation<AMQPTwinMessage.Incoming, any Error>] = [:]
    private var nextTwinRequest: UInt64 = 0
    /// Twin calls made while reconnecting, waiting for the connection.
    private var connectionWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    private var nextConnectionWaiter: UInt64 = 0

    init(
        settings: Settings,
        identities: [Identity],
        logger: Logger,
        events: AsyncStream<ConnectionEvent>.Continuation? = nil
    ) {
        self.events = events
        self.settings = settings
        self.logger = logger
        self.protocolState = AMQPClientState(
            cloudToDeviceCredit: settings.cloudToDeviceCredit,
            isolatesIdentities: settings.isolatesIdentities
        )
        self.backoff = RetryPolicy.Backoff(policy: settings.retryPolicy)
        for identity in identities {
            self.identities[self.nextSlot] = identity
            self.nextSlot += 1
        }
    }

    /// A session for one device or module, as configured.
    init(
        configuration: HubAMQPConfiguration,
        logger: Logger,
        cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation,
        desired: AsyncStream<DesiredPropertyPatch>.Continuation? = nil,
        methods: AsyncStream<MethodRequest>.Continuation? = nil,
        events: AsyncStream<ConnectionEvent>.Continuation? = nil,
        clock: any IoTClock = SystemClock()
    ) {
        let mode: Mode
        let source: (any SASTokenSource)?
        switch configuration.authentication {
        case .saslPlain(let tokens):
            mode = .saslPlain
            source = tokens
        case .cbs(let tokens, let type):
            mode = .cbs(type)
            source = tokens
        case .x509(let identity):
            mode = .x509(identity)
            source = nil
        }
        let settings = Settings(
            hubHost: configuration.hubHost,
            gatewayHostName: configuration.gatewayHostName,
            port: configuration.port,
            trustRoots: configuration.trustRoots,
            mode: mode,
            idleTimeout: configuration.idleTimeout,
            operationTimeout: configuration.operationTimeout,
            connectTimeout: configuration.connectTimeout,
            clientVersion: configuration.clientVersion,
            apiVersion: configuration.apiVersion,
            cloudToDeviceCredit: configuration.cloudToDeviceCredit,
            reconnects: configuration.reconnects,
            retryPolicy: configuration.retryPolicy,
            maximumQueuedMessages: configuration.maximumQueuedMessages,
            containerName: configuration.deviceId,
            clock: clock,
            connectionOpener: configuration.connectionOpener,
            webSockets: configuration.webSockets,
            eventObserver: configuration.eventObserver
        )
        let identity = Identity(
            deviceId: configuration.deviceId,
            moduleId: configuration.moduleId,
            tokenSource: source,
            modelId: configuration.modelId,
            cloudToDevice: cloudToDevice,
            desired: desired,
            methods: methods
        )
        self.init(settings: settings, identities: [identity], logger: logger, events: events)
    }

    // MARK: - Connecting

    /// Connects within `timeout` (default: the connect time-out): attempts under the retry policy, the one in
    /// progress cancelled when the time is up (``HubAMQPError/Code/timedOut``).
    func connect(timeout: Duration? = nil) async throws {
        guard self.lifecycle == .idle else {
            if let terminalError { throw terminalError }
            return
        }
        let limit = timeout ?? self.settings.connectTimeout
        let clock = self.settings.clock
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await self.connectAttempts(until: clock.now() + limit) }
            group.addTask {
                try await clock.sleep(for: limit)
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else {
                throw HubAMQPError(.timedOut, "no connection within \(limit)")
            }
        }
    }

    private func connectAttempts(until deadline: Duration) async throws -> Bool {
        guard self.lifecycle == .idle else {
            if let terminalError { throw terminalError }
            return true
        }
        // The first connect follows the retry policy as a reconnect would (within the connect time-out), so that
        // a refused token counts the same whenever it happens; with automatic reconnects off it is one attempt.
        var backoff = RetryPolicy.Backoff(policy: self.settings.retryPolicy)
        let clock = self.settings.clock
        while true {
            self.lifecycle = .connecting
            do {
                try await self.establish()
                self.lifecycle = .connected
                self.connectedAt = clock.now()
                self.resumeConnectionWaiters()
                self.emit(.connected, "the links are attached")
                return true
            } catch {
                self.lifecycle = .idle
                guard self.settings.reconnects, !(error is CancellationError), !Task.isCancelled else { throw error }
                switch backoff.attemptFailed(
                    Self.classify(error),
                    reason: "\(error)",
                    randomUnit: Double.random(in: 0..<1)
                )
                {
                case .retry(let after) where clock.now() + after < deadline:
                    self.logger.debug(
                        "AMQP connect failed, trying again",
                        metadata: ["error": "\(error)", "wait": "\(after)"]
                    )
                    try await clock.sleep(for: after)
                case .retry:
                    throw error
                case .giveUp(let reason):
                    throw HubAMQPError(.retriesExhausted, "gave up connecting: \(reason)", underlying: error)
                }
            }
        }
    }

    /// One connection: TLS, SASL, open and begin, then every identity (CBS put-token when configured, its two links),
    /// heartbeats and token renewal.
    private func establish() async throws {
        self.generation += 1
        let generation = self.generation
        var tls = TLSConfiguration(
            trustRoots: self.settings.trustRoots,
            connectTimeout: self.settings.operationTimeout,
            connectionOpener: self.settings.connectionOpener,
            webSocket: self.settings.webSockets ? .amqp : nil
        )
        if case .x509(let identity) = self.settings.mode { tls.clientIdentity = identity }
        let host = self.settings.gatewayHostName ?? self.settings.hubHost
        let connection = try await TLSConnection.connect(
            host: host,
            port: self.settings.port,
            configuration: tls,
            logger: self.logger
        )
        self.transport = Transport(
            connection: connection,
            writer: TLSWriteQueue(connection: connection, maximumPendingBytes: .max),
            generation: generation
        )
        self.transportFailure = nil
        self.protocolState.connectionLost()
        do {
            let renewAt = try await self.authenticate(connection)
            let idle = UInt32(clamping: self.settings.idleTimeout.components.seconds * 1000)
            self.perform(
                self.protocolState.open(
                    containerId: "\(self.settings.containerName)-\(UUID().uuidString)",
                    hostname: self.settings.hubHost,
                    idleTimeout: idle,
                    properties: self.clientProperties
                )
            )
            self.readerTask = Task { await self.readLoop(connection, generation: generation) }
            try await self.waitUntil("the connection to open") { $0.remoteOpened }
            if let idle = self.protocolState.peerIdleTimeout, idle > 0 {
                // Half the peer's idle time-out, but not more often than the floor: a peer asking for 1 ms gets
                // keep-alives every 500 ms, not millions a second.
                let interval = max(Duration.milliseconds(Int64(idle / 2)), Self.minimumHeartbeatInterval)
                self.heartbeatTask = Task { await self.heartbeats(every: interval, generation: generation) }
            }
            self.slotFailures = [:]
            for slot in self.identities.keys.sorted() {
                do {
                    try await self.attachIdentity(slot)
                } catch let error as HubAMQPError
                    where self.settings.isolatesIdentities && self.transportFailure == nil
                    && (error.code == .linkDetached || error.code == .authenticationFailed)
                {
                    // One refused identity does not keep the gateway's others off the hub.
                    self.identityFailed(slot, error)
                }
            }
            if case .saslPlain = self.settings.mode { self.scheduleRenewal(slot: 0, at: renewAt) }
        } catch {
            self.tearDown()
            throw error
        }
    }

    /// Puts the identity's token (CBS) and attaches its telemetry and cloud-to-device links.
    private func attachIdentity(_ slot: Int) async throws {
        guard let identity = self.identities[slot] else { return }
        if case .cbs(let type) = self.settings.mode {
            guard let source = identity.tokenSource else {
                throw HubAMQPError(.authenticationFailed, "CBS needs a token source for '\(identity.deviceId)'")
            }
            try await self.putToken(source, type: type, slot: slot)
        }
        let properties =
            self.clientProperties + [
                AMQPMapEntry(.symbol("com.microsoft:api-version"), .string(self.settings.apiVersion))
            ]
        // Azure's SDKs announce the Plug and Play model on their sender links.
        let telemetryProperties =
            properties + (identity.modelId.map { [AMQPMapEntry(.symbol("com.microsoft:model-id"), .string($0))] } ?? [])
        self.perform(
            self.protocolState.attach(
                .telemetry(slot),
                name: "sender-\(slot)-\(UUID().uuidString)",
                address: identity.path + "/messages/events",
                properties: telemetryProperties
            )
        )
        self.perform(
            self.protocolState.attach(
                .cloudToDevice(slot),
                name: "receiver-\(slot)-\(UUID().uuidString)",
                address: identity.path + "/messages/devicebound",
                properties: properties
            )
        )
        try await self.waitUntil("the links of '\(identity.deviceId)'") {
            ($0.isAttached(.telemetry(slot)) && $0.isAttached(.cloudToDevice(slot))) || !$0.hasLink(.telemetry(slot))
        }
        if let failure = self.slotFailures[slot] { throw failure }
        try await self.attachFeatures(slot)
        identity.events?.yield(ConnectionEvent(kind: .connected, reason: "the links are attached"))
    }

    /// Adds a device identity to a CBS connection (a gateway): its token is put and its links attached now if
    /// connected, and on every reconnect. Returns its slot.
    func addIdentity(_ identity: Identity) async throws -> Int {
        guard case .cbs = self.settings.mode else {
            throw HubAMQPError(.invalidArgument, "only a CBS connection carries several identities")
        }
        if let terminalError { throw terminalError }
        let slot = self.nextSlot
        self.nextSlot += 1
        self.identities[slot] = identity
        if self.lifecycle == .connected {
            do {
                try await self.attachIdentity(slot)
            } catch {
                self.identities[slot] = nil
                throw error
            }
        }
        return slot
    }

    private var clientProperties: [AMQPMapEntry] {
        [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(self.settings.clientVersion))]
    }

    /// The SASL exchange; returns when a PLAIN token should be renewed.
    private func authenticate(_ connection: TLSConnection) async throws -> UInt64? {
        try await connection.write(AMQPProtocolHeader.sasl.bytes)
        guard try await self.readProtocolHeader(connection) == .sasl else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the SASL protocol header")
        }
        guard case .saslMechanisms(let offered) = try await self.readPerformative(connection) else {
            throw HubAMQPError(.protocolViolation, "expected sasl-mechanisms")
        }
        let mechanisms = offered.mechanisms
        let initial: SASLInit
        var renewAt: UInt64?
        var who = "anonymous"
        switch self.settings.mode {
        case .saslPlain:
            guard mechanisms.contains("PLAIN") else {
                throw HubAMQPError(.authenticationFailed, "the peer does not offer SASL PLAIN (offers \(mechanisms))")
            }
            guard let identity = self.identities[0], let source = identity.tokenSource else {
                throw HubAMQPError(.authenticationFailed, "SASL PLAIN needs a device and a token source")
            }
            let issued = try await source.token(
                for: identity.sasResource(hubHost: self.settings.hubHost),
                now: self.settings.clock.unixSeconds()
            )
            let credentials = SASLPlainCredentials(
                deviceId: identity.deviceId,
                moduleId: identity.moduleId,
                hubHost: self.settings.hubHost,
                token: issued.token
            )
            initial = SASLInit(
                mechanism: "PLAIN",
                initialResponse: credentials.initialResponse,
                hostname: self.settings.hubHost
            )
            renewAt = issued.renewAt
            who = credentials.authenticationId
        case .cbs:
            let mechanism = mechanisms.contains("MSSBCBS") ? "MSSBCBS" : "ANONYMOUS"
            guard mechanisms.contains(mechanism) else {
                throw HubAMQPError(
                    .authenticationFailed,
                    "the peer offers neither ANONYMOUS nor MSSBCBS for CBS (offers \(mechanisms))"
                )
            }
            initial = SASLInit(
                mechanism: mechanism,
                initialResponse: mechanism == "ANONYMOUS" ? [] : nil,
                hostname: self.settings.hubHost
            )
        case .x509:
            let mechanism = mechanisms.contains("EXTERNAL") ? "EXTERNAL" : "ANONYMOUS"
            guard mechanisms.contains(mechanism) else {
                throw HubAMQPError(
                    .authenticationFailed,
                    "the peer offers neither EXTERNAL nor ANONYMOUS (offers \(mechanisms))"
                )
            }
            initial = SASLInit(mechanism: mechanism, initialResponse: [], hostname: self.settings.hubHost)
            who = "the client certificate"
        }
        try await connection.write(
            AMQPFrame(type: .sasl, body: try AMQPPerformative.saslInit(initial).encoded()).encoded
        )
        guard case .saslOutcome(let outcome) = try await self.readPerformative(connection) else {
            throw HubAMQPError(.protocolViolation, "expected sasl-outcome")
        }
        guard outcome.code == .ok else {
            throw HubAMQPError(
                .authenticationFailed,
                "SASL \(initial.mechanism) as \(who) was refused: \(outcome.code)"
            )
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes)
        guard try await self.readProtocolHeader(connection) == .amqp else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the AMQP protocol header")
        }
        return renewAt
    }

    /// Waits until `condition` holds for the protocol state of this connection, the connection fails, or the
    /// operation timeout passes.
    private func waitUntil(_ what: String, _ condition: (AMQPClientState) -> Bool) async throws {
        let timeout = self.settings.operationTimeout
        let generation = self.generation
        let timer = Task {
            try await self.settings.clock.sleep(for: timeout)
            self.transportLost(
                HubAMQPError(.timedOut, "the peer did not open \(what) within \(timeout)"),
                generation: generation
            )
        }
        defer { timer.cancel() }
        while true {
            if let failure = self.transportFailure { throw failure }
            guard self.transport?.generation == generation else {
                throw HubAMQPError(.notConnected, "the connection was lost")
            }
            if condition(self.protocolState) { return }
            try Task.checkCancellation()
            // A cancelled caller is woken like any other waiter; the loop then throws `CancellationError`.
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { self.handshakeWaiters.append($0) }
            } onCancel: {
                Task { await self.wakeHandshakeWaiters() }
            }
        }
    }

    /// Resumes every handshake waiter so that each checks its condition (and its task's cancellation) again.
    private func wakeHandshakeWaiters() {
        let waiters = self.handshakeWaiters
        self.handshakeWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - CBS and renewal

    /// Attaches the `$cbs` links (first time on a connection) and puts a token for the identity in `slot`; throws
    /// ``HubAMQPError/Code/authenticationFailed`` when the hub refuses it.
    private func putToken(_ source: any SASTokenSource, type: HubAMQPConfiguration.CBSTokenType, slot: Int) async throws
    {
        guard let identity = self.identities[slot] else { return }
        if !(self.protocolState.isAttached(.cbsRequests) && self.protocolState.isAttached(.cbsResponses)) {
            self.perform(
                self.protocolState.attach(
                    .cbsRequests,
                    name: "$cbs-sender-\(UUID().uuidString)",
                    address: "$cbs",
                    properties: nil
                )
            )
            self.perform(
                self.protocolState.attach(
                    .cbsResponses,
                    name: "$cbs-receiver-\(UUID().uuidString)",
                    address: "$cbs",
                    properties: nil
                )
            )
            try await self.waitUntil("the $cbs links") { $0.isAttached(.cbsRequests) && $0.isAttached(.cbsResponses) }
        }
        let resource = identity.sasResource(hubHost: self.settings.hubHost)
        let issued = try await source.token(for: resource, now: self.settings.clock.unixSeconds())
        self.nextCBSRequest += 1
        let requestId = self.nextCBSRequest
        let request = CBSPutToken.request(
            token: issued.token.secretValue,
            audience: resource.uri,
            type: type.rawValue,
            requestId: requestId
        )
        let payload = try request.encoded()
        let timeout = self.settings.operationTimeout
        let timer = Task {
            try await self.settings.clock.sleep(for: timeout)
            self.cbsWaiters.removeValue(forKey: requestId)?.resume(
                throwing: HubAMQPError(.timedOut, "no CBS answer within \(timeout)")
            )
        }
        defer { timer.cancel() }
        let response = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<CBSPutToken.Response, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                self.cbsWaiters[requestId] = continuation
                self.perform(self.protocolState.sendRequest(payload) ?? [])
            }
        } onCancel: {
            Task { await self.cancelCBSWait(requestId) }
        }
        guard (200..<300).contains(response.status) else {
            throw HubAMQPError(
                .authenticationFailed,
                "CBS put-token for '\(identity.deviceId)' was refused: \(response.status) \(response.statusDescription)"
            )
        }
        self.logger.debug("CBS token accepted", metadata: ["audience": "\(resource.uri)"])
        self.scheduleRenewal(slot: slot, at: issued.renewAt)
    }

    /// Ends the wait for CBS answer `requestId` (its task was cancelled); a late answer is then ignored.
    private func cancelCBSWait(_ requestId: UInt64) {
        self.cbsWaiters.removeValue(forKey: requestId)?.resume(throwing: CancellationError())
    }

    /// PLAIN tokens are renewed by reconnecting, CBS tokens with another put-token, before they expire.
    private func scheduleRenewal(slot: Int, at renewAt: UInt64?) {
        guard let renewAt else {
            self.renewalTasks[slot]?.cancel()
            return
        }
        let now = self.settings.clock.unixSeconds()
        self.scheduleRenewal(slot: slot, after: .seconds(Int64(min(renewAt > now ? renewAt - now : 0, 30 * 86_400))))
    }

    private func scheduleRenewal(slot: Int, after delay: Duration) {
        self.renewalTasks[slot]?.cancel()
        let generation = self.generation
        self.renewalTasks[slot] = Task {
            try? await self.settings.clock.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await self.renew(slot: slot, generation: generation)
        }
    }

    /// Returns once nothing transmitted on connection `generation` waits for settlement, the connection is gone, or
    /// `timeout` passed.
    private func waitForDrain(generation: UInt64, timeout: Duration) async {
        guard self.generation == generation, self.protocolState.inFlightCount > 0 else { return }
        let timer = Task {
            try? await self.settings.clock.sleep(for: timeout)
            self.resumeDrainWaiter()
        }
        defer { timer.cancel() }
        await withCheckedContinuation { self.drainWaiter = $0 }
    }

    private func resumeDrainWaiter() {
        self.drainWaiter?.resume()
        self.drainWaiter = nil
    }

    private func renew(slot: Int, generation: UInt64) async {
        guard self.generation == generation, let identity = self.identities[slot] else { return }
        guard self.lifecycle == .connected else {
            // The connection that put the token is still being set up (a slow handshake or attach): try again soon
            // rather than let the token expire.
            if self.lifecycle == .connecting { self.scheduleRenewal(slot: slot, after: .milliseconds(200)) }
            return
        }
        switch self.settings.mode {
        case .cbs(let type):
            guard let source = identity.tokenSource else { return }
            do {
                try await self.putToken(source, type: type, slot: slot)
            } catch {
                self.transportLost(
                    HubAMQPError(.authenticationFailed, "renewing the CBS token failed: \(error)"),
                    generation: generation
                )
            }
        case .saslPlain:
            // A SASL identity cannot change in a connection: open a new one with a fresh token, whether or not
            // automatic reconnects are on. Messages in flight get their settlement first (bounded), and no new one
            // goes out meanwhile, so that the renewal sends nothing twice.
            self.logger.info(
                "renewing the SAS token: draining, then reconnecting",
                metadata: ["inflight": "\(self.protocolState.inFlightCount)"]
            )
            self.emit(.renewingToken, "the SAS token reached its renewal time")
            self.protocolState.startDraining()
            await self.waitForDrain(generation: generation, timeout: min(self.settings.operationTimeout, .seconds(10)))
            guard self.generation == generation, self.lifecycle == .connected, let transport = self.transport else {
                return
            }
            self.flushOutboundFrames()
            transport.writer.send(
                AMQPFrame(body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? []).encoded
            )
            self.transport = nil
            await transport.writer.finish()
            guard self.generation == generation else { return }
            self.transport = transport
            self.transportLost(
                HubAMQPError(.connectionClosed, "renewing the SAS token"),
                generation: generation,
                reconnect: true
            )
        case .x509:
            break
        }
    }

    // MARK: - Reading

    private func readProtocolHeader(_ connection: TLSConnection) async throws -> AMQPProtocolHeader {
        while true {
            if let buffer = self.transport?.buffer, let header = try AMQPProtocolHeader.parse(buffer[...]) {
                self.transport?.buffer.removeFirst(8)
                return header
            }
            try await self.fill(connection)
        }
    }

    private func readPerformative(_ connection: TLSConnection) async throws -> AMQPPerformative {
        while true {
            if let transport = self.transport,
                let (frame, size) = try transport.framer.nextFrame(in: transport.buffer[...])
            {
                self.transport?.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await self.fill(connection)
        }
    }

    private func fill(_ connection: TLSConnection) async throws {
        let chunk = try await connection.read(timeout: self.settings.operationTimeout)
        guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
        self.transport?.buffer += chunk
    }

    private func readLoop(_ connection: TLSConnection, generation: UInt64) async {
        self.transport?.framer.maximumFrameSize = 65_536
        // The peer heartbeats at half our idle time-out; allow 1.5 times it before calling the peer dead, so a late
        // heartbeat on a busy machine is not a disconnect.
        let silence = self.settings.idleTimeout > .zero ? self.settings.idleTimeout * 1.5 : nil
        // One read buffer per connection: reading allocates nothing (a fresh 16 KB array per read did).
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readChunk, alignment: 1)
        defer { scratch.deallocate() }
        do {
            while self.transport?.generation == generation {
                // Decode every complete frame, then drop them from the buffer in one move.
                var consumed = 0
                while let transport = self.transport, transport.generation == generation {
                    // The frames a sender lives on (dispositions that settle its sends, flows that grant it credit)
                    // are read in place; the rest through the general decoder.
                    let rest = transport.buffer[consumed...]
                    if case .disposition(let disposition, _, let size) = try AMQPDispositionFrame.read(
                        rest,
                        maximumFrameSize: transport.framer.maximumFrameSize
                    ) {
                        consumed += size
                        try self.protocolState.receive(disposition, into: &self.settlements)
                        for settlement in self.settlements { self.resumeSender(settlement.sequence, settlement.error) }
                        self.settlements.removeAll(keepingCapacity: true)
                        self.resumeDrainWaiterIfDrained()
                        continue
                    }
                    if case .flow(let flow, _, let size) = try AMQPFlowFrame.read(
                        rest,
                        maximumFrameSize: transport.framer.maximumFrameSize
                    ) {
                        consumed += size
                        self.perform(try self.protocolState.receive(.flow(flow)))
                        continue
                    }
                    guard let (frame, size) = try transport.framer.nextFrame(in: rest) else { break }
                    consumed += size
                    if !frame.isHeartbeat {
                        self.perform(try self.protocolState.receive(try AMQPPerformative.decode(frame.body)))
                    }
                }
                if consumed > 0, self.transport?.generation == generation {
                    self.transport?.buffer.removeFirst(consumed)
                }
                var count = 0
                do {
                    reading: while true {
                        switch try connection.readNow(into: scratch) {
                        case .done(let read):
                            count = read
                            break reading
                        case .needsReadable:
                            try await connection.waitUntilReady(readable: true, timeout: silence)
                        case .needsWritable:
                            try await connection.waitUntilReady(readable: false, timeout: silence)
                        }
                    }
                } catch let error as AzureIoTError where error.code == .timedOut {
                    throw HubAMQPError(.connectionClosed, "the peer sent nothing for longer than the idle time-out")
                }
                guard count > 0 else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
                guard self.transport?.generation == generation else { return }
                self.transport?.buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[..<count]))
            }
        } catch let error as HubAMQPError {
            self.transportLost(error, generation: generation)
        } catch {
            self.transportLost(
                HubAMQPError(.connectionClosed, "the connection failed: \(error)"),
                generation: generation
            )
        }
    }

    /// The most bytes one read takes off the TLS session (one TLS record).
    private static let readChunk = 16 * 1024

    /// The hub detached the links of the identity in `slot` (a gateway): it is off the hub until the next
    /// connection; the identity hears why on its own events.
    private func identityFailed(_ slot: Int, _ error: HubAMQPError) {
        self.slotFailures[slot] = error
        guard let identity = self.identities[slot] else { return }
        self.logger.info(
            "the hub detached an identity's links",
            metadata: ["device": "\(identity.deviceId)", "reason": "\(error.message)"]
        )
        identity.events?.yield(ConnectionEvent(kind: .disconnected, reason: error.message))
        self.wakeHandshakeWaiters()
    }

    // MARK: - Twin and direct methods

    /// Starts using `wanted` for the identity in `slot`: its links are attached now when connected (and the desired
    /// subscription made), and again on every reconnect.
    func enable(_ wanted: Set<Feature>, slot: Int = 0) async throws {
        if let terminalError { throw terminalError }
        guard self.identities[slot] != nil else { throw HubAMQPError(.invalidArgument, "no identity in slot \(slot)") }
        let new = wanted.subtracting(self.features[slot] ?? [])
        guard !new.isEmpty else { return }
        self.features[slot, default: []].formUnion(new)
        if self.lifecycle == .connected { try await self.attachFeatures(slot, only: new) }
    }

    /// Sets where desired-property patches and direct-method calls of the identity in `slot` go.
    func setStreams(
        slot: Int,
        desired: AsyncStream<DesiredPropertyPatch>.Continuation?,
        methods: AsyncStream<MethodRequest>.Continuation?
    ) {
        self.identities[slot]?.desired = desired
        self.identities[slot]?.methods = methods
    }

    /// Attaches the twin and method links the identity's features need (those not attached on this connection), and
    /// subscribes to desired-property patches.
    private func attachFeatures(_ slot: Int, only subset: Set<Feature>? = nil) async throws {
        guard let identity = self.identities[slot], var features = self.features[slot], !features.isEmpty else {
            return
        }
        if let subset { features.formIntersection(subset) }
        let channel = identity.moduleId.map { "\(identity.deviceId)/\($0)" } ?? identity.deviceId
        let versioned =
            self.clientProperties + [
                AMQPMapEntry(.symbol("com.microsoft:api-version"), .string(self.settings.apiVersion))
            ]
        var links: [AMQPClientLink] = []
        if !features.isDisjoint(with: [.twin, .desiredProperties]), !self.protocolState.hasLink(.twinRequests(slot)) {
            let properties =
                versioned + [
                    AMQPMapEntry(.symbol("com.microsoft:channel-correlation-id"), .string("twin:\(UUID().uuidString)"))
                ]
            self.perform(
                self.protocolState.attach(
                    .twinRequests(slot),
                    name: "twin-sender-\(slot)-\(UUID().uuidString)",
                    address: identity.path + "/twin",
                    properties: properties
                )
            )
            self.perform(
                self.protocolState.attach(
                    .twinResponses(slot),
                    name: "twin-receiver-\(slot)-\(UUID().uuidString)",
                    address: identity.path + "/twin",
                    properties: properties
                )
            )
        }
        if features.contains(.methods), !self.protocolState.hasLink(.methodRequests(slot)) {
            let properties =
                versioned + [AMQPMapEntry(.symbol("com.microsoft:channel-correlation-id"), .string(channel))]
            self.perform(
                self.protocolState.attach(
                    .methodRequests(slot),
                    name: "methods_requests_link-\(channel)-\(UUID().uuidString)",
                    address: identity.path + "/methods/devicebound",
                    properties: properties
                )
            )
            self.perform(
                self.protocolState.attach(
                    .methodResponses(slot),
                    name: "methods_responses_link-\(channel)-\(UUID().uuidString)",
                    address: identity.path + "/methods/devicebound",
                    properties: properties
                )
            )
        }
        if features.contains(.methods) { links += [.methodRequests(slot), .methodResponses(slot)] }
        if !features.isDisjoint(with: [.twin, .desiredProperties]) {
            links += [.twinRequests(slot), .twinResponses(slot)]
        }
        if !links.isEmpty {
            try await self.waitUntil("the twin and method links of '\(identity.deviceId)'") { state in
                links.allSatisfy { state.isAttached($0) }
            }
        }
        if features.contains(.desiredProperties) {
            let answer = try await self.exchange(
                .put,
                resource: AMQPTwinMessage.desiredNotifications,
                body: [],
                slot: slot,
                until: self.settings.clock.now() + self.settings.operationTimeout
            )
            guard let status = answer.status, (200..<300).contains(status) else {
                throw HubAMQPError(
                    .twinRequestFailed,
                    "the hub refused the desired-properties subscription",
                    status: answer.status
                )
            }
        }
    }

    /// The twin of the identity in `slot`.
    func twin(slot: Int = 0, timeout: Duration?) async throws -> Twin {
        let answer = try await self.twinRequest(.get, resource: nil, body: [], slot: slot, timeout: timeout)
        guard answer.status.map({ (200..<300).contains($0) }) ?? true else {
            throw HubAMQPError(.twinRequestFailed, "the twin GET failed", status: answer.status)
        }
        return Twin(document: answer.body)
    }

    /// Patches reported properties; returns the new reported version.
    func updateReportedProperties(_ json: [UInt8], slot: Int = 0, timeout: Duration?) async throws -> Int? {
        let answer = try await self.twinRequest(
            .patch,
            resource: AMQPTwinMessage.reportedProperties,
            body: json,
            slot: slot,
            timeout: timeout
        )
        guard answer.status.map({ (200..<300).contains($0) }) ?? true else {
            throw HubAMQPError(.twinRequestFailed, "the reported-properties PATCH failed", status: answer.status)
        }
        return answer.version
    }

    /// A twin request that waits for the connection while the client reconnects and is sent again if the
    /// connection goes before the answer, all within `timeout` (default: the operation time-out).
    private func twinRequest(
        _ operation: AMQPTwinMessage.Operation,
        resource: String?,
        body: [UInt8],
        slot: Int,
        timeout: Duration?
    ) async throws -> AMQPTwinMessage.Incoming {
        let clock = self.settings.clock
        let deadline = clock.now() + (timeout ?? self.settings.operationTimeout)
        while true {
            try await self.awaitConnected(until: deadline)
            do {
                try await self.enable([.twin], slot: slot)
                return try await self.exchange(operation, resource: resource, body: body, slot: slot, until: deadline)
            } catch let error as HubAMQPError where error.code == .notConnected && clock.now() < deadline {
                // A GET, or a merge patch of reported properties, can be sent again on the next connection.
                continue
            }
        }
    }

    /// Sends one twin request on this connection and waits for its answer until `deadline`.
    private func exchange(
        _ operation: AMQPTwinMessage.Operation,
        resource: String?,
        body: [UInt8],
        slot: Int,
        until deadline: Duration
    ) async throws -> AMQPTwinMessage.Incoming {
        self.nextTwinRequest &+= 1
        let id = "\(self.containerRequestPrefix)-\(self.nextTwinRequest)"
        let payload = try AMQPTwinMessage.request(operation, resource: resource, body: body, correlationId: id)
            .encoded()
        let clock = self.settings.clock
        let timer = Task {
            try await clock.sleep(for: deadline - clock.now())
            self.endTwinWait(id, HubAMQPError(.timedOut, "no answer to the twin \(operation.rawValue) in time"))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<AMQPTwinMessage.Incoming, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                guard let actions = self.protocolState.sendRequest(payload, on: .twinRequests(slot)) else {
                    continuation.resume(
                        throwing: HubAMQPError(
                            .queueFull,
                            "\(AMQPClientState.maximumPendingRequests) twin requests already wait for credit"
                        )
                    )
                    return
                }
                self.twinWaiters[id] = continuation
                self.perform(actions)
            }
        } onCancel: {
            Task { await self.endTwinWait(id, CancellationError()) }
        }
    }

    /// Distinguishes this session's twin requests from another's in logs and captures.
    private var containerRequestPrefix: String { "twin-\(self.settings.containerName)" }

    private func endTwinWait(_ id: String, _ error: any Error) {
        self.twinWaiters.removeValue(forKey: id)?.resume(throwing: error)
    }

    private func failTwinWaiters(_ error: HubAMQPError) {
        let waiters = self.twinWaiters
        self.twinWaiters = [:]
        for waiter in waiters.values { waiter.resume(throwing: error) }
    }

    /// An answer to a twin request, or a desired-property patch pushed by the hub.
    private func twinMessage(_ incoming: AMQPTwinMessage.Incoming, slot: Int) {
        if let id = incoming.correlationId, let waiter = self.twinWaiters.removeValue(forKey: id) {
            waiter.resume(returning: incoming)
            return
        }
        guard incoming.correlationId == nil, let desired = self.identities[slot]?.desired else { return }
        var version = incoming.version
        if version == nil, let document = try? JSONValue(parsing: incoming.body) {
            version = document["$version"]?.int64Value.flatMap { Int(exactly: $0) }
        }
        if case .dropped = desired.yield(
            DesiredPropertyPatch(version: version, json: incoming.body, isFullDocument: false)
        ) {
            self.logger.warning(
                "the desired-properties stream is full; a patch was dropped (read the twin to catch up)"
            )
        }
    }

    /// A direct-method call: handed to the application, or answered 503 at once when nobody takes calls or too many
    /// wait.
    private func methodRequest(_ message: AMQPMessage, slot: Int) {
        guard let request = AMQPMethodMessage.request(message) else {
            self.logger.warning("a method request without a name or correlation id was ignored")
            return
        }
        let generation = self.generation
        let call = MethodRequest(
            name: request.name,
            requestId: AMQPTwinMessage.text(request.correlationId) ?? "",
            payload: request.payload
        ) { [weak self] status, payload in
            guard let self else { throw HubAMQPError(.notConnected, "the client is gone") }
            try await self.respond(
                to: request.correlationId,
                status: status,
                payload: payload,
                slot: slot,
                generation: generation
            )
        }
        let delivered: Bool
        if let methods = self.identities[slot]?.methods, case .enqueued = methods.yield(call) {
            delivered = true
        } else {
            delivered = false
        }
        if !delivered {
            try? self.respond(
                to: request.correlationId,
                status: 503,
                payload: Array(#"{"message":"the device has too many method calls waiting"}"#.utf8),
                slot: slot,
                generation: generation
            )
        }
    }

    /// Sends a method's answer on the connection its request came on.
    private func respond(to correlationId: AMQPValue, status: Int, payload: [UInt8], slot: Int, generation: UInt64)
        throws
    {
        guard self.transport?.generation == generation, self.lifecycle == .connected else {
            throw HubAMQPError(.notConnected, "the connection the method call came on is gone; the caller times out")
        }
        let payload = try AMQPMethodMessage.response(status: status, payload: payload, correlationId: correlationId)
            .encoded()
        guard let actions = self.protocolState.sendRequest(payload, on: .methodResponses(slot)) else {
            throw HubAMQPError(.queueFull, "too many method answers wait for credit")
        }
        self.perform(actions)
    }

    /// Returns once connected; waits while connecting or reconnecting, until `deadline`.
    private func awaitConnected(until deadline: Duration) async throws {
        switch self.lifecycle {
        case .connected: return
        case .idle: throw HubAMQPError(.notConnected, "not connected: call connect() first")
        case .closed: throw self.terminalError ?? HubAMQPError(.notConnected, "the client was closed")
        case .connecting, .reconnecting: break
        }
        let id = self.nextConnectionWaiter
        self.nextConnectionWaiter &+= 1
        let clock = self.settings.clock
        let timer = Task {
            try await clock.sleep(for: deadline - clock.now())
            self.endConnectionWait(id, HubAMQPError(.timedOut, "no connection within the time-out"))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    self.connectionWaiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.endConnectionWait(id, CancellationError()) }
        }
    }

    private func endConnectionWait(_ id: UInt64, _ error: any Error) {
        self.connectionWaiters.removeValue(forKey: id)?.resume(throwing: error)
    }

    private func resumeConnectionWaiters() {
        let waiters = self.connectionWaiters
        self.connectionWaiters = [:]
        for waiter in waiters.values { waiter.resume() }
    }

    // MARK: - Carrying out the state's actions

    private func perform(_ actions: [AMQPClientState.Action]) {
        defer { self.resumeDrainWaiterIfDrained() }
        for action in actions {
            switch action {
            case .write(let performatives):
                self.flushOutboundFrames()
                guard let transport = self.transport else { continue }
                var bytes: [UInt8] = []
                for performative in performatives {
                    if let body = try? performative.encoded() { bytes += AMQPFrame(body: body).encoded }
                }
                transport.writer.send(bytes)
            case .writeFrames(let bytes):
                self.flushOutboundFrames()
                self.transport?.writer.send(bytes)
            case .settled(let sequence, let error):
                self.resumeSender(sequence, error)
            case .received(let message, let deliveryId, let settled, let slot):
                let generation = self.generation
                self.identities[slot]?.cloudToDevice.yield(
                    CloudToDeviceDelivery(message: message) { [weak self] state in
                        guard let self, !settled else { return }
                        try await self.settle(deliveryId, state: state, generation: generation)
                    }
                )
            case .message(let message, .cbsResponses):
                if let response = CBSPutToken.response(message) {
                    self.cbsWaiters.removeValue(forKey: response.requestId)?.resume(returning: response)
                }
            case .message(let message, .twinResponses(let slot)):
                self.twinMessage(AMQPTwinMessage.incoming(message), slot: slot)
            case .message(let message, .methodRequests(let slot)):
                self.methodRequest(message, slot: slot)
            case .message:
                break
            case .progress:
                self.wakeHandshakeWaiters()
            case .identityDetached(let slot, let error):
                self.identityFailed(slot, error)
            }
        }
    }

    /// A planned reconnect waits for the messages in flight: wakes it once none are left.
    private func resumeDrainWaiterIfDrained() {
        if self.drainWaiter != nil && self.protocolState.inFlightCount == 0 { self.resumeDrainWaiter() }
    }

    private func resumeSender(_ sequence: UInt64, _ error: HubAMQPError?) {
        guard let waiter = self.sendWaiters.removeValue(forKey: sequence) else { return }
        if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
    }

    private func settle(_ deliveryId: UInt32, state: AMQPDeliveryState, generation: UInt64) throws {
        guard self.transport?.generation == generation else {
            throw HubAMQPError(
                .notConnected,
                "the connection that delivered this message is gone; the hub delivers it again"
            )
        }
        self.perform(self.protocolState.settle(deliveryId, state: state))
    }

    // MARK: - Sending

    /// Sends `message` and waits for its settlement, within `timeout` (default: the operation time-out) or until
    /// `deadline` (a message's expiry on the continuous clock), whichever comes first.
    func send(
        _ message: AMQPMessage,
        slot: Int = 0,
        timeout: Duration? = nil,
        deadline: ContinuousClock.Instant? = nil
    ) async throws {
        if let terminalError { throw terminalError }
        guard self.lifecycle != .idle else { throw HubAMQPError(.notConnected, "the client is not connected") }
        if let failure = self.slotFailures[slot] { throw failure }
        guard self.protocolState.unsettledCount < self.settings.maximumQueuedMessages else {
            throw HubAMQPError(.queueFull, "\(self.protocolState.unsettledCount) messages already wait for settlement")
        }
        self.nextSequence += 1
        let sequence = self.nextSequence
        let timeout = timeout ?? self.settings.operationTimeout
        // The message's own expiry, measured on the session's clock.
        let lifetime = deadline.map { $0 - ContinuousClock.now }
        if let lifetime, lifetime <= .zero { throw HubAMQPError(.expired, "the message expired before it was sent") }
        let expires = lifetime.map { $0 < timeout } ?? false
        let wait = expires ? lifetime! : timeout
        let waitDeadline = self.settings.clock.now() + wait
        // Queued (and transmitted when it can be: its transfer lands in the outbound buffer, written below) before
        // the wait, so that a message that cannot be encoded throws here; kept as a message, not as a copy of its
        // bytes, until it is settled.
        try self.protocolState.enqueue(sequence: sequence, message: message, slot: slot, into: &self.outboundFrames)
        try await withTaskCancellationHandler {
            try await withFastThrowingContinuation { (continuation: FastContinuation<Void, any Error>) in
                self.sendWaiters[sequence] = SendWaiter(
                    continuation: continuation,
                    deadline: waitDeadline,
                    expires: expires,
                    timeout: timeout
                )
                if !self.sweepingSendDeadlines {
                    self.sweepingSendDeadlines = true
                    Task { await self.sweepSendDeadlines() }
                }
                if self.lifecycle != .connected && self.lifecycle != .connecting {
                    self.outboundFrames.removeAll(keepingCapacity: true)
                } else if self.sendWaiters.count > 1 {
                    self.scheduleFlush()
                } else {
                    self.flushOutboundFrames()
                }
            }
        } onCancel: {
            Task { await self.cancelSend(sequence) }
        }
    }

    /// Writes the transfer frames the hot path collected. Every other write calls this first, so that nothing
    /// overtakes a transfer (a flow after it counts it).
    private func flushOutboundFrames() {
        defer { self.outboundFrames.removeAll(keepingCapacity: true) }
        guard !self.outboundFrames.isEmpty, let transport = self.transport else { return }
        self.outboundFrames.withUnsafeBytes { _ = transport.writer.send($0) }
    }

    /// Flushes once the sends already waiting for the actor have queued their transfers too.
    private func scheduleFlush() {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        if let flusher = self.flusher {
            self.flusher = nil
            flusher.resume(returning: true)
        } else {
            Task { await self.runFlushes() }
        }
    }

    /// Flushes, then waits for the next ``scheduleFlush()``, until the session is closed.
    private func runFlushes() async {
        repeat {
            self.flushScheduled = false
            self.flushOutboundFrames()
        } while await self.nextFlush()
    }

    /// Parks the flushing task until the next flush (`true`) or the end of the session (`false`).
    private func nextFlush() async -> Bool {
        await withFastContinuation { (continuation: FastContinuation<Bool, Never>) in
            if self.lifecycle == .closed {
                continuation.resume(returning: false)
            } else {
                self.flusher = continuation
            }
        }
    }

    /// Ends every send wait whose deadline has passed (`timedOut`, or `expired` for a message's own expiry); the
    /// message is forgotten. Returns whether senders still wait.
    private func expireSendWaiters() -> Bool {
        let now = self.settings.clock.now()
        var expired: [(UInt64, SendWaiter)] = []
        for (sequence, waiter) in self.sendWaiters where waiter.deadline <= now { expired.append((sequence, waiter)) }
        for (sequence, waiter) in expired.sorted(by: { $0.0 < $1.0 }) {
            self.giveUp(
                on: sequence,
                waiter.expires
                    ? HubAMQPError(.expired, "the message expired before the hub accepted it")
                    : HubAMQPError(.timedOut, "not settled within \(waiter.timeout)")
            )
        }
        return !self.sendWaiters.isEmpty
    }

    /// Expires send deadlines every 200 ms while senders wait: one timer for all sends instead of one per send.
    private func sweepSendDeadlines() async {
        defer { self.sweepingSendDeadlines = false }
        while !Task.isCancelled, self.lifecycle != .closed {
            try? await self.settings.clock.sleep(for: Self.sendDeadlineSweep)
            if !self.expireSendWaiters() { return }
        }
    }

    /// How often waiting sends are checked against their deadlines.
    static let sendDeadlineSweep: Duration = .milliseconds(200)

    private func giveUp(on sequence: UInt64, _ error: HubAMQPError) {
        self.protocolState.abandon(sequence: sequence)
        self.sendWaiters.removeValue(forKey: sequence)?.continuation.resume(throwing: error)
    }

    private func cancelSend(_ sequence: UInt64) {
        guard self.protocolState.withdraw(sequence: sequence) else { return }
        self.sendWaiters.removeValue(forKey: sequence)?.continuation.resume(throwing: CancellationError())
    }

    private func heartbeats(every interval: Duration, generation: UInt64) async {
        while !Task.isCancelled {
            try? await self.settings.clock.sleep(for: interval)
            guard let transport = self.transport, transport.generation == generation else { return }
            transport.writer.send(AMQPFrame(body: []).encoded)
        }
    }

    // MARK: - Losing, reconnecting and closing

    /// The connection of `generation` failed: during `connect` the error goes to the caller; afterwards the session
    /// reconnects (if configured, or to renew a token) and keeps unsettled messages for resending, or fails everything.
    private func transportLost(_ error: HubAMQPError, generation: UInt64, reconnect: Bool? = nil) {
        guard self.generation == generation, self.transportFailure == nil else { return }
        self.transportFailure = error
        self.logger.info("AMQP connection lost", metadata: ["error": "\(error)"])
        self.perform([.progress])
        for (_, waiter) in self.cbsWaiters { waiter.resume(throwing: error) }
        self.cbsWaiters = [:]
        self.failTwinWaiters(
            HubAMQPError(.notConnected, "the connection was lost: \(error.message)", underlying: error)
        )
        guard self.lifecycle == .connected else { return }
        self.tearDown()
        self.emit(.disconnected, error.message)
        for identity in self.identities.values {
            identity.events?.yield(ConnectionEvent(kind: .disconnected, reason: error.message))
        }
        if reconnect ?? self.settings.reconnects {
            self.lifecycle = .reconnecting
            // A planned reconnect (token renewal) goes at once; a loss waits what the retry policy says, which keeps
            // growing while connections do not last (flapping).
            let uptime = self.connectedAt.map { self.settings.clock.now() - $0 } ?? .zero
            let delay: Duration? =
                reconnect == true
                ? nil : self.backoff.connectionLost(after: uptime, randomUnit: Double.random(in: 0..<1))
            self.reconnectTask = Task { await self.reconnectLoop(firstDelay: delay) }
        } else {
            self.finish(with: error)
        }
    }

    /// Drops the current connection and what belongs to it; queued messages stay for the next connection.
    private func tearDown() {
        // Transfers for this connection that a scheduled flush did not write: the messages go again on the next.
        self.outboundFrames.removeAll(keepingCapacity: true)
        self.resumeDrainWaiter()
        self.readerTask?.cancel()
        self.heartbeatTask?.cancel()
        for task in self.renewalTasks.values { task.cancel() }
        self.renewalTasks = [:]
        if let transport = self.transport {
            transport.connection.close()
            Task { await transport.writer.finish() }
        }
        self.transport = nil
        self.protocolState.connectionLost()
    }

    private func reconnectLoop(firstDelay: Duration?) async {
        var delay = firstDelay
        while self.lifecycle == .reconnecting, !Task.isCancelled {
            if let delay { try? await self.settings.clock.sleep(for: delay) }
            guard self.lifecycle == .reconnecting else { return }
            do {
                self.lifecycle = .connecting
                try await self.establish()
                self.lifecycle = .connected
                self.connectedAt = self.settings.clock.now()
                self.resumeConnectionWaiters()
                self.emit(.connected, "reconnected; the links are attached")
                self.logger.info("AMQP reconnected", metadata: ["unsettled": "\(self.protocolState.unsettledCount)"])
                return
            } catch {
                guard self.lifecycle == .connecting else { return }
                self.lifecycle = .reconnecting
                self.logger.info("AMQP reconnect failed", metadata: ["error": "\(error)"])
                self.emit(.reconnectFailed, "\(error)")
                guard self.settings.reconnects else {
                    // Only a token renewal reconnects when automatic reconnects are off; it gets one attempt.
                    self.finish(
                        with: error as? HubAMQPError ?? HubAMQPError(.connectionClosed, "reconnecting failed: \(error)")
                    )
                    return
                }
                switch self.backoff.attemptFailed(
                    Self.classify(error),
                    reason: "\(error)",
                    randomUnit: Double.random(in: 0..<1)
                )
                {
                case .retry(let after):
                    delay = after
                case .giveUp(let reason):
                    self.logger.warning("AMQP gives up reconnecting", metadata: ["reason": "\(reason)"])
                    self.finish(
                        with: HubAMQPError(.retriesExhausted, "gave up reconnecting: \(reason)", underlying: error)
                    )
                    return
                }
            }
        }
    }

    /// Refused credentials and certificates that are not trusted or do not fit are permanent; the rest transient.
    static func classify(_ error: any Error) -> RetryPolicy.Classification {
        if let error = error as? HubAMQPError { return error.code == .authenticationFailed ? .permanent : .transient }
        if let error = error as? AzureIoTError { return RetryPolicy.classify(error) }
        return .transient
    }

    private func finish(with error: HubAMQPError) {
        self.lifecycle = .closed
        self.flusher?.resume(returning: false)
        self.flusher = nil
        self.terminalError = error
        let waiters = self.sendWaiters
        self.sendWaiters = [:]
        for (sequence, waiter) in waiters {
            self.protocolState.abandon(sequence: sequence)
            waiter.continuation.resume(throwing: error)
        }
        for identity in self.identities.values {
            identity.cloudToDevice.finish()
            identity.desired?.finish()
            identity.methods?.finish()
            identity.events?.yield(ConnectionEvent(kind: .disconnected, reason: error.message))
            identity.events?.finish()
        }
        self.failTwinWaiters(error)
        if error.code == .retriesExhausted {
            self.emit(.gaveUp, error.message)
        } else {
            self.emit(.disconnected, error.message)
        }
        self.events?.finish()
        let connectionWaiters = self.connectionWaiters
        self.connectionWaiters = [:]
        for waiter in connectionWaiters.values { waiter.resume(throwing: error) }
        for waiter in self.finishWaiters { waiter.resume() }
        self.finishWaiters = []
    }

    /// Returns once the session ended (closed by the application, or the retry policy gave up).
    func waitUntilFinished() async {
        guard self.lifecycle != .closed else { return }
        await withCheckedContinuation { self.finishWaiters.append($0) }
    }

    func close() async {
        guard self.lifecycle != .closed else { return }
        self.reconnectTask?.cancel()
        if self.lifecycle == .connected, let transport = self.transport {
            self.flushOutboundFrames()
            transport.writer.send(
                AMQPFrame(body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? []).encoded
            )
            self.transport = nil
            await transport.writer.finish()
            self.transport = transport
        }
        self.generation += 1
        self.tearDown()
        self.finish(with: HubAMQPError(.notConnected, "the client was closed"))
    }
}
