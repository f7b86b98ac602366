import AzureIoTCore

/// Lets at most `limit` TLS handshakes run at once across the emulator's listeners; the others wait their turn, in
/// order, for at most a handshake time-out. Thousands of clients that connect at the same moment then finish their
/// handshakes one batch after another instead of all slowing down together until every one of them times out and
/// retries (5,000 clients connecting at once in one process, debug build: 60 s until the last was connected without the
/// gate, 16 s with it).
final class HandshakeGate: Sendable {
    private struct State {
        var running = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextId: UInt64 = 0
    }

    private let state = AdaptiveLock(State())
    let limit: Int

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Waits for a slot; `false` when none came within `timeout` or the task was cancelled (the caller then drops the
    /// connection). Every `true` must be followed by one ``leave()``.
    func enter(timeout: Duration) async -> Bool {
        let id = self.state.withLock { state -> UInt64? in
            if state.running < self.limit && state.waiters.isEmpty {
                state.running += 1
                return nil
            }
            state.nextId &+= 1
            return state.nextId
        }
        guard let id else { return true }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.abandon(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let admitted = self.state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    if state.running < self.limit && state.waiters.isEmpty {
                        state.running += 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let admitted { continuation.resume(returning: admitted) }
            }
        } onCancel: {
            self.abandon(id)
        }
    }

    /// Gives a slot back; the longest waiter gets it.
    func leave() {
        let next = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.waiters.isEmpty else {
                state.running = max(0, state.running - 1)
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume(returning: true)
    }

    private func abandon(_ id: UInt64) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        waiter?.resume(returning: false)
    }

    /// Handshakes running now (for tests).
    var running: Int { self.state.withLock { $0.running } }
}
