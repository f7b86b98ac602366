import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTesting
import Foundation
import HubMQTT
import Testing

/// The emulated hub's MQTT side against this SDK's client and a bare MQTT client.
@Suite("Emulator: IoT Hub over MQTT")
struct EmulatorMQTTTests {
    static func username(_ fixture: EmulatorFixture, _ clientId: String = "dev1") -> String {
        "\(fixture.hubHost)/\(clientId)/?api-version=2021-04-12"
    }

    @Test("telemetry is recorded with its decoded property bag, system properties typed")
    func telemetry() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        try await HubMQTTClient.withConnection(configuration: try fixture.mqtt().configuration) { client in
            var message = TelemetryMessage(text: #"{"t":1}"#, contentType: "application/json", contentEncoding: "utf-8")
            message.messageId = "m-1"
            message.correlationId = "c-1"
            message.properties = [("alert level", "high/critical"), ("empty", "")]
            try await client.send(message)
        }
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.transport == .mqtt)
        #expect(received.bodyText == #"{"t":1}"#)
        #expect(received.contentType == "application/json" && received.contentEncoding == "utf-8")
        #expect(received.messageId == "m-1" && received.correlationId == "c-1")
        #expect(received.properties == ["alert level": "high/critical", "empty": ""])
    }

    @Test("a module connects with its own key and its telemetry names the module")
    func module() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        try await HubMQTTClient.withConnection(
            configuration: try fixture.mqtt(module: "mod1", key: EmulatorFixture.moduleKey).configuration
        ) { client in
            try await client.send(TelemetryMessage(text: "from module"))
        }
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.moduleId == "mod1")
    }

    @Test("CONNACK 5 for a wrong key, an expired token, a wrong username and an unknown device")
    func refusals() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let ca = fixture.endpoints.caCertificatePath
        let port = fixture.endpoints.mqtt.port
        let wrongKey = try fixture.token(key: EmulatorFixture.groupKey)
        let expired = SASToken.generate(
            for: .device(hubHost: fixture.hubHost, deviceId: "dev1"),
            key: try SymmetricKey(base64: EmulatorFixture.deviceKey),
            expiry: UnixTime.now() - 10
        ).secretValue
        let cases: [(String, String, String)] = [
            ("dev1", Self.username(fixture), wrongKey),
            ("dev1", Self.username(fixture), expired),
            ("dev1", "test-hub.azure-devices.net/dev1", try fixture.token()),
            ("dev1", "other-hub.azure-devices.net/dev1/?api-version=2021-04-12", try fixture.token()),
            ("ghost", Self.username(fixture, "ghost"), try fixture.token(device: "ghost")),
        ]
        for (clientId, username, password) in cases {
            var (client, connack) = try await RawMQTTClient.connect(
                port: port,
                caFile: ca,
                clientId: clientId,
                username: username,
                password: password
            )
            #expect(connack.returnCode == .notAuthorized, "\(username)")
            try await client.expectClosed(within: .seconds(5))
        }
        #expect(await fixture.emulator.isConnected(deviceId: "dev1") == false)
    }

    @Test("undocumented topics, QoS 2 and a sixth subscription disconnect; silence past 1.5 × keep-alive disconnects")
    func protocolRules() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let ca = fixture.endpoints.caCertificatePath
        let port = fixture.endpoints.mqtt.port
        let packets: [MQTTPacket] = [
            .publish(PublishPacket(topic: "devices/dev1/other", payload: [1], qos: .atMostOnce)),
            .publish(PublishPacket(topic: "devices/dev2/messages/events/", payload: [1], qos: .atMostOnce)),
            .publish(
                PublishPacket(topic: "devices/dev1/messages/events/", payload: [1], qos: .exactlyOnce, packetId: 1)
            ),
            .subscribe(
                SubscribePacket(packetId: 1, subscriptions: [.init(topicFilter: "devices/#", qos: .atLeastOnce)])
            ),
        ]
        for packet in packets {
            var (client, connack) = try await RawMQTTClient.connect(
                port: port,
                caFile: ca,
                clientId: "dev1",
                username: Self.username(fixture),
                password: try fixture.token()
            )
            #expect(connack.returnCode == .accepted)
            try await client.send(packet)
            try await client.expectClosed(within: .seconds(5))
        }
        #expect(await fixture.emulator.telemetry().isEmpty)

        // The clock starts before CONNECT goes out, so the emulator's 1.5 s of silence start after it.
        let clock = ContinuousClock()
        let start = clock.now
        var (quiet, _) = try await RawMQTTClient.connect(
            port: port,
            caFile: ca,
            clientId: "dev1",
            username: Self.username(fixture),
            password: try fixture.token(),
            keepAlive: 1
        )
        try await quiet.expectClosed(within: .seconds(10))
        let waited = clock.now - start
        #expect(waited >= .milliseconds(1500) && waited < .seconds(10), "closed after \(waited)")
    }

    @Test("C2D: delivered with $.mid and $.to, completed by PUBACK; queued while offline")
    func cloudToDevice() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let queued = try await fixture.emulator.sendCloudToDevice(
            deviceId: "dev1",
            body: Array("while offline".utf8),
            properties: ["k": "v w"]
        )
        let client = try fixture.mqtt()
        try await client.connect()
        var iterator = client.cloudToDeviceMessages.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(String(decoding: first.body, as: UTF8.self) == "while offline")
        #expect(first.messageId == queued && first.to == "/devices/dev1/messages/deviceBound")
        #expect(first.property("k") == "v w")
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: queued, state: .completed)
        let online = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("online".utf8))
        #expect(await iterator.next().map { String(decoding: $0.body, as: UTF8.self) } == "online")
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: online, state: .completed)
        await client.disconnect()
    }

    @Test("twin: GET, reported PATCH with versions, desired patches pushed with $version")
    func twin() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.mqtt()
        try await client.connect()
        let twin = try await client.twin()
        #expect(twin.desiredVersion == 1 && twin.reportedVersion == 1)
        #expect(String(decoding: twin.json, as: UTF8.self).contains(#""interval":10"#))
        #expect(try await client.updateReportedProperties(Array(#"{"fw":"1.2"}"#.utf8)) == 2)
        #expect(try await client.updateReportedProperties(Array(#"{"fw":null,"battery":90}"#.utf8)) == 3)
        #expect(try await fixture.emulator.twin(deviceId: "dev1").reported == .object(["battery": .number(90)]))

        try await client.subscribe(to: [.desiredPropertyPatches])
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        #expect(
            try await fixture.emulator.updateDesiredProperties(
                deviceId: "dev1",
                patch: .object(["interval": .number(30)])
            ) == 2
        )
        let patch = try #require(await patches.next())
        #expect(patch.version == 2)
        #expect((try? JSONValue(parsing: patch.json)) == .object(["interval": .number(30), "$version": .number(2)]))
        await client.disconnect()
    }

    @Test("direct methods: the device's status and payload come back; an unanswered call times out; offline is refused")
    func methods() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let offline = await #expect(throws: EmulatorError.self) {
            _ = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "reboot")
        }
        #expect(offline?.code == .deviceNotConnected)
        let client = try fixture.mqtt()
        try await client.connect()
        try await client.subscribe(to: [.methodRequests])
        let responder = Task {
            var answered = 0
            for await request in client.methodRequests {
                if request.name == "ignore" { continue }
                try await request.respond(status: 201, payload: request.payload)
                answered += 1
                if answered == 1 { return }
            }
        }
        let response = try await fixture.emulator.invokeMethod(
            deviceId: "dev1",
            name: "echo",
            payload: .object(["x": .number(1)])
        )
        #expect(response.status == 201 && (try? JSONValue(parsing: response.payload)) == .object(["x": .number(1)]))
        try await responder.value
        let late = await #expect(throws: EmulatorError.self) {
            _ = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "ignore", timeout: .milliseconds(300))
        }
        #expect(late?.code == .timedOut)
        await client.disconnect()
    }

    @Test("faults: withheld PUBACKs are resent with DUP after a drop and nothing is lost; refused connects are retried")
    func faults() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.mqtt()
        try await client.connect()
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let sends = Task {
            for index in 0..<5 { try await client.send(TelemetryMessage(text: "m\(index)")) }
        }
        _ = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 1)
        await fixture.emulator.injectFaults {
            $0.withholdAcknowledgements = false
            $0.refuseConnections = 2
        }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        try await sends.value
        let bodies = Set(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText))
        #expect(bodies == Set((0..<5).map { "m\($0)" }))
        #expect(await fixture.emulator.faults().refuseConnections == 0)
        await client.disconnect()
    }

    @Test("one connection per device: a second one closes the first; expired tokens disconnect and are refused")
    func connectionRules() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let ca = fixture.endpoints.caCertificatePath
        let port = fixture.endpoints.mqtt.port
        let token = try fixture.token()
        var (first, _) = try await RawMQTTClient.connect(
            port: port,
            caFile: ca,
            clientId: "dev1",
            username: Self.username(fixture),
            password: token
        )
        var (second, connack) = try await RawMQTTClient.connect(
            port: port,
            caFile: ca,
            clientId: "dev1",
            username: Self.username(fixture),
            password: token
        )
        #expect(connack.returnCode == .accepted)
        try await first.expectClosed(within: .seconds(5))
        await fixture.emulator.expireTokens(deviceId: "dev1")
        try await second.expectClosed(within: .seconds(5))
        let (_, again) = try await RawMQTTClient.connect(
            port: port,
            caFile: ca,
            clientId: "dev1",
            username: Self.username(fixture),
            password: token
        )
        #expect(again.returnCode == .notAuthorized)
        // A token that lapses while connected closes the connection (6 s: a loaded machine may take seconds to connect).
        let short = try fixture.token(lifetime: 6)
        var (brief, accepted) = try await RawMQTTClient.connect(
            port: port,
            caFile: ca,
            clientId: "dev1",
            username: Self.username(fixture),
            password: short
        )
        #expect(accepted.returnCode == .accepted)
        try await brief.expectClosed(within: .seconds(15))
    }

    @Test("X.509 hub devices: by thumbprint, and CA-signed with CN = device id; other certificates get CONNACK 5")
    func x509Devices() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        func configuration(_ device: String, _ identity: X509Identity) -> HubMQTTConfiguration {
            fixture.x509Configuration(device, identity)
        }
        try await HubMQTTClient.withConnection(
            configuration: configuration("x509-device", fixture.thumbprintDevice.identity)
        ) { client in
            try await client.send(TelemetryMessage(text: "by thumbprint"))
        }
        let signed = try fixture.deviceIntermediate.issue(commonName: "ca-device")
        try await HubMQTTClient.withConnection(configuration: configuration("ca-device", signed.identity)) { client in
            try await client.send(TelemetryMessage(text: "ca-signed"))
        }
        #expect(
            try await fixture.emulator.waitForTelemetry(count: 2).map(\.bodyText) == ["by thumbprint", "ca-signed"]
        )
        let wrongName = try fixture.deviceIntermediate.issue(commonName: "someone-else")
        let error = await #expect(throws: HubMQTTError.self) {
            try await HubMQTTClient.withConnection(configuration: configuration("ca-device", wrongName.identity)) { _ in
            }
        }
        #expect(error?.code == .retriesExhausted && error?.status == 5 && error?.message.contains("(5)") == true)
        #expect((error?.underlying as? HubMQTTError)?.code == .connectionRefused)
    }

    @Test("fault: a delayed PUBACK makes send wait that long")
    func delayedAcknowledgement() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        try await HubMQTTClient.withConnection(configuration: try fixture.mqtt().configuration) { client in
            await fixture.emulator.injectFaults { $0.acknowledgementDelay = .milliseconds(400) }
            let clock = ContinuousClock()
            let start = clock.now
            try await client.send(TelemetryMessage(text: "slow"))
            #expect(clock.now - start >= .milliseconds(400))
        }
    }
}
