/// An `AsyncSequence` of what the hub pushes (C2D messages, desired patches, method calls, connection events), with a
/// bounded buffer. Iterating it is what asks the hub for that kind of traffic: the client subscribes to C2D, desired
/// patches or methods when their stream is first iterated (``HubMQTTClient/subscribe(to:)`` does it ahead of time and
/// waits for the SUBACK). Ends when the client shuts down.
public struct HubStream<Element: Sendable>: AsyncSequence, Sendable {
    let queue: InboundQueue<Element>

    /// The iterator of a ``HubStream``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: InboundQueue<Element>
        /// The next element; `nil` once the client shut down, when the task is cancelled, or for a second iterator
        /// while another one waits (a stream has one consumer).
        public mutating func next() async -> Element? { await self.queue.next() }
    }

    /// Starts iterating (and, for hub traffic, subscribing to it).
    public func makeAsyncIterator() -> AsyncIterator {
        self.queue.demand()
        return AsyncIterator(queue: self.queue)
    }

    /// How many elements the stream buffers for the application.
    public var capacity: Int { self.queue.capacity }

    /// Elements waiting to be taken.
    public var bufferedCount: Int { self.queue.count }
}
