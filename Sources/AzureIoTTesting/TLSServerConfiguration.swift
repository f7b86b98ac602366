public import AzureIoTCore

/// How a TLS server (the emulator, test peers) is set up.
public struct TLSServerConfiguration: Sendable {
    /// Whether and how clients present certificates.
    public enum ClientAuthentication: Sendable {
        /// Clients are not asked for a certificate.
        case none
        /// Clients may present one; it must chain to these roots if presented.
        case optional(TLSConfiguration.TrustRoots)
        /// Clients must present one that chains to these roots.
        case required(TLSConfiguration.TrustRoots)
        /// Clients may present any certificate; the handshake does not judge it and the application checks
        /// `TLSConnection/peerCertificateChain` itself (as DPS and IoT Hub do per enrollment or device).
        case requestedUnverified
    }

    /// The server's certificate chain and key.
    public var identity: X509Identity
    /// Client certificate policy.
    public var clientAuthentication: ClientAuthentication
    /// The lowest version accepted.
    public var minimumVersion: TLSConfiguration.MinimumVersion
    /// How long a handshake may take.
    public var handshakeTimeout: Duration

    /// A server configuration.
    public init(
        identity: X509Identity,
        clientAuthentication: ClientAuthentication = .none,
        minimumVersion: TLSConfiguration.MinimumVersion = .tls12,
        handshakeTimeout: Duration = .seconds(30)
    ) {
        self.identity = identity
        self.clientAuthentication = clientAuthentication
        self.minimumVersion = minimumVersion
        self.handshakeTimeout = handshakeTimeout
    }
}

extension TLSServerConfiguration {
    /// The OpenSSL server context this configuration describes.
    func makeContext() throws(AzureIoTError) -> TLSContext {
        let verification: TLSContext.ClientVerification
        switch self.clientAuthentication {
        case .none: verification = .none
        case .optional(let roots): verification = .optional(roots)
        case .required(let roots): verification = .required(roots)
        case .requestedUnverified: verification = .requestedUnverified
        }
        return try TLSContext(
            serverIdentity: self.identity,
            clientVerification: verification,
            minimumVersion: self.minimumVersion
        )
    }
}
