import AzureIoTCore

/// The byte moving under the package's one-shot AMQP clients (``HubServiceConnection``, ``DPSAMQPConnection``): the
/// TLS connection, what was read and not yet framed, ``AMQPClientState`` and the actions a wait has not taken yet.
/// One actor owns it and calls it only from its own isolation (each method inherits the caller's), so it needs no
/// lock.
final class AMQPClientIO {
    var state: AMQPClientState
    var connection: TLSConnection?
    var buffer: [UInt8] = []
    var framer = AMQPFramer(maximumFrameSize: 65_536)
    /// Actions the state returned that a wait has not taken yet (settlements, received messages).
    var pending: [AMQPClientState.Action] = []
    /// The error for a connection that is not open or was closed by the peer.
    private let closed: @Sendable (String) -> any Error

    init(state: AMQPClientState, closed: @escaping @Sendable (String) -> any Error) {
        self.state = state
        self.closed = closed
    }

    /// Writes what `actions` ask and keeps the rest in ``pending``.
    func perform(
        _ actions: [AMQPClientState.Action],
        timeout: Duration,
        isolation: isolated (any Actor)? = #isolation
    ) async throws {
        guard let connection = self.connection else { throw self.closed("the connection is not open") }
        for action in actions {
            switch action {
            case .write(let performatives):
                var bytes: [UInt8] = []
                for performative in performatives {
                    bytes += AMQPFrame(type: .amqp, body: try performative.encoded()).encoded
                }
                try await connection.write(bytes, timeout: timeout)
            case .writeFrames(let frames):
                try await connection.write(frames, timeout: timeout)
            case .progress:
                break
            case .settled, .received, .message, .identityDetached:
                self.pending.append(action)
            }
        }
    }

    /// Reads and applies frames until `condition` holds.
    func step(
        timeout: @autoclosure () -> Duration,
        until condition: (AMQPClientState) -> Bool,
        isolation: isolated (any Actor)? = #isolation
    ) async throws {
        while !condition(self.state) { try await self.step(timeout: timeout()) }
    }

    /// Reads once and applies every complete frame.
    func step(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws {
        try await self.fill(timeout: timeout)
        var consumed = 0
        while let (frame, size) = try self.framer.nextFrame(in: self.buffer[consumed...]) {
            consumed += size
            if frame.isHeartbeat { continue }
            try await self.perform(try self.state.receive(try AMQPPerformative.decode(frame.body)), timeout: timeout)
        }
        self.buffer.removeFirst(consumed)
    }

    /// The peer's protocol header.
    func header(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws -> AMQPProtocolHeader {
        while true {
            if let header = try AMQPProtocolHeader.parse(self.buffer[...]) {
                self.buffer.removeFirst(8)
                return header
            }
            try await self.fill(timeout: timeout)
        }
    }

    /// The next performative read directly, before the state takes over (SASL).
    func performative(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws
        -> AMQPPerformative
    {
        while true {
            if let (frame, size) = try self.framer.nextFrame(in: self.buffer[...]) {
                self.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await self.fill(timeout: timeout)
        }
    }

    private func fill(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws {
        guard let connection = self.connection else { throw self.closed("the connection is not open") }
        let chunk = try await connection.read(timeout: timeout)
        guard !chunk.isEmpty else { throw self.closed("the peer closed the connection") }
        self.buffer += chunk
    }
}
