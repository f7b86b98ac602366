import AzureIoTCore

/// The QoS 1 in-flight window, packet ids, PUBACK waiters and the outbound byte queue of one session, behind one
/// lock. Senders queue and write their PUBLISH on their own task and wait only for the PUBACK, without hopping onto
/// the session actor; the actor uses the same queue for everything else it sends.
///
/// Writing is non-waiting: whoever queues bytes while nobody is writing is handed a ``Writer`` and arranges for
/// ``drain(_:)`` to run (the session runs it on its actor, next to the reader, so reads and writes never contend for
/// the TLS session); bytes queued meanwhile go out in the same write. Only when the socket is full does a task wait
/// for it. A failed write closes the connection, and the session's reader then reports the loss.
final class PublishPipeline: Sendable {
    /// The duty to write the queue to a connection, handed to whoever queued bytes first.
    struct Writer: Sendable {
        let connection: TLSConnection
        let generation: Int
    }

    /// Why a waiting sender was resumed.
    enum Wake { case slotFree, acknowledged }

    typealias SenderContinuation = FastContinuation<Wake, any Error>
    typealias WriterContinuation = FastContinuation<Writer?, Never>

    /// One sender's place in the pipeline, so that cancellation finds it (its fields are guarded by the lock).
    ///
    /// Tickets are reused (``State/spareTickets``): a send at steady state allocates none. The cancellation handler
    /// captures the ticket alone, which Swift passes as the closure's context without allocating one; a ticket goes
    /// back to the spares only after `withTaskCancellationHandler` has returned, when its handler can no longer run.
    fileprivate final class Ticket: @unchecked Sendable {
        unowned let pipeline: PublishPipeline
        var packetId: UInt16?
        var cancelled = false
        /// Whether the sender already got a place among the waiting (the queue limit applies once).
        var admitted = false
        /// What the sender gets past its deadline: `timedOut`, or `expired` for a message's own expiry.
        var deadlineError: HubMQTTError

        init(pipeline: PublishPipeline, deadlineError: HubMQTTError) {
            self.pipeline = pipeline
            self.deadlineError = deadlineError
        }

        /// Ready for another send (called under the lock).
        func reset(deadlineError: HubMQTTError) {
            self.packetId = nil
            self.cancelled = false
            self.admitted = false
            self.deadlineError = deadlineError
        }

        func cancel() { self.pipeline.cancel(self) }
    }

    /// Spare tickets kept for reuse; more concurrent senders than this allocate and free their own.
    private static let maximumSpareTickets = 256

    private struct Waiter {
        let ticket: Ticket
        let continuation: SenderContinuation
        /// When the sender gives up (see ``expireWaiters(now:)``).
        let deadline: Duration?
    }

    private struct State {
        var connection: TLSConnection?
        var generation = 0
        /// Set at shutdown: every later send fails with it.
        var failure: HubMQTTError?
        var nextPacketId: UInt16 = 0
        /// Ids taken by requests other than PUBLISH (SUBSCRIBE), so they are not reused while pending.
        var reservedIds: Set<UInt16> = []
        /// Ids of PUBLISHes whose senders gave up before the PUBACK: kept from reuse until their PUBACK or the next
        /// connection, so that a late PUBACK cannot complete another message.
        var abandonedIds: Set<UInt16> = []
        /// Whether a task is expiring deadlines: one runs while any waiting sender has a deadline, none otherwise.
        var sweeping = false
        var inflight: [UInt16: PublishPacket] = [:]
        var inflightOrder: [UInt16] = []
        var acknowledgementWaiters: [UInt16: Waiter] = [:]
        var slotWaiters: [Waiter] = []
        var outbound: [UInt8] = []
        /// Tickets of finished sends, for the next ones.
        fileprivate var spareTickets: [Ticket] = []
        /// The buffer a writer hands back after writing, so that the queue and the bytes being written swap two
        /// buffers instead of allocating one per write.
        var spare: [UInt8] = []
        var writing = false
        /// Set while a task finishes a write the socket took only part of: the TLS stream is mid-record.
        var partialWrite = false
        /// The connection's writer task, waiting for bytes to write; or the duty to write, waiting for that task.
        var writerWaiter: (generation: Int, continuation: WriterContinuation)?
        var pendingWriter: Writer?
        /// Set while a planned reconnect drains the window: new PUBLISHes wait for the next connection.
        var paused = false
        var lastOutbound: Duration = .zero

