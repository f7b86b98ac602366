import AzureIoTTestSupport
import Testing

@testable import HubMQTT

/// The pipeline's send deadlines with an explicit clock reading: no sockets, no sleeps.
@Suite("Publish pipeline deadlines")
struct PublishPipelineDeadlineTests {
    static func waitUntil(_ condition: () -> Bool) async {
        for _ in 0..<10_000 where !condition() { await Task.yield() }
    }

    @Test(
        "an expired send throws timedOut and leaves the window; its late PUBACK completes nothing; its id is held until then"
    )
    func expiry() async throws {
        let clock = ManualClock()
        let pipeline = PublishPipeline(window: 2, writeTimeout: .seconds(1), clock: clock)
        let start = clock.now()
        let packet = PublishPacket(topic: "devices/d/messages/events/", payload: [1])
        let first = Task { try await pipeline.publishAtLeastOnce(packet, deadline: start + .seconds(1)) { _ in } }
        await Self.waitUntil { pipeline.inflightCount == 1 }
        pipeline.expireWaiters(now: start + .milliseconds(999))
        #expect(pipeline.inflightCount == 1)
        pipeline.expireWaiters(now: start + .seconds(1))
        await #expect(throws: HubMQTTError(.timedOut, "")) { try await first.value }
        #expect(pipeline.inflightCount == 0)
        // While the late PUBACK may still come, id 1 is not handed out again.
        #expect(pipeline.reservePacketId() == 2)
        pipeline.releasePacketId(2)
        let second = Task { try await pipeline.publishAtLeastOnce(packet, deadline: nil) { _ in } }
        await Self.waitUntil { pipeline.inflightCount == 1 }
        pipeline.acknowledge(1)
        #expect(pipeline.inflightCount == 1, "the late PUBACK for the expired message completed another")
        pipeline.acknowledge(3)
        try await second.value
        #expect(pipeline.inflightCount == 0)
    }

    @Test("a sender waiting for room in a full window expires too, and frees nothing it did not hold")
    func expiryWhileWaitingForRoom() async throws {
        let clock = ManualClock()
        let pipeline = PublishPipeline(window: 1, writeTimeout: .seconds(1), clock: clock)
        let start = clock.now()
        let packet = PublishPacket(topic: "devices/d/messages/events/", payload: [1])
        let holder = Task { try await pipeline.publishAtLeastOnce(packet, deadline: nil) { _ in } }
        await Self.waitUntil { pipeline.inflightCount == 1 }
        let waiting = Task {
            try await pipeline.publishAtLeastOnce(packet, deadline: start + .milliseconds(10)) { _ in }
        }
        for _ in 0..<100 { await Task.yield() }
        pipeline.expireWaiters(now: start + .seconds(1))
        await #expect(throws: HubMQTTError(.timedOut, "")) { try await waiting.value }
        #expect(pipeline.inflightCount == 1)
        pipeline.acknowledge(1)
        try await holder.value
    }

    @Test("the deadline sweep runs only while a sender with a deadline waits")
    func sweepStops() async throws {
        let clock = ManualClock()
        let pipeline = PublishPipeline(window: 2, writeTimeout: .seconds(1), clock: clock)
        #expect(!pipeline.isSweeping)
        let packet = PublishPacket(topic: "devices/d/messages/events/", payload: [1])
        let send = Task { try await pipeline.publishAtLeastOnce(packet, deadline: clock.now() + .seconds(60)) { _ in } }
        await Self.waitUntil { pipeline.inflightCount == 1 }
        #expect(pipeline.isSweeping)
        pipeline.acknowledge(1)
        try await send.value
        // The sweep notices at its next turn (200 ms of the clock) that nothing with a deadline waits, and ends.
        try await clock.waitForSleepers(1)
        #expect(pipeline.isSweeping, "not before its next turn")
        clock.advance(by: .milliseconds(200))
        try await eventually("the sweep to stop") { !pipeline.isSweeping }
        #expect(clock.sleeperCount == 0)
        #expect(!pipeline.isSweeping)
    }
}
