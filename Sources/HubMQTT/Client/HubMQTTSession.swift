import AzureIoTCore
import Foundation
import Logging

/// The connection state machine behind ``HubMQTTClient``: one TLS connection at a time, request/response
/// correlation, keep-alive, token renewal and reconnects. Telemetry goes through the ``PublishPipeline`` (the QoS 1
/// window and the outbound queue) without hopping onto the actor; unacknowledged PUBLISHes survive reconnects and are
/// resent with DUP.
actor HubMQTTSession {
    private let configuration: HubMQTTConfiguration
    /// The configuration's `operationTimeout`, read on every send without going through the whole configuration.
    private nonisolated let operationTimeout: Duration
    /// The telemetry topic prefix as bytes, made once.
    private nonisolated let telemetryPrefixBytes: ArraySlice<UInt8>
    private let logger: Logger
    private let topics: HubTopics
    private let framer = MQTTFramer()
    /// Timers (retry waits, keep-alive ticks, request deadlines) and the wall clock tokens are issued against.
    private nonisolated let clock: any IoTClock

    /// The lifecycle: which phase, which connection, when to retry, ping and renew (no I/O, no clock of its own).
    private var lifecycle: MQTTConnectionState
    /// The open connection and its generation (the lifecycle's `liveGeneration` while it is in use).
    private var connection: TLSConnection?
    private var connectionGeneration = 0
    private var issuedToken: IssuedSASToken?
    /// Whether ``shutDown(_:event:)`` ran (the lifecycle may be shut down a moment earlier).
    private var ended = false

    private let pipeline: PublishPipeline
    private var subackWaiters: [UInt16: CheckedContinuation<SubAckPacket, any Error>] = [:]
    private var twinWaiters: [String: CheckedContinuation<(Int, PropertyBag, [UInt8]), any Error>] = [:]
    private var nextRequestId: UInt32 = 0
    private var lastDesiredVersion: Int?

    private var readerTask: Task<Void, Never>?
    private var tickTask: Task<Void, Never>?
    private var writerTask: Task<Void, Never>?
    private var attemptTask: Task<Void, Never>?
    private var retryTask: Task<Void, Never>?
    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    /// `connect()` calls and twin requests made while a connect or a reconnect is under way: they share its
    /// outcome (twin requests give up at their own deadline).
    private var connectWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    private var nextConnectWaiter: UInt64 = 0

    /// Why the session ended, when it ended on its own (the retry policy gave up).
    private(set) var terminalError: HubMQTTError?

    /// The kinds of pushed traffic the application asked for (subscribed on every connection), and those the
    /// current connection has a SUBACK for.
    private var wanted: Set<HubMQTTClient.Inbound> = []
    private var subscribed: Set<HubMQTTClient.Inbound> = []
    /// Set when a desired patch found its stream full: the twin is read again once the application catches up.
    private var desiredOverflowed = false

    nonisolated let cloudToDevice: InboundQueue<CloudToDeviceMessage>
    nonisolated let desired: InboundQueue<DesiredPropertyPatch>
    nonisolated let methods: InboundQueue<MethodRequest>
    nonisolated let events: InboundQueue<ConnectionEvent>

    init(
        configuration: HubMQTTConfiguration,
        logger: Logger,
        cloudToDevice: InboundQueue<CloudToDeviceMessage>,
        desired: InboundQueue<DesiredPropertyPatch>,
        methods: InboundQueue<MethodRequest>,
        events: InboundQueue<ConnectionEvent>,
        clock: any IoTClock = SystemClock()
    ) {
        self.configuration = configuration
        self.clock = clock
        self.operationTimeout = configuration.operationTimeout
        self.logger = logger
        self.topics = HubTopics(deviceId: configuration.identity.deviceId, moduleId: configuration.identity.moduleId)
        self.telemetryPrefixBytes = ArraySlice(self.topics.telemetryPrefix.utf8)
        self.pipeline = PublishPipeline(
            window: configuration.inflightWindow,
            writeTimeout: configuration.operationTimeout,
            maximumWaiting: configuration.maximumQueuedMessages,
            // QoS 0 is refused past four full-size messages waiting for the socket.
            maximumUnwrittenBytes: 4 * TelemetryMessage.maximumSize,
            clock: clock
        )
        self.lifecycle = MQTTConnectionState(
            retryPolicy: configuration.retryPolicy,
            keepAlive: configuration.keepAlive,
            connectTimeout: configuration.connectTimeout,
            drainTimeout: min(configuration.operationTimeout, .seconds(10))
        )
        self.cloudToDevice = cloudToDevice
        self.desired = desired
        self.methods = methods
        self.events = events
    }

    /// Offers `event` to the application's stream and to the configuration's observer.
    private func emit(_ event: ConnectionEvent) {
        self.events.offer(event)
        self.configuration.eventObserver?(event)
    }

    // MARK: - Connecting

    /// Connects, or waits for the connect or reconnect under way. A first connect is tried again under the retry
    /// policy within the connect time-out, exactly as a reconnect would be; it throws the last failure, or
    /// ``HubMQTTError/Code/retriesExhausted`` once the policy gives up (refused credentials).
    func connect(timeout: Duration? = nil) async throws {
        switch self.lifecycle.connectRequested(now: self.clock.now(), timeout: timeout) {
        case .alreadyConnected: return
        case .fail(let error): throw self.terminalError ?? error
        case .wait: break
        case .open: self.startAttempt()
        }
        do {
            try await self.awaitConnection(until: nil)
        } catch is CancellationError {
            // Nobody waits for this first connect any more: it stops, and the client is idle again.
            if self.lifecycle.firstConnectAbandoned() { self.abandonAttempt(CancellationError()) }
            throw CancellationError()
        }
    }

    private func startAttempt() {
        self.retryTask = nil
        self.attemptTask = Task { await self.runAttempt() }
    }

    /// Stops the attempt or the wait under way (the first connect was cancelled).
    private func abandonAttempt(_ error: any Error) {
        self.attemptTask?.cancel()
        self.retryTask?.cancel()
        if let connection = self.connection {
            self.connection = nil
            self.pipeline.detach(generation: self.connectionGeneration)
            connection.close()
            self.tickTask?.cancel()
            self.readerTask?.cancel()
        }
        self.failAllWaiters(HubMQTTError(.notConnected, "the connect was cancelled"))
        self.resumeConnectWaiters(throwing: error)
    }

    /// One attempt: TLS, CONNECT, CONNACK, SUBSCRIBE; its outcome goes to the lifecycle.
    private func runAttempt() async {
        let opened: (connection: TLSConnection, leftover: [UInt8])
        do {
            opened = try await self.openConnection()
        } catch {
            self.attemptFailed(error)
            return
        }
        guard case .subscribe(let generation) = self.lifecycle.connectionAccepted() else {
            opened.connection.close()
            return
        }
        self.install(opened.connection, generation: generation, leftover: opened.leftover)
        let kinds = self.wanted
        self.subscribed = []
        let subscribe = SubscribePacket(
            packetId: self.pipeline.reservePacketId(),
            subscriptions: ([HubTopics.twinResponseFilter] + kinds.sorted().map { self.topics.filter(for: $0) })
                .map { .init(topicFilter: $0, qos: .atLeastOnce) }
        )
        let suback: SubAckPacket
        do {
            suback = try await self.request(subscribe)
        } catch {
            // Not left up unsubscribed: the connection goes, and the lifecycle decides what follows.
            self.dropConnection(generation: generation, reason: "no SUBACK: \(error)")
            self.attemptFailed(error)
            return
        }
        if suback.returnCodes.contains(.failure) {
            self.logger.warning(
                "a subscription was refused",
                metadata: ["codes": "\(suback.returnCodes.map(\.rawValue))"]
            )
        }
        for (kind, code) in zip(kinds.sorted(), suback.returnCodes.dropFirst()) where code != .failure {
            self.subscribed.insert(kind)
        }
        self.perform(self.lifecycle.subscribed(generation: generation, now: self.clock.now()))
    }

    // MARK: - Subscribing on demand

    /// Adds `kinds` to what the client subscribes to, on this connection (waiting for the SUBACK) and every later
    /// one. While the client is not connected yet, the next connection subscribes; while it reconnects, this waits
    /// for the connection within the operation time-out.
    func subscribe(to kinds: Set<HubMQTTClient.Inbound>) async throws {
        self.wanted.formUnion(kinds)
        let deadline = self.clock.now() + self.configuration.operationTimeout
        while true {
            switch self.lifecycle.phase {
            case .idle: return
            case .shutDown: throw self.terminalError ?? HubMQTTError(.shutDown, "the client was shut down")
            default: break
            }
            try await self.awaitConnection(until: deadline)
            let missing = kinds.subtracting(self.subscribed).sorted()
            guard !missing.isEmpty, let generation = self.lifecycle.liveGeneration else { return }
            let packet = SubscribePacket(
                packetId: self.pipeline.reservePacketId(),
                subscriptions: missing.map { .init(topicFilter: self.topics.filter(for: $0), qos: .atLeastOnce) }
            )
            do {
                let suback = try await self.request(packet)
                guard generation == self.lifecycle.liveGeneration else { continue }
                for (kind, code) in zip(missing, suback.returnCodes) where code != .failure {
                    self.subscribed.insert(kind)
                }
                if suback.returnCodes.contains(.failure) {
                    throw HubMQTTError(
                        .subscriptionRefused,
                        "the hub refused the subscription to \(missing.filter { !self.subscribed.contains($0) })"
                    )
                }
                return
            } catch let error as HubMQTTError
                where error.code == .notConnected && self.clock.now() < deadline && !self.ended
            {
                // The connection went while subscribing: the next one subscribes to everything wanted.
                continue
            }
        }
    }

    /// The application took a cloud-to-device message: now it is acknowledged (on the connection it came on).
    nonisolated func cloudToDeviceTaken(_ message: CloudToDeviceMessage) {
        guard let delivery = message.delivery else { return }
        try? self.pipeline.enqueue(.puback(packetId: delivery.packetId), generation: delivery.generation) {
            self.pipeline.handOff($0)
        }
    }

    /// The application took a desired patch: if patches were dropped on a full stream, the twin is read again once
    /// there is room, and its whole desired section is delivered.
    func desiredTaken() async {
        guard self.desiredOverflowed, self.desired.count < self.desired.capacity else { return }
        self.desiredOverflowed = false
        await self.reconcileTwin()
    }

    private func attemptFailed(_ error: any Error) {
        let failure = Self.wrap(error)
        self.perform(
            self.lifecycle.attemptFailed(
                failure,
                classification: Self.classify(failure),
                now: self.clock.now(),
                randomUnit: Double.random(in: 0..<1)
            )
        )
    }

    /// Every failure as a ``HubMQTTError``: TLS and network failures become ``HubMQTTError/Code/connectionFailed``
    /// with the `AzureIoTError` as the underlying cause.
    static func wrap(_ error: any Error) -> HubMQTTError {
        switch error {
        case let error as HubMQTTError: return error
        case let error as AzureIoTError: return HubMQTTError(.connectionFailed, "\(error)", underlying: error)
        case let error as MQTTCodecError:
            return HubMQTTError(
                .protocolViolation,
                "the broker sent malformed MQTT: \(error.message)",
                underlying: error
            )
        case is CancellationError:
            return HubMQTTError(.notConnected, "the attempt was cancelled", underlying: CancellationError())
        default: return HubMQTTError(.connectionFailed, "\(error)")
        }
    }

    /// Carries out what the lifecycle decided.
    private func perform(_ action: MQTTConnectionState.Action) {
        switch action {
        case .none, .subscribe, .discardConnection:
            break
        case .openConnection:
            self.startAttempt()
        case .connected(let reconcileTwin):
            self.emit(ConnectionEvent(kind: .connected, reason: "CONNACK accepted"))
            self.logger.debug(
                "connected",
                metadata: [
                    "host": "\(self.configuration.connectHost)", "clientId": "\(self.configuration.identity.clientId)",
                ]
            )
            self.resumeConnectWaiters()
            if reconcileTwin { Task { await self.reconcileTwin() } }
        case .reconnect(let dropped, let delay, let reason):
            if let dropped {
                self.logger.info("connection lost", metadata: ["reason": "\(reason)"])
                self.dropConnection(generation: dropped, reason: reason)
                self.emit(ConnectionEvent(kind: .disconnected, reason: reason))
            } else {
                self.logger.debug("connect attempt failed", metadata: ["error": "\(reason)", "wait": "\(delay)"])
                self.emit(
                    ConnectionEvent(kind: .reconnectFailed, reason: "\(reason); next attempt in \(delay)")
                )
            }
            self.retryTask = Task {
                try? await self.clock.sleep(for: delay)
                guard !Task.isCancelled else { return }
                self.retryDue()
            }
        case .failConnect(let error):
            self.resumeConnectWaiters(throwing: error)
        case .giveUp(let error):
            self.logger.warning("giving up reconnecting", metadata: ["reason": "\(error.message)"])
            self.terminalError = error
            Task { await self.shutDown(error, event: ConnectionEvent(kind: .gaveUp, reason: error.message)) }
        case .startDraining:
            self.logger.info("renewing the SAS token: waiting for in-flight PUBLISHes first")
            self.pipeline.pause()
        case .renewConnection(let generation):
            self.renew(generation: generation)
        case .sendPing:
            self.enqueue(.pingreq)
        }
    }

    private func retryDue() {
        self.perform(self.lifecycle.retryDue(now: self.clock.now()))
    }

    /// A planned reconnect with a fresh token: DISCONNECT (after whatever was queued), close, connect again.
    private func renew(generation: Int) {
        guard generation == self.connectionGeneration, let connection = self.connection else { return }
        self.logger.info(
            "renewing the SAS token by reconnecting",
            metadata: ["inflight": "\(self.pipeline.inflightCount)"]
        )
        self.emit(ConnectionEvent(kind: .renewingToken, reason: "the SAS token reached its renewal time"))
        let unwritten = self.pipeline.detach(generation: generation)
        self.dropConnection(generation: generation, reason: "renewing the SAS token", close: false)
        self.emit(ConnectionEvent(kind: .disconnected, reason: "renewing the SAS token"))
        self.retryTask = nil
        self.attemptTask = Task {
            // The hub sees a clean goodbye before the same identity connects again.
            if let unwritten, let disconnect = try? MQTTPacket.disconnect.encoded() {
                try? await connection.write(unwritten + disconnect, timeout: .seconds(2))
            }
            connection.close()
            guard !Task.isCancelled else { return }
            await self.runAttempt()
        }
    }

    private func resumeConnectWaiters(throwing error: (any Error)? = nil) {
        let waiters = self.connectWaiters
        self.connectWaiters = [:]
        for waiter in waiters.values {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    /// Returns once connected: at once when connected, after the connect or reconnect under way succeeds, and
    /// throws when it fails for good, when the client is idle or shut down, past `deadline`, or when the task is
    /// cancelled.
    private func awaitConnection(until deadline: Duration?) async throws {
        switch self.lifecycle.phase {
        case .connected, .draining: return
        case .idle: throw HubMQTTError(.notConnected, "not connected: call connect() first")
        case .shutDown: throw self.terminalError ?? HubMQTTError(.shutDown, "the client was shut down")
        case .connecting, .subscribing, .waiting: break
        }
        let id = self.nextConnectWaiter
        self.nextConnectWaiter &+= 1
        let clock = self.clock
        let timer = deadline.map { deadline in
            Task { [weak self] in
                try? await clock.sleep(for: deadline - clock.now())
                guard !Task.isCancelled else { return }
                await self?.expireConnectWaiter(
                    id,
                    HubMQTTError(.timedOut, "no connection within the operation's time-out")
                )
            }
        }
        defer { timer?.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    self.connectWaiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.expireConnectWaiter(id, CancellationError()) }
        }
    }

    private func expireConnectWaiter(_ id: UInt64, _ error: any Error) {
        self.connectWaiters.removeValue(forKey: id)?.resume(throwing: error)
    }

    /// Opens TLS, sends CONNECT and waits for CONNACK; returns the connection and what was read after CONNACK.
    private func openConnection() async throws -> (TLSConnection, [UInt8]) {
        var tls = TLSConfiguration(
            trustRoots: self.configuration.trustRoots,
            connectTimeout: self.configuration.connectTimeout,
            connectionOpener: self.configuration.connectionOpener,
            webSocket: self.configuration.webSockets ? .mqtt : nil
        )
        var password: [UInt8]?
        switch self.configuration.authentication {
        case .sas(let source):
            let issued = try await source.token(
                for: self.configuration.identity.sasResource,
                now: self.clock.unixSeconds()
            )
            self.issuedToken = issued
            password = Array(issued.token.secretValue.utf8)
        case .x509(let identity):
            tls.clientIdentity = identity
        }
        let connection = try await TLSConnection.connect(
            host: self.configuration.connectHost,
            port: self.configuration.port,
            configuration: tls,
            logger: self.logger
        )
        let connect = ConnectPacket(
            clientId: self.configuration.identity.clientId,
            cleanSession: self.configuration.cleanSession,
            keepAliveSeconds: UInt16(clamping: self.configuration.keepAlive.components.seconds),
            username: self.configuration.identity.username,
            password: password
        )
        var leftover: [UInt8] = []
        do {
            try await connection.write(
                try MQTTPacket.connect(connect).encoded(),
                timeout: self.configuration.operationTimeout
            )
            let connack = try await self.readConnAck(connection, buffer: &leftover)
            guard connack.returnCode == .accepted else {
                throw HubMQTTError(
                    .connectionRefused,
                    "the broker refused CONNECT: \(connack.returnCode) (\(connack.returnCode.rawValue))",
                    status: Int(connack.returnCode.rawValue)
                )
            }
        } catch {
            connection.close()
            throw error
        }
        return (connection, leftover)
    }

    /// Makes `connection` the current one: its reader and timer start, and unacknowledged PUBLISHes go out again
    /// (with DUP) first.
    private func install(_ connection: TLSConnection, generation: Int, leftover: [UInt8]) {
        self.connection = connection
        self.connectionGeneration = generation
        self.readerTask = Task { await self.readLoop(connection, generation: generation, leftover: leftover) }
        self.tickTask = Task { await self.tickLoop(generation: generation) }
        self.writerTask = Task { await self.writeLoop(generation: generation) }
        self.pipeline.attach(connection, generation: generation) { self.pipeline.handOff($0) }
    }

    /// Closes connection `generation` (or leaves the closing to the caller, who says goodbye first) and stops what runs
    /// for it; unacknowledged PUBLISHes stay for the next one.
    private func dropConnection(generation: Int, reason: String, close: Bool = true) {
        guard generation == self.connectionGeneration, let connection = self.connection else { return }
        self.pipeline.detach(generation: generation)
        if close { connection.close() }
        self.connection = nil
        self.tickTask?.cancel()
        self.readerTask?.cancel()
        self.failAllWaiters(HubMQTTError(.notConnected, "the connection was lost: \(reason)"))
    }

    private func readConnAck(_ connection: TLSConnection, buffer: inout [UInt8]) async throws -> ConnAckPacket {
        // A socket time-out: real time, whatever clock runs the session's timers.
        let deadline = ContinuousClock.now + self.configuration.operationTimeout
        while true {
            let chunk = try await connection.read(timeout: max(.milliseconds(1), deadline - .now))
            guard !chunk.isEmpty else {
                throw HubMQTTError(.connectionRefused, "the broker closed the connection before CONNACK")
            }
            buffer += chunk
            if let frame = try self.framer.nextFrame(in: buffer[...]) {
                let packet = try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body])
                buffer.removeSubrange(0..<frame.end)
                guard case .connack(let connack) = packet else {
                    throw HubMQTTError(
                        .protocolViolation,
                        "the broker answered CONNECT with something other than CONNACK"
                    )
                }
                return connack
            }
        }
    }

    // MARK: - Shutting down

    func disconnect() async {
        await self.shutDown(
            HubMQTTError(.shutDown, "the client was shut down"),
            event: ConnectionEvent(kind: .disconnected, reason: "shut down by the application")
        )
    }

    /// Ends the session: pending work fails with `error`, `event` is the last connection event. Returns after
    /// DISCONNECT went out (or could not).
    private func shutDown(_ error: HubMQTTError, event: ConnectionEvent) async {
        guard !self.ended else { return }
        self.ended = true
        _ = self.lifecycle.shutDown()
        let connection = self.connection
        self.connection = nil
        self.attemptTask?.cancel()
        self.retryTask?.cancel()
        self.tickTask?.cancel()
        let unwritten = self.pipeline.shutDown(error)
        self.readerTask?.cancel()
        self.failAllWaiters(error)
        self.resumeConnectWaiters(throwing: error)
        if let connection {
            try? await connection.write(unwritten + MQTTPacket.disconnect.encoded(), timeout: .seconds(2))
            connection.close()
        }
        self.emit(event)
        self.cloudToDevice.finish()
        self.desired.finish()
        self.methods.finish()
        self.events.finish()
        for waiter in self.shutdownWaiters { waiter.resume() }
        self.shutdownWaiters = []
    }

    func waitForShutdown() async {
        guard !self.ended else { return }
        await withCheckedContinuation { self.shutdownWaiters.append($0) }
    }

    /// Fails pending SUBSCRIBE and twin requests (telemetry waits in the pipeline across reconnects).
    private func failAllWaiters(_ error: HubMQTTError) {
        for (id, waiter) in self.subackWaiters {
            self.pipeline.releasePacketId(id)
            waiter.resume(throwing: error)
        }
        self.subackWaiters = [:]
        for (_, waiter) in self.twinWaiters { waiter.resume(throwing: error) }
        self.twinWaiters = [:]
    }

    // MARK: - Losing the connection

    private func connectionLost(generation: Int, reason: String) {
        let action = self.lifecycle.connectionLost(
            generation: generation,
            reason: reason,
            now: self.clock.now(),
            randomUnit: Double.random(in: 0..<1)
        )
        if action == .none {
            // Lost while subscribing: the SUBACK wait fails and the attempt reports it.
            self.dropConnection(generation: generation, reason: reason)
        } else {
            self.perform(action)
        }
    }

    /// Whether trying again can help: refused credentials (CONNACK other than 3, "server unavailable"), certificates
    /// that are not trusted or do not fit, and unusable credentials are permanent; the rest is transient.
    static func classify(_ error: any Error) -> RetryPolicy.Classification {
        if let error = error as? HubMQTTError {
            if error.code == .connectionRefused { return error.status == 3 ? .transient : .permanent }
            if let underlying = error.underlying as? AzureIoTError { return RetryPolicy.classify(underlying) }
            return .transient
        }
        if let error = error as? AzureIoTError { return RetryPolicy.classify(error) }
        return .transient
    }

    /// Re-reads the twin after a reconnect and reports the desired section if it changed while offline.
    private func reconcileTwin() async {
        // Nobody reads desired properties: no stale document is left waiting in the stream.
        guard self.desired.isDemanded, let twin = try? await self.twin() else { return }
        if let version = twin.desiredVersion, version != self.lastDesiredVersion {
            self.lastDesiredVersion = version
            let desired = (try? JSONValue(parsing: twin.json))?["desired"]
            let json = desired?.jsonBytes ?? []
            self.desired.offer(DesiredPropertyPatch(version: version, json: json, isFullDocument: true))
        }
    }

    // MARK: - Reading

    /// Reads on the actor without waiting while bytes are there (so reads never contend with writes for the TLS
    /// session), gives queued work one turn before waiting, and then waits for readiness on the I/O reactor.
    private func readLoop(_ connection: TLSConnection, generation: Int, leftover: [UInt8]) async {
        var buffer = leftover
        buffer.reserveCapacity(Self.readChunk)
        // One read buffer and one packet array per connection: steady-state reading allocates nothing.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readChunk, alignment: 1)
        defer { scratch.deallocate() }
        var packets: [MQTTPacket] = []
        var handledSinceYield = 0
        var yielded = false
        do {
            while generation == self.connectionGeneration && self.connection != nil {
                if !buffer.isEmpty {
                    try self.framer.decodePackets(from: &buffer, into: &packets)
                    for packet in packets { try self.handle(packet, generation: generation) }
                    handledSinceYield += packets.count
                    packets.removeAll(keepingCapacity: true)
                }
                // A peer that never stops sending (a flood of SUBACKs) must not starve the session's timers, twin
                // requests and shutdown, which run on this actor too.
                if handledSinceYield >= Self.packetsPerTurn {
                    handledSinceYield = 0
                    await Task.yield()
                    continue
                }
                switch try connection.readNow(into: scratch) {
                case .done(let count):
                    guard count > 0 else {
                        self.connectionLost(generation: generation, reason: "the broker closed the connection")
                        return
                    }
                    buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[..<count]))
                    yielded = false
                case .needsReadable where !yielded:
                    handledSinceYield = 0
                    // Senders resumed by the acknowledgements just handled run first; their PUBLISHes go out
                    // together and more acknowledgements may have arrived by the time this task reads again.
                    yielded = true
                    await Task.yield()
                case .needsReadable:
                    yielded = false
                    try await connection.waitUntilReady(readable: true)
                case .needsWritable:
                    try await connection.waitUntilReady(readable: false)
                }
            }
        } catch {
            self.connectionLost(generation: generation, reason: "\(error)")
        }
    }

    /// The most bytes one read takes off the TLS session (one TLS record).
    private static let readChunk = 16 * 1024
    /// Packets handled before the reader lets other work on the actor run.
    private static let packetsPerTurn = 256

    private func handle(_ packet: MQTTPacket, generation: Int) throws {
        guard generation == self.connectionGeneration else { return }
        self.lifecycle.packetReceived(generation: generation)
        switch packet {
        case .puback(let id):
            self.pipeline.acknowledge(id)
            if case .draining = self.lifecycle.phase, self.pipeline.inflightCount == 0 {
                self.perform(self.lifecycle.drained(generation: generation))
            }
        case .suback(let suback):
            guard let waiter = self.subackWaiters.removeValue(forKey: suback.packetId) else { return }
            self.pipeline.releasePacketId(suback.packetId)
            waiter.resume(returning: suback)
        case .publish(let publish):
            // A C2D message is acknowledged when the application takes it; everything else on receipt.
            let acknowledgeNow = try self.route(publish, generation: generation)
            if acknowledgeNow, let id = publish.packetId, publish.qos == .atLeastOnce {
                self.enqueue(.puback(packetId: id))
            }
        case .pingresp, .unsuback:
            break
        default:
            throw HubMQTTError(.protocolViolation, "the broker sent an unexpected packet")
        }
    }

    /// Hands an incoming PUBLISH to its stream; returns whether to PUBACK it now.
    private func route(_ publish: PublishPacket, generation: Int) throws -> Bool {
        switch try self.topics.classify(publish.topic) {
        case .cloudToDevice(let bag, let inputName):
            let properties = try PropertyBag(parsing: bag)
            let delivery = publish.packetId.map { (packetId: $0, generation: generation) }
            let message = CloudToDeviceMessage(
                body: publish.payload,
                properties: properties,
                inputName: inputName.map { (try? PercentEncoding.decode($0)) ?? String($0) },
                delivery: publish.qos == .atLeastOnce ? delivery : nil
            )
            if !self.cloudToDevice.offer(message) {
                // Not acknowledged: the hub delivers it again after a reconnect.
                self.logger.warning(
                    "the cloud-to-device stream is full; the message is left unacknowledged",
                    metadata: ["capacity": "\(self.cloudToDevice.capacity)"]
                )
            }
            return false
        case .twinResponse(let status, let query):
            if let rid = query["$rid"] {
                self.twinWaiters.removeValue(forKey: rid)?.resume(returning: (status, query, publish.payload))
            }
        case .desiredPatch(let query):
            let version = query["$version"].flatMap { Int($0) }
            if self.desired.offer(DesiredPropertyPatch(version: version, json: publish.payload, isFullDocument: false))
            {
                if let version { self.lastDesiredVersion = version }
            } else {
                self.desiredOverflowed = true
                self.logger.warning("the desired-properties stream is full; the twin is read again once there is room")
            }
        case .methodRequest(let name, let query):
            guard let rid = query["$rid"] else { throw HubMQTTError(.malformedTopic, "a method request has no $rid") }
            let request = MethodRequest(name: name, requestId: rid, payload: publish.payload) {
                [weak self] status, payload in
                guard let self else { throw HubMQTTError(.shutDown, "the client is gone") }
                try await self.respond(rid: rid, status: status, payload: payload)
            }
            if !self.methods.offer(request) {
                // The caller learns at once that the device is busy instead of waiting for its time-out.
                self.enqueue(
                    .publish(
                        PublishPacket(
                            topic: HubTopics.methodResponse(status: 503, rid: rid),
                            payload: Array(#"{"message":"the device has too many method calls waiting"}"#.utf8)
                        )
                    )
                )
            }
        case .other:
            self.logger.debug("message on an unexpected topic", metadata: ["topic": "\(publish.topic)"])
        }
        return true
    }

    // MARK: - Writing

    private func enqueue(_ packet: MQTTPacket) {
        do {
            try self.pipeline.enqueue(packet) { self.pipeline.handOff($0) }
        } catch {
            self.logger.error("could not encode a packet", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Keep-alive and token renewal

    private func tickLoop(generation: Int) async {
        let tick = min(.seconds(1), self.configuration.keepAlive / 2)
        while !Task.isCancelled {
            try? await self.clock.sleep(for: tick)
            guard !Task.isCancelled, generation == self.lifecycle.liveGeneration else { return }
            self.perform(
                self.lifecycle.tick(
                    generation: generation,
                    now: self.clock.now(),
                    lastOutbound: self.pipeline.lastOutbound,
                    inflight: self.pipeline.inflightCount,
                    tokenNeedsRenewal: self.issuedToken?.needsRenewal(now: self.clock.unixSeconds()) ?? false,
                    randomUnit: Double.random(in: 0..<1)
                )
            )
        }
    }

    // MARK: - Telemetry

    /// The connection's writer: writes what senders queued, on the actor next to the reader (reads and writes never
    /// contend for the TLS session), everything queued meanwhile in one go; ends when the connection goes.
    private func writeLoop(generation: Int) async {
        while let writer = await self.pipeline.nextWriter(generation: generation) {
            self.pipeline.drain(writer)
        }
    }

    /// Sends telemetry from the caller's task: the packet is queued without hopping onto the actor, and the
    /// connection's writer task writes it (with whatever else was queued by then).
    nonisolated func send(_ message: TelemetryMessage, qos: MQTTQoS, timeout: Duration? = nil) async throws {
        // The packet checks its topic once, when it is made; the same check is not run again here.
        // The prefix's bytes are made once; a message without properties shares them (no allocation).
        var topic = self.telemetryPrefixBytes
        if message.hasProperties { topic.append(contentsOf: message.propertyBag.encoded.utf8) }
        let packet = PublishPacket(topicBytes: topic, payload: message.body)
        let size = message.body.count + packet.topicBytes.count
        guard size <= TelemetryMessage.maximumSize else {
            throw HubMQTTError(.messageTooLarge, "the message is \(size) bytes; IoT Hub takes at most 256 KB")
        }
        do { try packet.validateTopic() } catch {
            throw HubMQTTError(.invalidArgument, "the telemetry topic is not a valid MQTT topic name: \(error.message)")
        }
        let now = self.clock.now()
        // The message's deadline is on the continuous clock; the session's timers may run on another.
        let expiry = message.deadline.map { now + ($0 - ContinuousClock.now) }
        if let expiry, expiry <= now {
            throw HubMQTTError(.expired, "the message expired before it was sent")
        }
        if qos == .atMostOnce {
            try self.pipeline.publishAtMostOnce(packet) { writer in self.pipeline.handOff(writer) }
        } else {
            let timeoutDeadline = now + (timeout ?? self.operationTimeout)
            if let expiry, expiry < timeoutDeadline {
                try await self.pipeline.publishAtLeastOnce(
                    packet,
                    deadline: expiry,
                    deadlineError: HubMQTTError(.expired, "the message expired before IoT Hub acknowledged it")
                ) { writer in self.pipeline.handOff(writer) }
            } else {
                try await self.pipeline.publishAtLeastOnce(packet, deadline: timeoutDeadline) { writer in
                    self.pipeline.handOff(writer)
                }
            }
        }
    }

    private func endSubackWait(_ id: UInt16, _ error: any Error) {
        guard let waiter = self.subackWaiters.removeValue(forKey: id) else { return }
        self.pipeline.releasePacketId(id)
        waiter.resume(throwing: error)
    }

    private func request(_ subscribe: SubscribePacket) async throws -> SubAckPacket {
        let id = subscribe.packetId
        self.enqueue(.subscribe(subscribe))
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await self.clock.sleep(for: timeout)
            self.endSubackWait(id, HubMQTTError(.timedOut, "no SUBACK within \(timeout)"))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<SubAckPacket, any Error>) in
                self.subackWaiters[id] = continuation
                if Task.isCancelled { self.endSubackWait(id, CancellationError()) }
            }
        } onCancel: {
            Task { await self.endSubackWait(id, CancellationError()) }
        }
    }

    // MARK: - Twin and methods

    func twin(timeout: Duration? = nil) async throws -> Twin {
        let (status, _, body) = try await self.twinRequest(timeout: timeout) {
            HubTopics.twinGet(rid: $0)
        } payload: {
            []
        }
        guard status == 200 || status == 202 else {
            throw HubMQTTError(.twinRequestFailed, "the twin GET failed", status: status)
        }
        return Twin(document: body)
    }

    func updateReportedProperties(_ json: [UInt8], timeout: Duration? = nil) async throws -> Int? {
        let (status, query, _) = try await self.twinRequest(timeout: timeout) {
            HubTopics.twinPatchReported(rid: $0)
        } payload: {
            json
        }
        guard status == 204 || status == 200 else {
            throw HubMQTTError(.twinRequestFailed, "the reported-properties PATCH failed", status: status)
        }
        return query["$version"].flatMap { Int($0) }
    }

    private func twinRequest(
        timeout: Duration?,
        topic: (UInt32) -> String,
        payload: () -> [UInt8]
    ) async throws -> (Int, PropertyBag, [UInt8]) {
        let deadline = self.clock.now() + (timeout ?? self.configuration.operationTimeout)
        while true {
            // While the client reconnects, a twin request waits for the connection rather than failing at once.
            try await self.awaitConnection(until: deadline)
            do {
                return try await self.sendTwinRequest(topic: topic, payload: payload, until: deadline)
            } catch let error as HubMQTTError
                where error.code == .notConnected && self.clock.now() < deadline && !self.ended
            {
                // The connection went while the request was out; a twin GET or a merge patch of reported
                // properties can be sent again once it is back.
                continue
            }
        }
    }

    private func sendTwinRequest(
        topic: (UInt32) -> String,
        payload: () -> [UInt8],
        until deadline: Duration
    ) async throws -> (Int, PropertyBag, [UInt8]) {
        self.nextRequestId &+= 1
        let rid = self.nextRequestId
        let key = String(rid)
        self.enqueue(.publish(PublishPacket(topic: topic(rid), payload: payload())))
        let timer = Task {
            try await self.clock.sleep(for: deadline - self.clock.now())
            self.twinWaiters.removeValue(forKey: key)?.resume(
                throwing: HubMQTTError(.timedOut, "no twin response within the time-out")
            )
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<(Int, PropertyBag, [UInt8]), any Error>) in
                self.twinWaiters[key] = continuation
                if Task.isCancelled { self.twinWaiters.removeValue(forKey: key)?.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            Task { await self.cancelTwinWait(key) }
        }
    }

    private func cancelTwinWait(_ key: String) {
        self.twinWaiters.removeValue(forKey: key)?.resume(throwing: CancellationError())
    }

    private func respond(rid: String, status: Int, payload: [UInt8]) throws {
        guard self.lifecycle.isConnected else {
            throw HubMQTTError(.notConnected, "the method response could not be sent: not connected")
        }
        self.enqueue(
            .publish(PublishPacket(topic: HubTopics.methodResponse(status: status, rid: rid), payload: payload))
        )
    }

    // MARK: - Introspection for tests and tools

    var inflightCount: Int { self.pipeline.inflightCount }
    nonisolated var waitingCount: Int { self.pipeline.waitingCount }
    var isConnected: Bool { self.lifecycle.isConnected }
}