        /// Takes the writer task's wait (to end it) and forgets a duty nobody picked up.
        mutating func takeWriterWaiter() -> WriterContinuation? {
            self.pendingWriter = nil
            defer { self.writerWaiter = nil }
            return self.writerWaiter?.continuation
        }

        /// The next packet id in use by nothing [MQTT-2.3.1-2].
        mutating func allocatePacketId() -> UInt16 {
            repeat {
                self.nextPacketId = self.nextPacketId == UInt16.max ? 1 : self.nextPacketId + 1
            } while self.inflight[self.nextPacketId] != nil || self.reservedIds.contains(self.nextPacketId)
                || (!self.abandonedIds.isEmpty && self.abandonedIds.contains(self.nextPacketId))
            return self.nextPacketId
        }

        /// Encodes `packet` into the queue when connected; returns the connection if the caller is now the writer.
        mutating func queue(_ packet: MQTTPacket) throws(MQTTCodecError) -> Writer? {
            guard let connection = self.connection else { return nil }
            try packet.encode(into: &self.outbound)
            guard !self.writing else { return nil }
            self.writing = true
            return Writer(connection: connection, generation: self.generation)
        }
    }

    private let state = AdaptiveLock(State())
    private let window: Int
    private let writeTimeout: Duration
    private let maximumWaiting: Int
    private let maximumUnwrittenBytes: Int
    /// Deadlines, the deadline sweep and the keep-alive's idea of when bytes last went out.
    let clock: any IoTClock

    /// A pipeline allowing `window` unacknowledged PUBLISHes; a full socket must take bytes within `writeTimeout`.
    /// At most `maximumWaiting` QoS 1 senders wait for room (offline, or with the window full), and a QoS 0 PUBLISH
    /// is refused while `maximumUnwrittenBytes` wait for the socket: both throw ``HubMQTTError/Code/queueFull``.
    init(
        window: Int,
        writeTimeout: Duration,
        maximumWaiting: Int = .max,
        maximumUnwrittenBytes: Int = .max,
        clock: any IoTClock = SystemClock()
    ) {
        self.clock = clock
        self.window = max(1, window)
        self.writeTimeout = writeTimeout
        self.maximumWaiting = max(0, maximumWaiting)
        self.maximumUnwrittenBytes = max(0, maximumUnwrittenBytes)
    }

    // MARK: - Connection lifecycle

    /// Starts writing to a new connection: the queue starts empty, then every unacknowledged PUBLISH is queued
    /// again with DUP, in the order it was first sent.
    func attach(_ connection: TLSConnection, generation: Int, startWriting: (Writer) -> Void) {
        let (writer, woken) = self.state.withLock { state -> (Writer?, [Waiter]) in
            state.connection = connection
            state.generation = generation
            state.outbound = []
            state.writing = false
            state.lastOutbound = self.clock.now()
            // Given-up messages are not sent again, so no PUBACK for them can come on the new connection.
            state.abandonedIds.removeAll()
            for id in state.inflightOrder {
                guard var packet = state.inflight[id] else { continue }
                packet.duplicate = true
                try? packet.encode(into: &state.outbound)
            }
            // Senders held back by a drain get the room the drain left.
            state.paused = false
            var woken: [Waiter] = []
            while state.inflight.count + woken.count < self.window, !state.slotWaiters.isEmpty {
                woken.append(state.slotWaiters.removeFirst())
            }
            guard !state.outbound.isEmpty else { return (nil, woken) }
            state.writing = true
            return (Writer(connection: connection, generation: generation), woken)
        }
        if let writer { startWriting(writer) }
        for waiter in woken { waiter.continuation.resume(returning: .slotFree) }
    }

