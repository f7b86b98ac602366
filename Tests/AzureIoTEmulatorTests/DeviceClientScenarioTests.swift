import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTTestSupport
import DPSClient
import Foundation
import InMemoryTracing
import MetricsTestKit
import Synchronization
import Testing
import Tracing

/// One scenario suite through the transport-neutral `DeviceClient`, run over MQTT and over AMQP against the emulator:
/// the same calls, the same messages, the same errors; only `configuration.transport` differs.
@Suite("DeviceClient: the same scenarios over MQTT and AMQP")
struct DeviceClientScenarioTests {
    static func configuration(
        _ fixture: EmulatorFixture,
        _ transport: DeviceClientConfiguration.Transport,
        key: String = EmulatorFixture.deviceKey
    ) throws -> DeviceClientConfiguration {
        try fixture.endpoints.deviceConfiguration("dev1", key: key, transport: transport)
    }

    @Test("telemetry with every property arrives the same way", arguments: DeviceClientConfiguration.Transport.allCases)
    func telemetry(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        try await DeviceClient.withConnection(configuration: try Self.configuration(fixture, transport)) { client in
            var message = TelemetryMessage(text: #"{"t":21.5}"#, contentType: "application/json")
            message.messageId = "m-1"
            message.correlationId = "c-1"
            message.userId = "dev1"
            message.creationTime = "2026-12-01T10:00:00.000Z"
            message.componentName = "thermostat1"
            message.properties = [("alert", "true"), ("zone", "b c")]
            message.expire(after: .seconds(300))
            try await client.send(message)
        }
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.transport == (transport.isMQTT ? .mqtt : .amqp))
        #expect(received.overWebSockets == transport.usesWebSockets)
        #expect(received.bodyText == #"{"t":21.5}"#)
        #expect(received.contentType == "application/json" && received.contentEncoding == "utf-8")
        #expect(received.messageId == "m-1" && received.correlationId == "c-1" && received.userId == "dev1")
        #expect(received.properties == ["alert": "true", "zone": "b c"])
        #expect(received.systemProperties["sub"] == "thermostat1")
        #expect(received.systemProperties["ctime"]?.hasPrefix("2026-12-01T10:00:00") == true)
        #expect(received.systemProperties["exp"] != nil)
    }

