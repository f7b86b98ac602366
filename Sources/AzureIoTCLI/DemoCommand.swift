import ArgumentParser
import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTesting
import DPSClient
import Foundation
import HubAMQP
import HubMQTT
import Synchronization

/// `azure-iot demo`: the README's main job. Starts the emulator in-process and does what a device does: derives a
/// group key, provisions through DPS (symmetric key and X.509), talks MQTT (telemetry with `$.ct`/`$.ce`, C2D, a
/// direct method, reported properties) and AMQP, then prints what the emulator saw. With `--connection-string` or
/// `--scope` the same device steps run against real Azure instead.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Provision and connect devices against the built-in emulator (or real Azure), step by step."
    )

    @Option(help: "Run the hub steps against real Azure with this device connection string.")
    var connectionString: String?

    @Option(help: "Run the DPS step against real Azure with this ID scope (with --group-key).")
    var scope: String?

    @Option(help: "The enrollment group key for --scope.")
    var groupKey: String?

    @Option(help: "The registration id for --scope.")
    var registrationId: String = "swift-demo-device"

    @Flag(help: "Keep the demo's emulator running after the steps (until Ctrl-C), so the printed recipe values work.")
    var serve = false

    func validate() throws {
        guard (self.scope == nil) == (self.groupKey == nil) else {
            throw ValidationError("--scope and --group-key go together")
        }
    }

    func run() async throws {
        let steps = DemoSteps()
        if self.connectionString != nil || self.scope != nil {
            try await self.runAgainstAzure(steps)
        } else {
            try await Self.runAgainstEmulator(steps, serve: self.serve)
        }
        emit("done in \(steps.elapsed)")
    }

    // MARK: - Emulator

    static func runAgainstEmulator(_ steps: DemoSteps, serve: Bool = false) async throws {
        let deviceCA = try await steps.run("make a device CA and a device certificate (X.509 group enrollment)") {
            let root = try CertificateAuthority(commonName: "Demo Device Root CA")
            let intermediate = try root.intermediate(commonName: "Demo Device Intermediate CA")
            return (root, intermediate, try intermediate.issue(commonName: "demo-x509-device"))
        }
        let groupKey = Base64.encode((0..<64).map { _ in UInt8.random(in: 0...255) })
        var configuration = EmulatorConfiguration(
            hubName: "demo-hub",
            devices: [],
            provisioning: .init(
                idScope: "0ne00DEMO1",
                enrollmentGroups: [
                    .init(
                        name: "demo-symmetric-group",
                        primaryKey: groupKey,
                        initialDesiredProperties: .object(["telemetryInterval": .number(5)])
                    ),
                    .init(name: "demo-x509-group", caCertificatePEM: deviceCA.0.certificatePEM),
                ]
            )
        )
        configuration.provisioningRetryAfterSeconds = 1
        let emulator = try await steps.run(
            "start the emulator (DPS, MQTT, AMQP and WebSockets on loopback, TLS from its own CA)"
        ) {
            try await IoTEmulator.start(configuration: configuration)
        }
        let endpoints = emulator.endpoints
        emit(
            "   DPS 127.0.0.1:\(endpoints.dps.port), MQTT :\(endpoints.mqtt.port), AMQP :\(endpoints.amqp.port), WebSockets :\(endpoints.webSockets.port), CA \(endpoints.caCertificatePath)"
        )
        let trust = TLSConfiguration.TrustRoots.pemFile(endpoints.caCertificatePath)
        do {
            let registrationId = "demo-sym-device-01"
            let deviceKey = try await steps.run(
                "derive the device key from the group key (HMAC-SHA256 of '\(registrationId)')"
            ) {
                try SymmetricKey(base64: groupKey).derivedKey(forRegistrationId: registrationId)
            }
            let symmetric = try await steps.run("register '\(registrationId)' through DPS REST with a SAS token") {
                try await Self.provision(
                    endpoint: "\(endpoints.dps.host):\(endpoints.dps.port)",
                    scope: endpoints.idScope,
                    registrationId: registrationId,
                    attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey)),
                    trust: trust
                )
            }
            emit("   assigned to \(symmetric.assignedHub) as '\(symmetric.deviceId)'")
            let x509Identity = try X509Identity(
                leaf: deviceCA.2.identity.leaf,
                chain: deviceCA.2.identity.chain,
                privateKey: deviceCA.2.identity.privateKey
            )
            let x509 = try await steps.run("register 'demo-x509-device' through DPS REST with a client certificate") {
                try await Self.provision(
                    endpoint: "\(endpoints.dps.host):\(endpoints.dps.port)",
                    scope: endpoints.idScope,
                    registrationId: "demo-x509-device",
                    attestation: .x509(x509Identity),
                    trust: trust
                )
            }
            emit("   assigned to \(x509.assignedHub) as '\(x509.deviceId)'")

            let mqttConfiguration = HubMQTTConfiguration(
                identity: HubMQTTIdentity(hubHost: symmetric.assignedHub, deviceId: symmetric.deviceId),
                authentication: .sas(SymmetricKeyCredential(key: deviceKey)),
                gatewayHostName: "localhost",
                port: endpoints.mqtt.port,
                trustRoots: trust
            )
            let client = try HubMQTTClient(configuration: mqttConfiguration)
            try await client.subscribe(to: [.cloudToDeviceMessages, .methodRequests, .desiredPropertyPatches])
            try await steps.run("connect over MQTT (TLS, SAS password, username with api-version)") {
                try await client.connect()
            }
            try await steps.run("send telemetry with $.ct=application/json, $.ce=utf-8 and a custom property") {
                var message = TelemetryMessage(
                    text: #"{"temperature":21.5,"humidity":40}"#,
                    contentType: "application/json",
                    contentEncoding: "utf-8"
                )
                message.properties = [("alert", "false")]
                message.messageId = "demo-message-1"
                try await client.send(message)
            }
            try await steps.run("receive a cloud-to-device message and complete it") {
                let id = try await emulator.sendCloudToDevice(
                    deviceId: symmetric.deviceId,
                    body: Array("reboot at 02:00".utf8),
                    properties: ["priority": "low"]
                )
                var iterator = client.cloudToDeviceMessages.makeAsyncIterator()
                guard let message = await iterator.next() else { throw ValidationError("the C2D stream ended") }
                emit(
                    "   got '\(String(decoding: message.body, as: UTF8.self))' with priority=\(message.property("priority") ?? "?")"
                )
                _ = try await emulator.waitForCloudToDevice(messageId: id, state: .completed)
            }
            try await steps.run("answer a direct method 'getStatus' invoked by the service") {
                let responder = Task {
                    for await request in client.methodRequests {
                        try await request.respond(
                            status: 200,
                            payload: Array(#"{"status":"ok","method":"\#(request.name)"}"#.utf8)
                        )
                        return
                    }
                }
                let response = try await emulator.invokeMethod(
                    deviceId: symmetric.deviceId,
                    name: "getStatus",
                    payload: .object(["verbose": .bool(true)]),
                    timeout: .seconds(10)
                )
                try await responder.value
                emit("   the service got \(response.status) \(response.payloadText)")
            }
            try await steps.run("read the twin and update reported properties") {
                let twin = try await client.twin()
                emit(
                    "   twin desired version \(twin.desiredVersion ?? 0): \(String(decoding: twin.json, as: UTF8.self))"
                )
                let version = try await client.updateReportedProperties(
                    Array(#"{"firmware":"1.0.0","telemetryInterval":5}"#.utf8)
                )
                emit("   reported version is now \(version ?? 0)")
            }
            await client.disconnect()

            try await steps.run("connect the X.509 device over MQTT and send telemetry") {
                let configuration = HubMQTTConfiguration(
                    identity: HubMQTTIdentity(hubHost: x509.assignedHub, deviceId: x509.deviceId),
                    authentication: .x509(x509Identity),
                    gatewayHostName: "localhost",
                    port: endpoints.mqtt.port,
                    trustRoots: trust
                )
                try await HubMQTTClient.withConnection(configuration: configuration) { client in
                    try await client.send(
                        TelemetryMessage(text: #"{"pressure":1013}"#, contentType: "application/json")
                    )
                }
            }
            try await steps.run("send the same telemetry over AMQP (SASL PLAIN \(symmetric.deviceId)@sas.demo-hub)") {
                let amqp = try HubAMQPClient(
                    configuration: HubAMQPConfiguration(
                        hubHost: symmetric.assignedHub,
                        deviceId: symmetric.deviceId,
                        tokenSource: SymmetricKeyCredential(key: deviceKey),
                        gatewayHostName: "localhost",
                        port: endpoints.amqp.port,
                        trustRoots: trust
                    )
                )
                try await amqp.connect()
                var message = AMQPMessage(data: Array(#"{"temperature":21.7,"humidity":41}"#.utf8))
                message.contentType = "application/json"
                message.contentEncoding = "utf-8"
                message.applicationProperties = [("alert", .string("false"))]
                try await amqp.send(message)
                await amqp.close()
            }
            try await steps.run(
                "send telemetry over MQTT in a WebSocket (wss://localhost:\(endpoints.webSockets.port)/$iothub/websocket; IoT Hub's port is 443)"
            ) {
                var configuration = HubMQTTConfiguration(
                    identity: HubMQTTIdentity(hubHost: symmetric.assignedHub, deviceId: symmetric.deviceId),
                    authentication: .sas(SymmetricKeyCredential(key: deviceKey)),
                    gatewayHostName: "localhost",
                    port: endpoints.webSockets.port,
                    trustRoots: trust
                )
                configuration.webSockets = true
                try await HubMQTTClient.withConnection(configuration: configuration) { client in
                    try await client.send(
                        TelemetryMessage(text: #"{"temperature":21.8,"humidity":41}"#, contentType: "application/json")
                    )
                }
            }
            await Self.summarize(emulator)
            let sheet = RecipeSheet(
                deviceId: symmetric.deviceId,
                deviceKey: deviceKey,
                groupName: "demo-symmetric-group",
                groupKey: try SymmetricKey(base64: groupKey),
                registrationId: "write-up-device-01"
            )
            emit("")
            for line in try sheet.lines(for: endpoints) { emit(line) }
            if serve {
                emit("")
                emit("serving until Ctrl-C")
                await EmulatorCommand.waitForInterrupt()
            } else {
                emit("(these work while the emulator runs: 'azure-iot demo --serve' keeps it running)")
            }
        } catch {
            await emulator.shutdown()
            throw error
        }
        await emulator.shutdown()
    }

    static func provision(
        endpoint: String,
        scope: String,
        registrationId: String,
        attestation: ProvisioningClient.Attestation,
        trust: TLSConfiguration.TrustRoots
    ) async throws -> ProvisioningResult {
        let client = try ProvisioningClient(
            configuration: .init(
                endpoint: endpoint,
                idScope: scope,
                registrationId: registrationId,
                attestation: attestation,
                trustRoots: trust
            )
        )
        return try await client.register(timeout: .seconds(30)) { status in emit("   status: \(status)") }
    }

    static func summarize(_ emulator: IoTEmulator) async {
        emit("what the emulator saw:")
        for registration in await emulator.registrations() {
            emit(
                "  DPS: \(registration.registrationId) → \(registration.status) (\(registration.attestation.rawValue), group \(registration.enrollmentGroup ?? "-"))"
            )
        }
        for message in await emulator.telemetry() {
            let properties = message.properties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                separator: ","
            )
            emit(
                "  \(message.transport.rawValue.uppercased())\(message.overWebSockets ? "-WS" : "") telemetry from \(message.deviceId): \(message.bodyText) ct=\(message.contentType ?? "-") ce=\(message.contentEncoding ?? "-") [\(properties)]"
            )
        }
        for message in await emulator.cloudToDeviceMessages() {
            emit("  C2D \(message.messageId) to \(message.deviceId): \(message.state.rawValue)")
        }
        if let twin = try? await emulator.twin(deviceId: "demo-sym-device-01") {
            emit(
                "  twin of demo-sym-device-01: reported v\(twin.reportedVersion) \(String(decoding: twin.reported.jsonBytes, as: UTF8.self))"
            )
        }
    }

    // MARK: - Real Azure

    func runAgainstAzure(_ steps: DemoSteps) async throws {
        var connection: ConnectionString
        if let scope, let groupKey {
            let key = try SymmetricKey(base64: groupKey)
            let result = try await steps.run(
                "register '\(self.registrationId)' with DPS (global endpoint, derived key)"
            ) {
                try await Self.provision(
                    endpoint: RegistrationRoute.globalEndpoint,
                    scope: scope,
                    registrationId: self.registrationId,
                    attestation: .groupSymmetricKey(key),
                    trust: .system
                )
            }
            connection = try ConnectionString(
                parsing:
                    "HostName=\(result.assignedHub);DeviceId=\(result.deviceId);SharedAccessKey=\(try key.derivedKey(forRegistrationId: self.registrationId).base64EncodedSecret)"
            )
        } else {
            connection = try ConnectionString(parsing: self.connectionString!)
        }
        let configuration = try HubMQTTConfiguration(connectionString: connection)
        try await steps.run("connect over MQTT, send telemetry with $.ct/$.ce, update reported properties") {
            try await HubMQTTClient.withConnection(configuration: configuration) { client in
                try await client.send(
                    TelemetryMessage(
                        text: #"{"temperature":21.5}"#,
                        contentType: "application/json",
                        contentEncoding: "utf-8"
                    )
                )
                _ = try await client.updateReportedProperties(Array(#"{"demo":"swift"}"#.utf8))
            }
        }
        if let deviceId = connection.deviceId, let source = connection.tokenSource() {
            try await steps.run("send telemetry over AMQP") {
                let amqp = try HubAMQPClient(
                    configuration: HubAMQPConfiguration(
                        hubHost: connection.hostName,
                        deviceId: deviceId,
                        moduleId: connection.moduleId,
                        tokenSource: source,
                        gatewayHostName: connection.gatewayHostName
                    )
                )
                try await amqp.connect()
                var message = AMQPMessage(data: Array(#"{"temperature":21.6}"#.utf8))
                message.contentType = "application/json"
                message.contentEncoding = "utf-8"
                try await amqp.send(message)
                await amqp.close()
            }
        }
        emit("cloud-to-device and direct methods need the service side: send them from the portal or the az CLI")
    }
}

/// Numbers and times the demo's steps.
final class DemoSteps: Sendable {
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private let counter = Counter()

    init() { self.start = ContinuousClock.now }

    var elapsed: Duration { self.clock.now - self.start }

    @discardableResult
    func run<T: Sendable>(_ title: String, _ body: () async throws -> T) async throws -> T {
        let number = self.counter.next()
        emit("\(number). \(title)")
        let started = self.clock.now
        let value = try await body()
        emit("   ok (\(Self.format(self.clock.now - started)))")
        return value
    }

    static func format(_ duration: Duration) -> String {
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.1f ms", milliseconds)
    }

    private final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int {
            self.value.withLock { value in
                value += 1
                return value
            }
        }
    }
}
