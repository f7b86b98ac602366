import AzureIoTCore
import HubAMQP
import HubMQTT

/// What ``DeviceClient`` throws (besides `CancellationError`), with the same codes whichever transport is used. The
/// transport's own error (`HubMQTTError` or `HubAMQPError`) is kept as ``underlying``, and through it the TLS or
/// network failure (`AzureIoTError`).
public struct DeviceClientError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure: switch on it.
    public var code: Code
    /// What happened, in words (no secrets).
    public var message: String
    /// The hub's status, for a refused connection (MQTT CONNACK code) or a failed twin request.
    public var status: Int?
    /// The transport's error (or the cause of a configuration error).
    public var underlying: (any Error & Sendable)?

    /// An error.
    public init(_ code: Code, _ message: String, status: Int? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    /// Whether trying again later can help: the transport's classification.
    public var isTransient: Bool {
        switch self.underlying {
        case let error as HubMQTTError: error.isTransient
        case let error as HubAMQPError: error.isTransient
        default: [.notConnected, .timedOut, .connectionFailed, .queueFull].contains(self.code)
        }
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "DeviceClientError.\(self.code): \(self.message)" + (self.status.map { " (status \($0))" } ?? "")
    }

    /// The kinds of ``DeviceClientError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// The configuration or an argument is not usable.
        public static let invalidArgument = Code("invalidArgument")
        /// TLS or the network failed; the `AzureIoTError` is the transport error's underlying cause.
        public static let connectionFailed = Code("connectionFailed")
        /// The hub refused the credentials (MQTT CONNACK, AMQP SASL or CBS).
        public static let authenticationFailed = Code("authenticationFailed")
        /// The retry policy gave up; the client is shut down.
        public static let retriesExhausted = Code("retriesExhausted")
        /// Not connected (before ``DeviceClient/connect(timeout:)``, or the connection went).
        public static let notConnected = Code("notConnected")
        /// The client was disconnected or closed.
        public static let shutDown = Code("shutDown")
        /// No answer or acknowledgement in time.
        public static let timedOut = Code("timedOut")
        /// The message's own deadline passed before the hub took it.
        public static let expired = Code("expired")
        /// Too much already waits: nothing was queued.
        public static let queueFull = Code("queueFull")
        /// Above IoT Hub's 256 KB.
        public static let messageTooLarge = Code("messageTooLarge")
        /// The hub answered a twin request with a failure (``DeviceClientError/status``).
        public static let twinRequestFailed = Code("twinRequestFailed")
        /// The hub refused a subscription or a link.
        public static let refused = Code("refused")
        /// The hub rejected the message.
        public static let rejected = Code("rejected")
        /// The peer broke the protocol.
        public static let protocolViolation = Code("protocolViolation")
    }

    /// The neutral error for a transport's error; other errors (`CancellationError`) are returned as they are.
    static func mapping(_ error: any Error) -> any Error {
        switch error {
        case let error as DeviceClientError:
            return error
        case let error as HubMQTTError:
            let code: Code
            switch error.code {
            case .connectionRefused: code = error.status == 3 ? .connectionFailed : .authenticationFailed
            case .connectionFailed: code = .connectionFailed
            case .messageTooLarge: code = .messageTooLarge
            case .notConnected: code = .notConnected
            case .shutDown: code = .shutDown
            case .retriesExhausted: code = .retriesExhausted
            case .subscriptionRefused: code = .refused
            case .twinRequestFailed: code = .twinRequestFailed
            case .expired: code = .expired
            case .queueFull: code = .queueFull
            case .timedOut: code = .timedOut
            case .invalidArgument: code = .invalidArgument
            default: code = .protocolViolation
            }
            return DeviceClientError(code, error.message, status: error.status, underlying: error)
        case let error as HubAMQPError:
            let code: Code
            switch error.code {
            case .authenticationFailed: code = .authenticationFailed
            case .connectionFailed: code = .connectionFailed
            case .queueFull: code = .queueFull
            case .linkDetached: code = .refused
            case .connectionClosed, .notConnected: code = .notConnected
            case .rejected, .released, .modified: code = .rejected
            case .timedOut: code = .timedOut
            case .retriesExhausted: code = .retriesExhausted
            case .messageTooLarge: code = .messageTooLarge
            case .invalidArgument: code = .invalidArgument
            case .expired: code = .expired
            case .twinRequestFailed: code = .twinRequestFailed
            default: code = .protocolViolation
            }
            return DeviceClientError(code, error.message, status: error.status, underlying: error)
        case let error as AzureIoTError:
            return DeviceClientError(.connectionFailed, "\(error)", underlying: error)
        default:
            return error
        }
    }

    /// Runs `body`, throwing transport errors as ``DeviceClientError``.
    static func mapped<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw Self.mapping(error)
        }
    }
}
