import AzureIoTCore
import Testing

@testable import HubAMQP

/// The client's protocol state driven directly with performatives, in the orders a peer may send them.
@Suite("AMQP client state machine")
struct AMQPClientStateTests {
    static let events = "/devices/dev1/messages/events"
    static let devicebound = "/devices/dev1/messages/devicebound"

    /// The frames the actions write, flattened.
    static func written(_ actions: [AMQPClientState.Action]) -> [AMQPPerformative] {
        actions.flatMap { action -> [AMQPPerformative] in
            switch action {
            case .write(let frames): return frames
            case .writeFrames(let bytes):
                // Transfer frames written on the hot path, read back with the general decoder.
                var performatives: [AMQPPerformative] = []
                var offset = 0
                let framer = AMQPFramer(maximumFrameSize: 1 << 20)
                while let (frame, size) = try? framer.nextFrame(in: bytes[offset...]) {
                    if let performative = try? AMQPPerformative.decode(frame.body) {
                        performatives.append(performative)
                    }
                    offset += size
                }
                #expect(offset == bytes.count, "whole frames")
                return performatives
            default: return []
            }
        }
    }

    /// The error `receive` throws for `performative`, or `nil`.
    static func failure(_ state: inout AMQPClientState, _ performative: AMQPPerformative) -> HubAMQPError? {
        do {
            _ = try state.receive(performative)
            return nil
        } catch {
            return error
        }
    }

    static func transfers(_ actions: [AMQPClientState.Action]) -> [AMQPTransfer] {
        Self.written(actions).compactMap {
            if case .transfer(let transfer, _) = $0 { return transfer } else { return nil }
        }
    }

    static func settled(_ actions: [AMQPClientState.Action]) -> [(UInt64, HubAMQPError?)] {
        actions.compactMap {
            if case .settled(let sequence, let error) = $0 { return (sequence, error) } else { return nil }
        }
    }

    /// The peer's side of a handshake: its open, begin and attach replies (peer handles 7 and 8, in `order`).
    static func peerAttach(_ link: AMQPClientLink, handle: UInt32, refuse: Bool = false) -> AMQPPerformative {
        let address = link == .telemetry(0) ? Self.events : Self.devicebound
        return .attach(
            AMQPAttach(
                name: link == .telemetry(0) ? "s" : "r",
                handle: handle,
                isReceiver: link.isSender,
                source: link.isSender ? AMQPTerminus(address: "s") : (refuse ? nil : AMQPTerminus(address: address)),
                target: link.isSender ? (refuse ? nil : AMQPTerminus(address: address)) : AMQPTerminus(address: "t"),
                initialDeliveryCount: link.isSender ? nil : 0
            )
        )
    }

    static func credit(
        _ credit: UInt32,
        handle: UInt32 = 7,
        deliveryCount: UInt32 = 0,
        window: UInt32 = 5000,
        nextIncomingId: UInt32 = 0
    ) -> AMQPPerformative {
        .flow(
            AMQPFlow(
                nextIncomingId: nextIncomingId,
                incomingWindow: window,
                nextOutgoingId: 0,
                outgoingWindow: 5000,
                handle: handle,
                deliveryCount: deliveryCount,
                linkCredit: credit
            )
        )
    }

