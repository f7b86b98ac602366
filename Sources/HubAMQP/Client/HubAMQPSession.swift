import AzureIoTCore
import Foundation
import Logging

/// The AMQP connection behind ``HubAMQPClient``: SASL (PLAIN, ANONYMOUS/MSSBCBS with CBS, or EXTERNAL), one
/// session, a sender link for telemetry and a receiver link for cloud-to-device messages, with link credit, the
/// session window, settlement and transfer fragmentation.
///
/// Messages stay in ``unsettled`` until the peer settles them, across connections: when a connection is lost the
/// session reconnects with backoff and sends them again, so nothing `send` accepted is lost (at least once).
actor HubAMQPSession {
    private enum Handle {
        static let sender: UInt32 = 0
        static let receiver: UInt32 = 1
        static let cbsSender: UInt32 = 2
        static let cbsReceiver: UInt32 = 3
    }

    private enum State {
        case idle
        case connecting
        case connected
        case reconnecting
        case closed
    }

    /// A message `send` accepted and the peer has not settled yet.
    private struct Pending {
        let payload: [UInt8]
        let waiter: CheckedContinuation<Void, any Error>
        /// The delivery id on the current connection, once transmitted on it.
        var deliveryId: UInt32?
    }

    /// What one TCP/TLS connection knows; replaced on every reconnect.
    private struct Link {
        let connection: TLSConnection
        let writer: TLSWriteQueue
        let generation: UInt64
        var buffer: [UInt8] = []
        var framer = AMQPFramer()
        var peerMaxFrameSize = 512
        var peerIdleTimeout: UInt32?
        var credit: Int64 = 0
        var deliveryCount: UInt32 = 0
        var nextDeliveryId: UInt32 = 0
        var nextOutgoingId: UInt32 = 0
        var remoteIncomingWindow: Int64 = 0
        var nextIncomingId: UInt32 = 0
        var receivedCount: UInt32 = 0
        var grantedCredit: UInt32 = 0
        var partial: (handle: UInt32, deliveryId: UInt32, settled: Bool, payload: [UInt8])?
        var remoteOpened = false
        var remoteAttached: Set<UInt32> = []
        var deliveries: [UInt32: UInt64] = [:]
        /// The peer's handle for each of our links (transfers, flows and detaches carry the sender's handle).
        var ourHandle: [UInt32: UInt32] = [:]
    }

    private let configuration: HubAMQPConfiguration
    private let logger: Logger
    private let cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation

    private var state = State.idle
    private var link: Link?
    private var generation: UInt64 = 0
    private var unsettled: [UInt64: Pending] = [:]
    private var nextSequence: UInt64 = 0
    private var terminalError: HubAMQPError?
    private var linkFailure: HubAMQPError?
    private var handshakeWaiters: [CheckedContinuation<Void, any Error>] = []
    private var creditWaiters: [CheckedContinuation<Void, any Error>] = []
    private var cbsWaiters: [UInt64: CheckedContinuation<CBSPutToken.Response, any Error>] = [:]
    private var nextCBSRequest: UInt64 = 0
    private var readerTask: Task<Void, Never>?
    private var heartbeatTask: Task<Void, Never>?
    private var renewalTask: Task<Void, Never>?
    private var reconnectTask: Task<Void, Never>?

    init(configuration: HubAMQPConfiguration, logger: Logger, cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation) {
        self.configuration = configuration
        self.logger = logger
        self.cloudToDevice = cloudToDevice
    }

    // MARK: - Connecting

    func connect() async throws {
        guard self.state == .idle else {
            if let terminalError { throw terminalError }
            return
        }
        self.state = .connecting
        do {
            try await self.establish()
            self.state = .connected
        } catch {
            self.state = .idle
            throw error
        }
    }

    /// One connection: TLS, SASL, open, begin, CBS when configured, the two links, credit, heartbeats, renewal.
    private func establish() async throws {
        self.generation += 1
        let generation = self.generation
        var tls = TLSConfiguration(trustRoots: self.configuration.trustRoots, connectTimeout: self.configuration.operationTimeout)
        if case .x509(let identity) = self.configuration.authentication { tls.clientIdentity = identity }
        let host = self.configuration.gatewayHostName ?? self.configuration.hubHost
        let connection = try await TLSConnection.connect(host: host, port: self.configuration.port, configuration: tls, logger: self.logger)
        self.link = Link(connection: connection, writer: TLSWriteQueue(connection: connection), generation: generation)
        self.linkFailure = nil
        do {
            let renewAt = try await self.authenticate(connection)
            try await self.open(connection, generation: generation)
            if case .cbs(let source, let type) = self.configuration.authentication {
                try await self.putToken(source, type: type)
            }
            try await self.attachDeviceLinks()
            self.scheduleRenewal(at: renewAt)
        } catch {
            self.tearDown()
            if let failure = error as? HubAMQPError { throw failure }
            throw error
        }
    }

    /// The SASL exchange; returns when the token should be renewed (PLAIN only).
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
        switch self.configuration.authentication {
        case .saslPlain(let source):
            guard mechanisms.contains("PLAIN") else {
                throw HubAMQPError(.authenticationFailed, "the peer does not offer SASL PLAIN (offers \(mechanisms))")
            }
            let issued = try source.issueToken(for: self.configuration.sasResource)
            let credentials = SASLPlainCredentials(
                deviceId: self.configuration.deviceId, moduleId: self.configuration.moduleId, hubHost: self.configuration.hubHost, token: issued.token
            )
            initial = SASLInit(mechanism: "PLAIN", initialResponse: credentials.initialResponse, hostname: self.configuration.hubHost)
            renewAt = issued.renewAt
            who = credentials.authenticationId
        case .cbs:
            let mechanism = mechanisms.contains("MSSBCBS") ? "MSSBCBS" : "ANONYMOUS"
            guard mechanisms.contains(mechanism) else {
                throw HubAMQPError(.authenticationFailed, "the peer offers neither ANONYMOUS nor MSSBCBS for CBS (offers \(mechanisms))")
            }
            initial = SASLInit(mechanism: mechanism, initialResponse: mechanism == "ANONYMOUS" ? [] : nil, hostname: self.configuration.hubHost)
        case .x509:
            let mechanism = mechanisms.contains("EXTERNAL") ? "EXTERNAL" : "ANONYMOUS"
            guard mechanisms.contains(mechanism) else {
                throw HubAMQPError(.authenticationFailed, "the peer offers neither EXTERNAL nor ANONYMOUS (offers \(mechanisms))")
            }
            initial = SASLInit(mechanism: mechanism, initialResponse: [], hostname: self.configuration.hubHost)
            who = "the client certificate"
        }
        try await connection.write(AMQPFrame(type: .sasl, body: try AMQPPerformative.saslInit(initial).encoded()).encoded)
        guard case .saslOutcome(let outcome) = try await self.readPerformative(connection) else {
            throw HubAMQPError(.protocolViolation, "expected sasl-outcome")
        }
        guard outcome.code == .ok else {
            throw HubAMQPError(.authenticationFailed, "SASL \(initial.mechanism) as \(who) was refused: \(outcome.code)")
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes)
        guard try await self.readProtocolHeader(connection) == .amqp else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the AMQP protocol header")
        }
        return renewAt
    }

    private var connectionProperties: [AMQPMapEntry] {
        [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(self.configuration.clientVersion))]
    }

    private func open(_ connection: TLSConnection, generation: UInt64) async throws {
        let idle = UInt32(clamping: self.configuration.idleTimeout.components.seconds * 1000)
        self.write([
            .open(AMQPOpen(containerId: "\(self.configuration.deviceId)-\(UUID().uuidString)", hostname: self.configuration.hubHost,
                           maxFrameSize: 65_536, channelMax: 0, idleTimeOut: idle, properties: self.connectionProperties)),
            .begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 5000)),
        ])
        self.readerTask = Task { await self.readLoop(connection, generation: generation) }
        try await self.waitForHandshake("open") { $0.remoteOpened }
        if let idle = self.link?.peerIdleTimeout, idle > 0 {
            let interval = Duration.milliseconds(Int64(idle / 2))
            self.heartbeatTask = Task { await self.heartbeats(every: interval, generation: generation) }
        }
    }

    private func attachDeviceLinks() async throws {
        let properties = self.connectionProperties + [AMQPMapEntry(.symbol("com.microsoft:api-version"), .string(self.configuration.apiVersion))]
        self.write([
            .attach(AMQPAttach(name: "sender-\(UUID().uuidString)", handle: Handle.sender, isReceiver: false, senderSettleMode: 0,
                               receiverSettleMode: 0, source: AMQPTerminus(address: "sender-source"),
                               target: AMQPTerminus(address: self.configuration.telemetryAddress), initialDeliveryCount: 0,
                               properties: properties)),
            .attach(AMQPAttach(name: "receiver-\(UUID().uuidString)", handle: Handle.receiver, isReceiver: true, receiverSettleMode: 0,
                               source: AMQPTerminus(address: self.configuration.cloudToDeviceAddress),
                               target: AMQPTerminus(address: "receiver-target"), properties: properties)),
        ])
        try await self.waitForHandshake("the telemetry and cloud-to-device links") { $0.remoteAttached.isSuperset(of: [Handle.sender, Handle.receiver]) }
        guard var link = self.link else { throw HubAMQPError(.notConnected, "the connection was lost") }
        link.grantedCredit = self.configuration.cloudToDeviceCredit
        self.link = link
        self.write([.flow(self.flow(handle: Handle.receiver, deliveryCount: 0, credit: link.grantedCredit))])
    }

    /// Waits until `condition` holds for the current connection, it fails, or the operation timeout passes.
    private func waitForHandshake(_ what: String, _ condition: (Link) -> Bool) async throws {
        let timeout = self.configuration.operationTimeout
        let generation = self.generation
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.linkLost(HubAMQPError(.timedOut, "the peer did not open \(what) within \(timeout)"), generation: generation)
        }
        defer { timer.cancel() }
        while true {
            if let failure = self.linkFailure { throw failure }
            guard let link = self.link, link.generation == generation else { throw HubAMQPError(.notConnected, "the connection was lost") }
            if condition(link) { return }
            try await withCheckedThrowingContinuation { self.handshakeWaiters.append($0) }
        }
    }

    // MARK: - CBS

    /// Attaches the `$cbs` links (first time on a connection) and puts a token for the device; throws
    /// ``HubAMQPError/Code/authenticationFailed`` when the hub refuses it.
    private func putToken(_ source: any SASTokenSource, type: HubAMQPConfiguration.CBSTokenType) async throws {
        if self.link?.remoteAttached.isSuperset(of: [Handle.cbsSender, Handle.cbsReceiver]) != true {
            self.write([
                .attach(AMQPAttach(name: "$cbs-sender", handle: Handle.cbsSender, isReceiver: false, senderSettleMode: 0, receiverSettleMode: 0,
                                   source: AMQPTerminus(address: "$cbs"), target: AMQPTerminus(address: "$cbs"), initialDeliveryCount: 0)),
                .attach(AMQPAttach(name: "$cbs-receiver", handle: Handle.cbsReceiver, isReceiver: true, receiverSettleMode: 0,
                                   source: AMQPTerminus(address: "$cbs"), target: AMQPTerminus(address: "cbs"))),
                .flow(self.flow(handle: Handle.cbsReceiver, deliveryCount: 0, credit: 100)),
            ])
            try await self.waitForHandshake("the $cbs links") { $0.remoteAttached.isSuperset(of: [Handle.cbsSender, Handle.cbsReceiver]) }
        }
        let issued = try source.issueToken(for: self.configuration.sasResource)
        self.nextCBSRequest += 1
        let requestId = self.nextCBSRequest
        let request = CBSPutToken.request(token: issued.token.secretValue, audience: self.configuration.sasResource.uri, type: type.rawValue, requestId: requestId)
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.cbsWaiters.removeValue(forKey: requestId)?.resume(throwing: HubAMQPError(.timedOut, "no CBS answer within \(timeout)"))
        }
        defer { timer.cancel() }
        let response = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CBSPutToken.Response, any Error>) in
            self.cbsWaiters[requestId] = continuation
            self.transmit(try? request.encoded(), handle: Handle.cbsSender, settled: true)
        }
        guard (200..<300).contains(response.status) else {
            throw HubAMQPError(.authenticationFailed, "CBS put-token was refused: \(response.status) \(response.statusDescription)")
        }
        self.logger.debug("CBS token accepted", metadata: ["audience": "\(self.configuration.sasResource.uri)", "renewAt": "\(issued.renewAt)"])
        if self.state == .connected || self.state == .connecting { self.scheduleRenewal(at: issued.renewAt) }
    }

    /// PLAIN tokens are renewed by reconnecting, CBS tokens with another put-token, before they expire.
    private func scheduleRenewal(at renewAt: UInt64?) {
        self.renewalTask?.cancel()
        let renewAt: UInt64? = switch self.configuration.authentication {
        case .saslPlain: renewAt
        case .cbs(let source, _): (try? source.issueToken(for: self.configuration.sasResource))?.renewAt
        case .x509: nil
        }
        guard let renewAt else { return }
        let now = UnixTime.now()
        let delay = renewAt > now ? renewAt - now : 0
        let generation = self.generation
        self.renewalTask = Task {
            try? await Task.sleep(for: .seconds(Int64(min(delay, 30 * 86_400))))
            guard !Task.isCancelled else { return }
            await self.renew(generation: generation)
        }
    }

    private func renew(generation: UInt64) async {
        guard self.generation == generation, self.state == .connected else { return }
        switch self.configuration.authentication {
        case .cbs(let source, let type):
            do {
                try await self.putToken(source, type: type)
            } catch {
                self.linkLost(HubAMQPError(.authenticationFailed, "renewing the CBS token failed: \(error)"), generation: generation)
            }
        case .saslPlain:
            // A SASL identity cannot change in a connection: close it and open a new one with a fresh token, whether
            // or not automatic reconnects are on.
            self.logger.info("reconnecting to renew the SAS token")
            self.linkLost(HubAMQPError(.connectionClosed, "renewing the SAS token"), generation: generation, reconnect: true)
        case .x509:
            break
        }
    }

    // MARK: - Reading

    private func readProtocolHeader(_ connection: TLSConnection) async throws -> AMQPProtocolHeader {
        while true {
            if let buffer = self.link?.buffer, let header = try AMQPProtocolHeader.parse(buffer[...]) {
                self.link?.buffer.removeFirst(8)
                return header
            }
            try await self.fill(connection)
        }
    }

    private func readPerformative(_ connection: TLSConnection) async throws -> AMQPPerformative {
        while true {
            if let link = self.link, let (frame, size) = try link.framer.nextFrame(in: link.buffer[...]) {
                self.link?.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await self.fill(connection)
        }
    }

    private func fill(_ connection: TLSConnection) async throws {
        let chunk = try await connection.read(timeout: self.configuration.operationTimeout)
        guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
        self.link?.buffer += chunk
    }

    private func readLoop(_ connection: TLSConnection, generation: UInt64) async {
        self.link?.framer.maximumFrameSize = 65_536
        let silence = self.configuration.idleTimeout > .zero ? self.configuration.idleTimeout : nil
        do {
            while self.link?.generation == generation {
                // Decode every complete frame, then drop them from the buffer in one move.
                var consumed = 0
                while let link = self.link, link.generation == generation, let (frame, size) = try link.framer.nextFrame(in: link.buffer[consumed...]) {
                    consumed += size
                    if !frame.isHeartbeat { try self.handle(try AMQPPerformative.decode(frame.body)) }
                }
                if consumed > 0, self.link?.generation == generation { self.link?.buffer.removeFirst(consumed) }
                let chunk: [UInt8]
                do {
                    chunk = try await connection.read(timeout: silence)
                } catch let error as AzureIoTError where error.code == .timedOut {
                    throw HubAMQPError(.connectionClosed, "the peer sent nothing for longer than the idle time-out")
                }
                guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
                guard self.link?.generation == generation else { return }
                self.link?.buffer += chunk
            }
        } catch let error as HubAMQPError {
            self.linkLost(error, generation: generation)
        } catch {
            self.linkLost(HubAMQPError(.connectionClosed, "the connection failed: \(error)"), generation: generation)
        }
    }

    private func handle(_ performative: AMQPPerformative) throws {
        guard var link = self.link else { return }
        switch performative {
        case .open(let open):
            link.remoteOpened = true
            link.peerMaxFrameSize = Int(min(open.maxFrameSize ?? UInt32.max, 65_536))
            link.peerIdleTimeout = open.idleTimeOut
            self.link = link
            self.wakeHandshake()
        case .begin(let begin):
            link.remoteIncomingWindow = Int64(begin.incomingWindow)
            self.link = link
            self.pump()
        case .attach(let attach):
            // The peer's attach for our link carries the opposite role; a null terminus means refusal (a detach follows).
            let handle = attach.name.hasPrefix("$cbs")
                ? (attach.isReceiver ? Handle.cbsSender : Handle.cbsReceiver)
                : (attach.isReceiver ? Handle.sender : Handle.receiver)
            if (attach.isReceiver ? attach.target : attach.source) != nil {
                link.remoteAttached.insert(handle)
                link.ourHandle[attach.handle] = handle
                self.link = link
            }
            self.wakeHandshake()
        case .flow(let flow):
            let peerNextIncoming = Int64(flow.nextIncomingId ?? 0)
            link.remoteIncomingWindow = peerNextIncoming + Int64(flow.incomingWindow) - Int64(link.nextOutgoingId)
            if let handle = flow.handle, link.ourHandle[handle] == Handle.sender, let linkCredit = flow.linkCredit {
                let peerCount = flow.deliveryCount ?? link.deliveryCount
                link.credit = Int64(peerCount) + Int64(linkCredit) - Int64(link.deliveryCount)
            }
            self.link = link
            self.pump()
        case .disposition(let disposition):
            guard disposition.isReceiver else { return }
            for id in disposition.first...(disposition.last ?? disposition.first) {
                guard let sequence = self.link?.deliveries.removeValue(forKey: id), let pending = self.unsettled.removeValue(forKey: sequence) else { continue }
                switch disposition.state {
                case .accepted?, nil:
                    pending.waiter.resume()
                case .rejected(let error)?:
                    pending.waiter.resume(throwing: HubAMQPError(.rejected, "the message was rejected: \(error?.description ?? "no reason")", condition: error?.condition))
                case .released?:
                    pending.waiter.resume(throwing: HubAMQPError(.released, "the message was released"))
                case .modified?:
                    pending.waiter.resume(throwing: HubAMQPError(.modified, "the message was modified"))
                default:
                    pending.waiter.resume(throwing: HubAMQPError(.protocolViolation, "unexpected delivery state"))
                }
            }
        case .transfer(let transfer, let payload):
            try self.receive(transfer, payload: payload)
        case .detach(let detach):
            let which = link.ourHandle[detach.handle].flatMap { [Handle.sender: "telemetry", Handle.receiver: "cloud-to-device"][$0] } ?? "$cbs"
            throw HubAMQPError(.linkDetached, "the peer detached the \(which) link: \(detach.error?.description ?? "no reason")",
                               condition: detach.error?.condition)
        case .end(let end), .close(let end):
            throw HubAMQPError(.connectionClosed, "the peer closed the connection: \(end.error?.description ?? "no reason")",
                               condition: end.error?.condition)
        default:
            throw HubAMQPError(.protocolViolation, "unexpected \(performative) after the handshake")
        }
    }

    private func receive(_ transfer: AMQPTransfer, payload: [UInt8]) throws {
        guard var link = self.link else { return }
        guard let handle = link.ourHandle[transfer.handle], handle == Handle.receiver || handle == Handle.cbsReceiver else {
            throw HubAMQPError(.protocolViolation, "a transfer on an unknown link")
        }
        link.nextIncomingId &+= 1
        if var partial = link.partial {
            partial.payload += payload
            link.partial = partial
        } else {
            guard let id = transfer.deliveryId else { throw HubAMQPError(.protocolViolation, "a transfer without a delivery id") }
            link.partial = (handle, id, transfer.settled ?? false, payload)
        }
        guard transfer.more != true, let complete = link.partial else {
            self.link = link
            return
        }
        link.partial = nil
        let message = try AMQPMessage(decoding: complete.payload)
        if complete.handle == Handle.cbsReceiver {
            self.link = link
            if !complete.settled { self.write([.disposition(AMQPDisposition(isReceiver: true, first: complete.deliveryId, settled: true, state: .accepted))]) }
            if let response = CBSPutToken.response(message) { self.cbsWaiters.removeValue(forKey: response.requestId)?.resume(returning: response) }
            return
        }
        link.receivedCount &+= 1
        let id = complete.deliveryId
        let settled = complete.settled
        let generation = link.generation
        self.cloudToDevice.yield(CloudToDeviceDelivery(message: message) { [weak self] state in
            guard let self, !settled else { return }
            try await self.settle(id, state: state, generation: generation)
        })
        if Int64(link.grantedCredit) - Int64(link.receivedCount) < Int64(self.configuration.cloudToDeviceCredit / 2) {
            link.grantedCredit = link.receivedCount + self.configuration.cloudToDeviceCredit
            self.link = link
            self.write([.flow(self.flow(handle: Handle.receiver, deliveryCount: link.receivedCount, credit: self.configuration.cloudToDeviceCredit))])
        } else {
            self.link = link
        }
    }

    private func settle(_ id: UInt32, state: AMQPDeliveryState, generation: UInt64) throws {
        guard self.link?.generation == generation else {
            throw HubAMQPError(.notConnected, "the connection that delivered this message is gone; the hub delivers it again")
        }
        self.write([.disposition(AMQPDisposition(isReceiver: true, first: id, settled: true, state: state))])
    }

    private func flow(handle: UInt32, deliveryCount: UInt32, credit: UInt32) -> AMQPFlow {
        AMQPFlow(nextIncomingId: self.link?.nextIncomingId ?? 0, incomingWindow: 5000, nextOutgoingId: self.link?.nextOutgoingId ?? 0,
                 outgoingWindow: 5000, handle: handle, deliveryCount: deliveryCount, linkCredit: credit)
    }

    // MARK: - Sending

    func send(_ message: AMQPMessage) async throws {
        if let terminalError { throw terminalError }
        guard self.state != .idle else { throw HubAMQPError(.notConnected, "the client is not connected") }
        let payload = try message.encoded()
        self.nextSequence += 1
        let sequence = self.nextSequence
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.unsettled.removeValue(forKey: sequence)?.waiter.resume(throwing: HubAMQPError(.timedOut, "not settled within \(timeout)"))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                self.unsettled[sequence] = Pending(payload: payload, waiter: continuation)
                self.pump()
            }
        } onCancel: {
            Task { await self.cancelSend(sequence) }
        }
    }

    private func cancelSend(_ sequence: UInt64) {
        guard let pending = self.unsettled[sequence], pending.deliveryId == nil else { return }
        self.unsettled.removeValue(forKey: sequence)?.waiter.resume(throwing: CancellationError())
    }

    /// Transmits unsent messages, oldest first, while link credit and the peer's session window allow.
    private func pump() {
        guard self.state == .connected || self.state == .connecting, var link = self.link,
              link.remoteAttached.contains(Handle.sender) else { return }
        let chunkSize = max(64, link.peerMaxFrameSize - 8 - 64)
        for sequence in self.unsettled.keys.sorted() {
            guard let pending = self.unsettled[sequence], pending.deliveryId == nil else { continue }
            let frameCount = Int64(max(1, (pending.payload.count + chunkSize - 1) / chunkSize))
            guard link.credit > 0, link.remoteIncomingWindow >= frameCount else { break }
            link.credit -= 1
            link.deliveryCount &+= 1
            link.remoteIncomingWindow -= frameCount
            let id = link.nextDeliveryId
            link.nextDeliveryId &+= 1
            link.deliveries[id] = sequence
            self.unsettled[sequence]?.deliveryId = id
            self.link = link
            self.transmit(pending.payload, handle: Handle.sender, settled: false, deliveryId: id, chunkSize: chunkSize)
            link = self.link ?? link
        }
    }

    /// Writes one delivery as transfer frames of at most `chunkSize` payload bytes.
    private func transmit(_ payload: [UInt8]?, handle: UInt32, settled: Bool, deliveryId: UInt32? = nil, chunkSize: Int? = nil) {
        guard let payload, var link = self.link else { return }
        let id: UInt32
        if let deliveryId {
            id = deliveryId
        } else {
            id = link.nextDeliveryId
            link.nextDeliveryId &+= 1
        }
        let chunkSize = chunkSize ?? max(64, link.peerMaxFrameSize - 8 - 64)
        var bytes: [UInt8] = []
        var offset = 0
        repeat {
            let end = min(payload.count, offset + chunkSize)
            let first = offset == 0
            let transfer = AMQPTransfer(handle: handle, deliveryId: first ? id : nil,
                                        deliveryTag: first ? withUnsafeBytes(of: id.bigEndian, Array.init) : nil,
                                        messageFormat: first ? 0 : nil, settled: first ? settled : nil, more: end < payload.count ? true : nil)
            if let body = try? AMQPPerformative.transfer(transfer, payload: Array(payload[offset..<end])).encoded() {
                bytes += AMQPFrame(body: body).encoded
            }
            link.nextOutgoingId &+= 1
            offset = end
        } while offset < payload.count
        self.link = link
        link.writer.send(bytes)
    }

    private func write(_ performatives: [AMQPPerformative]) {
        guard let link = self.link else { return }
        var bytes: [UInt8] = []
        for performative in performatives {
            if let body = try? performative.encoded() { bytes += AMQPFrame(body: body).encoded }
        }
        link.writer.send(bytes)
    }

    private func heartbeats(every interval: Duration, generation: UInt64) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard let link = self.link, link.generation == generation else { return }
            link.writer.send(AMQPFrame(body: []).encoded)
        }
    }

    // MARK: - Losing, reconnecting and closing

    private func wakeHandshake() {
        let waiters = self.handshakeWaiters
        self.handshakeWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    /// The connection of `generation` failed: during `connect` the error goes to the caller; afterwards the session
    /// reconnects (if configured) and keeps unsettled messages for resending, or fails everything.
    private func linkLost(_ error: HubAMQPError, generation: UInt64, reconnect: Bool? = nil) {
        guard self.generation == generation, self.linkFailure == nil else { return }
        self.linkFailure = error
        self.logger.info("AMQP connection lost", metadata: ["error": "\(error)"])
        self.wakeHandshake()
        for (_, waiter) in self.cbsWaiters { waiter.resume(throwing: error) }
        self.cbsWaiters = [:]
        guard self.state == .connected else { return }
        self.tearDown()
        if reconnect ?? self.configuration.reconnects {
            self.state = .reconnecting
            let immediately = reconnect == true
            self.reconnectTask = Task { await self.reconnectLoop(immediately: immediately) }
        } else {
            self.finish(with: error)
        }
    }

    /// Drops the current connection and what belongs to it; unsettled messages become unsent.
    private func tearDown() {
        self.readerTask?.cancel()
        self.heartbeatTask?.cancel()
        self.renewalTask?.cancel()
        if let link = self.link {
            link.connection.close()
            Task { await link.writer.finish() }
        }
        self.link = nil
        for sequence in self.unsettled.keys { self.unsettled[sequence]?.deliveryId = nil }
    }

    private func reconnectLoop(immediately: Bool) async {
        var delay = self.configuration.reconnectMinimumDelay
        var first = true
        while self.state == .reconnecting, !Task.isCancelled {
            if !(first && immediately) { try? await Task.sleep(for: delay * Double.random(in: 0.8...1.2)) }
            first = false
            guard self.state == .reconnecting else { return }
            do {
                self.state = .connecting
                try await self.establish()
                self.state = .connected
                self.logger.info("AMQP reconnected", metadata: ["unsettled": "\(self.unsettled.count)"])
                self.pump()
                return
            } catch {
                guard self.state == .connecting else { return }
                self.state = .reconnecting
                self.logger.info("AMQP reconnect failed", metadata: ["error": "\(error)"])
                guard self.configuration.reconnects else {
                    // Only a token renewal reconnects when automatic reconnects are off; it gets one attempt.
                    self.finish(with: error as? HubAMQPError ?? HubAMQPError(.connectionClosed, "reconnecting failed: \(error)"))
                    return
                }
                delay = min(delay * 2, self.configuration.reconnectMaximumDelay)
            }
        }
    }

    private func finish(with error: HubAMQPError) {
        self.state = .closed
        self.terminalError = error
        let pending = self.unsettled
        self.unsettled = [:]
        for (_, entry) in pending { entry.waiter.resume(throwing: error) }
        self.cloudToDevice.finish()
    }

    func close() async {
        guard self.state != .closed else { return }
        let wasConnected = self.state == .connected
        self.reconnectTask?.cancel()
        if wasConnected, let link = self.link {
            self.write([.close(AMQPEndOrClose())])
            self.link = nil
            await link.writer.finish()
            self.link = link
        }
        self.generation += 1
        self.tearDown()
        self.finish(with: HubAMQPError(.notConnected, "the client was closed"))
    }
}