    /// Holds new QoS 1 PUBLISHes back until the next ``attach(_:generation:startWriting:)``, so that the ones in
    /// flight can be acknowledged before a planned reconnect and none is sent twice.
    func pause() {
        self.state.withLock { $0.paused = true }
    }

    /// Stops writing to the connection of `generation`; unacknowledged PUBLISHes stay for the next one. Returns
    /// the bytes queued and not yet written when no write is half done, so that the caller can still send them and a
    /// DISCONNECT itself; `nil` when the connection is not in a state to take more.
    @discardableResult
    func detach(generation: Int) -> [UInt8]? {
        let (writerWaiter, unwritten) = self.state.withLock { state -> (WriterContinuation?, [UInt8]?) in
            guard state.generation == generation, state.connection != nil else { return (nil, nil) }
            let unwritten = state.partialWrite ? nil : state.outbound
            state.connection = nil
            state.outbound = []
            state.writing = false
            return (state.takeWriterWaiter(), unwritten)
        }
        writerWaiter?.resume(returning: nil)
        return unwritten
    }

    /// Refuses every later send with `error`, fails every waiting sender with it, and returns the queued bytes not
    /// yet written (the session sends them before DISCONNECT, so a QoS 0 message sent just before is not lost).
    func shutDown(_ error: HubMQTTError) -> [UInt8] {
        let (waiters, unwritten, writerWaiter) = self.state.withLock {
            state -> ([Waiter], [UInt8], WriterContinuation?) in
            state.failure = error
            state.connection = nil
            state.writing = false
            let writerWaiter = state.takeWriterWaiter()
            defer {
                state.acknowledgementWaiters = [:]
                state.slotWaiters = []
                state.outbound = []
            }
            return (Array(state.acknowledgementWaiters.values) + state.slotWaiters, state.outbound, writerWaiter)
        }
        writerWaiter?.resume(returning: nil)
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
        return unwritten
    }

    // MARK: - Sending

    /// Queues a packet for the current connection (dropped while disconnected: the session re-sends what matters),
    /// or only for connection `generation` when given (a PUBACK belongs to the connection its PUBLISH came on).
    func enqueue(_ packet: MQTTPacket, generation: Int? = nil, startWriting: (Writer) -> Void) throws(MQTTCodecError) {
        let writer = try self.state.withLock { state throws(MQTTCodecError) -> Writer? in
            if let generation, generation != state.generation { return nil }
            return try state.queue(packet)
        }
        if let writer { startWriting(writer) }
    }

    /// Sends a QoS 0 PUBLISH now. Throws ``HubMQTTError/Code/notConnected`` while disconnected (QoS 0 is not queued)
    /// and the shutdown error after shutdown.
    func publishAtMostOnce(_ packet: PublishPacket, startWriting: (Writer) -> Void) throws {
        let writer = try self.state.withLock { state throws -> Writer? in
            if let failure = state.failure { throw failure }
            guard state.connection != nil else {
                throw HubMQTTError(.notConnected, "QoS 0 messages are not queued while disconnected")
            }
            guard state.outbound.count < self.maximumUnwrittenBytes else {
                throw HubMQTTError(.queueFull, "\(state.outbound.count) bytes already wait for the socket")
            }
            return try state.queue(.publish(packet))
        }
        if let writer { startWriting(writer) }
    }

