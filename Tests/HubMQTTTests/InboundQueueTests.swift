import Synchronization
import Testing

@testable import HubMQTT

/// The bounded buffer behind the client's streams, without sockets.
@Suite("Inbound stream buffer")
struct InboundQueueTests {
    final class Log: Sendable {
        let demanded = Mutex(0)
        let taken = Mutex<[Int]>([])
    }

    func queue(capacity: Int, overflow: InboundQueue<Int>.Overflow = .refuseNewest) -> (InboundQueue<Int>, Log) {
        let queue = InboundQueue<Int>(capacity: capacity, overflow: overflow)
        let log = Log()
        queue.setHandlers(
            onDemand: { log.demanded.withLock { $0 += 1 } },
            onTake: { value in log.taken.withLock { $0.append(value) } }
        )
        return (queue, log)
    }

    @Test(
        "a full buffer refuses the newest element and says so; taking makes room; each take is reported once, in order"
    )
    func refuseNewest() async {
        let (queue, log) = self.queue(capacity: 2)
        #expect(queue.offer(1) && queue.offer(2))
        #expect(queue.offer(3) == false, "refused: the owner leaves it unacknowledged")
        #expect(queue.count == 2)
        #expect(log.taken.withLock { $0 }.isEmpty, "nothing is taken before the application asks")
        #expect(await queue.next() == 1)
        #expect(queue.offer(4))
        #expect(await queue.next() == 2)
        #expect(await queue.next() == 4)
        #expect(log.taken.withLock { $0 } == [1, 2, 4])
    }

    @Test("drop-oldest keeps the newest elements (connection events)")
    func dropOldest() async {
        let (queue, _) = self.queue(capacity: 3, overflow: .dropOldest)
        for value in 1...5 { #expect(queue.offer(value)) }
        #expect(await queue.next() == 3)
        #expect(await queue.next() == 4)
        #expect(await queue.next() == 5)
    }

    @Test(
        "the first iterator tells the owner once; a waiting consumer gets an element offered later and it counts as taken"
    )
    func demandAndWaiting() async {
        let (queue, log) = self.queue(capacity: 4)
        let stream = HubStream(queue: queue)
        var iterator = stream.makeAsyncIterator()
        _ = stream.makeAsyncIterator()
        #expect(log.demanded.withLock { $0 } == 1)
        let consumer = Task { await iterator.next() }
        while queue.offer(7) == false {}
        #expect(await consumer.value == 7)
        #expect(log.taken.withLock { $0 } == [7])
        #expect(queue.count == 0)
    }

    @Test("cancelling a waiting consumer ends its wait with nil and loses nothing offered afterwards")
    func cancellation() async {
        let (queue, log) = self.queue(capacity: 4)
        let consumer = Task { await queue.next() }
        consumer.cancel()
        #expect(await consumer.value == nil)
        #expect(queue.offer(9))
        #expect(await queue.next() == 9)
        #expect(log.taken.withLock { $0 } == [9])
    }

    @Test("finish hands out what is buffered, then nil; later offers are refused")
    func finish() async {
        let (queue, _) = self.queue(capacity: 4)
        queue.offer(1)
        queue.finish()
        #expect(queue.offer(2) == false)
        #expect(await queue.next() == 1)
        #expect(await queue.next() == nil)
    }

    @Test("a consumer waiting when the stream finishes gets nil")
    func finishWhileWaiting() async {
        let (queue, _) = self.queue(capacity: 4)
        let consumer = Task { await queue.next() }
        // Whether the consumer waits already or not, it ends with nil.
        queue.finish()
        #expect(await consumer.value == nil)
    }

    @Test("many elements through a small buffer: the storage is compacted and order is kept")
    func throughput() async {
        let (queue, log) = self.queue(capacity: 64)
        var received: [Int] = []
        for round in 0..<100 {
            for value in 0..<50 { #expect(queue.offer(round * 50 + value)) }
            for _ in 0..<50 { if let value = await queue.next() { received.append(value) } }
        }
        #expect(received == Array(0..<5000))
        #expect(log.taken.withLock { $0.count } == 5000)
    }
}
