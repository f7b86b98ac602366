private import CAzureIoTShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Waits with `epoll(7)` for sockets to become readable or writable and resumes the suspended tasks that asked, so
/// no socket wait ever blocks Swift's cooperative thread pool.
///
/// Waiters arm their descriptor themselves (`EPOLLONESHOT`, from any thread), so a wait costs one `epoll_ctl`. The
/// epoll descriptor itself is watched by a dispatch read source on the global queue, and deadlines by one dispatch
/// timer, re-armed only when a new deadline is earlier than the one it is set for. Readiness is therefore collected
/// (with a `epoll_wait` that never blocks) on a thread of the pool that runs the resumed tasks: a resumption does not
/// cross from a thread outside the pool, which would cost libdispatch two allocations per wake-up.
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
        /// The deadline the timer is set for (nil: not set, or already fired).
        var timerDeadline: UInt64?
    }

    /// What one handler keeps from call to call, so that a steady stream of readiness allocates nothing. Each
    /// dispatch source runs its handler serially, so one of these per source is never shared.
    private final class Scratch: @unchecked Sendable {
        var fds = [Int32](repeating: 0, count: 64)
        var readiness = [Int32](repeating: 0, count: 64)
        var woken: [Waiter] = []
    }

    private let state = AdaptiveLock(State())
    private let epollFD: Int32
    /// Why the epoll descriptor could not be made (every wait then fails with it), or nil.
    private let unavailable: AzureIoTError?
    /// Watches the epoll descriptor, which is readable while any armed socket is ready. Kept for the life of the
    /// process (the reactor is never released).
    nonisolated(unsafe) private let readinessSource: (any DispatchSourceRead)?
    /// Fires at the earliest deadline.
    nonisolated(unsafe) private let deadlineTimer: (any DispatchSourceTimer)?

    private init() {
        // A write to a socket the peer closed must fail with EPIPE, not kill the process: OpenSSL writes with
        // write(2), which has no MSG_NOSIGNAL. Only a default disposition is changed; an application's handler stays.
        var current = sigaction()
        if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
            signal(SIGPIPE, SIG_IGN)
        }
        self.epollFD = azi_epoll_create()
        guard self.epollFD >= 0 else {
            // Out of descriptors or kernel memory: sockets cannot be waited on, so every wait says so.
            self.unavailable = AzureIoTError(.ioFailure, "epoll_create1 failed: \(TCPSocket.errnoText())")
            self.readinessSource = nil
            self.deadlineTimer = nil
            return
        }
        self.unavailable = nil
        // The global queue's threads are the ones Swift's global executor runs tasks on: a waiter resumed from
        // there is enqueued with the thread's cached continuations, where a thread of our own would allocate two
        // per wake-up. The handlers never block (`epoll_wait` with no timeout).
        let queue = DispatchQueue.global()
        let readinessSource = DispatchSource.makeReadSource(fileDescriptor: self.epollFD, queue: queue)
        let deadlineTimer = DispatchSource.makeTimerSource(queue: queue)
        self.readinessSource = readinessSource
        self.deadlineTimer = deadlineTimer
        let readinessScratch = Scratch()
        let timerScratch = Scratch()
        readinessSource.setEventHandler { [self] in self.collectReadiness(readinessScratch) }
        deadlineTimer.setEventHandler { [self] in self.expireDeadlines(timerScratch) }
        readinessSource.activate()
        deadlineTimer.activate()
    }

    /// Suspends until `fd` is ready for `interest`, the deadline (monotonic nanoseconds) passes, or the task is
    /// cancelled. Error and hang-up conditions count as ready: the next socket call reports them.
    nonisolated(nonsending) package func wait(fd: Int32, for interest: Interest, deadline: UInt64?) async throws {
        if let unavailable { throw unavailable }
        let id = self.state.withLock { state -> UInt64 in
            defer { state.nextId += 1 }
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withFastThrowingContinuation { (continuation: ReactorContinuation) in
                let cancelled = self.state.withLock { state -> Bool in
                    if state.cancelledBeforeRegistration.remove(id) != nil { return true }
                    // Taken out and put back (not copied), so that the waiter array keeps its storage from wait to
                    // wait and is never copied on write.
                    var descriptor = state.descriptors.removeValue(forKey: fd) ?? Descriptor()
                    descriptor.waiters.append(
                        Waiter(id: id, interest: interest, deadline: deadline, continuation: continuation)
                    )
                    self.arm(fd, &descriptor)
                    state.descriptors[fd] = descriptor
                    state.waiterDescriptor[id] = fd
                    guard let deadline else { return false }
                    state.deadlines[id] = deadline
                    if state.timerDeadline.map({ deadline < $0 }) ?? true {
                        self.setTimer(for: deadline, in: &state)
                    }
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
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

    /// How many waits on `fd` are registered (for tests: a wait has reached the reactor).
    package func waiterCount(fd: Int32) -> Int {
        self.state.withLock { $0.descriptors[fd]?.waiters.count ?? 0 }
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

    /// Sets the timer to fire at `deadline` (monotonic nanoseconds). Called with the lock held, so that the timer's
    /// setting and `timerDeadline` always agree.
    private func setTimer(for deadline: UInt64, in state: inout State) {
        state.timerDeadline = deadline
        let now = MonotonicClock.now()
        // At most a day ahead: a later deadline is set again when the timer fires.
        let delay = deadline > now ? min(deadline - now, 86_400_000_000_000) : 0
        self.deadlineTimer?.schedule(
            deadline: .now() + .nanoseconds(Int(delay)),
            leeway: .milliseconds(1)
        )
    }

    /// The read source's handler: takes every readiness epoll has now and resumes the waiters it satisfies.
    private func collectReadiness(_ scratch: Scratch) {
        scratch.woken.removeAll(keepingCapacity: true)
        self.state.withLock { state in
            // Until epoll has fewer events than fit: whether dispatch watches the descriptor edge- or
            // level-triggered, nothing ready is left behind.
            var count = Int32(scratch.fds.count)
            while count == Int32(scratch.fds.count) {
                count = azi_epoll_wait(self.epollFD, &scratch.fds, &scratch.readiness, Int32(scratch.fds.count), 0)
                for index in 0..<max(0, Int(count)) {
                    let fd = scratch.fds[index]
                    // Taken out and put back, so the waiter array is changed in place and keeps its storage.
                    guard var descriptor = state.descriptors.removeValue(forKey: fd) else { continue }
                    let fired = UInt32(scratch.readiness[index])
                    let failing = fired & UInt32(AZI_FAILED) != 0
                    descriptor.waiters.removeAll { waiter in
                        guard failing || waiter.interest.rawValue & fired != 0 else { return false }
                        scratch.woken.append(waiter)
                        state.waiterDescriptor.removeValue(forKey: waiter.id)
                        state.deadlines.removeValue(forKey: waiter.id)
                        return true
                    }
                    self.arm(fd, &descriptor)
                    state.descriptors[fd] = descriptor
                }
            }
        }
        for waiter in scratch.woken { waiter.continuation.resume() }
        scratch.woken.removeAll(keepingCapacity: true)
    }

    /// The timer's handler: resumes every waiter whose deadline has passed and sets the timer for the next one.
    private func expireDeadlines(_ scratch: Scratch) {
        scratch.woken.removeAll(keepingCapacity: true)
        self.state.withLock { state in
            let now = MonotonicClock.now()
            var next: UInt64?
            for (id, deadline) in state.deadlines {
                if deadline <= now {
                    if let waiter = Self.removeWaiter(id, from: &state) { scratch.woken.append(waiter) }
                } else if next.map({ deadline < $0 }) ?? true {
                    next = deadline
                }
            }
            if let next {
                self.setTimer(for: next, in: &state)
            } else {
                state.timerDeadline = nil
            }
        }
        for waiter in scratch.woken {
            waiter.continuation.resume(throwing: AzureIoTError(.timedOut, "the operation timed out"))
        }
        scratch.woken.removeAll(keepingCapacity: true)
    }
}
