import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import Testing

/// The emulator's Event Hub-compatible endpoint, read by Azure's own Python Event Hubs client (azure-eventhub, on
/// pyamqp) with the connection string the emulator prints, while this SDK (MQTT and AMQP) and Azure's Python device
/// SDK send.
@Suite("Emulator: Event Hub-compatible endpoint")
struct EventHubEndpointTests {
    struct Event: Equatable {
        var partition: String
        var sequenceNumber: Int64
        var offset: String
        var deviceId: String
        var moduleId: String
        var body: String
        var properties: String
    }

    /// azure_eventhub_consumer.py with `connectionString` dialled as printed (no custom endpoint address).
    static func consumeAsPrinted(
        _ connectionString: String,
        ca: String,
        count: Int,
        consumerGroup: String? = nil
    ) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["CONSUMER_GROUP"] = consumerGroup
        return try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/azure_eventhub_consumer.py"), connectionString, ca, "-", "-1",
                String(count),
            ],
            environment: environment,
            timeout: .seconds(90)
        )
    }

    static func consume(
        _ fixture: EmulatorFixture,
        start: String,
        count: Int,
        partition: String? = nil
    ) async throws -> (events: [Event], output: String) {
        let connectionString = try #require(fixture.endpoints.eventHub.connectionString)
        let result = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/azure_eventhub_consumer.py"), connectionString,
                fixture.endpoints.caCertificatePath, "sb://localhost:\(fixture.endpoints.amqp.port)", start,
                String(count),
            ] + (partition.map { [$0] } ?? []),
            timeout: .seconds(90)
        )
        #expect(result.status == 0, "\(result.output)")
        let events = result.output.split(separator: "\n").filter { $0.hasPrefix("event ") }.compactMap {
            line -> Event? in
            let fields = line.split(separator: " ", maxSplits: 7).map(String.init)
            guard fields.count == 8, let sequence = Int64(fields[2]) else { return nil }
            return Event(
                partition: fields[1],
                sequenceNumber: sequence,
                offset: fields[3],
                deviceId: fields[4],
                moduleId: fields[5],
                body: fields[6],
                properties: fields[7]
            )
        }
        return (events, result.output)
    }

    static func send(
        _ fixture: EmulatorFixture,
        _ deviceId: String,
        key: String,
        transport: DeviceClientConfiguration.Transport,
        _ texts: [String]
    ) async throws {
        let configuration = try fixture.endpoints.deviceConfiguration(deviceId, key: key, transport: transport)
        try await DeviceClient.withConnection(configuration: configuration) { client in
            for text in texts {
                var message = TelemetryMessage(text: text, contentType: "application/json")
                message.properties = [("source", transport.rawValue)]
                try await client.send(message)
            }
        }
    }

    @Test(
        "azure-eventhub reads telemetry of this SDK (MQTT, AMQP) and of azure-iot-device with device ids and properties: from the start, after an offset, after an enqueued time"
    )
    func consumer() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        #expect(fixture.endpoints.eventHub.name == "test-hub" && fixture.endpoints.eventHub.partitionCount == 4)
        try await Self.send(
            fixture,
            "dev1",
            key: EmulatorFixture.deviceKey,
            transport: .mqtt,
            [#"{"n":1}"#, #"{"n":2}"#]
        )
        try await Self.send(fixture, "dev2", key: EmulatorFixture.secondDeviceKey, transport: .amqp, [#"{"n":3}"#])
        let python = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/azure_device_send.py"),
                "HostName=\(fixture.hubHost);DeviceId=dev2;SharedAccessKey=\(EmulatorFixture.secondDeviceKey);GatewayHostName=localhost",
                fixture.endpoints.caCertificatePath, String(fixture.endpoints.webSockets.port), #"{"n":4}"#,
            ],
            timeout: .seconds(60)
        )
        #expect(python.status == 0, "\(python.output)")
        _ = try await fixture.emulator.waitForTelemetry(count: 4)

        let (all, output) = try await Self.consume(fixture, start: "-1", count: 4)
        #expect(output.contains("partitions 0,1,2,3"), "\(output)")
        #expect(all.count == 4, "\(output)")
        let byBody = Dictionary(all.map { ($0.body, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byBody[#"{"n":1}"#]?.deviceId == "dev1" && byBody[#"{"n":1}"#]?.properties == #"{"source": "mqtt"}"#)
        #expect(byBody[#"{"n":2}"#]?.deviceId == "dev1" && byBody[#"{"n":2}"#]?.moduleId == "-")
        #expect(byBody[#"{"n":3}"#]?.deviceId == "dev2" && byBody[#"{"n":3}"#]?.properties == #"{"source": "amqp"}"#)
        #expect(
            byBody[#"{"n":4}"#]?.deviceId == "dev2"
                && byBody[#"{"n":4}"#]?.properties == #"{"source": "azure-iot-device"}"#
        )
        // One device's messages stay in one partition, in order.
        let first = try #require(byBody[#"{"n":1}"#])
        let second = try #require(byBody[#"{"n":2}"#])
        #expect(first.partition == second.partition && second.sequenceNumber == first.sequenceNumber + 1)

        // After the first message's offset: only the second, in that partition.
        let (afterOffset, offsetOutput) = try await Self.consume(
            fixture,
            start: "offset:\(first.offset)",
            count: 1,
            partition: first.partition
        )
        #expect(afterOffset.map(\.body) == [#"{"n":2}"#], "\(offsetOutput)")
        // $management READ of that partition: what it holds.
        let inPartition = all.filter { $0.partition == first.partition }.map(\.sequenceNumber)
        #expect(
            offsetOutput.contains(
                "partition-properties \(first.partition) 0 \(inPartition.max() ?? -1) False"
            ),
            "\(offsetOutput)"
        )
        let (afterSequence, _) = try await Self.consume(
            fixture,
            start: "sequence:\(first.sequenceNumber)",
            count: 1,
            partition: first.partition
        )
        #expect(afterSequence.map(\.body) == [#"{"n":2}"#])

        // After an enqueued time: only what came later.
        // The cut is two whole milliseconds ahead (Python's float conversion may take one off): every earlier event
        // is before it. Once the clock has passed it, the next event is after it.
        let cut = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) + 2
        while Date().timeIntervalSince1970 * 1000 <= Double(cut) { await Task.yield() }
        try await Self.send(fixture, "dev1", key: EmulatorFixture.deviceKey, transport: .mqtt, [#"{"n":5}"#])
        let (late, lateOutput) = try await Self.consume(fixture, start: "time:\(cut)", count: 1)
        #expect(late.map(\.body) == [#"{"n":5}"#], "\(lateOutput)")
    }

    @Test(
        "the development mode (UseDevelopmentEmulator=true): azure-eventhub reads over plain AMQP with the printed string, in a consumer group of the configuration"
    )
    func developmentMode() async throws {
        var configuration = try await EmulatorFixture.configuration()
        let without = try await IoTEmulator.start(configuration: configuration)
        await without.shutdown()
        configuration.amqpPlainPort = 0
        configuration.eventHub.consumerGroups = ["analytics"]
        let emulator = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await emulator.shutdown() } }
        let endpoints = emulator.endpoints
        let plain = try #require(endpoints.amqpPlain)
        let development = try #require(endpoints.eventHub.developmentConnectionString)
        #expect(
            development.hasPrefix("Endpoint=sb://localhost:\(plain.port);")
                && development.hasSuffix("UseDevelopmentEmulator=true")
        )
        let device = try endpoints.deviceConfiguration("dev1", key: EmulatorFixture.deviceKey, transport: .amqp)
        try await DeviceClient.withConnection(configuration: device) { client in
            try await client.send(TelemetryMessage(text: "in the clear"))
        }
        let result = try await Self.consumeAsPrinted(
            development,
            ca: endpoints.caCertificatePath,
            count: 1,
            consumerGroup: "analytics"
        )
        #expect(result.status == 0 && result.output.contains(" dev1 - in the clear {}"), "\(result.output)")
        // Without the option there is no plain port.
        #expect(without.endpoints.amqpPlain == nil && without.endpoints.eventHub.developmentConnectionString == nil)
    }
}
