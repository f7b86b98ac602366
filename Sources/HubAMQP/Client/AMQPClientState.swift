/// The links the IoT Hub client opens, named by the handles it gives them.
enum AMQPClientLink: UInt32, CaseIterable, Sendable {
    /// Sender to `/devices/{id}/messages/events`.
    case telemetry = 0
    /// Receiver from `/devices/{id}/messages/devicebound`.
    case cloudToDevice = 1
    /// Sender to `$cbs`.
    case cbsRequests = 2
    /// Receiver from `$cbs`.
    case cbsResponses = 3

    var isSender: Bool { self == .telemetry || self == .cbsRequests }
    var name: String {
        switch self {
        case .telemetry: "telemetry"
        case .cloudToDevice: "cloud-to-device"
        case .cbsRequests, .cbsResponses: "$cbs"
        }
    }
}

/// The protocol state of the client's AMQP connection, one session and its links, as a value: it takes the
/// performatives the peer sends and the application's requests, and returns what to do. No I/O, no clocks, so every
/// order a peer may send things in can be tested directly (`AMQPClientStateTests`).
///
/// Messages handed to ``enqueue(sequence:payload:)`` stay until the peer settles them; ``connectionLost()`` keeps them
/// and forgets their delivery ids, so that the next connection sends them again.
struct AMQPClientState: Sendable {
    /// What the driver must do.
    enum Action: Sendable, Equatable {
        /// Write these performatives, in order, on the session's channel (0).
        case write([AMQPPerformative])
        /// The peer settled the message `sequence`: accepted (`nil`) or the error for its outcome.
        case settled(sequence: UInt64, error: HubAMQPError?)
        /// A cloud-to-device message arrived (settle it with ``settle(_:state:)`` unless `settled`).
        case received(AMQPMessage, deliveryId: UInt32, settled: Bool)
        /// A message arrived on the `$cbs` receiver link.
        case cbsResponse(AMQPMessage)
        /// Open or attach progressed: re-check what you are waiting for.
        case progress
    }

    private enum LinkPhase: Equatable {
        case attachSent
        case attached
        case refused
    }

    private struct Outgoing {
        var payload: [UInt8]
        var deliveryId: UInt32?
    }

    let cloudToDeviceCredit: UInt32
    private(set) var remoteOpened = false
    private(set) var peerMaxFrameSize = 512
    private(set) var peerIdleTimeout: UInt32?
    private var beginReceived = false
    private var links: [AMQPClientLink: LinkPhase] = [:]
    private var remoteHandles: [UInt32: AMQPClientLink] = [:]

    // Sending on the telemetry and $cbs sender links.
    private var credit: [AMQPClientLink: Int64] = [:]
    private var deliveryCount: [AMQPClientLink: UInt32] = [:]
    private var nextDeliveryId: UInt32 = 0
    private var nextOutgoingId: UInt32 = 0
    private var remoteIncomingWindow: Int64 = 0
    private var outgoing: [UInt64: Outgoing] = [:]
    private var deliveries: [UInt32: UInt64] = [:]

    // Receiving on the cloud-to-device and $cbs receiver links.
    private var nextIncomingId: UInt32 = 0
    private var receivedCount: UInt32 = 0
    private var grantedCredit: UInt32 = 0
    private var partial: (link: AMQPClientLink, deliveryId: UInt32, settled: Bool, payload: [UInt8])?

    static let window: UInt32 = 5000

    init(cloudToDeviceCredit: UInt32) {
        self.cloudToDeviceCredit = cloudToDeviceCredit
    }

    // MARK: - What the driver asks

    /// Whether `link` is attached at both ends.
    func isAttached(_ link: AMQPClientLink) -> Bool { self.links[link] == .attached }

    /// How many messages wait for settlement.
    var unsettledCount: Int { self.outgoing.count }

    /// `open` and `begin`.
    mutating func open(containerId: String, hostname: String, idleTimeout: UInt32, properties: [AMQPMapEntry]) -> [Action] {
        [.write([
            .open(AMQPOpen(containerId: containerId, hostname: hostname, maxFrameSize: 65_536, channelMax: 0, idleTimeOut: idleTimeout, properties: properties)),
            .begin(AMQPBegin(nextOutgoingId: self.nextOutgoingId, incomingWindow: Self.window, outgoingWindow: Self.window)),
        ])]
    }

