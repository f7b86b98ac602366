import ArgumentParser
import AzureIoTCore
import AzureIoTEmulator
import Foundation
import Logging
import Synchronization

/// `azure-iot emulator`: runs the DPS + IoT Hub emulator until interrupted and prints, once it listens, one JSON
/// object with its endpoints, CA file, ID scope, enrollment keys and device connection strings.
struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run a local DPS + IoT Hub emulator (DPS REST, MQTT, AMQP) and print its endpoints as JSON."
    )

    @Option(help: "A JSON configuration file (default: the documented default configuration).")
    var config: String?

    @Option(
        help: ArgumentHelp(
            "Keep the registry, twins, DPS registrations, pending cloud-to-device messages, retained telemetry, generated keys and the CA in this directory (SQLite), across restarts.",
            valueName: "dir"
        )
    )
    var dataDir: String?

    @Option(
        help:
            "The AMQP port (0: any free one). 5671 lets Azure's Python service and Event Hubs SDKs use the printed connection strings as they are."
    )
    var amqpPort: Int?

    @Option(
        help:
            "Also serve AMQP without TLS on this port (0: any free one), for Event Hubs clients with UseDevelopmentEmulator=true (loopback only)."
    )
    var amqpPlainPort: Int?

    @Option(help: "The MQTT port (0: any free one).")
    var mqttPort: Int?

    @Option(help: "The service REST API's HTTPS port (0: any free one).")
    var servicePort: Int?

    @Option(
        help: ArgumentHelp(
            "Play edgeHub and the workload API for this IoT Edge device (added when the configuration lacks it); the JSON's \"edge\" lists each module's IOTEDGE_* environment.",
            valueName: "device-id"
        )
    )
    var edgeDevice: String?

    @Option(help: ArgumentHelp("A module of the --edge-device (repeat for more).", valueName: "module-id"))
    var edgeModule: [String] = []

    @Option(
        help: ArgumentHelp(
            #"An edgeHub route, e.g. 'FROM /messages/modules/a/outputs/x INTO BrokeredEndpoint("/modules/b/inputs/y")' or 'FROM /* INTO $upstream' (repeat for more; none: everything upstream)."#,
            valueName: "route"
        )
    )
    var edgeRoute: [String] = []

    @Option(
        help: ArgumentHelp(
            "The workload API's unix socket (default: workload.sock in the state directory).",
            valueName: "path"
        )
    )
    var workloadSocket: String?

    @Flag(help: "After the JSON, print `export IOTEDGE_…=…` lines for each Edge module (for a shell that starts one).")
    var edgeExports = false

    @Flag(help: "Log connections and requests on stderr.")
    var verbose = false

    @Flag(
        help:
            "After the JSON, print the write-ups' recipes filled in for this emulator (needs a device and a group with keys)."
    )
    var recipes = false

    func run() async throws {
        // A server process: use all the descriptors the hard limit allows (the emulator keeps some in reserve).
        var files = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        }
        var configuration = try self.config.map { try EmulatorConfiguration.load(fromFile: $0) } ?? .default
        if let dataDir = self.dataDir { configuration.dataDirectory = dataDir }
        if let port = self.amqpPort { configuration.amqpPort = port }
        if let port = self.mqttPort { configuration.mqttPort = port }
        if let port = self.amqpPlainPort { configuration.amqpPlainPort = port }
        if let port = self.servicePort { configuration.servicePort = port }
        try self.applyEdgeOptions(to: &configuration)
        var logger = Logger(label: "azure-iot.emulator") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        if !self.verbose { logger.logLevel = .critical }
        // Signal handling first: its Dispatch sources need descriptors, which clients could have taken all of by the
        // time the emulator listens (Dispatch traps when it cannot get one).
        let interrupt = InterruptSignal()
        let emulator = try await IoTEmulator.start(configuration: configuration, logger: logger)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        emit(String(decoding: try encoder.encode(emulator.endpoints), as: UTF8.self))
        if self.recipes {
            for line in try Self.recipeSheet(emulator.endpoints) { emit(line) }
        }
        if self.edgeExports {
            for line in Self.edgeExports(emulator.endpoints) { emit(line) }
        }
        await interrupt.wait()
        await emulator.shutdown()
    }

    /// `--edge-device`, `--edge-module`, `--edge-route` and `--workload-socket` applied to the configuration.
    func applyEdgeOptions(to configuration: inout EmulatorConfiguration) throws {
        guard let deviceId = self.edgeDevice else {
            if !self.edgeModule.isEmpty || !self.edgeRoute.isEmpty || self.workloadSocket != nil || self.edgeExports {
                throw ValidationError(
                    "--edge-module, --edge-route, --workload-socket and --edge-exports need --edge-device"
                )
            }
            return
        }
        guard !deviceId.isEmpty, deviceId.utf8.count <= 128 else {
            throw ValidationError("--edge-device takes a device id of 1 to 128 bytes")
        }
        if !configuration.devices.contains(where: { $0.deviceId == deviceId }) {
            configuration.devices.append(.init(deviceId: deviceId))
        }
        let index = configuration.devices.firstIndex { $0.deviceId == deviceId } ?? 0
        for module in self.edgeModule
        where !(configuration.devices[index].modules ?? []).contains(where: { $0.moduleId == module }) {
            guard !module.isEmpty, module.utf8.count <= 128, !module.contains("/") else {
                throw ValidationError("--edge-module takes a module id of 1 to 128 bytes without '/'")
            }
            configuration.devices[index].modules =
                (configuration.devices[index].modules ?? []) + [.init(moduleId: module)]
        }
        var edge = configuration.edge ?? EmulatorConfiguration.Edge(deviceId: deviceId)
        edge.deviceId = deviceId
        for (number, route) in self.edgeRoute.enumerated() { edge.routes["route\(number + 1)"] = route }
        if let socket = self.workloadSocket { edge.workloadSocketPath = socket }
        configuration.edge = edge
    }

    /// `# module m` and `export IOTEDGE_…='…'` lines for each Edge module, sorted.
    static func edgeExports(_ endpoints: EmulatorEndpoints) -> [String] {
        var lines: [String] = []
        for (module, variables) in (endpoints.edge?.modules ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines.append("# module \(module)")
            for (name, value) in variables.sorted(by: { $0.key < $1.key }) {
                lines.append("export \(name)='\(value.replacingOccurrences(of: "'", with: "'\\''"))'")
            }
        }
        return lines
    }

    /// The recipe sheet for the first device and the first enrollment group that have keys.
    static func recipeSheet(_ endpoints: EmulatorEndpoints) throws -> [String] {
        guard let device = endpoints.devices.first(where: { $0.moduleId == nil && $0.primaryKey != nil }),
            let group = endpoints.enrollments.first(where: { $0.kind == "group" && $0.primaryKey != nil }),
            let deviceKey = device.primaryKey, let groupKey = group.primaryKey
        else {
            return ["(no recipes: the configuration needs a device and an enrollment group with symmetric keys)"]
        }
        let sheet = RecipeSheet(
            deviceId: device.deviceId,
            deviceKey: try SymmetricKey(base64: deviceKey),
            groupName: group.name,
            groupKey: try SymmetricKey(base64: groupKey),
            registrationId: "write-up-device-01"
        )
        return try sheet.lines(for: endpoints)
    }

    /// Suspends until SIGINT or SIGTERM.
    static func waitForInterrupt() async {
        await InterruptSignal().wait()
    }
}

/// SIGINT and SIGTERM, caught from the moment this is made (its Dispatch sources are created here, while
/// descriptors are to be had) until ``wait()`` returns on the first of them.
final class InterruptSignal: @unchecked Sendable {
    private struct State {
        var arrived = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    /// Set once in `init`, then only kept alive.
    private var sources: [any DispatchSourceSignal] = []

    init() {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let queue = DispatchQueue(label: "azure-iot.signals")
        self.sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
        for source in self.sources {
            source.setEventHandler { [self] in self.fire() }
            source.resume()
        }
    }

    private func fire() {
        let continuation = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.arrived = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }

    /// Returns once SIGINT or SIGTERM has arrived (at once if one already has).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state -> Bool in
                guard !state.arrived else { return true }
                state.continuation = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
