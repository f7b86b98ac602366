import Dispatch
import Foundation
import Synchronization

/// A few threads of their own for calls that block (`getaddrinfo`), so that they never hold a thread of Swift's
/// cooperative pool. On Linux, `DispatchQueue.global()` runs on the very threads the pool's tasks run on: a lookup
/// stuck on a slow DNS server there stalls every task in the process.
///
/// Threads are started on demand up to `maximumThreads` and then wait for more work; calls beyond that queue in
/// order. A queued call whose caller has given up can tell by itself and return at once.
package final class BlockingCallThreads: Sendable {
    /// The threads name resolution uses.
    package static let shared = BlockingCallThreads(name: "AzureIoT.BlockingCalls", maximumThreads: 4)

    private struct State {
        var calls: [@Sendable () -> Void] = []
        /// The next call to take from `calls`.
        var next = 0
        var threads = 0
        /// Threads waiting on `available`.
        var idle = 0
    }

    private let name: String
    private let maximumThreads: Int
    private let state = Mutex(State())
    /// One signal per idle thread woken for a call.
    private let available = DispatchSemaphore(value: 0)

    package init(name: String, maximumThreads: Int) {
        self.name = name
        self.maximumThreads = max(1, maximumThreads)
    }

    /// Runs `call` on one of the threads, as soon as one is free.
    package func run(_ call: @escaping @Sendable () -> Void) {
        enum Start { case wake, spawn, queued }
        let start = self.state.withLock { state -> Start in
            state.calls.append(call)
            if state.idle > 0 {
                state.idle -= 1
                return .wake
            }
            guard state.threads < self.maximumThreads else { return .queued }
            state.threads += 1
            return .spawn
        }
        switch start {
        case .wake:
            self.available.signal()
        case .spawn:
            let thread = Thread { [self] in self.work() }
            thread.name = self.name
            thread.start()
        case .queued:
            break
        }
    }

    /// How many threads have been started (for tests).
    package var threadCount: Int { self.state.withLock { $0.threads } }
    /// How many threads wait for a call (for tests).
    package var idleCount: Int { self.state.withLock { $0.idle } }

    private func work() {
        while true {
            let call = self.state.withLock { state -> (@Sendable () -> Void)? in
                guard state.next < state.calls.count else {
                    state.calls.removeAll(keepingCapacity: true)
                    state.next = 0
                    state.idle += 1
                    return nil
                }
                let call = state.calls[state.next]
                state.next += 1
                // Taken calls are dropped once they are half the array: amortised constant time, bounded memory.
                if state.next * 2 >= state.calls.count {
                    state.calls.removeFirst(state.next)
                    state.next = 0
                }
                return call
            }
            if let call {
                call()
            } else {
                self.available.wait()
            }
        }
    }
}
