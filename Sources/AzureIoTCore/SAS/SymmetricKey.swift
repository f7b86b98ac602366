/// A shared access key (a device key, a module key, a DPS enrollment or group key), decoded from base64 and ready
/// to sign. Its `description` never shows the key.
public struct SymmetricKey: Sendable {
    /// The HMAC context keyed with this key, shared by copies.
    let hmac: HMACSHA256
    /// The key as the service shows it (base64); kept so that derived keys and connection strings can be rebuilt.
    let base64: String

    /// Decodes a base64 key as Azure shows it in the portal and in connection strings.
    ///
    /// Signing goes through OpenSSL's providers unless `implementation` says otherwise (see ``HMACImplementation``).
    /// Throws ``AzureIoTError/Code/invalidBase64`` if it is not base64, ``AzureIoTError/Code/cryptoFailure`` if no
    /// loaded OpenSSL provider offers HMAC-SHA256 for it.
    public init(base64 text: String, implementation: HMACImplementation = .provider) throws(AzureIoTError) {
        let bytes = try Base64.decode(text, what: "the shared access key")
        self.hmac = try HMACSHA256(key: bytes, implementation: implementation)
        self.base64 = Base64.encode(bytes)
    }

    /// Uses raw key bytes. Throws ``AzureIoTError/Code/cryptoFailure`` if no loaded OpenSSL provider offers
    /// HMAC-SHA256 for them.
    public init(bytes: [UInt8], implementation: HMACImplementation = .provider) throws(AzureIoTError) {
        self.hmac = try HMACSHA256(key: bytes, implementation: implementation)
        self.base64 = Base64.encode(bytes)
    }

    /// How this key computes HMAC-SHA256: through OpenSSL's providers (the default) or the opt-in precomputed states.
    public var implementation: HMACImplementation { self.hmac.implementation }

    /// The base64 text of the key, for writing it where the caller chooses (a connection string, a vault).
    /// Treat the result as a secret.
    public var base64EncodedSecret: String { self.base64 }

    /// `base64(HMAC-SHA256(key, message))`, the signature primitive under SAS tokens and derived keys.
    public func signature(of message: String) -> String {
        Base64.encode(self.hmac.authenticate(Array(message.utf8)))
    }

    /// `HMAC-SHA256(key, message)`, raw: what a signer such as the IoT Edge workload API returns for arbitrary
    /// bytes.
    public func authenticationCode(of message: [UInt8]) -> [UInt8] {
        self.hmac.authenticate(message)
    }

    /// The device key of `registrationId` in a group enrollment whose group key is `self`:
    /// `base64(HMAC-SHA256(base64decode(groupKey), utf8(registrationId)))`.
    public func derivedKey(forRegistrationId registrationId: String) throws(AzureIoTError) -> SymmetricKey {
        try SymmetricKey(bytes: self.hmac.authenticate(Array(registrationId.utf8)), implementation: self.implementation)
    }
}

extension SymmetricKey: CustomStringConvertible, CustomDebugStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String { "SymmetricKey(<redacted>)" }
    /// The same as `description` (secrets redacted).
    public var debugDescription: String { self.description }
}
