/// Where a hub client connects and whom it trusts: the building block every client configuration shares
/// (`DeviceClientConfiguration`, `HubMQTTConfiguration`, `HubAMQPConfiguration` each have it as `endpoint`).
public struct HubEndpoint: Sendable {
    /// The IoT Hub host name, e.g. `myhub.azure-devices.net` (the tokens' audience).
    public var hubHost: String
    /// An IoT Edge gateway (or a local emulator) to connect to instead of the hub (`GatewayHostName`).
    public var gatewayHostName: String?
    /// The TLS port; `nil` is the protocol's (8883 for MQTT, 5671 for AMQP, 443 over WebSockets).
    public var port: Int?
    /// Whom to trust: the system store, or e.g. an IoT Edge root CA.
    public var trustRoots: TLSConfiguration.TrustRoots
    /// How the TCP connection is opened: `nil` connects directly; `AzureIoTProxy`'s `ProxyConnectionOpener` tunnels
    /// through an HTTP or SOCKS proxy.
    public var connectionOpener: (any ConnectionOpener)?
    /// Whether MQTT or AMQP runs inside a WebSocket (`wss://host:443/$iothub/websocket`), for networks that let only
    /// HTTPS out.
    public var webSockets: Bool

    /// An endpoint.
    public init(
        hubHost: String,
        gatewayHostName: String? = nil,
        port: Int? = nil,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        connectionOpener: (any ConnectionOpener)? = nil,
        webSockets: Bool = false
    ) {
        self.hubHost = hubHost
        self.gatewayHostName = gatewayHostName
        self.port = port
        self.trustRoots = trustRoots
        self.connectionOpener = connectionOpener
        self.webSockets = webSockets
    }
}

/// How long a hub client waits: the other building block every client configuration shares (as `timeouts`).
public struct HubTimeouts: Sendable, Hashable {
    /// A send's settlement, a twin request, a method answer, a subscription.
    public var operation: Duration
    /// `connect`, attempts under the retry policy included.
    public var connect: Duration
    /// The MQTT keep-alive, or the AMQP idle time-out announced in `open` (IoT Hub allows at most 1177 s over MQTT).
    public var keepAlive: Duration

    /// Time-outs; the defaults are the device client's.
    public init(
        operation: Duration = .seconds(60),
        connect: Duration = .seconds(30),
        keepAlive: Duration = .seconds(240)
    ) {
        self.operation = operation
        self.connect = connect
        self.keepAlive = keepAlive
    }
}
