public import AzureIoTCore
public import Logging
public import ServiceLifecycle

/// An IoT Hub device client over AMQP 1.0 with SASL PLAIN (`{device}@sas.{hub}` + SAS token): telemetry on
/// `/devices/{id}/messages/events` settled by the peer, and cloud-to-device messages from
/// `/devices/{id}/messages/devicebound` that the application completes, rejects or abandons.
///
/// It is a swift-service-lifecycle `Service`: ``run()`` connects and keeps the connection until a `ServiceGroup`
/// shuts down gracefully, the task is cancelled, or ``close()``.
public final class HubAMQPClient: Service, Sendable {
    private let session: HubAMQPSession
    /// Cloud-to-device messages. At most the configuration's `cloudToDeviceCredit` (default 100) are delivered and not
    /// yet settled at once: the hub gets credit for more only as the application completes, rejects or abandons
    /// them, so a slow application holds a bounded number in memory.
    public let cloudToDeviceMessages: AsyncStream<CloudToDeviceDelivery>
    /// Desired-property patches pushed by the hub, once ``subscribe(to:)`` asked for them (at most the configuration's
    /// `inboundBufferSize` wait; more are dropped, and the twin tells the current state).
    public let desiredPropertyPatches: AsyncStream<DesiredPropertyPatch>
    /// Direct-method calls, once ``subscribe(to:)`` asked for them. Answer each with
    /// `MethodRequest.respond(status:payload:)`; a call that finds `inboundBufferSize` waiting is answered 503.
    public let methodRequests: AsyncStream<MethodRequest>
    /// What happens to the connection: connected, disconnected (with the reason), reconnect attempts that failed,
    /// token renewals by reconnecting, and `gaveUp` when the retry policy ends the client. The newest 256 are kept.
    public let connectionEvents: AsyncStream<ConnectionEvent>

    /// Traffic the hub pushes only when the device asks for it.
    public enum Inbound: Hashable, Sendable {
        /// Desired-property patches (``desiredPropertyPatches``): the twin links, and a subscription on them.
        case desiredPropertyPatches
        /// Direct-method calls (``methodRequests``): the method links.
        case methodRequests
    }

    /// A client; nothing is sent until ``connect(timeout:)``. Throws ``HubAMQPError/Code/invalidArgument`` for a
    /// configuration that cannot work (see `HubAMQPConfiguration.validate()`).
    public convenience init(configuration: HubAMQPConfiguration, logger: Logger = TLSConnection.disabledLogger)
        throws(HubAMQPError)
    {
        try self.init(configuration: configuration, logger: logger, clock: SystemClock())
    }

    /// A client whose timers (heartbeats, token renewal, back-off, time-outs) and token times run on `clock`: tests
    /// pass a virtual clock and advance it instead of sleeping.
    package init(
        configuration: HubAMQPConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        clock: any IoTClock
    ) throws(HubAMQPError) {
        try configuration.validate()
        let (stream, continuation) = AsyncStream.makeStream(of: CloudToDeviceDelivery.self, bufferingPolicy: .unbounded)
        let size = max(1, configuration.inboundBufferSize)
        let (desired, desiredContinuation) = AsyncStream.makeStream(
            of: DesiredPropertyPatch.self,
            bufferingPolicy: .bufferingOldest(size)
        )
        let (methods, methodsContinuation) = AsyncStream.makeStream(
            of: MethodRequest.self,
            bufferingPolicy: .bufferingOldest(size)
        )
        let (events, eventsContinuation) = AsyncStream.makeStream(
            of: ConnectionEvent.self,
            bufferingPolicy: .bufferingNewest(256)
        )
        self.connectionEvents = events
        self.cloudToDeviceMessages = stream
        self.desiredPropertyPatches = desired
        self.methodRequests = methods
        self.session = HubAMQPSession(
            configuration: configuration,
            logger: logger,
            cloudToDevice: continuation,
            desired: desiredContinuation,
            methods: methodsContinuation,
            events: eventsContinuation,
            clock: clock
        )
    }

