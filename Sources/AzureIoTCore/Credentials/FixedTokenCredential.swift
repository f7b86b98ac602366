/// A credential that holds one ready-made SAS token (from a connection string's `SharedAccessSignature`, or issued by
/// a backend). It cannot renew: once the token expires, ``issueToken(for:now:)`` throws
/// ``AzureIoTError/Code/sasTokenExpired``.
public struct FixedTokenCredential: SASTokenSource {
    /// The token.
    public let token: SASToken

    /// Wraps `token`.
    public init(token: SASToken) { self.token = token }

    /// Issues a token for `resource` at time `now` (seconds since 1970).
    public func issueToken(for resource: SASResource, now: UInt64) throws(AzureIoTError) -> IssuedSASToken {
        guard resource.uri.lowercased() == self.token.resource.uri.lowercased() else {
            throw AzureIoTError(
                .sasResourceMismatch,
                "the fixed SAS token is for '\(self.token.resource.uri)', not '\(resource.uri)'"
            )
        }
        guard now < self.token.expiry else {
            throw AzureIoTError(
                .sasTokenExpired,
                "the fixed SAS token expired at \(self.token.expiry); supply a new one"
            )
        }
        return IssuedSASToken(token: self.token, issuedAt: now, renewAt: self.token.expiry)
    }

    /// A readable summary that never contains secrets.
    public var description: String { "FixedTokenCredential(\(self.token))" }
}
