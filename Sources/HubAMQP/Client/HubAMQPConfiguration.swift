public import AzureIoTCore

/// Everything an IoT Hub AMQP connection needs: who the device is, how it authenticates, where to connect, and how
/// the connection recovers.
public struct HubAMQPConfiguration: Sendable {
    /// How the device proves its identity.
    public enum Authentication: Sendable {
        /// SASL PLAIN as `{deviceId}@sas.{hubShortName}` with a SAS token as password. A token is renewed by
        /// reconnecting before it expires.
        case saslPlain(any SASTokenSource)
        /// SASL ANONYMOUS (or `MSSBCBS` when the peer offers it), then a CBS `put-token` on `$cbs` of the given token
        /// type. Tokens are renewed in the session, without reconnecting.
        case cbs(any SASTokenSource, tokenType: CBSTokenType)
        /// The TLS client certificate, with SASL EXTERNAL (ANONYMOUS when the peer does not offer EXTERNAL).
        case x509(X509Identity)
    }

    /// The `type` of a CBS `put-token` request.
    public struct CBSTokenType: RawRepresentable, Hashable, Sendable {
        /// The symbol sent.
        public let rawValue: String
        /// A token type from its symbol.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// `azure-devices.net:sastoken`, what Microsoft.Azure.Amqp-based SDKs send.
        public static let azureDevices = CBSTokenType(rawValue: "azure-devices.net:sastoken")
        /// `servicebus.windows.net:sastoken`, what the C SDK and uAMQP send.
        public static let serviceBus = CBSTokenType(rawValue: "servicebus.windows.net:sastoken")
    }

    /// The IoT Hub host name; the SASL identity uses its first label.
    public var hubHost: String
    /// The device id.
    public var deviceId: String
    /// The module id, for a module identity.
    public var moduleId: String?
    /// How the device authenticates.
    public var authentication: Authentication
    /// An IoT Edge gateway to connect TLS to.
    public var gatewayHostName: String?
    /// The TLS port (IoT Hub: 5671).
    public var port: Int
    /// Whom to trust (an IoT Edge root CA, or the system store).
    public var trustRoots: TLSConfiguration.TrustRoots
    /// How the TCP connection is opened: `nil` (the default) connects directly; `AzureIoTProxy`'s
    /// `ProxyConnectionOpener` tunnels through an HTTP or SOCKS proxy.
    public var connectionOpener: (any ConnectionOpener)?
    /// Whether AMQP runs inside a WebSocket (`wss://host:port/$iothub/websocket`, sub-protocol `AMQPWSB10`), for
    /// networks that let only HTTPS out; IoT Hub serves it on port 443, so set ``port`` to that too (``endpoint``
    /// does it for a `nil` port).
    public var webSockets: Bool = false
    /// Our idle time-out, announced in `open`: a peer silent for 1.5 times as long is taken as dead.
    public var idleTimeout: Duration
    /// How long the handshake and each settlement may take.
    public var operationTimeout: Duration
    /// How long ``HubAMQPClient/connect(timeout:)`` tries by default (attempts under the retry policy included).
    public var connectTimeout: Duration = .seconds(30)
    /// The IoT Plug and Play model id (`dtmi:…`), announced as `com.microsoft:model-id` on the telemetry link, as
    /// Azure's SDKs do.
    public var modelId: String?
    /// `com.microsoft:client-version` on the links.
    public var clientVersion: String
    /// `com.microsoft:api-version` on the links.
    public var apiVersion: String
    /// Link credit granted for cloud-to-device messages.
    public var cloudToDeviceCredit: UInt32
    /// How many messages may wait for settlement at once, queued while offline or in flight (default 1,000); one
    /// more makes ``HubAMQPClient/send(_:)`` throw ``HubAMQPError/Code/queueFull`` at once.
    public var maximumQueuedMessages: Int = 1000
    /// Desired-property patches and direct-method calls that wait for the application, per stream. A method call
    /// that finds its stream full is answered 503 at once; a desired patch is dropped (read the twin to catch up).
    public var inboundBufferSize: Int = 64
    /// Sees every connection event as it happens, whether or not the application reads `connectionEvents` (the
    /// device client's metrics).
    package var eventObserver: (@Sendable (ConnectionEvent) -> Void)?
    /// Whether a lost connection is re-established (with backoff), resending unsettled messages.
    public var reconnects: Bool
    /// When to reconnect and when to stop (`RetryPolicy`): a back-off that keeps growing while the connection
    /// flaps, and refused credentials ending the retries (sends then fail with ``HubAMQPError/Code/retriesExhausted``).
    public var retryPolicy: RetryPolicy
    /// The first reconnect delay (the retry policy's `initialDelay`); it doubles with jitter up to
    /// ``reconnectMaximumDelay``.
    public var reconnectMinimumDelay: Duration {
        get { self.retryPolicy.initialDelay }
        set { self.retryPolicy.initialDelay = newValue }
    }
    /// The longest reconnect delay (the retry policy's `maximumDelay`).
    public var reconnectMaximumDelay: Duration {
        get { self.retryPolicy.maximumDelay }
        set { self.retryPolicy.maximumDelay = newValue }
    }

