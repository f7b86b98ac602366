// swift-format-ignore-file
// The articles quote this file line for line (ArticleExampleTests), so it keeps their layout, not .swift-format's.
import AzureIoTCore
import AzureIoTDevice
import AzureIoTEdge
import AzureIoTEmulator
import AzureIoTProxy
import DPSClient
import Foundation
import HubAMQP
import HubFileUpload
import HubMQTT
import Logging
import ServiceLifecycle

/// The code of the DocC articles, compiled and run against the emulator by `ArticleExampleTests`. Each article's
/// ```swift block must appear here line for line (checked by the tests), so the articles cannot drift from the API.
///
/// `endpoint`, `trust`, `gateway` and `port` stand for what an article's reader has in production (Azure's global
/// DPS endpoint and the system trust store) or at the edge (the IoT Edge box and its root CA).
enum ArticleExamples {
    // MARK: - DPS with symmetric keys

    static func provisionIndividual(endpoint: String, trust: TLSConfiguration.TrustRoots, idScope: String, enrollmentKey: String) async throws -> ProvisioningResult {
        let client = try ProvisioningClient(configuration: .init(
            endpoint: endpoint,                    // omit for global.azure-devices-provisioning.net
            idScope: idScope,
            registrationId: "individual-1",
            attestation: .symmetricKey(try SymmetricKey(base64: enrollmentKey)),
            trustRoots: trust                      // omit for the system trust store
        ))
        let result = try await client.register(timeout: .seconds(60)) { status in
            print("DPS status: \(status)")
        }
        print("assigned to \(result.assignedHub) as \(result.deviceId)")
        return result
    }

