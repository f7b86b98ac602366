import AzureIoTCore

/// The error thrown by `DPSClient`: what the service said, how a registration ended, or why the request never got
/// an answer. Compare on ``code``; no secret appears in ``message``.
public struct ProvisioningError: Error, Hashable, Sendable {
    /// What went wrong.
    public var code: Code
    /// What to fix, in words.
    public var message: String
    /// The HTTP status the service answered, if it answered.
    public var httpStatus: Int?
    /// The DPS 6-digit error code (`HTTPstatus * 1000 + n`, e.g. 401002), from the body or the registration state.
    public var errorCode: Int?
    /// The service's tracking id, for support requests.
    public var trackingId: String?
    /// The error that caused this one, as it was thrown: the `AzureIoTError` (with its OpenSSL details) behind
    /// ``Code/transportFailure``, ``Code/serverCertificateUntrusted`` and ``Code/clientCertificateRejected``.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        httpStatus: Int? = nil,
        errorCode: Int? = nil,
        trackingId: String? = nil,
        underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.trackingId = trackingId
        self.underlying = underlying
    }

    /// Whether registering again later may succeed without a change on the device's side: throttling, a service
    /// error (5xx), a time-out, a transport failure. Refused credentials, unknown enrollments, failed or disabled
    /// registrations, certificate problems and invalid configurations are not transient.
    public var isTransient: Bool {
        switch self.code {
        case .transportFailure:
            // A proxy that refuses the tunnel (credentials, policy) answers the same way next time.
            let code = (self.underlying as? AzureIoTError)?.code
            return code != .proxyRefused && code != .proxyAuthenticationRequired
        case .throttled, .timedOut, .malformedResponse:
            return true
        case .serviceError:
            return self.httpStatus.map { $0 >= 500 || $0 == 429 } ?? true
        default:
            return false
        }
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: ProvisioningError, rhs: ProvisioningError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}

extension ProvisioningError {
    /// The kinds of ``ProvisioningError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// The configuration cannot work (registration id differs from the certificate CN, empty scope, …); nothing
        /// was sent.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// The service refused the credentials (HTTP 401/403).
        public static let unauthorized = Code("unauthorized")
        /// The service does not know the scope, registration or operation (HTTP 404).
        public static let notFound = Code("notFound")
        /// The service kept throttling (HTTP 429) until the deadline.
        public static let throttled = Code("throttled")
        /// The service answered with another error status.
        public static let serviceError = Code("serviceError")
        /// The registration ended as `failed`.
        public static let registrationFailed = Code("registrationFailed")
        /// The enrollment is disabled.
        public static let registrationDisabled = Code("registrationDisabled")
        /// The service's answer is not the JSON DPS sends.
        public static let malformedResponse = Code("malformedResponse")
        /// The registration did not finish before the caller's timeout.
        public static let timedOut = Code("timedOut")
        /// The request never got an HTTP answer: DNS, TCP, TLS, proxy (``ProvisioningError/underlying`` says which).
        public static let transportFailure = Code("transportFailure")
        /// The server's certificate is not trusted, has expired, or does not name the host: check the trust roots
        /// (``ProvisioningClient/Configuration/trustRoots``) and the endpoint. Never retried.
        public static let serverCertificateUntrusted = Code("serverCertificateUntrusted")
        /// The server refused the device's certificate (or the certificate or key could not be used). Never retried.
        public static let clientCertificateRejected = Code("clientCertificateRejected")
    }
}

extension ProvisioningError: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String {
        var parts = ["ProvisioningError.\(self.code): \(self.message)"]
        if let httpStatus { parts.append("status \(httpStatus)") }
        if let errorCode { parts.append("errorCode \(errorCode)") }
        if let trackingId { parts.append("trackingId \(trackingId)") }
        return parts.joined(separator: ", ")
    }
}
