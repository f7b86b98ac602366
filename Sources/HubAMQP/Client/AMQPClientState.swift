/// A link the client opens: a device identity's telemetry or cloud-to-device link (identities are numbered by slot,
/// several share one connection through CBS), or one of the two `$cbs` links.
enum AMQPClientLink: Hashable, Sendable {
    /// Sender to `/devices/{id}/messages/events` for the identity in `slot`.
    case telemetry(Int)
    /// Receiver from `/devices/{id}/messages/devicebound` for the identity in `slot`.
    case cloudToDevice(Int)
    /// Sender to `$cbs`.
    case cbsRequests
    /// Receiver from `$cbs`.
    case cbsResponses
    /// Sender of twin requests to `/devices/{id}/twin` for the identity in `slot`.
    case twinRequests(Int)
    /// Receiver of twin answers and desired-property patches from `/devices/{id}/twin`.
    case twinResponses(Int)
    /// Receiver of direct-method calls from `/devices/{id}/methods/devicebound`.
    case methodRequests(Int)
    /// Sender of direct-method answers to `/devices/{id}/methods/devicebound`.
    case methodResponses(Int)

    var isSender: Bool {
        switch self {
        case .telemetry, .cbsRequests, .twinRequests, .methodResponses: true
        case .cloudToDevice, .cbsResponses, .twinResponses, .methodRequests: false
        }
    }

    /// The identity slot whose traffic the link carries (`nil` for `$cbs`).
    var slot: Int? {
        switch self {
        case .telemetry(let slot), .cloudToDevice(let slot), .twinRequests(let slot), .twinResponses(let slot),
            .methodRequests(let slot), .methodResponses(let slot):
            slot
        case .cbsRequests, .cbsResponses:
            nil
        }
    }

    var name: String {
        switch self {
        case .telemetry: "telemetry"
        case .cloudToDevice: "cloud-to-device"
        case .cbsRequests, .cbsResponses: "$cbs"
        case .twinRequests, .twinResponses: "twin"
        case .methodRequests, .methodResponses: "methods"
        }
    }

    /// The local terminus address: what the Azure SDKs name their end of the link.
    var localAddress: String {
        switch self {
        case .cbsRequests: "$cbs"
        case .cbsResponses: "cbs"
        case .methodRequests: "requests"
        case .methodResponses: "responses"
        case .telemetry, .twinRequests: "sender-source"
        case .cloudToDevice, .twinResponses: "receiver-target"
        }
    }

