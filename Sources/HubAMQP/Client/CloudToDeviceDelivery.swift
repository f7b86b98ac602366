/// A cloud-to-device message received over AMQP. Settle it once: ``complete()`` (accepted), ``reject()``
/// (rejected: not delivered again) or ``abandon()`` (released: IoT Hub delivers it again).
public struct CloudToDeviceDelivery: Sendable {
    /// The message.
    public let message: AMQPMessage
    let settle: @Sendable (AMQPDeliveryState) async throws -> Void

    /// Accepts the message.
    public func complete() async throws { try await self.settle(.accepted) }
    /// Rejects the message.
    public func reject() async throws {
        try await self.settle(
            .rejected(AMQPError(condition: "amqp:not-allowed", description: "Rejected by application"))
        )
    }
    /// Releases the message for redelivery.
    public func abandon() async throws { try await self.settle(.released) }
}
