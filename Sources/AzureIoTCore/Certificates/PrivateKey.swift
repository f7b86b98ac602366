private import CAzureIoTOpenSSL

/// A private key (RSA or EC) held by OpenSSL. Its `description` never shows key material.
///
/// Immutable after loading; OpenSSL allows concurrent use of a loaded `EVP_PKEY` for signing, hence
/// `@unchecked Sendable`.
public final class PrivateKey: @unchecked Sendable {
    /// The OpenSSL `EVP_PKEY *`.
    package let pointer: OpaquePointer

    private init(taking pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_PKEY_free(self.pointer) }

    /// Reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; encrypted when `passphrase` is given).
    /// Throws ``AzureIoTError/Code/invalidPrivateKey`` with a reason that says whether the passphrase is the problem.
    public convenience init(pem: String, passphrase: String? = nil) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        guard let bio = copyIntoMemoryBIO(pem) else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not allocate a buffer",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        defer { BIO_free(bio) }
        // The passphrase travels to the callback as a NUL-terminated copy; an empty one means "none given".
        var secret = Array((passphrase ?? "").utf8CString)
        defer { for index in secret.indices { secret[index] = 0 } }
        let key = secret.withUnsafeMutableBufferPointer { buffer in
            PEM_read_bio_PrivateKey(
                bio,
                nil,
                { output, size, _, userData in
                    guard let output, let userData else { return -1 }
                    let secret = userData.assumingMemoryBound(to: CChar.self)
                    let length = strlen(secret)
                    guard length > 0, length <= Int(size) else { return -1 }
                    output.update(from: secret, count: length)
                    return Int32(length)
                },
                buffer.baseAddress
            )
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

    /// Loads a private key through OpenSSL's `OSSL_STORE` by URI, so that whichever provider the OpenSSL
    /// configuration loads for that scheme holds the key: `file:/path/key.pem` with the default provider, or
    /// `pkcs11:…` / `handle:…` when a PKCS #11 or TPM 2.0 provider is configured. The key may never leave the
    /// provider; TLS signs through it.
    ///
    /// The URI may carry a PIN, so errors name only its scheme. Throws ``AzureIoTError/Code/invalidPrivateKey`` when
    /// no loaded provider opens the URI or it holds no private key.
    public convenience init(storeURI uri: String) throws(AzureIoTError) {
        OpenSSLErrorQueue.clear()
        let scheme = uri.split(separator: ":", maxSplits: 1).first.map(String.init) ?? "?"
        // OpenSSL's error data may quote the URI (and a PIN in it): those lines keep only the scheme.
        func details() -> [String] {
            OpenSSLErrorQueue.drainText().map { $0.replacing(uri, with: "\(scheme):<redacted>") }
        }
        guard let store = OSSL_STORE_open_ex(uri, nil, nil, nil, nil, nil, nil, nil) else {
            throw AzureIoTError(
                .invalidPrivateKey,
                "no loaded OpenSSL provider could open the '\(scheme):' key URI",
                details: details()
            )
        }
        defer { OSSL_STORE_close(store) }
        _ = OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY)
        var key: OpaquePointer?
        // A store lists its objects one by one; a misbehaving provider cannot keep this loop going for ever.
        var remaining = 1024
        while key == nil, OSSL_STORE_eof(store) == 0, remaining > 0 {
            remaining -= 1
            guard let info = OSSL_STORE_load(store) else {
                if OSSL_STORE_error(store) != 0 { break }
                continue
            }
            if OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY { key = OSSL_STORE_INFO_get1_PKEY(info) }
            OSSL_STORE_INFO_free(info)
        }
        guard let key else {
            throw AzureIoTError(
                .invalidPrivateKey,
                "the '\(scheme):' key URI holds no private key this process can use",
                details: details()
            )
        }
        self.init(taking: key)
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
