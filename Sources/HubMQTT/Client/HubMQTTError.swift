import AzureIoTCore

/// The error thrown by the IoT Hub MQTT client. Compare on ``code``; ``message`` never holds a token or key.
public struct HubMQTTError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: Code
    /// What to fix.
    public var message: String
    /// The status IoT Hub answered (twin and method operations), if any.
    public var status: Int?
    /// The error that caused this one, as it was thrown: an `AzureIoTError` for TLS and network failures (with its
    /// OpenSSL codes), the refusal behind ``Code/retriesExhausted``, a codec error behind ``Code/protocolViolation``.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, status: Int? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    /// Whether the same call may succeed later without a change on the device's side: network trouble, a busy or
    /// unavailable hub (CONNACK 3, twin status 429 or 5xx), time-outs, a full queue, a lost connection. Refused
    /// credentials, untrusted certificates, invalid input and a shut-down client are not transient.
    public var isTransient: Bool {
        switch self.code {
        case .connectionFailed:
            return (self.underlying as? AzureIoTError).map { RetryPolicy.classify($0) == .transient } ?? true
        case .connectionRefused:
            return self.status == 3
        case .twinRequestFailed:
            return self.status.map { $0 == 429 || $0 >= 500 } ?? false
        case .notConnected, .timedOut, .queueFull, .protocolViolation:
            return true
        default:
            return false
        }
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: HubMQTTError, rhs: HubMQTTError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// A readable summary that never contains secrets.
    public var description: String {
        "HubMQTTError.\(self.code): \(self.message)" + (self.status.map { " (status \($0))" } ?? "")
    }

    /// The kinds of ``HubMQTTError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// The broker refused CONNECT (IoT Hub answers 5, not authorized, to every failure).
        public static let connectionRefused = Code("connectionRefused")
        /// TLS or the network failed (refused, unreachable, handshake, certificate); ``HubMQTTError/underlying`` holds
        /// the `AzureIoTError` with its code and OpenSSL details.
        public static let connectionFailed = Code("connectionFailed")
        /// The message is over IoT Hub's 256 KB limit; nothing was sent.
        public static let messageTooLarge = Code("messageTooLarge")
        /// The client is not connected and was shut down.
        public static let notConnected = Code("notConnected")
        /// The client was shut down while the operation waited.
        public static let shutDown = Code("shutDown")
        /// The retry policy gave up reconnecting (permanent failures, or its attempt limit); the client is shut down.
        public static let retriesExhausted = Code("retriesExhausted")
        /// The hub refused a SUBSCRIBE (SUBACK failure).
        public static let subscriptionRefused = Code("subscriptionRefused")
        /// IoT Hub answered a twin request with an error status.
        public static let twinRequestFailed = Code("twinRequestFailed")
        /// A telemetry message reached its own expiry (`TelemetryMessage.deadline`) before IoT Hub acknowledged it;
        /// it is not sent (again).
        public static let expired = Code("expired")
        /// The offline queue or the write queue is full (``HubMQTTConfiguration/maximumQueuedMessages``); nothing was
        /// queued. Try later, or drop the message.
        public static let queueFull = Code("queueFull")
        /// An answer did not come in time.
        public static let timedOut = Code("timedOut")
        /// The broker sent something that is not MQTT 3.1.1 or not what IoT Hub sends.
        public static let protocolViolation = Code("protocolViolation")
        /// An incoming topic or property bag could not be parsed.
        public static let malformedTopic = Code("malformedTopic")
        /// An argument is invalid (empty device id, too many subscriptions…).
        public static let invalidArgument = Code("invalidArgument")
    }
}
