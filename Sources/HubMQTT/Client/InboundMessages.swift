/// A cloud-to-device message. Over MQTT it is completed (PUBACKed) when the application takes it from
/// ``HubMQTTClient/cloudToDeviceMessages``: one the process did not take before a crash or a reconnect is delivered
/// again. MQTT has no reject or abandon.
public struct CloudToDeviceMessage: Sendable {
    /// The body.
    public let body: [UInt8]
    /// Every property from the topic, system keys with their `$.` prefix.
    public let properties: PropertyBag
    /// The PUBLISH's packet id and connection, for the PUBACK sent when the application takes the message.
    let delivery: (packetId: UInt16, generation: Int)?

    init(body: [UInt8], properties: PropertyBag, delivery: (packetId: UInt16, generation: Int)? = nil) {
        self.body = body
        self.properties = properties
        self.delivery = delivery
    }

    /// `$.mid`.
    public var messageId: String? { self.properties["$.mid"] }
    /// `$.cid`.
    public var correlationId: String? { self.properties["$.cid"] }
    /// `$.uid`.
    public var userId: String? { self.properties["$.uid"] }
    /// `$.to`, e.g. `/devices/dev1/messages/deviceBound`.
    public var to: String? { self.properties["$.to"] }
    /// `$.ct`.
    public var contentType: String? { self.properties["$.ct"] }
    /// `$.ce`.
    public var contentEncoding: String? { self.properties["$.ce"] }
    /// `$.exp`.
    public var expiryTime: String? { self.properties["$.exp"] }
    /// The application properties: every key without the `$.` prefix or IoT Hub's `iothub-` keys.
    public var applicationProperties: [(key: String, value: String?)] {
        self.properties.pairs.filter { !$0.key.hasPrefix("$.") && !$0.key.hasPrefix("iothub-") }
    }
}

/// What happens to the connection.
public struct ConnectionEvent: Sendable, CustomStringConvertible {
    /// The kind of change.
    public enum Kind: Sendable, Equatable {
        /// Connected (CONNACK accepted).
        case connected
        /// The connection was lost or closed.
        case disconnected
        /// Reconnecting to renew the SAS token before it expires (informational).
        case renewingToken
        /// A reconnect attempt failed; another follows after a back-off.
        case reconnectFailed
        /// The retry policy gave up: the client is shut down, and pending work failed with
        /// ``HubMQTTError/Code/retriesExhausted``. The last event of the stream.
        case gaveUp
    }
    /// The kind.
    public let kind: Kind
    /// Why, in words (no secrets).
    public let reason: String

    /// A readable summary that never contains secrets.
    public var description: String { "\(self.kind): \(self.reason)" }
}
