public import AzureIoTCore
public import Logging

/// One AMQP connection that carries several device (or module) identities, as an IoT Edge-style gateway or a
/// protocol translator does: the connection authenticates with SASL ANONYMOUS (or `MSSBCBS`) and every identity puts
/// its own SAS token on `$cbs`, renewed in the session before it expires. Each identity has its own telemetry and
/// cloud-to-device links; after a reconnect every identity's token is put again and its unsettled messages resent.
public final class HubAMQPGateway: Sendable {
    private let session: HubAMQPSession

    /// Settings for the shared connection.
    public struct Configuration: Sendable {
        /// The IoT Hub host name (the audience of every token).
        public var hubHost: String
        /// An IoT Edge gateway to connect TLS to.
        public var gatewayHostName: String?
        /// The TLS port (IoT Hub: 5671).
        public var port: Int
        /// Whom to trust.
        public var trustRoots: TLSConfiguration.TrustRoots
        /// How the TCP connection is opened: `nil` (the default) connects directly; `AzureIoTProxy`'s
        /// `ProxyConnectionOpener` tunnels through an HTTP or SOCKS proxy.
        public var connectionOpener: (any ConnectionOpener)?
        /// Whether AMQP runs inside a WebSocket (`/$iothub/websocket`, sub-protocol `AMQPWSB10`; IoT Hub: port 443).
        public var webSockets: Bool = false
        /// The CBS token type.
        public var tokenType: HubAMQPConfiguration.CBSTokenType
        /// Our idle time-out, announced in `open`.
        public var idleTimeout: Duration
        /// How long the handshake, each put-token and each settlement may take.
        public var operationTimeout: Duration
        /// `com.microsoft:client-version` on the links.
        public var clientVersion: String
        /// `com.microsoft:api-version` on the links.
        public var apiVersion: String
        /// Link credit granted per identity for cloud-to-device messages.
        public var cloudToDeviceCredit: UInt32
        /// Whether a lost connection is re-established.
        public var reconnects: Bool
        /// The first reconnect delay (doubles with jitter).
        public var reconnectMinimumDelay: Duration
        /// The longest reconnect delay.
        public var reconnectMaximumDelay: Duration

        /// A gateway configuration; the defaults are IoT Hub's.
        public init(
            hubHost: String,
            gatewayHostName: String? = nil,
            port: Int = 5671,
            trustRoots: TLSConfiguration.TrustRoots = .system,
            tokenType: HubAMQPConfiguration.CBSTokenType = .azureDevices,
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
            self.gatewayHostName = gatewayHostName
            self.port = port
            self.trustRoots = trustRoots
            self.tokenType = tokenType
            self.idleTimeout = idleTimeout
            self.operationTimeout = operationTimeout
            self.clientVersion = clientVersion
            self.apiVersion = apiVersion
            self.cloudToDeviceCredit = cloudToDeviceCredit
            self.reconnects = reconnects
            self.reconnectMinimumDelay = reconnectMinimumDelay
            self.reconnectMaximumDelay = reconnectMaximumDelay
        }
    }

    /// A gateway; nothing is sent until ``connect(timeout:)``.
    public convenience init(configuration: Configuration, logger: Logger = TLSConnection.disabledLogger) {
        self.init(configuration: configuration, logger: logger, clock: SystemClock())
    }

    /// A gateway whose timers (heartbeats, token renewal, back-off, time-outs) and token times run on `clock`: tests
    /// pass a virtual clock and advance it instead of sleeping.
    package init(configuration: Configuration, logger: Logger = TLSConnection.disabledLogger, clock: any IoTClock) {
        self.session = HubAMQPSession(
            settings: .init(
                hubHost: configuration.hubHost,
                gatewayHostName: configuration.gatewayHostName,
                port: configuration.port,
                trustRoots: configuration.trustRoots,
                mode: .cbs(configuration.tokenType),
                idleTimeout: configuration.idleTimeout,
                operationTimeout: configuration.operationTimeout,
                clientVersion: configuration.clientVersion,
                apiVersion: configuration.apiVersion,
                cloudToDeviceCredit: configuration.cloudToDeviceCredit,
                reconnects: configuration.reconnects,
                retryPolicy: RetryPolicy(
                    initialDelay: configuration.reconnectMinimumDelay,
                    maximumDelay: configuration.reconnectMaximumDelay
                ),
                containerName: "gateway",
                clock: clock,
                connectionOpener: configuration.connectionOpener,
                webSockets: configuration.webSockets,
                isolatesIdentities: true
            ),
            identities: [],
            logger: logger
        )
    }