    @Test(
        "cloud-to-device: the same message fields; complete everywhere, reject and abandon where AMQP has them",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func cloudToDevice(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try DeviceClient(configuration: try Self.configuration(fixture, transport))
        try await client.subscribe(to: [.cloudToDeviceMessages])
        try await client.connect()
        var messages = client.cloudToDeviceMessages.makeAsyncIterator()
        let first = try await fixture.emulator.sendCloudToDevice(
            deviceId: "dev1",
            body: Array("switch on".utf8),
            properties: ["zone": "b"]
        )
        let message = try #require(await messages.next())
        #expect(String(decoding: message.body, as: UTF8.self) == "switch on")
        #expect(message.messageId == first && message.property("zone") == "b")
        #expect(message.to == "/devices/dev1/messages/deviceBound")
        #expect(message.canRejectOrAbandon == !transport.isMQTT)
        try await message.complete()
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: first, state: .completed)
        if !transport.isMQTT {
            let second = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("bad".utf8))
            try await #require(await messages.next()).reject()
            _ = try await fixture.emulator.waitForCloudToDevice(messageId: second, state: .rejected)
        } else {
            await #expect(throws: DeviceClientError.self) { try await message.reject() }
        }
        await client.disconnect()
    }

    @Test("twin and direct methods through the same calls", arguments: DeviceClientConfiguration.Transport.allCases)
    func twinAndMethods(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try DeviceClient(configuration: try Self.configuration(fixture, transport))
        try await client.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        try await client.connect()
        let twin = try await client.twin()
        #expect(twin.desiredVersion == 1 && twin.reportedVersion == 1)
        #expect(try await client.updateReportedProperties(Array(#"{"fw":"2.0"}"#.utf8)) == 2)
        #expect(try await fixture.emulator.twin(deviceId: "dev1").reported == .object(["fw": .string("2.0")]))
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        try await fixture.emulator.updateDesiredProperties(deviceId: "dev1", patch: .object(["rate": .number(5)]))
        let patch = try #require(await patches.next())
        #expect(patch.version == 2)
        #expect((try? JSONValue(parsing: patch.json))?["rate"] == .number(5))
        let responder = Task {
            for await request in client.methodRequests {
                try await request.respond(status: 200, payload: request.payload)
                return request.name
            }
            return ""
        }
        let response = try await fixture.emulator.invokeMethod(
            deviceId: "dev1",
            name: "reboot",
            payload: .object(["in": .number(3)]),
            timeout: .seconds(30)
        )
        #expect(response.status == 200)
        #expect((try? JSONValue(parsing: response.payload)) == .object(["in": .number(3)]))
        #expect(try await responder.value == "reboot")
        await client.disconnect()
    }

    @Test(
        "a dropped connection: events say so, the client reconnects, and telemetry sent meanwhile arrives",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func reconnect(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try DeviceClient(configuration: try Self.configuration(fixture, transport))
        let kinds = Mutex<[ConnectionEvent.Kind]>([])
        let watcher = Task { for await event in client.connectionEvents { kinds.withLock { $0.append(event.kind) } } }
        try await client.connect()
        try await client.send(TelemetryMessage(text: "before"))
        await fixture.emulator.dropConnection(deviceId: "dev1")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask { try await client.send(TelemetryMessage(text: "after-\(index)")) }
            }
            try await group.waitForAll()
        }
        let received = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 21).map(\.bodyText)
        #expect(Set(received).isSuperset(of: ["before"] + (0..<20).map { "after-\($0)" }))
        try await eventually("connected again") {
            kinds.withLock { $0.filter { $0 == .connected }.count } >= 2
        }
        await client.disconnect()
        await watcher.value
        let seen = kinds.withLock { $0 }
        #expect(seen.first == .connected && seen.contains(.disconnected), "\(seen)")
        await #expect(throws: DeviceClientError.self) { try await client.send(TelemetryMessage(text: "late")) }
    }

    @Test(
        "errors you can switch on: a wrong key and a call after disconnect give the same codes on both transports",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func errors(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = try Self.configuration(fixture, transport, key: EmulatorFixture.secondDeviceKey)
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(20),
            maximumDelay: .milliseconds(50),
            maximumPermanentFailures: 2
        )
        let wrong = try DeviceClient(configuration: configuration)
        let refused = await #expect(throws: DeviceClientError.self) { try await wrong.connect() }
        #expect(refused?.code == .retriesExhausted, "\(String(describing: refused))")
        #expect(refused?.isTransient == false)
        let client = try DeviceClient(configuration: try Self.configuration(fixture, transport))
        try await client.connect()
        await client.disconnect()
        let after = await #expect(throws: DeviceClientError.self) { try await client.twin() }
        #expect(after?.code == .shutDown, "\(String(describing: after))")
        let tooLarge = await #expect(throws: DeviceClientError.self) {
            let fresh = try DeviceClient(configuration: try Self.configuration(fixture, transport))
            try await fresh.send(TelemetryMessage(body: [UInt8](repeating: 1, count: 300 * 1024)))
        }
        #expect(tooLarge?.code == .messageTooLarge)
    }
}

