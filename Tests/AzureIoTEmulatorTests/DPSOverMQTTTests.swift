import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTProxy
import AzureIoTTestSupport
import AzureIoTTesting
import DPSClient
import Foundation
import HubMQTT
import Testing

/// DPS over MQTT (`$dps/registrations/…`) and AMQP, directly and in a WebSocket: this SDK's `ProvisioningClient`,
/// Azure's Python `ProvisioningDeviceClient` (MQTT) and a qpid-proton client (AMQP) against the emulator, which
/// answers all of them through the same service as REST.
@Suite("DPS over MQTT, AMQP and WebSockets")
struct DPSOverMQTTTests {
    static func client(
        _ fixture: EmulatorFixture,
        _ registrationId: String,
        _ attestation: ProvisioningClient.Attestation,
        transport: ProvisioningClient.Transport
    ) throws -> ProvisioningClient {
        try fixture.provisioning(registrationId, attestation, transport: transport)
    }

    @Test(
        "symmetric key (individual and group) and X.509 register over MQTT, AMQP and each in a WebSocket; the assignment works on the hub",
        arguments: [ProvisioningClient.Transport.mqtt, .mqttWebSockets, .amqp, .amqpWebSockets]
    )
    func register(_ transport: ProvisioningClient.Transport) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 1)
        defer { Task { await fixture.emulator.shutdown() } }
        let statuses = StatusLog()
        let individual = try await Self.client(
            fixture,
            "individual-1",
            .symmetricKey(try SymmetricKey(base64: EmulatorFixture.individualKey)),
            transport: transport
        ).register(timeout: .seconds(20)) { statuses.append($0.rawValue) }
        #expect(individual.deviceId == "provisioned-individual" && individual.assignedHub == fixture.hubHost)
        // Retry-After 1 s came back on the answer topic, so there was one poll after "assigning".
        #expect(statuses.values == ["assigning", "assigned"])
        let member = try await Self.client(
            fixture,
            "mqtt-member-\(transport.rawValue)",
            .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
            transport: transport
        ).register(timeout: .seconds(20))
        #expect(member.deviceId == "mqtt-member-\(transport.rawValue)")
        let certificate = try fixture.deviceIntermediate.issue(commonName: "x509-mqtt-\(transport.rawValue)")
        let x509 = try await Self.client(
            fixture,
            "x509-mqtt-\(transport.rawValue)",
            .x509(certificate.identity),
            transport: transport
        ).register(timeout: .seconds(20))
        #expect(x509.deviceId == "x509-mqtt-\(transport.rawValue)")
        let records = await fixture.emulator.registrations()
        #expect(records.count == 3 && records.allSatisfy { $0.status == "assigned" })
        // The group member's assignment connects to the hub.
        let hub = try fixture.mqtt(
            device: member.deviceId,
            key: try DerivedKey.compute(
                groupKey: EmulatorFixture.groupKey,
                registrationId: member.deviceId
            )
        )
        try await hub.connect()
        await hub.disconnect()
    }

    @Test("qpid-proton provisions over the emulator's DPS AMQP endpoint as Azure's C and Node clients do")
    func protonProvisioning() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 1)
        defer { Task { await fixture.emulator.shutdown() } }
        let token = SASToken.generate(
            for: .registration(idScope: fixture.endpoints.idScope, registrationId: "individual-1"),
            key: try SymmetricKey(base64: EmulatorFixture.individualKey),
            expiry: UnixTime.now() + 3600,
            keyName: "registration"
        )
        let (status, output) = try await PeerProcess.complete(
            AMQPTestPeer.python,
            [
                PeerProcess.peerScript("fidelity/proton_dps.py"), "localhost",
                String(try #require(fixture.endpoints.dpsAMQP?.port)), fixture.endpoints.idScope, "individual-1",
                token.secretValue, fixture.endpoints.caCertificatePath,
            ],
            timeout: .seconds(60)
        )
        #expect(status == 0, "\(output)")
        // DPS's Retry-After of 1 s came back as an application property, and the poll found the assignment.
        #expect(output.contains("register: assigning retry-after: 1"), "\(output)")
        #expect(output.contains("poll: assigned"), "\(output)")
        #expect(output.contains("assigned: \(fixture.hubHost) provisioned-individual"), "\(output)")
        #expect(await fixture.emulator.registrations().first?.status == "assigned")
    }

    @Test(
        "a wrong key is refused (CONNACK 5, or the SASL outcome auth) as unauthorized, not retried; nothing is registered",
        arguments: [ProvisioningClient.Transport.mqtt, .amqp]
    )
    func wrongKey(_ transport: ProvisioningClient.Transport) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let error = await #expect(throws: ProvisioningError.self) {
            _ = try await Self.client(
                fixture,
                "individual-1",
                .symmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
                transport: transport
            ).register(timeout: .seconds(10))
        }
        #expect(error?.code == .unauthorized && error?.isTransient == false, "\(String(describing: error))")
        #expect(await fixture.emulator.registrations().isEmpty)
    }

    @Test(
        "DPS in a WebSocket through tinyproxy: the same proxy setting as REST carries the MQTT and the AMQP registration",
        arguments: [ProvisioningClient.Transport.mqttWebSockets, .amqpWebSockets]
    )
    func throughProxy(_ transport: ProvisioningClient.Transport) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let proxy = try await ProxyPeer.tinyproxy(allowing: [fixture.endpoints.dpsWebSockets.port])
        defer { proxy.process.stop() }
        var configuration = ProvisioningClient.Configuration(
            endpoint: "localhost:\(fixture.endpoints.dpsWebSockets.port)",
            idScope: fixture.endpoints.idScope,
            registrationId: "individual-1",
            attestation: .symmetricKey(try SymmetricKey(base64: EmulatorFixture.individualKey)),
            trustRoots: fixture.trust,
            defaultPollInterval: .milliseconds(200)
        )
        configuration.transport = transport
        configuration.proxy = "http://\(ProxyPeer.user):\(ProxyPeer.password)@127.0.0.1:\(proxy.port)"
        let result = try await ProvisioningClient(configuration: configuration).register(timeout: .seconds(20))
        #expect(result.deviceId == "provisioned-individual")
        #expect(proxy.log.contains("CONNECT localhost:\(fixture.endpoints.dpsWebSockets.port)"), "\(proxy.log)")
    }

    @Test(
        "Azure's Python ProvisioningDeviceClient registers over the emulator's DPS MQTT endpoint: symmetric key and X.509, directly and with websockets=True",
        arguments: [false, true]
    )
    func azureProvisioningClient(_ websockets: Bool) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 1)
        defer { Task { await fixture.emulator.shutdown() } }
        let port = websockets ? fixture.endpoints.dpsWebSockets.port : fixture.endpoints.dpsMQTT.port
        let script = PeerProcess.peerScript("fidelity/azure_provisioning.py")
        let common = [
            script, "localhost", String(port), fixture.endpoints.idScope,
        ]
        let symmetric = try await PeerProcess.complete(
            PeerProcess.clientPython,
            common + [
                "individual-1", fixture.endpoints.caCertificatePath, "symmetric", EmulatorFixture.individualKey,
            ] + (websockets ? ["websockets"] : []),
            timeout: .seconds(60)
        )
        #expect(symmetric.status == 0, "\(symmetric.output)")
        #expect(symmetric.output.contains("assigned \(fixture.hubHost) provisioned-individual"), "\(symmetric.output)")

        let name = websockets ? "x509-python-ws" : "x509-python"
        let certificate = try fixture.deviceIntermediate.issue(commonName: name)
        let folder = NSTemporaryDirectory() + "dps-python-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // The leaf first, then the intermediate DPS checks the group against.
        try (certificate.certificatePEM + certificate.chainPEM).write(
            toFile: folder + "/chain.pem",
            atomically: true,
            encoding: .utf8
        )
        try certificate.privateKeyPEM.write(toFile: folder + "/key.pem", atomically: true, encoding: .utf8)
        _ = try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: folder + "/key.pem")
        let x509 = try await PeerProcess.complete(
            PeerProcess.clientPython,
            common + [
                name, fixture.endpoints.caCertificatePath, "x509", folder + "/chain.pem", folder + "/key.pem",
            ] + (websockets ? ["websockets"] : []),
            timeout: .seconds(60)
        )
        #expect(x509.status == 0, "\(x509.output)")
        #expect(x509.output.contains("assigned \(fixture.hubHost) \(name)"), "\(x509.output)")
        let records = await fixture.emulator.registrations()
        #expect(records.map(\.registrationId).sorted() == ["individual-1", name].sorted())
    }
}

