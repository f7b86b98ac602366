/// The topics IoT Hub uses over MQTT for one device or module (protocol reference §3).
struct HubTopics: Sendable {
    let deviceId: String
    let moduleId: String?

    /// `devices/{d}/messages/events/` or `devices/{d}/modules/{m}/messages/events/`.
    var telemetryPrefix: String {
        self.moduleId.map { "devices/\(self.deviceId)/modules/\($0)/messages/events/" }
            ?? "devices/\(self.deviceId)/messages/events/"
    }

    /// Where C2D messages (devices) or module inputs (`…/inputs/{input}/{bag}`) arrive.
    var cloudToDevicePrefix: String {
        self.moduleId.map { "devices/\(self.deviceId)/modules/\($0)/inputs/" }
            ?? "devices/\(self.deviceId)/messages/devicebound/"
    }

    static let twinResponsePrefix = "$iothub/twin/res/"
    static let desiredPatchPrefix = "$iothub/twin/PATCH/properties/desired/"
    static let methodRequestPrefix = "$iothub/methods/POST/"

    /// The filter subscribed on every connection: twin responses (they only answer the client's own requests).
    static let twinResponseFilter = "$iothub/twin/res/#"

    /// The filter for one kind of pushed traffic (IoT Hub allows 5 subscriptions; the client uses at most 4).
    func filter(for kind: HubMQTTClient.Inbound) -> String {
        switch kind {
        case .cloudToDeviceMessages: self.cloudToDevicePrefix + "#"
        case .desiredPropertyPatches: "$iothub/twin/PATCH/properties/desired/#"
        case .methodRequests: "$iothub/methods/POST/#"
        }
    }

    static func twinGet(rid: UInt32) -> String { "$iothub/twin/GET/?$rid=\(rid)" }
    static func twinPatchReported(rid: UInt32) -> String { "$iothub/twin/PATCH/properties/reported/?$rid=\(rid)" }
    static func methodResponse(status: Int, rid: String) -> String { "$iothub/methods/res/\(status)/?$rid=\(rid)" }

    /// What an incoming topic is.
    enum Incoming: Equatable {
        /// A device's C2D message, or a module's input message (with the input's name).
        case cloudToDevice(bag: Substring, inputName: Substring?)
        case twinResponse(status: Int, query: PropertyBag)
        case desiredPatch(query: PropertyBag)
        case methodRequest(name: String, query: PropertyBag)
        case other
    }

    func classify(_ topic: String) throws(HubMQTTError) -> Incoming {
        if topic.hasPrefix(self.cloudToDevicePrefix) {
            let rest = topic.dropFirst(self.cloudToDevicePrefix.count)
            guard self.moduleId != nil else { return .cloudToDevice(bag: rest, inputName: nil) }
            // `{input}/{bag}`: edgeHub names the input in the segment before the property bag.
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            guard slash > rest.startIndex else {
                throw HubMQTTError(.malformedTopic, "a module input topic has no input name")
            }
            let bag = slash == rest.endIndex ? rest[slash...] : rest[rest.index(after: slash)...]
            return .cloudToDevice(bag: bag, inputName: rest[..<slash])
        }
        if topic.hasPrefix(Self.twinResponsePrefix) {
            let rest = topic.dropFirst(Self.twinResponsePrefix.count)
            guard let slash = rest.firstIndex(of: "/"), let status = Int(rest[..<slash]) else {
                throw HubMQTTError(.malformedTopic, "a twin response topic has no status")
            }
            return .twinResponse(status: status, query: try Self.query(rest[slash...]))
        }
        if topic.hasPrefix(Self.desiredPatchPrefix) {
            return .desiredPatch(query: try Self.query(topic.dropFirst(Self.desiredPatchPrefix.count)))
        }
        if topic.hasPrefix(Self.methodRequestPrefix) {
            let rest = topic.dropFirst(Self.methodRequestPrefix.count)
            guard let slash = rest.firstIndex(of: "/"), slash > rest.startIndex else {
                throw HubMQTTError(.malformedTopic, "a method request topic has no method name")
            }
            return .methodRequest(name: String(rest[..<slash]), query: try Self.query(rest[slash...]))
        }
        return .other
    }

    /// Parses `/?a=b&c=d` or `?a=b` into a bag.
    private static func query(_ text: Substring) throws(HubMQTTError) -> PropertyBag {
        var rest = text
        if rest.hasPrefix("/") { rest = rest.dropFirst() }
        if rest.hasPrefix("?") { rest = rest.dropFirst() }
        return try PropertyBag(parsing: rest)
    }
}
