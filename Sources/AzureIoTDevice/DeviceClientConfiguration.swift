public import AzureIoTCore

/// How a ``DeviceClient`` connects: the identity and its credential, the transport, where to connect and whom to
/// trust, and the time-outs and retry policy. Switching ``transport`` between ``Transport/mqtt``,
/// ``Transport/amqp`` and their WebSocket forms changes nothing else.
public struct DeviceClientConfiguration: Sendable {
    /// The protocol to IoT Hub.
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        /// MQTT 3.1.1 over TLS, port 8883.
        case mqtt
        /// AMQP 1.0 over TLS, port 5671 (SAS through CBS, so the token is renewed in the session).
        case amqp
        /// MQTT 3.1.1 in a WebSocket over TLS, port 443 (`/$iothub/websocket`): for networks that let only HTTPS out.
        case mqttWebSockets = "mqtt-ws"
        /// AMQP 1.0 in a WebSocket over TLS, port 443 (`/$iothub/websocket`): for networks that let only HTTPS out.
        case amqpWebSockets = "amqp-ws"

        /// IoT Hub's port for the transport.
        public var defaultPort: Int {
            switch self {
            case .mqtt: 8883
            case .amqp: 5671
            case .mqttWebSockets, .amqpWebSockets: 443
            }
        }

        /// Whether the protocol runs inside a WebSocket.
        public var usesWebSockets: Bool { self == .mqttWebSockets || self == .amqpWebSockets }

