/// A credential that mints SAS tokens on demand from a shared access key.
///
/// Tokens live ``timeToLive`` seconds (default one hour) and should be renewed after ``renewalFraction`` of that
/// (default 80 %, as Azure's C SDK does).
public struct SymmetricKeyCredential: SASTokenSource {
    /// The default token lifetime: one hour.
    public static let defaultTimeToLive: UInt64 = 3600
    /// The default point of renewal: 80 % of the lifetime.
    public static let defaultRenewalFraction = 0.8

    /// The signing key.
    public let key: SymmetricKey
    /// `skn`: `"registration"` for DPS, a policy name for policy keys, `nil` for device and module keys.
    public var keyName: String?
    /// Token lifetime in seconds.
    public var timeToLive: UInt64
    /// The fraction of the lifetime after which ``IssuedSASToken/needsRenewal(now:)`` turns true (0 < f ≤ 1).
    public var renewalFraction: Double

    /// A credential minting tokens from `key`.
    public init(
        key: SymmetricKey,
        keyName: String? = nil,
        timeToLive: UInt64 = SymmetricKeyCredential.defaultTimeToLive,
        renewalFraction: Double = SymmetricKeyCredential.defaultRenewalFraction
    ) {
        self.key = key
        self.keyName = keyName
        self.timeToLive = max(1, timeToLive)
        self.renewalFraction = min(1, max(0.01, renewalFraction))
    }

    /// A credential from a base64 key. Throws ``AzureIoTError/Code/invalidBase64``.
    public init(
        base64Key: String,
        keyName: String? = nil,
        timeToLive: UInt64 = SymmetricKeyCredential.defaultTimeToLive
    )
        throws(AzureIoTError)
    {
        self.init(key: try SymmetricKey(base64: base64Key), keyName: keyName, timeToLive: timeToLive)
    }

    /// Issues a token for `resource` at time `now` (seconds since 1970).
    public func issueToken(for resource: SASResource, now: UInt64) throws(AzureIoTError) -> IssuedSASToken {
        let expiry = now + self.timeToLive
        let token = SASToken.generate(for: resource, key: self.key, expiry: expiry, keyName: self.keyName)
        let renewAfter = UInt64((Double(self.timeToLive) * self.renewalFraction).rounded(.down))
        return IssuedSASToken(token: token, issuedAt: now, renewAt: now + max(1, renewAfter))
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "SymmetricKeyCredential(key: <redacted>, keyName: \(self.keyName ?? "nil"), ttl: \(self.timeToLive)s)"
    }
}
