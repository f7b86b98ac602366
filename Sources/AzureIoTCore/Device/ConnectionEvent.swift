/// What happens to the connection.
public struct ConnectionEvent: Sendable, CustomStringConvertible {
    /// The kind of change.
    public enum Kind: Sendable, Equatable {
        /// Connected (MQTT: CONNACK accepted; AMQP: the links attached).
        case connected
        /// The connection was lost or closed.
        case disconnected
        /// Reconnecting to renew the SAS token before it expires (informational).
        case renewingToken
        /// A reconnect attempt failed; another follows after a back-off.
        case reconnectFailed
        /// The retry policy gave up: the client is shut down, and pending work failed with the client's
        /// `retriesExhausted` error. The last event of the stream.
        case gaveUp
    }
    /// The kind.
    public let kind: Kind
    /// Why, in words (no secrets).
    public let reason: String

    /// An event.
    public init(kind: Kind, reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// A readable summary that never contains secrets.
    public var description: String { "\(self.kind): \(self.reason)" }
}
