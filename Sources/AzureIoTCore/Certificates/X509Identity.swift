private import CAzureIoTOpenSSL

/// A device's X.509 identity: the leaf certificate, the intermediates that chain it to an enrolled root, and the
/// leaf's private key, checked to belong together.
///
/// For DPS the registration id must equal ``commonName``. The `description` shows the subject and thumbprint only.
public struct X509Identity: Sendable {
    /// The device (leaf) certificate.
    public let leaf: X509Certificate
    /// Intermediate certificates sent after the leaf, nearest first.
    public let chain: [X509Certificate]
    /// The leaf's private key.
    public let privateKey: PrivateKey

    /// Builds an identity from loaded parts. Throws ``AzureIoTError/Code/privateKeyMismatch`` if the key is not the
    /// leaf's.
    public init(leaf: X509Certificate, chain: [X509Certificate] = [], privateKey: PrivateKey) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard X509_check_private_key(leaf.pointer, privateKey.pointer) == 1 else {
            throw AzureIoTError(
                .privateKeyMismatch,
                "the private key does not belong to the certificate '\(leaf.subject)'",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        self.leaf = leaf
        self.chain = chain
        self.privateKey = privateKey
    }

    /// Loads an identity from PEM text: `certificatePEM` holds the leaf first, then any intermediates.
    public init(certificatePEM: String, privateKeyPEM: String, passphrase: String? = nil) throws(AzureIoTError) {
        let certificates = try X509Certificate.certificates(fromPEM: certificatePEM)
        let key = try PrivateKey(pem: privateKeyPEM, passphrase: passphrase)
        try self.init(leaf: certificates[0], chain: Array(certificates.dropFirst()), privateKey: key)
    }

    /// Loads an identity from PEM files: the certificate file holds the leaf first, then any intermediates; an
    /// optional separate chain file adds more intermediates.
    public init(
        certificateFile: String,
        privateKeyFile: String,
        chainFile: String? = nil,
        passphrase: String? = nil
    ) throws(AzureIoTError) {
        let certificates = try X509Certificate.certificates(fromPEMFile: certificateFile)
        let extra =
            try chainFile.map { path throws(AzureIoTError) in try X509Certificate.certificates(fromPEMFile: path) }
            ?? []
        let key = try PrivateKey(pemFile: privateKeyFile, passphrase: passphrase)
        try self.init(leaf: certificates[0], chain: Array(certificates.dropFirst()) + extra, privateKey: key)
    }

    /// The leaf's subject common name: the DPS registration id and IoT Hub device id for CA-signed devices.
    public var commonName: String? { self.leaf.commonName }

    /// The leaf's SHA-1 thumbprint (upper-case hex), what self-signed device enrollments name.
    public var thumbprint: String { self.leaf.sha1Thumbprint }
}

extension X509Identity: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String {
        "X509Identity(CN=\(self.commonName ?? "?"), thumbprint: \(self.thumbprint), chain: \(self.chain.count), key: <redacted>)"
    }
}
