import AzureIoTCore
import HubAMQP

/// A bare AMQP 1.0 client over TLS for what the SDK's client never sends: SASL ANONYMOUS, then any performative or
/// raw frame bytes, reading what the server answers.
struct RawAMQPClient {
    let connection: TLSConnection
    private var buffer: [UInt8] = []
    private var framer = AMQPFramer(maximumFrameSize: 1 << 20)

    /// TLS, SASL ANONYMOUS (identities would come later through CBS), the AMQP header; no `open` yet.
    static func connectAnonymous(port: Int, caFile: String) async throws -> RawAMQPClient {
        let connection = try await TLSConnection.connect(
            host: "localhost",
            port: port,
            configuration: TLSConfiguration(trustRoots: .pemFile(caFile))
        )
        var client = RawAMQPClient(connection: connection)
        try await connection.write(AMQPProtocolHeader.sasl.bytes)
        try await client.expectHeader()
        guard case .saslMechanisms? = try await client.next(timeout: .seconds(30)) else {
            throw TestError("no sasl-mechanisms")
        }
        try await client.send(.saslInit(SASLInit(mechanism: "ANONYMOUS")), type: .sasl)
        guard case .saslOutcome(let outcome)? = try await client.next(timeout: .seconds(30)), outcome.code == .ok else {
            throw TestError("SASL refused")
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes)
        try await client.expectHeader()
        return client
    }

    /// `open` (with `idleTimeOut` if given) and `begin` on channel 0, reading the server's answers.
    mutating func openSession(idleTimeOut: UInt32? = nil) async throws {
        try await self.send(
            .open(AMQPOpen(containerId: "raw", maxFrameSize: 1 << 20, channelMax: 0, idleTimeOut: idleTimeOut))
        )
        guard case .open? = try await self.next(timeout: .seconds(30)) else { throw TestError("no open") }
        try await self.send(.begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 5000)))
        guard case .begin? = try await self.next(timeout: .seconds(30)) else { throw TestError("no begin") }
    }

    func send(_ performative: AMQPPerformative, channel: UInt16 = 0, type: AMQPFrame.FrameType = .amqp) async throws {
        try await self.connection.write(
            AMQPFrame(type: type, channel: channel, body: try performative.encoded()).encoded
        )
    }

    private mutating func expectHeader() async throws {
        while true {
            if let header = try AMQPProtocolHeader.parse(self.buffer[...]) {
                _ = header
                self.buffer.removeFirst(8)
                return
            }
            let bytes = try await self.connection.read(timeout: .seconds(30))
            guard !bytes.isEmpty else { throw TestError("closed before the protocol header") }
            self.buffer += bytes
        }
    }

    /// The next frame (heartbeats included), or `nil` once the server closed the connection.
    mutating func nextFrame(timeout: Duration) async throws -> AMQPFrame? {
        while true {
            if let (frame, size) = try self.framer.nextFrame(in: self.buffer[...]) {
                self.buffer.removeFirst(size)
                return frame
            }
            guard let bytes = try await self.connection.readUnlessClosed(timeout: timeout) else { return nil }
            self.buffer += bytes
        }
    }

    /// The next performative (heartbeats skipped), or `nil` once the server closed the connection.
    mutating func next(timeout: Duration) async throws -> AMQPPerformative? {
        while let frame = try await self.nextFrame(timeout: timeout) {
            if frame.isHeartbeat { continue }
            return try AMQPPerformative.decode(frame.body)
        }
        return nil
    }

    /// Reads until the server's `close`; returns its error condition (`nil` for a close without one), or throws
    /// when the connection ends without a `close` or nothing comes within `timeout`.
    mutating func expectClose(within timeout: Duration) async throws -> String? {
        while let performative = try await self.next(timeout: timeout) {
            if case .close(let close) = performative { return close.error?.condition }
        }
        throw TestError("the connection ended without a close")
    }
}
