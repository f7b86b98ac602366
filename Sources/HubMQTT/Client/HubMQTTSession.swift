import AzureIoTCore
import Foundation
import Logging

/// The connection state machine behind ``HubMQTTClient``: one TLS connection at a time, request/response
/// correlation, keep-alive, token renewal and reconnects. Telemetry goes through the ``PublishPipeline`` (the QoS 1
/// window and the outbound queue) without hopping onto the actor; unacknowledged PUBLISHes survive reconnects and are
/// resent with DUP.
actor HubMQTTSession {
    private enum State { case idle, connecting, connected, reconnecting, shutDown }

    private let configuration: HubMQTTConfiguration
    /// The configuration's `operationTimeout`, read on every send without going through the whole configuration.
    private nonisolated let operationTimeout: Duration
    private let logger: Logger
    private let topics: HubTopics
    private let framer = MQTTFramer()

    private var state = State.idle
    private var connection: TLSConnection?
    private var generation = 0
    private var issuedToken: IssuedSASToken?

    private let pipeline: PublishPipeline
    private var subackWaiters: [UInt16: CheckedContinuation<SubAckPacket, any Error>] = [:]
    private var twinWaiters: [String: CheckedContinuation<(Int, PropertyBag, [UInt8]), any Error>] = [:]
    private var nextRequestId: UInt32 = 0
    private var lastDesiredVersion: Int?

    private var pingSentAt: ContinuousClock.Instant?

    private var readerTask: Task<Void, Never>?
    private var tickTask: Task<Void, Never>?
    private var reconnectTask: Task<Void, Never>?
    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    /// `connect()` calls and twin requests made while a connect or a reconnect is under way: they share its
    /// outcome (twin requests give up at their own deadline).
    private var connectWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    private var nextConnectWaiter: UInt64 = 0

    /// The retry state; the back-off only starts over after a stable connection.
    private var backoff: RetryPolicy.Backoff
    /// When the current connection was established (for telling a flap from a stable connection).
    private var connectedAt: ContinuousClock.Instant?
    /// Whether a reconnect loop is running: a loss while it is inside `establish()` must not start a second one.
    private var reconnectLoopRunning = false
    /// Why the session ended, when it ended on its own (the retry policy gave up).
    private(set) var terminalError: HubMQTTError?

    let cloudToDevice: AsyncStream<CloudToDeviceMessage>.Continuation
    let desired: AsyncStream<DesiredPropertyPatch>.Continuation
    let methods: AsyncStream<MethodRequest>.Continuation
    let events: AsyncStream<ConnectionEvent>.Continuation

    init(
        configuration: HubMQTTConfiguration,
        logger: Logger,
        cloudToDevice: AsyncStream<CloudToDeviceMessage>.Continuation,
        desired: AsyncStream<DesiredPropertyPatch>.Continuation,
        methods: AsyncStream<MethodRequest>.Continuation,
        events: AsyncStream<ConnectionEvent>.Continuation
    ) {
        self.configuration = configuration
        self.operationTimeout = configuration.operationTimeout
        self.logger = logger
        self.topics = HubTopics(deviceId: configuration.identity.deviceId, moduleId: configuration.identity.moduleId)
        self.pipeline = PublishPipeline(window: configuration.inflightWindow, writeTimeout: configuration.operationTimeout)
        self.backoff = RetryPolicy.Backoff(policy: configuration.retryPolicy)
        self.cloudToDevice = cloudToDevice
        self.desired = desired
        self.methods = methods
        self.events = events
    }

    // MARK: - Connecting

    func connect() async throws {
        switch self.state {
        case .connected: return
        case .shutDown: throw HubMQTTError(.shutDown, "the client was shut down")
        case .connecting, .reconnecting:
            // One connection attempt at a time: wait for the one under way.
            try await self.awaitConnection(until: nil)
            return
        case .idle: break
        }
        self.state = .connecting
        // A connection that was accepted and then lost while subscribing (another client took the identity over,
        // the hub restarted) is tried again under the retry policy, within the connect time-out; a refusal or a
        // network failure before CONNACK ends connect() at once, as before.
        var backoff = RetryPolicy.Backoff(policy: self.configuration.retryPolicy)
        let deadline = ContinuousClock.now + self.configuration.connectTimeout
        while true {
            do {
                try await self.establish()
                return
            } catch let error as HubMQTTError where (error.code == .notConnected || error.code == .timedOut) && self.state != .shutDown {
                self.state = .connecting
                let decision = backoff.attemptFailed(.transient, reason: "\(error)", randomUnit: Double.random(in: 0..<1))
                if case .retry(let wait) = decision, ContinuousClock.now + wait < deadline {
                    self.events.yield(ConnectionEvent(kind: .reconnectFailed, reason: "\(error); next attempt in \(wait)"))
                    do {
                        try await Task.sleep(for: wait)
                        continue
                    } catch {
                        self.failConnect(error)
                        throw error
                    }
                }
                self.failConnect(error)
                throw error
            } catch {
                self.failConnect(error)
                throw error
            }
        }
    }

    private func failConnect(_ error: any Error) {
        if self.state == .connecting { self.state = .idle }
        self.resumeConnectWaiters(throwing: error)
    }

    private func resumeConnectWaiters(throwing error: (any Error)? = nil) {
        let waiters = self.connectWaiters
        self.connectWaiters = [:]
        for waiter in waiters.values {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    /// Returns once connected: at once when connected, after the connect or reconnect under way succeeds, and
    /// throws when it fails for good, when the client is idle or shut down, or past `deadline`.
    private func awaitConnection(until deadline: ContinuousClock.Instant?) async throws {
        switch self.state {
        case .connected: return
        case .idle: throw HubMQTTError(.notConnected, "not connected: call connect() first")
        case .shutDown: throw self.terminalError ?? HubMQTTError(.shutDown, "the client was shut down")
        case .connecting, .reconnecting: break
        }
        let id = self.nextConnectWaiter
        self.nextConnectWaiter &+= 1
        let timer = deadline.map { deadline in
            Task { [weak self] in
                try? await Task.sleep(until: deadline)
                guard !Task.isCancelled else { return }
                await self?.expireConnectWaiter(id)
            }
        }
        defer { timer?.cancel() }
        try await withCheckedThrowingContinuation { self.connectWaiters[id] = $0 }
    }

    private func expireConnectWaiter(_ id: UInt64) {
        self.connectWaiters.removeValue(forKey: id)?.resume(throwing: HubMQTTError(.timedOut, "no connection within the operation's time-out"))
    }

    /// Opens TLS, sends CONNECT, waits for CONNACK, subscribes, and resends what is unacknowledged.
    private func establish() async throws {
        var tls = TLSConfiguration(trustRoots: self.configuration.trustRoots, connectTimeout: self.configuration.connectTimeout)
        var password: [UInt8]?
        switch self.configuration.authentication {
        case .sas(let source):
            let issued = try source.issueToken(for: self.configuration.identity.sasResource)
            self.issuedToken = issued
            password = Array(issued.token.secretValue.utf8)
        case .x509(let identity):
            tls.clientIdentity = identity
        }
        let connection = try await TLSConnection.connect(
            host: self.configuration.connectHost, port: self.configuration.port, configuration: tls, logger: self.logger
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
            try await connection.write(try MQTTPacket.connect(connect).encoded(), timeout: self.configuration.operationTimeout)
            let connack = try await self.readConnAck(connection, buffer: &leftover)
            guard connack.returnCode == .accepted else {
                throw HubMQTTError(.connectionRefused, "the broker refused CONNECT: \(connack.returnCode) (\(connack.returnCode.rawValue))",
                                   status: Int(connack.returnCode.rawValue))
            }
        } catch {
            connection.close()
            throw error
        }
        guard self.state != .shutDown else {
            connection.close()
            throw HubMQTTError(.shutDown, "the client was shut down while connecting")
        }
        self.generation += 1
        self.connection = connection
        self.state = .connected
        self.connectedAt = .now
        self.pingSentAt = nil
        let generation = self.generation
        self.readerTask = Task { await self.readLoop(connection, generation: generation, leftover: leftover) }
        self.tickTask = Task { await self.tickLoop(generation: generation) }
        self.logger.debug("connected", metadata: ["host": "\(self.configuration.connectHost)", "clientId": "\(self.configuration.identity.clientId)"])

        let subscribe = SubscribePacket(
            packetId: self.pipeline.reservePacketId(),
            subscriptions: self.topics.subscriptions.map { .init(topicFilter: $0, qos: .atLeastOnce) }
        )
        // Unacknowledged PUBLISHes go out again (with DUP) first.
        self.pipeline.attach(connection, generation: generation) { self.pipeline.drain($0) }
        let suback: SubAckPacket
        do {
            suback = try await self.request(subscribe)
        } catch {
            // Not left up unsubscribed: the connection goes, and the caller (connect or the reconnect loop) decides.
            self.tearDown(generation: generation, reason: "no SUBACK: \(error)")
            throw error
        }
        if suback.returnCodes.contains(.failure) {
            self.logger.warning("a subscription was refused", metadata: ["codes": "\(suback.returnCodes.map(\.rawValue))"])
        }
        self.events.yield(ConnectionEvent(kind: .connected, reason: "CONNACK accepted"))
        self.resumeConnectWaiters()
    }

    /// Drops the connection of `generation` (if it is still the current one) without starting a reconnect.
    private func tearDown(generation: Int, reason: String) {
        guard generation == self.generation, self.connection != nil else { return }
        self.dropConnection(generation: generation, reason: reason)
        if self.state == .connected { self.state = .idle }
    }

    /// Closes the current connection and what runs for it; unacknowledged PUBLISHes stay for the next one.
    private func dropConnection(generation: Int, reason: String) {
        self.pipeline.detach(generation: generation)
        self.connection?.close()
        self.connection = nil
        self.tickTask?.cancel()
        self.readerTask?.cancel()
        self.failAllWaiters(HubMQTTError(.notConnected, "the connection was lost: \(reason)"))
    }

    private func readConnAck(_ connection: TLSConnection, buffer: inout [UInt8]) async throws -> ConnAckPacket {
        let deadline = ContinuousClock.now + self.configuration.operationTimeout
        while true {
            let chunk = try await connection.read(timeout: max(.milliseconds(1), deadline - .now))
            guard !chunk.isEmpty else { throw HubMQTTError(.connectionRefused, "the broker closed the connection before CONNACK") }
            buffer += chunk
            if let frame = try self.framer.nextFrame(in: buffer[...]) {
                let packet = try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body])
                buffer.removeSubrange(0..<frame.end)
                guard case .connack(let connack) = packet else {
                    throw HubMQTTError(.protocolViolation, "the broker answered CONNECT with something other than CONNACK")
                }
                return connack
            }
        }
    }

    // MARK: - Shutting down

    func disconnect() async {
        await self.shutDown(HubMQTTError(.shutDown, "the client was shut down"),
                            event: ConnectionEvent(kind: .disconnected, reason: "shut down by the application"))
    }

    /// Ends the session: pending work fails with `error`, `event` is the last connection event.
    private func shutDown(_ error: HubMQTTError, event: ConnectionEvent) async {
        guard self.state != .shutDown else { return }
        let connection = self.connection
        self.state = .shutDown
        self.reconnectTask?.cancel()
        self.tickTask?.cancel()
        let unwritten = self.pipeline.shutDown(error)
        if let connection {
            try? await connection.write(unwritten + MQTTPacket.disconnect.encoded(), timeout: .seconds(2))
            connection.close()
        }
        self.connection = nil
        self.readerTask?.cancel()
        self.failAllWaiters(error)
        self.resumeConnectWaiters(throwing: error)
        self.events.yield(event)
        self.cloudToDevice.finish()
        self.desired.finish()
        self.methods.finish()
        self.events.finish()
        for waiter in self.shutdownWaiters { waiter.resume() }
        self.shutdownWaiters = []
    }

    func waitForShutdown() async {
        guard self.state != .shutDown else { return }
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

    // MARK: - Losing the connection and reconnecting

    private func connectionLost(generation: Int, reason: String) {
        guard generation == self.generation, self.state == .connected else { return }
        self.logger.info("connection lost", metadata: ["reason": "\(reason)"])
        let uptime = self.connectedAt.map { ContinuousClock.now - $0 } ?? .zero
        self.state = .reconnecting
        self.dropConnection(generation: generation, reason: reason)
        self.events.yield(ConnectionEvent(kind: .disconnected, reason: reason))
        // A connection that did not stay up long counts as a flap: the back-off goes on rather than starting over.
        let delay = self.backoff.connectionLost(after: uptime, randomUnit: Double.random(in: 0..<1))
        // A loop already inside establish() sees this loss as its attempt failing; a second loop would race it.
        guard !self.reconnectLoopRunning else { return }
        self.reconnectTask = Task { await self.reconnectLoop(firstDelay: delay) }
    }

    /// Waits, reconnects, and on failure waits what the retry policy says, until connected, shut down, or the
    /// policy gives up (then the session ends with ``HubMQTTError/Code/retriesExhausted``).
    private func reconnectLoop(firstDelay: Duration) async {
        self.reconnectLoopRunning = true
        var delay = firstDelay
        while self.state == .reconnecting && !Task.isCancelled {
            try? await Task.sleep(for: delay)
            guard self.state == .reconnecting, !Task.isCancelled else { break }
            do {
                try await self.establish()
                self.reconnectLoopRunning = false
                await self.reconcileTwin()
                return
            } catch {
                if self.state == .idle { self.state = .reconnecting }
                guard self.state == .reconnecting else { break }
                let decision = self.backoff.attemptFailed(Self.classify(error), reason: "\(error)", randomUnit: Double.random(in: 0..<1))
                switch decision {
                case .retry(let after):
                    self.events.yield(ConnectionEvent(kind: .reconnectFailed, reason: "\(error); next attempt in \(after)"))
                    self.logger.debug("reconnect failed", metadata: ["error": "\(error)", "wait": "\(after)"])
                    delay = after
                case .giveUp(let reason):
                    self.reconnectLoopRunning = false
                    self.logger.warning("giving up reconnecting", metadata: ["reason": "\(reason)"])
                    let error = HubMQTTError(.retriesExhausted, "gave up reconnecting: \(reason)")
                    self.terminalError = error
                    await self.shutDown(error,
                                        event: ConnectionEvent(kind: .gaveUp, reason: reason))
                    return
                }
            }
        }
        self.reconnectLoopRunning = false
    }

    /// Whether trying again can help: refused credentials (CONNACK other than 3, "server unavailable"), certificates
    /// that are not trusted or do not fit, and unusable credentials are permanent; the rest is transient.
    static func classify(_ error: any Error) -> RetryPolicy.Classification {
        if let error = error as? HubMQTTError {
            return error.code == .connectionRefused && error.status != 3 ? .permanent : .transient
        }
        if let error = error as? AzureIoTError { return RetryPolicy.classify(error) }
        return .transient
    }

    /// Re-reads the twin after a reconnect and reports the desired section if it changed while offline.
    private func reconcileTwin() async {
        guard let twin = try? await self.twin() else { return }
        if let version = twin.desiredVersion, version != self.lastDesiredVersion {
            self.lastDesiredVersion = version
            let desired = (try? JSONSerialization.jsonObject(with: Data(twin.json)) as? [String: Any])?["desired"]
            let json = desired.flatMap { try? JSONSerialization.data(withJSONObject: $0) }.map { Array($0) } ?? []
            self.desired.yield(DesiredPropertyPatch(version: version, json: json, isFullDocument: true))
        }
    }

    // MARK: - Reading

    /// Reads on the actor without waiting while bytes are there (so reads never contend with writes for the TLS
    /// session), gives queued work one turn before waiting, and then waits for readiness on the I/O reactor.
    private func readLoop(_ connection: TLSConnection, generation: Int, leftover: [UInt8]) async {
        var buffer = leftover
        var yielded = false
        do {
            while generation == self.generation {
                if !buffer.isEmpty {
                    let packets = try self.framer.decodePackets(from: &buffer)
                    for packet in packets { try self.handle(packet, generation: generation) }
                }
                switch try connection.readNow(maxBytes: 16 * 1024) {
                case .done(let chunk):
                    guard !chunk.isEmpty else {
                        self.connectionLost(generation: generation, reason: "the broker closed the connection")
                        return
                    }
                    buffer += chunk
                    yielded = false
                case .needsReadable where !yielded:
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

    private func handle(_ packet: MQTTPacket, generation: Int) throws {
        guard generation == self.generation else { return }
        self.pingSentAt = nil
        switch packet {
        case .puback(let id):
            self.pipeline.acknowledge(id)
        case .suback(let suback):
            guard let waiter = self.subackWaiters.removeValue(forKey: suback.packetId) else { return }
            self.pipeline.releasePacketId(suback.packetId)
            waiter.resume(returning: suback)
        case .publish(let publish):
            if let id = publish.packetId, publish.qos == .atLeastOnce { self.enqueue(.puback(packetId: id)) }
            try self.route(publish)
        case .pingresp, .unsuback:
            break
        default:
            throw HubMQTTError(.protocolViolation, "the broker sent an unexpected packet")
        }
    }

    private func route(_ publish: PublishPacket) throws {
        switch try self.topics.classify(publish.topic) {
        case .cloudToDevice(let bag):
            let properties = try PropertyBag(parsing: bag)
            self.cloudToDevice.yield(CloudToDeviceMessage(body: publish.payload, properties: properties))
        case .twinResponse(let status, let query):
            if let rid = query["$rid"] { self.twinWaiters.removeValue(forKey: rid)?.resume(returning: (status, query, publish.payload)) }
        case .desiredPatch(let query):
            let version = query["$version"].flatMap { Int($0) }
            if let version { self.lastDesiredVersion = version }
            self.desired.yield(DesiredPropertyPatch(version: version, json: publish.payload, isFullDocument: false))
        case .methodRequest(let name, let query):
            guard let rid = query["$rid"] else { throw HubMQTTError(.malformedTopic, "a method request has no $rid") }
            let request = MethodRequest(name: name, requestId: rid, payload: publish.payload) { [weak self] status, payload in
                guard let self else { throw HubMQTTError(.shutDown, "the client is gone") }
                try await self.respond(rid: rid, status: status, payload: payload)
            }
            self.methods.yield(request)
        case .other:
            self.logger.debug("message on an unexpected topic", metadata: ["topic": "\(publish.topic)"])
        }
    }

    // MARK: - Writing

    private func enqueue(_ packet: MQTTPacket) {
        do {
            try self.pipeline.enqueue(packet) { self.pipeline.drain($0) }
        } catch {
            self.logger.error("could not encode a packet", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Keep-alive and token renewal

    private func tickLoop(generation: Int) async {
        let keepAlive = self.configuration.keepAlive
        let tick = min(.seconds(1), keepAlive / 2)
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard generation == self.generation, self.state == .connected else { return }
            let now = ContinuousClock.now
            if let pingSentAt, now - pingSentAt > keepAlive {
                self.connectionLost(generation: generation, reason: "no answer to PINGREQ within the keep-alive")
                return
            }
            if self.pingSentAt == nil && now - self.pipeline.lastOutbound >= keepAlive {
                self.pingSentAt = now
                self.enqueue(.pingreq)
            }
            if let issued = self.issuedToken, issued.needsRenewal() {
                self.logger.info("renewing the SAS token by reconnecting")
                self.events.yield(ConnectionEvent(kind: .renewingToken, reason: "the SAS token reached its renewal time"))
                self.connectionLost(generation: generation, reason: "renewing the SAS token")
                return
            }
        }
    }

    // MARK: - Telemetry

    /// Sends telemetry from the caller's task: the packet is queued and written without hopping onto the actor.
    nonisolated func send(_ message: TelemetryMessage, qos: MQTTQoS, timeout: Duration? = nil) async throws {
        // The packet checks its topic once, when it is made; the same check is not run again here.
        let packet = PublishPacket(topic: self.topics.telemetryPrefix + message.propertyBag.encoded, payload: message.body)
        let size = message.body.count + packet.topicBytes.count
        guard size <= TelemetryMessage.maximumSize else {
            throw HubMQTTError(.messageTooLarge, "the message is \(size) bytes; IoT Hub takes at most 256 KB")
        }
        do { try packet.validateTopic() } catch {
            throw HubMQTTError(.invalidArgument, "the telemetry topic is not a valid MQTT topic name: \(error.message)")
        }
        if qos == .atMostOnce {
            try self.pipeline.publishAtMostOnce(packet) { writer in Task { await self.write(writer) } }
        } else {
            let deadline = ContinuousClock.now + (timeout ?? self.operationTimeout)
            try await self.pipeline.publishAtLeastOnce(packet, deadline: deadline) { writer in Task { await self.write(writer) } }
        }
    }

    /// Writes the pipeline's queue on the actor, where the reader reads.
    private func write(_ writer: PublishPipeline.Writer) {
        self.pipeline.drain(writer)
    }

    private func request(_ subscribe: SubscribePacket) async throws -> SubAckPacket {
        let id = subscribe.packetId
        self.enqueue(.subscribe(subscribe))
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            guard let waiter = self.subackWaiters.removeValue(forKey: id) else { return }
            self.pipeline.releasePacketId(id)
            waiter.resume(throwing: HubMQTTError(.timedOut, "no SUBACK within \(timeout)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { self.subackWaiters[id] = $0 }
    }

    // MARK: - Twin and methods

    func twin() async throws -> Twin {
        let (status, _, body) = try await self.twinRequest { HubTopics.twinGet(rid: $0) } payload: { [] }
        guard status == 200 || status == 202 else {
            throw HubMQTTError(.twinRequestFailed, "the twin GET failed", status: status)
        }
        let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        func version(_ section: String) -> Int? {
            (object?[section] as? [String: Any])?["$version"] as? Int
        }
        return Twin(json: body, desiredVersion: version("desired"), reportedVersion: version("reported"))
    }

    func updateReportedProperties(_ json: [UInt8]) async throws -> Int? {
        let (status, query, _) = try await self.twinRequest { HubTopics.twinPatchReported(rid: $0) } payload: { json }
        guard status == 204 || status == 200 else {
            throw HubMQTTError(.twinRequestFailed, "the reported-properties PATCH failed", status: status)
        }
        return query["$version"].flatMap { Int($0) }
    }

    private func twinRequest(
        topic: (UInt32) -> String,
        payload: () -> [UInt8]
    ) async throws -> (Int, PropertyBag, [UInt8]) {
        let deadline = ContinuousClock.now + self.configuration.operationTimeout
        while true {
            // While the client reconnects, a twin request waits for the connection rather than failing at once.
            try await self.awaitConnection(until: deadline)
            do {
                return try await self.sendTwinRequest(topic: topic, payload: payload, until: deadline)
            } catch let error as HubMQTTError where error.code == .notConnected && ContinuousClock.now < deadline && self.state != .shutDown {
                // The connection went while the request was out; a twin GET or a merge patch of reported
                // properties can be sent again once it is back.
                continue
            }
        }
    }

    private func sendTwinRequest(
        topic: (UInt32) -> String,
        payload: () -> [UInt8],
        until deadline: ContinuousClock.Instant
    ) async throws -> (Int, PropertyBag, [UInt8]) {
        self.nextRequestId &+= 1
        let rid = self.nextRequestId
        let key = String(rid)
        self.enqueue(.publish(PublishPacket(topic: topic(rid), payload: payload())))
        let timer = Task {
            try await Task.sleep(until: deadline)
            self.twinWaiters.removeValue(forKey: key)?.resume(throwing: HubMQTTError(.timedOut, "no twin response within the operation time-out"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { self.twinWaiters[key] = $0 }
    }

    private func respond(rid: String, status: Int, payload: [UInt8]) throws {
        guard self.state == .connected else { throw HubMQTTError(.notConnected, "the method response could not be sent: not connected") }
        self.enqueue(.publish(PublishPacket(topic: HubTopics.methodResponse(status: status, rid: rid), payload: payload)))
    }

    // MARK: - Introspection for tests and tools

    var inflightCount: Int { self.pipeline.inflightCount }
    var isConnected: Bool { self.state == .connected }
}
