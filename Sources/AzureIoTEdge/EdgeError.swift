public import AzureIoTCore

/// Why an IoT Edge module could not be set up or sign its tokens. Switch on ``code``; ``status`` is the workload
/// API's HTTP status when it answered with an error, and ``underlying`` the transport error behind a failure.
/// `description` never contains a key, a signature or a token.
public struct EdgeError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, to compare on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// An `IOTEDGE_*` variable the module needs is not set (``EdgeError/message`` names it).
        public static let missingEnvironment = Code("missingEnvironment")
        /// An `IOTEDGE_*` variable is set to something that cannot be used (an unknown workload URI scheme, an empty
        /// id).
        public static let invalidEnvironment = Code("invalidEnvironment")
        /// `IOTEDGE_AUTHSCHEME` is not `sasToken`, the only scheme IoT Edge gives modules.
        public static let unsupportedAuthScheme = Code("unsupportedAuthScheme")
        /// The workload API could not be reached (no socket, connection refused, time-out).
        public static let workloadUnavailable = Code("workloadUnavailable")
        /// The workload API answered with an error status (an unknown module, a stale generation id).
        public static let workloadRefused = Code("workloadRefused")
        /// The workload API answered 2xx with a body that is not what its API defines.
        public static let malformedResponse = Code("malformedResponse")
        /// The trust bundle holds no certificate that can be loaded.
        public static let invalidTrustBundle = Code("invalidTrustBundle")
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, without secrets.
    public var message: String
    /// The workload API's HTTP status, when it answered with an error.
    public var status: Int?
    /// The transport or parsing error behind it.
    public var underlying: AzureIoTError?

    /// An error.
    public init(_ code: Code, _ message: String, status: Int? = nil, underlying: AzureIoTError? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "EdgeError.\(self.code): \(self.message)\(self.status.map { " (HTTP \($0))" } ?? "")"
    }
}
