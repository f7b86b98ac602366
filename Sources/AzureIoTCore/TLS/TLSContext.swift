private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// An OpenSSL `SSL_CTX` built from a client or server configuration; one context serves many connections.
///
/// Configured once in `init` and never changed afterwards; OpenSSL allows creating connections from one
/// `SSL_CTX` on many threads, hence `@unchecked Sendable`.
final class TLSContext: @unchecked Sendable {
    enum Role { case client, server }

    let pointer: OpaquePointer
    let role: Role

    /// A client context.
    init(client configuration: TLSConfiguration) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw AzureIoTError(.cryptoFailure, "OpenSSL could not create a TLS context", details: OpenSSLErrorQueue.drainText())
        }
        self.pointer = context
        self.role = .client
        try self.applyCommon(minimumVersion: configuration.minimumVersion)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        try self.loadTrustRoots(configuration.trustRoots)
        if let identity = configuration.clientIdentity { try self.use(identity) }
    }

    /// A server context.
    init(server configuration: TLSServerConfiguration) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw AzureIoTError(.cryptoFailure, "OpenSSL could not create a TLS context", details: OpenSSLErrorQueue.drainText())
        }
        self.pointer = context
        self.role = .server
        try self.applyCommon(minimumVersion: configuration.minimumVersion)
        try self.use(configuration.identity)
        switch configuration.clientAuthentication {
        case .none:
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        case .optional(let roots):
            try self.loadTrustRoots(roots)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .required(let roots):
            try self.loadTrustRoots(roots)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
    }

    deinit { SSL_CTX_free(self.pointer) }

    private func applyCommon(minimumVersion: TLSConfiguration.MinimumVersion) throws(AzureIoTError) {
        let version = minimumVersion == .tls13 ? azi_tls1_3_version() : azi_tls1_2_version()
        guard azi_ssl_ctx_set_min_proto_version(UnsafeMutableRawPointer(self.pointer), version) == 1 else {
            throw AzureIoTError(.cryptoFailure, "OpenSSL refused the minimum TLS version", details: OpenSSLErrorQueue.drainText())
        }
        azi_ssl_ctx_set_nonblocking_modes(UnsafeMutableRawPointer(self.pointer))
        azi_ssl_ctx_disable_renegotiation(UnsafeMutableRawPointer(self.pointer))
    }

    private func loadTrustRoots(_ roots: TLSConfiguration.TrustRoots) throws(AzureIoTError) {
        switch roots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(self.pointer) == 1 else {
                throw AzureIoTError(.cryptoFailure, "the system trust store could not be loaded", details: OpenSSLErrorQueue.drainText())
            }
        case .pemFile(let path):
            try self.trust(try X509Certificate.certificates(fromPEMFile: path))
        case .pem(let text):
            try self.trust(try X509Certificate.certificates(fromPEM: text))
        case .certificates(let certificates):
            try self.trust(certificates)
        }
    }

    private func trust(_ certificates: [X509Certificate]) throws(AzureIoTError) {
        for certificate in certificates {
            guard azi_ssl_ctx_add_trusted_cert(UnsafeMutableRawPointer(self.pointer), UnsafeMutableRawPointer(certificate.pointer)) == 1
            else {
                throw AzureIoTError(.invalidCertificate, "cannot trust '\(certificate.subject)'", details: OpenSSLErrorQueue.drainText())
            }
        }
    }

    private func use(_ identity: X509Identity) throws(AzureIoTError) {
        guard SSL_CTX_use_certificate(self.pointer, identity.leaf.pointer) == 1 else {
            throw AzureIoTError(.invalidCertificate, "OpenSSL refused the certificate '\(identity.leaf.subject)'", details: OpenSSLErrorQueue.drainText())
        }
        for intermediate in identity.chain {
            guard azi_ssl_ctx_add1_chain_cert(UnsafeMutableRawPointer(self.pointer), UnsafeMutableRawPointer(intermediate.pointer)) == 1 else {
                throw AzureIoTError(.invalidCertificate, "OpenSSL refused the chain certificate '\(intermediate.subject)'", details: OpenSSLErrorQueue.drainText())
            }
        }
        guard SSL_CTX_use_PrivateKey(self.pointer, identity.privateKey.pointer) == 1, SSL_CTX_check_private_key(self.pointer) == 1 else {
            throw AzureIoTError(.privateKeyMismatch, "OpenSSL refused the private key for '\(identity.leaf.subject)'", details: OpenSSLErrorQueue.drainText())
        }
    }
}
