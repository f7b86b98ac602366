import AzureIoTCore

/// One device connection as the hub sees it (an MQTT session or an AMQP identity on a connection), so the hub can
/// push work to whichever protocol the device uses.
protocol DeviceLink: AnyObject, Sendable {
    /// Unique per connection.
    var linkId: UInt64 { get }
    /// Offers a queued cloud-to-device message; `false` if the link cannot take it now (no subscription or credit).
    func offer(_ message: CloudToDeviceRecord) async -> Bool
    /// Pushes a desired-properties patch (with its version inside) to `identity` if it subscribed to them.
    func pushDesired(_ patch: JSONValue, version: Int, to identity: IdentityName) async
    /// Sends a method request to `identity`; `false` if it did not subscribe to methods.
    func requestMethod(name: String, payload: [UInt8], requestId: String, to identity: IdentityName) async -> Bool
    /// Closes the connection.
    func terminate(reason: String) async
    /// Another connection took `identity` over: an MQTT connection closes; an AMQP connection detaches that
    /// identity's links (`amqp:link:stolen`) and keeps the others it carries.
    func release(_ identity: IdentityName, reason: String) async
    /// Offers a message routed to an Edge module's input; `false` if the link cannot take it now (no subscription,
    /// too many unacknowledged). The link reports the acknowledgement with `EmulatedHub.completeModuleInput`.
    func offerInput(_ message: ModuleInputRecord) async -> Bool
}

extension DeviceLink {
    /// Module inputs are delivered over MQTT; other links take none.
    func offerInput(_ message: ModuleInputRecord) async -> Bool { false }
}

/// `deviceId` or `deviceId/moduleId`.
struct IdentityName: Hashable, Sendable, CustomStringConvertible {
    var deviceId: String
    var moduleId: String?

    var description: String { self.moduleId.map { "\(self.deviceId)/\($0)" } ?? self.deviceId }
}