    /// Attaches `link` to `address`; receivers get their credit once the peer attaches.
    mutating func attach(_ link: AMQPClientLink, name: String, address: String, properties: [AMQPMapEntry]?) -> [Action] {
        self.links[link] = .attachSent
        let attach = link.isSender
            ? AMQPAttach(name: name, handle: link.rawValue, isReceiver: false, senderSettleMode: 0, receiverSettleMode: 0,
                         source: AMQPTerminus(address: link == .cbsRequests ? "$cbs" : "sender-source"), target: AMQPTerminus(address: address),
                         initialDeliveryCount: 0, properties: properties)
            : AMQPAttach(name: name, handle: link.rawValue, isReceiver: true, receiverSettleMode: 0, source: AMQPTerminus(address: address),
                         target: AMQPTerminus(address: link == .cbsResponses ? "cbs" : "receiver-target"), properties: properties)
        return [.write([.attach(attach)])]
    }

    /// Queues a message for the telemetry link; it is transmitted as soon as credit and the session window allow.
    mutating func enqueue(sequence: UInt64, payload: [UInt8]) -> [Action] {
        self.outgoing[sequence] = Outgoing(payload: payload)
        return self.pump()
    }

    /// Forgets a message that was never transmitted (`true`), e.g. when its sender was cancelled.
    mutating func withdraw(sequence: UInt64) -> Bool {
        guard let entry = self.outgoing[sequence], entry.deliveryId == nil else { return false }
        self.outgoing[sequence] = nil
        return true
    }

    /// Forgets a message whatever its state (its sender gave up waiting).
    mutating func abandon(sequence: UInt64) {
        if let id = self.outgoing.removeValue(forKey: sequence)?.deliveryId { self.deliveries[id] = nil }
    }

    /// Sends a pre-settled message on the `$cbs` request link (the answer arrives as ``Action/cbsResponse(_:)``).
    mutating func sendRequest(_ payload: [UInt8]) -> [Action] {
        guard (self.credit[.cbsRequests] ?? 0) > 0 else { return [] }
        self.credit[.cbsRequests, default: 0] -= 1
        self.deliveryCount[.cbsRequests, default: 0] &+= 1
        return [.write(self.transfers(payload, link: .cbsRequests, settled: true))]
    }

    /// Settles a received cloud-to-device message.
    func settle(_ deliveryId: UInt32, state: AMQPDeliveryState) -> [Action] {
        [.write([.disposition(AMQPDisposition(isReceiver: true, first: deliveryId, settled: true, state: state))])]
    }

    /// The connection is gone: everything but the queued messages is reset; transmitted messages become untransmitted.
    mutating func connectionLost() {
        let outgoing = self.outgoing
        self = AMQPClientState(cloudToDeviceCredit: self.cloudToDeviceCredit)
        self.outgoing = outgoing.mapValues { Outgoing(payload: $0.payload) }
    }

    // MARK: - What the peer sends