    /// TLS, SASL ANONYMOUS/MSSBCBS, open and begin, then the identities added so far, within `timeout` (default: the
    /// connect time-out, 30 s; then ``HubAMQPError/Code/timedOut``).
    public func connect(timeout: Duration? = nil) async throws {
        try await HubAMQPError.mapping { try await self.session.connect(timeout: timeout) }
    }

    /// Adds a device or module: puts its token on `$cbs` and attaches its links (now if connected, else on
    /// ``connect(timeout:)``). Throws ``HubAMQPError/Code/authenticationFailed`` when the hub refuses the token.
    public func addDevice(deviceId: String, moduleId: String? = nil, tokenSource: any SASTokenSource) async throws
        -> Device
    {
        let (stream, continuation) = AsyncStream.makeStream(of: CloudToDeviceDelivery.self, bufferingPolicy: .unbounded)
        let (desired, desiredContinuation) = AsyncStream.makeStream(
            of: DesiredPropertyPatch.self,
            bufferingPolicy: .bufferingOldest(Self.inboundBufferSize)
        )
        let (methods, methodsContinuation) = AsyncStream.makeStream(
            of: MethodRequest.self,
            bufferingPolicy: .bufferingOldest(Self.inboundBufferSize)
        )
        let (events, eventsContinuation) = AsyncStream.makeStream(
            of: ConnectionEvent.self,
            bufferingPolicy: .bufferingNewest(Self.inboundBufferSize)
        )
        let slot = try await HubAMQPError.mapping {
            try await self.session.addIdentity(
                .init(
                    deviceId: deviceId,
                    moduleId: moduleId,
                    tokenSource: tokenSource,
                    cloudToDevice: continuation,
                    desired: desiredContinuation,
                    methods: methodsContinuation,
                    events: eventsContinuation
                )
            )
        }
        return Device(
            deviceId: deviceId,
            moduleId: moduleId,
            cloudToDeviceMessages: stream,
            desiredPropertyPatches: desired,
            methodRequests: methods,
            connectionEvents: events,
            session: self.session,
            slot: slot
        )
    }

    /// Closes the connection for every identity.
    public func close() async { await self.session.close() }

    /// Desired-property patches and method calls that wait for the application, per device and stream.
    static let inboundBufferSize = 64

    /// One identity on the gateway's connection.
    public struct Device: Sendable {
        /// The device id.
        public let deviceId: String
        /// The module id, for a module identity.
        public let moduleId: String?
        /// Cloud-to-device messages for this identity (unbounded: consume them).
        public let cloudToDeviceMessages: AsyncStream<CloudToDeviceDelivery>
        /// This identity's desired-property patches, once ``subscribe(to:)`` asked for them.
        public let desiredPropertyPatches: AsyncStream<DesiredPropertyPatch>
        /// This identity's direct-method calls, once ``subscribe(to:)`` asked for them.
        public let methodRequests: AsyncStream<MethodRequest>
        /// This identity's connection events: `connected` when its links are attached, `disconnected` when the
        /// connection goes or the hub detaches this identity alone (another connection took it over, or its token was
        /// refused); the gateway's other identities stay on the connection.
        public let connectionEvents: AsyncStream<ConnectionEvent>
        let session: HubAMQPSession
        let slot: Int

        /// Sends telemetry as this identity; returns when the hub settles it as `accepted`.
        public func send(_ message: AMQPMessage) async throws {
            try await HubAMQPError.mapping { try await self.session.send(message, slot: self.slot) }
        }

        /// This identity's twin, as ``HubAMQPClient/twin(timeout:)`` reads it.
        public func twin(timeout: Duration? = nil) async throws -> Twin {
            try await HubAMQPError.mapping { try await self.session.twin(slot: self.slot, timeout: timeout) }
        }

        /// Patches this identity's reported properties; returns the new reported version.
        @discardableResult
        public func updateReportedProperties(_ json: [UInt8], timeout: Duration? = nil) async throws -> Int? {
            try await HubAMQPError.mapping {
                try await self.session.updateReportedProperties(json, slot: self.slot, timeout: timeout)
            }
        }

        /// Asks the hub for this identity's desired-property patches or method calls, now and on every reconnect.
        public func subscribe(to kinds: Set<HubAMQPClient.Inbound>) async throws {
            var features: Set<HubAMQPSession.Feature> = []
            if kinds.contains(.desiredPropertyPatches) { features.insert(.desiredProperties) }
            if kinds.contains(.methodRequests) { features.insert(.methods) }
            try await HubAMQPError.mapping { try await self.session.enable(features, slot: self.slot) }
        }
    }
}
