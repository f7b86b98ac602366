public import AzureIoTCore
public import Logging
public import ServiceLifecycle

/// An IoT Hub device (or module) client over MQTT 3.1.1: telemetry with the `$.ct`/`$.ce` property bag, cloud-to-
/// device messages, twin, direct methods, keep-alive, reconnect with back-off, and SAS renewal by reconnecting.
///
/// Use it scoped (``withConnection(configuration:logger:_:)``) or long-lived (``connect(timeout:)`` or ``run()``, then
/// ``disconnect()``). It is a swift-service-lifecycle `Service`: put it in a `ServiceGroup` and a graceful shutdown
/// disconnects it. Incoming traffic arrives on the ``HubStream`` properties.
public final class HubMQTTClient: Service, Sendable {
    private let session: HubMQTTSession
    /// The configuration.
    public let configuration: HubMQTTConfiguration
    /// Cloud-to-device messages. Iterating subscribes to them; each is acknowledged (PUBACK) when taken, so one the
    /// application never took is delivered again after a reconnect. A full buffer leaves further messages
    /// unacknowledged (the hub redelivers them; IoT Hub holds at most 50 unacknowledged per device anyway).
    public let cloudToDeviceMessages: HubStream<CloudToDeviceMessage>
    /// Desired-property patches. Iterating subscribes to them; after a reconnect, and after patches were dropped on a
    /// full buffer, the twin is read again and the whole desired section arrives (`DesiredPropertyPatch.isFullDocument`).
    public let desiredPropertyPatches: HubStream<DesiredPropertyPatch>
    /// Direct-method calls; answer each with `MethodRequest.respond(status:payload:)`. Iterating subscribes to
    /// them; a call that finds the buffer full is answered 503 at once.
    public let methodRequests: HubStream<MethodRequest>
    /// Connection state changes with reasons (keeps the newest 256 if not consumed).
    public let connectionEvents: HubStream<ConnectionEvent>

    /// The kinds of traffic the hub pushes once the device subscribes to them.
    public enum Inbound: Int, Sendable, Hashable, Comparable, CaseIterable {
        /// Cloud-to-device messages (``cloudToDeviceMessages``).
        case cloudToDeviceMessages
        /// Desired-property patches (``desiredPropertyPatches``).
        case desiredPropertyPatches
        /// Direct-method calls (``methodRequests``).
        case methodRequests

        /// Orders kinds as declared (the order the client subscribes in).
        public static func < (lhs: Inbound, rhs: Inbound) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// A client; nothing is sent until ``connect(timeout:)``. Throws ``HubMQTTError/Code/invalidArgument`` for a keep-alive
    /// above IoT Hub's 1177 s, a window below 1 or a buffer size below 1.
    public convenience init(configuration: HubMQTTConfiguration, logger: Logger = TLSConnection.disabledLogger)
        throws(HubMQTTError)
    {
        try self.init(configuration: configuration, logger: logger, clock: SystemClock())
    }

    /// A client whose timers (retry waits, keep-alive, token renewal, deadlines) run on `clock`: tests pass a virtual
    /// clock and move it on instead of sleeping.
    package init(
        configuration: HubMQTTConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        clock: any IoTClock
    ) throws(HubMQTTError) {
        guard configuration.keepAlive > .zero, configuration.keepAlive <= .seconds(1177) else {
            throw HubMQTTError(.invalidArgument, "keep-alive must be between 1 and 1177 seconds for IoT Hub")
        }
        guard configuration.inflightWindow >= 1, !configuration.identity.deviceId.isEmpty else {
            throw HubMQTTError(.invalidArgument, "the in-flight window must be at least 1 and the device id non-empty")
        }
        guard configuration.inboundBufferSize >= 1 else {
            throw HubMQTTError(.invalidArgument, "the inbound buffer size must be at least 1")
        }
        self.configuration = configuration
        let size = configuration.inboundBufferSize
        let c2d = InboundQueue<CloudToDeviceMessage>(capacity: size, overflow: .refuseNewest)
        let desired = InboundQueue<DesiredPropertyPatch>(capacity: size, overflow: .refuseNewest)
        let methods = InboundQueue<MethodRequest>(capacity: size, overflow: .refuseNewest)
        let events = InboundQueue<ConnectionEvent>(capacity: 256, overflow: .dropOldest)
        self.cloudToDeviceMessages = HubStream(queue: c2d)
        self.desiredPropertyPatches = HubStream(queue: desired)
        self.methodRequests = HubStream(queue: methods)
        self.connectionEvents = HubStream(queue: events)
        let session = HubMQTTSession(
            configuration: configuration,
            logger: logger,
            cloudToDevice: c2d,
            desired: desired,
            methods: methods,
            events: events,
            clock: clock
        )
        self.session = session
        // Iterating a stream subscribes to its traffic; taking a C2D message acknowledges it.
        c2d.setHandlers(
            onDemand: { [weak session] in Task { try? await session?.subscribe(to: [.cloudToDeviceMessages]) } },
            onTake: { [weak session] message in session?.cloudToDeviceTaken(message) }
        )
        desired.setHandlers(
            onDemand: { [weak session] in Task { try? await session?.subscribe(to: [.desiredPropertyPatches]) } },
            onTake: { [weak session] _ in Task { await session?.desiredTaken() } }
        )
        methods.setHandlers(
            onDemand: { [weak session] in Task { try? await session?.subscribe(to: [.methodRequests]) } },
            onTake: nil
        )
    }

