import AzureIoTCore
import Foundation
import HubAMQP
import Logging

/// One AMQP 1.0 connection to the emulated hub: SASL (PLAIN with `{device}@sas.{hub}`, ANONYMOUS/MSSBCBS or EXTERNAL), one
/// session, telemetry receiver links with dispositions, cloud-to-device sender links that track
/// complete/reject/abandon, and CBS put-token so one connection can carry several identities.
actor AMQPDeviceConnection: DeviceLink {
    private enum LinkKind {
        case events(IdentityName)
        case deviceBound(IdentityName)
        case cbsRequests
        case cbsResponses
        /// The device sends twin requests; we answer (and push desired patches) on its `twinResponses` link.
        case twinRequests(IdentityName)
        case twinResponses(IdentityName)
        /// We send method calls; the device answers on its `methodResponses` link.
        case methodRequests(IdentityName)
        case methodResponses(IdentityName)
        /// The service sends cloud-to-device messages (`to` names the device).
        case serviceCloudToDevice
        /// We send a service queue's records (feedback, file notifications) to the service.
        case serviceQueue(EmulatedHub.ServiceQueue)
        /// Event Hubs `$management`: requests in, answers out.
        case managementRequests
        case managementResponses
        /// We send a partition's events to a backend.
        case partition(Int)

        /// Whether the device sends on the link and we receive (we grant its credit).
        var weReceive: Bool {
            switch self {
            case .events, .cbsRequests, .twinRequests, .methodResponses, .serviceCloudToDevice, .managementRequests:
                true
            case .deviceBound, .cbsResponses, .twinResponses, .methodRequests, .serviceQueue, .managementResponses,
                .partition:
                false
            }
        }

        /// The identity whose traffic the link carries (none for `$cbs`).
        var identity: IdentityName? {
            switch self {
            case .events(let name), .deviceBound(let name), .twinRequests(let name), .twinResponses(let name),
                .methodRequests(let name), .methodResponses(let name):
                name
            case .cbsRequests, .cbsResponses, .serviceCloudToDevice, .serviceQueue, .managementRequests,
                .managementResponses, .partition:
                nil
            }
        }
    }

    private struct Link {
        var kind: LinkKind
        var ourHandle: UInt32
        var remoteHandle: UInt32
        /// For links where we receive: the sender's delivery count and credit we granted.
        var deliveryCount: UInt32 = 0
        var credit: UInt32 = 0
        /// A transfer split over frames, until its last frame.
        var partial: [UInt8] = []
        var partialDeliveryId: UInt32?
        var partialSettled = false
        /// Encoded messages waiting for the client's credit (twin answers, desired patches, method calls).
        var queue: [[UInt8]] = []
        /// A partition reader's next sequence number.
        var nextSequenceNumber: Int64 = 0
    }

    nonisolated let linkId: UInt64
    private let connection: TLSConnection
    private let hub: EmulatedHub
    private let logger: Logger
    private let outbound: TLSWriteQueue
    private var framer = AMQPFramer(maximumFrameSize: 512)
    private var buffer: [UInt8] = []
    private var authorized: Set<IdentityName> = []
    private var authorizedUntil: [IdentityName: UInt64] = [:]
    private var attachedIdentities: Set<IdentityName> = []
    private var links: [UInt32: Link] = [:]
    private var nextOurHandle: UInt32 = 0
    private var sessionChannel: UInt16?
    private var nextIncomingId: UInt32 = 0
    private var nextOutgoingId: UInt32 = 1
    private var nextDeliveryId: UInt32 = 0
    private var cloudToDeviceUnsettled: [UInt32: String] = [:]
    /// Rights a backend proved on this connection (CBS put-token with a hub audience, or SASL PLAIN
    /// `{policy}@sas.root.{hub}`).
    private var serviceRights: SharedAccessPolicy.Rights = []
    /// Service queue messages sent and not yet settled by the service, by delivery id.
    private var queueUnsettled: [UInt32: (queue: EmulatedHub.ServiceQueue, records: [JSONValue])] = [:]
    private var queuePumps: [EmulatedHub.ServiceQueue: Task<Void, Never>] = [:]
    private var partitionPump: Task<Void, Never>?
    private var cbsResponses: [AMQPMessage] = []
    private var peerMaxFrameSize = 512
    private var heartbeat: Task<Void, Never>?
    private var closed = false

    static let maximumFrameSize: UInt32 = 256 * 1024 + 4096
    static let telemetryCredit: UInt32 = 100
    static let window: UInt32 = 5000

    private let limits: EmulatorLimits
    /// CBS answers waiting for the client's credit; a client that sends put-tokens and grants none is cut off here.
    static let maximumQueuedCBSResponses = 16
    /// Twin answers, desired patches and method calls waiting for credit on one link, before the client is cut off.
    static let maximumQueuedPerLink = 64
    /// Identities subscribed to desired-property patches on this connection (PUT on the twin link).
    private var desiredSubscribers: Set<IdentityName> = []

    init(
        connection: TLSConnection,
        hub: EmulatedHub,
        linkId: UInt64,
        limits: EmulatorLimits = EmulatorLimits(),
        logger: Logger
    ) {
        self.connection = connection
        self.hub = hub
        self.linkId = linkId
        self.limits = limits
        self.logger = logger
        self.outbound = TLSWriteQueue(connection: connection, maximumPendingBytes: limits.maximumPendingWriteBytes)
    }

    func run() async {
        do {
            var header = try await self.readHeader()
            if header == .sasl {
                self.outbound.send(AMQPProtocolHeader.sasl.bytes)
                guard try await self.negotiateSASL() else { return await self.close(because: "SASL failed") }
                header = try await self.readHeader()
                guard header == .amqp else { return await self.close(because: "a second SASL header") }
            } else if let leaf = self.connection.peerCertificateChain.first, let cn = leaf.commonName {
                let name = IdentityName(deviceId: cn)
                if (try? await self.hub.authenticate(name, certificates: self.connection.peerCertificateChain)) != nil {
                    self.authorized.insert(name)
                }
            }
            self.outbound.send(AMQPProtocolHeader.amqp.bytes)
            var answers = AnswerBatch()
            while !self.closed {
                let frame = try await self.readFrame(timeout: .seconds(240))
                guard !frame.isHeartbeat else {
                    if !self.authorized.isEmpty { await self.hub.recordHeartbeat(self.authorized, sent: false) }
                    continue
                }
                let performative = try AMQPPerformative.decode(frame.body)
                // A transfer with more frames already sent (a client's batch of telemetry): the dispositions go out
                // together, the last one's included, once the last one that has arrived is handled (8 at most).
                var batched = false
                if case .transfer = performative {
                    batched = answers.holdAnswer(moreArrived: self.anotherFrameArrived())
                    self.outbound.hold(true)
                } else {
                    answers.released()
                    self.outbound.hold(false)
                }
                try await self.handle(performative, channel: frame.channel)
                if !batched { self.outbound.hold(false) }
            }
        } catch {
            await self.close(because: "\(error)")
        }
    }

    // MARK: - Reading

    private func fill(timeout: Duration) async throws {
        let bytes = try await self.connection.read(maxBytes: 64 * 1024, timeout: timeout)
        guard !bytes.isEmpty else { throw AzureIoTError(.connectionClosed, "the client closed the connection") }
        self.buffer += bytes
    }

    private func readHeader() async throws -> AMQPProtocolHeader {
        while true {
            if let header = try AMQPProtocolHeader.parse(self.buffer[...]) {
                self.buffer.removeFirst(8)
                return header
            }
            try await self.fill(timeout: .seconds(30))
        }
    }

    /// Whether another whole frame is already buffered (the size in its header fits what was read).
    /// Whether a whole frame follows, in the buffer or already arrived on the socket (taken without waiting): a
    /// client's transfers written one record at a time still get their dispositions in one record.
    private func anotherFrameArrived() -> Bool {
        if self.anotherFrameBuffered { return true }
        // A failure or a close is left for the next read to report.
        guard case .done(let bytes) = try? self.connection.readNow(maxBytes: 64 * 1024), !bytes.isEmpty else {
            return false
        }
        self.buffer += bytes
        return self.anotherFrameBuffered
    }

    private var anotherFrameBuffered: Bool {
        guard self.buffer.count >= 8 else { return false }
        let size = self.buffer.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        return size >= 8 && size <= self.buffer.count
    }

    private func readFrame(timeout: Duration) async throws -> AMQPFrame {
        while true {
            if let (frame, size) = try self.framer.nextFrame(in: self.buffer[...]) {
                self.buffer.removeFirst(size)
                return frame
            }
            try await self.fill(timeout: timeout)
        }
    }

    private func send(_ performative: AMQPPerformative, channel: UInt16 = 0, type: AMQPFrame.FrameType = .amqp) {
        // Every field written: Azure's Python Event Hubs client reads fields without checking the list's length.
        guard let body = try? performative.encodedWithAllFields() else { return }
        self.outbound.send(AMQPFrame(type: type, channel: channel, body: body).encoded)
    }

    // MARK: - SASL

    private func negotiateSASL() async throws -> Bool {
        self.send(
            .saslMechanisms(SASLMechanisms(mechanisms: ["PLAIN", "MSSBCBS", "ANONYMOUS", "EXTERNAL"])),
            type: .sasl
        )
        guard
            case .saslInit(let initial) = try AMQPPerformative.decode(
                try await self.readFrame(timeout: .seconds(30)).body
            )
        else {
            return false
        }
        var outcome = SASLOutcome.Code.auth
        do {
            switch initial.mechanism {
            case "PLAIN":
                let fields = (initial.initialResponse ?? []).split(separator: 0, omittingEmptySubsequences: false)
                guard fields.count == 3 else {
                    throw EmulatedHub.AuthenticationFailure.badToken("a malformed PLAIN response")
                }
                let user = String(decoding: fields[1], as: UTF8.self)
                if let root = user.range(of: "@sas.root.") {
                    // A backend: `{policy}@sas.root.{hub}` with a service token (Azure's C service client).
                    let token = String(decoding: fields[2], as: UTF8.self)
                    let sr = (try? SASToken(parsing: token))?.resource.uri ?? ""
                    switch self.hub.policies.authorize(
                        token: token,
                        hosts: [sr],
                        keyName: String(user[..<root.lowerBound])
                    ) {
                    case .success(let rights): self.serviceRights.formUnion(rights)
                    case .failure(let refusal): throw EmulatedHub.AuthenticationFailure.badToken(refusal.reason)
                    }
                    break
                }
                guard let name = await self.identity(fromPlainUser: user) else {
                    throw EmulatedHub.AuthenticationFailure.badToken("'\(user)' is not {device}@sas.{hub}")
                }
                let expiry = try await self.hub.authenticate(name, token: String(decoding: fields[2], as: UTF8.self))
                self.authorize(name, until: expiry)
            case "ANONYMOUS", "MSSBCBS":
                // Identities arrive later through CBS put-token (MSSBCBS is what uAMQP-based SDKs ask for).
                break
            case "EXTERNAL":
                let chain = self.connection.peerCertificateChain
                guard let cn = chain.first?.commonName else {
                    throw EmulatedHub.AuthenticationFailure.badToken("no client certificate")
                }
                try await self.hub.authenticate(IdentityName(deviceId: cn), certificates: chain)
                self.authorized.insert(IdentityName(deviceId: cn))
            default:
                throw EmulatedHub.AuthenticationFailure.badToken("unsupported mechanism \(initial.mechanism)")
            }
            outcome = .ok
        } catch EmulatedHub.AuthenticationFailure.injectedRefusal {
            outcome = .sysTemporary
        } catch {
            self.logger.info("SASL refused", metadata: ["reason": "\(error)"])
        }
        self.send(.saslOutcome(SASLOutcome(code: outcome)), type: .sasl)
        return outcome == .ok
    }

    /// Records a token-based authorization and closes the connection when the token expires without a newer one,
    /// as IoT Hub does.
    private func authorize(_ name: IdentityName, until expiry: UInt64) {
        self.authorized.insert(name)
        self.authorizedUntil[name] = max(self.authorizedUntil[name] ?? 0, expiry)
        let now = UnixTime.now()
        let delay = expiry > now ? expiry - now : 0
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(Int64(min(delay, 365 * 86_400))))
            await self?.expireIfDue(name)
        }
    }

    private func expireIfDue(_ name: IdentityName) async {
        guard let until = self.authorizedUntil[name], until <= UnixTime.now(), !self.closed else { return }
        self.authorized.remove(name)
        self.send(
            .close(
                AMQPEndOrClose(
                    error: AMQPError(
                        condition: "amqp:unauthorized-access",
                        description: "the SAS token for '\(name)' expired"
                    )
                )
            )
        )
        await self.close(because: "the SAS token for '\(name)' expired")
    }

    private func identity(fromPlainUser user: String) async -> IdentityName? {
        guard let at = user.range(of: "@sas.") else { return nil }
        let shortName = self.hub.hubHost.split(separator: ".").first.map(String.init) ?? ""
        guard user[at.upperBound...].lowercased() == shortName.lowercased() else { return nil }
        let parts = user[..<at.lowerBound].split(separator: "/").map(String.init)
        switch parts.count {
        case 1: return IdentityName(deviceId: parts[0])
        case 3 where parts[1] == "modules": return IdentityName(deviceId: parts[0], moduleId: parts[2])
        case 2: return IdentityName(deviceId: parts[0], moduleId: parts[1])
        default: return nil
        }
    }

    // MARK: - Performatives

    private func handle(_ performative: AMQPPerformative, channel: UInt16) async throws {
        switch performative {
        case .open(let open):
            self.peerMaxFrameSize = Int(min(open.maxFrameSize ?? UInt32.max, Self.maximumFrameSize))
            self.framer = AMQPFramer(maximumFrameSize: Int(Self.maximumFrameSize))
            self.send(
                .open(
                    AMQPOpen(
                        containerId: "azure-iot-emulator",
                        hostname: nil,
                        maxFrameSize: Self.maximumFrameSize,
                        channelMax: 0,
                        // The read time-out below, announced. Azure's Python Event Hubs client (pyamqp) reads every
                        // field of open up to properties without checking that the list is that long, so the last
                        // one is always sent.
                        idleTimeOut: 240_000,
                        properties: [AMQPMapEntry(.symbol("product"), .string("azure-iot-emulator"))]
                    )
                )
            )
            if let idle = open.idleTimeOut, idle > 0 {
                // Half the peer's idle time-out, but never more often than the floor: a peer asking for 1 ms gets
                // keep-alives at the floor's pace, not a busy loop.
                self.startHeartbeat(every: .milliseconds(max(Int(idle / 2), self.limits.minimumHeartbeatMilliseconds)))
            }
        case .begin(let begin):
            guard self.sessionChannel == nil else {
                self.send(
                    .end(
                        AMQPEndOrClose(
                            error: AMQPError(
                                condition: "amqp:not-implemented",
                                description: "one session per connection"
                            )
                        )
                    ),
                    channel: channel
                )
                return
            }
            self.sessionChannel = channel
            self.nextIncomingId = begin.nextOutgoingId
            self.send(
                .begin(
                    AMQPBegin(
                        remoteChannel: channel,
                        nextOutgoingId: self.nextOutgoingId,
                        incomingWindow: Self.window,
                        outgoingWindow: Self.window,
                        // The link limit, announced (pyamqp compares against it without a default).
                        handleMax: UInt32(clamping: max(0, self.limits.maximumLinksPerConnection - 1))
                    )
                ),
                channel: channel
            )
        case .attach(let attach):
            await self.attach(attach, channel: channel)
        case .flow(let flow):
            // On a link where we receive, the credit is ours to grant: the sender's flow only repeats what it last
            // heard (uamqp echoes its own view after every grant), so it changes nothing here [AMQP 2.6.7].
            if let handle = flow.handle, var link = self.links[handle], !link.kind.weReceive,
                let credit = flow.linkCredit
            {
                let senderCount = link.deliveryCount
                link.credit = (flow.deliveryCount ?? senderCount) &+ credit &- senderCount
                self.links[handle] = link
                self.pumpCBSResponses()
                self.pumpQueue(handle)
                if case .deviceBound(let name) = link.kind {
                    Task { await self.hub.pumpCloudToDevice(deviceId: name.deviceId) }
                }
                if case .serviceQueue(let queue) = link.kind { self.startQueuePump(queue) }
                if case .partition = link.kind { self.startPartitionPump() }
            }
        case .transfer(let transfer, let payload):
            self.nextIncomingId &+= 1
            await self.receive(transfer, payload: payload, channel: channel)
        case .disposition(let disposition):
            guard disposition.isReceiver else { return }
            let first = disposition.first
            let last = disposition.last ?? first
            guard first <= last else {
                return await self.fail(
                    "amqp:invalid-field",
                    "a disposition whose first (\(first)) is past its last (\(last))"
                )
            }
            // Only deliveries that are out count, however wide the range a peer names.
            for id in self.cloudToDeviceUnsettled.keys.sorted() where id >= first && id <= last {
                guard let messageId = self.cloudToDeviceUnsettled.removeValue(forKey: id) else { continue }
                let state: CloudToDeviceState
                switch disposition.state {
                case .accepted?: state = .completed
                case .rejected?: state = .rejected
                default: state = .abandoned
                }
                await self.hub.settleCloudToDevice(messageId: messageId, as: state)
            }
            for id in self.queueUnsettled.keys.sorted() where id >= first && id <= last {
                guard let sent = self.queueUnsettled.removeValue(forKey: id) else { continue }
                if case .accepted? = disposition.state { continue }
                await self.hub.giveBack(sent.records, to: sent.queue)
            }
        case .detach(let detach):
            if let link = self.links.removeValue(forKey: detach.handle) {
                self.send(.detach(AMQPDetach(handle: link.ourHandle, closed: true)), channel: channel)
            }
        case .end:
            self.send(.end(AMQPEndOrClose()), channel: channel)
            self.sessionChannel = nil
            self.links.removeAll()
        case .close:
            self.send(.close(AMQPEndOrClose()))
            await self.close(because: "the client closed the connection")
        default:
            self.send(
                .close(AMQPEndOrClose(error: AMQPError(condition: "amqp:not-allowed", description: "unexpected frame")))
            )
            await self.close(because: "an unexpected frame")
        }
    }

    private func attach(_ attach: AMQPAttach, channel: UInt16) async {
        guard self.links.count < self.limits.maximumLinksPerConnection || self.links[attach.handle] != nil else {
            return await self.fail(
                "amqp:resource-limit-exceeded",
                "more than \(self.limits.maximumLinksPerConnection) links on one connection"
            )
        }
        let clientSends = !attach.isReceiver
        let address = clientSends ? attach.target?.address : attach.source?.address
        if case .events(let name)? = HubLinkAddress(address), clientSends, self.authorized.contains(name) {
            let modelId = attach.properties?.first { $0.key.text == "com.microsoft:model-id" }?.value.text
            await self.hub.recordModelId(modelId, for: name)
        }
        if case .events? = HubLinkAddress(address) {
            let delay = await self.hub.faults.attachDelay
            if delay > .zero { try? await Task.sleep(for: delay) }
        }
        let ourHandle = self.nextOurHandle
        self.nextOurHandle &+= 1
        let reply = AMQPAttach(
            name: attach.name,
            handle: ourHandle,
            isReceiver: clientSends,
            senderSettleMode: attach.senderSettleMode,
            receiverSettleMode: attach.receiverSettleMode,
            source: attach.source,
            target: attach.target,
            initialDeliveryCount: clientSends ? nil : 0,
            maxMessageSize: UInt64(Self.maximumFrameSize)
        )
        self.send(.attach(reply), channel: channel)
        let kind: LinkKind
        switch (HubLinkAddress(address), clientSends) {
        case (.events(let name)?, true) where self.authorized.contains(name): kind = .events(name)
        case (.deviceBound(let name)?, false) where self.authorized.contains(name): kind = .deviceBound(name)
        case (.cbs?, true): kind = .cbsRequests
        case (.cbs?, false): kind = .cbsResponses
        case (.twin(let name)?, true) where self.authorized.contains(name): kind = .twinRequests(name)
        case (.twin(let name)?, false) where self.authorized.contains(name): kind = .twinResponses(name)
        case (.methods(let name)?, false) where self.authorized.contains(name): kind = .methodRequests(name)
        case (.methods(let name)?, true) where self.authorized.contains(name): kind = .methodResponses(name)
        case (.serviceDeviceBound?, true) where self.serviceRights.contains(.serviceConnect):
            kind = .serviceCloudToDevice
        case (.serviceQueue(let queue)?, false) where self.serviceRights.contains(.serviceConnect):
            kind = .serviceQueue(queue)
        case (.management?, true) where self.serviceRights.contains(.serviceConnect): kind = .managementRequests
        case (.management?, false) where self.serviceRights.contains(.serviceConnect): kind = .managementResponses
        case (.partition(let entity, let group, let partition)?, false)
        where self.serviceRights.contains(.serviceConnect):
            guard let number = self.partitionNumber(entity: entity, consumerGroup: group, partition: partition) else {
                self.refuseLink(
                    ourHandle,
                    channel,
                    "amqp:not-found",
                    "no partition '\(partition)' of consumer group '\(group)' in '\(entity)'"
                )
                return
            }
            kind = .partition(number)
        case (.events?, true), (.deviceBound?, false), (.twin?, _), (.methods?, _), (.serviceDeviceBound?, true),
            (.serviceQueue?, false), (.management?, _), (.partition?, false):
            self.refuseLink(
                ourHandle,
                channel,
                "amqp:unauthorized-access",
                "no valid credential for '\(address ?? "")'"
            )
            return
        default:
            self.refuseLink(ourHandle, channel, "amqp:not-found", "the emulator has no node '\(address ?? "")'")
            return
        }
        var link = Link(kind: kind, ourHandle: ourHandle, remoteHandle: attach.handle)
        if case .partition(let number) = kind {
            let position =
                Self.selector(of: attach.source).flatMap(EventPosition.init(selector:)) ?? .offset(-1, inclusive: false)
            link.nextSequenceNumber = await self.hub.events.firstSequenceNumber(in: number, from: position)
        }
        if clientSends {
            link.deliveryCount = attach.initialDeliveryCount ?? 0
            link.credit = Self.telemetryCredit
            self.send(
                self.flow(handle: ourHandle, deliveryCount: link.deliveryCount, credit: link.credit),
                channel: channel
            )
        }
        self.links[attach.handle] = link
        if let name = kind.identity, !self.attachedIdentities.contains(name) {
            self.attachedIdentities.insert(name)
            await self.hub.attach(self, as: name)
        }
    }

    private func refuseLink(_ handle: UInt32, _ channel: UInt16, _ condition: String, _ description: String) {
        self.logger.info("link refused", metadata: ["condition": "\(condition)", "reason": "\(description)"])
        self.send(
            .detach(
                AMQPDetach(
                    handle: handle,
                    closed: true,
                    error: AMQPError(condition: condition, description: description)
                )
            ),
            channel: channel
        )
    }

    private func flow(handle: UInt32?, deliveryCount: UInt32?, credit: UInt32?) -> AMQPPerformative {
        .flow(
            AMQPFlow(
                nextIncomingId: self.nextIncomingId,
                incomingWindow: Self.window,
                nextOutgoingId: self.nextOutgoingId,
                outgoingWindow: Self.window,
                handle: handle,
                deliveryCount: deliveryCount,
                linkCredit: credit
            )
        )
    }

    // MARK: - Incoming transfers

    private func receive(_ transfer: AMQPTransfer, payload: [UInt8], channel: UInt16) async {
        guard var link = self.links[transfer.handle] else { return }
        if link.partialDeliveryId == nil {
            link.partialDeliveryId = transfer.deliveryId
            link.partialSettled = transfer.settled ?? false
        }
        link.partial += payload
        guard link.partial.count <= Int(Self.maximumFrameSize) else {
            return await self.fail("amqp:link:message-size-exceeded", "a message above 256 KB")
        }
        // Unfinished transfers of all links together, with a small allowance before any identity has authenticated.
        let buffered = self.links.reduce(link.partial.count) {
            $0 + ($1.key == transfer.handle ? 0 : $1.value.partial.count)
        }
        let allowance =
            self.authorized.isEmpty
            ? self.limits.maximumBufferedBytesBeforeAuthentication : self.limits.maximumBufferedBytesPerConnection
        guard buffered <= allowance else {
            return await self.fail(
                "amqp:resource-limit-exceeded",
                "over \(allowance) bytes of unfinished transfers\(self.authorized.isEmpty ? " before authentication" : "")"
            )
        }
        if transfer.more == true {
            self.links[transfer.handle] = link
            return
        }
        let bytes = link.partial
        let deliveryId = link.partialDeliveryId
        let settled = link.partialSettled
        link.partial = []
        link.partialDeliveryId = nil
        link.deliveryCount &+= 1
        link.credit = link.credit > 0 ? link.credit - 1 : 0
        if link.credit < Self.telemetryCredit / 2 {
            link.credit = Self.telemetryCredit
            self.send(
                self.flow(handle: link.ourHandle, deliveryCount: link.deliveryCount, credit: link.credit),
                channel: channel
            )
        }
        self.links[transfer.handle] = link
        let message: AMQPMessage
        do {
            message = try AMQPMessage(decoding: bytes)
        } catch {
            if let deliveryId, !settled {
                self.settle(
                    deliveryId,
                    .rejected(AMQPError(condition: "amqp:decode-error", description: "\(error)")),
                    channel
                )
            }
            return
        }
        switch link.kind {
        case .events(let name):
            guard bytes.count <= 256 * 1024 else {
                if let deliveryId, !settled {
                    self.settle(
                        deliveryId,
                        .rejected(AMQPError(condition: "amqp:link:message-size-exceeded", description: "above 256 KB")),
                        channel
                    )
                }
                return
            }
            await self.hub.record(
                Self.telemetry(from: message, identity: name, overWebSockets: self.connection.isWebSocket)
            )
            if let deliveryId, !settled { await self.acknowledge(deliveryId, channel) }
        case .cbsRequests:
            guard self.cbsResponses.count < Self.maximumQueuedCBSResponses else {
                return await self.fail(
                    "amqp:resource-limit-exceeded",
                    "more than \(Self.maximumQueuedCBSResponses) CBS answers wait for credit"
                )
            }
            let response = await self.putToken(message)
            if let deliveryId, !settled { self.settle(deliveryId, .accepted, channel) }
            self.cbsResponses.append(response)
            self.pumpCBSResponses()
        case .twinRequests(let name):
            if let deliveryId, !settled { self.settle(deliveryId, .accepted, channel) }
            let answer = await self.twinAnswer(to: message, for: name)
            await self.queue(answer, on: .twinResponses(name))
        case .managementRequests:
            if let deliveryId, !settled { self.settle(deliveryId, .accepted, channel) }
            await self.queue(await self.managementAnswer(to: message), on: .managementResponses)
        case .serviceCloudToDevice:
            let outcome = await self.enqueueFromService(message, size: bytes.count)
            if let deliveryId, !settled { self.settle(deliveryId, outcome, channel) }
        case .methodResponses:
            if let deliveryId, !settled { self.settle(deliveryId, .accepted, channel) }
            guard let requestId = message.correlationId.flatMap(Self.render) else { return }
            let status = message.applicationProperties.first { $0.0 == "IoThub-status" }.flatMap {
                AMQPTwinMessage.integer($0.1)
            }
            await self.hub.completeMethod(
                requestId: requestId,
                response: MethodResponse(status: status ?? 500, payload: message.data ?? [])
            )
        default:
            break
        }
    }

    private func settle(_ deliveryId: UInt32, _ state: AMQPDeliveryState, _ channel: UInt16) {
        self.send(
            .disposition(AMQPDisposition(isReceiver: true, first: deliveryId, settled: true, state: state)),
            channel: channel
        )
    }

    private func acknowledge(_ deliveryId: UInt32, _ channel: UInt16) async {
        let faults = await self.hub.faults
        guard !faults.withholdAcknowledgements else { return }
        guard faults.acknowledgementDelay > .zero else { return self.settle(deliveryId, .accepted, channel) }
        Task {
            try? await Task.sleep(for: faults.acknowledgementDelay)
            self.settle(deliveryId, .accepted, channel)
        }
    }

    static func render(_ value: AMQPValue?) -> String? {
        guard let value else { return nil }
        switch value {
        case .null: return nil
        case .string(let text), .symbol(let text): return text
        case .binary(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .uuid(let bytes):
            return UUID(
                uuid: (
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                    bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
                )
            ).uuidString.lowercased()
        case .boolean(let flag): return String(flag)
        case .timestamp(let milliseconds):
            return ProvisioningService.timestamp(Date(unixMilliseconds: milliseconds))
        default:
            if let number = value.unsignedInteger { return String(number) }
            switch value {
            case .byte(let n): return String(n)
            case .short(let n): return String(n)
            case .int(let n): return String(n)
            case .long(let n): return String(n)
            case .float(let n): return String(n)
            case .double(let n): return String(n)
            default: return "\(value)"
            }
        }
    }

    /// A message's body as bytes: its data section, or a binary or string value.
    static func body(of message: AMQPMessage) -> [UInt8] {
        if let data = message.data { return data }
        switch message.value {
        case .binary(let bytes)?: return bytes
        case let value?: return value.text.map { Array($0.utf8) } ?? []
        case nil: return []
        }
    }

    static func telemetry(from message: AMQPMessage, identity: IdentityName, overWebSockets: Bool = false)
        -> ReceivedTelemetry
    {
        let body = Self.body(of: message)
        var system: [String: String] = [:]
        if let time = message.creationTime { system["ctime"] = render(.timestamp(time)) }
        if let expiry = message.absoluteExpiryTime { system["exp"] = render(.timestamp(expiry)) }
        if let to = message.to { system["to"] = to }
        var properties: [String: String] = [:]
        for (key, value) in message.applicationProperties {
            // IoT Hub reads these application properties as system properties (the same keys as over MQTT).
            switch key {
            case "iothub-creation-time-utc": system["ctime"] = render(value) ?? ""
            case "iothub-outputname": system["on"] = render(value) ?? ""
            default: properties[key] = render(value) ?? ""
            }
        }
        for entry in message.messageAnnotations where entry.key.text == "dt-subject" {
            system["sub"] = render(entry.value) ?? ""
        }
        return ReceivedTelemetry(
            deviceId: identity.deviceId,
            moduleId: identity.moduleId,
            transport: .amqp,
            overWebSockets: overWebSockets,
            body: body,
            contentType: message.contentType,
            contentEncoding: message.contentEncoding,
            messageId: render(message.messageId),
            correlationId: render(message.correlationId),
            userId: message.userId.map { String(decoding: $0, as: UTF8.self) },
            systemProperties: system,
            properties: properties,
            receivedAt: Date()
        )
    }

    // MARK: - CBS

    /// `jwt` is what Azure's Python Event Hubs client (pyamqp) puts on SAS tokens too.
    static let tokenTypes: Set<String> = ["azure-devices.net:sastoken", "servicebus.windows.net:sastoken", "jwt"]

    private func putToken(_ request: AMQPMessage) async -> AMQPMessage {
        let properties = Dictionary(
            request.applicationProperties.map { ($0.0, $0.1) },
            uniquingKeysWith: { first, _ in first }
        )
        var status = 200
        var description = "OK"
        let hubHost = self.hub.hubHost
        if properties["operation"]?.text != "put-token" {
            (status, description) = (400, "only put-token is supported")
        } else if let type = properties["type"]?.text, !Self.tokenTypes.contains(type) {
            (status, description) = (400, "unsupported token type '\(type)'")
        } else if let audience = properties["name"]?.text,
            let name = AzureIoTEmulator.identity(fromAudience: audience, hubHost: hubHost)
        {
            let token = request.value?.text ?? request.data.map { String(decoding: $0, as: UTF8.self) } ?? ""
            do {
                let expiry = try await self.hub.authenticate(name, token: token)
                self.authorize(name, until: expiry)
            } catch {
                (status, description) = (401, "\(error)")
            }
        } else if let audience = properties["name"]?.text, let entity = eventHubAudienceEntity(audience) {
            // The Event Hub-compatible endpoint: `sb://{host}/{eventHub}`, signed for exactly that.
            let token = request.value?.text ?? request.data.map { String(decoding: $0, as: UTF8.self) } ?? ""
            if entity.lowercased() != self.eventHubName.lowercased() {
                (status, description) = (404, "the event hub '\(entity)' does not exist")
            } else {
                let trimmed = audience.hasSuffix("/") ? String(audience.dropLast()) : audience
                switch self.hub.policies.authorize(token: token, hosts: [trimmed, trimmed + "/"], serviceBus: true) {
                case .success(let rights): self.serviceRights.formUnion(rights)
                case .failure(let refusal): (status, description) = (401, refusal.reason)
                }
            }
        } else if let audience = properties["name"]?.text, let host = hubAudienceHost(audience) {
            let token = request.value?.text ?? request.data.map { String(decoding: $0, as: UTF8.self) } ?? ""
            switch self.hub.policies.authorize(token: token, hosts: [host]) {
            case .success(let rights): self.serviceRights.formUnion(rights)
            case .failure(let refusal): (status, description) = (401, refusal.reason)
            }
        } else {
            (status, description) = (404, "the audience is not a device or module of \(hubHost)")
        }
        var response = AMQPMessage()
        response.correlationId = request.messageId
        response.applicationProperties = [
            ("status-code", .int(Int32(status))), ("status-description", .string(description)),
        ]
        return response
    }

    private func pumpCBSResponses() {
        guard let channel = self.sessionChannel,
            let (remote, link) = self.links.first(where: {
                if case .cbsResponses = $0.value.kind { return true } else { return false }
            })
        else { return }
        var current = link
        while current.credit > 0, !self.cbsResponses.isEmpty {
            let message = self.cbsResponses.removeFirst()
            guard let bytes = try? message.encoded() else { continue }
            self.transfer(bytes, handle: current.ourHandle, settled: true, channel: channel)
            current.credit -= 1
            current.deliveryCount &+= 1
        }
        self.links[remote] = current
    }

    private func transfer(_ payload: [UInt8], handle: UInt32, settled: Bool, channel: UInt16) {
        let deliveryId = self.nextDeliveryId
        self.nextDeliveryId &+= 1
        self.nextOutgoingId &+= 1
        let tag = withUnsafeBytes(of: deliveryId.bigEndian) { Array($0) }
        self.send(
            .transfer(
                AMQPTransfer(
                    handle: handle,
                    deliveryId: deliveryId,
                    deliveryTag: tag,
                    messageFormat: 0,
                    settled: settled
                ),
                payload: payload
            ),
            channel: channel
        )
    }

    // MARK: - Service side

    /// Queues a message the service sent on `/messages/devicebound` for the device its `to` names; the outcome
    /// the service gets back.
    private func enqueueFromService(_ message: AMQPMessage, size: Int) async -> AMQPDeliveryState {
        func refuse(_ condition: String, _ description: String) -> AMQPDeliveryState {
            .rejected(AMQPError(condition: condition, description: description))
        }
        guard size <= 64 * 1024 else {
            return refuse("amqp:link:message-size-exceeded", "a cloud-to-device message is at most 64 KB")
        }
        let parts = (message.to ?? "").split(separator: "/").map(String.init)
        guard parts.count == 4, parts[0] == "devices", parts[2] == "messages", parts[3].lowercased() == "devicebound",
            let deviceId = try? PercentEncoding.decode(parts[1])
        else {
            return refuse("amqp:invalid-field", "'to' must be /devices/{id}/messages/devicebound")
        }
        let body = Self.body(of: message)
        var properties: [String: String] = [:]
        var acknowledgement: String?
        for (key, value) in message.applicationProperties {
            if key == "iothub-ack" {
                acknowledgement = Self.render(value)
            } else {
                properties[key] = Self.render(value) ?? ""
            }
        }
        let record = CloudToDeviceRecord(
            messageId: Self.render(message.messageId) ?? "",
            deviceId: deviceId,
            body: body,
            properties: properties,
            state: .queued,
            deliveryCount: 0,
            correlationId: Self.render(message.correlationId),
            contentType: message.contentType,
            contentEncoding: message.contentEncoding,
            expiresAt: message.absoluteExpiryTime.map { Date(unixMilliseconds: $0) },
            acknowledgement: acknowledgement
        )
        do throws(EmulatedHub.CloudToDeviceRefusal) {
            _ = try await self.hub.enqueueCloudToDevice(record)
            return .accepted
        } catch {
            switch error {
            case .unknownDevice: return refuse("amqp:not-found", "the device '\(deviceId)' is not registered")
            case .queueFull:
                return refuse(
                    "amqp:resource-limit-exceeded",
                    "the device '\(deviceId)' has \(EmulatedHub.maximumCloudToDeviceQueueDepth) messages queued"
                )
            }
        }
    }

    /// Sends a service queue's records on its link while it has credit, waiting for new records in between.
    private func startQueuePump(_ queue: EmulatedHub.ServiceQueue) {
        guard self.queuePumps[queue] == nil else { return }
        self.queuePumps[queue] = self.pump(.queue(queue)) { await $0.pumpQueue(queue) }
    }

    /// Runs `round` until it returns `false`, waiting for the hub's `signal` (or a second) in between.
    private func pump(
        _ signal: EmulatedHub.Signal,
        _ round: @escaping @Sendable (isolated AMQPDeviceConnection) async -> Bool
    ) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled, await round(self) {
                await self.hub.wait(for: signal, timeout: .seconds(1))
            }
        }
    }

    /// One round of a service queue; `false` once its link is gone.
    private func pumpQueue(_ queue: EmulatedHub.ServiceQueue) async -> Bool {
        guard !self.closed, let channel = self.sessionChannel,
            let (remote, link) = self.links.first(where: {
                if case .serviceQueue(queue) = $0.value.kind { return true } else { return false }
            })
        else {
            self.queuePumps[queue] = nil
            return false
        }
        guard link.credit > 0 else { return true }
        let records = await self.hub.take(from: queue, limit: queue.recordsPerMessage)
        guard !records.isEmpty else { return true }
        guard var current = self.links[remote] else {
            await self.hub.giveBack(records, to: queue)
            return false
        }
        // Feedback comes as an array of records, a file notification as one object.
        let body = queue == .feedback ? JSONValue.array(records) : records[0]
        var message = AMQPMessage(data: body.jsonBytes)
        message.messageId = .string(UUID().uuidString.lowercased())
        message.contentType = queue.contentType
        message.userId = Array(self.hub.hubHost.split(separator: ".").first.map(String.init).map { $0.utf8 } ?? "".utf8)
        guard let bytes = try? message.encoded() else { return true }
        self.queueUnsettled[self.nextDeliveryId] = (queue, records)
        self.transfer(bytes, handle: current.ourHandle, settled: false, channel: channel)
        current.credit -= 1
        current.deliveryCount &+= 1
        self.links[remote] = current
        return true
    }

    // MARK: - Event Hub-compatible endpoint

    /// The event hub's name: the hub's short name, as in IoT Hub's built-in endpoint.
    private var eventHubName: String { self.hub.hubHost.split(separator: ".").first.map(String.init) ?? "" }

    /// The partition a reader's address names, if the entity, consumer group and partition exist.
    private func partitionNumber(entity: String, consumerGroup: String, partition: String) -> Int? {
        let entity = entity.lowercased()
        guard entity == self.eventHubName.lowercased() || entity == "messages/events" else { return nil }
        let groups = ["$default"] + self.hub.eventHubSettings.consumerGroups.map { $0.lowercased() }
        guard groups.contains(consumerGroup.lowercased()), partition.utf8.count <= 4, let number = Int(partition),
            (0..<self.hub.eventHubSettings.partitionCount).contains(number)
        else { return nil }
        return number
    }

    /// The selector filter of a source terminus (its `filter` field, any key), as text.
    private static func selector(of source: AMQPTerminus?) -> String? {
        // filter is the source's 8th field; otherFields start at the 2nd.
        guard let source, source.otherFields.count > 6, case .map(let entries) = source.otherFields[6] else {
            return nil
        }
        for entry in entries {
            switch entry.value {
            case .described(_, let value): if let text = value.text { return text }
            default: if let text = entry.value.text { return text }
            }
        }
        return nil
    }

    /// Answers `$management` READ of the event hub or one partition, as Event Hubs does.
    private func managementAnswer(to request: AMQPMessage) async -> AMQPMessage {
        let properties = Dictionary(
            request.applicationProperties.map { ($0.0, $0.1) },
            uniquingKeysWith: { first, _ in first }
        )
        var response = AMQPMessage()
        response.correlationId = request.messageId
        func status(_ code: Int32, _ description: String) {
            response.applicationProperties = [
                ("status-code", .int(code)), ("status-description", .string(description)),
            ]
        }
        let settings = self.hub.eventHubSettings
        guard properties["operation"]?.text == "READ" else {
            status(400, "only READ is supported")
            return response
        }
        guard let name = properties["name"]?.text, name.lowercased() == self.eventHubName.lowercased() else {
            status(404, "no such event hub")
            return response
        }
        switch properties["type"]?.text {
        case "com.microsoft:eventhub":
            response.value = .map([
                AMQPMapEntry(.string("name"), .string(self.eventHubName)),
                AMQPMapEntry(.string("created_at"), .timestamp(self.createdAt)),
                AMQPMapEntry(
                    .string("partition_ids"),
                    .array((0..<settings.partitionCount).map { .string(String($0)) })
                ),
            ])
            status(200, "OK")
        case "com.microsoft:partition":
            guard let text = properties["partition"]?.text, text.utf8.count <= 4, let partition = Int(text),
                (0..<settings.partitionCount).contains(partition)
            else {
                status(404, "no such partition")
                return response
            }
            let facts = await self.hub.events.properties(of: partition)
            response.value = .map([
                AMQPMapEntry(.string("name"), .string(self.eventHubName)),
                AMQPMapEntry(.string("partition"), .string(text)),
                AMQPMapEntry(.string("begin_sequence_number"), .long(facts.beginSequenceNumber)),
                AMQPMapEntry(.string("last_enqueued_sequence_number"), .long(facts.lastSequenceNumber)),
                AMQPMapEntry(.string("last_enqueued_offset"), .string(String(facts.lastOffset))),
                AMQPMapEntry(
                    .string("last_enqueued_time_utc"),
                    .timestamp(facts.lastEnqueuedTime?.unixMilliseconds ?? 0)
                ),
                AMQPMapEntry(.string("is_partition_empty"), .boolean(facts.isEmpty)),
            ])
            status(200, "OK")
        default:
            status(400, "unknown type")
        }
        return response
    }

    private var createdAt: Int64 { 1_700_000_000_000 }

    /// Sends partition events on reader links while they have credit, waiting for new events in between.
    private func startPartitionPump() {
        guard self.partitionPump == nil else { return }
        self.partitionPump = self.pump(.events) { await $0.pumpPartitions() }
    }

    /// One round over the reader links; `false` once none is left.
    private func pumpPartitions() async -> Bool {
        guard !self.closed, let channel = self.sessionChannel else {
            self.partitionPump = nil
            return false
        }
        let readers = self.links.filter { if case .partition = $0.value.kind { true } else { false } }
        guard !readers.isEmpty else {
            self.partitionPump = nil
            return false
        }
        for (remote, reader) in readers where reader.credit > 0 {
            guard case .partition(let partition) = reader.kind else { continue }
            let events = await self.hub.partitionEvents(
                partition,
                from: reader.nextSequenceNumber,
                limit: Int(min(reader.credit, 100))
            )
            // The link may have gone while the hub answered.
            guard var link = self.links[remote], !events.isEmpty else { continue }
            for event in events {
                guard let bytes = try? Self.eventMessage(event).encoded() else { continue }
                self.transfer(bytes, handle: link.ourHandle, settled: true, channel: channel)
                link.credit -= 1
                link.deliveryCount &+= 1
                link.nextSequenceNumber = event.sequenceNumber + 1
            }
            self.links[remote] = link
        }
        return true
    }

    /// An event as Event Hubs delivers it, with IoT Hub's system properties in the message annotations.
    static func eventMessage(_ event: PartitionEvent) -> AMQPMessage {
        let telemetry = event.telemetry
        var message = AMQPMessage(data: telemetry.body)
        message.messageId = telemetry.messageId.map(AMQPValue.string)
        message.correlationId = telemetry.correlationId.map(AMQPValue.string)
        message.userId = telemetry.userId.map { Array($0.utf8) }
        message.contentType = telemetry.contentType
        message.contentEncoding = telemetry.contentEncoding
        message.applicationProperties = telemetry.properties.sorted { $0.key < $1.key }.map {
            ($0.key, .string($0.value))
        }
        let enqueued = event.enqueuedTime.unixMilliseconds
        var annotations: [AMQPMapEntry] = [
            AMQPMapEntry(.symbol("x-opt-sequence-number"), .long(event.sequenceNumber)),
            AMQPMapEntry(.symbol("x-opt-offset"), .string(String(event.offset))),
            AMQPMapEntry(.symbol("x-opt-enqueued-time"), .timestamp(enqueued)),
            AMQPMapEntry(.symbol("iothub-connection-device-id"), .string(telemetry.deviceId)),
            AMQPMapEntry(.symbol("iothub-enqueuedtime"), .timestamp(enqueued)),
            AMQPMapEntry(.symbol("iothub-message-source"), .string("Telemetry")),
        ]
        if let moduleId = telemetry.moduleId {
            annotations.append(AMQPMapEntry(.symbol("iothub-connection-module-id"), .string(moduleId)))
        }
        if let subject = telemetry.systemProperties["sub"] {
            annotations.append(AMQPMapEntry(.symbol("dt-subject"), .string(subject)))
        }
        message.messageAnnotations = annotations
        return message
    }

    // MARK: - DeviceLink

    func offer(_ message: CloudToDeviceRecord) async -> Bool {
        guard !self.closed, let channel = self.sessionChannel,
            let (remote, link) = self.links.first(where: {
                if case .deviceBound(let name) = $0.value.kind {
                    return name.deviceId == message.deviceId && name.moduleId == nil
                } else {
                    return false
                }
            }), link.credit > 0
        else { return false }
        var amqp = AMQPMessage(data: message.body)
        amqp.messageId = .string(message.messageId)
        amqp.to = "/devices/\(message.deviceId)/messages/deviceBound"
        amqp.correlationId = message.correlationId.map(AMQPValue.string)
        amqp.contentType = message.contentType
        amqp.contentEncoding = message.contentEncoding
        amqp.absoluteExpiryTime = message.expiresAt?.unixMilliseconds
        amqp.applicationProperties = message.properties.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }
        if let ack = message.acknowledgement { amqp.applicationProperties.append(("iothub-ack", .string(ack))) }
        guard let bytes = try? amqp.encoded(), bytes.count + 64 <= self.peerMaxFrameSize else { return false }
        self.cloudToDeviceUnsettled[self.nextDeliveryId] = message.messageId
        self.transfer(bytes, handle: link.ourHandle, settled: false, channel: channel)
        var updated = link
        updated.credit -= 1
        updated.deliveryCount &+= 1
        self.links[remote] = updated
        return true
    }

    func pushDesired(_ patch: JSONValue, version: Int, to identity: IdentityName) async {
        guard self.desiredSubscribers.contains(identity) else { return }
        var members = patch.objectValue
        members["$version"] = .number(JSONNumber(version))
        // A push has no correlation id: that is how the device tells it from an answer.
        var message = AMQPMessage(data: JSONValue.object(members).jsonBytes)
        message.messageAnnotations = [AMQPMapEntry(.symbol("version"), .long(Int64(version)))]
        await self.queue(message, on: .twinResponses(identity))
    }

    func requestMethod(name: String, payload: [UInt8], requestId: String, to identity: IdentityName) async -> Bool {
        guard !self.closed, self.linkHandle(.methodRequests(identity)) != nil else { return false }
        var message = AMQPMessage(data: payload)
        message.correlationId = .string(requestId)
        message.applicationProperties = [("IoThub-methodname", .string(name))]
        await self.queue(message, on: .methodRequests(identity))
        return true
    }

    // MARK: - Twin

    /// Answers a twin request: GET the twin, PATCH reported properties, PUT/DELETE the desired subscription.
    private func twinAnswer(to request: AMQPMessage, for name: IdentityName) async -> AMQPMessage {
        var operation: String?
        var resource: String?
        for entry in request.messageAnnotations {
            switch entry.key.text {
            case "operation"?: operation = entry.value.text
            case "resource"?: resource = entry.value.text
            default: break
            }
        }
        var status = 400
        var version: Int?
        var body: [UInt8] = []
        switch (operation, resource) {
        case ("GET"?, _):
            if let twin = await self.hub.twin(name) {
                (status, body) = (200, twin.deviceDocument.jsonBytes)
            } else {
                status = 404
            }
        case ("PATCH"?, "/properties/reported"?):
            if let patch = try? JSONValue(parsing: request.data ?? []), case .object = patch,
                let reported = await self.hub.patchReported(name, patch)
            {
                (status, version) = (204, reported)
            }
        case ("PUT"?, "/notifications/twin/properties/desired"?):
            self.desiredSubscribers.insert(name)
            status = 200
        case ("DELETE"?, "/notifications/twin/properties/desired"?):
            self.desiredSubscribers.remove(name)
            status = 200
        default:
            break
        }
        var answer = AMQPMessage(data: body.isEmpty ? [0x20] : body)
        answer.correlationId = request.correlationId
        answer.messageAnnotations = [AMQPMapEntry(.symbol("status"), .int(Int32(status)))]
        if let version { answer.messageAnnotations.append(AMQPMapEntry(.symbol("version"), .long(Int64(version)))) }
        return answer
    }

    // MARK: - Queued sends

    /// The remote handle of the attached link of `kind`.
    private func linkHandle(_ kind: LinkKind) -> UInt32? {
        self.links.first { Self.same($0.value.kind, kind) }?.key
    }

    private static func same(_ a: LinkKind, _ b: LinkKind) -> Bool {
        switch (a, b) {
        case (.twinResponses(let x), .twinResponses(let y)), (.methodRequests(let x), .methodRequests(let y)): x == y
        case (.managementResponses, .managementResponses): true
        default: false
        }
    }

    /// Queues `message` for the link of `kind` and sends what its credit allows; a client that lets too much wait
    /// is cut off. Nothing happens when the link is not attached.
    private func queue(_ message: AMQPMessage, on kind: LinkKind) async {
        guard let handle = self.linkHandle(kind), var link = self.links[handle], let bytes = try? message.encoded()
        else { return }
        guard link.queue.count < Self.maximumQueuedPerLink else {
            return await self.fail(
                "amqp:resource-limit-exceeded",
                "more than \(Self.maximumQueuedPerLink) messages wait for credit on one link"
            )
        }
        link.queue.append(bytes)
        self.links[handle] = link
        self.pumpQueue(handle)
    }

    /// Sends queued messages on link `handle` while it has credit (unsettled method calls; settled twin traffic).
    private func pumpQueue(_ handle: UInt32) {
        guard let channel = self.sessionChannel, var link = self.links[handle], !link.queue.isEmpty else { return }
        let settled: Bool
        if case .methodRequests = link.kind { settled = false } else { settled = true }
        while link.credit > 0, !link.queue.isEmpty {
            self.transfer(link.queue.removeFirst(), handle: link.ourHandle, settled: settled, channel: channel)
            link.credit -= 1
            link.deliveryCount &+= 1
        }
        self.links[handle] = link
    }

    func terminate(reason: String) async {
        self.send(.close(AMQPEndOrClose(error: AMQPError(condition: "amqp:connection:forced", description: reason))))
        await self.close(because: reason)
    }

    func release(_ identity: IdentityName, reason: String) async {
        guard !self.closed, let channel = self.sessionChannel else { return }
        for (remote, link) in self.links.sorted(by: { $0.key < $1.key }) where link.kind.identity == identity {
            self.links[remote] = nil
            self.send(
                .detach(
                    AMQPDetach(
                        handle: link.ourHandle,
                        closed: true,
                        error: AMQPError(condition: "amqp:link:stolen", description: reason)
                    )
                ),
                channel: channel
            )
        }
        self.attachedIdentities.remove(identity)
        self.desiredSubscribers.remove(identity)
        self.logger.info("an identity's links were taken over", metadata: ["identity": "\(identity)"])
    }

    private func startHeartbeat(every interval: Duration) {
        let outbound = self.outbound
        self.heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                outbound.send([0, 0, 0, 8, 2, 0, 0, 0])
                await self.heartbeatSent()
            }
        }
    }

    private func heartbeatSent() async {
        if !self.authorized.isEmpty { await self.hub.recordHeartbeat(self.authorized, sent: true) }
    }

    /// Closes the connection with `condition`, as a limit or a protocol violation requires.
    private func fail(_ condition: String, _ description: String) async {
        self.send(.close(AMQPEndOrClose(error: AMQPError(condition: condition, description: description))))
        await self.close(because: description)
    }

    private func close(because reason: String) async {
        guard !self.closed else { return }
        self.closed = true
        self.heartbeat?.cancel()
        for pump in self.queuePumps.values { pump.cancel() }
        self.partitionPump?.cancel()
        for sent in self.queueUnsettled.values { await self.hub.giveBack(sent.records, to: sent.queue) }
        self.queueUnsettled.removeAll()
        let reason =
            self.outbound.overflowed
            ? "the client did not read: over \(self.limits.maximumPendingWriteBytes) bytes were waiting" : reason
        self.logger.info("AMQP connection closed", metadata: ["reason": "\(reason)"])
        await self.outbound.finish()
        self.connection.close()
        for name in self.attachedIdentities { await self.hub.detach(self, as: name) }
    }
}
