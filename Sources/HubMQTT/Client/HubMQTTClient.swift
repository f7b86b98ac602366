public import AzureIoTCore
public import Logging

/// An IoT Hub device (or module) client over MQTT 3.1.1: telemetry with the `$.ct`/`$.ce` property bag, cloud-to-
/// device messages, twin, direct methods, keep-alive, reconnect with back-off, and SAS renewal by reconnecting.
///
/// Use it scoped (``withConnection(configuration:logger:_:)``) or long-lived (``connect()`` or ``run()``, then
/// ``disconnect()``). Incoming traffic arrives on the ``HubStream`` properties.
public final class HubMQTTClient: Sendable {
    private let session: HubMQTTSession
    /// The configuration.
    public let configuration: HubMQTTConfiguration
    /// Cloud-to-device messages (PUBACKed on receipt; unbounded buffer: consume them).
    public let cloudToDeviceMessages: HubStream<CloudToDeviceMessage>
    /// Desired-property patches, plus the whole desired section when it changed while the client was offline.
    public let desiredPropertyPatches: HubStream<DesiredPropertyPatch>
    /// Direct-method calls; answer each with ``MethodRequest/respond(status:payload:)``.
    public let methodRequests: HubStream<MethodRequest>
    /// Connection state changes with reasons (keeps the newest 256 if not consumed).
    public let connectionEvents: HubStream<ConnectionEvent>

    /// A client; nothing is sent until ``connect()``. Throws ``HubMQTTError/Code/invalidArgument`` for a keep-alive
    /// above IoT Hub's 1177 s or a window below 1.
    public init(configuration: HubMQTTConfiguration, logger: Logger = TLSConnection.disabledLogger) throws(HubMQTTError) {
        guard configuration.keepAlive > .zero, configuration.keepAlive <= .seconds(1177) else {
            throw HubMQTTError(.invalidArgument, "keep-alive must be between 1 and 1177 seconds for IoT Hub")
        }
        guard configuration.inflightWindow >= 1, !configuration.identity.deviceId.isEmpty else {
            throw HubMQTTError(.invalidArgument, "the in-flight window must be at least 1 and the device id non-empty")
        }
        self.configuration = configuration
        let (c2d, c2dContinuation) = HubStream<CloudToDeviceMessage>.make(bufferingPolicy: .unbounded)
        let (desired, desiredContinuation) = HubStream<DesiredPropertyPatch>.make(bufferingPolicy: .unbounded)
        let (methods, methodsContinuation) = HubStream<MethodRequest>.make(bufferingPolicy: .unbounded)
        let (events, eventsContinuation) = HubStream<ConnectionEvent>.make(bufferingPolicy: .bufferingNewest(256))
        self.cloudToDeviceMessages = c2d
        self.desiredPropertyPatches = desired
        self.methodRequests = methods
        self.connectionEvents = events
        self.session = HubMQTTSession(
            configuration: configuration, logger: logger, cloudToDevice: c2dContinuation, desired: desiredContinuation,
            methods: methodsContinuation, events: eventsContinuation
        )
    }

    /// Connects (TLS, CONNECT, subscriptions). Throws ``HubMQTTError/Code/connectionRefused`` when the broker
    /// refuses, and the transport's `AzureIoTError` for TLS and network failures. After a later connection loss the
    /// client reconnects by itself.
    public func connect() async throws { try await self.session.connect() }

    /// Connects, then keeps the connection (reconnecting as needed) until ``disconnect()`` is called.
    public func run() async throws {
        do {
            try await self.session.connect()
        } catch is CancellationError {
            // Cancelled while connecting: the same clean end as a cancelled connected client.
            await self.session.disconnect()
            return
        }
        // Cancelling the task that runs the client disconnects it cleanly (DISCONNECT first), and run() returns.
        await withTaskCancellationHandler {
            await self.session.waitForShutdown()
        } onCancel: {
            Task { await self.session.disconnect() }
        }
        if let error = await self.session.terminalError { throw error }
    }

    /// Sends DISCONNECT, closes, fails pending operations with ``HubMQTTError/Code/shutDown`` and ends the streams.
    public func disconnect() async { await self.session.disconnect() }

    /// Connects, runs `operation`, and disconnects afterwards, also when it throws.
    public static func withConnection<Result: Sendable>(
        configuration: HubMQTTConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        _ operation: (HubMQTTClient) async throws -> Result
    ) async throws -> Result {
        let client = try HubMQTTClient(configuration: configuration, logger: logger)
        try await client.connect()
        do {
            let result = try await operation(client)
            await client.disconnect()
            return result
        } catch {
            await client.disconnect()
            throw error
        }
    }

    /// Sends telemetry. With QoS 1 (default) it returns when the broker's PUBACK arrives; messages survive
    /// reconnects and are resent with DUP until acknowledged. Throws ``HubMQTTError/Code/messageTooLarge`` before
    /// sending anything over 256 KB. Cancelling the task stops the wait; the message stays queued.
    ///
    /// A QoS 1 send that has no PUBACK within `timeout` (default: the configuration's `operationTimeout`),
    /// connected or not, throws ``HubMQTTError/Code/timedOut``: the message leaves the queue and is not sent again,
    /// and a PUBACK that comes for it later completes nothing.
    public func send(_ message: TelemetryMessage, qos: MQTTQoS = .atLeastOnce, timeout: Duration? = nil) async throws {
        try await self.session.send(message, qos: qos, timeout: timeout)
    }

    /// Reads the whole twin. While the client reconnects it waits for the connection, within the operation
    /// time-out (then ``HubMQTTError/Code/timedOut``).
    public func twin() async throws -> Twin { try await self.session.twin() }

    /// Patches the reported properties with a JSON object; returns the new reported version. While the client
    /// reconnects it waits for the connection, within the operation time-out.
    public func updateReportedProperties(_ json: [UInt8]) async throws -> Int? {
        try await self.session.updateReportedProperties(json)
    }

    /// QoS 1 messages not yet acknowledged.
    public var pendingMessageCount: Int { get async { await self.session.inflightCount } }

    /// Whether a connection is up now.
    public var isConnected: Bool { get async { await self.session.isConnected } }
}
