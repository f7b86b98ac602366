private import CAzureIoTOpenSSL

/// A private key (RSA or EC) held by OpenSSL. Its `description` never shows key material.
///
/// Immutable after loading; OpenSSL allows concurrent use of a loaded `EVP_PKEY` for signing, hence
/// `@unchecked Sendable`.
public final class PrivateKey: @unchecked Sendable {
    /// The OpenSSL `EVP_PKEY *`.
    let pointer: OpaquePointer

    private init(taking pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_PKEY_free(self.pointer) }

    /// Reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; encrypted when `passphrase` is given).
    /// Throws ``AzureIoTError/Code/invalidPrivateKey`` with a reason that says whether the passphrase is the problem.
    public convenience init(pem: String, passphrase: String? = nil) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let bio = copyIntoMemoryBIO(pem) else {
            throw AzureIoTError(.cryptoFailure, "OpenSSL could not allocate a buffer", details: OpenSSLErrorQueue.drainText())
        }
        defer { BIO_free(bio) }
        // The passphrase travels to the callback as a NUL-terminated copy; an empty one means "none given".
        var secret = Array((passphrase ?? "").utf8CString)
        defer { for index in secret.indices { secret[index] = 0 } }
        let key = secret.withUnsafeMutableBufferPointer { buffer in
            PEM_read_bio_PrivateKey(bio, nil, { output, size, _, userData in
                guard let output, let userData else { return -1 }
                let secret = userData.assumingMemoryBound(to: CChar.self)
                let length = strlen(secret)
                guard length > 0, length <= Int(size) else { return -1 }
                output.update(from: secret, count: length)
                return Int32(length)
            }, buffer.baseAddress)
        }
        guard let key else {
            let errors = OpenSSLErrorQueue.drain()
            let encrypted = pem.contains("ENCRYPTED")
            let reason: String
            if encrypted && passphrase == nil {
                reason = "the private key is encrypted: supply its passphrase"
            } else if encrypted {
                reason = "the private key could not be decrypted: the passphrase is wrong"
            } else {
                reason = "no PEM private key could be read (expected '-----BEGIN PRIVATE KEY-----' or an RSA/EC key)"
            }
            throw AzureIoTError(.invalidPrivateKey, reason, details: errors.map(\.text))
        }
        self.init(taking: key)
    }

    /// Reads a PEM private key file. Throws ``AzureIoTError/Code/fileNotReadable`` or
    /// ``AzureIoTError/Code/invalidPrivateKey``.
    public convenience init(pemFile path: String, passphrase: String? = nil) throws(AzureIoTError) {
        try self.init(pem: try readTextFile(path, what: "private key file"), passphrase: passphrase)
    }

    /// `"RSA"`, `"EC"` or another OpenSSL type name.
    public var algorithm: String {
        switch EVP_PKEY_get_base_id(self.pointer) {
        case EVP_PKEY_RSA: return "RSA"
        case EVP_PKEY_EC: return "EC"
        case EVP_PKEY_ED25519: return "Ed25519"
        default: return "other"
        }
    }

    /// The key size in bits.
    public var bits: Int { Int(EVP_PKEY_get_bits(self.pointer)) }
}

extension PrivateKey: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String { "PrivateKey(\(self.algorithm) \(self.bits) bits, <redacted>)" }
}
