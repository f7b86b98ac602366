/// Serialises writes to one connection: any task may enqueue bytes, one writer task sends them in order, so frames
/// from concurrent senders never interleave or overtake each other. A failed write closes the connection (the
/// reader then sees it) and drops what is still queued.
package final class TLSWriteQueue: Sendable {
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let writer: Task<Void, Never>

    /// Starts the writer task for `connection`.
    package init(connection: TLSConnection, timeout: Duration = .seconds(30)) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        self.continuation = continuation
        self.writer = Task {
            for await bytes in stream {
                do {
                    try await connection.write(bytes, timeout: timeout)
                } catch {
                    connection.close()
                    return
                }
            }
        }
    }

    /// Queues bytes to send.
    package func send(_ bytes: [UInt8]) { self.continuation.yield(bytes) }

    /// Sends what is queued, then stops.
    package func finish() async {
        self.continuation.finish()
        await self.writer.value
    }

    deinit { self.continuation.finish() }
}
