public import AzureIoTCore
private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// A certificate authority made in memory: an EC P-256 key and a CA certificate that issues server, client and
/// intermediate CA certificates. The emulator makes its TLS server certificate with one, and tests and demos make
/// device certificates for X.509 enrollments without the `openssl` command.
public struct CertificateAuthority: Sendable {
    /// The CA's certificate and key (with the chain up to, not including, the root).
    public let identity: X509Identity
    /// The CA certificate in PEM, what clients trust (like an IoT Edge root CA).
    public let certificatePEM: String
    /// The CA's private key in PEM (PKCS #8), for the emulator to keep its CA across restarts (`--data-dir`).
    package let privateKeyPEM: String

    private init(identity: X509Identity, certificatePEM: String, privateKeyPEM: String) {
        self.identity = identity
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A CA from its certificate and key in PEM, as ``privateKeyPEM`` and ``certificatePEM`` wrote them.
    package init(certificatePEM: String, privateKeyPEM: String) throws(AzureIoTError) {
        self.init(
            identity: try X509Identity(certificatePEM: certificatePEM, privateKeyPEM: privateKeyPEM),
            certificatePEM: certificatePEM,
            privateKeyPEM: privateKeyPEM
        )
    }

    /// Makes a self-signed root CA named `commonName`, valid for `validityDays`.
    public init(commonName: String, validityDays: Int = 365) throws(AzureIoTError) {
        let issued = try Self.issue(
            commonName: commonName,
            isCA: true,
            subjectAlternativeNames: [],
            validityDays: validityDays,
            issuer: nil
        )
        self.init(
            identity: issued.identity,
            certificatePEM: issued.certificatePEM,
            privateKeyPEM: issued.privateKeyPEM
        )
    }

    /// Issues a subordinate CA (for "verified intermediate" enrollment groups).
    public func intermediate(commonName: String, validityDays: Int = 365) throws(AzureIoTError) -> CertificateAuthority
    {
        let issued = try Self.issue(
            commonName: commonName,
            isCA: true,
            subjectAlternativeNames: [],
            validityDays: validityDays,
            issuer: self
        )
        return CertificateAuthority(
            identity: issued.identity,
            certificatePEM: issued.certificatePEM,
            privateKeyPEM: issued.privateKeyPEM
        )
    }

    /// Issues an end-entity certificate usable for TLS servers and clients. `subjectAlternativeNames` are DNS names
    /// or IP literals (e.g. `["localhost", "127.0.0.1"]`).
    public func issue(commonName: String, subjectAlternativeNames: [String] = [], validityDays: Int = 365)
        throws(AzureIoTError) -> IssuedCertificate
    {
        try Self.issue(
            commonName: commonName,
            isCA: false,
            subjectAlternativeNames: subjectAlternativeNames,
            validityDays: validityDays,
            issuer: self
        )
    }

    /// Issues a client certificate for a PKCS #10 request in DER (as DPS does for a registration's `csr`): checks the
    /// request's signature (proof of possession of its key), keeps its subject and key, and signs for
    /// `validityDays`. Returns the request's common name with the certificate. Throws
    /// `AzureIoTError.Code.invalidCertificate` for bytes that are not a correctly signed request with a CN.
    public func issue(signingRequest der: [UInt8], validityDays: Int = 30) throws(AzureIoTError) -> (
        commonName: String, certificate: X509Certificate
    ) {
        guard validityDays > 0, validityDays <= 36_500 else {
            throw AzureIoTError(.invalidArgument, "a certificate's validity must be 1 to 36500 days")
        }
        OpenSSLErrorQueue.clear()
        var nameText: UnsafeMutablePointer<CChar>?
        var certificateText: UnsafeMutablePointer<CChar>?
        let ok = der.withUnsafeBufferPointer { bytes in
            azi_sign_csr(
                bytes.baseAddress,
                bytes.count,
                UnsafeMutableRawPointer(self.identity.leaf.pointer),
                UnsafeMutableRawPointer(self.identity.privateKey.pointer),
                Int32(validityDays),
                &nameText,
                &certificateText
            )
        }
        defer {
            azi_free(nameText)
            azi_free(certificateText)
        }
        guard ok == 1, let nameText, let certificateText else {
            throw AzureIoTError(
                .invalidCertificate,
                "the certificate signing request is not a correctly signed PKCS #10 request with a CN",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        let certificate = try X509Certificate.certificates(fromPEM: String(cString: certificateText))[0]
        return (String(cString: nameText), certificate)
    }

    private static func issue(
        commonName: String,
        isCA: Bool,
        subjectAlternativeNames: [String],
        validityDays: Int,
        issuer: CertificateAuthority?
    ) throws(AzureIoTError) -> IssuedCertificate {
        guard !commonName.isEmpty, commonName.utf8.count <= 64, !commonName.contains("\0") else {
            throw AzureIoTError(.invalidArgument, "a certificate common name must have 1 to 64 bytes")
        }
        guard validityDays > 0, validityDays <= 36_500 else {
            throw AzureIoTError(.invalidArgument, "a certificate's validity must be 1 to 36500 days")
        }
        let names = try subjectAlternativeNames.map { name throws(AzureIoTError) -> String in
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || ".-:*_".contains($0) }) else {
                throw AzureIoTError(.invalidArgument, "'\(name)' is not a DNS name or IP address")
            }
            let isAddress = name.contains(":") || name.allSatisfy { $0.isNumber || $0 == "." }
            return (isAddress ? "IP:" : "DNS:") + name
        }.joined(separator: ",")
        OpenSSLErrorQueue.clear()
        var certificateText: UnsafeMutablePointer<CChar>?
        var keyText: UnsafeMutablePointer<CChar>?
        let ok = azi_issue_certificate(
            commonName,
            isCA ? 1 : 0,
            names,
            Int32(validityDays),
            issuer.map { UnsafeMutableRawPointer($0.identity.leaf.pointer) },
            issuer.map { UnsafeMutableRawPointer($0.identity.privateKey.pointer) },
            &certificateText,
            &keyText
        )
        defer {
            azi_free(certificateText)
            azi_free(keyText)
        }
        guard ok == 1, let certificateText, let keyText else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not issue a certificate for '\(commonName)'",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        let certificatePEM = String(cString: certificateText)
        let keyPEM = String(cString: keyText)
        let chain = issuer.map { [$0.identity.leaf] + $0.identity.chain } ?? []
        let leaf = try X509Certificate.certificates(fromPEM: certificatePEM)[0]
        let identity = try X509Identity(
            leaf: leaf,
            chain: chain.filter { $0.commonName != nil && !$0.isSelfSigned },
            privateKey: try PrivateKey(pem: keyPEM)
        )
        let chainPEM = identity.chain.map(\.pem).joined()
        return IssuedCertificate(
            identity: identity,
            certificatePEM: certificatePEM,
            chainPEM: chainPEM,
            privateKeyPEM: keyPEM
        )
    }
}

/// A certificate with its key, as PEM for files and as an `X509Identity` for this SDK.
public struct IssuedCertificate: Sendable, CustomStringConvertible {
    /// The certificate, key and intermediates.
    public let identity: X509Identity
    /// The leaf certificate in PEM.
    public let certificatePEM: String
    /// The intermediate CA certificates (not the root) in PEM, empty when the issuer is a root.
    public let chainPEM: String
    /// The private key in PKCS#8 PEM. A secret: write it to a file only with owner-only permissions.
    public let privateKeyPEM: String

    /// Subject and thumbprint; never the key.
    public var description: String {
        "IssuedCertificate(\(self.identity.leaf.subject), thumbprint: \(self.identity.thumbprint))"
    }
}