    /// Applies a performative from the peer. Throws ``HubAMQPError`` when the peer detaches a link, ends the session
    /// or closes the connection (with its condition and description), or breaks the protocol.
    mutating func receive(_ performative: AMQPPerformative) throws(HubAMQPError) -> [Action] {
        switch performative {
        case .open(let open):
            guard !self.remoteOpened else { throw HubAMQPError(.protocolViolation, "the peer sent open twice") }
            self.remoteOpened = true
            self.peerMaxFrameSize = Int(min(max(open.maxFrameSize ?? UInt32.max, 512), 65_536))
            self.peerIdleTimeout = open.idleTimeOut
            return [.progress]
        case .begin(let begin):
            guard self.remoteOpened else { throw HubAMQPError(.protocolViolation, "the peer sent begin before open") }
            self.beginReceived = true
            self.remoteIncomingWindow = Int64(begin.incomingWindow)
            self.nextIncomingId = begin.nextOutgoingId
            return self.pump() + [.progress]
        case .attach(let attach):
            guard self.beginReceived else { throw HubAMQPError(.protocolViolation, "the peer sent attach before begin") }
            return self.attached(attach)
        case .flow(let flow):
            guard self.beginReceived else { throw HubAMQPError(.protocolViolation, "the peer sent flow before begin") }
            let peerNextIncoming = Int64(flow.nextIncomingId ?? 0)
            self.remoteIncomingWindow = peerNextIncoming + Int64(flow.incomingWindow) - Int64(self.nextOutgoingId)
            if let handle = flow.handle, let link = self.remoteHandles[handle], link.isSender, let linkCredit = flow.linkCredit {
                let ours = self.deliveryCount[link] ?? 0
                self.credit[link] = Int64(flow.deliveryCount ?? ours) + Int64(linkCredit) - Int64(ours)
            }
            return self.pump()
        case .disposition(let disposition):
            guard disposition.isReceiver else { return [] }
            var actions: [Action] = []
            let last = max(disposition.first, disposition.last ?? disposition.first)
            guard last &- disposition.first < 1_000_000 else { throw HubAMQPError(.protocolViolation, "a disposition range is implausibly large") }
            for id in disposition.first...last {
                guard let sequence = self.deliveries.removeValue(forKey: id), self.outgoing.removeValue(forKey: sequence) != nil else { continue }
                actions.append(.settled(sequence: sequence, error: Self.error(for: disposition.state)))
            }
            return actions
        case .transfer(let transfer, let payload):
            return try self.received(transfer, payload: payload)
        case .detach(let detach):
            let link = self.remoteHandles[detach.handle]
            throw HubAMQPError(.linkDetached, "the peer detached the \(link?.name ?? "unknown") link: \(detach.error?.description ?? "no reason")",
                               condition: detach.error?.condition)
        case .end(let end):
            throw HubAMQPError(.connectionClosed, "the peer ended the session: \(end.error?.description ?? "no reason")", condition: end.error?.condition)
        case .close(let close):
            throw HubAMQPError(.connectionClosed, "the peer closed the connection: \(close.error?.description ?? "no reason")", condition: close.error?.condition)
        case .saslMechanisms, .saslInit, .saslChallenge, .saslResponse, .saslOutcome:
            throw HubAMQPError(.protocolViolation, "a SASL frame after the SASL exchange")
        }
    }

    private mutating func attached(_ attach: AMQPAttach) -> [Action] {
        // The peer's attach for our link carries the opposite role.
        let candidates = AMQPClientLink.allCases.filter { self.links[$0] == .attachSent && $0.isSender == attach.isReceiver }
        let link = candidates.first { ($0 == .cbsRequests || $0 == .cbsResponses) == attach.name.hasPrefix("$cbs") } ?? candidates.first
        guard let link else { return [] }
        self.remoteHandles[attach.handle] = link
        // A null terminus is a refusal; the peer's detach with the reason follows.
        guard (attach.isReceiver ? attach.target : attach.source) != nil else {
            self.links[link] = .refused
            return [.progress]
        }
        self.links[link] = .attached
        var actions: [Action] = [.progress]
        if link == .cloudToDevice {
            self.grantedCredit = self.cloudToDeviceCredit
            actions.insert(.write([.flow(self.flow(link, deliveryCount: 0, credit: self.cloudToDeviceCredit))]), at: 0)
        } else if link == .cbsResponses {
            actions.insert(.write([.flow(self.flow(link, deliveryCount: 0, credit: 100))]), at: 0)
        }
        return actions
    }

