import Dispatch
import Testing

@testable import AzureIoTCore

/// The threads name resolution blocks on: never the cooperative pool's, bounded in number, first come first served.
@Suite("Blocking-call threads", .timeLimit(.minutes(1)))
struct BlockingCallThreadsTests {
    @Test(
        "eight calls blocked at once hold none of the pool's threads: tasks keep running; four threads, the rest queue"
    )
    func blockedCallsLeaveThePoolAlone() async throws {
        let threads = BlockingCallThreads(name: "test.blocking", maximumThreads: 4)
        let release = DispatchSemaphore(value: 0)
        let (started, starting) = AsyncStream.makeStream(of: Int.self)
        let (finished, finishing) = AsyncStream.makeStream(of: Int.self)
        for call in 0..<8 {
            threads.run {
                starting.yield(call)
                release.wait()
                finishing.yield(call)
            }
        }
        var starts = started.makeAsyncIterator()
        var first: Set<Int> = []
        for _ in 0..<4 { first.insert(try #require(await starts.next())) }
        #expect(first == [0, 1, 2, 3])
        #expect(threads.threadCount == 4)
        // Had the calls been queued on DispatchQueue.global() (on Linux, the pool's own threads), the pool would be
        // blocked now and none of these would run until the time limit.
        let ran = await withTaskGroup(of: Int.self) { group in
            for task in 0..<64 { group.addTask { task } }
            return await group.reduce(0) { count, _ in count + 1 }
        }
        #expect(ran == 64)
        // Each release frees a thread, which takes the longest-waiting call.
        for next in 4..<8 {
            release.signal()
            #expect(await starts.next() == next)
        }
        for _ in 0..<4 { release.signal() }
        var ends = finished.makeAsyncIterator()
        var all: Set<Int> = []
        for _ in 0..<8 { all.insert(try #require(await ends.next())) }
        #expect(all == Set(0..<8))
        #expect(threads.threadCount == 4)
    }

    @Test("an idle thread takes the next call: one call at a time needs one thread")
    func idleThreadsAreReused() async throws {
        let threads = BlockingCallThreads(name: "test.reuse", maximumThreads: 4)
        for call in 0..<20 {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                threads.run { continuation.resume() }
            }
            // The thread that ran it goes back to waiting; the next call wakes it instead of starting another.
            while threads.idleCount == 0 { await Task.yield() }
            #expect(threads.threadCount == 1, "call \(call)")
        }
    }
}