    /// Request/response links send pre-settled messages: the answer is the acknowledgement.
    var sendsSettled: Bool {
        switch self {
        case .twinRequests, .methodResponses: true
        default: false
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
        /// Write these bytes: whole transfer frames, encoded on the hot path (`AMQPTransferFrame`).
        case writeFrames([UInt8])
        /// The peer settled the message `sequence`: accepted (`nil`) or the error for its outcome.
        case settled(sequence: UInt64, error: HubAMQPError?)
        /// A cloud-to-device message arrived for the identity in `slot` (settle it with ``settle(_:state:)`` unless
        /// `settled`).
        case received(AMQPMessage, deliveryId: UInt32, settled: Bool, slot: Int)
        /// A message arrived on a receiver link other than cloud-to-device (`$cbs`, twin, methods); it was settled.
        case message(AMQPMessage, link: AMQPClientLink)
        /// Open or attach progressed: re-check what you are waiting for.
        case progress
        /// The peer detached a link of the identity in `slot` (refused, or stolen by another connection for the same
        /// identity): every link of that identity is gone, the rest of the connection stays (only when
        /// ``isolatesIdentities`` is set; otherwise such a detach ends the connection).
        case identityDetached(slot: Int, error: HubAMQPError)
    }

    private enum LinkPhase: Equatable {
        case attachSent
        case attached
        case refused
    }

    private struct Outgoing {
        var slot: Int
        var payload: OutgoingPayload
        var deliveryId: UInt32?
    }

    /// What a queued message goes out as.
    private enum OutgoingPayload {
        /// Bytes, split into transfer frames of the peer's size.
        case bytes([UInt8])
        /// A message, encoded straight into its transfer frame each time it is transmitted (`size`: its bytes), so
        /// that no copy of its bytes is kept while it waits for settlement.
        case message(AMQPMessage, size: Int)

        var count: Int {
            switch self {
            case .bytes(let bytes): bytes.count
            case .message(_, let size): size
            }
        }
    }

    /// One attached (or attaching) link, by our handle.
    private struct Link {
        let kind: AMQPClientLink
        var phase: LinkPhase
        /// Senders: credit left and deliveries sent. Receivers: deliveries received and credit granted in total.
        var credit: Int64 = 0
        var deliveryCount: UInt32 = 0
        var grantedCredit: UInt32 = 0
        /// Receivers of cloud-to-device messages: deliveries handed to the application and not yet settled by it.
        /// Credit is only granted for what the window leaves beside them, so an application that does not settle
        /// stops the flow instead of filling memory.
        var unsettled: UInt32 = 0
    }

    let cloudToDeviceCredit: UInt32
    /// Whether a detached identity link costs only that identity its links (a gateway with several identities), not
    /// the connection.
    let isolatesIdentities: Bool
    private(set) var remoteOpened = false
    private(set) var peerMaxFrameSize = 512
    private(set) var peerIdleTimeout: UInt32?
    private var beginReceived = false
    private var links: [UInt32: Link] = [:]
    private var handles: [AMQPClientLink: UInt32] = [:]
    private var handlesByName: [String: UInt32] = [:]
    private var remoteHandles: [UInt32: UInt32] = [:]
    private var nextHandle: UInt32 = 0

    // Sending.
    private var nextDeliveryId: UInt32 = 0
    private var nextOutgoingId: UInt32 = 0
    private var remoteIncomingWindow: Int64 = 0
    private var outgoing: [UInt64: Outgoing] = [:]
    /// Per identity slot, the sequences not yet transmitted, oldest first (entries already withdrawn are skipped).
    private var untransmitted: [Int: SequenceQueue] = [:]
    /// The delivery tag being written (the delivery id, 4 bytes), reused so that a transfer allocates no tag.
    private var tagBuffer: [UInt8] = [0, 0, 0, 0]
    private var deliveries: [UInt32: UInt64] = [:]
    /// Received cloud-to-device deliveries the application has not settled yet, with their link.
    private var receivedUnsettled: [UInt32: UInt32] = [:]

    // Receiving.
    private var nextIncomingId: UInt32 = 0
    private var partial: (handle: UInt32, deliveryId: UInt32, settled: Bool, payload: [UInt8])?
    /// The peer's handles of links dropped with their identity, whose detach may still come.
    private var droppedRemoteHandles: Set<UInt32> = []
    /// Requests (`$cbs`, twin, method answers) waiting for their link's credit, oldest first.
    private var pendingRequests: [AMQPClientLink: [[UInt8]]] = [:]
    /// The most requests one link holds back while the peer grants no credit; more are refused.
    static let maximumPendingRequests = 64

    /// The largest delivery the client reassembles: IoT Hub's 256 KB and room for the message's sections.
    static let maximumMessageBytes = 256 * 1024 + 16 * 1024

    static let window: UInt32 = 5000

    init(cloudToDeviceCredit: UInt32, isolatesIdentities: Bool = false) {
        self.cloudToDeviceCredit = cloudToDeviceCredit
        self.isolatesIdentities = isolatesIdentities
    }

    // MARK: - What the driver asks

    /// Whether `link` is attached at both ends.
    func isAttached(_ link: AMQPClientLink) -> Bool {
        self.handles[link].flatMap { self.links[$0]?.phase } == .attached
    }

    /// Whether `link` was attached, or its attach sent, on this connection.
    func hasLink(_ link: AMQPClientLink) -> Bool { self.handles[link] != nil }

    /// Whether `link` was refused by the peer.
    func isRefused(_ link: AMQPClientLink) -> Bool { self.handles[link].flatMap { self.links[$0]?.phase } == .refused }

    /// How many messages wait for settlement.
    var unsettledCount: Int { self.outgoing.count }

    /// Set while a planned reconnect drains the connection: queued messages wait for the next connection, so that
    /// a token renewal sends nothing twice. A new connection (``connectionLost()``) clears it.
    private(set) var isDraining = false

    /// Messages transmitted on this connection and not yet settled by the peer.
    var inFlightCount: Int { self.outgoing.values.reduce(0) { $0 + ($1.deliveryId == nil ? 0 : 1) } }

    /// Stops transmitting queued messages until the next connection.
    mutating func startDraining() { self.isDraining = true }

    /// `open` and `begin`.
    mutating func open(containerId: String, hostname: String, idleTimeout: UInt32, properties: [AMQPMapEntry])
        -> [Action]
    {
        [
            .write([
                .open(
                    AMQPOpen(
                        containerId: containerId,
                        hostname: hostname,
                        maxFrameSize: 65_536,
                        channelMax: 0,
                        idleTimeOut: idleTimeout,
                        properties: properties
                    )
                ),
                .begin(
                    AMQPBegin(
                        nextOutgoingId: self.nextOutgoingId,
                        incomingWindow: Self.window,
                        outgoingWindow: Self.window
                    )
                ),
            ])
        ]
    }

    /// Attaches `link` to `address`; receivers get their credit once the peer attaches.
    /// `name` must be unique on the connection: the peer's attach is matched to ours by it. A receiver's `filter` goes
    /// into its source terminus (Event Hubs' selector filter).
    mutating func attach(
        _ link: AMQPClientLink,
        name: String,
        address: String,
        properties: [AMQPMapEntry]?,
        filter: [AMQPMapEntry]? = nil
    ) -> [Action] {
        let handle = self.nextHandle
        self.nextHandle += 1
        self.links[handle] = Link(kind: link, phase: .attachSent)
        self.handles[link] = handle
        self.handlesByName[name] = handle
        let attach =
            link.isSender
            ? AMQPAttach(
                name: name,
                handle: handle,
                isReceiver: false,
                senderSettleMode: link.sendsSettled ? 1 : 0,
                receiverSettleMode: 0,
                source: AMQPTerminus(address: link.localAddress),
                target: AMQPTerminus(address: address),
                initialDeliveryCount: 0,
                properties: properties
            )
            : AMQPAttach(
                name: name,
                handle: handle,
                isReceiver: true,
                receiverSettleMode: 0,
                // filter is the source's eighth field: six absent ones between it and the address.
                source: AMQPTerminus(
                    address: address,
                    otherFields: filter.map { Array(repeating: .null, count: 6) + [.map($0)] } ?? []
                ),
                target: AMQPTerminus(address: link.localAddress),
                properties: properties
            )
        return [.write([.attach(attach)])]
    }

    /// Queues a message for the telemetry link of the identity in `slot`; it is transmitted as soon as that link's
    /// credit and the session window allow.
    mutating func enqueue(sequence: UInt64, payload: [UInt8], slot: Int = 0) -> [Action] {
        var frames: [UInt8] = []
        self.enqueue(sequence: sequence, payload: payload, slot: slot, into: &frames)
        return frames.isEmpty ? [] : [.writeFrames(frames)]
    }

    /// ``enqueue(sequence:payload:slot:)`` for the hot path: the transfer frames to write are appended to `frames`
    /// (a buffer the driver reuses) instead of coming back as an action, so a send allocates nothing here.
    mutating func enqueue(sequence: UInt64, payload: [UInt8], slot: Int = 0, into frames: inout [UInt8]) {
        self.outgoing[sequence] = Outgoing(slot: slot, payload: .bytes(payload))
        self.untransmitted[slot, default: SequenceQueue()].append(sequence)
        self.pump(into: &frames)
    }

    /// ``enqueue(sequence:payload:slot:into:)`` for a message that is kept as it is and encoded straight into its
    /// transfer frame whenever it is transmitted: a send allocates nothing here (a message larger than a frame is
    /// encoded once more, into bytes, to be split). Throws, queueing nothing, when `message` cannot be encoded.
    mutating func enqueue(
        sequence: UInt64,
        message: AMQPMessage,
        slot: Int = 0,
        into frames: inout [UInt8]
    ) throws(AMQPCodecError) {
        // Encoded once here to check it and learn its size, then dropped again (the buffer keeps its storage).
        let start = frames.count
        try message.encode(appendingTo: &frames)
        let size = frames.count - start
        frames.removeSubrange(start...)
        self.outgoing[sequence] = Outgoing(slot: slot, payload: .message(message, size: size))
        self.untransmitted[slot, default: SequenceQueue()].append(sequence)
        self.pump(into: &frames)
    }

    /// Forgets every link of the identity in `slot` (detaching those the peer has not) and its queued messages,
    /// whose sequences the driver fails.
    private mutating func dropIdentity(_ slot: Int, error: HubAMQPError) -> [Action] {
        var frames: [AMQPPerformative] = []
        for (kind, handle) in self.handles.filter({ $0.key.slot == slot }).sorted(by: { $0.value < $1.value }) {
            self.handles[kind] = nil
            if let remote = self.remoteHandles.first(where: { $0.value == handle })?.key {
                self.remoteHandles[remote] = nil
                self.droppedRemoteHandles.insert(remote)
            }
            self.handlesByName = self.handlesByName.filter { $0.value != handle }
            self.links[handle] = nil
            frames.append(.detach(AMQPDetach(handle: handle, closed: true)))
            self.pendingRequests[kind] = nil
        }
        self.receivedUnsettled = self.receivedUnsettled.filter { self.links[$0.value] != nil }
        var actions: [Action] = frames.isEmpty ? [] : [.write(frames)]
        for (sequence, entry) in self.outgoing where entry.slot == slot {
            self.outgoing[sequence] = nil
            if let id = entry.deliveryId { self.deliveries[id] = nil }
            actions.append(.settled(sequence: sequence, error: error))
        }
        self.untransmitted[slot] = nil
        actions.append(.identityDetached(slot: slot, error: error))
        return actions + [.progress]
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

    /// Sends a pre-settled message on a request link (`$cbs`, twin, method answers) as soon as it has credit; the
    /// answer arrives as ``Action/message(_:link:)``. Returns `nil` when more than
    /// ``maximumPendingRequests`` already wait for credit on that link.
    mutating func sendRequest(_ payload: [UInt8], on kind: AMQPClientLink = .cbsRequests) -> [Action]? {
        guard kind.isSender, (self.pendingRequests[kind]?.count ?? 0) < Self.maximumPendingRequests else { return nil }
        self.pendingRequests[kind, default: []].append(payload)
        return self.pumpRequests(kind)
    }

    /// Transmits the requests waiting on link `kind` while it has credit.
    private mutating func pumpRequests(_ kind: AMQPClientLink) -> [Action] {
        guard let handle = self.handles[kind], var link = self.links[handle], link.phase == .attached,
            var queue = self.pendingRequests[kind], !queue.isEmpty
        else { return [] }
        var frames: [UInt8] = []
        while link.credit > 0, !queue.isEmpty {
            link.credit -= 1
            link.deliveryCount &+= 1
            self.appendTransfers(.bytes(queue.removeFirst()), handle: handle, settled: true, to: &frames)
        }
        self.links[handle] = link
        self.pendingRequests[kind] = queue.isEmpty ? nil : queue
        return frames.isEmpty ? [] : [.writeFrames(frames)]
    }

    /// Settles a received cloud-to-device message; the link gets the credit back.
    mutating func settle(_ deliveryId: UInt32, state: AMQPDeliveryState) -> [Action] {
        var actions: [Action] = [
            .write([.disposition(AMQPDisposition(isReceiver: true, first: deliveryId, settled: true, state: state))])
        ]
        if let handle = self.receivedUnsettled.removeValue(forKey: deliveryId), var link = self.links[handle],
            link.unsettled > 0
        {
            link.unsettled -= 1
            self.links[handle] = link
            actions += self.topUp(handle)
        }
        return actions
    }

    /// The connection is gone: everything but the queued messages is reset; transmitted messages become untransmitted.
    mutating func connectionLost() {
        let outgoing = self.outgoing
        self = AMQPClientState(
            cloudToDeviceCredit: self.cloudToDeviceCredit,
            isolatesIdentities: self.isolatesIdentities
        )
        self.outgoing = outgoing.mapValues { Outgoing(slot: $0.slot, payload: $0.payload) }
        for sequence in outgoing.keys.sorted() {
            self.untransmitted[outgoing[sequence]!.slot, default: SequenceQueue()].append(sequence)
        }
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
            guard self.beginReceived else {
                throw HubAMQPError(.protocolViolation, "the peer sent attach before begin")
            }
            return self.attached(attach)
        case .flow(let flow):
            guard self.beginReceived else { throw HubAMQPError(.protocolViolation, "the peer sent flow before begin") }
            let peerNextIncoming = Int64(flow.nextIncomingId ?? 0)
            self.remoteIncomingWindow = peerNextIncoming + Int64(flow.incomingWindow) - Int64(self.nextOutgoingId)
            if let remote = flow.handle, let handle = self.remoteHandles[remote], var link = self.links[handle],
                link.kind.isSender,
                let linkCredit = flow.linkCredit
            {
                link.credit =
                    Int64(flow.deliveryCount ?? link.deliveryCount) + Int64(linkCredit) - Int64(link.deliveryCount)
                self.links[handle] = link
                return self.pumpRequests(link.kind) + self.pump()
            }
            return self.pump()
        case .disposition(let disposition):
            var settlements: [Settlement] = []
            try self.receive(disposition, into: &settlements)
            return settlements.map { .settled(sequence: $0.sequence, error: $0.error) }
        case .transfer(let transfer, let payload):
            return try self.received(transfer, payload: payload)
        case .detach(let detach):
            // The peer's detach of another link of an identity already dropped: the answer to our detach, or the
            // rest of its own.
            if self.droppedRemoteHandles.remove(detach.handle) != nil { return [] }
            let link = self.remoteHandles[detach.handle].flatMap { self.links[$0]?.kind }
            let error = HubAMQPError(
                .linkDetached,
                "the peer detached the \(link?.name ?? "unknown") link: \(detach.error?.description ?? "no reason")",
                condition: detach.error?.condition
            )
            guard self.isolatesIdentities, let slot = link?.slot else { throw error }
            return self.dropIdentity(slot, error: error)
        case .end(let end):
            throw HubAMQPError(
                .connectionClosed,
                "the peer ended the session: \(end.error?.description ?? "no reason")",
                condition: end.error?.condition
            )
        case .close(let close):
            throw HubAMQPError(
                .connectionClosed,
                "the peer closed the connection: \(close.error?.description ?? "no reason")",
                condition: close.error?.condition
            )
        case .saslMechanisms, .saslInit, .saslChallenge, .saslResponse, .saslOutcome:
            throw HubAMQPError(.protocolViolation, "a SASL frame after the SASL exchange")
        }
    }

    private mutating func attached(_ attach: AMQPAttach) -> [Action] {
        // The peer's attach names our link and carries the opposite role.
        guard let handle = self.handlesByName[attach.name], var link = self.links[handle],
            link.kind.isSender == attach.isReceiver
        else { return [] }
        self.remoteHandles[attach.handle] = handle
        // A null terminus is a refusal; the peer's detach with the reason follows.
        guard (attach.isReceiver ? attach.target : attach.source) != nil else {
            link.phase = .refused
            self.links[handle] = link
            return [.progress]
        }
        link.phase = .attached
        var actions: [Action] = [.progress]
        if !link.kind.isSender {
            let credit = self.receiveWindow(link.kind)
            link.grantedCredit = credit
            actions.insert(.write([.flow(self.flow(handle, deliveryCount: 0, credit: credit))]), at: 0)
        }
        self.links[handle] = link
        return actions
    }

    private mutating func received(_ transfer: AMQPTransfer, payload: [UInt8]) throws(HubAMQPError) -> [Action] {
        guard let handle = self.remoteHandles[transfer.handle], let kind = self.links[handle]?.kind, !kind.isSender
        else {
            throw HubAMQPError(.protocolViolation, "a transfer on a link the client does not receive on")
        }
        self.nextIncomingId &+= 1
        if var partial = self.partial {
            guard partial.handle == handle else {
                throw HubAMQPError(.protocolViolation, "a transfer interleaved with another delivery's frames")
            }
            // IoT Hub's messages are at most 256 KB; a delivery that goes on past that is not one (it once grew the
            // client without bound). The buffer is taken out before it grows, so no frame copies it.
            guard partial.payload.count + payload.count <= Self.maximumMessageBytes else {
                self.partial = nil
                throw HubAMQPError(.messageTooLarge, "a delivery above \(Self.maximumMessageBytes) bytes")
            }
            self.partial = nil
            partial.payload += payload
            self.partial = partial
        } else {
            guard let id = transfer.deliveryId else {
                throw HubAMQPError(.protocolViolation, "a transfer without a delivery id")
            }
            self.partial = (handle, id, transfer.settled ?? false, payload)
        }
        guard transfer.more != true, let complete = self.partial else { return [] }
        self.partial = nil
        let message: AMQPMessage
        do {
            message = try AMQPMessage(decoding: complete.payload)
        } catch {
            throw HubAMQPError(.protocolViolation, "a message that does not decode: \(error.message)")
        }
        guard case .cloudToDevice(let slot) = kind else {
            var actions: [Action] = [.message(message, link: kind)]
            if !complete.settled {
                actions.insert(contentsOf: self.settle(complete.deliveryId, state: .accepted), at: 0)
            }
            return actions + self.replenish(handle)
        }
        if !complete.settled, var link = self.links[handle] {
            link.unsettled &+= 1
            self.links[handle] = link
            self.receivedUnsettled[complete.deliveryId] = handle
        }
        return [.received(message, deliveryId: complete.deliveryId, settled: complete.settled, slot: slot)]
            + self.replenish(handle)
    }

    /// The credit a receiver link keeps open: the configured cloud-to-device window, 100 for the others.
    private func receiveWindow(_ kind: AMQPClientLink) -> UInt32 {
        if case .cloudToDevice = kind { return self.cloudToDeviceCredit }
        return 100
    }

    /// Counts a delivery on the receiver link `handle` and tops its credit up.
    private mutating func replenish(_ handle: UInt32) -> [Action] {
        guard var link = self.links[handle] else { return [] }
        link.deliveryCount &+= 1
        self.links[handle] = link
        return self.topUp(handle)
    }

    /// Grants the receiver link `handle` credit up to its window, less what the application holds unsettled, once
    /// less than half of that is left.
    private mutating func topUp(_ handle: UInt32) -> [Action] {
        guard var link = self.links[handle] else { return [] }
        let window = self.receiveWindow(link.kind)
        let allowed = window > link.unsettled ? window - link.unsettled : 0
        let left = Int64(link.grantedCredit) - Int64(link.deliveryCount)
        guard allowed > 0, left < Int64(allowed / 2) || (left <= 0 && allowed > 0) else { return [] }
        link.grantedCredit = link.deliveryCount &+ allowed
        self.links[handle] = link
        return [.write([.flow(self.flow(handle, deliveryCount: link.deliveryCount, credit: allowed))])]
    }

    /// A message the peer settled: its sequence, and the error when the peer did not accept it.
    struct Settlement: Equatable {
        var sequence: UInt64
        var error: HubAMQPError?
    }

    /// A disposition from the peer, for the hot path: the messages it settles are appended to `settlements` (a
    /// buffer the driver reuses) instead of coming back as actions.
    mutating func receive(_ disposition: AMQPDisposition, into settlements: inout [Settlement]) throws(HubAMQPError) {
        guard disposition.isReceiver else { return }
        let last = max(disposition.first, disposition.last ?? disposition.first)
        guard last &- disposition.first < 1_000_000 else {
            throw HubAMQPError(.protocolViolation, "a disposition range is implausibly large")
        }
        // Accepted (the usual answer) needs no error value.
        let error = Self.error(for: disposition.state)
        for id in disposition.first...last {
            guard let sequence = self.deliveries.removeValue(forKey: id),
                self.outgoing.removeValue(forKey: sequence) != nil
            else { continue }
            settlements.append(Settlement(sequence: sequence, error: error))
        }
    }

    // MARK: - Sending

    /// Transmits queued telemetry, oldest first per identity, while each identity's link credit and the peer's
    /// session window allow.
    private mutating func pump() -> [Action] {
        var frames: [UInt8] = []
        self.pump(into: &frames)
        return frames.isEmpty ? [] : [.writeFrames(frames)]
    }

    /// ``pump()`` appending to the driver's buffer. The queues are worked on in place (by dictionary index, and
    /// moved out and back while in use), so that no copy of them or of the dictionary is made.
    private mutating func pump(into frames: inout [UInt8]) {
        guard self.beginReceived, !self.isDraining else { return }
        let chunk = self.chunkSize
        var index = self.untransmitted.startIndex
        slots: while index != self.untransmitted.endIndex {
            defer { self.untransmitted.formIndex(after: &index) }
            let slot = self.untransmitted.keys[index]
            guard let handle = self.handles[.telemetry(slot)], var link = self.links[handle], link.phase == .attached
            else { continue }
            var queue = SequenceQueue()
            swap(&queue, &self.untransmitted.values[index])
            defer {
                self.links[handle] = link
                swap(&queue, &self.untransmitted.values[index])
            }
            while let sequence = queue.first {
                guard var entry = self.outgoing[sequence], entry.deliveryId == nil else {
                    queue.removeFirst()
                    continue
                }
                guard link.credit > 0 else { continue slots }
                let frameCount = Int64(max(1, (entry.payload.count + chunk - 1) / chunk))
                guard self.remoteIncomingWindow >= frameCount else { break slots }
                queue.removeFirst()
                link.credit -= 1
                link.deliveryCount &+= 1
                self.remoteIncomingWindow -= frameCount
                self.deliveries[self.nextDeliveryId] = sequence
                entry.deliveryId = self.nextDeliveryId
                self.outgoing[sequence] = entry
                self.appendTransfers(entry.payload, handle: handle, settled: false, to: &frames)
            }
        }
    }

    /// The payload bytes per transfer frame: the peer's frame size less the frame header and a transfer performative.
    private var chunkSize: Int { max(64, self.peerMaxFrameSize - 8 - 64) }

    /// One delivery as transfer frames appended to `frames` (the hot path: no performative values); takes the next
    /// delivery id and transfer ids. A message that fits one frame is encoded straight into it.
    private mutating func appendTransfers(
        _ payload: OutgoingPayload,
        handle: UInt32,
        settled: Bool,
        to frames: inout [UInt8]
    ) {
        let bytes: [UInt8]
        switch payload {
        case .bytes(let raw):
            bytes = raw
        case .message(let message, let size) where size <= self.chunkSize:
            let id = self.nextDeliveryId
            self.nextDeliveryId &+= 1
            self.tagBuffer.withUnsafeMutableBytes { $0.storeBytes(of: id.bigEndian, as: UInt32.self) }
            let header = AMQPTransferFrame.Header(
                handle: handle,
                deliveryId: id,
                deliveryTag: self.tagBuffer[0..<4],
                messageFormat: 0,
                settled: settled
            )
            // The message was encoded when it was queued, so this cannot throw; if it did, nothing is written and
            // the delivery is never settled, so its send times out.
            try? AMQPTransferFrame.append(header, to: &frames) { (buffer: inout [UInt8]) throws(AMQPCodecError) in
                try message.encode(appendingTo: &buffer)
            }
            self.nextOutgoingId &+= 1
            return
        case .message(let message, _):
            // Larger than the peer's frames (or than a later connection's): its bytes, split below.
            bytes = (try? message.encoded()) ?? []
        }
        let id = self.nextDeliveryId
        self.nextDeliveryId &+= 1
        let chunk = self.chunkSize
        var offset = 0
        bytes.withUnsafeBytes { raw in
            repeat {
                let end = min(bytes.count, offset + chunk)
                let first = offset == 0
                if first {
                    self.tagBuffer.withUnsafeMutableBytes { $0.storeBytes(of: id.bigEndian, as: UInt32.self) }
                }
                let header = AMQPTransferFrame.Header(
                    handle: handle,
                    deliveryId: first ? id : nil,
                    deliveryTag: first ? self.tagBuffer[0..<4] : nil,
                    messageFormat: first ? 0 : nil,
                    settled: first ? settled : nil,
                    more: end < bytes.count ? true : nil
                )
                // A frame is at most the peer's frame size, far below the 4 GiB the encoder refuses.
                try? AMQPTransferFrame.append(
                    header,
                    payload: UnsafeRawBufferPointer(rebasing: raw[offset..<end]),
                    to: &frames
                )
                self.nextOutgoingId &+= 1
                offset = end
            } while offset < bytes.count
        }
    }

    private func flow(_ handle: UInt32, deliveryCount: UInt32, credit: UInt32) -> AMQPFlow {
        AMQPFlow(
            nextIncomingId: self.nextIncomingId,
            incomingWindow: Self.window,
            nextOutgoingId: self.nextOutgoingId,
            outgoingWindow: Self.window,
            handle: handle,
            deliveryCount: deliveryCount,
            linkCredit: credit
        )
    }

    private static func error(for state: AMQPDeliveryState?) -> HubAMQPError? {
        switch state {
        case .accepted?, nil:
            return nil
        case .rejected(let error)?:
            return HubAMQPError(
                .rejected,
                "the message was rejected: \(error?.description ?? "no reason")",
                condition: error?.condition
            )
        case .released?:
            return HubAMQPError(.released, "the message was released")
        case .modified?:
            return HubAMQPError(.modified, "the message was modified")
        case .received?:
            return HubAMQPError(.protocolViolation, "a terminal disposition with the non-terminal state 'received'")
        }
    }
}

/// A first-in, first-out queue of message sequences that keeps its storage: taking from the front moves an index,
/// and the array is compacted only when more than half of it is taken, so a steady stream allocates nothing.
private struct SequenceQueue {
    private var items: [UInt64] = []
    private var head = 0

    var first: UInt64? { self.head < self.items.count ? self.items[self.head] : nil }

    var isEmpty: Bool { self.head >= self.items.count }

    mutating func append(_ sequence: UInt64) { self.items.append(sequence) }

    mutating func removeFirst() {
        guard self.head < self.items.count else { return }
        self.head += 1
        if self.head == self.items.count {
            self.items.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head >= 64, self.head * 2 >= self.items.count {
            self.items.removeFirst(self.head)
            self.head = 0
        }
    }
}