    /// Sends a PUBLISH with QoS 1 once the window has room and returns when its PUBACK arrives. While disconnected
    /// it waits in the window and goes out with the next connection. Cancelling the task ends the wait with
    /// `CancellationError`; the message stays in flight until acknowledged. Past `deadline` (checked by
    /// ``expireWaiters(now:)``) the wait ends with ``HubMQTTError/Code/timedOut`` and the message leaves the window.
    func publishAtLeastOnce(
        _ packet: PublishPacket,
        deadline: Duration? = nil,
        deadlineError: HubMQTTError = HubMQTTError(.timedOut, "no PUBACK before the send's deadline"),
        startWriting: @Sendable (Writer) -> Void
    ) async throws {
        let spare = self.state.withLock { state -> Ticket? in
            guard let ticket = state.spareTickets.popLast() else { return nil }
            ticket.reset(deadlineError: deadlineError)
            return ticket
        }
        let ticket = spare ?? Ticket(pipeline: self, deadlineError: deadlineError)
        defer {
            // The handler below can no longer run: the ticket may serve another send.
            self.state.withLock { state in
                if state.spareTickets.count < Self.maximumSpareTickets { state.spareTickets.append(ticket) }
            }
        }
        try await withTaskCancellationHandler {
            while try await self.waitForSlotOrAcknowledgement(packet, ticket, deadline, startWriting) != .acknowledged {
            }
        } onCancel: { [ticket] in
            ticket.cancel()
        }
    }

    /// Ends every wait whose deadline has passed with ``HubMQTTError/Code/timedOut``: a message still waiting for
    /// room is dropped; one in flight leaves the window (its id is kept from reuse until its PUBACK or the next
    /// connection, and it is not sent again), and a sender waiting for room takes its place.
    /// Returns whether senders with a deadline still wait (the sweep goes on while they do).
    @discardableResult
    func expireWaiters(now: Duration) -> Bool {
        let (expired, woken, pending) = self.state.withLock { state -> ([Waiter], [Waiter], Bool) in
            var expired: [Waiter] = []
            for (id, waiter) in state.acknowledgementWaiters where waiter.deadline.map({ $0 <= now }) ?? false {
                state.acknowledgementWaiters[id] = nil
                state.inflight[id] = nil
                if let index = state.inflightOrder.firstIndex(of: id) { state.inflightOrder.remove(at: index) }
                state.abandonedIds.insert(id)
                expired.append(waiter)
            }
            state.slotWaiters.removeAll { waiter in
                guard waiter.deadline.map({ $0 <= now }) ?? false else { return false }
                expired.append(waiter)
                return true
            }
            var woken: [Waiter] = []
            while !state.paused, state.inflight.count + woken.count < self.window, !state.slotWaiters.isEmpty {
                woken.append(state.slotWaiters.removeFirst())
            }
            let pending =
                state.acknowledgementWaiters.values.contains { $0.deadline != nil }
                || state.slotWaiters.contains { $0.deadline != nil }
                || woken.contains { $0.deadline != nil }
            if !pending { state.sweeping = false }
            return (expired, woken, pending)
        }
        for waiter in expired { waiter.continuation.resume(throwing: waiter.ticket.deadlineError) }
        for waiter in woken { waiter.continuation.resume(returning: .slotFree) }
        return pending
    }

    /// Expires deadlines every 200 ms until no sender with a deadline waits.
    private func sweep() async {
        while !Task.isCancelled {
            try? await self.clock.sleep(for: .milliseconds(200))
            if !self.expireWaiters(now: self.clock.now()) { return }
        }
    }

