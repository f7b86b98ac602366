import AzureIoTCore
import Foundation
import HubMQTT

#if canImport(Glibc)
    import Glibc
#endif

/// `azure-iot emulator` as a child process with the fuzzer's configuration, and what it printed: its ports and CA.
final class EmulatorProcess: @unchecked Sendable {
    static let hubName = "fuzz-hub"
    static let deviceId = "fuzz-dev"
    static let idScope = "0ne00FUZZ1"
    static let registrationId = "fuzz-reg"
    static let deviceKey = "ZnV6ei1kZXZpY2Uta2V5LWZ1enotZGV2aWNlLWtleS0x"
    static let groupKey = "ZnV6ei1ncm91cC1rZXktZnV6ei1ncm91cC1rZXktMTIz"

    let process: Process
    let mqttPort: Int
    let amqpPort: Int
    let dpsPort: Int
    let webSocketPort: Int
    let servicePort: Int
    let blobPort: Int
    /// DPS over AMQP.
    let dpsAMQPPort: Int
    /// The workload API's unix socket (the device is an IoT Edge device, its module `m` an Edge module).
    let workloadSocket: String
    /// Module `m`'s generation id, which the workload API checks when it signs.
    let generationId: String
    let caPath: String
    var hubHost: String { "\(Self.hubName).azure-devices.net" }
    var pid: Int32 { self.process.processIdentifier }
    var isRunning: Bool { self.process.isRunning }
    var terminationStatus: Int32 { self.process.isRunning ? 0 : self.process.terminationStatus }

    private init(
        process: Process,
        mqttPort: Int,
        amqpPort: Int,
        dpsPort: Int,
        webSocketPort: Int,
        servicePort: Int,
        blobPort: Int,
        workloadSocket: String,
        generationId: String,
        dpsAMQPPort: Int,
        caPath: String
    ) {
        self.dpsAMQPPort = dpsAMQPPort
        self.workloadSocket = workloadSocket
        self.generationId = generationId
        self.servicePort = servicePort
        self.blobPort = blobPort
        self.process = process
        self.mqttPort = mqttPort
        self.amqpPort = amqpPort
        self.dpsPort = dpsPort
        self.webSocketPort = webSocketPort
        self.caPath = caPath
    }

    static func start(binary: String) async throws -> EmulatorProcess {
        let directory = NSTemporaryDirectory() + "netfuzz-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configuration: [String: Any] = [
            "hubName": Self.hubName,
            "stateDirectory": directory,
            // Durable state on: every accepted write also goes through SQLite.
            "dataDirectory": directory + "/data",
            "sharedAccessPolicies": [
                [
                    "keyName": "iothubowner", "primaryKey": Self.deviceKey,
                    "rights": "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect",
                ],
                ["keyName": "registryRead", "primaryKey": Self.groupKey, "rights": "RegistryRead"],
            ],
            "devices": [
                [
                    "deviceId": Self.deviceId, "primaryKey": Self.deviceKey,
                    "modules": [["moduleId": "m", "primaryKey": Self.deviceKey]],
                ],
                // The service API cases' device (they may re-key, disable or delete it).
                ["deviceId": "fuzz-svc", "primaryKey": Self.deviceKey, "modules": [["moduleId": "m"]]],
            ],
            // An IoT Edge device: its own messages go upstream; module m's outputs come back on its input.
            "edge": [
                "deviceId": Self.deviceId,
                "routes": [
                    "loop": #"FROM /messages/modules/m/outputs/* INTO BrokeredEndpoint("/modules/m/inputs/in")"#,
                    "up": "FROM /* INTO $upstream",
                ],
            ],
            "provisioning": [
                "idScope": Self.idScope,
                "individualEnrollments": [["registrationId": Self.registrationId, "primaryKey": Self.deviceKey]],
                "enrollmentGroups": [["name": "fuzz-group", "primaryKey": Self.groupKey]],
            ],
        ]
        let path = directory + "/emulator.json"
        try JSONSerialization.data(withJSONObject: configuration).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["emulator", "--config", path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The first line is the endpoints JSON.
        var line = Data()
        let handle = output.fileHandleForReading
        let deadline = ContinuousClock.now + .seconds(30)
        while !line.contains(10), ContinuousClock.now < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty {
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            line += chunk
        }
        guard let newline = line.firstIndex(of: 10),
            let json = try JSONSerialization.jsonObject(with: line[..<newline]) as? [String: Any],
            let mqtt = (json["mqtt"] as? [String: Any])?["port"] as? Int,
            let amqp = (json["amqp"] as? [String: Any])?["port"] as? Int,
            let dps = (json["dps"] as? [String: Any])?["port"] as? Int,
            let webSockets = (json["webSockets"] as? [String: Any])?["port"] as? Int,
            let service = (json["service"] as? [String: Any])?["port"] as? Int,
            let blob = (json["blob"] as? [String: Any])?["port"] as? Int,
            let edge = json["edge"] as? [String: Any],
            let workload = (edge["workloadURI"] as? String).map({ String($0.dropFirst("unix://".count)) }),
            let module = (edge["modules"] as? [String: [String: String]])?["m"],
            let generation = module["IOTEDGE_MODULEGENERATIONID"],
            let dpsAMQP = (json["dpsAMQP"] as? [String: Any])?["port"] as? Int,
            let ca = json["caCertificatePath"] as? String
        else {
            process.terminate()
            throw FuzzerError("the emulator did not print its endpoints: \(String(decoding: line, as: UTF8.self))")
        }
        return EmulatorProcess(
            process: process,
            mqttPort: mqtt,
            amqpPort: amqp,
            dpsPort: dps,
            webSocketPort: webSockets,
            servicePort: service,
            blobPort: blob,
            workloadSocket: workload,
            generationId: generation,
            dpsAMQPPort: dpsAMQP,
            caPath: ca
        )
    }