/// The Plug and Play model id on the wire: in the MQTT user name (this SDK and Azure's Python SDK) and in the DPS
/// registration payload.
@Suite("Plug and Play model id")
struct ModelIdTests {
    static let model = "dtmi:com:example:Thermostat;1"

    @Test("the device client announces the model id on every transport; DPS gets it in the payload")
    func announced() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        var dps = ProvisioningClient.Configuration(
            endpoint: "localhost:\(fixture.endpoints.dps.port)",
            idScope: fixture.endpoints.idScope,
            registrationId: "pnp-thermostat",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
            trustRoots: fixture.trust
        )
        dps.modelId = Self.model
        let result = try await ProvisioningClient(configuration: dps).register(
            payload: JSONValue.object(["site": "lab"]),
            timeout: .seconds(20)
        )
        let record = try #require(await fixture.emulator.registrations().first)
        #expect(record.payload == .object(["site": "lab", "modelId": .string(Self.model)]))
        for transport in DeviceClientConfiguration.Transport.allCases {
            var configuration = try DeviceClientConfiguration(
                provisioned: result,
                transport: transport,
                trustRoots: fixture.trust,
                port: fixture.endpoints.port(for: transport)
            )
            configuration.gatewayHostName = "localhost"
            configuration.modelId = Self.model
            try await DeviceClient.withConnection(configuration: configuration) { client in
                var reading = TelemetryMessage(text: "21.5")
                reading.componentName = "thermostat1"
                try await client.send(reading)
            }
            #expect(await fixture.emulator.modelId(deviceId: "pnp-thermostat") == Self.model, "\(transport)")
        }
        let telemetry = await fixture.emulator.telemetry(deviceId: "pnp-thermostat")
        #expect(telemetry.map { $0.systemProperties["sub"] } == Array(repeating: "thermostat1", count: 4))
    }

    @Test("Azure's Python device client with product_info set to a DTMI: the emulator reads its model-id")
    func pythonModelId() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let connectionString = try #require(
            fixture.endpoints.devices.first { $0.deviceId == "dev2" && $0.moduleId == nil }
        ).connectionString
        let script = """
            import sys
            import paho.mqtt.client as paho
            from azure.iot.device import IoTHubDeviceClient
            dial = paho.Client.connect
            def connect(self, host, port=1883, *args, **kwargs):
                return dial(self, host, int(sys.argv[3]) if port == 8883 else port, *args, **kwargs)
            paho.Client.connect = connect
            ca = open(sys.argv[2]).read()
            client = IoTHubDeviceClient.create_from_connection_string(
                sys.argv[1], server_verification_cert=ca, product_info="\(Self.model)")
            client.connect()
            client.shutdown()
            print("connected with a model id")
            """
        let result = try await PeerProcess.complete(
            PeerProcess.clientPython,
            ["-c", script, connectionString, fixture.endpoints.caCertificatePath, String(fixture.endpoints.mqtt.port)],
            timeout: .seconds(60)
        )
        #expect(result.status == 0, "\(result.output)")
        #expect(await fixture.emulator.modelId(deviceId: "dev2") == Self.model)
    }
}
