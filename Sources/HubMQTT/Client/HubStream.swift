/// An `AsyncSequence` of what the hub pushes (C2D messages, desired patches, method calls, connection events).
/// Wraps `AsyncStream` so the backing type can change; ends when the client shuts down.
public struct HubStream<Element: Sendable>: AsyncSequence, Sendable {
    let stream: AsyncStream<Element>

    /// The iterator of a ``HubStream``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var iterator: AsyncStream<Element>.AsyncIterator
        /// The next element, or `nil` once the client shut down.
        public mutating func next() async -> Element? { await self.iterator.next() }
    }

    /// Starts iterating; the stream has one consumer.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(iterator: self.stream.makeAsyncIterator()) }

    /// A stream and the continuation that feeds it, with an explicit buffering policy.
    static func make(bufferingPolicy: AsyncStream<Element>.Continuation.BufferingPolicy) -> (HubStream, AsyncStream<Element>.Continuation) {
        let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: bufferingPolicy)
        return (HubStream(stream: stream), continuation)
    }
}
