import AzureIoTCore
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a peer process prints, read from its pipe as it arrives (through the SDK's reactor, no thread held), with
/// waits that end when the text they want arrives: no polling.
final class PeerOutput: Sendable {
    private enum Goal {
        /// Text that makes the predicate true (checked on the whole text at every arrival: for short outputs).
        case text(@Sendable (String) -> Bool)
        /// These bytes anywhere in the output (only what arrived since the last check is searched, so a long
        /// output that streams in costs nothing extra).
        case contains([UInt8])
        /// The end of the pipe (every writer closed it).
        case end
    }

    private struct Waiter {
        let goal: Goal
        let continuation: CheckedContinuation<Void, Never>
        /// For `.contains`: how much of the output has been searched.
        var searched = 0
    }

    private struct State {
        var bytes: [UInt8] = []
        /// The pipe's read end (a descriptor of our own); -1 once its end was read.
        var descriptor: Int32
        var ended = false
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0

        /// Takes out the waiters whose goal is met now.
        mutating func satisfied() -> [CheckedContinuation<Void, Never>] {
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, var waiter) in self.waiters {
                if self.meets(waiter.goal, searched: &waiter.searched) {
                    ready.append(waiter.continuation)
                    self.waiters[id] = nil
                } else {
                    self.waiters[id] = waiter
                }
            }
            return ready
        }

        func meets(_ goal: Goal, searched: inout Int) -> Bool {
            if self.ended { return true }
            switch goal {
            case .text(let predicate):
                return predicate(String(decoding: self.bytes, as: UTF8.self))
            case .contains(let needle):
                // Start far enough back to find a match that straddles the previous end.
                let start = max(0, searched - needle.count + 1)
                searched = self.bytes.count
                return Self.find(needle, in: self.bytes[start...])
            case .end:
                return false
            }
        }

        static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Bool {
            guard let first = needle.first else { return true }
            guard haystack.count >= needle.count else { return false }
            var index = haystack.startIndex
            let last = haystack.endIndex - needle.count
            while index <= last {
                if haystack[index] == first && haystack[index..<(index + needle.count)].elementsEqual(needle) {
                    return true
                }
                index += 1
            }
            return false
        }
    }

    private let state: Mutex<State>

    /// Starts reading `descriptor` (a copy is taken; the caller keeps and closes its own).
    init(reading descriptor: Int32) throws {
        let own = dup(descriptor)
        guard own >= 0 else { throw TestFailure("dup failed: \(String(cString: strerror(errno)))") }
        _ = fcntl(own, F_SETFL, fcntl(own, F_GETFL) | O_NONBLOCK)
        self.state = Mutex(State(descriptor: own))
        Task.detached { await self.readUntilEnd() }
    }

    /// Everything read so far.
    var text: String { String(decoding: self.state.withLock { $0.bytes }, as: UTF8.self) }

    /// Whether the pipe's end was read.
    var hasEnded: Bool { self.state.withLock { $0.ended } }

    /// Reads what the pipe holds now, without waiting: what a killed peer wrote last is all in the pipe once the
    /// peer is reaped, and this makes it part of ``text`` at once.
    func readNow() { _ = self.readAvailable(closing: false) }

    /// Waits, at most `timeout`, until the text satisfies `predicate` (checked on every arrival); returns whether it
    /// does.
    func wait(timeout: Duration, until predicate: @escaping @Sendable (String) -> Bool) async -> Bool {
        await self.wait(for: .text(predicate), timeout: timeout)
        return predicate(self.text)
    }

    /// Waits, at most `timeout`, until the output contains `text`; returns whether it does.
    func wait(timeout: Duration, forText text: String) async -> Bool {
        let needle = Array(text.utf8)
        await self.wait(for: .contains(needle), timeout: timeout)
        return self.state.withLock { State.find(needle, in: $0.bytes[...]) }
    }

    /// Waits, at most `timeout`, until the pipe's end was read (the peer and every child of it closed it); returns
    /// whether it was.
    func waitForEnd(timeout: Duration) async -> Bool {
        await self.wait(for: .end, timeout: timeout)
        return self.state.withLock { $0.ended }
    }

    private func wait(for goal: Goal, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitWithoutLimit(for: goal) }
            // The time-out is a limit on the wait, not a pause the test depends on: the wait normally ends first.
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitWithoutLimit(for goal: Goal) async {
        let id = self.state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state in
                    // A cancellation that came before this registration found nothing to resume.
                    var searched = 0
                    if state.meets(goal, searched: &searched) || Task.isCancelled { return true }
                    state.waiters[id] = Waiter(goal: goal, continuation: continuation, searched: searched)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    private enum ReadOutcome {
        case wouldBlock(Int32)
        case ended
    }

    /// Reads until the pipe is empty or ended, appending under the lock (so a concurrent ``readNow()`` keeps the
    /// order), then resumes the waiters whose goal is met. Only the reading task closes the descriptor at the end
    /// (`closing`), so it stays valid while that task waits on it.
    private func readAvailable(closing: Bool) -> ReadOutcome {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let (outcome, ready) = self.state.withLock { state -> (ReadOutcome, [CheckedContinuation<Void, Never>]) in
            guard state.descriptor >= 0 else { return (.ended, []) }
            var outcome = ReadOutcome.ended
            while true {
                let count = read(state.descriptor, &chunk, chunk.count)
                if count > 0 {
                    state.bytes += chunk[..<count]
                    continue
                }
                if count < 0 && errno == EINTR { continue }
                if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { outcome = .wouldBlock(state.descriptor) }
                break
            }
            if case .ended = outcome {
                state.ended = true
                if closing {
                    // Out of the reactor's set first: the pipe's other descriptor keeps the file open, and epoll
                    // drops a registration only when the file closes.
                    IOReactor.shared.failWaiters(
                        fd: state.descriptor,
                        with: AzureIoTError(.connectionClosed, "the pipe ended")
                    )
                    close(state.descriptor)
                    state.descriptor = -1
                }
            }
            return (outcome, state.satisfied())
        }
        for continuation in ready { continuation.resume() }
        return outcome
    }

    private func readUntilEnd() async {
        while case .wouldBlock(let descriptor) = self.readAvailable(closing: true) {
            do {
                try await IOReactor.shared.wait(fd: descriptor, for: .readable, deadline: nil)
            } catch {
                return
            }
        }
    }
}
