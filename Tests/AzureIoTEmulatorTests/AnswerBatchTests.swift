import Testing

@testable import AzureIoTEmulator

/// How many answers leave together: all that have arrived in a row, 8 at most.
@Suite("Answer batching")
struct AnswerBatchTests {
    @Test("answers are held while more messages have arrived, 8 at most in a row; a lone message is answered at once")
    func holds() {
        var batch = AnswerBatch()
        // 20 messages all already there: held 7 times, then the 8th answer goes with them; again; then 4 at the end.
        let arrived = (0..<20).map { $0 < 19 }
        let held = arrived.map { batch.holdAnswer(moreArrived: $0) }
        let released = held.enumerated().filter { !$0.element }.map(\.offset)
        #expect(released == [7, 15, 19])
        let lone = batch.holdAnswer(moreArrived: false)
        #expect(!lone)
        // Something else in between lets the held answers go and starts the count again.
        let first = batch.holdAnswer(moreArrived: true)
        #expect(first)
        batch.released()
        var again: [Bool] = []
        for _ in 0..<8 { again.append(batch.holdAnswer(moreArrived: true)) }
        #expect(again == Array(repeating: true, count: 7) + [false])
    }
}
