import Foundation

/// What a topic a device publishes to means to IoT Hub (`../shared/reference/azure-iot-protocol.md` §3); anything
/// else is not allowed and disconnects the device, as the hub does.
enum DevicePublishRoute: Equatable {
    /// Telemetry, with the property bag text after the events prefix.
    case telemetry(propertyBag: Substring)
    /// `$iothub/twin/GET/?$rid=…`.
    case twinGet(requestId: String)
    /// `$iothub/twin/PATCH/properties/reported/?$rid=…`.
    case reportedPatch(requestId: String)
    /// `$iothub/methods/res/{status}/?$rid=…`.
    case methodResponse(status: Int, requestId: String)

    init?(topic: String, identity: IdentityName) {
        let events =
            identity.moduleId.map { "devices/\(identity.deviceId)/modules/\($0)/messages/events" }
            ?? "devices/\(identity.deviceId)/messages/events"
        // IoT Hub ignores slashes at the end of a telemetry topic (Azure/iotedge#76 brought IoT Edge to parity), so
        // `…/messages/events` as the Node-RED write-up sets it is telemetry too, and `…/events/{bag}/` has that bag.
        if topic == events {
            self = .telemetry(propertyBag: "")
            return
        }
        if topic.hasPrefix(events + "/") {
            var bag = topic.dropFirst(events.count + 1)
            while bag.last == "/" { bag = bag.dropLast() }
            self = .telemetry(propertyBag: bag)
            return
        }
        if topic.hasPrefix("$iothub/twin/GET/?"), let rid = Self.query(topic, "$rid") {
            self = .twinGet(requestId: rid)
            return
        }
        if topic.hasPrefix("$iothub/twin/PATCH/properties/reported/?"), let rid = Self.query(topic, "$rid") {
            self = .reportedPatch(requestId: rid)
            return
        }
        let methodPrefix = "$iothub/methods/res/"
        if topic.hasPrefix(methodPrefix) {
            let rest = topic.dropFirst(methodPrefix.count)
            guard let slash = rest.firstIndex(of: "/"), let status = Int(rest[..<slash]),
                let rid = Self.query(topic, "$rid")
            else { return nil }
            self = .methodResponse(status: status, requestId: rid)
            return
        }
        return nil
    }

    /// The value of `name` in the query after `?` (percent-decoding `%24` as Python's SDK encodes it).
    static func query(_ topic: String, _ name: String) -> String? {
        guard let question = topic.firstIndex(of: "?") else { return nil }
        for field in topic[topic.index(after: question)...].split(separator: "&") {
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].replacingOccurrences(of: "%24", with: "$")
            if key == name, parts.count == 2 { return String(parts[1]) }
        }
        return nil
    }
}

/// The subscriptions IoT Hub allows a device (at most 5 at once).
enum DeviceSubscription: Hashable {
    case cloudToDevice
    case moduleInputs
    case twinResponses
    case desiredPatches
    case methods

    init?(filter: String, identity: IdentityName) {
        switch filter {
        case "$iothub/twin/res/#": self = .twinResponses
        case "$iothub/twin/PATCH/properties/desired/#": self = .desiredPatches
        case "$iothub/methods/POST/#": self = .methods
        default:
            if let module = identity.moduleId,
                filter == "devices/\(identity.deviceId)/modules/\(module)/#"
                    || filter == "devices/\(identity.deviceId)/modules/\(module)/inputs/#"
            {
                self = .moduleInputs
            } else if identity.moduleId == nil, filter == "devices/\(identity.deviceId)/messages/devicebound/#" {
                self = .cloudToDevice
            } else {
                return nil
            }
        }
    }
}