    /// Resident memory (VmRSS), in bytes.
    func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }

    func stop() {
        if self.process.isRunning {
            kill(self.pid, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    var trust: TLSConfiguration { TLSConfiguration(trustRoots: .pemFile(self.caPath)) }

    /// A device token for the fuzz device, valid for an hour.
    func deviceToken() -> String {
        let key = try! SymmetricKey(base64: Self.deviceKey)
        return SASToken.generate(
            for: .device(hubHost: self.hubHost, deviceId: Self.deviceId),
            key: key,
            expiry: UnixTime.now() + 3600
        ).secretValue
    }

    /// A service token of `iothubowner` for the hub (REST, CBS with a hub audience, SASL PLAIN `…@sas.root.…`).
    func serviceToken() -> String {
        let key = try! SymmetricKey(base64: Self.deviceKey)
        return SASToken.generate(
            for: SASResource(uri: self.hubHost),
            key: key,
            expiry: UnixTime.now() + 3600,
            keyName: "iothubowner"
        ).secretValue
    }

    /// A DPS token for the fuzz registration.
    func registrationToken() -> String {
        let key = try! SymmetricKey(base64: Self.deviceKey)
        return SASToken.generate(
            for: .registration(idScope: Self.idScope, registrationId: Self.registrationId),
            key: key,
            expiry: UnixTime.now() + 3600,
            keyName: "registration"
        ).secretValue
    }
}

struct FuzzerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body`, or throws after `timeout`.
func within<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw FuzzerError("no answer within \(timeout)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// The health check: a device as the SDK makes one connects, sends a QoS 1 message and gets its PUBACK.
enum NormalDevice {
    static func sendOneMessage(_ target: EmulatorProcess) async throws {
        let configuration = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: target.hubHost, deviceId: EmulatorProcess.deviceId),
            authentication: .sas(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorProcess.deviceKey))),
            gatewayHostName: "localhost",
            port: target.mqttPort,
            trustRoots: .pemFile(target.caPath),
            operationTimeout: .seconds(10),
            connectTimeout: .seconds(10)
        )
        try await within(.seconds(30)) {
            try await HubMQTTClient.withConnection(configuration: configuration) { client in
                try await client.send(TelemetryMessage(text: "health check"))
            }
        }
    }
}
