import AzureIoTCore

/// The error thrown by the IoT Hub AMQP client. Compare on ``code``; ``condition`` carries the peer's AMQP error
/// condition (e.g. `amqp:unauthorized-access`) when there is one. No token appears in ``message``.
public struct HubAMQPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, to compare on.
    public var code: Code
    /// What happened, in words (never a secret).
    public var message: String
    /// The AMQP error condition the peer sent, if any.
    public var condition: String?
    /// The error that caused this one, as it was thrown: the `AzureIoTError` (with its OpenSSL details) behind
    /// ``Code/connectionFailed``, the last failure behind ``Code/retriesExhausted``.
    public var underlying: (any Error & Sendable)?
    /// The hub's status for a failed twin request (e.g. 400, 404, 429).
    public var status: Int?

    /// An error.
    public init(
        _ code: Code,
        _ message: String,
        condition: String? = nil,
        underlying: (any Error & Sendable)? = nil,
        status: Int? = nil
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.condition = condition
        self.underlying = underlying
    }

    /// Whether the same call may succeed later without a change on the device's side: network trouble, a closed or
    /// lost connection, time-outs, a released message. Refused credentials, rejected messages, refused links, invalid
    /// input and a client that gave up are not transient.
    public var isTransient: Bool {
        switch self.code {
        case .connectionFailed:
            return (self.underlying as? AzureIoTError).map { RetryPolicy.classify($0) == .transient } ?? true
        case .connectionClosed, .notConnected, .timedOut, .released, .modified, .protocolViolation, .queueFull:
            return true
        case .twinRequestFailed:
            return self.status.map { $0 == 429 || $0 >= 500 } ?? false
        default:
            return false
        }
    }

    /// Runs `body`, turning a TLS or network failure (`AzureIoTError`) into ``Code/connectionFailed`` with the
    /// original as ``underlying``, so that the client's calls throw one error type (and `CancellationError`).
    static func mapping<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as AzureIoTError {
            throw HubAMQPError(.connectionFailed, "\(error)", underlying: error)
        }
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: HubAMQPError, rhs: HubAMQPError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// A readable summary that never contains secrets.
    public var description: String {
        "HubAMQPError.\(self.code): \(self.message)" + (self.condition.map { " [\($0)]" } ?? "")
    }

    /// The kinds of ``HubAMQPError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// SASL authentication failed (outcome `auth`, `sys`, …) or PLAIN was not offered.
        public static let authenticationFailed = Code("authenticationFailed")
        /// TLS or the network failed (refused, unreachable, handshake, certificate); ``HubAMQPError/underlying``
        /// holds the `AzureIoTError`.
        public static let connectionFailed = Code("connectionFailed")
        /// ``HubAMQPConfiguration/maximumQueuedMessages`` messages already wait for settlement (offline, or the hub
        /// is slow to settle); nothing was queued.
        public static let queueFull = Code("queueFull")
        /// The peer refused or closed a link (detach with an error).
        public static let linkDetached = Code("linkDetached")
        /// The peer closed the connection or session.
        public static let connectionClosed = Code("connectionClosed")
        /// The peer settled a message as `rejected`.
        public static let rejected = Code("rejected")
        /// The peer settled a message as `released`.
        public static let released = Code("released")
        /// The peer settled a message as `modified`.
        public static let modified = Code("modified")
        /// An answer did not come in time.
        public static let timedOut = Code("timedOut")
        /// The peer broke the protocol.
        public static let protocolViolation = Code("protocolViolation")
        /// The retry policy gave up reconnecting (refused credentials, or its attempt limit); the client is closed.
        public static let retriesExhausted = Code("retriesExhausted")
        /// The peer sent a message larger than IoT Hub's (a delivery without end); the connection is closed.
        public static let messageTooLarge = Code("messageTooLarge")
        /// The request does not fit the configuration (e.g. a second identity on a SASL PLAIN connection).
        public static let invalidArgument = Code("invalidArgument")
        /// The client is not connected.
        public static let notConnected = Code("notConnected")
        /// The message's deadline passed before the hub accepted it.
        public static let expired = Code("expired")
        /// IoT Hub answered a twin request with a failure; ``HubAMQPError/status`` holds its status.
        public static let twinRequestFailed = Code("twinRequestFailed")
    }
}
