/// An IoT Hub device or module connection string:
/// `HostName=…;DeviceId=…[;ModuleId=…];(SharedAccessKey=…|SharedAccessSignature=…|x509=true)[;GatewayHostName=…]`.
///
/// `GatewayHostName` (IoT Edge) changes only where TLS connects (``connectHost``); the SAS resource, the MQTT user
/// name and the AMQP identity keep ``hostName``. ``description`` redacts keys and tokens; ``secretValue`` gives the
/// full string back.
public struct ConnectionString: Sendable {
    /// The IoT Hub host name, e.g. `myhub.azure-devices.net`.
    public var hostName: String
    /// The device id.
    public var deviceId: String?
    /// The module id, for module identities.
    public var moduleId: String?
    /// The shared access key (device, module or policy key).
    public var sharedAccessKey: SymmetricKey?
    /// The shared access policy name, for policy (service) connection strings.
    public var sharedAccessKeyName: String?
    /// A ready-made SAS token, used as it is until it expires.
    public var sharedAccessSignature: SASToken?
    /// The IoT Edge gateway to connect through, if any.
    public var gatewayHostName: String?
    /// `x509=true`: the device authenticates with a client certificate supplied separately.
    public var usesX509: Bool

    /// Every key this parser knows, in the order ``secretValue`` writes them.
    public static let knownKeys = [
        "HostName", "DeviceId", "ModuleId", "SharedAccessKeyName", "SharedAccessKey", "SharedAccessSignature",
        "x509", "GatewayHostName",
    ]

