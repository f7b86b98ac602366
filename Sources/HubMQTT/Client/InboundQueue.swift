import AzureIoTCore

/// The bounded buffer behind a ``HubStream``: what the hub pushes waits here for the application, up to `capacity`
/// elements. It tells its owner when the application first asks for elements (so the client subscribes only to the
/// traffic somebody reads) and when the application takes one (so a cloud-to-device message is acknowledged only once
/// the application has it). One consumer at a time; cancelling the consumer's task ends its wait with `nil`.
final class InboundQueue<Element: Sendable>: Sendable {
    /// What happens to an element offered to a full buffer.
    enum Overflow: Sendable {
        /// It is refused: ``offer(_:)`` returns `false` and the owner decides (leave it unacknowledged, answer busy).
        case refuseNewest
        /// The oldest buffered element makes room for it (connection events: the newest matter).
        case dropOldest
    }

    private struct State {
        var items: [Element] = []
        var head = 0
        var consumer: (id: UInt64, continuation: CheckedContinuation<Element?, Never>)?
        var nextConsumerId: UInt64 = 0
        var finished = false
        var demanded = false
        var onDemand: (@Sendable () -> Void)?
        var onTake: (@Sendable (Element) -> Void)?

        var count: Int { self.items.count - self.head }

        mutating func popFirst() -> Element? {
            guard self.head < self.items.count else { return nil }
            let element = self.items[self.head]
            self.head += 1
            // Compacts once the taken prefix is at least half the storage (amortised O(1) per element).
            if self.head >= 32 && self.head * 2 >= self.items.count {
                self.items.removeFirst(self.head)
                self.head = 0
            }
            return element
        }
    }

    private let state = AdaptiveLock(State())
    /// The most elements buffered at once.
    let capacity: Int
    private let overflow: Overflow

    init(capacity: Int, overflow: Overflow) {
        self.capacity = max(1, capacity)
        self.overflow = overflow
    }

    /// Sets what runs the first time the application iterates, and what runs for each element it takes.
    func setHandlers(onDemand: (@Sendable () -> Void)?, onTake: (@Sendable (Element) -> Void)?) {
        self.state.withLock { state in
            state.onDemand = onDemand
            state.onTake = onTake
        }
    }

    /// Offers an element; `false` when the buffer is full (with ``Overflow/refuseNewest``) or finished.
    @discardableResult
    func offer(_ element: Element) -> Bool {
        let (accepted, consumer, onTake) = self.state.withLock {
            state -> (Bool, CheckedContinuation<Element?, Never>?, (@Sendable (Element) -> Void)?) in
            guard !state.finished else { return (false, nil, nil) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (true, consumer.continuation, state.onTake)
            }
            if state.count >= self.capacity {
                guard self.overflow == .dropOldest else { return (false, nil, nil) }
                _ = state.popFirst()
            }
            state.items.append(element)
            return (true, nil, nil)
        }
        if let consumer {
            onTake?(element)
            consumer.resume(returning: element)
        }
        return accepted
    }

    /// Ends the stream: buffered elements are still handed out, then `nil`.
    func finish() {
        let consumer = self.state.withLock { state -> CheckedContinuation<Element?, Never>? in
            state.finished = true
            defer { state.consumer = nil }
            return state.consumer?.continuation
        }
        consumer?.resume(returning: nil)
    }

    /// Elements waiting for the application.
    var count: Int { self.state.withLock { $0.count } }

    /// Whether the application has started iterating.
    var isDemanded: Bool { self.state.withLock { $0.demanded } }

    /// Called when an iterator is made: the first one tells the owner.
    func demand() {
        let onDemand = self.state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.demanded else { return nil }
            state.demanded = true
            return state.onDemand
        }
        onDemand?()
    }

    /// The next element, waiting for one; `nil` once finished, when the task is cancelled, or for a second consumer
    /// while one already waits.
    func next() async -> Element? {
        let immediate = self.state.withLock { state -> (Element?, Bool, (@Sendable (Element) -> Void)?) in
            if let element = state.popFirst() { return (element, true, state.onTake) }
            return (nil, state.finished, nil)
        }
        if let element = immediate.0 {
            immediate.2?(element)
            return element
        }
        if immediate.1 { return nil }
        let id = self.state.withLock { state -> UInt64 in
            state.nextConsumerId &+= 1
            return state.nextConsumerId
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let outcome = self.state.withLock { state -> (Element??, (@Sendable (Element) -> Void)?) in
                    if let element = state.popFirst() { return (.some(element), state.onTake) }
                    if state.finished || state.consumer != nil || Task.isCancelled { return (.some(nil), nil) }
                    state.consumer = (id, continuation)
                    return (nil, nil)
                }
                if case .some(let element) = outcome.0 {
                    if let element { outcome.1?(element) }
                    continuation.resume(returning: element)
                }
            }
        } onCancel: {
            let consumer = self.state.withLock { state -> CheckedContinuation<Element?, Never>? in
                guard let consumer = state.consumer, consumer.id == id else { return nil }
                state.consumer = nil
                return consumer.continuation
            }
            consumer?.resume(returning: nil)
        }
    }
}
