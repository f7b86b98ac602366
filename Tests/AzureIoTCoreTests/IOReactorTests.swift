import Testing

@testable import AzureIoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// The reactor every socket wait goes through: readiness, deadlines (set earliest first or not), cancellation, and
/// more ready descriptors than one `epoll_wait` returns. Real non-blocking socket pairs, no server.
@Suite("I/O reactor", .timeLimit(.minutes(1)))
struct IOReactorTests {
    /// A connected pair of non-blocking Unix stream sockets, closed at the end of `body`.
    @discardableResult
    static func withSocketPairs<Result>(
        _ count: Int,
        _ body: ([(Int32, Int32)]) async throws -> Result
    ) async throws -> Result {
        var pairs: [(Int32, Int32)] = []
        defer {
            for (a, b) in pairs {
                IOReactor.shared.failWaiters(fd: a, with: AzureIoTError(.connectionClosed, "closed"))
                close(a)
                close(b)
            }
        }
        for _ in 0..<count {
            var fds: [Int32] = [0, 0]
            let created = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
            try #require(created == 0)
            pairs.append((fds[0], fds[1]))
        }
        return try await body(pairs)
    }

    static func send(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
    }

    static func deadline(in duration: Duration) -> UInt64 {
        MonotonicClock.deadline(after: duration) ?? 0
    }

    @Test("a waiter is resumed when its socket becomes readable; a writable socket resumes at once")
    func readiness() async throws {
        try await Self.withSocketPairs(1) { pairs in
            let (a, b) = pairs[0]
            try await IOReactor.shared.wait(fd: a, for: .writable, deadline: Self.deadline(in: .seconds(60)))
            async let readable: Void = IOReactor.shared.wait(fd: a, for: .readable, deadline: nil)
            Self.send(b)
            try await readable
        }
    }

    @Test("a silent socket's wait ends with timedOut at its deadline")
    func deadline() async throws {
        try await Self.withSocketPairs(1) { pairs in
            await #expect(throws: AzureIoTError(.timedOut, "")) {
                try await IOReactor.shared.wait(
                    fd: pairs[0].0,
                    for: .readable,
                    deadline: Self.deadline(in: .milliseconds(50))
                )
            }
        }
    }

    @Test("a deadline earlier than the one the timer is set for fires first; the later waiter waits on")
    func earlierDeadlineFirst() async throws {
        try await Self.withSocketPairs(2) { pairs in
            let late = Task {
                try await IOReactor.shared.wait(
                    fd: pairs[0].0,
                    for: .readable,
                    deadline: Self.deadline(in: .seconds(600))
                )
            }
            // The 600 s waiter has set the timer before the 50 ms one arrives.
            while IOReactor.shared.waiterCount(fd: pairs[0].0) == 0 { await Task.yield() }
            await #expect(throws: AzureIoTError(.timedOut, "")) {
                try await IOReactor.shared.wait(
                    fd: pairs[1].0,
                    for: .readable,
                    deadline: Self.deadline(in: .milliseconds(50))
                )
            }
            #expect(IOReactor.shared.waiterCount(fd: pairs[0].0) == 1)
            // Then the later one is readable: resumed normally, not by a timer left behind.
            Self.send(pairs[0].1)
            try await late.value
        }
    }

    @Test("a cancelled wait ends with CancellationError and leaves no waiter behind")
    func cancellation() async throws {
        try await Self.withSocketPairs(1) { pairs in
            let fd = pairs[0].0
            let waiting = Task { try await IOReactor.shared.wait(fd: fd, for: .readable, deadline: nil) }
            while IOReactor.shared.waiterCount(fd: fd) == 0 { await Task.yield() }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            #expect(IOReactor.shared.waiterCount(fd: fd) == 0)
        }
    }

    @Test("200 sockets ready at once, more than one epoll_wait returns, all resume")
    func manyReadyAtOnce() async throws {
        try await Self.withSocketPairs(200) { pairs in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (a, _) in pairs {
                    group.addTask {
                        try await IOReactor.shared.wait(
                            fd: a,
                            for: .readable,
                            deadline: Self.deadline(in: .seconds(600))
                        )
                    }
                }
                // Every waiter armed before any socket becomes readable, so that one readiness pass sees them all.
                while pairs.contains(where: { IOReactor.shared.waiterCount(fd: $0.0) == 0 }) { await Task.yield() }
                for (_, b) in pairs { Self.send(b) }
                try await group.waitForAll()
            }
        }
    }
}