    /// Parses a connection string. Throws ``AzureIoTError`` with code
    /// ``AzureIoTError/Code/missingConnectionStringField``, ``AzureIoTError/Code/duplicateConnectionStringField``,
    /// ``AzureIoTError/Code/unknownConnectionStringField``, ``AzureIoTError/Code/malformedConnectionString``,
    /// ``AzureIoTError/Code/invalidBase64`` or ``AzureIoTError/Code/malformedSASToken``.
    public init(parsing text: String) throws(AzureIoTError) {
        var fields: [String: Substring] = [:]
        for segment in text.split(separator: ";", omittingEmptySubsequences: true) {
            let trimmed = segment.drop(while: { $0 == " " })
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw AzureIoTError(
                    .malformedConnectionString,
                    "a connection string segment has no '=' (expected Key=Value)"
                )
            }
            let key = String(trimmed[..<equals])
            let value = trimmed[trimmed.index(after: equals)...]
            guard Self.knownKeys.contains(key) else {
                let shown = key.count <= 32 && key.allSatisfy({ $0.isLetter || $0.isNumber }) ? key : "<unprintable>"
                throw AzureIoTError(
                    .unknownConnectionStringField,
                    "unknown connection string key '\(shown)' (known: \(Self.knownKeys.joined(separator: ", ")))"
                )
            }
            guard fields[key] == nil else {
                throw AzureIoTError(.duplicateConnectionStringField, "the connection string repeats the key '\(key)'")
            }
            guard !value.isEmpty else {
                throw AzureIoTError(.malformedConnectionString, "the connection string key '\(key)' has an empty value")
            }
            fields[key] = value
        }
        guard let hostName = fields["HostName"] else {
            throw AzureIoTError(.missingConnectionStringField, "the connection string has no HostName")
        }
        self.hostName = String(hostName)
        self.deviceId = fields["DeviceId"].map(String.init)
        self.moduleId = fields["ModuleId"].map(String.init)
        self.sharedAccessKeyName = fields["SharedAccessKeyName"].map(String.init)
        self.gatewayHostName = fields["GatewayHostName"].map(String.init)
        self.sharedAccessKey = try fields["SharedAccessKey"].map { value throws(AzureIoTError) in
            try SymmetricKey(base64: String(value))
        }
        self.sharedAccessSignature = try fields["SharedAccessSignature"].map { value throws(AzureIoTError) in
            try SASToken(parsing: String(value))
        }
        switch fields["x509"]?.lowercased() {
        case nil: self.usesX509 = false
        case "true": self.usesX509 = true
        case "false": self.usesX509 = false
        default: throw AzureIoTError(.malformedConnectionString, "x509 must be 'true' or 'false'")
        }
        try self.checkConsistency()
    }

    /// A connection string for a device or module with a shared access key.
    public init(
        hostName: String,
        deviceId: String,
        moduleId: String? = nil,
        sharedAccessKey: SymmetricKey,
        gatewayHostName: String? = nil
    ) {
        self.hostName = hostName
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.sharedAccessKey = sharedAccessKey
        self.sharedAccessKeyName = nil
        self.sharedAccessSignature = nil
        self.gatewayHostName = gatewayHostName
        self.usesX509 = false
    }

    private func checkConsistency() throws(AzureIoTError) {
        let methods = [self.sharedAccessKey != nil, self.sharedAccessSignature != nil, self.usesX509].filter { $0 }
            .count
        guard methods > 0 else {
            throw AzureIoTError(
                .missingConnectionStringField,
                "the connection string needs one of SharedAccessKey, SharedAccessSignature or x509=true"
            )
        }
        guard methods == 1 else {
            throw AzureIoTError(
                .malformedConnectionString,
                "the connection string must have only one of SharedAccessKey, SharedAccessSignature or x509=true"
            )
        }
        if self.deviceId == nil && self.sharedAccessKeyName == nil {
            throw AzureIoTError(.missingConnectionStringField, "the connection string has no DeviceId")
        }
        if self.moduleId != nil && self.deviceId == nil {
            throw AzureIoTError(.missingConnectionStringField, "a ModuleId needs a DeviceId")
        }
        if self.sharedAccessKeyName != nil && self.sharedAccessKey == nil {
            throw AzureIoTError(.missingConnectionStringField, "SharedAccessKeyName needs a SharedAccessKey")
        }
    }

    /// The host TLS connects to: the gateway when there is one, else the hub.
    public var connectHost: String { self.gatewayHostName ?? self.hostName }

    /// The hub's short name, the first label of ``hostName`` (used by AMQP's `{device}@sas.{hub}`).
    public var hubName: String {
        self.hostName.split(separator: ".", maxSplits: 1).first.map(String.init) ?? self.hostName
    }

    /// The resource a device or module SAS token signs (always the hub, never the gateway).
    public var sasResource: SASResource? {
        guard let deviceId else { return nil }
        if let moduleId { return .module(hubHost: self.hostName, deviceId: deviceId, moduleId: moduleId) }
        return .device(hubHost: self.hostName, deviceId: deviceId)
    }

    /// The token source this connection string describes: minted from the key, or the fixed token; `nil` for
    /// `x509=true`, whose identity the caller loads separately.
    public func tokenSource(timeToLive: UInt64 = SymmetricKeyCredential.defaultTimeToLive) -> (any SASTokenSource)? {
        if let sharedAccessKey {
            return SymmetricKeyCredential(
                key: sharedAccessKey,
                keyName: self.sharedAccessKeyName,
                timeToLive: timeToLive
            )
        }
        if let sharedAccessSignature { return FixedTokenCredential(token: sharedAccessSignature) }
        return nil
    }

    /// The full connection string, secrets included, keys in ``knownKeys`` order.
    public var secretValue: String { self.render(redacted: false) }

    private func render(redacted: Bool) -> String {
        var parts = ["HostName=\(self.hostName)"]
        if let deviceId { parts.append("DeviceId=\(deviceId)") }
        if let moduleId { parts.append("ModuleId=\(moduleId)") }
        if let sharedAccessKeyName { parts.append("SharedAccessKeyName=\(sharedAccessKeyName)") }
        if let sharedAccessKey { parts.append("SharedAccessKey=\(redacted ? "<redacted>" : sharedAccessKey.base64)") }
        if let sharedAccessSignature {
            parts.append(
                "SharedAccessSignature=\(redacted ? sharedAccessSignature.description : sharedAccessSignature.secretValue)"
            )
        }
        if self.usesX509 { parts.append("x509=true") }
        if let gatewayHostName { parts.append("GatewayHostName=\(gatewayHostName)") }
        return parts.joined(separator: ";")
    }
}

extension ConnectionString: CustomStringConvertible, CustomDebugStringConvertible {
    /// The connection string with the key or token signature replaced by `<redacted>`.
    public var description: String { self.render(redacted: true) }
    /// The same as `description` (secrets redacted).
    public var debugDescription: String { self.description }
}
