public import AzureIoTCore
public import Logging

/// An IoT Hub device client over AMQP 1.0 with SASL PLAIN (`{device}@sas.{hub}` + SAS token): telemetry on
/// `/devices/{id}/messages/events` settled by the peer, and cloud-to-device messages from
/// `/devices/{id}/messages/devicebound` that the application completes, rejects or abandons.
public final class HubAMQPClient: Sendable {
    private let session: HubAMQPSession
    /// Cloud-to-device messages (unbounded: consume them).
    public let cloudToDeviceMessages: AsyncStream<CloudToDeviceDelivery>

    /// A client; nothing is sent until ``connect()``.
    public init(configuration: HubAMQPConfiguration, logger: Logger = TLSConnection.disabledLogger) {
        let (stream, continuation) = AsyncStream.makeStream(of: CloudToDeviceDelivery.self, bufferingPolicy: .unbounded)
        self.cloudToDeviceMessages = stream
        self.session = HubAMQPSession(configuration: configuration, logger: logger, cloudToDevice: continuation)
    }

    /// TLS, SASL PLAIN, open, begin, and the two links. Throws ``HubAMQPError`` (``HubAMQPError/Code/authenticationFailed``
    /// for a refused token, ``HubAMQPError/Code/linkDetached`` for a refused link) or the transport's `AzureIoTError`.
    public func connect() async throws { try await self.session.connect() }

    /// Sends a message and returns when the peer settles it as `accepted`; `rejected`, `released` and `modified`
    /// throw the matching ``HubAMQPError``.
    public func send(_ message: AMQPMessage) async throws { try await self.session.send(message) }

    /// Sends `close` and shuts the connection.
    public func close() async { await self.session.close() }
}
