import AzureIoTCore
import Synchronization

/// A virtual clock for timer-driven tests: time moves only when the test calls ``advance(by:)``, which wakes every
/// sleeper whose time has come, in order. ``waitForSleepers(_:)`` lets a test wait until the code under test has armed
/// its timers, instead of sleeping and hoping.
package final class ManualClock: IoTClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Duration = .zero
        var sleepers: [Sleeper] = []
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())
    /// The wall-clock second that virtual time zero stands for.
    private let unixOrigin: UInt64

    /// A clock at virtual time zero, whose wall clock starts at `unixOrigin` (default: the real time now, so tokens
    /// issued against it look current to a peer that checks them).
    package init(unixOrigin: UInt64 = UnixTime.now()) {
        self.unixOrigin = unixOrigin
    }

    /// Virtual time since the clock was made.
    package func now() -> Duration { self.state.withLock { $0.now } }

    /// The wall clock: the origin plus whole seconds of virtual time.
    package func unixSeconds() -> UInt64 {
        self.unixOrigin + UInt64(max(0, self.now().components.seconds))
    }

    /// When each sleeper is due, soonest first, as intervals from now.
    package var pendingIntervals: [Duration] {
        self.state.withLock { state in state.sleepers.map { $0.deadline - state.now }.sorted() }
    }

    /// How many tasks are sleeping on this clock now.
    package var sleeperCount: Int { self.state.withLock { $0.sleepers.count } }

    /// Suspends until virtual time has moved `duration` on (at once for zero or less), or the task is cancelled.
    package func sleep(for duration: Duration) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = self.state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if duration <= .zero { return .success(()) }
                    state.sleepers.append(Sleeper(id: id, deadline: state.now + duration, continuation: continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = self.state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves virtual time on by `duration` and wakes, in deadline order, every sleeper that falls due. A timer that a
    /// woken task arms again counts from the new time: to see a periodic timer fire n times, advance one period at a
    /// time and wait (``waitForSleepers(_:within:)``) for it to be armed again in between.
    package func advance(by duration: Duration) {
        let due = self.state.withLock { state -> [Sleeper] in
            state.now += duration
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Returns once at least `count` tasks sleep on this clock (bounded by real time `limit`).
    package func waitForSleepers(_ count: Int, within limit: Duration = .seconds(30)) async throws {
        try await eventually("\(count) timers armed on the manual clock", within: limit) { self.sleeperCount >= count }
    }
}
