public import AzureIoTCore

/// The MQTT CONNECT identity IoT Hub expects from a device or module: client id and user name.
public struct HubMQTTIdentity: Hashable, Sendable {
    /// The IoT Hub API version sent by default.
    public static let defaultAPIVersion = "2021-04-12"
    /// The product string this SDK sends as `DeviceClientType`.
    public static let defaultClientType = SDKVersion.clientName

    /// The IoT Hub host name (`{hub}.azure-devices.net`), never the Edge gateway's.
    public var hubHost: String
    /// The device id.
    public var deviceId: String
    /// The module id, for module identities.
    public var moduleId: String?
    /// The `api-version` query value.
    public var apiVersion: String
    /// The `DeviceClientType` query value.
    public var clientType: String
    /// The IoT Plug and Play model id (`dtmi:…`), if any.
    public var modelId: String?

    /// An identity for a device (or a module when `moduleId` is set).
    public init(
        hubHost: String,
        deviceId: String,
        moduleId: String? = nil,
        apiVersion: String = HubMQTTIdentity.defaultAPIVersion,
        clientType: String = HubMQTTIdentity.defaultClientType,
        modelId: String? = nil
    ) {
        self.hubHost = hubHost
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.apiVersion = apiVersion
        self.clientType = clientType
        self.modelId = modelId
    }

    /// `{deviceId}` or `{deviceId}/{moduleId}`.
    public var clientId: String {
        self.moduleId.map { "\(self.deviceId)/\($0)" } ?? self.deviceId
    }

    /// `{hubHost}/{clientId}/?api-version=…&DeviceClientType=…[&model-id=…]`: host and ids as they are, query
    /// values percent-encoded.
    public var username: String {
        var text = "\(self.hubHost)/\(self.clientId)/?api-version=\(PercentEncoding.encode(self.apiVersion))"
        text += "&DeviceClientType=\(PercentEncoding.encode(self.clientType))"
        if let modelId { text += "&model-id=\(PercentEncoding.encode(modelId))" }
        return text
    }

    /// The resource the password (a SAS token) must be signed for.
    public var sasResource: SASResource {
        if let moduleId { return .module(hubHost: self.hubHost, deviceId: self.deviceId, moduleId: moduleId) }
        return .device(hubHost: self.hubHost, deviceId: self.deviceId)
    }
}
