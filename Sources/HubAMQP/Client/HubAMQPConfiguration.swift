public import AzureIoTCore

/// Everything an IoT Hub AMQP connection needs (SASL PLAIN with a SAS token).
public struct HubAMQPConfiguration: Sendable {
    /// The IoT Hub host name; the SASL identity uses its first label.
    public var hubHost: String
    /// The device id.
    public var deviceId: String
    /// The module id, for a module identity.
    public var moduleId: String?
    /// Mints the SAS token sent as the SASL PLAIN password.
    public var tokenSource: any SASTokenSource
    /// An IoT Edge gateway to connect TLS to.
    public var gatewayHostName: String?
    /// The TLS port (IoT Hub: 5671).
    public var port: Int
    /// Whom to trust (an IoT Edge root CA, or the system store).
    public var trustRoots: TLSConfiguration.TrustRoots
    /// Our idle time-out, announced in `open`.
    public var idleTimeout: Duration
    /// How long the handshake and each settlement may take.
    public var operationTimeout: Duration
    /// `com.microsoft:client-version` on the links.
    public var clientVersion: String
    /// `com.microsoft:api-version` on the links.
    public var apiVersion: String
    /// Link credit granted for cloud-to-device messages.
    public var cloudToDeviceCredit: UInt32

    /// A configuration for a device or module identity; the defaults are IoT Hub's.
    public init(
        hubHost: String,
        deviceId: String,
        moduleId: String? = nil,
        tokenSource: any SASTokenSource,
        gatewayHostName: String? = nil,
        port: Int = 5671,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        idleTimeout: Duration = .seconds(240),
        operationTimeout: Duration = .seconds(30),
        clientVersion: String = "azure-iot-swift/0.1.0",
        apiVersion: String = "2021-04-12",
        cloudToDeviceCredit: UInt32 = 100
    ) {
        self.hubHost = hubHost
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.tokenSource = tokenSource
        self.gatewayHostName = gatewayHostName
        self.port = port
        self.trustRoots = trustRoots
        self.idleTimeout = idleTimeout
        self.operationTimeout = operationTimeout
        self.clientVersion = clientVersion
        self.apiVersion = apiVersion
        self.cloudToDeviceCredit = cloudToDeviceCredit
    }

    /// `/devices/{id}` or `/devices/{id}/modules/{m}`.
    var identityPath: String { self.moduleId.map { "/devices/\(self.deviceId)/modules/\($0)" } ?? "/devices/\(self.deviceId)" }
    var telemetryAddress: String { self.identityPath + "/messages/events" }
    var cloudToDeviceAddress: String { self.identityPath + "/messages/devicebound" }
    var sasResource: SASResource {
        self.moduleId.map { .module(hubHost: self.hubHost, deviceId: self.deviceId, moduleId: $0) }
            ?? .device(hubHost: self.hubHost, deviceId: self.deviceId)
    }
}