    private mutating func received(_ transfer: AMQPTransfer, payload: [UInt8]) throws(HubAMQPError) -> [Action] {
        guard let link = self.remoteHandles[transfer.handle], !link.isSender else {
            throw HubAMQPError(.protocolViolation, "a transfer on a link the client does not receive on")
        }
        self.nextIncomingId &+= 1
        if var partial = self.partial {
            guard partial.link == link else { throw HubAMQPError(.protocolViolation, "a transfer interleaved with another delivery's frames") }
            partial.payload += payload
            self.partial = partial
        } else {
            guard let id = transfer.deliveryId else { throw HubAMQPError(.protocolViolation, "a transfer without a delivery id") }
            self.partial = (link, id, transfer.settled ?? false, payload)
        }
        guard transfer.more != true, let complete = self.partial else { return [] }
        self.partial = nil
        let message: AMQPMessage
        do {
            message = try AMQPMessage(decoding: complete.payload)
        } catch {
            throw HubAMQPError(.protocolViolation, "a message that does not decode: \(error.message)")
        }
        if link == .cbsResponses {
            var actions: [Action] = [.cbsResponse(message)]
            if !complete.settled { actions.insert(contentsOf: self.settle(complete.deliveryId, state: .accepted), at: 0) }
            return actions
        }
        self.receivedCount &+= 1
        var actions: [Action] = [.received(message, deliveryId: complete.deliveryId, settled: complete.settled)]
        if Int64(self.grantedCredit) - Int64(self.receivedCount) < Int64(self.cloudToDeviceCredit / 2) {
            self.grantedCredit = self.receivedCount &+ self.cloudToDeviceCredit
            actions.append(.write([.flow(self.flow(.cloudToDevice, deliveryCount: self.receivedCount, credit: self.cloudToDeviceCredit))]))
        }
        return actions
    }

    // MARK: - Sending

    /// Transmits queued telemetry, oldest first, while link credit and the peer's session window allow.
    private mutating func pump() -> [Action] {
        guard self.isAttached(.telemetry), self.beginReceived else { return [] }
        var frames: [AMQPPerformative] = []
        let chunk = self.chunkSize
        for sequence in self.outgoing.keys.sorted() {
            guard let entry = self.outgoing[sequence], entry.deliveryId == nil else { continue }
            let frameCount = Int64(max(1, (entry.payload.count + chunk - 1) / chunk))
            guard (self.credit[.telemetry] ?? 0) > 0, self.remoteIncomingWindow >= frameCount else { break }
            self.credit[.telemetry, default: 0] -= 1
            self.deliveryCount[.telemetry, default: 0] &+= 1
            self.remoteIncomingWindow -= frameCount
            self.deliveries[self.nextDeliveryId] = sequence
            self.outgoing[sequence]?.deliveryId = self.nextDeliveryId
            frames += self.transfers(entry.payload, link: .telemetry, settled: false)
        }
        return frames.isEmpty ? [] : [.write(frames)]
    }

    /// The payload bytes per transfer frame: the peer's frame size less the frame header and a transfer performative.
    private var chunkSize: Int { max(64, self.peerMaxFrameSize - 8 - 64) }

    /// One delivery as transfer frames; takes the next delivery id and transfer ids.
    private mutating func transfers(_ payload: [UInt8], link: AMQPClientLink, settled: Bool) -> [AMQPPerformative] {
        let id = self.nextDeliveryId
        self.nextDeliveryId &+= 1
        let chunk = self.chunkSize
        var frames: [AMQPPerformative] = []
        var offset = 0
        repeat {
            let end = min(payload.count, offset + chunk)
            let first = offset == 0
            frames.append(.transfer(AMQPTransfer(
                handle: link.rawValue, deliveryId: first ? id : nil, deliveryTag: first ? withUnsafeBytes(of: id.bigEndian, Array.init) : nil,
                messageFormat: first ? 0 : nil, settled: first ? settled : nil, more: end < payload.count ? true : nil
            ), payload: Array(payload[offset..<end])))
            self.nextOutgoingId &+= 1
            offset = end
        } while offset < payload.count
        return frames
    }

    private func flow(_ link: AMQPClientLink, deliveryCount: UInt32, credit: UInt32) -> AMQPFlow {
        AMQPFlow(nextIncomingId: self.nextIncomingId, incomingWindow: Self.window, nextOutgoingId: self.nextOutgoingId,
                 outgoingWindow: Self.window, handle: link.rawValue, deliveryCount: deliveryCount, linkCredit: credit)
    }

    private static func error(for state: AMQPDeliveryState?) -> HubAMQPError? {
        switch state {
        case .accepted?, nil:
            return nil
        case .rejected(let error)?:
            return HubAMQPError(.rejected, "the message was rejected: \(error?.description ?? "no reason")", condition: error?.condition)
        case .released?:
            return HubAMQPError(.released, "the message was released")
        case .modified?:
            return HubAMQPError(.modified, "the message was modified")
        case .received?:
            return HubAMQPError(.protocolViolation, "a terminal disposition with the non-terminal state 'received'")
        }
    }
}