    /// TLS, SASL PLAIN, open, begin, and the two links, tried again under the retry policy as a reconnect would be
    /// (one attempt with automatic reconnects off), within `timeout` (default: the configuration's `connectTimeout`; past it the
    /// attempt in progress is cancelled and ``HubAMQPError/Code/timedOut`` thrown). Throws ``HubAMQPError``:
    /// ``HubAMQPError/Code/retriesExhausted`` once the policy gives up (a refused token: the
    /// ``HubAMQPError/Code/authenticationFailed`` error is the ``HubAMQPError/underlying`` cause),
    /// ``HubAMQPError/Code/linkDetached`` for a refused link, ``HubAMQPError/Code/connectionFailed`` (the `AzureIoTError`
    /// as ``HubAMQPError/underlying``) for TLS and the network.
    public func connect(timeout: Duration? = nil) async throws {
        try await HubAMQPError.mapping { try await self.session.connect(timeout: timeout) }
    }

    /// Sends a message and returns when the peer settles it as `accepted`; `rejected`, `released` and `modified`
    /// throw the matching ``HubAMQPError``.
    public func send(_ message: AMQPMessage) async throws {
        try await HubAMQPError.mapping { try await self.session.send(message) }
    }

    /// Sends telemetry (mapped to AMQP as the Azure SDKs map it: `TelemetryMessage.amqpMessage`) and returns when
    /// the hub accepts it, within `timeout` (default: the operation time-out). A message with a
    /// `TelemetryMessage.deadline` that passes first fails with ``HubAMQPError/Code/expired``.
    public func send(_ message: TelemetryMessage, timeout: Duration? = nil) async throws {
        try await HubAMQPError.mapping {
            try await self.session.send(message.amqpMessage, timeout: timeout, deadline: message.deadline)
        }
    }

    /// Reads the device twin (`GET` on the twin links, attached on first use). While the client reconnects it
    /// waits for the connection; the request is sent again if the connection goes before the answer, all within
    /// `timeout` (default: the operation time-out). Throws ``HubAMQPError/Code/twinRequestFailed`` with the hub's
    /// status, ``HubAMQPError/Code/timedOut``, or ``HubAMQPError/Code/notConnected`` before ``connect(timeout:)``.
    public func twin(timeout: Duration? = nil) async throws -> Twin {
        try await HubAMQPError.mapping { try await self.session.twin(timeout: timeout) }
    }

    /// Patches reported properties with a JSON object (`PATCH /properties/reported`); returns the new reported
    /// version. Waits and retries as ``twin(timeout:)`` does.
    @discardableResult
    public func updateReportedProperties(_ json: [UInt8], timeout: Duration? = nil) async throws -> Int? {
        try await HubAMQPError.mapping { try await self.session.updateReportedProperties(json, timeout: timeout) }
    }

    /// Asks the hub for `kinds` now (if connected) and on every reconnect: the links are attached and, for desired
    /// properties, the subscription is made. Before ``connect(timeout:)`` this only records the wish.
    public func subscribe(to kinds: Set<Inbound>) async throws {
        var features: Set<HubAMQPSession.Feature> = []
        if kinds.contains(.desiredPropertyPatches) { features.insert(.desiredProperties) }
        if kinds.contains(.methodRequests) { features.insert(.methods) }
        try await HubAMQPError.mapping { try await self.session.enable(features) }
    }

    /// Sends `close` and shuts the connection.
    public func close() async { await self.session.close() }

    /// Connects, then keeps the connection (reconnecting under the retry policy) until ``close()``, task
    /// cancellation, or a graceful shutdown of the `ServiceGroup` running it; each ends with an AMQP `close`, and
    /// `run()` returns. Throws what the first connect throws, and ``HubAMQPError/Code/retriesExhausted`` when the
    /// retry policy gave up later.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            do {
                try await HubAMQPError.mapping { try await self.session.connect() }
            } catch is CancellationError {
                await self.session.close()
                return
            }
            await withTaskCancellationHandler {
                await self.session.waitUntilFinished()
            } onCancel: {
                Task { await self.session.close() }
            }
            if let error = await self.session.terminalError, error.code != .notConnected { throw error }
        } onGracefulShutdown: {
            Task { await self.session.close() }
        }
    }
}
