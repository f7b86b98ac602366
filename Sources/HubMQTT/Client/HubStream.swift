/// An `AsyncSequence` of what the hub pushes (C2D messages, desired patches, method calls, connection events).
/// Wraps `AsyncStream` so the backing type can change; ends when the client shuts down.
public struct HubStream<Element: Sendable>: AsyncSequence, Sendable {
    let stream: AsyncStream<Element>

    public struct AsyncIterator: AsyncIteratorProtocol {
        var iterator: AsyncStream<Element>.AsyncIterator
        public mutating func next() async -> Element? { await self.iterator.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(iterator: self.stream.makeAsyncIterator()) }

    /// A stream and the continuation that feeds it, with an explicit buffering policy.
    static func make(bufferingPolicy: AsyncStream<Element>.Continuation.BufferingPolicy) -> (HubStream, AsyncStream<Element>.Continuation) {
        let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: bufferingPolicy)
        return (HubStream(stream: stream), continuation)
    }
}