    /// A state that opened, began and attached both device links with the peer's frames in the order given.
    static func connected(peerOrder: [AMQPPerformative]? = nil, maxFrameSize: UInt32 = 65_536, window: UInt32 = 5000)
        throws -> AMQPClientState
    {
        var state = AMQPClientState(cloudToDeviceCredit: 10)
        _ = state.open(containerId: "c", hostname: "h", idleTimeout: 0, properties: [])
        _ = state.attach(.telemetry(0), name: "s", address: Self.events, properties: nil)
        _ = state.attach(.cloudToDevice(0), name: "r", address: Self.devicebound, properties: nil)
        let order =
            peerOrder ?? [
                .open(AMQPOpen(containerId: "peer", maxFrameSize: maxFrameSize)),
                .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 1, incomingWindow: window, outgoingWindow: 5000)),
                Self.peerAttach(.telemetry(0), handle: 7), Self.peerAttach(.cloudToDevice(0), handle: 8),
            ]
        for performative in order { _ = try state.receive(performative) }
        return state
    }

    @Test("open, begin, attach: either attach reply may come first; the receiver gets its credit once attached")
    func attachInAnyOrder() throws {
        for replies in [
            [Self.peerAttach(.telemetry(0), handle: 7), Self.peerAttach(.cloudToDevice(0), handle: 8)],
            [Self.peerAttach(.cloudToDevice(0), handle: 8), Self.peerAttach(.telemetry(0), handle: 7)],
        ] {
            var state = AMQPClientState(cloudToDeviceCredit: 10)
            #expect(
                Self.written(state.open(containerId: "c", hostname: "h", idleTimeout: 1000, properties: [])).count == 2
            )
            _ = state.attach(.telemetry(0), name: "s", address: Self.events, properties: nil)
            _ = state.attach(.cloudToDevice(0), name: "r", address: Self.devicebound, properties: nil)
            #expect(try state.receive(.open(AMQPOpen(containerId: "peer", idleTimeOut: 30_000))) == [.progress])
            #expect(state.peerIdleTimeout == 30_000)
            _ = try state.receive(
                .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 0, incomingWindow: 100, outgoingWindow: 100))
            )
            var credits: [AMQPFlow] = []
            for reply in replies {
                credits += Self.written(try state.receive(reply)).compactMap {
                    if case .flow(let flow) = $0 { return flow } else { return nil }
                }
            }
            #expect(state.isAttached(.telemetry(0)) && state.isAttached(.cloudToDevice(0)))
            #expect(credits.count == 1 && credits[0].handle == 1 && credits[0].linkCredit == 10)
        }
    }

    @Test(
        "out-of-order peers are protocol violations: begin before open, attach before begin, a second open, SASL after open"
    )
    func outOfOrder() throws {
        var state = AMQPClientState(cloudToDeviceCredit: 10)
        #expect(
            Self.failure(&state, .begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 1, outgoingWindow: 1)))?.code
                == .protocolViolation
        )
        _ = try state.receive(.open(AMQPOpen(containerId: "peer")))
        #expect(Self.failure(&state, Self.peerAttach(.telemetry(0), handle: 0))?.code == .protocolViolation)
        #expect(Self.failure(&state, .open(AMQPOpen(containerId: "again")))?.code == .protocolViolation)
        #expect(Self.failure(&state, .saslOutcome(SASLOutcome(code: .ok)))?.code == .protocolViolation)
    }

    @Test("messages wait for credit; a flow releases them in order; dispositions settle ranges with each outcome")
    func creditAndSettlement() throws {
        var state = try Self.connected()
        for sequence in 1...4 {
            #expect(Self.transfers(state.enqueue(sequence: UInt64(sequence), payload: [UInt8(sequence)])).isEmpty)
        }
        let sent = Self.transfers(try state.receive(Self.credit(3)))
        #expect(sent.map(\.deliveryId) == [0, 1, 2])
        #expect(sent.allSatisfy { $0.handle == 0 && $0.settled == false && $0.more == nil })
        // Credit counted from the peer's delivery count: 3 sent, peer says count 3 and credit 1 -> one more.
        #expect(Self.transfers(try state.receive(Self.credit(1, deliveryCount: 3))).map(\.deliveryId) == [3])
        let settled = Self.settled(
            try state.receive(
                .disposition(AMQPDisposition(isReceiver: true, first: 0, last: 1, settled: true, state: .accepted))
            )
        )
        #expect(settled.map(\.0) == [1, 2] && settled.allSatisfy { $0.1 == nil })
        let rejected = Self.settled(
            try state.receive(
                .disposition(
                    AMQPDisposition(
                        isReceiver: true,
                        first: 2,
                        settled: true,
                        state: .rejected(AMQPError(condition: "amqp:x", description: "no"))
                    )
                )
            )
        )
        #expect(rejected.first?.1?.code == .rejected && rejected.first?.1?.condition == "amqp:x")
        #expect(
            Self.settled(
                try state.receive(
                    .disposition(AMQPDisposition(isReceiver: true, first: 3, settled: true, state: .released))
                )
            ).first?.1?.code == .released
        )
        #expect(state.unsettledCount == 0)
        // A disposition for an unknown or already settled delivery is ignored; one from a sender role is not ours.
        #expect(
            try state.receive(
                .disposition(AMQPDisposition(isReceiver: true, first: 0, settled: true, state: .accepted))
            ).isEmpty
        )
        #expect(
            try state.receive(
                .disposition(AMQPDisposition(isReceiver: false, first: 0, settled: true, state: .accepted))
            ).isEmpty
        )
    }

    @Test("the peer's session window limits transfer frames; a small max-frame-size splits a message with `more`")
    func windowAndFragmentation() throws {
        var state = try Self.connected(maxFrameSize: 512, window: 3)
        _ = try state.receive(Self.credit(10, window: 3, nextIncomingId: 0))
        let big = [UInt8](repeating: 7, count: 1000)
        let first = Self.transfers(state.enqueue(sequence: 1, payload: big))
        #expect(first.count == 3, "1000 bytes in 440-byte chunks")
        #expect(first.map(\.more) == [true, true, nil] && first[0].deliveryId == 0 && first[1].deliveryId == nil)
        #expect(Self.transfers(state.enqueue(sequence: 2, payload: [1])).isEmpty, "the window of 3 frames is used up")
        let resumed = Self.transfers(try state.receive(Self.credit(9, deliveryCount: 1, window: 3, nextIncomingId: 3)))
        #expect(resumed.map(\.deliveryId) == [1])
    }

    @Test(
        "a message queued as a message goes out as the same transfers as its bytes: in place when it fits a frame, split when not, again after a reconnect; one that cannot be encoded is refused and nothing is queued"
    )
    func messagesEncodedInPlace() throws {
        var small = AMQPMessage(data: [UInt8](repeating: 1, count: 100))
        small.messageId = .string("small")
        small.applicationProperties = [("k", .string("v"))]
        let big = AMQPMessage(data: [UInt8](repeating: 2, count: 1000))
        func run(_ enqueue: (inout AMQPClientState, UInt64, AMQPMessage, inout [UInt8]) throws -> Void) throws -> (
            first: [UInt8], resent: [UInt8]
        ) {
            var state = try Self.connected(maxFrameSize: 512)
            _ = try state.receive(Self.credit(10))
            var frames: [UInt8] = []
            try enqueue(&state, 1, small, &frames)
            try enqueue(&state, 2, big, &frames)
            state.connectionLost()
            _ = state.open(containerId: "c", hostname: "h", idleTimeout: 0, properties: [])
            _ = state.attach(.telemetry(0), name: "s", address: Self.events, properties: nil)
            _ = try state.receive(.open(AMQPOpen(containerId: "peer", maxFrameSize: 512)))
            _ = try state.receive(
                .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 10))
            )
            _ = try state.receive(Self.peerAttach(.telemetry(0), handle: 0))
            let resent = try state.receive(Self.credit(10, handle: 0)).flatMap { action -> [UInt8] in
                if case .writeFrames(let bytes) = action { return bytes }
                return []
            }
            return (frames, resent)
        }
        let asBytes = try run { state, sequence, message, frames in
            state.enqueue(sequence: sequence, payload: try message.encoded(), into: &frames)
        }
        let asMessages = try run { state, sequence, message, frames in
            try state.enqueue(sequence: sequence, message: message, into: &frames)
        }
        #expect(asMessages.first == asBytes.first && asMessages.resent == asBytes.resent)
        let transfers = Self.transfers([.writeFrames(asMessages.first)])
        #expect(transfers.map(\.deliveryId) == [0, 1, nil, nil] && transfers.map(\.more) == [nil, true, true, nil])
        #expect(Self.transfers([.writeFrames(asMessages.resent)]).count == 4, "both sent again after the reconnect")

        var state = try Self.connected()
        _ = try state.receive(Self.credit(10))
        var refused = AMQPMessage(data: [1])
        refused.contentEncoding = "\u{E9}"
        var frames: [UInt8] = [7]
        #expect(throws: AMQPCodecError.self) { try state.enqueue(sequence: 1, message: refused, into: &frames) }
        #expect(frames == [7] && state.unsettledCount == 0)
    }

    @Test(
        "a refused link (null terminus, then detach with an error) and remote end/close surface condition and description"
    )
    func remoteErrors() throws {
        var state = AMQPClientState(cloudToDeviceCredit: 10)
        _ = state.open(containerId: "c", hostname: "h", idleTimeout: 0, properties: [])
        _ = state.attach(.telemetry(0), name: "s", address: Self.events, properties: nil)
        _ = try state.receive(.open(AMQPOpen(containerId: "peer")))
        _ = try state.receive(
            .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 0, incomingWindow: 10, outgoingWindow: 10))
        )
        #expect(try state.receive(Self.peerAttach(.telemetry(0), handle: 3, refuse: true)) == [.progress])
        #expect(!state.isAttached(.telemetry(0)))
        let detach = AMQPPerformative.detach(
            AMQPDetach(
                handle: 3,
                closed: true,
                error: AMQPError(condition: "amqp:unauthorized-access", description: "bad token")
            )
        )
        let error = Self.failure(&state, detach)
        #expect(
            error?.code == .linkDetached && error?.condition == "amqp:unauthorized-access"
                && error?.message.contains("telemetry") == true
        )
        let end = Self.failure(
            &state,
            .end(AMQPEndOrClose(error: AMQPError(condition: "amqp:internal-error", description: "boom")))
        )
        #expect(end?.code == .connectionClosed && end?.message.contains("boom") == true)
        let close = Self.failure(&state, .close(AMQPEndOrClose()))
        #expect(close?.code == .connectionClosed)
    }

    @Test(
        "cloud-to-device: a message in two frames arrives once; credit is topped up after half is used; transfers on other links fail"
    )
    func receiving() throws {
        var state = try Self.connected()
        var message = AMQPMessage(data: [UInt8](repeating: 1, count: 100))
        message.messageId = .string("m")
        let bytes = try message.encoded()
        #expect(
            try state.receive(
                .transfer(
                    AMQPTransfer(handle: 8, deliveryId: 0, deliveryTag: [0], messageFormat: 0, more: true),
                    payload: Array(bytes[..<50])
                )
            ).isEmpty
        )
        let actions = try state.receive(.transfer(AMQPTransfer(handle: 8), payload: Array(bytes[50...])))
        guard case .received(let received, let id, let settled, let slot)? = actions.first else {
            Issue.record("no message")
            return
        }
        #expect(received.messageId == .string("m") && id == 0 && !settled && slot == 0)
        #expect(
            Self.written(state.settle(0, state: .accepted)) == [
                .disposition(AMQPDisposition(isReceiver: true, first: 0, settled: true, state: .accepted))
            ]
        )
        var flows = 0
        for id in 1...5 {
            flows +=
                Self.written(
                    try state.receive(
                        .transfer(
                            AMQPTransfer(handle: 8, deliveryId: UInt32(id), deliveryTag: [1], settled: true),
                            payload: bytes
                        )
                    )
                ).count
        }
        #expect(flows == 1, "credit 10: one top-up flow once fewer than 5 remain")
        #expect(
            Self.failure(&state, .transfer(AMQPTransfer(handle: 7, deliveryId: 9), payload: bytes))?.code
                == .protocolViolation
        )
        #expect(
            Self.failure(&state, .transfer(AMQPTransfer(handle: 99, deliveryId: 9), payload: bytes))?.code
                == .protocolViolation
        )
    }

    @Test(
        "cloud-to-device credit follows the application: messages it holds unsettled use up the window, settling gives credit back"
    )
    func creditFollowsSettlement() throws {
        var state = try Self.connected()  // a window of 10
        let bytes = try AMQPMessage(data: [1, 2, 3]).encoded()
        var granted: [UInt32] = []
        func flows(_ actions: [AMQPClientState.Action]) -> [UInt32] {
            Self.written(actions).compactMap {
                if case .flow(let flow) = $0 { return flow.linkCredit } else { return nil }
            }
        }
        // Ten unsettled deliveries: the window is used up and no more credit is granted, however long the peer waits.
        for id in 0..<10 {
            granted += flows(
                try state.receive(
                    .transfer(AMQPTransfer(handle: 8, deliveryId: UInt32(id), deliveryTag: [UInt8(id)]), payload: bytes)
                )
            )
        }
        #expect(granted.isEmpty, "no credit while the application holds the whole window: \(granted)")
        // Settling one gives exactly one delivery of credit back; settling more tops up to what the window leaves.
        #expect(flows(state.settle(0, state: .accepted)) == [1])
        for id in 1..<6 { granted += flows(state.settle(UInt32(id), state: .accepted)) }
        #expect(granted.last.map { $0 >= 3 } == true, "after six settlements the link has credit again: \(granted)")
        // A settlement of a delivery the state does not know (or twice) grants nothing.
        #expect(flows(state.settle(0, state: .accepted)).isEmpty)
    }

    @Test(
        "HubAMQPError.isTransient: a lost connection and time-outs are; refused credentials, rejections and giving up are not"
    )
    func transience() {
        #expect(HubAMQPError(.connectionFailed, "", underlying: AzureIoTError(.connectionClosed, "")).isTransient)
        #expect(!HubAMQPError(.connectionFailed, "", underlying: AzureIoTError(.hostnameMismatch, "")).isTransient)
        for code in [HubAMQPError.Code.connectionClosed, .timedOut, .released, .queueFull] {
            #expect(HubAMQPError(code, "").isTransient, "\(code)")
        }
        for code in [
            HubAMQPError.Code.authenticationFailed, .rejected, .linkDetached, .retriesExhausted, .messageTooLarge,
        ] {
            #expect(!HubAMQPError(code, "").isTransient, "\(code)")
        }
    }

    @Test(
        "after a lost connection, unsettled messages are sent again on the next one with new delivery ids; withdrawn ones are not"
    )
    func resendAfterReconnect() throws {
        var state = try Self.connected()
        _ = try state.receive(Self.credit(10))
        _ = state.enqueue(sequence: 1, payload: [1])
        _ = state.enqueue(sequence: 2, payload: [2])
        _ = try state.receive(
            .disposition(AMQPDisposition(isReceiver: true, first: 0, settled: true, state: .accepted))
        )
        let withdrawnAfterSending = state.withdraw(sequence: 2)
        #expect(!withdrawnAfterSending, "transmitted messages cannot be withdrawn")
        state.connectionLost()
        #expect(state.unsettledCount == 1 && !state.isAttached(.telemetry(0)))
        _ = state.enqueue(sequence: 3, payload: [3])
        let withdrawn = state.withdraw(sequence: 3)
        #expect(withdrawn)
        _ = state.open(containerId: "c", hostname: "h", idleTimeout: 0, properties: [])
        _ = state.attach(.telemetry(0), name: "s", address: Self.events, properties: nil)
        _ = try state.receive(.open(AMQPOpen(containerId: "peer")))
        _ = try state.receive(
            .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 0, incomingWindow: 10, outgoingWindow: 10))
        )
        _ = try state.receive(Self.peerAttach(.telemetry(0), handle: 0))
        let resent = Self.written(try state.receive(Self.credit(10, handle: 0)))
        guard case .transfer(let transfer, let payload)? = resent.first else {
            Issue.record("nothing resent")
            return
        }
        #expect(resent.count == 1 && transfer.deliveryId == 0 && payload == [2])
        #expect(
            Self.settled(
                try state.receive(
                    .disposition(AMQPDisposition(isReceiver: true, first: 0, settled: true, state: .accepted))
                )
            ).map(\.0) == [2]
        )
    }

    @Test(
        "twin and method links: requests wait for credit and go pre-settled in order, at most 64 wait; answers arrive as messages of their link; an unsettled method call is accepted"
    )
    func requestLinks() throws {
        var state = try Self.connected()
        // Our handles 2-5; the peer's 9-12.
        let links: [(AMQPClientLink, String, UInt32)] = [
            (.twinRequests(0), "ts", 9), (.twinResponses(0), "tr", 10),
            (.methodRequests(0), "mr", 11), (.methodResponses(0), "ms", 12),
        ]
        var attaches: [AMQPAttach] = []
        for (link, name, _) in links {
            attaches += Self.written(state.attach(link, name: name, address: "/devices/dev1/x", properties: nil))
                .compactMap { if case .attach(let attach) = $0 { return attach } else { return nil } }
        }
        // The Azure SDKs' terminus names and settle modes.
        #expect(
            attaches.map { $0.isReceiver ? $0.target?.address : $0.source?.address } == [
                "sender-source", "receiver-target", "requests", "responses",
            ]
        )
        #expect(attaches.map(\.senderSettleMode) == [1, nil, nil, 1])
        // A request before the link is attached waits.
        #expect(state.sendRequest(Array("get-1".utf8), on: .twinRequests(0)) == [])
        var credits: [AMQPFlow] = []
        for (link, name, handle) in links {
            let reply = AMQPPerformative.attach(
                AMQPAttach(
                    name: name,
                    handle: handle,
                    isReceiver: link.isSender,
                    source: AMQPTerminus(address: "a"),
                    target: AMQPTerminus(address: "b"),
                    initialDeliveryCount: link.isSender ? nil : 0
                )
            )
            credits += Self.written(try state.receive(reply)).compactMap {
                if case .flow(let flow) = $0 { return flow } else { return nil }
            }
        }
        #expect(state.hasLink(.twinRequests(0)) && state.isAttached(.methodResponses(0)))
        #expect(credits.map(\.linkCredit) == [100, 100], "both receivers get 100")
        #expect(state.sendRequest(Array("get-2".utf8), on: .twinRequests(0)) == [], "no credit yet")
        // One credit: the oldest request goes, settled; the next waits for more.
        let sent = Self.written(try state.receive(Self.credit(1, handle: 9)))
        let payloads = sent.compactMap { frame -> String? in
            if case .transfer(let transfer, let payload) = frame, transfer.settled == true {
                return String(decoding: payload, as: UTF8.self)
            }
            return nil
        }
        #expect(payloads == ["get-1"])
        #expect(Self.transfers(try state.receive(Self.credit(5, handle: 9, deliveryCount: 1))).count == 1)
        // The waiting list is bounded.
        for index in 0..<AMQPClientState.maximumPendingRequests {
            _ = state.sendRequest(Array("r\(index)".utf8), on: .methodResponses(0))
        }
        #expect(state.sendRequest([1], on: .methodResponses(0)) == nil)
        #expect(state.sendRequest([1], on: .cloudToDevice(0)) == nil, "not a sender")

        var answer = AMQPMessage(data: Array("{}".utf8))
        answer.correlationId = .string("get-1")
        let received = try state.receive(
            .transfer(
                AMQPTransfer(handle: 10, deliveryId: 0, deliveryTag: [0], messageFormat: 0, settled: true),
                payload: try answer.encoded()
            )
        )
        #expect(received.contains(.message(answer, link: .twinResponses(0))))
        var call = AMQPMessage(data: [])
        call.correlationId = .uuid([UInt8](repeating: 7, count: 16))
        call.applicationProperties = [("IoThub-methodname", .string("reboot"))]
        let delivered = try state.receive(
            .transfer(
                AMQPTransfer(handle: 11, deliveryId: 1, deliveryTag: [1], messageFormat: 0, settled: false),
                payload: try call.encoded()
            )
        )
        #expect(delivered.contains(.message(call, link: .methodRequests(0))))
        let dispositions = Self.written(delivered).compactMap { frame -> AMQPDisposition? in
            if case .disposition(let disposition) = frame { return disposition } else { return nil }
        }
        #expect(dispositions.count == 1 && dispositions[0].first == 1 && dispositions[0].state == .accepted)
    }

    @Test("twin and method messages: requests as the Azure SDKs send them; answers, pushes and method calls read back")
    func twinAndMethodMessages() throws {
        let get = AMQPTwinMessage.request(.get, resource: nil, body: [], correlationId: "c-1")
        #expect(get.data == [0x20] && get.correlationId == .string("c-1"))
        #expect(get.messageAnnotations == [AMQPMapEntry(.symbol("operation"), .string("GET"))])
        let patch = AMQPTwinMessage.request(
            .patch,
            resource: AMQPTwinMessage.reportedProperties,
            body: Array("{}".utf8),
            correlationId: "c-2"
        )
        #expect(
            patch.messageAnnotations == [
                AMQPMapEntry(.symbol("operation"), .string("PATCH")),
                AMQPMapEntry(.symbol("resource"), .string("/properties/reported")),
            ]
        )
        var answer = AMQPMessage(data: [0x20])
        answer.correlationId = .string("c-2")
        answer.messageAnnotations = [
            AMQPMapEntry(.symbol("status"), .int(204)), AMQPMapEntry(.symbol("version"), .long(7)),
        ]
        let read = AMQPTwinMessage.incoming(try AMQPMessage(decoding: try answer.encoded()))
        #expect(read.correlationId == "c-2" && read.status == 204 && read.version == 7 && read.body.isEmpty)
        #expect(AMQPTwinMessage.incoming(AMQPMessage(data: Array("{}".utf8))).correlationId == nil, "a push")
        #expect(
            AMQPTwinMessage.text(.uuid([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]))
                == "00010203-0405-0607-0809-0a0b0c0d0eff"
        )
        #expect(AMQPTwinMessage.text(.ulong(42)) == "42" && AMQPTwinMessage.text(.uuid([1])) == nil)

        var call = AMQPMessage(data: Array(#"{"a":1}"#.utf8))
        #expect(AMQPMethodMessage.request(call) == nil, "no name, no correlation id")
        call.correlationId = .uuid([UInt8](repeating: 9, count: 16))
        call.applicationProperties = [("IoThub-methodname", .string("reset"))]
        let request = try #require(AMQPMethodMessage.request(call))
        #expect(request.name == "reset" && request.payload == Array(#"{"a":1}"#.utf8))
        let response = AMQPMethodMessage.response(status: 200, payload: [1], correlationId: request.correlationId)
        #expect(response.correlationId == call.correlationId)
        #expect(response.applicationProperties.map(\.0) == ["IoThub-status"])
    }

    @Test(
        "a gateway's identity detached by the peer (stolen): only its links and messages go, its late detaches are expected; without isolation the connection ends"
    )
    func identityDetached() throws {
        for isolates in [true, false] {
            var state = AMQPClientState(cloudToDeviceCredit: 10, isolatesIdentities: isolates)
            _ = state.open(containerId: "c", hostname: "h", idleTimeout: 0, properties: [])
            _ = try state.receive(.open(AMQPOpen(containerId: "peer", maxFrameSize: 65_536)))
            _ = try state.receive(
                .begin(AMQPBegin(remoteChannel: 0, nextOutgoingId: 1, incomingWindow: 5000, outgoingWindow: 5000))
            )
            // Slot 0: our handles 0 and 1, the peer's 10 and 11; slot 1: ours 2 and 3, the peer's 12 and 13.
            for (slot, base) in [(0, UInt32(10)), (1, UInt32(12))] {
                for (offset, link) in [AMQPClientLink.telemetry(slot), .cloudToDevice(slot)].enumerated() {
                    let name = "\(link)"
                    _ = state.attach(link, name: name, address: "/devices/d\(slot)/x", properties: nil)
                    _ = try state.receive(
                        .attach(
                            AMQPAttach(
                                name: name,
                                handle: base + UInt32(offset),
                                isReceiver: link.isSender,
                                source: AMQPTerminus(address: "a"),
                                target: AMQPTerminus(address: "b"),
                                initialDeliveryCount: link.isSender ? nil : 0
                            )
                        )
                    )
                }
            }
            _ = state.enqueue(sequence: 1, payload: [1], slot: 0)
            _ = state.enqueue(sequence: 2, payload: [2], slot: 1)
            let stolen = AMQPPerformative.detach(
                AMQPDetach(handle: 10, closed: true, error: AMQPError(condition: "amqp:link:stolen", description: "x"))
            )
            guard isolates else {
                #expect(Self.failure(&state, stolen)?.code == .linkDetached)
                continue
            }
            let actions = try state.receive(stolen)
            let detached = Self.written(actions).compactMap { frame -> UInt32? in
                if case .detach(let detach) = frame { return detach.handle } else { return nil }
            }
            #expect(detached == [0, 1], "both links of slot 0 are detached on our side")
            #expect(Self.settled(actions).map(\.0) == [1] && Self.settled(actions)[0].1?.code == .linkDetached)
            #expect(actions.contains { if case .identityDetached(0, _) = $0 { true } else { false } })
            #expect(!state.hasLink(.telemetry(0)) && state.isAttached(.telemetry(1)))
            // The peer's answer for the other link of slot 0 is expected, not a violation.
            #expect(try state.receive(.detach(AMQPDetach(handle: 11, closed: true))) == [])
            #expect(state.unsettledCount == 1, "slot 1's message stays")
        }
    }

    @Test("a receiver's filter goes into its source as the eighth field (Event Hubs' selector); no filter, no fields")
    func receiverFilter() throws {
        var state = AMQPClientState(cloudToDeviceCredit: 10)
        let selector = AMQPMapEntry(
            .symbol("apache.org:selector-filter:string"),
            .described(
                descriptor: .symbol("apache.org:selector-filter:string"),
                value: .string("amqp.annotation.x-opt-offset > '-1'")
            )
        )
        let filtered = Self.written(
            state.attach(.cloudToDevice(0), name: "r0", address: "p/0", properties: nil, filter: [selector])
        )
        guard case .attach(let attach)? = filtered.first else {
            Issue.record("no attach written")
            return
        }
        #expect(attach.isReceiver && attach.source?.address == "p/0")
        #expect(attach.source?.otherFields.count == 7 && attach.source?.otherFields.last == .map([selector]))
        // It encodes and decodes back with the filter in place.
        let decoded = try AMQPPerformative.decode(try AMQPPerformative.attach(attach).encoded())
        #expect(decoded == .attach(attach))
        let plain = Self.written(state.attach(.cloudToDevice(1), name: "r1", address: "p/1", properties: nil))
        if case .attach(let bare)? = plain.first { #expect(bare.source?.otherFields.isEmpty == true) }
    }
}
