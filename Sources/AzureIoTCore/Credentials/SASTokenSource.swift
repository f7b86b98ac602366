/// Something that hands out SAS tokens for a resource: a key that mints them, or a fixed token.
public protocol SASTokenSource: Sendable, CustomStringConvertible {
    /// A token for `resource` valid at `now` (seconds since 1970), with the time the caller should renew it.
    func issueToken(for resource: SASResource, now: UInt64) throws(AzureIoTError) -> IssuedSASToken

    /// A token for `resource` valid at `now`, from a source that may have to ask something else to sign it (the
    /// IoT Edge workload API, a hardware module). The hub clients call this one; by default it is
    /// ``issueToken(for:now:)``.
    func token(for resource: SASResource, now: UInt64) async throws(AzureIoTError) -> IssuedSASToken
}

extension SASTokenSource {
    /// Issues the token in place: a key or a fixed token needs nobody else.
    public func token(for resource: SASResource, now: UInt64) async throws(AzureIoTError) -> IssuedSASToken {
        try self.issueToken(for: resource, now: now)
    }

    /// A token for `resource`, valid now.
    public func issueToken(for resource: SASResource) throws(AzureIoTError) -> IssuedSASToken {
        try self.issueToken(for: resource, now: UnixTime.now())
    }
}

/// A SAS token together with when it was issued and when to replace it.
public struct IssuedSASToken: Sendable, CustomStringConvertible {
    /// The token.
    public let token: SASToken
    /// When it was issued (seconds since 1970).
    public let issuedAt: UInt64
    /// When the caller should get a new one (seconds since 1970); equal to the expiry for a fixed token.
    public let renewAt: UInt64

    /// Wraps a token with its issue and renewal times.
    public init(token: SASToken, issuedAt: UInt64, renewAt: UInt64) {
        self.token = token
        self.issuedAt = issuedAt
        self.renewAt = renewAt
    }

    /// When the token stops being valid (seconds since 1970).
    public var expiresAt: UInt64 { self.token.expiry }

    /// Whether it is time to renew at `now`.
    public func needsRenewal(now: UInt64 = UnixTime.now()) -> Bool { now >= self.renewAt }

    /// A readable summary that never contains secrets.
    public var description: String {
        "IssuedSASToken(\(self.token), issuedAt: \(self.issuedAt), renewAt: \(self.renewAt))"
    }
}
