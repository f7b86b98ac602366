/// Serialises writes to one connection: any task may queue bytes, one writer task sends them in order, so frames from
/// concurrent senders never interleave or overtake each other. Bytes queued while a write is in progress go out
/// together in the next write (one TLS record and one system call for many small frames). A failed write closes the
/// connection (the reader then sees it) and drops what is still queued. So does a peer that does not read: once more
/// than `maximumPendingBytes` wait, the queue closes the connection rather than grow (``overflowed`` says so).
package final class TLSWriteQueue: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var writing = false
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
        let (accepted, start, overflow) = self.state.withLock { state -> (Bool, Bool, Bool) in
            guard !state.finished else { return (false, false, false) }
            guard state.pending.count + bytes.count <= self.maximumPendingBytes else {
                state.overflowed = true
                state.finished = true
                state.pending = []
                return (false, false, true)
            }
            state.pending += bytes
            guard !state.writing else { return (true, false, false) }
            state.writing = true
            return (true, true, false)
        }
        if overflow { self.connection.close() }
        if start { Task { await self.drain() } }
        return accepted
    }

    private func drain() async {
        while true {
            let bytes = self.state.withLock { state -> [UInt8]? in
                guard !state.pending.isEmpty else {
                    state.writing = false
                    return nil
                }
                defer { state.pending = [] }
                return state.pending
            }
            guard let bytes else { break }
            do {
                try await self.connection.write(bytes, timeout: self.timeout)
            } catch {
                self.connection.close()
                self.state.withLock { state in
                    state.pending = []
                    state.writing = false
                }
                break
            }
        }
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.writing else { return [] }
            defer { state.drained = [] }
            return state.drained
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Sends what is queued, then refuses more.
    package func finish() async {
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
