/// Serializes the tests that must bind one of IoT Hub's own ports (8883, 5671) because the peer they run cannot be
/// pointed at another one (uamqp's `SASLPlain` always dials 5671, Azure's Python SDK always dials 8883), so that two
/// suites running side by side do not race for the port.
public actor FixedPortLock {
    public static let shared = FixedPortLock()

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` while no other test holds the lock.
    public static func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await Self.shared.acquire()
        do {
            let value = try await body()
            await Self.shared.release()
            return value
        } catch {
            await Self.shared.release()
            throw error
        }
    }

    private func acquire() async {
        guard self.held else {
            self.held = true
            return
        }
        await withCheckedContinuation { self.waiters.append($0) }
    }

    private func release() {
        if self.waiters.isEmpty {
            self.held = false
        } else {
            self.waiters.removeFirst().resume()
        }
    }
}
