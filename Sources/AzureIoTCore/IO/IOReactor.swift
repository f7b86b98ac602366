import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One dedicated thread that waits with `poll(2)` for sockets to become readable or writable and resumes the
/// suspended tasks that asked, so no socket wait ever blocks Swift's cooperative thread pool.
///
/// Every wait has an optional deadline (resumed with ``AzureIoTError/Code/timedOut``) and honours task
/// cancellation (resumed with `CancellationError`).
final class IOReactor: Sendable {
    /// The process-wide reactor, started on first use.
    static let shared = IOReactor()

    /// What a waiter waits for.
    struct Interest: OptionSet, Sendable {
        let rawValue: Int16
        static let readable = Interest(rawValue: Int16(POLLIN))
        static let writable = Interest(rawValue: Int16(POLLOUT))
    }

    private struct Waiter {
        var fd: Int32
        var interest: Interest
        var deadline: UInt64?
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        var cancelledBeforeRegistration: Set<UInt64> = []
        var nextId: UInt64 = 1
    }

    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private init() {
        // A write to a socket the peer closed must fail with EPIPE, not kill the process: OpenSSL writes with
        // write(2), which has no MSG_NOSIGNAL. Only a default disposition is changed; an application's handler stays.
        var current = sigaction()
        if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
            signal(SIGPIPE, SIG_IGN)
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("IOReactor: pipe() failed with errno \(errno)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]
        let thread = Thread { [self] in self.run() }
        thread.name = "AzureIoT.IOReactor"
        thread.start()
    }

    /// Suspends until `fd` is ready for `interest`, the deadline (monotonic nanoseconds) passes, or the task is
    /// cancelled. Error and hang-up conditions count as ready: the next socket call reports them.
    func wait(fd: Int32, for interest: Interest, deadline: UInt64?) async throws {
        let id = self.state.withLock { state -> UInt64 in
            defer { state.nextId += 1 }
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = self.state.withLock { state -> Bool in
                    if state.cancelledBeforeRegistration.remove(id) != nil { return true }
                    state.waiters[id] = Waiter(fd: fd, interest: interest, deadline: deadline, continuation: continuation)
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    self.wake()
                }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> Waiter? in
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                state.cancelledBeforeRegistration.insert(id)
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Resumes every waiter on `fd` with `error` (used before closing a socket so nobody polls a stale descriptor).
    func failWaiters(fd: Int32, with error: AzureIoTError) {
        let failed = self.state.withLock { state -> [Waiter] in
            let ids = state.waiters.filter { $0.value.fd == fd }.map(\.key)
            return ids.compactMap { state.waiters.removeValue(forKey: $0) }
        }
        for waiter in failed { waiter.continuation.resume(throwing: error) }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(self.wakeWrite, &byte, 1)
    }

    private func run() {
        var pollSet: [pollfd] = []
        var ids: [UInt64] = []
        while true {
            pollSet.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: self.wakeRead, events: Int16(POLLIN), revents: 0))
            let nearest = self.state.withLock { state -> UInt64? in
                var nearest: UInt64?
                for (id, waiter) in state.waiters {
                    pollSet.append(pollfd(fd: waiter.fd, events: waiter.interest.rawValue, revents: 0))
                    ids.append(id)
                    if let deadline = waiter.deadline { nearest = min(nearest ?? deadline, deadline) }
                }
                return nearest
            }
            var timeout: Int32 = -1
            if let nearest {
                let now = MonotonicClock.now()
                timeout = nearest <= now ? 0 : Int32(clamping: (nearest - now + 999_999) / 1_000_000)
            }
            let result = poll(&pollSet, nfds_t(pollSet.count), timeout)
            if result < 0 && errno != EINTR { continue }
            if pollSet[0].revents != 0 { self.drainWakePipe() }

            let now = MonotonicClock.now()
            var ready: [Waiter] = []
            var expired: [Waiter] = []
            self.state.withLock { state in
                for (index, id) in ids.enumerated() where pollSet[index + 1].revents != 0 {
                    if let waiter = state.waiters.removeValue(forKey: id) { ready.append(waiter) }
                }
                for (id, waiter) in state.waiters {
                    if let deadline = waiter.deadline, deadline <= now {
                        state.waiters.removeValue(forKey: id)
                        expired.append(waiter)
                    }
                }
            }
            for waiter in ready { waiter.continuation.resume() }
            for waiter in expired {
                waiter.continuation.resume(throwing: AzureIoTError(.timedOut, "the operation timed out"))
            }
        }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while Glibc.read(self.wakeRead, &buffer, buffer.count) > 0 {}
    }
}