/// swift-metrics and swift-distributed-tracing through the device client, with an in-memory backend of each
/// (passed to the client, so nothing is bootstrapped for the process).
@Suite("DeviceClient: metrics and spans")
struct DeviceClientObservabilityTests {
    @Test(
        "counters, the send timer and connection events per transport; connect, send and method spans; the send's trace context reaches the hub as application properties",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func observability(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let metrics = TestMetrics()
        let tracer = InMemoryTracer()
        let client = try DeviceClient(
            configuration: try DeviceClientScenarioTests.configuration(fixture, transport),
            tracer: tracer,
            metrics: metrics
        )
        try await client.subscribe(to: [.methodRequests])
        try await client.connect()
        try await client.send(TelemetryMessage(text: "traced"))
        let responder = Task {
            for await request in client.methodRequests {
                try await request.respond(status: 200)
                return
            }
        }
        _ = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "ping", timeout: .seconds(30))
        try await responder.value
        await client.disconnect()
        await #expect(throws: DeviceClientError.self) { try await client.send(TelemetryMessage(text: "late")) }

        let dimensions = [("transport", transport.rawValue)]
        #expect(try metrics.expectCounter("azure_iot_device_messages_sent_total", dimensions).totalValue == 2)
        #expect(try metrics.expectCounter("azure_iot_device_messages_acknowledged_total", dimensions).totalValue == 1)
        #expect(
            try metrics.expectCounter(
                "azure_iot_device_messages_failed_total",
                dimensions + [("reason", "shutDown")]
            ).totalValue == 1
        )
        #expect(try metrics.expectTimer("azure_iot_device_send_duration", dimensions).values.count == 1)
        #expect(try metrics.expectGauge("azure_iot_device_sends_in_progress", dimensions).lastValue == 0)
        #expect(
            try metrics.expectCounter(
                "azure_iot_device_connection_events_total",
                dimensions + [("kind", "connected")]
            ).totalValue == 1
        )

        let spans = tracer.finishedSpans
        let send = try #require(spans.first { $0.operationName == "azure_iot.send" })
        #expect(send.kind == .producer && send.errors.isEmpty)
        #expect(spans.contains { $0.operationName == "azure_iot.connect" && $0.kind == .client })
        let method = try #require(spans.first { $0.operationName == "azure_iot.method" })
        #expect(method.kind == .server)
        #expect(spans.filter { $0.operationName == "azure_iot.send" }.count == 2)
        #expect(spans.last { $0.operationName == "azure_iot.send" }?.errors.isEmpty == false, "the failed send")

        // The context the tracer injected travelled as application properties to the hub.
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.properties[InMemoryTracer.traceIDKey] == send.traceID)
        #expect(received.properties[InMemoryTracer.spanIDKey] == send.spanID)
    }

    @Test(
        "provisioned through DPS in an azure_iot.provision span, then connected from the assignment; a wrong key's span records the failure",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func provisioned(_ transport: DeviceClientConfiguration.Transport) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let tracer = InMemoryTracer()
        var dps = ProvisioningClient.Configuration(
            endpoint: "127.0.0.1:\(fixture.endpoints.dps.port)",
            idScope: fixture.endpoints.idScope,
            registrationId: "neutral-\(transport.rawValue)",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
            trustRoots: fixture.trust,
            defaultPollInterval: .milliseconds(200)
        )
        let result = try await ProvisioningClient(configuration: dps, tracer: tracer).register(timeout: .seconds(60))
        #expect(result.assignedHub == fixture.hubHost && result.deviceId == "neutral-\(transport.rawValue)")
        var configuration = try DeviceClientConfiguration(
            provisioned: result,
            transport: transport,
            trustRoots: fixture.trust,
            port: fixture.endpoints.port(for: transport)
        )
        configuration.gatewayHostName = "localhost"
        try await DeviceClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(text: "provisioned"))
        }
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: result.deviceId).first)
        #expect(received.bodyText == "provisioned")
        let span = try #require(tracer.finishedSpans.first { $0.operationName == "azure_iot.provision" })
        #expect(span.kind == .client && span.errors.isEmpty)
        #expect(
            span.attributes["azure_iot.registration_id"]?.toSpanAttribute() == .string("neutral-\(transport.rawValue)")
        )
        #expect(span.attributes["azure_iot.assigned_hub"]?.toSpanAttribute() == .string(fixture.hubHost))

        // A key DPS does not know: DPS's typed error, recorded on the span.
        dps.attestation = .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.deviceKey))
        do {
            _ = try await ProvisioningClient(configuration: dps, tracer: tracer).register(timeout: .seconds(60))
            Issue.record("a wrong group key was accepted")
        } catch let error as ProvisioningError {
            #expect(error.code == .unauthorized, "\(error)")
        }
        #expect(tracer.finishedSpans.filter { $0.operationName == "azure_iot.provision" }.last?.errors.count == 1)

    }
}

extension EmulatorEndpoints {
    /// The emulator's port for `transport`: MQTT, AMQP, or the WebSocket port that serves both.
    func port(for transport: DeviceClientConfiguration.Transport) -> Int {
        switch transport {
        case .mqtt: self.mqtt.port
        case .amqp: self.amqp.port
        case .mqttWebSockets, .amqpWebSockets: self.webSockets.port
        }
    }

    /// A device client configuration for `deviceId` with `key` over `transport`, through `GatewayHostName=localhost`
    /// and the emulator's CA, with the suite's 30 s operation time-out and a fast retry policy.
    func deviceConfiguration(
        _ deviceId: String,
        key: String,
        transport: DeviceClientConfiguration.Transport = .mqtt
    ) throws -> DeviceClientConfiguration {
        let connectionString = try ConnectionString(
            parsing: "HostName=\(self.hubHost);DeviceId=\(deviceId);SharedAccessKey=\(key);GatewayHostName=localhost"
        )
        var configuration = try DeviceClientConfiguration(
            connectionString: connectionString,
            transport: transport,
            trustRoots: .pemFile(self.caCertificatePath),
            port: self.port(for: transport)
        )
        configuration.operationTimeout = .seconds(30)
        configuration.retryPolicy = RetryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200))
        return configuration
    }
}