    /// One wait: for a free slot in the window (then the caller tries again) or, once the packet is in flight, for
    /// its PUBACK. The waiter is registered in the same locked step that queues the packet, so the PUBACK cannot
    /// arrive unobserved.
    private func waitForSlotOrAcknowledgement(
        _ packet: PublishPacket,
        _ ticket: Ticket,
        _ deadline: Duration?,
        _ startWriting: @Sendable (Writer) -> Void
    ) async throws -> Wake {
        try await withFastThrowingContinuation { (continuation: SenderContinuation) in
            let waiter = Waiter(ticket: ticket, continuation: continuation, deadline: deadline)
            var startSweep = false
            let outcome = self.state.withLock { state -> Result<Writer?, any Error> in
                if ticket.cancelled { return .failure(CancellationError()) }
                if let failure = state.failure { return .failure(failure) }
                if deadline != nil && !state.sweeping {
                    state.sweeping = true
                    startSweep = true
                }
                guard !state.paused, state.inflight.count < self.window else {
                    if !ticket.admitted {
                        guard state.slotWaiters.count < self.maximumWaiting else {
                            return .failure(
                                HubMQTTError(.queueFull, "\(state.slotWaiters.count) messages already wait to be sent")
                            )
                        }
                        ticket.admitted = true
                    }
                    state.slotWaiters.append(waiter)
                    return .success(nil)
                }
                let id = state.allocatePacketId()
                var packet = packet
                packet.qos = .atLeastOnce
                packet.packetId = id
                state.inflight[id] = packet
                state.inflightOrder.append(id)
                state.acknowledgementWaiters[id] = waiter
                ticket.packetId = id
                do throws(MQTTCodecError) {
                    return .success(try state.queue(.publish(packet)))
                } catch {
                    // The session checked the topic; nothing else in a QoS 1 PUBLISH can fail to encode.
                    state.inflight[id] = nil
                    state.inflightOrder.removeLast()
                    state.acknowledgementWaiters[id] = nil
                    return .failure(
                        HubMQTTError(.invalidArgument, "the message could not be encoded: \(error.message)")
                    )
                }
            }
            if startSweep { Task { await self.sweep() } }
            switch outcome {
            case .failure(let error): continuation.resume(throwing: error)
            case .success(let writer?): startWriting(writer)
            case .success(nil): break
            }
        }
    }

    fileprivate func cancel(_ ticket: Ticket) {
        let waiter = self.state.withLock { state -> Waiter? in
            ticket.cancelled = true
            if let id = ticket.packetId, state.acknowledgementWaiters[id]?.ticket === ticket {
                return state.acknowledgementWaiters.removeValue(forKey: id)
            }
            guard let index = state.slotWaiters.firstIndex(where: { $0.ticket === ticket }) else { return nil }
            return state.slotWaiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: CancellationError())
    }

    // MARK: - Acknowledgements and ids

    /// A PUBACK: the message leaves the window, its sender returns, and one sender waiting for room is woken.
    func acknowledge(_ id: UInt16) {
        let (acknowledged, woken) = self.state.withLock { state -> (Waiter?, Waiter?) in
            // A PUBACK for a message whose sender gave up frees its id and completes nothing.
            if !state.abandonedIds.isEmpty, state.abandonedIds.remove(id) != nil { return (nil, nil) }
            guard state.inflight.removeValue(forKey: id) != nil else { return (nil, nil) }
            if let index = state.inflightOrder.firstIndex(of: id) { state.inflightOrder.remove(at: index) }
            let woken = state.slotWaiters.isEmpty || state.paused ? nil : state.slotWaiters.removeFirst()
            return (state.acknowledgementWaiters.removeValue(forKey: id), woken)
        }
        acknowledged?.continuation.resume(returning: .acknowledged)
        woken?.continuation.resume(returning: .slotFree)
    }

    /// A packet id for a request other than PUBLISH, held until ``releasePacketId(_:)``.
    func reservePacketId() -> UInt16 {
        self.state.withLock { state in
            let id = state.allocatePacketId()
            state.reservedIds.insert(id)
            return id
        }
    }

    /// Frees an id from ``reservePacketId()``.
    func releasePacketId(_ id: UInt16) {
        _ = self.state.withLock { $0.reservedIds.remove(id) }
    }

    /// Whether a deadline sweep is running (for tests).
    var isSweeping: Bool { self.state.withLock { $0.sweeping } }

    /// QoS 1 messages not yet acknowledged.
    var inflightCount: Int { self.state.withLock { $0.inflight.count } }

