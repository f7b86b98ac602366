import AzureIoTCore

/// Serialises writes to one connection: any task may enqueue bytes, a single writer task sends them in order, so
/// frames from concurrent pushes (C2D, methods, acknowledgements) never interleave.
final class OutboundQueue: Sendable {
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let writer: Task<Void, Never>

    init(connection: TLSConnection) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        self.continuation = continuation
        self.writer = Task {
            for await bytes in stream {
                do {
                    try await connection.write(bytes, timeout: .seconds(30))
                } catch {
                    connection.close()
                    return
                }
            }
        }
    }

    /// Queues bytes to send.
    func send(_ bytes: [UInt8]) { self.continuation.yield(bytes) }

    /// Sends what is queued, then stops.
    func finish() async {
        self.continuation.finish()
        await self.writer.value
    }

    deinit { self.continuation.finish() }
}
