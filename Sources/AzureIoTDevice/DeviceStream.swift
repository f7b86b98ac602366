import HubMQTT

/// A stream of what the hub pushes (cloud-to-device messages, desired-property patches, method calls, connection
/// events), the same type whichever transport fills it. Over MQTT, iterating a stream of pushed traffic subscribes
/// to it and a cloud-to-device message is acknowledged when the iterator hands it out, as with `HubMQTTClient`'s
/// streams; over AMQP the links are attached by ``DeviceClient/subscribe(to:)`` (which iterating does not do).
public struct DeviceStream<Element: Sendable>: AsyncSequence, Sendable {
    private let makeNext: @Sendable () -> Next

    /// Hands out one element at a time; not shared between tasks.
    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let next: Next

        /// The next element, or `nil` once the client is shut down.
        public mutating func next() async -> Element? { await self.next.call() }
    }

    /// The iterator's state: the transport stream's own iterator behind a closure.
    fileprivate final class Next {
        let call: () async -> Element?
        init(_ call: @escaping () async -> Element?) { self.call = call }
    }

    /// Starts iterating.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(next: self.makeNext()) }

    init(_ stream: HubStream<Element>) {
        self.makeNext = {
            var iterator = stream.makeAsyncIterator()
            return Next { await iterator.next() }
        }
    }

    init<Source: Sendable>(_ stream: HubStream<Source>, transform: @escaping @Sendable (Source) -> Element) {
        self.makeNext = {
            var iterator = stream.makeAsyncIterator()
            return Next { await iterator.next().map(transform) }
        }
    }

    init<Source: Sendable>(_ stream: AsyncStream<Source>, transform: @escaping @Sendable (Source) -> Element) {
        self.makeNext = {
            var iterator = stream.makeAsyncIterator()
            return Next { await iterator.next().map(transform) }
        }
    }
}
