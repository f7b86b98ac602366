/// A cloud-to-device message, whichever transport delivered it.
///
/// Over MQTT the message is completed when the application takes it from the client's stream (MQTT has no reject or
/// abandon: ``reject()`` and ``abandon()`` throw, and ``canRejectOrAbandon`` is `false`); one the process did not take
/// before a crash or a reconnect is delivered again. Over AMQP the application settles it: ``complete()``,
/// ``reject()`` (dead-lettered) or ``abandon()`` (delivered again); until then the hub holds it.
public struct CloudToDeviceMessage: Sendable {
    /// How the application settles a message.
    public enum Outcome: Sendable, Equatable {
        /// Done: the hub forgets it.
        case complete
        /// Dead-lettered: the hub does not deliver it again.
        case reject
        /// Given back: the hub delivers it again.
        case abandon
    }

    /// The body.
    public let body: [UInt8]
    /// The message id the sender gave it.
    public var messageId: String?
    /// The correlation id.
    public var correlationId: String?
    /// The user id.
    public var userId: String?
    /// `/devices/{id}/messages/deviceBound`.
    public var to: String?
    /// The content type, e.g. `application/json`.
    public var contentType: String?
    /// The content encoding, e.g. `utf-8`.
    public var contentEncoding: String?
    /// The absolute expiry time, ISO 8601 UTC, as the hub sent it.
    public var expiryTime: String?
    /// The creation time, ISO 8601 UTC, as the hub sent it.
    public var creationTime: String?
    /// The application properties in the order they came; MQTT may carry a key without a value (`nil`).
    public var applicationProperties: [(key: String, value: String?)]
    /// For an IoT Edge module: the input the message arrived on (edgeHub's routes send a module's outputs to other
    /// modules' inputs); `nil` for a device's cloud-to-device message.
    public var inputName: String?

    /// Settles the message on the connection that delivered it (`nil`: nothing to settle).
    private let settle: (@Sendable (Outcome) async throws -> Void)?
    /// Whether ``reject()`` and ``abandon()`` are available (AMQP).
    public let canRejectOrAbandon: Bool
    /// What the transport needs to acknowledge the message when the application takes it (MQTT: the PUBLISH's packet
    /// id and connection).
    package let deliveryTag: UInt64?

    package init(
        body: [UInt8],
        messageId: String? = nil,
        correlationId: String? = nil,
        userId: String? = nil,
        to: String? = nil,
        contentType: String? = nil,
        contentEncoding: String? = nil,
        expiryTime: String? = nil,
        creationTime: String? = nil,
        applicationProperties: [(key: String, value: String?)] = [],
        inputName: String? = nil,
        canRejectOrAbandon: Bool = false,
        deliveryTag: UInt64? = nil,
        settle: (@Sendable (Outcome) async throws -> Void)? = nil
    ) {
        self.body = body
        self.messageId = messageId
        self.correlationId = correlationId
        self.userId = userId
        self.to = to
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.expiryTime = expiryTime
        self.creationTime = creationTime
        self.applicationProperties = applicationProperties
        self.inputName = inputName
        self.canRejectOrAbandon = canRejectOrAbandon
        self.deliveryTag = deliveryTag
        self.settle = settle
    }

    /// The same message whose settlement errors go through `map` (a client's own error type for another's).
    package func mappingErrors(_ map: @escaping @Sendable (any Error) -> any Error) -> CloudToDeviceMessage {
        var wrapped: (@Sendable (Outcome) async throws -> Void)?
        if let settle = self.settle {
            wrapped = { @Sendable (outcome: Outcome) async throws -> Void in
                do {
                    try await settle(outcome)
                } catch {
                    throw map(error)
                }
            }
        }
        return CloudToDeviceMessage(
            body: self.body,
            messageId: self.messageId,
            correlationId: self.correlationId,
            userId: self.userId,
            to: self.to,
            contentType: self.contentType,
            contentEncoding: self.contentEncoding,
            expiryTime: self.expiryTime,
            creationTime: self.creationTime,
            applicationProperties: self.applicationProperties,
            inputName: self.inputName,
            canRejectOrAbandon: self.canRejectOrAbandon,
            deliveryTag: self.deliveryTag,
            settle: wrapped
        )
    }

    /// The value of the application property `key` (`nil` if absent or without a value).
    public func property(_ key: String) -> String? {
        self.applicationProperties.first { $0.key == key }?.value ?? nil
    }

    /// Completes the message (over MQTT it already is: taking it acknowledged it).
    public func complete() async throws { try await self.settle?(.complete) }

    /// Rejects the message: the hub dead-letters it. Throws the client's `invalidArgument`-kind error over MQTT.
    public func reject() async throws { try await self.settle?(.reject) }

    /// Abandons the message: the hub delivers it again. Throws the client's `invalidArgument`-kind error over MQTT.
    public func abandon() async throws { try await self.settle?(.abandon) }
}
