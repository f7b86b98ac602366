import AzureIoTCore
import Foundation
import Logging

/// A message on its way to an Edge module's input, as edgeHub stores it until the module acknowledges it.
struct ModuleInputRecord: Sendable {
    /// Unique in the hub.
    var id: UInt64
    /// The module that receives it.
    var target: IdentityName
    /// The input it arrives on.
    var inputName: String
    var body: [UInt8]
    /// System properties as `$.`-less names (`mid`, `cid`, `ct`, `ce`, `cdid`, `cmid`, …).
    var systemProperties: [String: String]
    var properties: [String: String]
    var delivered = false
}

/// What the emulated edgeHub holds for its Edge device: the routes and the module input queues.
struct EdgeHubState: Sendable {
    var deviceId: String
    var routes: [EdgeRoute]
    var inputs: [IdentityName: [ModuleInputRecord]] = [:]
    /// Messages refused because a module's queue was full, per module (logged, and readable for tests).
    var dropped: [IdentityName: Int] = [:]

    /// Messages one module may have waiting (edgeHub keeps them for a time to live; the emulator bounds the count).
    static let maximumQueuedInputs = 1000
}

/// Why the workload API could not sign.
enum ModuleSigning: Sendable {
    case signed([UInt8])
    case unknownModule
    case staleGeneration
    case noKey
}

extension EmulatedHub {
    /// Turns `deviceId` into an IoT Edge device with `routes`: telemetry from it and its modules is routed from now on.
    func configureEdge(deviceId: String, routes: [EdgeRoute]) {
        self.edge = EdgeHubState(deviceId: deviceId, routes: routes)
        self.identities[IdentityName(deviceId: deviceId)]?.registry.iotEdge = true
    }

    /// HMAC-SHA256 of `data` with the module's key, as the workload API signs: only for the module identity's
    /// current generation id.
    func signForModule(_ name: IdentityName, generationId: String, secondary: Bool, _ data: [UInt8]) -> ModuleSigning {
        guard name.moduleId != nil, let identity = self.identities[name] else { return .unknownModule }
        guard identity.registry.generationId == generationId else { return .staleGeneration }
        guard let key = secondary ? identity.secondaryKey : identity.key else { return .noKey }
        return .signed(key.authenticationCode(of: data))
    }

    /// The module identity's generation id (for the environment a module is started with).
    func generationId(_ name: IdentityName) -> String? { self.identities[name]?.registry.generationId }

    /// Routes a message from the Edge device or one of its modules as edgeHub would: to every sink of every
    /// matching route, once per sink; a message no route takes is dropped.
    func routeEdgeMessage(_ message: ReceivedTelemetry, edge: EdgeHubState) async {
        let output = message.systemProperties["on"]
        var sinks: [EdgeRoute.Sink] = []
        for route in edge.routes where route.matches(moduleId: message.moduleId, output: output) {
            if !sinks.contains(route.sink) { sinks.append(route.sink) }
        }
        if sinks.isEmpty {
            self.edgeLogger.debug(
                "no Edge route takes the message; dropped",
                metadata: ["module": "\(message.moduleId ?? "-")", "output": "\(output ?? "-")"]
            )
        }
        for sink in sinks {
            switch sink {
            case .upstream:
                await self.recordUpstream(message)
            case .moduleInput(let module, let input):
                await self.enqueueModuleInput(
                    message,
                    to: IdentityName(deviceId: edge.deviceId, moduleId: module),
                    input
                )
            }
        }
    }

    private func enqueueModuleInput(_ message: ReceivedTelemetry, to target: IdentityName, _ input: String) async {
        guard self.identities[target] != nil, var edge = self.edge else {
            self.edgeLogger.warning(
                "an Edge route names a module that does not exist",
                metadata: ["module": "\(target)"]
            )
            return
        }
        guard edge.inputs[target, default: []].count < EdgeHubState.maximumQueuedInputs else {
            edge.dropped[target, default: 0] += 1
            self.edge = edge
            self.edgeLogger.warning(
                "a module's input queue is full; the message is dropped",
                metadata: ["module": "\(target)", "limit": "\(EdgeHubState.maximumQueuedInputs)"]
            )
            return
        }
        // The sender's output name stays with the sender; edgeHub adds who sent it (ConnectionDeviceId and
        // ConnectionModuleId, `$.cdid` and `$.cmid` over MQTT).
        var system = message.systemProperties
        system["on"] = nil
        if let id = message.messageId { system["mid"] = id }
        if let id = message.correlationId { system["cid"] = id }
        if let type = message.contentType { system["ct"] = type }
        if let encoding = message.contentEncoding { system["ce"] = encoding }
        system["cdid"] = message.deviceId
        if let module = message.moduleId { system["cmid"] = module }
        let record = ModuleInputRecord(
            id: self.makeId(),
            target: target,
            inputName: input,
            body: message.body,
            systemProperties: system,
            properties: message.properties
        )
        edge.inputs[target, default: []].append(record)
        self.edge = edge
        await self.pumpModuleInputs(target)
    }

    /// Offers `target`'s queued input messages to its connection, in order, until it cannot take more.
    func pumpModuleInputs(_ target: IdentityName) async {
        guard let link = self.links[target], let queue = self.edge?.inputs[target] else { return }
        for record in queue where !record.delivered {
            guard await link.offerInput(record) else { return }
            if let index = self.edge?.inputs[target]?.firstIndex(where: { $0.id == record.id }) {
                self.edge?.inputs[target]?[index].delivered = true
            }
        }
    }

    /// The module acknowledged the message: what waited behind the in-flight limit goes out now.
    func completeModuleInput(_ target: IdentityName, id: UInt64) async {
        self.edge?.inputs[target]?.removeAll { $0.id == id }
        if self.edge?.inputs[target]?.contains(where: { !$0.delivered }) == true {
            await self.pumpModuleInputs(target)
        }
    }

    /// The module's connection went: what it had not acknowledged is offered again on its next one.
    func requeueModuleInputs(_ target: IdentityName) {
        guard let queue = self.edge?.inputs[target] else { return }
        self.edge?.inputs[target] = queue.map { record in
            var record = record
            record.delivered = false
            return record
        }
    }

    /// Input messages waiting for (or delivered to but not acknowledged by) a module, and those dropped.
    func moduleInputBacklog(_ target: IdentityName) -> (waiting: Int, dropped: Int) {
        (self.edge?.inputs[target]?.count ?? 0, self.edge?.dropped[target] ?? 0)
    }
}
