public import AzureIoTCore

/// SASL PLAIN credentials for a device on IoT Hub: authorization id empty, authentication id
/// `{deviceId}@sas.{hubShortName}`, password the SAS token. `description` never shows the token.
public struct SASLPlainCredentials: Sendable {
    /// The authentication identity, `{deviceId}@sas.{hubShortName}`.
    public let authenticationId: String
    /// The SAS token sent as the password.
    let token: String

    /// Credentials for `deviceId` (or its module `moduleId`, as `{device}/{module}`) on the hub at `hubHost`
    /// (`{hub}.azure-devices.net`; the short name is its first label), using `token`.
    public init(deviceId: String, moduleId: String? = nil, hubHost: String, token: SASToken) {
        let shortName = hubHost.split(separator: ".", maxSplits: 1).first.map(String.init) ?? hubHost
        let identity = moduleId.map { "\(deviceId)/\($0)" } ?? deviceId
        self.authenticationId = "\(identity)@sas.\(shortName)"
        self.token = token.secretValue
    }

    /// The SASL PLAIN initial response: `authzid NUL authcid NUL password`, with an empty authzid.
    public var initialResponse: [UInt8] {
        [0] + Array(self.authenticationId.utf8) + [0] + Array(self.token.utf8)
    }
}

extension SASLPlainCredentials: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String { "SASLPlainCredentials(\(self.authenticationId), password: <redacted>)" }
}
