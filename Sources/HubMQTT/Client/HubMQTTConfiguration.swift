public import AzureIoTCore

/// Everything an IoT Hub MQTT connection needs.
public struct HubMQTTConfiguration: Sendable {
    /// How the device authenticates.
    public enum Authentication: Sendable {
        /// A SAS token as the MQTT password, minted (and renewed) by the source.
        case sas(any SASTokenSource)
        /// A client certificate; the password is empty.
        case x509(X509Identity)
    }

    /// Client id and user name.
    public var identity: HubMQTTIdentity
    /// The credential.
    public var authentication: Authentication
    /// An IoT Edge gateway to connect TLS to; the user name and token keep the hub name.
    public var gatewayHostName: String?
    /// The TCP port (8883).
    public var port: Int
    /// Trust roots (an Edge root CA, a private CA), default the system store.
    public var trustRoots: TLSConfiguration.TrustRoots
    /// How the TCP connection is opened: `nil` (the default) connects directly; `AzureIoTProxy`'s
    /// `ProxyConnectionOpener` tunnels through an HTTP or SOCKS proxy.
    public var connectionOpener: (any ConnectionOpener)?
    /// Whether MQTT runs inside a WebSocket (`wss://host:port/$iothub/websocket`, sub-protocol `mqtt`), for networks
    /// that let only HTTPS out; IoT Hub serves it on port 443, so set ``port`` to that too (``endpoint`` does it for
    /// a `nil` port).
    public var webSockets: Bool = false
    /// Keep-alive (default 240 s, at most 1177 s for IoT Hub).
    public var keepAlive: Duration
    /// QoS 1 PUBLISHes that may await PUBACK at once.
    public var inflightWindow: Int
    /// How many C2D messages, desired patches and method calls each stream buffers for the application (default 64):
    /// see each stream for what happens when it is full.
    public var inboundBufferSize: Int = 64
    /// How many QoS 1 messages may wait to be sent (while offline or with the window full) beyond the in-flight
    /// window (default 1,000). One more makes ``HubMQTTClient/send(_:qos:timeout:)`` throw
    /// ``HubMQTTError/Code/queueFull`` at once, so a gateway that is offline for hours holds a known amount of memory.
    public var maximumQueuedMessages: Int = 1000
    /// Sees every connection event as it happens, whether or not the application reads `connectionEvents` (the
    /// device client's metrics).
    package var eventObserver: (@Sendable (ConnectionEvent) -> Void)?
    /// MQTT clean session (IoT Hub SDKs keep sessions: false).
    public var cleanSession: Bool
    /// When to reconnect after the connection is lost, and when to stop (see `RetryPolicy`): by default 1 s doubling
    /// to 30 s with jitter, a back-off that only starts over after a connection stayed up a minute, and three refused
    /// CONNECTs in a row end the retries.
    public var retryPolicy: RetryPolicy
    /// First reconnect delay (the retry policy's `initialDelay`); doubles with jitter up to ``reconnectMaximumDelay``.
    public var reconnectMinimumDelay: Duration {
        get { self.retryPolicy.initialDelay }
        set { self.retryPolicy.initialDelay = newValue }
    }
    /// Longest reconnect delay (the retry policy's `maximumDelay`).
    public var reconnectMaximumDelay: Duration {
        get { self.retryPolicy.maximumDelay }
        set { self.retryPolicy.maximumDelay = newValue }
    }
    /// The hub, gateway, port, trust roots and connection opener as the building block all client configurations
    /// share (setting a `nil` port sets 8883, or 443 over WebSockets).
    public var endpoint: HubEndpoint {
        get {
            HubEndpoint(
                hubHost: self.identity.hubHost,
                gatewayHostName: self.gatewayHostName,
                port: self.port,
                trustRoots: self.trustRoots,
                connectionOpener: self.connectionOpener,
                webSockets: self.webSockets
            )
        }
        set {
            self.identity.hubHost = newValue.hubHost
            self.gatewayHostName = newValue.gatewayHostName
            self.port = newValue.port ?? (newValue.webSockets ? WebSocketUpgrade.defaultPort : 8883)
            self.trustRoots = newValue.trustRoots
            self.connectionOpener = newValue.connectionOpener
            self.webSockets = newValue.webSockets
        }
    }
    /// The operation and connect time-outs and the keep-alive as the building block all client configurations share.
    public var timeouts: HubTimeouts {
        get { HubTimeouts(operation: self.operationTimeout, connect: self.connectTimeout, keepAlive: self.keepAlive) }
        set {
            self.operationTimeout = newValue.operation
            self.connectTimeout = newValue.connect
            self.keepAlive = newValue.keepAlive
        }
    }
    /// How long twin requests, SUBACK and CONNACK may take.
    public var operationTimeout: Duration
    /// How long TCP + TLS may take.
    public var connectTimeout: Duration

    /// A configuration for a device or module identity.
    public init(
        identity: HubMQTTIdentity,
        authentication: Authentication,
        gatewayHostName: String? = nil,
        port: Int = 8883,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        keepAlive: Duration = .seconds(240),
        inflightWindow: Int = 16,
        cleanSession: Bool = false,
        reconnectMinimumDelay: Duration = .seconds(1),
        reconnectMaximumDelay: Duration = .seconds(30),
        operationTimeout: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(30)
    ) {
        self.identity = identity
        self.authentication = authentication
        self.gatewayHostName = gatewayHostName
        self.port = port
        self.trustRoots = trustRoots
        self.keepAlive = keepAlive
        self.inflightWindow = inflightWindow
        self.cleanSession = cleanSession
        self.retryPolicy = RetryPolicy(initialDelay: reconnectMinimumDelay, maximumDelay: reconnectMaximumDelay)
        self.operationTimeout = operationTimeout
        self.connectTimeout = connectTimeout
    }

    /// A configuration from a device or module connection string (`SharedAccessKey` or `SharedAccessSignature`; for
    /// `x509=true` pass the identity).
    public init(
        connectionString: ConnectionString,
        x509Identity: X509Identity? = nil,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        port: Int = 8883
    ) throws(HubMQTTError) {
        guard let deviceId = connectionString.deviceId else {
            throw HubMQTTError(.invalidArgument, "the connection string has no DeviceId")
        }
        let authentication: Authentication
        if let source = connectionString.tokenSource() {
            authentication = .sas(source)
        } else if let x509Identity {
            authentication = .x509(x509Identity)
        } else {
            throw HubMQTTError(.invalidArgument, "x509=true needs the device's X.509 identity")
        }
        self.init(
            identity: HubMQTTIdentity(
                hubHost: connectionString.hostName,
                deviceId: deviceId,
                moduleId: connectionString.moduleId
            ),
            authentication: authentication,
            gatewayHostName: connectionString.gatewayHostName,
            port: port,
            trustRoots: trustRoots
        )
    }

    /// The host TLS connects to.
    var connectHost: String { self.gatewayHostName ?? self.identity.hubHost }
}
