private import CAzureIoTShims

/// A new key pair and a PKCS #10 certificate signing request for it (P-256, SHA-256), made with the system OpenSSL:
/// what a device sends to DPS (api-version `2025-07-01-preview`) to be issued its certificate. The CN is the
/// registration id. The private key never leaves this value except through ``exportPrivateKeyPEM()``; the
/// `description` never shows it.
public struct CertificateSigningRequest: Sendable, CustomStringConvertible {
    /// The subject's common name.
    public let commonName: String
    /// The request in DER.
    public let der: [UInt8]
    /// The private key the request was signed with (and the issued certificate will carry the public half of).
    public let privateKey: PrivateKey
    private let keyPEM: String

    /// Makes a key pair and a request for `commonName` (1 to 64 bytes, no NUL). Throws
    /// ``AzureIoTError/Code/invalidArgument`` for an unusable name and ``AzureIoTError/Code/cryptoFailure`` when
    /// OpenSSL cannot make them.
    public init(commonName: String) throws(AzureIoTError) {
        guard !commonName.isEmpty, commonName.utf8.count <= 64, !commonName.contains("\0") else {
            throw AzureIoTError(.invalidArgument, "a certificate request's common name must have 1 to 64 bytes")
        }
        OpenSSLErrorQueue.clear()
        var requestText: UnsafeMutablePointer<CChar>?
        var keyText: UnsafeMutablePointer<CChar>?
        let ok = azi_make_csr(commonName, &requestText, &keyText)
        defer {
            azi_free(requestText)
            azi_free(keyText)
        }
        guard ok == 1, let requestText, let keyText else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not make a key pair and request for '\(commonName)'",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        let pem = String(cString: requestText)
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        self.commonName = commonName
        self.der = try Base64.decode(body, what: "the certificate request")
        self.keyPEM = String(cString: keyText)
        self.privateKey = try PrivateKey(pem: self.keyPEM)
    }

    /// The request as DPS takes it: base64 of the DER, without PEM headers.
    public var base64: String { Base64.encode(self.der) }

    /// The identity to connect with once the certificate is issued: `chain` is what DPS returned
    /// (`issuedCertificateChain`: base64 DER, leaf first). Throws ``AzureIoTError/Code/invalidCertificate`` for a
    /// chain that is empty or not certificates, and ``AzureIoTError/Code/privateKeyMismatch`` when the leaf is not
    /// for this request's key.
    public func identity(issuedChain chain: [String]) throws(AzureIoTError) -> X509Identity {
        guard !chain.isEmpty else {
            throw AzureIoTError(.invalidCertificate, "the issued certificate chain is empty")
        }
        var certificates: [X509Certificate] = []
        for (index, entry) in chain.enumerated() {
            let der = try Base64.decode(entry, what: "issued certificate \(index)")
            var pem = "-----BEGIN CERTIFICATE-----\n"
            let text = Base64.encode(der)
            var start = text.startIndex
            while start < text.endIndex {
                let end = text.index(start, offsetBy: 64, limitedBy: text.endIndex) ?? text.endIndex
                pem += text[start..<end] + "\n"
                start = end
            }
            pem += "-----END CERTIFICATE-----\n"
            let parsed = try X509Certificate.certificates(fromPEM: pem)
            guard parsed.count == 1 else {
                throw AzureIoTError(.invalidCertificate, "issued certificate \(index) is not one certificate")
            }
            certificates.append(parsed[0])
        }
        return try X509Identity(
            leaf: certificates[0],
            chain: Array(certificates.dropFirst()),
            privateKey: self.privateKey
        )
    }

    /// The private key as PKCS #8 PEM, for storing it (a secret: write it only to a file the device alone can read).
    public func exportPrivateKeyPEM() -> String { self.keyPEM }

    /// The common name; never the key.
    public var description: String { "CertificateSigningRequest(CN=\(self.commonName), <key redacted>)" }
}
