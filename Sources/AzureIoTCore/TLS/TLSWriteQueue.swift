/// Serialises writes to one connection: any task may queue bytes and they go out in order, so frames from concurrent
/// senders never interleave or overtake each other.
///
/// Whoever queues bytes while nothing is being written writes them at once on its own thread, without waiting: the
/// socket takes them, or a task is started that waits for it and writes the rest. Bytes queued meanwhile go out
/// together in the next write (one TLS record and one system call for many small frames). The queue and the bytes
/// being written swap two buffers, so a steady stream of writes allocates nothing.
///
/// A failed write closes the connection (the reader then sees it) and drops what is still queued. So does a peer
/// that does not read: once more than `maximumPendingBytes` wait, the queue closes the connection rather than grow
/// (``overflowed`` says so).
package final class TLSWriteQueue: Sendable {
    private struct State {
        var pending: [UInt8] = []
        /// The buffer the last write emptied, kept for the next swap.
        var spare: [UInt8] = []
        var writing = false
        /// Set by ``hold(_:)``: queued bytes wait for it to be cleared.
        var held = false
        var finished = false
        var overflowed = false
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    private let connection: TLSConnection
    private let timeout: Duration
    private let maximumPendingBytes: Int
    private let state = AdaptiveLock(State())

    /// A queue writing to `connection`, each write within `timeout`, holding at most `maximumPendingBytes` unsent.
    package init(
        connection: TLSConnection,
        timeout: Duration = .seconds(30),
        maximumPendingBytes: Int = 4 * 1024 * 1024
    ) {
        self.connection = connection
        self.timeout = timeout
        self.maximumPendingBytes = maximumPendingBytes
    }

    /// Whether the peer stopped reading long enough for the queue to pass its limit (the connection is closed).
    package var overflowed: Bool { self.state.withLock { $0.overflowed } }

    /// Queues bytes to send; `false` when the queue is finished or the bytes would pass the limit (which closes the
    /// connection).
    @discardableResult
    package func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { self.send($0) }
    }

    /// Queues a copy of `bytes`; `false` when the queue is finished or the bytes would pass the limit (which closes
    /// the connection).
    @discardableResult
    package func send(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let (accepted, start, overflow) = self.state.withLock { state -> (Bool, Bool, Bool) in
            guard !state.finished else { return (false, false, false) }
            guard state.pending.count + bytes.count <= self.maximumPendingBytes else {
                state.overflowed = true
                state.finished = true
                state.pending = []
                return (false, false, true)
            }
            state.pending.append(contentsOf: bytes)
            guard !state.writing, !state.held else { return (true, false, false) }
            state.writing = true
            return (true, true, false)
        }
        if overflow { self.connection.close() }
        if start { self.drain() }
        return accepted
    }

    /// While held, queued bytes wait instead of going out: a reader that already has more requests buffered holds
    /// the queue while it answers them, so that the answers leave in one write (one TLS record) rather than one
    /// each. `false` writes what waited; hold only while there is buffered input to work on, never across a wait for
    /// the peer.
    package func hold(_ holding: Bool) {
        let start = self.state.withLock { state -> Bool in
            state.held = holding
            guard !holding, !state.writing, !state.pending.isEmpty, !state.finished else { return false }
            state.writing = true
            return true
        }
        if start { self.drain() }
    }

    /// Writes the queue until it is empty without waiting; when the socket is full, a task waits for it and writes
    /// the rest, and the caller returns.
    private func drain() {
        var bytes: [UInt8] = []
        while true {
            let more = self.state.withLock { state -> Bool in
                guard !state.pending.isEmpty else {
                    state.writing = false
                    return false
                }
                // The queue becomes the spare buffer (empty, with its capacity); the queued bytes go out.
                swap(&bytes, &state.pending)
                swap(&state.pending, &state.spare)
                return true
            }
            guard more else { break }
            do {
                let attempt = try bytes.withUnsafeBytes { try self.connection.writeNow($0) }
                guard case .done(let written) = attempt, written == bytes.count else {
                    // A copy for the task: capturing the variable itself would put it in a heap box on every drain,
                    // not only on this rare path.
                    let rest = bytes
                    Task { await self.finishWriting(rest, attempt) }
                    return
                }
            } catch {
                self.failed()
                return
            }
            bytes.removeAll(keepingCapacity: true)
            // Hands the written buffer back, so that the next write reuses it.
            self.state.withLock { state in
                if state.spare.capacity < bytes.capacity { swap(&state.spare, &bytes) }
            }
        }
        self.resumeDrained()
    }

    /// Waits for the socket and offers the same bytes again (as OpenSSL requires after a partial write), then
    /// writes what was queued meanwhile.
    private func finishWriting(_ pending: [UInt8], _ attempt: TLSConnection.Attempt<Int>) async {
        do {
            try await self.connection.finishWrite(pending, after: attempt, timeout: self.timeout)
        } catch {
            self.failed()
            return
        }
        self.drain()
    }

    /// A write failed: the connection closes and nothing more is written.
    private func failed() {
        self.connection.close()
        self.state.withLock { state in
            state.pending = []
            state.writing = false
        }
        self.resumeDrained()
    }

    private func resumeDrained() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.writing, !state.drained.isEmpty else { return [] }
            defer { state.drained = [] }
            return state.drained
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Sends what is queued, then refuses more.
    package func finish() async {
        // What a hold kept back goes out first.
        self.hold(false)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = self.state.withLock { state -> Bool in
                state.finished = true
                guard state.writing else { return true }
                state.drained.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
