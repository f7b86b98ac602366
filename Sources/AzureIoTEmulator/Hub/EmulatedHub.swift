import AzureIoTCore
import Foundation
import Logging

/// The state of the emulated IoT Hub and DPS: identities, twins, telemetry, cloud-to-device queues, method calls,
/// registrations and faults. Protocol front ends call into it; the public ``IoTEmulator`` API reads and drives it.
actor EmulatedHub {
    struct Identity {
        var key: SymmetricKey?
        /// The second key a device may authenticate with (set through the service API; key rotation).
        var secondaryKey: SymmetricKey?
        var thumbprint: String?
        var secondaryThumbprint: String?
        /// CAs that may sign this device's certificate (devices created through an X.509 enrollment group).
        var certificateAuthorities: [X509Certificate]
        var authentication: AuthenticationKind
        var twin: TwinRecord
        /// Fingerprints (keyed MACs, never the tokens) of the tokens this identity presented, and of those expired early
        /// by ``IoTEmulator/expireTokens(deviceId:moduleId:)``.
        var presentedTokens: Set<String> = []
        var revokedTokens: Set<String> = []
        /// Registry fields the service API shows and changes.
        var registry: RegistryFields
    }

    /// How an identity authenticates, with the registry's names (`authentication.type`).
    enum AuthenticationKind: String {
        case sas
        case selfSigned
        case certificateAuthority
        case none
    }

    /// What the identity registry keeps beside credentials and the twin.
    struct RegistryFields {
        var enabled = true
        var statusReason: String?
        /// Unique per creation: a device deleted and created again gets a new one.
        var generationId: String
        /// Bumped on every registry update; the device's ETag is derived from it.
        var revision = 1
        var iotEdge = false
        var managedBy: String?
        var tags: JSONValue = .object([:])
        /// The twin's overall version: bumped by every tag, desired or reported change.
        var twinVersion = 1
        var statusUpdatedTime = Date()
        var connectionStateUpdatedTime: Date?
        var lastActivityTime: Date?
    }

    let hubHost: String
    /// The shared access policies backends authenticate with.
    nonisolated let policies: ServicePolicies
    private let logger: Logger
    var identities: [IdentityName: Identity] = [:]
    /// What tests wait for instead of sleeping: accepted SAS tokens (CONNECT, SASL PLAIN, CBS put-token), connections
    /// made, and AMQP heartbeats received, per identity.
    private(set) var activity: [IdentityName: IdentityActivity] = [:]
    var links: [IdentityName: any DeviceLink] = [:]
    var telemetry: [ReceivedTelemetry] = []
    var cloudToDevice: [CloudToDeviceRecord] = []
    /// The CAs a device created with `certificateAuthority` authentication through the service API may chain to: those
    /// of the configuration's X.509 enrollment groups and devices, and the emulator's own (which issues DPS
    /// certificates), as a hub's verified CA certificates.
    var verifiedCertificateAuthorities: [X509Certificate] = []
    /// Durable state, when the emulator runs with a data directory.
    private(set) var store: EmulatorStore?
    /// Orders stored cloud-to-device messages.
    private var cloudToDevicePosition: Int64 = 0
    /// The most messages ``telemetry`` keeps (``EmulatorLimits/maximumRetainedTelemetry``).
    var maximumRetainedTelemetry = 100_000
    /// Telemetry by partition, for the Event Hub-compatible endpoint.
    private(set) var events: EventLog
    nonisolated let eventHubSettings: EmulatorConfiguration.EventHubSettings
    /// Feedback waiting for the service's feedback receiver.
    private var serviceQueues: [ServiceQueue: [JSONValue]] = [:]
    /// Pumps waiting for news (new events, new feedback), woken when it comes or after their time-out.
    private var waiters: [Signal: [CheckedContinuation<Void, Never>]] = [:]
    private var pendingMethods: [String: CheckedContinuation<MethodResponse?, Never>] = [:]
    /// Method requests the device's link refused (not subscribed), so their callers learn it was not a time-out.
    private var undeliveredMethods: Set<String> = []
    private var methodTimers: [String: Task<Void, Never>] = [:]
    var registrations: [ProvisioningRecord] = []
    /// The IoT Plug and Play model id each identity announced when it last connected.
    private(set) var modelIds: [IdentityName: String] = [:]
    var faults = FaultPlan()
    /// The Edge device the emulator plays edgeHub for, with its routes and module input queues.
    var edge: EdgeHubState?
    /// For the Edge routing extension, which cannot see `logger`.
    var edgeLogger: Logger { self.logger }
    /// A random key for token fingerprints, so that no token is kept.
    private let fingerprintKey: SymmetricKey
    private var nextId: UInt64 = 0
    /// Prefix of generation ids, random per start.
    let generationPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 10)

    init(
        hubHost: String,
        policies: ServicePolicies,
        eventHub: EmulatorConfiguration.EventHubSettings = .init(),
        logger: Logger
    ) throws(AzureIoTError) {
        self.hubHost = hubHost
        self.policies = policies
        self.eventHubSettings = eventHub
        self.events = EventLog(
            partitionCount: eventHub.partitionCount,
            retainedEventsPerPartition: eventHub.retainedEventsPerPartition,
            retention: TimeInterval(eventHub.retentionSeconds)
        )
        self.logger = logger
        self.fingerprintKey = try SymmetricKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })
    }

    /// Records the model id an identity announced (or that it announced none).
    func recordModelId(_ modelId: String?, for name: IdentityName) {
        self.modelIds[name] = modelId
    }

    func makeId() -> UInt64 {
        self.nextId += 1
        return self.nextId
    }

    // MARK: - Identities

    func addIdentity(
        _ name: IdentityName,
        key: SymmetricKey?,
        thumbprint: String?,
        certificateAuthorities: [X509Certificate] = [],
        desired: JSONValue?
    ) async {
        let existing = self.identities[name]
        let kind: AuthenticationKind =
            key != nil
            ? .sas : thumbprint != nil ? .selfSigned : certificateAuthorities.isEmpty ? .none : .certificateAuthority
        self.identities[name] = Identity(
            key: key,
            thumbprint: thumbprint?.uppercased(),
            certificateAuthorities: certificateAuthorities,
            authentication: kind,
            twin: existing?.twin
                ?? TwinRecord(
                    desired: desired ?? .object([:]),
                    desiredVersion: 1,
                    reported: .object([:]),
                    reportedVersion: 1
                ),
            registry: existing?.registry ?? RegistryFields(generationId: self.makeGenerationId())
        )
        await self.persist(name)
    }

    // MARK: - Durable state

    /// Writes the identity's current record (or its absence) to the store, if there is one.
    func persist(_ name: IdentityName) async {
        guard let store = self.store else { return }
        do throws(SQLiteError) {
            if let identity = self.identities[name] {
                try await store.saveIdentity(name, StoredRecords.identity(identity))
            } else {
                try await store.deleteIdentity(name)
            }
        } catch {
            self.logger.error("the emulator could not store an identity", metadata: ["error": "\(error)"])
        }
    }

    private func persistCloudToDevice(_ record: CloudToDeviceRecord) async {
        guard let store = self.store else { return }
        self.cloudToDevicePosition += 1
        do throws(SQLiteError) {
            try await store.saveCloudToDevice(record, position: self.cloudToDevicePosition)
        } catch {
            self.logger.error("the emulator could not store a cloud-to-device message", metadata: ["error": "\(error)"])
        }
    }

    private func forgetCloudToDevice(_ messageIds: [String]) async {
        guard let store = self.store, !messageIds.isEmpty else { return }
        do throws(SQLiteError) {
            try await store.deleteCloudToDevice(messageIds)
        } catch {
            self.logger.error(
                "the emulator could not update its cloud-to-device store",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// Takes the state a store holds and writes every later change to it.
    func restore(from store: EmulatorStore, _ snapshot: EmulatorStore.Snapshot) {
        self.store = store
        for (name, record) in snapshot.identities {
            if let identity = StoredRecords.identity(record) { self.identities[name] = identity }
        }
        for var record in snapshot.cloudToDevice {
            if record.state == .delivered { record.state = .queued }
            self.cloudToDevice.append(record)
        }
        self.cloudToDevicePosition = Int64(snapshot.cloudToDevice.count)
        for (partition, event) in snapshot.events {
            self.events.restore(event, partition: partition)
        }
        self.telemetry = Array(
            snapshot.events.map(\.event).sorted { $0.enqueuedTime < $1.enqueuedTime }.map(\.telemetry)
                .suffix(self.maximumRetainedTelemetry)
        )
        self.registrations = snapshot.registrations
    }

    /// Starts writing to `store` (a new data directory: nothing to restore).
    func useStore(_ store: EmulatorStore) async {
        self.store = store
        for name in self.identities.keys { await self.persist(name) }
    }

    func setMaximumRetainedTelemetry(_ count: Int) { self.maximumRetainedTelemetry = max(1, count) }

    func setVerifiedCertificateAuthorities(_ authorities: [X509Certificate]) {
        self.verifiedCertificateAuthorities = authorities
    }

    func makeGenerationId() -> String { "\(self.generationPrefix)\(self.makeId())" }

    func hasIdentity(_ name: IdentityName) -> Bool { self.identities[name] != nil }

    /// Why a hub connection was refused (never contains the token).
    enum AuthenticationFailure: Error, CustomStringConvertible {
        case unknownIdentity(String)
        case badToken(String)
        case injectedRefusal

        var description: String {
            switch self {
            case .unknownIdentity(let name): return "no identity '\(name)' in the hub"
            case .badToken(let reason): return reason
            case .injectedRefusal: return "refused by fault injection"
            }
        }
    }

    /// Checks a SAS token for `name`; returns its expiry.
    func authenticate(_ name: IdentityName, token: String) throws(AuthenticationFailure) -> UInt64 {
        try self.consumeRefusal()
        guard var identity = self.identities[name] else { throw .unknownIdentity(name.description) }
        try self.checkEnabled(name)
        guard let key = identity.key else { throw .badToken("'\(name)' authenticates with X.509, not SAS") }
        let resource =
            name.moduleId.map { SASResource.module(hubHost: self.hubHost, deviceId: name.deviceId, moduleId: $0) }
            ?? SASResource.device(hubHost: self.hubHost, deviceId: name.deviceId)
        do throws(AzureIoTError) {
            let parsed = try SASToken(parsing: token)
            do throws(AzureIoTError) {
                try parsed.validate(with: key, now: UnixTime.now(), expectedResource: resource)
            } catch {
                // Key rotation: a token signed with the secondary key is as good.
                guard error.code == .sasSignatureMismatch, let secondary = identity.secondaryKey else { throw error }
                try parsed.validate(with: secondary, now: UnixTime.now(), expectedResource: resource)
            }
            let fingerprint = self.fingerprintKey.signature(of: token)
            guard !identity.revokedTokens.contains(fingerprint) else {
                throw AzureIoTError(.sasTokenExpired, "the SAS token was expired by the emulator")
            }
            identity.presentedTokens.insert(fingerprint)
            identity.registry.lastActivityTime = Date()
            self.identities[name] = identity
            self.activity[name, default: IdentityActivity()].tokenAuthentications += 1
            return parsed.expiry
        } catch {
            throw .badToken(error.message)
        }
    }

    /// Checks a client certificate chain for `name` (thumbprint, or chain to the enrollment group's CA with CN = id).
    func authenticate(_ name: IdentityName, certificates: [X509Certificate]) throws(AuthenticationFailure) {
        try self.consumeRefusal()
        guard let identity = self.identities[name] else { throw .unknownIdentity(name.description) }
        try self.checkEnabled(name)
        guard let leaf = certificates.first else { throw .badToken("no client certificate was presented") }
        for thumbprint in [identity.thumbprint, identity.secondaryThumbprint].compactMap({ $0 })
        where thumbprint == leaf.sha1Thumbprint || thumbprint == leaf.sha256Thumbprint {
            return
        }
        if !identity.certificateAuthorities.isEmpty, leaf.commonName == name.deviceId {
            do throws(AzureIoTError) {
                try leaf.verify(
                    intermediates: Array(certificates.dropFirst()),
                    anchors: identity.certificateAuthorities
                )
                return
            } catch {
                throw .badToken(error.message)
            }
        }
        throw .badToken("the client certificate does not match '\(name)'")
    }

    /// A disabled device (or a module of one) may not connect.
    private func checkEnabled(_ name: IdentityName) throws(AuthenticationFailure) {
        let device = IdentityName(deviceId: name.deviceId)
        guard self.identities[device]?.registry.enabled != false, self.identities[name]?.registry.enabled != false
        else {
            throw .badToken("'\(name)' is disabled in the registry")
        }
    }

    private func consumeRefusal() throws(AuthenticationFailure) {
        if self.faults.refuseConnections > 0 {
            self.faults.refuseConnections -= 1
            throw .injectedRefusal
        }
    }

    func consumeProvisioningThrottle() -> Int? {
        guard self.faults.provisioningThrottles > 0 else { return nil }
        self.faults.provisioningThrottles -= 1
        return self.faults.provisioningThrottleRetryAfterSeconds
    }

    // MARK: - Links

    /// Makes `link` the identity's connection, closing the one it replaces (one connection per device).
    func attach(_ link: any DeviceLink, as name: IdentityName) async {
        let previous = self.links[name]
        self.links[name] = link
        self.activity[name, default: IdentityActivity()].connections += 1
        self.identities[name]?.registry.connectionStateUpdatedTime = Date()
        if let previous, previous.linkId != link.linkId {
            self.logger.info("a new connection replaces the old one", metadata: ["identity": "\(name)"])
            await previous.release(name, reason: "a new connection for '\(name)' replaced this one")
        }
    }

    func detach(_ link: any DeviceLink, as name: IdentityName) {
        if self.links[name]?.linkId == link.linkId {
            self.links[name] = nil
            self.identities[name]?.registry.connectionStateUpdatedTime = Date()
        }
        for index in self.cloudToDevice.indices
        where self.cloudToDevice[index].deviceId == name.deviceId && self.cloudToDevice[index].state == .delivered {
            self.cloudToDevice[index].state = .queued
        }
        if self.links[name] == nil { self.requeueModuleInputs(name) }
    }

    func isConnected(_ name: IdentityName) -> Bool { self.links[name] != nil }

    func recordHeartbeat(_ names: Set<IdentityName>, sent: Bool) {
        for name in names {
            if sent {
                self.activity[name, default: IdentityActivity()].heartbeatsSent += 1
            } else {
                self.activity[name, default: IdentityActivity()].heartbeatsReceived += 1
            }
        }
    }

    func drop(_ name: IdentityName, reason: String) async {
        if let link = self.links.removeValue(forKey: name) { await link.terminate(reason: reason) }
    }

    func expireTokens(_ name: IdentityName) async {
        if var identity = self.identities[name] {
            identity.revokedTokens.formUnion(identity.presentedTokens)
            identity.presentedTokens.removeAll()
            self.identities[name] = identity
        }
        await self.drop(name, reason: "the SAS token expired")
    }

    // MARK: - Telemetry

    func record(_ message: ReceivedTelemetry) async {
        if let edge = self.edge, message.deviceId == edge.deviceId {
            await self.routeEdgeMessage(message, edge: edge)
        } else {
            await self.recordUpstream(message)
        }
    }

    /// Telemetry that reached IoT Hub: kept for the emulator's API and the Event Hub-compatible endpoint.
    func recordUpstream(_ message: ReceivedTelemetry) async {
        self.telemetry.append(message)
        if self.telemetry.count > self.maximumRetainedTelemetry {
            // Drop a tenth at once, so that trimming stays rare.
            self.telemetry.removeFirst(max(1, self.maximumRetainedTelemetry / 10))
        }
        let partition = self.events.append(message)
        if let store = self.store, let event = self.events.partitions[partition].last {
            // Committed before the device's message is acknowledged.
            do throws(SQLiteError) {
                try await store.appendEvent(
                    event,
                    partition: partition,
                    retainedFrom: self.events.partitions[partition].first?.sequenceNumber ?? event.sequenceNumber
                )
            } catch {
                self.logger.error("the emulator could not store telemetry", metadata: ["error": "\(error)"])
            }
        }
        self.wake(.events)
        self.identities[IdentityName(deviceId: message.deviceId, moduleId: message.moduleId)]?.registry
            .lastActivityTime = Date()
        self.logger.debug(
            "telemetry",
            metadata: [
                "device": "\(message.deviceId)", "bytes": "\(message.body.count)", "transport": "\(message.transport)",
            ]
        )
    }

    // MARK: - Cloud to device

    /// Queues a message for `deviceId` (filling in its id and enqueue time) and offers it; returns its id. Throws
    /// when the device is unknown or its queue is full.
    func enqueueCloudToDevice(_ message: CloudToDeviceRecord) async throws(CloudToDeviceRefusal) -> String {
        guard self.identities[IdentityName(deviceId: message.deviceId)] != nil else { throw .unknownDevice }
        let pending = self.cloudToDevice.count {
            $0.deviceId == message.deviceId && ($0.state == .queued || $0.state == .delivered)
        }
        guard pending < Self.maximumCloudToDeviceQueueDepth else { throw .queueFull }
        var record = message
        if record.messageId.isEmpty { record.messageId = "c2d-\(self.makeId())" }
        record.state = .queued
        record.deliveryCount = 0
        record.enqueuedAt = Date()
        if record.expiresAt == nil { record.expiresAt = record.enqueuedAt + Self.cloudToDeviceTimeToLive }
        self.cloudToDevice.append(record)
        await self.persistCloudToDevice(record)
        await self.pumpCloudToDevice(deviceId: record.deviceId)
        return record.messageId
    }

    /// Why the hub refused to queue a cloud-to-device message.
    enum CloudToDeviceRefusal: Error {
        case unknownDevice
        /// IoT Hub's 50 messages per device (DeviceMaximumQueueDepthExceeded).
        case queueFull
    }

    /// IoT Hub's limits: 50 messages queued per device, 10 deliveries, and a default time to live of one hour.
    static let maximumCloudToDeviceQueueDepth = 50
    static let maximumCloudToDeviceDeliveries = 10
    static let cloudToDeviceTimeToLive: TimeInterval = 3_600

    /// Offers queued messages for `deviceId` to its link, in order, until the link cannot take more. Expired ones are
    /// retired first.
    func pumpCloudToDevice(deviceId: String) async {
        await self.expireCloudToDevice()
        guard let link = self.links[IdentityName(deviceId: deviceId)] else { return }
        for index in self.cloudToDevice.indices
        where self.cloudToDevice[index].deviceId == deviceId && self.cloudToDevice[index].state == .queued {
            var record = self.cloudToDevice[index]
            record.deliveryCount += 1
            guard await link.offer(record) else { return }
            if let current = self.cloudToDevice.firstIndex(where: { $0.messageId == record.messageId }),
                self.cloudToDevice[current].state == .queued
            {
                self.cloudToDevice[current].state = .delivered
                self.cloudToDevice[current].deliveryCount = record.deliveryCount
            }
        }
    }

    func settleCloudToDevice(messageId: String, as state: CloudToDeviceState) async {
        guard let index = self.cloudToDevice.firstIndex(where: { $0.messageId == messageId }),
            self.cloudToDevice[index].state == .delivered || self.cloudToDevice[index].state == .queued
        else { return }
        let record = self.cloudToDevice[index]
        switch state {
        case .abandoned where record.deliveryCount >= Self.maximumCloudToDeviceDeliveries:
            self.retire(index, as: .deadLettered, feedback: .deliveryCountExceeded)
        case .abandoned:
            self.cloudToDevice[index].state = .queued
            await self.pumpCloudToDevice(deviceId: record.deviceId)
            return
        case .completed: self.retire(index, as: .completed, feedback: .success)
        case .rejected: self.retire(index, as: .rejected, feedback: .rejected)
        default:
            self.cloudToDevice[index].state = state
            return
        }
        await self.forgetCloudToDevice([messageId])
    }

    /// Retires queued and unsettled messages past their expiry (with feedback where asked for).
    func expireCloudToDevice(now: Date = Date()) async {
        var expired: [String] = []
        for index in self.cloudToDevice.indices
        where (self.cloudToDevice[index].state == .queued || self.cloudToDevice[index].state == .delivered)
            && (self.cloudToDevice[index].expiresAt.map { $0 <= now } ?? false)
        {
            self.retire(index, as: .expired, feedback: .expired)
            expired.append(self.cloudToDevice[index].messageId)
        }
        await self.forgetCloudToDevice(expired)
    }

    private func retire(_ index: Int, as state: CloudToDeviceState, feedback status: CloudToDeviceFeedback.Status) {
        self.cloudToDevice[index].state = state
        let record = self.cloudToDevice[index]
        let wanted: Bool
        switch record.acknowledgement?.lowercased() {
        case "full": wanted = true
        case "positive": wanted = status == .success
        case "negative": wanted = status != .success
        default: wanted = false
        }
        guard wanted else { return }
        let feedback = CloudToDeviceFeedback(
            originalMessageId: record.messageId,
            deviceId: record.deviceId,
            deviceGenerationId: self.identities[IdentityName(deviceId: record.deviceId)]?.registry.generationId ?? "",
            status: status,
            enqueuedTime: Date()
        )
        self.enqueue(feedback.json, on: .feedback)
    }

    /// Events of `partition` from sequence number `first` on, at most `limit`.
    func partitionEvents(_ partition: Int, from first: Int64, limit: Int) -> [PartitionEvent] {
        guard (0..<self.events.partitionCount).contains(partition) else { return [] }
        return self.events.events(in: partition, from: first, limit: limit)
    }

    /// What the service reads from the hub without asking: feedback on cloud-to-device messages, and file upload
    /// notifications.
    enum ServiceQueue: Hashable, Sendable {
        case feedback
        case fileNotifications

        /// The content type of its messages.
        var contentType: String {
            switch self {
            case .feedback: "application/vnd.microsoft.iothub.feedback.json"
            case .fileNotifications: "application/vnd.microsoft.iothub.filenotification.json"
            }
        }

        /// Records per message: feedback comes as a JSON array of up to 100; a file notification alone.
        var recordsPerMessage: Int { self == .feedback ? 100 : 1 }
    }

    /// Records kept per service queue; the oldest go first past this.
    static let maximumQueuedServiceRecords = 10_000

    func enqueue(_ record: JSONValue, on queue: ServiceQueue) {
        self.serviceQueues[queue, default: []].append(record)
        if self.serviceQueues[queue, default: []].count > Self.maximumQueuedServiceRecords {
            self.serviceQueues[queue]?.removeFirst()
        }
        self.wake(.queue(queue))
    }

    /// Takes up to `limit` records of `queue`, oldest first.
    func take(from queue: ServiceQueue, limit: Int) -> [JSONValue] {
        let batch = Array(self.serviceQueues[queue, default: []].prefix(limit))
        self.serviceQueues[queue]?.removeFirst(batch.count)
        return batch
    }

    /// Puts records back at the front (a message the service released or did not settle).
    func giveBack(_ records: [JSONValue], to queue: ServiceQueue) {
        self.serviceQueues[queue, default: []].insert(contentsOf: records, at: 0)
    }

    /// What a pump can wait for.
    enum Signal: Hashable {
        /// A new event in some partition.
        case events
        /// New records in a service queue.
        case queue(ServiceQueue)
    }

    /// Waits until `signal` is raised (or `timeout` passes); records already waiting return at once.
    func wait(for signal: Signal, timeout: Duration) async {
        if case .queue(let queue) = signal, !(self.serviceQueues[queue]?.isEmpty ?? true) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.waiters[signal, default: []].append(continuation)
            Task {
                try? await Task.sleep(for: timeout)
                self.wake(signal)
            }
        }
    }

    private func wake(_ signal: Signal) {
        for waiter in self.waiters.removeValue(forKey: signal) ?? [] { waiter.resume() }
    }

    func cloudToDeviceRecords() -> [CloudToDeviceRecord] { self.cloudToDevice }

    // MARK: - Twins

    func twin(_ name: IdentityName) -> TwinRecord? { self.identities[name]?.twin }

    /// Applies a reported patch; returns the new reported version.
    func patchReported(_ name: IdentityName, _ patch: JSONValue) async -> Int? {
        guard var identity = self.identities[name] else { return nil }
        identity.twin.reported = identity.twin.reported.merging(patch)
        identity.twin.reportedVersion += 1
        identity.registry.twinVersion += 1
        self.identities[name] = identity
        await self.persist(name)
        return identity.twin.reportedVersion
    }

    /// Applies a desired patch and pushes it (or `announce`, when the device should see another patch than the one
    /// applied) to the connected device; returns the new desired version.
    func patchDesired(_ name: IdentityName, _ patch: JSONValue, announce: JSONValue? = nil) async -> Int? {
        guard var identity = self.identities[name] else { return nil }
        identity.twin.desired = identity.twin.desired.merging(patch)
        identity.twin.desiredVersion += 1
        identity.registry.twinVersion += 1
        self.identities[name] = identity
        await self.persist(name)
        if let link = self.links[name] {
            await link.pushDesired(announce ?? patch, version: identity.twin.desiredVersion, to: name)
        }
        return identity.twin.desiredVersion
    }

    // MARK: - Methods

    enum MethodFailure: Error {
        case notConnected
        case notSubscribed
        case timedOut
    }

    func invokeMethod(_ name: IdentityName, method: String, payload: [UInt8], timeout: Duration)
        async throws(MethodFailure) -> MethodResponse
    {
        guard let link = self.links[name] else { throw .notConnected }
        let requestId = String(self.makeId(), radix: 16)
        let response: MethodResponse? = await withCheckedContinuation { continuation in
            self.pendingMethods[requestId] = continuation
            self.methodTimers[requestId] = Task {
                if await link.requestMethod(name: method, payload: payload, requestId: requestId, to: name) == false {
                    self.undeliveredMethods.insert(requestId)
                    self.completeMethod(requestId: requestId, response: nil)
                    return
                }
                try? await Task.sleep(for: timeout)
                self.completeMethod(requestId: requestId, response: nil)
            }
        }
        guard let response else {
            // A device that is connected but not subscribed to methods never saw the request: not a time-out.
            if self.undeliveredMethods.remove(requestId) != nil { throw .notSubscribed }
            throw self.isConnected(name) ? .timedOut : .notConnected
        }
        return response
    }

    func completeMethod(requestId: String, response: MethodResponse?) {
        self.methodTimers.removeValue(forKey: requestId)?.cancel()
        self.pendingMethods.removeValue(forKey: requestId)?.resume(returning: response)
    }

    // MARK: - Provisioning

    func recordRegistration(_ record: ProvisioningRecord) async {
        self.registrations.removeAll { $0.registrationId == record.registrationId }
        self.registrations.append(record)
        if let store = self.store {
            do throws(SQLiteError) {
                try await store.saveRegistration(record)
            } catch {
                self.logger.error("the emulator could not store a registration", metadata: ["error": "\(error)"])
            }
        }
    }
}

extension EmulatedHub {
    func updateFaults(_ change: @Sendable (inout FaultPlan) -> Void) { change(&self.faults) }
}