    /// QoS 1 senders waiting for room in the window.
    var waitingCount: Int { self.state.withLock { $0.slotWaiters.count } }

    /// When bytes last went out (for keep-alive).
    var lastOutbound: Duration { self.state.withLock { $0.lastOutbound } }

    // MARK: - Writing

    /// Hands the duty to write to the connection's writer task (``nextWriter(generation:)``), waking it if it waits.
    /// Senders only queue bytes: the writer task writes everything queued by the time it runs in one go, and no
    /// task is made per write.
    func handOff(_ writer: Writer) {
        let waiter = self.state.withLock { state -> WriterContinuation? in
            guard state.generation == writer.generation, state.connection != nil else { return nil }
            if let waiter = state.writerWaiter, waiter.generation == writer.generation {
                state.writerWaiter = nil
                return waiter.continuation
            }
            state.pendingWriter = writer
            return nil
        }
        waiter?.resume(returning: writer)
    }

    /// For the writer task of connection `generation`: the next duty to write, or `nil` once that connection is
    /// detached or the pipeline shut down. Runs on the caller's executor (the session actor, where the reader reads).
    nonisolated(nonsending) func nextWriter(generation: Int) async -> Writer? {
        await withFastContinuation { (continuation: WriterContinuation) in
            let immediate = self.state.withLock { state -> Writer?? in
                guard state.generation == generation, state.connection != nil, state.failure == nil else {
                    return .some(nil)
                }
                if let pending = state.pendingWriter, pending.generation == generation {
                    state.pendingWriter = nil
                    return .some(pending)
                }
                state.writerWaiter = (generation, continuation)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// Writes the queue until it is empty, without waiting; when the socket is full the rest is written by a task
    /// that waits for it, and the caller returns.
    func drain(_ writer: Writer) {
        let connection = writer.connection
        let generation = writer.generation
        var bytes: [UInt8] = []
        while true {
            let more = self.state.withLock { state -> Bool in
                guard state.generation == generation, state.connection != nil else { return false }
                guard !state.outbound.isEmpty else {
                    state.writing = false
                    return false
                }
                // The queue becomes the spare buffer (empty, with its capacity), the queued bytes go out.
                swap(&bytes, &state.outbound)
                swap(&state.outbound, &state.spare)
                return true
            }
            guard more else { return }
            do {
                while !bytes.isEmpty {
                    let attempt = try bytes.withUnsafeBytes { try connection.writeNow($0) }
                    guard case .done(let written) = attempt else {
                        // A copy for the task: capturing the variable itself would put it in a heap box on every
                        // drain, not only on this rare path.
                        let pending = bytes
                        self.state.withLock { $0.partialWrite = true }
                        Task { await self.finishWriting(pending, attempt, to: connection, generation: generation) }
                        return
                    }
                    if written == bytes.count {
                        bytes.removeAll(keepingCapacity: true)
                    } else {
                        bytes.removeFirst(written)
                    }
                }
            } catch {
                connection.close()
                return
            }
            self.state.withLock { state in
                state.lastOutbound = self.clock.now()
                // Hands the written buffer back, so the next write reuses it.
                if state.spare.capacity < bytes.capacity { swap(&state.spare, &bytes) }
            }
        }
    }

    /// Waits for the socket and offers the same bytes again (as OpenSSL requires after a partial write), then drains
    /// what was queued meanwhile.
    private func finishWriting(
        _ pending: [UInt8],
        _ attempt: TLSConnection.Attempt<Int>,
        to connection: TLSConnection,
        generation: Int
    ) async {
        defer { self.state.withLock { $0.partialWrite = false } }
        do {
            try await connection.finishWrite(pending, after: attempt, timeout: self.writeTimeout)
        } catch {
            connection.close()
            return
        }
        self.state.withLock { $0.lastOutbound = self.clock.now() }
        self.drain(Writer(connection: connection, generation: generation))
    }
}
