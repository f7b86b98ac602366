/// Whether the answer to a device's message (a PUBACK, a disposition) waits for the answers to the messages after
/// it, so that a burst is answered in one TLS record: while more messages have already arrived, up to ``maximum``
/// answers in a row are held back. The bound keeps a client that writes without pause hearing back regularly; with
/// none, a client whose window had filled waited for a whole burst to be handled.
struct AnswerBatch {
    /// The most answers that leave together.
    static let maximum = 8

    private var held = 0

    /// Whether to hold the answer to the message being handled (`true`), given whether another message has arrived.
    mutating func holdAnswer(moreArrived: Bool) -> Bool {
        guard moreArrived, self.held < Self.maximum - 1 else {
            self.held = 0
            return false
        }
        self.held += 1
        return true
    }

    /// Forgets the count: the held answers have left.
    mutating func released() { self.held = 0 }
}
