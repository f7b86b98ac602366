private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// An OpenSSL `SSL_CTX` built from a client or server configuration; one context serves many connections.
///
/// Configured once in `init` and never changed afterwards; OpenSSL allows creating connections from one
/// `SSL_CTX` on many threads, hence `@unchecked Sendable`.
package final class TLSContext: @unchecked Sendable {
    enum Role { case client, server }

    let pointer: OpaquePointer
    let role: Role

    /// A client context.
    init(client configuration: TLSConfiguration) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not create a TLS context",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        self.pointer = context
        self.role = .client
        try Self.applyCommon(context, minimumVersion: configuration.minimumVersion)
        azi_ssl_ctx_set_read_ahead(UnsafeMutableRawPointer(context))
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        try Self.loadTrustRoots(context, configuration.trustRoots)
        if let identity = configuration.clientIdentity { try Self.use(context, identity) }
    }

    /// How a server context treats client certificates (`AzureIoTTesting`'s `TLSServerConfiguration` maps to it).
    package enum ClientVerification: Sendable {
        /// Clients are not asked for a certificate.
        case none
        /// A certificate is asked for; one that is presented must chain to these roots.
        case optional(TLSConfiguration.TrustRoots)
        /// A certificate chaining to these roots is required.
        case required(TLSConfiguration.TrustRoots)
        /// Any certificate is asked for and accepted; the application judges it.
        case requestedUnverified
    }

    /// A server context, for the emulator and test peers (`AzureIoTTesting`).
    package init(
        serverIdentity identity: X509Identity,
        clientVerification: ClientVerification,
        minimumVersion: TLSConfiguration.MinimumVersion
    ) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not create a TLS context",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        self.pointer = context
        self.role = .server
        try Self.applyCommon(context, minimumVersion: minimumVersion)
        azi_ssl_ctx_set_read_ahead(UnsafeMutableRawPointer(context))
        try Self.use(context, identity)
        switch clientVerification {
        case .none:
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        case .optional(let roots):
            try Self.loadTrustRoots(context, roots)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .required(let roots):
            try Self.loadTrustRoots(context, roots)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        case .requestedUnverified:
            azi_ssl_ctx_request_any_client_certificate(UnsafeMutableRawPointer(context))
        }
    }

    deinit { SSL_CTX_free(self.pointer) }

    /// Applies a client configuration's trust roots, minimum version and client identity to an `SSL_CTX` that
    /// another library created (libcurl's `CURLOPT_SSL_CTX_FUNCTION`), so every TLS client in the SDK shares one
    /// setup. Host-name checks stay with the caller (libcurl does its own).
    package static func apply(_ configuration: TLSConfiguration, toForeignContext context: UnsafeMutableRawPointer)
        throws(AzureIoTError)
    {
        let pointer = OpaquePointer(context)
        try Self.applyCommon(pointer, minimumVersion: configuration.minimumVersion)
        if case .system = configuration.trustRoots {
            // The library that owns the context already loaded its default bundle.
        } else {
            // Replace whatever the owner loaded with exactly the configured roots.
            guard let store = X509_STORE_new() else {
                throw AzureIoTError(
                    .cryptoFailure,
                    "OpenSSL could not create a trust store",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
            SSL_CTX_set_cert_store(pointer, store)
            try Self.loadTrustRoots(pointer, configuration.trustRoots)
        }
        if let identity = configuration.clientIdentity { try Self.use(pointer, identity) }
    }

    private static func applyCommon(_ context: OpaquePointer, minimumVersion: TLSConfiguration.MinimumVersion)
        throws(AzureIoTError)
    {
        let version = minimumVersion == .tls13 ? azi_tls1_3_version() : azi_tls1_2_version()
        guard azi_ssl_ctx_set_min_proto_version(UnsafeMutableRawPointer(context), version) == 1 else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL refused the minimum TLS version",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        azi_ssl_ctx_set_nonblocking_modes(UnsafeMutableRawPointer(context))
        azi_ssl_ctx_disable_renegotiation(UnsafeMutableRawPointer(context))
    }

    private static func loadTrustRoots(_ context: OpaquePointer, _ roots: TLSConfiguration.TrustRoots)
        throws(AzureIoTError)
    {
        switch roots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw AzureIoTError(
                    .cryptoFailure,
                    "the system trust store could not be loaded",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
        case .pemFile(let path):
            try Self.trust(context, try X509Certificate.certificates(fromPEMFile: path))
        case .pem(let text):
            try Self.trust(context, try X509Certificate.certificates(fromPEM: text))
        case .certificates(let certificates):
            try Self.trust(context, certificates)
        }
    }

    private static func trust(_ context: OpaquePointer, _ certificates: [X509Certificate]) throws(AzureIoTError) {
        for certificate in certificates {
            guard
                azi_ssl_ctx_add_trusted_cert(
                    UnsafeMutableRawPointer(context),
                    UnsafeMutableRawPointer(certificate.pointer)
                ) == 1
            else {
                throw AzureIoTError(
                    .invalidCertificate,
                    "cannot trust '\(certificate.subject)'",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
        }
    }

    private static func use(_ context: OpaquePointer, _ identity: X509Identity) throws(AzureIoTError) {
        guard SSL_CTX_use_certificate(context, identity.leaf.pointer) == 1 else {
            throw AzureIoTError(
                .invalidCertificate,
                "OpenSSL refused the certificate '\(identity.leaf.subject)'",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        for intermediate in identity.chain {
            guard
                azi_ssl_ctx_add1_chain_cert(
                    UnsafeMutableRawPointer(context),
                    UnsafeMutableRawPointer(intermediate.pointer)
                ) == 1
            else {
                throw AzureIoTError(
                    .invalidCertificate,
                    "OpenSSL refused the chain certificate '\(intermediate.subject)'",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
        }
        guard SSL_CTX_use_PrivateKey(context, identity.privateKey.pointer) == 1, SSL_CTX_check_private_key(context) == 1
        else {
            throw AzureIoTError(
                .privateKeyMismatch,
                "OpenSSL refused the private key for '\(identity.leaf.subject)'",
                details: OpenSSLErrorQueue.drainText()
            )
        }
    }
}
