import AzureIoTCore
import Foundation
import Logging

/// The AMQP connection behind ``HubAMQPClient``: SASL PLAIN, one session, a sender link for telemetry and a
/// receiver link for cloud-to-device messages, with link credit, settlement and transfer fragmentation.
actor HubAMQPSession {
    private enum Handle {
        static let sender: UInt32 = 0
        static let receiver: UInt32 = 1
    }

    private let configuration: HubAMQPConfiguration
    private let logger: Logger
    private let cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation

    private var connection: TLSConnection?
    private var buffer: [UInt8] = []
    private var framer = AMQPFramer()
    private var peerMaxFrameSize = 512
    private var peerIdleTimeout: UInt32?
    private var closed = false

    // Sender link
    private var credit: Int64 = 0
    private var deliveryCount: UInt32 = 0
    /// The next delivery id on the sender link.
    private var nextDeliveryId: UInt32 = 0
    /// The session's next-outgoing-id: one per transfer frame sent.
    private var nextOutgoingId: UInt32 = 0
    /// How many more transfer frames the peer's session accepts (its incoming window).
    private var remoteIncomingWindow: Int64 = 0
    private var pendingSettlements: [UInt32: CheckedContinuation<Void, any Error>] = [:]
    private var creditWaiters: [CheckedContinuation<Void, any Error>] = []

    // Receiver link
    private var nextIncomingId: UInt32 = 0
    private var receivedCount: UInt32 = 0
    private var grantedCredit: UInt32 = 0
    private var partial: (deliveryId: UInt32, settled: Bool, payload: [UInt8])?

    // Handshake waiters
    private var remoteOpened = false
    private var remoteAttached: Set<UInt32> = []
    private var refusedLinks: Set<UInt32> = []
    private var handshakeWaiters: [CheckedContinuation<Void, any Error>] = []
    private var failure: HubAMQPError?

    private var readerTask: Task<Void, Never>?
    private var heartbeatTask: Task<Void, Never>?

    init(configuration: HubAMQPConfiguration, logger: Logger, cloudToDevice: AsyncStream<CloudToDeviceDelivery>.Continuation) {
        self.configuration = configuration
        self.logger = logger
        self.cloudToDevice = cloudToDevice
    }

    // MARK: - Connecting

    func connect() async throws {
        let tls = TLSConfiguration(trustRoots: self.configuration.trustRoots, connectTimeout: self.configuration.operationTimeout)
        let host = self.configuration.gatewayHostName ?? self.configuration.hubHost
        let connection = try await TLSConnection.connect(host: host, port: self.configuration.port, configuration: tls, logger: self.logger)
        self.connection = connection
        do {
            try await self.authenticate(connection)
            try await self.openConnection(connection)
        } catch {
            connection.close()
            self.connection = nil
            throw error
        }
    }

    private func authenticate(_ connection: TLSConnection) async throws {
        try await connection.write(AMQPProtocolHeader.sasl.bytes)
        guard try await self.readProtocolHeader(connection) == .sasl else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the SASL protocol header")
        }
        guard case .saslMechanisms(let mechanisms) = try await self.readPerformative(connection) else {
            throw HubAMQPError(.protocolViolation, "expected sasl-mechanisms")
        }
        guard mechanisms.mechanisms.contains("PLAIN") else {
            throw HubAMQPError(.authenticationFailed, "the peer does not offer SASL PLAIN (offers \(mechanisms.mechanisms))")
        }
        let issued = try self.configuration.tokenSource.issueToken(for: self.configuration.sasResource)
        let credentials = SASLPlainCredentials(
            deviceId: self.configuration.deviceId, moduleId: self.configuration.moduleId, hubHost: self.configuration.hubHost, token: issued.token
        )
        let initFrame = AMQPFrame(type: .sasl, body: try AMQPPerformative.saslInit(
            SASLInit(mechanism: "PLAIN", initialResponse: credentials.initialResponse, hostname: self.configuration.hubHost)
        ).encoded())
        try await connection.write(initFrame.encoded)
        guard case .saslOutcome(let outcome) = try await self.readPerformative(connection) else {
            throw HubAMQPError(.protocolViolation, "expected sasl-outcome")
        }
        guard outcome.code == .ok else {
            throw HubAMQPError(.authenticationFailed, "SASL PLAIN as \(credentials.authenticationId) was refused: \(outcome.code)")
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes)
        guard try await self.readProtocolHeader(connection) == .amqp else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the AMQP protocol header")
        }
    }

    private func openConnection(_ connection: TLSConnection) async throws {
        let properties = [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(self.configuration.clientVersion))]
        let linkProperties = properties + [AMQPMapEntry(.symbol("com.microsoft:api-version"), .string(self.configuration.apiVersion))]
        let idle = UInt32(clamping: self.configuration.idleTimeout.components.seconds * 1000)
        let frames: [AMQPPerformative] = [
            .open(AMQPOpen(containerId: "\(self.configuration.deviceId)-\(UUID().uuidString)", hostname: self.configuration.hubHost,
                           maxFrameSize: 65_536, channelMax: 0, idleTimeOut: idle, properties: properties)),
            .begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 5000)),
            .attach(AMQPAttach(name: "sender-\(UUID().uuidString)", handle: Handle.sender, isReceiver: false, senderSettleMode: 0,
                               receiverSettleMode: 0, source: AMQPTerminus(address: "sender-source"),
                               target: AMQPTerminus(address: self.configuration.telemetryAddress), initialDeliveryCount: 0,
                               properties: linkProperties)),
            .attach(AMQPAttach(name: "receiver-\(UUID().uuidString)", handle: Handle.receiver, isReceiver: true, receiverSettleMode: 0,
                               source: AMQPTerminus(address: self.configuration.cloudToDeviceAddress),
                               target: AMQPTerminus(address: "receiver-target"), properties: linkProperties)),
        ]
        var bytes: [UInt8] = []
        for frame in frames { bytes += AMQPFrame(body: try frame.encoded()).encoded }
        try await connection.write(bytes)
        self.readerTask = Task { await self.readLoop(connection) }
        try await self.waitForHandshake()
        self.grantedCredit = self.configuration.cloudToDeviceCredit
        try await self.sendFrame(.flow(self.flow(handle: Handle.receiver, deliveryCount: 0, credit: self.grantedCredit)))
        if let idle = self.peerIdleTimeout, idle > 0 {
            let interval = Duration.milliseconds(Int64(idle / 2))
            self.heartbeatTask = Task { await self.heartbeats(every: interval) }
        }
    }

    private func waitForHandshake() async throws {
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.fail(HubAMQPError(.timedOut, "the peer did not open the connection and links within \(timeout)"))
        }
        defer { timer.cancel() }
        while !(self.remoteOpened && self.remoteAttached.isSuperset(of: [Handle.sender, Handle.receiver])) {
            if let failure = self.failure { throw failure }
            try await withCheckedThrowingContinuation { self.handshakeWaiters.append($0) }
        }
        if let failure = self.failure { throw failure }
    }

    private func readProtocolHeader(_ connection: TLSConnection) async throws -> AMQPProtocolHeader {
        while true {
            if let header = try AMQPProtocolHeader.parse(self.buffer[...]) {
                self.buffer.removeFirst(8)
                return header
            }
            try await self.fill(connection)
        }
    }

    private func readPerformative(_ connection: TLSConnection) async throws -> AMQPPerformative {
        while true {
            if let (frame, size) = try self.framer.nextFrame(in: self.buffer[...]) {
                self.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await self.fill(connection)
        }
    }

    private func fill(_ connection: TLSConnection) async throws {
        let chunk = try await connection.read(timeout: self.configuration.operationTimeout)
        guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
        self.buffer += chunk
    }

    // MARK: - Reading

    private func readLoop(_ connection: TLSConnection) async {
        self.framer.maximumFrameSize = 65_536
        do {
            while true {
                // Decode every complete frame, then drop them from the buffer in one move.
                var consumed = 0
                while let (frame, size) = try self.framer.nextFrame(in: self.buffer[consumed...]) {
                    consumed += size
                    if !frame.isHeartbeat { try self.handle(try AMQPPerformative.decode(frame.body)) }
                }
                if consumed > 0 { self.buffer.removeFirst(consumed) }
                let chunk = try await connection.read()
                guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
                self.buffer += chunk
            }
        } catch let error as HubAMQPError {
            self.fail(error)
        } catch {
            self.fail(HubAMQPError(.connectionClosed, "the connection failed: \(error)"))
        }
    }

    private func handle(_ performative: AMQPPerformative) throws {
        switch performative {
        case .open(let open):
            self.remoteOpened = true
            self.peerMaxFrameSize = Int(min(open.maxFrameSize ?? UInt32.max, 65_536))
            self.peerIdleTimeout = open.idleTimeOut
            self.wakeHandshake()
        case .begin(let begin):
            self.remoteIncomingWindow = Int64(begin.incomingWindow)
            self.wakeSenders()
        case .attach(let attach):
            // The peer's attach for our link carries the opposite role; a null terminus means refusal (a detach follows).
            let handle = attach.isReceiver ? Handle.sender : Handle.receiver
            let terminus = attach.isReceiver ? attach.target : attach.source
            if terminus == nil {
                // Refused: the peer's detach with the reason follows; the handshake waits for it.
                self.refusedLinks.insert(handle)
            } else {
                self.remoteAttached.insert(handle)
            }
            self.wakeHandshake()
        case .flow(let flow):
            let peerNextIncoming = Int64(flow.nextIncomingId ?? 0)
            self.remoteIncomingWindow = peerNextIncoming + Int64(flow.incomingWindow) - Int64(self.nextOutgoingId)
            if flow.handle == Handle.sender, let linkCredit = flow.linkCredit {
                let peerCount = flow.deliveryCount ?? self.deliveryCount
                self.credit = Int64(peerCount) + Int64(linkCredit) - Int64(self.deliveryCount)
            }
            self.wakeSenders()
        case .disposition(let disposition):
            guard disposition.isReceiver else { return }
            for id in disposition.first...(disposition.last ?? disposition.first) {
                guard let waiter = self.pendingSettlements.removeValue(forKey: id) else { continue }
                switch disposition.state {
                case .accepted?, nil:
                    waiter.resume()
                case .rejected(let error)?:
                    waiter.resume(throwing: HubAMQPError(.rejected, "the message was rejected: \(error?.description ?? "no reason")", condition: error?.condition))
                case .released?:
                    waiter.resume(throwing: HubAMQPError(.released, "the message was released"))
                case .modified?:
                    waiter.resume(throwing: HubAMQPError(.modified, "the message was modified"))
                default:
                    waiter.resume(throwing: HubAMQPError(.protocolViolation, "unexpected delivery state"))
                }
            }
        case .transfer(let transfer, let payload):
            try self.receive(transfer, payload: payload)
        case .detach(let detach):
            let which = detach.handle == Handle.sender ? "telemetry" : "cloud-to-device"
            self.fail(HubAMQPError(.linkDetached, "the peer detached the \(which) link: \(detach.error?.description ?? "no reason")",
                                   condition: detach.error?.condition))
        case .end(let end), .close(let end):
            self.fail(HubAMQPError(.connectionClosed, "the peer closed the connection: \(end.error?.description ?? "no reason")",
                                   condition: end.error?.condition))
        default:
            throw HubAMQPError(.protocolViolation, "unexpected \(performative) after the handshake")
        }
    }

    private func receive(_ transfer: AMQPTransfer, payload: [UInt8]) throws {
        guard transfer.handle == Handle.receiver else { throw HubAMQPError(.protocolViolation, "a transfer on an unknown link") }
        if var partial = self.partial {
            partial.payload += payload
            self.partial = partial
        } else {
            guard let id = transfer.deliveryId else { throw HubAMQPError(.protocolViolation, "a transfer without a delivery id") }
            self.partial = (id, transfer.settled ?? false, payload)
            self.nextIncomingId = id &+ 1
        }
        guard transfer.more != true, let complete = self.partial else { return }
        self.partial = nil
        self.receivedCount &+= 1
        let message = try AMQPMessage(decoding: complete.payload)
        let id = complete.deliveryId
        let settled = complete.settled
        self.cloudToDevice.yield(CloudToDeviceDelivery(message: message) { [weak self] state in
            guard let self, !settled else { return }
            try await self.settle(id, state: state)
        })
        if self.grantedCredit - self.receivedCount < self.configuration.cloudToDeviceCredit / 2 {
            self.grantedCredit = self.receivedCount + self.configuration.cloudToDeviceCredit
            Task { try? await self.sendFrame(.flow(self.flow(handle: Handle.receiver, deliveryCount: self.receivedCount,
                                                             credit: self.configuration.cloudToDeviceCredit))) }
        }
    }

    private func settle(_ id: UInt32, state: AMQPDeliveryState) async throws {
        try await self.sendFrame(.disposition(AMQPDisposition(isReceiver: true, first: id, settled: true, state: state)))
    }

    private func flow(handle: UInt32, deliveryCount: UInt32, credit: UInt32) -> AMQPFlow {
        AMQPFlow(nextIncomingId: self.nextIncomingId, incomingWindow: 5000, nextOutgoingId: self.nextOutgoingId, outgoingWindow: 5000,
                 handle: handle, deliveryCount: deliveryCount, linkCredit: credit)
    }

    // MARK: - Sending

    /// Resumes senders waiting for link credit or session window.
    private func wakeSenders() {
        let waiters = self.creditWaiters
        self.creditWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    func send(_ message: AMQPMessage) async throws {
        guard let connection = self.connection, self.failure == nil else {
            throw self.failure ?? HubAMQPError(.notConnected, "the client is not connected")
        }
        let payload = try message.encoded()
        let chunkSize = max(64, self.peerMaxFrameSize - 8 - 64)
        let frameCount = Int64(max(1, (payload.count + chunkSize - 1) / chunkSize))
        if self.credit <= 0 || self.remoteIncomingWindow < frameCount {
            let timeout = self.configuration.operationTimeout
            let timer = Task {
                try await Task.sleep(for: timeout)
                self.expireCreditWaiters(after: timeout)
            }
            defer { timer.cancel() }
            while self.credit <= 0 || self.remoteIncomingWindow < frameCount {
                try await withCheckedThrowingContinuation { self.creditWaiters.append($0) }
                if let failure = self.failure { throw failure }
            }
        }
        self.credit -= 1
        self.deliveryCount &+= 1
        self.remoteIncomingWindow -= frameCount
        self.nextOutgoingId &+= UInt32(frameCount)
        let id = self.nextDeliveryId
        self.nextDeliveryId &+= 1
        var bytes: [UInt8] = []
        var offset = 0
        repeat {
            let end = min(payload.count, offset + chunkSize)
            let first = offset == 0
            let transfer = AMQPTransfer(handle: Handle.sender, deliveryId: first ? id : nil,
                                        deliveryTag: first ? withUnsafeBytes(of: id.bigEndian, Array.init) : nil,
                                        messageFormat: first ? 0 : nil, settled: first ? false : nil, more: end < payload.count ? true : nil)
            bytes += AMQPFrame(body: try AMQPPerformative.transfer(transfer, payload: Array(payload[offset..<end])).encoded()).encoded
            offset = end
        } while offset < payload.count
        let timeout = self.configuration.operationTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.pendingSettlements.removeValue(forKey: id)?.resume(throwing: HubAMQPError(.timedOut, "no disposition within \(timeout)"))
        }
        defer { timer.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            self.pendingSettlements[id] = continuation
            Task {
                do { try await connection.write(bytes) } catch {
                    self.fail(HubAMQPError(.connectionClosed, "write failed: \(error)"))
                }
            }
        }
    }

    private func expireCreditWaiters(after timeout: Duration) {
        let waiters = self.creditWaiters
        self.creditWaiters = []
        for waiter in waiters { waiter.resume(throwing: HubAMQPError(.timedOut, "the peer granted no link credit or session window within \(timeout)")) }
    }

    private func sendFrame(_ performative: AMQPPerformative) async throws {
        guard let connection = self.connection else { throw HubAMQPError(.notConnected, "the client is not connected") }
        try await connection.write(AMQPFrame(body: try performative.encoded()).encoded)
    }

    private func heartbeats(every interval: Duration) async {
        while !Task.isCancelled, let connection = self.connection {
            try? await Task.sleep(for: interval)
            try? await connection.write(AMQPFrame(body: []).encoded)
        }
    }

    // MARK: - Failing and closing

    private func wakeHandshake() {
        let waiters = self.handshakeWaiters
        self.handshakeWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    private func fail(_ error: HubAMQPError) {
        guard self.failure == nil else { return }
        self.failure = error
        self.logger.info("AMQP connection failed", metadata: ["error": "\(error)"])
        self.wakeHandshake()
        for (_, waiter) in self.pendingSettlements { waiter.resume(throwing: error) }
        self.pendingSettlements = [:]
        for waiter in self.creditWaiters { waiter.resume(throwing: error) }
        self.creditWaiters = []
        self.heartbeatTask?.cancel()
        self.connection?.close()
        self.cloudToDevice.finish()
    }

    func close() async {
        guard let connection = self.connection, !self.closed else { return }
        self.closed = true
        try? await connection.write(AMQPFrame(body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? []).encoded, timeout: .seconds(2))
        self.fail(HubAMQPError(.notConnected, "the client was closed"))
        self.readerTask?.cancel()
    }
}