    /// The hub, gateway, port, trust roots and connection opener as the building block all client configurations
    /// share (setting a `nil` port sets 5671, or 443 over WebSockets).
    public var endpoint: HubEndpoint {
        get {
            HubEndpoint(
                hubHost: self.hubHost,
                gatewayHostName: self.gatewayHostName,
                port: self.port,
                trustRoots: self.trustRoots,
                connectionOpener: self.connectionOpener,
                webSockets: self.webSockets
            )
        }
        set {
            self.hubHost = newValue.hubHost
            self.gatewayHostName = newValue.gatewayHostName
            self.port = newValue.port ?? (newValue.webSockets ? WebSocketUpgrade.defaultPort : 5671)
            self.trustRoots = newValue.trustRoots
            self.connectionOpener = newValue.connectionOpener
            self.webSockets = newValue.webSockets
        }
    }
    /// The operation and connect time-outs and the idle time-out (as `keepAlive`) as the building block all client
    /// configurations share.
    public var timeouts: HubTimeouts {
        get { HubTimeouts(operation: self.operationTimeout, connect: self.connectTimeout, keepAlive: self.idleTimeout) }
        set {
            self.operationTimeout = newValue.operation
            self.connectTimeout = newValue.connect
            self.idleTimeout = newValue.keepAlive
        }
    }

    /// A configuration for a device or module identity; the defaults are IoT Hub's.
    public init(
        hubHost: String,
        deviceId: String,
        moduleId: String? = nil,
        authentication: Authentication,
        gatewayHostName: String? = nil,
        port: Int = 5671,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        idleTimeout: Duration = .seconds(240),
        operationTimeout: Duration = .seconds(30),
        clientVersion: String = SDKVersion.clientName,
        apiVersion: String = "2021-04-12",
        cloudToDeviceCredit: UInt32 = 100,
        reconnects: Bool = true,
        reconnectMinimumDelay: Duration = .seconds(1),
        reconnectMaximumDelay: Duration = .seconds(30)
    ) {
        self.hubHost = hubHost
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.authentication = authentication
        self.gatewayHostName = gatewayHostName
        self.port = port
        self.trustRoots = trustRoots
        self.idleTimeout = idleTimeout
        self.operationTimeout = operationTimeout
        self.clientVersion = clientVersion
        self.apiVersion = apiVersion
        self.cloudToDeviceCredit = cloudToDeviceCredit
        self.reconnects = reconnects
        self.retryPolicy = RetryPolicy(initialDelay: reconnectMinimumDelay, maximumDelay: reconnectMaximumDelay)
    }

    /// A configuration that authenticates with SASL PLAIN and tokens from `tokenSource`.
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
        clientVersion: String = SDKVersion.clientName,
        apiVersion: String = "2021-04-12",
        cloudToDeviceCredit: UInt32 = 100
    ) {
        self.init(
            hubHost: hubHost,
            deviceId: deviceId,
            moduleId: moduleId,
            authentication: .saslPlain(tokenSource),
            gatewayHostName: gatewayHostName,
            port: port,
            trustRoots: trustRoots,
            idleTimeout: idleTimeout,
            operationTimeout: operationTimeout,
            clientVersion: clientVersion,
            apiVersion: apiVersion,
            cloudToDeviceCredit: cloudToDeviceCredit
        )
    }

    /// Checks what the types cannot: a hub host and device id (and module id, when given) that are not empty, a port
    /// in 1...65535, positive operation and connect time-outs, credit, queue and buffer sizes, and an idle time-out that is not
    /// negative (zero: none). Throws ``HubAMQPError/Code/invalidArgument`` naming the field.
    public func validate() throws(HubAMQPError) {
        func invalid(_ message: String) -> HubAMQPError { HubAMQPError(.invalidArgument, message) }
        guard !self.hubHost.isEmpty, !self.deviceId.isEmpty, self.moduleId.map({ !$0.isEmpty }) ?? true else {
            throw invalid("the hub host, the device id and a module id must not be empty")
        }
        guard (1...65535).contains(self.port) else {
            throw invalid("the port is \(self.port); it must be in 1...65535")
        }
        guard self.operationTimeout > .zero, self.connectTimeout > .zero else {
            throw invalid("the operation and connect time-outs must be positive")
        }
        guard self.idleTimeout >= .zero else { throw invalid("the idle time-out must not be negative") }
        guard self.cloudToDeviceCredit >= 1, self.maximumQueuedMessages >= 1, self.inboundBufferSize >= 1 else {
            throw invalid("the cloud-to-device credit, the queue limit and the inbound buffer size must be at least 1")
        }
    }

    /// `/devices/{id}` or `/devices/{id}/modules/{m}`.
    var identityPath: String {
        self.moduleId.map { "/devices/\(self.deviceId)/modules/\($0)" } ?? "/devices/\(self.deviceId)"
    }
    var telemetryAddress: String { self.identityPath + "/messages/events" }
    var cloudToDeviceAddress: String { self.identityPath + "/messages/devicebound" }
    var sasResource: SASResource {
        self.moduleId.map { .module(hubHost: self.hubHost, deviceId: self.deviceId, moduleId: $0) }
            ?? .device(hubHost: self.hubHost, deviceId: self.deviceId)
    }
}