    /// Subscribes to the given kinds of pushed traffic now and waits for the hub's SUBACK (before ``connect(timeout:)``:
    /// the connection subscribes to them). Iterating a stream does the same without waiting; call this first when
    /// the cloud side acts right away (a method call on a device that has not subscribed fails with 404).
    /// Throws ``HubMQTTError/Code/subscriptionRefused``, or ``HubMQTTError/Code/timedOut`` while reconnecting.
    public func subscribe(to kinds: Set<Inbound>) async throws {
        try await self.session.subscribe(to: kinds)
    }

    /// Connects (TLS, CONNECT, subscriptions), trying again under the retry policy within `timeout` (default: the
    /// configuration's `connectTimeout`), as a reconnect would. Throws ``HubMQTTError/Code/retriesExhausted`` once the policy gives up
    /// (refused credentials: the refusal is the ``HubMQTTError/underlying`` cause), or the last failure
    /// (``HubMQTTError/Code/connectionFailed`` for TLS and the network) when the time is up. Cancelling the task stops
    /// the attempt. After a later connection loss the client reconnects by itself.
    public func connect(timeout: Duration? = nil) async throws { try await self.session.connect(timeout: timeout) }

    /// Connects, then keeps the connection (reconnecting as needed) until ``disconnect()`` is called, the task is
    /// cancelled, or a `ServiceGroup` running the client shuts down gracefully: each ends with DISCONNECT, and `run()`
    /// returns. Throws what the first connect throws, and ``HubMQTTError/Code/retriesExhausted`` when the retry
    /// policy gave up later.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await self.runUntilShutDown()
        } onGracefulShutdown: {
            Task { await self.session.disconnect() }
        }
    }

    private func runUntilShutDown() async throws {
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

    /// Reads the whole twin. While the client reconnects it waits for the connection, within `timeout` (default: the
    /// configuration's `operationTimeout`; then ``HubMQTTError/Code/timedOut``). Cancelling the task ends the wait.
    public func twin(timeout: Duration? = nil) async throws -> Twin { try await self.session.twin(timeout: timeout) }

    /// Patches the reported properties with a JSON object; returns the new reported version. While the client
    /// reconnects it waits for the connection, within `timeout` (default: the configuration's `operationTimeout`).
    /// Cancelling the task ends the wait.
    public func updateReportedProperties(_ json: [UInt8], timeout: Duration? = nil) async throws -> Int? {
        try await self.session.updateReportedProperties(json, timeout: timeout)
    }

    /// QoS 1 messages waiting for room in the in-flight window (offline, or with the window full); at most the
    /// configuration's ``HubMQTTConfiguration/maximumQueuedMessages``.
    public var queuedMessageCount: Int { self.session.waitingCount }

    /// QoS 1 messages not yet acknowledged.
    public var pendingMessageCount: Int { get async { await self.session.inflightCount } }

    /// Whether a connection is up now.
    public var isConnected: Bool { get async { await self.session.isConnected } }
}