    static func provisionGroupMember(endpoint: String, trust: TLSConfiguration.TrustRoots, gateway: String?, port: Int, idScope: String, groupKey: String) async throws -> ProvisioningResult {
        // The device key is HMAC-SHA256(registration id) under the group key; a factory can compute it ahead of time:
        let deviceKey = try DerivedKey.compute(groupKey: groupKey, registrationId: "sensor-0042")
        print("burn into the device: \(deviceKey.count) base64 characters")

        // …or the device derives it itself from the group key:
        let client = try ProvisioningClient(configuration: .init(
            endpoint: endpoint,
            idScope: idScope,
            registrationId: "sensor-0042",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey)),
            trustRoots: trust
        ))
        let result = try await client.register(timeout: .seconds(60))
        // `result.credential` signs hub tokens with the derived key:
        let hub = try HubMQTTClient(configuration: HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: result.assignedHub, deviceId: result.deviceId),
            authentication: .sas(result.credential!),
            gatewayHostName: gateway, port: port, trustRoots: trust
        ))
        try await hub.connect()
        await hub.disconnect()
        return result
    }

    // MARK: - DPS over MQTT with certificate issuance

    static func provisionOverMQTTWithIssuedCertificate(endpoint: String, trust: TLSConfiguration.TrustRoots, gateway: String?, port: Int, idScope: String, groupKey: String) async throws -> ProvisioningResult {
        var configuration = ProvisioningClient.Configuration(
            endpoint: endpoint,                                   // DPS over MQTT: host:8883
            idScope: idScope,
            registrationId: "sensor-0043",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey)),
            trustRoots: trust
        )
        configuration.transport = .mqtt
        configuration.certificateSigningRequest = try CertificateSigningRequest(commonName: "sensor-0043")
        let result = try await ProvisioningClient(configuration: configuration).register(timeout: .seconds(60))
        // No key to keep: the device connects with the key it made and the certificate DPS issued.
        var hub = try DeviceClientConfiguration(provisioned: result, trustRoots: trust, port: port)
        hub.gatewayHostName = gateway                             // an Edge gateway or emulator; nil for the hub
        let device = try DeviceClient(configuration: hub)
        try await device.connect()
        try await device.send(TelemetryMessage(text: #"{"issued":true}"#))
        await device.disconnect()
        return result
    }

    // MARK: - DPS with X.509

    static func provisionWithCertificate(endpoint: String, trust: TLSConfiguration.TrustRoots, gateway: String?, port: Int, idScope: String, certificateFile: String, keyFile: String) async throws -> ProvisioningResult {
        // The PEM file holds the device certificate first, then any intermediate CA certificates.
        let identity = try X509Identity(certificateFile: certificateFile, privateKeyFile: keyFile)
        let client = try ProvisioningClient(configuration: .init(
            endpoint: endpoint,
            idScope: idScope,
            registrationId: identity.commonName ?? "",   // DPS requires CN = registration id
            attestation: .x509(identity),
            trustRoots: trust
        ))
        let result = try await client.register(timeout: .seconds(60))
        // The same certificate authenticates to the assigned hub (empty MQTT password):
        try await HubMQTTClient.withConnection(configuration: HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: result.assignedHub, deviceId: result.deviceId),
            authentication: .x509(identity),
            gatewayHostName: gateway, port: port, trustRoots: trust
        )) { hub in
            try await hub.send(TelemetryMessage(text: #"{"provisioned":true}"#, contentType: "application/json"))
        }
        return result
    }

    // MARK: - MQTT telemetry for message routing

    static func sendRoutableTelemetry(connectionString: String, trust: TLSConfiguration.TrustRoots, port: Int) async throws {
        let configuration = try HubMQTTConfiguration(
            connectionString: try ConnectionString(parsing: connectionString),
            trustRoots: trust, port: port
        )
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            // $.ct and $.ce let routing queries read the body: `$body.temperature > 30`.
            let message = TelemetryMessage(
                body: Array(#"{"temperature":31.5}"#.utf8),
                contentType: "application/json",
                contentEncoding: "utf-8",
                messageId: UUID().uuidString,
                properties: [("alert", "true")]   // routing query: `alert = 'true'`
            )
            try await client.send(message)        // returns when IoT Hub acknowledges (QoS 1)
            print("topic properties: \(message.propertyBag.encoded)")
        }
    }

    // MARK: - Running unattended

    static func runUnattended(connectionString: String, trust: TLSConfiguration.TrustRoots, port: Int, logger: Logger) async throws -> [String] {
        var configuration = try HubMQTTConfiguration(connectionString: try ConnectionString(parsing: connectionString), trustRoots: trust, port: port)
        configuration.retryPolicy = RetryPolicy(initialDelay: .seconds(2), maximumDelay: .seconds(120), maximumPermanentFailures: 5)
        configuration.maximumQueuedMessages = 500   // offline for long: at most 500 readings wait, then queueFull
        configuration.inboundBufferSize = 16
        let device = try HubMQTTClient(configuration: configuration, logger: logger)
        try await device.subscribe(to: [.cloudToDeviceMessages])

        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: device)], logger: logger))
        let running = Task { try await group.run() }

        var reading = TelemetryMessage(text: #"{"temperature":21.5}"#, contentType: "application/json")
        reading.expire(after: .seconds(300))   // $.exp for IoT Hub, and a local deadline
        do {
            try await device.send(reading, timeout: .seconds(60))
        } catch let error as HubMQTTError where error.code == .expired || error.code == .queueFull {
            logger.warning("reading dropped: \(error.code)")   // a fresher one follows
        }

        var commands: [String] = []
        for await message in device.cloudToDeviceMessages {
            commands.append(String(decoding: message.body, as: UTF8.self))   // taking it acknowledges it
            break
        }
        await group.triggerGracefulShutdown()   // DISCONNECT, then run() returns
        try await running.value
        return commands
    }

    // MARK: - IoT Edge gateway

    static func connectThroughEdge(hubConnectionString: String, edgeHost: String, edgeRootCA: String, port: Int) async throws {
        var connection = try ConnectionString(parsing: hubConnectionString)
        connection.gatewayHostName = edgeHost     // or `;GatewayHostName=…` in the connection string
        let configuration = try HubMQTTConfiguration(
            connectionString: connection,
            trustRoots: .pemFile(edgeRootCA),     // the Edge device's root CA, not the public roots
            port: port
        )
        // TLS goes to the Edge box; the username and the SAS `sr` keep the hub's name.
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(text: "via the gateway"))
        }
    }

    // MARK: - From the Device Provisioning Service

    static func provisionThenSend(dpsEndpoint: String, scope: String, groupKey: String, trust: TLSConfiguration.TrustRoots, gateway: String, port: Int) async throws -> String {
        let dps = ProvisioningClient.Configuration(endpoint: dpsEndpoint, idScope: scope, registrationId: "sensor-42",
                                                   attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey)), trustRoots: trust)
        let assignment = try await ProvisioningClient(configuration: dps).register()
        var configuration = try DeviceClientConfiguration(provisioned: assignment, transport: .amqp, trustRoots: trust, port: port)
        configuration.gatewayHostName = gateway   // an IoT Edge gateway, or the local emulator
        try await DeviceClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(text: #"{"provisioned":true}"#))
        }
        return assignment.deviceId
    }

    // MARK: - One client, two transports

    static func runDevice(connectionString: String, transport: DeviceClientConfiguration.Transport, trust: TLSConfiguration.TrustRoots, port: Int?) async throws -> String {
        var configuration = try DeviceClientConfiguration(connectionString: try ConnectionString(parsing: connectionString), trustRoots: trust, port: port)
        configuration.transport = transport   // .mqtt or .amqp: nothing below changes
        let client = try DeviceClient(configuration: configuration)
        try await client.subscribe(to: [.methodRequests])
        try await client.connect()

        try await client.send(TelemetryMessage(text: #"{"temperature":21.5}"#, contentType: "application/json"))
        try await client.updateReportedProperties(Array(#"{"firmware":"1.2"}"#.utf8))

        var answered = ""
        for await request in client.methodRequests {
            try await request.respond(status: 200, payload: Array(#"{"rebooting":true}"#.utf8))
            answered = request.name
            break
        }
        await client.disconnect()
        return answered
    }

    // MARK: - AMQP with SASL PLAIN

    static func sendOverAMQP(hubHost: String, deviceId: String, deviceKey: String, gateway: String, port: Int, trust: TLSConfiguration.TrustRoots) async throws {
        let client = try HubAMQPClient(configuration: HubAMQPConfiguration(
            hubHost: hubHost,                         // SASL PLAIN user: {deviceId}@sas.{hub short name}
            deviceId: deviceId,
            tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: deviceKey)),
            gatewayHostName: gateway, port: port, trustRoots: trust
        ))
        try await client.connect()
        var message = AMQPMessage(data: Array(#"{"temperature":21.5}"#.utf8))
        message.messageId = .string("reading-1")
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        message.applicationProperties = [("alert", .string("false"))]
        try await client.send(message)                // returns when the hub settles it as accepted
        await client.close()
    }

    static func gatewayForSeveralDevices(hubHost: String, keys: [String: String], gateway: String, port: Int, trust: TLSConfiguration.TrustRoots) async throws {
        let connection = HubAMQPGateway(configuration: .init(
            hubHost: hubHost, gatewayHostName: gateway, port: port, trustRoots: trust,
            tokenType: .azureDevices                 // or .serviceBus, as the C SDK sends
        ))
        try await connection.connect()               // SASL ANONYMOUS (or MSSBCBS), one TLS connection
        for (deviceId, key) in keys.sorted(by: { $0.key < $1.key }) {
            // Each device puts its own token on $cbs and gets its own links; tokens are renewed in the session.
            let device = try await connection.addDevice(deviceId: deviceId, tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: key)))
            try await device.send(AMQPMessage(data: Array("reading from \(deviceId)".utf8)))
        }
        await connection.close()
    }

    // MARK: - Bridge credentials

    static func bridgeCredentials(hubHost: String, deviceId: String, deviceKey: String) throws -> (username: String, password: String) {
        let identity = HubMQTTIdentity(hubHost: hubHost, deviceId: deviceId)
        let token = try SymmetricKeyCredential(key: try SymmetricKey(base64: deviceKey), timeToLive: 86_400 * 30)
            .issueToken(for: .device(hubHost: hubHost, deviceId: deviceId))
        // remote_username / remote_password of the mosquitto bridge:
        return (identity.username, token.token.secretValue)
    }

    // MARK: - Testing with the emulator

    static func testWithEmulator() async throws {
        let emulator = try await IoTEmulator.start()             // the documented default configuration
        let device = emulator.endpoints.devices[0]               // thermostat-1, with a random key
        let client = try HubMQTTClient(configuration: HubMQTTConfiguration(
            connectionString: try ConnectionString(parsing: device.connectionString),
            trustRoots: .pemFile(emulator.endpoints.caCertificatePath),
            port: emulator.endpoints.mqtt.port
        ))
        try await client.connect()

        // Make the hub withhold acknowledgements, then drop the connection: the client resends with DUP.
        await emulator.injectFaults { $0.withholdAcknowledgements = true }
        let sending = Task { try await client.send(TelemetryMessage(text: "survives a drop")) }
        _ = try await emulator.waitForTelemetry(deviceId: device.deviceId, count: 1)
        await emulator.injectFaults { $0.withholdAcknowledgements = false }
        await emulator.dropConnection(deviceId: device.deviceId)
        try await sending.value

        // Act as the service: a direct method and a desired-property patch.
        try await client.subscribe(to: [.methodRequests])
        let answering = Task {
            for await request in client.methodRequests {
                try await request.respond(status: 200, payload: Array(#"{"ok":true}"#.utf8))
                return
            }
        }
        let response = try await emulator.invokeMethod(deviceId: device.deviceId, name: "reset", timeout: .seconds(10))
        try await answering.value
        print("method answered \(response.status)")
        try await emulator.updateDesiredProperties(deviceId: device.deviceId, patch: .object(["targetTemperature": .number(23)]))

        await client.disconnect()
        await emulator.shutdown()
    }

    // MARK: - File upload

    static func uploadFile(connection: ConnectionString, trust: TLSConfiguration.TrustRoots, port: Int, path: String) async throws -> FileUploadResult {
        let uploader = try FileUploadClient(configuration: .init(connectionString: connection, trustRoots: trust, port: port))
        let result = try await uploader.upload(contentsOfFile: path, as: "logs/today.bin")
        print("uploaded \(result.byteCount) bytes in \(result.blockCount) blocks as \(result.blobName)")
        return result
    }

    // MARK: - IoT Plug and Play

    struct MaxMinReport: Codable, Sendable {
        var maxTemp: Double
        var minTemp: Double
        var startTime: String
    }

    static func plugAndPlay(connection: ConnectionString, trust: TLSConfiguration.TrustRoots, port: Int) async throws {
        var configuration = try DeviceClientConfiguration(connectionString: connection, trustRoots: trust, port: port)
        configuration.modelId = "dtmi:com:example:TemperatureController;2"
        let device = try DeviceClient(configuration: configuration)
        try await device.subscribe(to: [.methodRequests, .desiredPropertyPatches])
        try await device.connect()

        var reading = TelemetryMessage(text: #"{"temperature":21.5}"#, contentType: "application/json")
        reading.componentName = "thermostat1"
        try await device.send(reading)
        let maximum = PlugAndPlay.reportedProperties(["maxTempSinceLastReboot": 38.7], component: "thermostat1")
        _ = try await device.updateReportedProperties(maximum.jsonBytes)

        var commands = PlugAndPlayCommands()
        commands.register("getMaxMinReport", component: "thermostat1") { (since: String) in
            MaxMinReport(maxTemp: 38.7, minTemp: 18.2, startTime: since)
        }
        for await patch in device.desiredPropertyPatches {
            guard let version = patch.version,
                let target = PlugAndPlay.properties(of: try JSONValue(parsing: patch.json), component: "thermostat1")?["targetTemperature"]
            else { continue }
            let acknowledgement = PlugAndPlay.writablePropertyAcknowledgement(
                name: "targetTemperature", value: target, status: 200, version: version, description: "applied", component: "thermostat1")
            _ = try await device.updateReportedProperties(acknowledgement.jsonBytes)
            break
        }
        for await request in device.methodRequests {
            try await commands.respond(to: request)
            break
        }
        await device.disconnect()
    }

    // MARK: - IoT Edge modules

    static func edgeModule(variables: [String: String], port: Int) async throws {
        let environment = try EdgeEnvironment(variables: variables)        // EdgeEnvironment() inside a module
        var configuration = try await DeviceClientConfiguration.edgeModule(environment: environment)
        configuration.port = port                                          // omit on an Edge device
        let module = try DeviceClient(configuration: configuration)
        try await module.connect()
        try await module.subscribe(to: [.cloudToDeviceMessages])
        try await module.send(TelemetryMessage(body: Array("21.5".utf8), outputName: "temperature"))
        for await message in module.cloudToDeviceMessages where message.inputName == "commands" {
            print("on input commands:", String(decoding: message.body, as: UTF8.self))
            break
        }
        await module.disconnect()
    }

    // MARK: - A local hub for backends

    static func localHubForBackends(dataDirectory: String) async throws -> (service: String, events: String) {
        var configuration = EmulatorConfiguration.default
        configuration.dataDirectory = dataDirectory                    // state survives restarts
        let hub = try await IoTEmulator.start(configuration: configuration)
        let service = hub.endpoints.serviceConnectionString ?? ""      // iothubowner, for azure-iot-hub
        let events = hub.endpoints.eventHub.connectionString ?? ""     // for azure-eventhub
        await hub.shutdown()
        return (service, events)
    }

    // AzureIoTProxy.md
    static func configureProxy(connection: ConnectionString) throws -> HubMQTTConfiguration {
        var configuration = try HubMQTTConfiguration(connectionString: connection)
        configuration.connectionOpener = try ProxyConnectionOpener(url: "http://user:pass@proxy.corp:8080")
        return configuration
    }


    // MARK: - Connecting from behind a firewall

    static func behindAFirewall(proxy: String, dpsEndpoint: String, scope: String, groupKey: String, trust: TLSConfiguration.TrustRoots, gateway: String, port: Int?) async throws -> String {
        // DPS is HTTPS already: it only needs the proxy.
        var dps = ProvisioningClient.Configuration(endpoint: dpsEndpoint, idScope: scope, registrationId: "sensor-443",
                                                   attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey)), trustRoots: trust)
        dps.proxy = proxy                                   // http://user:pass@proxy:8888, socks5h://…
        let assignment = try await ProvisioningClient(configuration: dps).register()

        // The hub: MQTT in a WebSocket on port 443, through the same proxy.
        var configuration = try DeviceClientConfiguration(provisioned: assignment, transport: .mqttWebSockets, trustRoots: trust, port: port)
        configuration.gatewayHostName = gateway             // an IoT Edge gateway or the emulator; omit for IoT Hub
        configuration.connectionOpener = try ProxyConnectionOpener(url: proxy)   // or ProxyConnectionOpener.environment
        try await DeviceClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(text: #"{"through":"port 443"}"#))
        }
        return assignment.deviceId
    }


    // MARK: - README.md, "Using the library" (compiled, not run: it talks to Azure)

    static func readme(groupKey: String, header: String, expected: SASResource) async throws {
        // A device connection string; GatewayHostName moves only the TLS endpoint, never the token's resource.
        let connection = try ConnectionString(parsing: "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=…")
        let credential = connection.tokenSource()!                    // mints 1-hour tokens, renew at 80 %
        let issued = try credential.issueToken(for: connection.sasResource!)
        print(issued.token)                                            // sig=<redacted>; use issued.token.secretValue on the wire

        // DPS group enrollment: the derived device key and its registration token.
        let deviceKey = try SymmetricKey(base64: groupKey).derivedKey(forRegistrationId: "dev-001")
        let dps = SymmetricKeyCredential(key: deviceKey, keyName: "registration")
        let token = try dps.issueToken(for: .registration(idScope: "0ne00057505", registrationId: "dev-001"))

        // Servers and test harnesses: check a token (constant-time signature, expiry, resource).
        try SASToken(parsing: header).validate(with: deviceKey, now: UnixTime.now(), expectedResource: expected)

        // DPS: one call registers and waits for the assignment, honouring Retry-After.
        let client = try ProvisioningClient(configuration: .init(
            idScope: "0ne00057505", registrationId: "dev-001", attestation: .groupSymmetricKey(try SymmetricKey(base64: groupKey))))
        let result = try await client.register(payloadJSON: Data(#"{"model":"thermo"}"#.utf8))
        print(result.assignedHub, result.deviceId)

        // IoT Hub over MQTT, scoped: telemetry routed on its body, then method calls.
        try await HubMQTTClient.withConnection(configuration: try HubMQTTConfiguration(connectionString: result.connectionString!)) { hub in
            try await hub.send(TelemetryMessage(text: #"{"temp":21.5}"#, contentType: "application/json"))
            for await call in hub.methodRequests { try await call.respond(status: 200) }
        }

        // One device client over MQTT or AMQP: the transport is one value; every other line is the same for both.
        // (From DPS instead: DeviceClientConfiguration(provisioned: try await ProvisioningClient(configuration: dps).register(), transport: .amqp).)
        let settings = try DeviceClientConfiguration(connectionString: connection, transport: .amqp)
        let gateway = try DeviceClient(configuration: settings)
        try await gateway.subscribe(to: [.methodRequests, .desiredPropertyPatches])
        try await gateway.connect()
        try await gateway.send(TelemetryMessage(text: #"{"temp":21.5}"#, contentType: "application/json"))
        try await gateway.updateReportedProperties(Array(#"{"fw":"1.2"}"#.utf8))

        // A gateway that runs unattended: how it reconnects and when it stops, a deadline per send, and the events.
        var configuration = try HubMQTTConfiguration(connectionString: connection)
        configuration.retryPolicy = RetryPolicy(initialDelay: .seconds(2), maximumDelay: .seconds(120), maximumPermanentFailures: 5)
        let device = try HubMQTTClient(configuration: configuration)
        Task { for await event in device.connectionEvents where event.kind == .gaveUp { print("stopped: \(event.reason)") } }
        try await device.connect()
        try await device.send(TelemetryMessage(text: "{}"), timeout: .seconds(10))   // throws .timedOut without a PUBACK in time

        // TLS to an IoT Edge gateway with its root CA and an X.509 device identity.
        let identity = try X509Identity(certificateFile: "dev-chain.pem", privateKeyFile: "dev.key")
        let tls = try await TLSConnection.connect(
            host: connection.connectHost, port: 8883,
            configuration: TLSConfiguration(trustRoots: .pemFile("edge-root-ca.pem"), clientIdentity: identity))
        _ = (token, tls)
    }
}
