import Foundation

/// What a link address means to IoT Hub (`../shared/reference/azure-iot-protocol.md` §4.3).
enum HubLinkAddress: Equatable {
    /// `/devices/{d}[/modules/{m}]/messages/events`: telemetry into the hub.
    case events(IdentityName)
    /// `/devices/{d}/messages/devicebound` (and a module's, which stays quiet): cloud-to-device messages out of the hub.
    case deviceBound(IdentityName)
    /// `$cbs`: claims-based security.
    case cbs
    /// `/devices/{d}[/modules/{m}]/twin`: twin requests in, answers and desired-property patches out.
    case twin(IdentityName)
    /// `/devices/{d}[/modules/{m}]/methods/devicebound`: direct-method calls out, answers in.
    case methods(IdentityName)
    /// `/messages/devicebound` (any case): the service's cloud-to-device sender.
    case serviceDeviceBound
    /// `/messages/serviceBound/feedback` or `…/filenotifications` (any case): the service's receivers of feedback
    /// and of file upload notifications.
    case serviceQueue(EmulatedHub.ServiceQueue)
    /// `$management`: Event Hubs' management requests (READ of the event hub and its partitions).
    case management
    /// `{eventHub}/ConsumerGroups/{group}/Partitions/{p}`, or IoT Hub's `messages/events/ConsumerGroups/…`: a
    /// partition reader of the Event Hub-compatible endpoint.
    case partition(entity: String, consumerGroup: String, partition: String)

    /// Parses an address with or without `amqps://host`.
    init?(_ address: String?) {
        guard var path = address else { return nil }
        if let scheme = path.range(of: "://") {
            let rest = path[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            path = String(rest[slash...])
        }
        if path == "$cbs" || path == "/$cbs" {
            self = .cbs
            return
        }
        if path == "$management" || path == "/$management" {
            self = .management
            return
        }
        let parts = path.split(separator: "/").map(String.init)
        let lowered = parts.map { $0.lowercased() }
        if lowered == ["messages", "devicebound"] {
            self = .serviceDeviceBound
            return
        }
        if lowered == ["messages", "servicebound", "feedback"] {
            self = .serviceQueue(.feedback)
            return
        }
        if lowered == ["messages", "servicebound", "filenotifications"] {
            self = .serviceQueue(.fileNotifications)
            return
        }
        if parts.count >= 5, lowered[parts.count - 4] == "consumergroups", lowered[parts.count - 2] == "partitions" {
            self = .partition(
                entity: parts[..<(parts.count - 4)].joined(separator: "/"),
                consumerGroup: parts[parts.count - 3],
                partition: parts[parts.count - 1]
            )
            return
        }
        switch parts.count {
        case 3 where parts[0] == "devices" && parts[2] == "twin":
            self = .twin(IdentityName(deviceId: parts[1]))
        case 5 where parts[0] == "devices" && parts[2] == "modules" && parts[4] == "twin":
            self = .twin(IdentityName(deviceId: parts[1], moduleId: parts[3]))
        case 4 where parts[0] == "devices" && parts[2] == "methods" && parts[3] == "devicebound":
            self = .methods(IdentityName(deviceId: parts[1]))
        case 6
        where parts[0] == "devices" && parts[2] == "modules" && parts[4] == "methods" && parts[5] == "devicebound":
            self = .methods(IdentityName(deviceId: parts[1], moduleId: parts[3]))
        case 4 where parts[0] == "devices" && parts[2] == "messages" && parts[3] == "events":
            self = .events(IdentityName(deviceId: parts[1]))
        case 4 where parts[0] == "devices" && parts[2] == "messages" && parts[3] == "devicebound":
            self = .deviceBound(IdentityName(deviceId: parts[1]))
        case 6 where parts[0] == "devices" && parts[2] == "modules" && parts[4] == "messages" && parts[5] == "events":
            self = .events(IdentityName(deviceId: parts[1], moduleId: parts[3]))
        case 6
        where parts[0] == "devices" && parts[2] == "modules" && parts[4] == "messages" && parts[5] == "devicebound":
            // Modules get no cloud-to-device messages from IoT Hub; the link is accepted and stays quiet.
            self = .deviceBound(IdentityName(deviceId: parts[1], moduleId: parts[3]))
        default:
            return nil
        }
    }
}

/// A CBS audience naming the Event Hub-compatible endpoint: `sb://{host}/{eventHub}`, or a consumer group of it
/// (`sb://{host}/{eventHub}/consumergroups/{group}`, what Azure's Python consumer signs for); the event hub's name.
func eventHubAudienceEntity(_ audience: String) -> String? {
    guard let scheme = audience.range(of: "://") else { return nil }
    let parts = audience[scheme.upperBound...].split(separator: "/", omittingEmptySubsequences: true)
    guard parts.count == 2 || (parts.count == 4 && parts[2].lowercased() == "consumergroups") else { return nil }
    return String(parts[1])
}

/// A CBS audience naming a whole hub (`https://{host}`, `{host}`, `sb://{host}/`): the host, or `nil` when the
/// audience has a path.
func hubAudienceHost(_ audience: String) -> String? {
    var text = audience
    if let scheme = text.range(of: "://") { text = String(text[scheme.upperBound...]) }
    let parts = text.split(separator: "/", omittingEmptySubsequences: true)
    guard parts.count == 1 else { return nil }
    return String(parts[0])
}

/// A CBS audience: `{hubHost}/devices/{d}[/modules/{m}]`, with or without a scheme.
func identity(fromAudience audience: String, hubHost: String) -> IdentityName? {
    var text = audience
    if let scheme = text.range(of: "://") { text = String(text[scheme.upperBound...]) }
    let parts = text.split(separator: "/").map(String.init)
    guard parts.first?.lowercased() == hubHost.lowercased() else { return nil }
    switch parts.count {
    case 3 where parts[1] == "devices": return IdentityName(deviceId: parts[2])
    case 5 where parts[1] == "devices" && parts[3] == "modules":
        return IdentityName(deviceId: parts[2], moduleId: parts[4])
    default: return nil
    }
}