        /// Whether the protocol is MQTT (directly or in a WebSocket).
        public var isMQTT: Bool { self == .mqtt || self == .mqttWebSockets }
    }

    /// How the device authenticates.
    public enum Authentication: Sendable {
        /// SAS tokens from a key or a fixed token.
        case sas(any SASTokenSource)
        /// A client certificate registered with the hub (thumbprint or CA).
        case x509(X509Identity)
    }

    /// The protocol.
    public var transport: Transport
    /// The IoT Hub host name, e.g. `myhub.azure-devices.net` (the tokens' audience).
    public var hubHost: String
    /// The device id.
    public var deviceId: String
    /// The module id, for a module identity.
    public var moduleId: String?
    /// The credential.
    public var authentication: Authentication
    /// An IoT Edge gateway to connect to instead of the hub (`GatewayHostName`).
    public var gatewayHostName: String?
    /// The TLS port; `nil` uses the transport's (``Transport/defaultPort``).
    public var port: Int?
    /// Whom to trust: the system store, or e.g. an IoT Edge root CA.
    public var trustRoots: TLSConfiguration.TrustRoots
    /// How the TCP connection is opened: `nil` connects directly; `AzureIoTProxy`'s `ProxyConnectionOpener`
    /// tunnels through an HTTP or SOCKS proxy.
    public var connectionOpener: (any ConnectionOpener)?
    /// The default time-out of a send, twin request or method answer.
    public var operationTimeout: Duration
    /// How long ``DeviceClient/connect(timeout:)`` tries by default.
    public var connectTimeout: Duration
    /// The keep-alive (MQTT) or idle time-out (AMQP) the client announces; IoT Hub allows at most 1177 s over MQTT.
    public var keepAlive: Duration
    /// When and how often to reconnect, and when to give up.
    public var retryPolicy: RetryPolicy
    /// Desired-property patches, method calls and (MQTT) cloud-to-device messages that wait for the application,
    /// per stream.
    public var inboundBufferSize: Int
    /// The IoT Plug and Play model id (`dtmi:com:example:Thermostat;1`) the device implements, announced when it
    /// connects, as Azure's SDKs do: the MQTT user name's `model-id`, or `com.microsoft:model-id` on the AMQP
    /// telemetry link.
    public var modelId: String?
    /// Telemetry that may wait (offline, or unacknowledged) before `send` throws `queueFull`.
    public var maximumQueuedMessages: Int

    /// The hub, gateway, port, trust roots and connection opener: the building block `HubMQTTConfiguration` and
    /// `HubAMQPConfiguration` share with this configuration (as their `endpoint`).
    public var endpoint: HubEndpoint {
        get {
            HubEndpoint(
                hubHost: self.hubHost,
                gatewayHostName: self.gatewayHostName,
                port: self.port,
                trustRoots: self.trustRoots,
                connectionOpener: self.connectionOpener,
                webSockets: self.transport.usesWebSockets
            )
        }
        set {
            self.hubHost = newValue.hubHost
            self.gatewayHostName = newValue.gatewayHostName
            self.port = newValue.port
            self.trustRoots = newValue.trustRoots
            self.connectionOpener = newValue.connectionOpener
            // The protocol stays; the endpoint decides whether it runs in a WebSocket.
            switch (self.transport.isMQTT, newValue.webSockets) {
            case (true, false): self.transport = .mqtt
            case (true, true): self.transport = .mqttWebSockets
            case (false, false): self.transport = .amqp
            case (false, true): self.transport = .amqpWebSockets
            }
        }
    }
    /// The operation and connect time-outs and the keep-alive: the other shared building block (`timeouts`).
    public var timeouts: HubTimeouts {
        get { HubTimeouts(operation: self.operationTimeout, connect: self.connectTimeout, keepAlive: self.keepAlive) }
        set {
            self.operationTimeout = newValue.operation
            self.connectTimeout = newValue.connect
            self.keepAlive = newValue.keepAlive
        }
    }

    /// A configuration for an identity and its credential.
    public init(
        transport: Transport = .mqtt,
        hubHost: String,
        deviceId: String,
        moduleId: String? = nil,
        authentication: Authentication,
        gatewayHostName: String? = nil,
        port: Int? = nil,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        operationTimeout: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(30),
        keepAlive: Duration = .seconds(240),
        retryPolicy: RetryPolicy = .default,
        inboundBufferSize: Int = 64,
        maximumQueuedMessages: Int = 1000
    ) {
        self.transport = transport
        self.hubHost = hubHost
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.authentication = authentication
        self.gatewayHostName = gatewayHostName
        self.port = port
        self.trustRoots = trustRoots
        self.operationTimeout = operationTimeout
        self.connectTimeout = connectTimeout
        self.keepAlive = keepAlive
        self.retryPolicy = retryPolicy
        self.inboundBufferSize = inboundBufferSize
        self.maximumQueuedMessages = maximumQueuedMessages
    }

    /// A configuration from a device or module connection string (`HostName`, `DeviceId`, `ModuleId`,
    /// `SharedAccessKey` or `SharedAccessSignature`, `GatewayHostName`); `x509=true` needs `x509Identity`.
    /// Throws ``DeviceClientError/Code/invalidArgument`` without a device id or a usable credential.
    public init(
        connectionString: ConnectionString,
        transport: Transport = .mqtt,
        x509Identity: X509Identity? = nil,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        port: Int? = nil
    ) throws(DeviceClientError) {
        guard let deviceId = connectionString.deviceId else {
            throw DeviceClientError(.invalidArgument, "the connection string has no DeviceId")
        }
        let authentication = try Authentication(
            tokenSource: connectionString.tokenSource(),
            x509: x509Identity,
            missing: "x509=true needs the device's X.509 identity"
        )
        self.init(
            transport: transport,
            hubHost: connectionString.hostName,
            deviceId: deviceId,
            moduleId: connectionString.moduleId,
            authentication: authentication,
            gatewayHostName: connectionString.gatewayHostName,
            port: port,
            trustRoots: trustRoots
        )
    }
}

extension DeviceClientConfiguration.Authentication {
    /// SAS from `tokenSource` when there is one, else the certificate; neither throws
    /// ``DeviceClientError/Code/invalidArgument`` with `missing`.
    init(tokenSource: (any SASTokenSource)?, x509: X509Identity?, missing: String) throws(DeviceClientError) {
        if let tokenSource {
            self = .sas(tokenSource)
        } else if let x509 {
            self = .x509(x509)
        } else {
            throw DeviceClientError(.invalidArgument, missing)
        }
    }
}
