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

    /// A client; nothing is sent until ``connect()``.
    public convenience init(configuration: HubAMQPConfiguration, logger: Logger = TLSConnection.disabledLogger) {
        self.init(configuration: configuration, logger: logger, clock: SystemClock())
    }

    /// A client whose timers (heartbeats, token renewal, back-off, time-outs) and token times run on `clock`: tests
    /// pass a virtual clock and advance it instead of sleeping.
    package init(
        configuration: HubAMQPConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        clock: any IoTClock
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: CloudToDeviceDelivery.self, bufferingPolicy: .unbounded)
        self.cloudToDeviceMessages = stream
        self.session = HubAMQPSession(
            configuration: configuration,
            logger: logger,
            cloudToDevice: continuation,
            clock: clock
        )
    }

    /// TLS, SASL PLAIN, open, begin, and the two links, tried again under the retry policy within the operation
    /// time-out as a reconnect would be (one attempt with automatic reconnects off). Throws ``HubAMQPError``:
    /// ``HubAMQPError/Code/retriesExhausted`` once the policy gives up (a refused token: the
    /// ``HubAMQPError/Code/authenticationFailed`` error is the ``HubAMQPError/underlying`` cause),
    /// ``HubAMQPError/Code/linkDetached`` for a refused link, ``HubAMQPError/Code/connectionFailed`` (the `AzureIoTError`
    /// as ``HubAMQPError/underlying``) for TLS and the network.
    public func connect() async throws { try await HubAMQPError.mapping { try await self.session.connect() } }

    /// Sends a message and returns when the peer settles it as `accepted`; `rejected`, `released` and `modified`
    /// throw the matching ``HubAMQPError``.
    public func send(_ message: AMQPMessage) async throws {
        try await HubAMQPError.mapping { try await self.session.send(message) }
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
