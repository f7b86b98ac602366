/// The error thrown by `AzureIoTCore`: bad credentials input, SAS validation failures, certificate loading and the
/// TLS transport.
///
/// Compare on ``code`` (equality and hashing look only at the code) and read ``message`` for what to fix. Messages
/// never contain a key, token or password.
public struct AzureIoTError: Error, Hashable, Sendable {
    /// What went wrong, as a value a caller can switch on.
    public var code: Code
    /// A human-readable explanation that says what to fix; free of secrets.
    public var message: String
    /// The OpenSSL error queue at the time of the failure, drained into readable lines (never contains secrets).
    public var details: [String]
    /// The error that caused this one, as it was thrown (e.g. the `WebSocketCodecError` behind
    /// ``Code/webSocketProtocolViolation``), if any.
    public var underlying: (any Error & Sendable)?

    /// Creates an error with a code, a message, optional OpenSSL detail lines and the error behind it.
    public init(_ code: Code, _ message: String, details: [String] = [], underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.underlying = underlying
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: AzureIoTError, rhs: AzureIoTError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}

extension AzureIoTError {
    /// The kinds of ``AzureIoTError``. Open-ended: new codes may be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        // MARK: Input and configuration
        /// A value that must be base64 (a key, a signature) is not valid base64.
        public static let invalidBase64 = Code("invalidBase64")
        /// A document that must be JSON is not valid JSON (or nests deeper than allowed).
        public static let malformedJSON = Code("malformedJSON")
        /// A required argument is empty or has characters the service does not allow.
        public static let invalidArgument = Code("invalidArgument")
        /// A connection string lacks a key it needs.
        public static let missingConnectionStringField = Code("missingConnectionStringField")
        /// A connection string names the same key twice.
        public static let duplicateConnectionStringField = Code("duplicateConnectionStringField")
        /// A connection string has a key this SDK does not know.
        public static let unknownConnectionStringField = Code("unknownConnectionStringField")
        /// A connection string segment is not `Key=Value`, or keys contradict each other.
        public static let malformedConnectionString = Code("malformedConnectionString")

        // MARK: SAS tokens
        /// A SAS token string is not of the form `SharedAccessSignature sr=…&sig=…&se=…`.
        public static let malformedSASToken = Code("malformedSASToken")
        /// A SAS token's expiry has passed.
        public static let sasTokenExpired = Code("sasTokenExpired")
        /// A SAS token's signature does not match the key.
        public static let sasSignatureMismatch = Code("sasSignatureMismatch")
        /// A SAS token was issued for another resource than the one expected.
        public static let sasResourceMismatch = Code("sasResourceMismatch")

        // MARK: Certificates and keys
        /// A certificate could not be read (not PEM, corrupt, missing file).
        public static let invalidCertificate = Code("invalidCertificate")
        /// A private key could not be read, or the passphrase is wrong.
        public static let invalidPrivateKey = Code("invalidPrivateKey")
        /// The private key does not belong to the leaf certificate.
        public static let privateKeyMismatch = Code("privateKeyMismatch")
        /// A file could not be read.
        public static let fileNotReadable = Code("fileNotReadable")
        /// OpenSSL failed in a way that does not fit another code.
        public static let cryptoFailure = Code("cryptoFailure")

        // MARK: Network and TLS
        /// The host name could not be resolved.
        public static let nameResolutionFailed = Code("nameResolutionFailed")
        /// The TCP connection could not be established (refused, unreachable).
        public static let connectionFailed = Code("connectionFailed")
        /// The proxy refused to open the tunnel (its HTTP status, e.g. 407 for missing or wrong credentials, or the
        /// SOCKS reply, is in the message).
        public static let proxyRefused = Code("proxyRefused")
        /// The proxy wants credentials, or refused the ones given (HTTP 407, or 401 from proxies that send it, or a
        /// SOCKS5 proxy rejecting the user name and password).
        public static let proxyAuthenticationRequired = Code("proxyAuthenticationRequired")
        /// The server's certificate does not chain to a trusted root (wrong CA bundle, self-signed).
        public static let certificateUntrusted = Code("certificateUntrusted")
        /// The server's certificate is not valid for the host name connected to.
        public static let hostnameMismatch = Code("hostnameMismatch")
        /// The server's certificate has expired or is not yet valid.
        public static let certificateExpired = Code("certificateExpired")
        /// The server offers only TLS versions below the configured minimum (TLS 1.2).
        public static let unsupportedTLSVersion = Code("unsupportedTLSVersion")
        /// The peer refused our client certificate or asked for one we did not have.
        public static let clientCertificateRejected = Code("clientCertificateRejected")
        /// The TLS handshake failed for another reason (see ``AzureIoTError/details``).
        public static let tlsHandshakeFailed = Code("tlsHandshakeFailed")
        /// The TLS session failed after the handshake (corrupt record, protocol error).
        public static let tlsFailure = Code("tlsFailure")
        /// The peer closed the connection.
        public static let connectionClosed = Code("connectionClosed")
        /// An operation did not finish within its timeout.
        public static let timedOut = Code("timedOut")
        /// A socket call failed.
        public static let ioFailure = Code("ioFailure")
        /// A token source that asks something else to sign (the IoT Edge workload API, a hardware module) got no
        /// signature; ``AzureIoTError/underlying`` holds that signer's own error.
        public static let signingFailed = Code("signingFailed")
        /// The server refused the WebSocket upgrade (an HTTP status other than 101, a wrong accept key, no common
        /// sub-protocol), or answered it in a way RFC 6455 does not allow.
        public static let webSocketHandshakeFailed = Code("webSocketHandshakeFailed")
        /// The WebSocket peer broke RFC 6455 (an unmasked client frame, a reserved opcode, an oversized frame, text on
        /// a binary sub-protocol); the connection was closed with the matching status.
        public static let webSocketProtocolViolation = Code("webSocketProtocolViolation")
    }
}

extension AzureIoTError: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String {
        if self.details.isEmpty { return "AzureIoTError.\(self.code): \(self.message)" }
        return "AzureIoTError.\(self.code): \(self.message) [\(self.details.joined(separator: "; "))]"
    }
}
