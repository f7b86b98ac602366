private import CAzureIoTShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One dedicated thread that waits with `epoll(7)` for sockets to become readable or writable and resumes the
/// suspended tasks that asked, so no socket wait ever blocks Swift's cooperative thread pool.
///
/// Waiters arm their descriptor themselves (`EPOLLONESHOT`, from any thread), so a wait costs one `epoll_ctl` and
/// the reactor thread is only woken (through an eventfd) when a new deadline is earlier than the one it sleeps on.
/// Every wait has an optional deadline (resumed with ``AzureIoTError/Code/timedOut``) and honours task
/// cancellation (resumed with `CancellationError`).
package final class IOReactor: Sendable {
    /// The process-wide reactor, started on first use.
    package static let shared = IOReactor()

    /// What a waiter waits for.
    package struct Interest: OptionSet, Sendable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }
        package static let readable = Interest(rawValue: UInt32(AZI_READABLE))
        package static let writable = Interest(rawValue: UInt32(AZI_WRITABLE))
    }

    private struct Waiter {
        var id: UInt64
        var interest: Interest
        var deadline: UInt64?
        var continuation: ReactorContinuation
    }

    typealias ReactorContinuation = FastContinuation<Void, any Error>

    private struct Descriptor {
        var waiters: [Waiter] = []
        var inEpollSet = false
        var mask: UInt32 { self.waiters.reduce(0) { $0 | $1.interest.rawValue } }
    }

    private struct State {
        var descriptors: [Int32: Descriptor] = [:]
        var waiterDescriptor: [UInt64: Int32] = [:]
        var deadlines: [UInt64: UInt64] = [:]
        var cancelledBeforeRegistration: Set<UInt64> = []
        var nextId: UInt64 = 1
        /// The deadline the reactor thread sleeps until (nil: no timeout).
        var sleepingUntil: UInt64?
    }

    private let state = AdaptiveLock(State())
    private let epollFD: Int32
    private let wakeFD: Int32

    private init() {
        // A write to a socket the peer closed must fail with EPIPE, not kill the process: OpenSSL writes with
        // write(2), which has no MSG_NOSIGNAL. Only a default disposition is changed; an application's handler stays.
        var current = sigaction()
        if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
            signal(SIGPIPE, SIG_IGN)
        }
        self.epollFD = azi_epoll_create()
        self.wakeFD = azi_eventfd()
        guard self.epollFD >= 0, self.wakeFD >= 0 else {
            fatalError("IOReactor: epoll/eventfd failed with errno \(errno)")
        }
        // The wake descriptor stays armed: it is re-armed after every wake-up in `run`.
        _ = azi_epoll_arm(self.epollFD, self.wakeFD, Int32(AZI_READABLE), 0)
        let thread = Thread { [self] in self.run() }
        thread.name = "AzureIoT.IOReactor"
        thread.start()
    }

    /// Suspends until `fd` is ready for `interest`, the deadline (monotonic nanoseconds) passes, or the task is
    /// cancelled. Error and hang-up conditions count as ready: the next socket call reports them.
    nonisolated(nonsending) package func wait(fd: Int32, for interest: Interest, deadline: UInt64?) async throws {
        let id = self.state.withLock { state -> UInt64 in
            defer { state.nextId += 1 }
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withFastThrowingContinuation { (continuation: ReactorContinuation) in
                let (cancelled, wake) = self.state.withLock { state -> (Bool, Bool) in
                    if state.cancelledBeforeRegistration.remove(id) != nil { return (true, false) }
                    // Taken out and put back (not copied), so that the waiter array keeps its storage from wait to
                    // wait and is never copied on write.
                    var descriptor = state.descriptors.removeValue(forKey: fd) ?? Descriptor()
                    descriptor.waiters.append(
                        Waiter(id: id, interest: interest, deadline: deadline, continuation: continuation)
                    )
                    self.arm(fd, &descriptor)
                    state.descriptors[fd] = descriptor
                    state.waiterDescriptor[id] = fd
                    guard let deadline else { return (false, false) }
                    state.deadlines[id] = deadline
                    return (false, state.sleepingUntil.map { deadline < $0 } ?? true)
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else if wake {
                    self.wake()
                }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> Waiter? in
                guard let waiter = Self.removeWaiter(id, from: &state) else {
                    state.cancelledBeforeRegistration.insert(id)
                    return nil
                }
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Resumes every waiter on `fd` with `error` and forgets the descriptor (called before a socket is shut down).
    package func failWaiters(fd: Int32, with error: AzureIoTError) {
        let failed = self.state.withLock { state -> [Waiter] in
            guard let descriptor = state.descriptors.removeValue(forKey: fd) else { return [] }
            for waiter in descriptor.waiters {
                state.waiterDescriptor.removeValue(forKey: waiter.id)
                state.deadlines.removeValue(forKey: waiter.id)
            }
            if descriptor.inEpollSet { _ = azi_epoll_remove(self.epollFD, fd) }
            return descriptor.waiters
        }
        for waiter in failed { waiter.continuation.resume(throwing: error) }
    }

    /// (Re-)arms `fd` for the union of its waiters' interests, one shot.
    private func arm(_ fd: Int32, _ descriptor: inout Descriptor) {
        let mask = descriptor.mask
        guard mask != 0 else { return }
        // MOD when in the set; ADD for a new descriptor, or a closed-and-reused one that epoll already dropped.
        _ = azi_epoll_arm(self.epollFD, fd, Int32(mask), descriptor.inEpollSet ? 1 : 0)
        descriptor.inEpollSet = true
    }

    private static func removeWaiter(_ id: UInt64, from state: inout State) -> Waiter? {
        guard let fd = state.waiterDescriptor.removeValue(forKey: id),
            var descriptor = state.descriptors.removeValue(forKey: fd)
        else {
            return nil
        }
        defer { state.descriptors[fd] = descriptor }
        guard let index = descriptor.waiters.firstIndex(where: { $0.id == id }) else { return nil }
        state.deadlines.removeValue(forKey: id)
        return descriptor.waiters.remove(at: index)
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(self.wakeFD, &one, 8)
    }

    private func run() {
        var fds = [Int32](repeating: 0, count: 64)
        var readiness = [Int32](repeating: 0, count: 64)
        // Reused from turn to turn: a steady stream of readiness allocates nothing here.
        var ready: [Waiter] = []
        var expired: [Waiter] = []
        while true {
            let timeout = self.state.withLock { state -> Int32 in
                let nearest = state.deadlines.values.min()
                state.sleepingUntil = nearest
                guard let nearest else { return -1 }
                let now = MonotonicClock.now()
                return nearest <= now ? 0 : Int32(clamping: (nearest - now + 999_999) / 1_000_000)
            }
            let count = azi_epoll_wait(self.epollFD, &fds, &readiness, 64, timeout)
            ready.removeAll(keepingCapacity: true)
            expired.removeAll(keepingCapacity: true)
            self.state.withLock { state in
                state.sleepingUntil = 0
                for index in 0..<max(0, Int(count)) {
                    let fd = fds[index]
                    if fd == self.wakeFD {
                        var value: UInt64 = 0
                        _ = Glibc.read(self.wakeFD, &value, 8)
                        _ = azi_epoll_arm(self.epollFD, self.wakeFD, Int32(AZI_READABLE), 1)
                        continue
                    }
                    // Taken out and put back, so the waiter array is changed in place and keeps its storage.
                    guard var descriptor = state.descriptors.removeValue(forKey: fd) else { continue }
                    let fired = UInt32(readiness[index])
                    let failing = fired & UInt32(AZI_FAILED) != 0
                    descriptor.waiters.removeAll { waiter in
                        guard failing || waiter.interest.rawValue & fired != 0 else { return false }
                        ready.append(waiter)
                        state.waiterDescriptor.removeValue(forKey: waiter.id)
                        state.deadlines.removeValue(forKey: waiter.id)
                        return true
                    }
                    self.arm(fd, &descriptor)
                    state.descriptors[fd] = descriptor
                }
                let now = MonotonicClock.now()
                for (id, deadline) in state.deadlines where deadline <= now {
                    if let waiter = Self.removeWaiter(id, from: &state) { expired.append(waiter) }
                }
            }
            for waiter in ready { waiter.continuation.resume() }
            for waiter in expired {
                waiter.continuation.resume(throwing: AzureIoTError(.timedOut, "the operation timed out"))
            }
        }
    }
}
