import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTTestSupport
import DPSClient
import Foundation
import Synchronization
import Testing

/// `--data-dir`: the emulator keeps its registry, twins, registrations, pending cloud-to-device messages, retained
/// telemetry, generated keys and CA across restarts, and a process killed with SIGKILL loses nothing it acknowledged.
@Suite("Emulator: durable state")
struct DurableStateTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "emulator-data-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func device(_ endpoints: EmulatorEndpoints, _ deviceId: String, key: String) throws -> DeviceClient {
        try DeviceClient(configuration: try endpoints.deviceConfiguration(deviceId, key: key))
    }

    @Test(
        "a restart with the same data directory keeps identities made through the service API, twins, telemetry, registrations, queued cloud-to-device messages, generated keys and the CA"
    )
    func restart() async throws {
        var configuration = try await EmulatorFixture.configuration()
        configuration.dataDirectory = try Self.temporaryDirectory()
        for index in configuration.sharedAccessPolicies.indices {
            // Left to the emulator, so that the second start must reuse what the first one generated.
            configuration.sharedAccessPolicies[index].primaryKey = nil
            configuration.sharedAccessPolicies[index].secondaryKey = nil
        }
        let version = "?api-version=2021-04-12"

        let first = try await IoTEmulator.start(configuration: configuration)
        let created = try await ServiceAPITests.curl(first.endpoints, "PUT", "/devices/durable-1\(version)", body: "{}")
        #expect(created.status == 200)
        let patched = try await ServiceAPITests.curl(
            first.endpoints,
            "PATCH",
            "/twins/dev1\(version)",
            body: #"{"tags":{"site":"plant-4"},"properties":{"desired":{"rate":7}}}"#
        )
        #expect(patched.status == 200)
        try await DeviceClient.withConnection(
            configuration: try Self.device(first.endpoints, "dev1", key: EmulatorFixture.deviceKey).configuration
        ) { client in
            for index in 0..<3 { try await client.send(TelemetryMessage(text: "kept-\(index)")) }
            _ = try await client.updateReportedProperties(Array(#"{"firmware":"3.0"}"#.utf8))
        }
        let queued = try await first.sendCloudToDevice(deviceId: "dev2", body: Array("while you were away".utf8))
        let registration = try await ProvisioningClient(
            configuration: .init(
                endpoint: "127.0.0.1:\(first.endpoints.dps.port)",
                idScope: first.endpoints.idScope,
                registrationId: "individual-1",
                attestation: .symmetricKey(try SymmetricKey(base64: EmulatorFixture.individualKey)),
                trustRoots: .pemFile(first.endpoints.caCertificatePath),
                defaultPollInterval: .milliseconds(200)
            )
        ).register(timeout: .seconds(60))
        #expect(registration.deviceId == "provisioned-individual")
        let firstCA = try String(contentsOfFile: first.endpoints.caCertificatePath, encoding: .utf8)
        let firstOwner = first.endpoints.serviceConnectionString
        await first.shutdown()

        let second = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await second.shutdown() } }
        #expect(try String(contentsOfFile: second.endpoints.caCertificatePath, encoding: .utf8) == firstCA)
        #expect(
            second.endpoints.serviceConnectionString?.split(separator: ";").last
                == firstOwner?.split(separator: ";").last
        )
        let device = try await ServiceAPITests.curl(second.endpoints, "GET", "/devices/durable-1\(version)")
        #expect(device.status == 200 && device.body?["etag"] == created.body?["etag"])
        let twin = try await second.twin(deviceId: "dev1")
        #expect(twin.desired["rate"] == .number(7) && twin.reported["firmware"] == .string("3.0"))
        let twinAnswer = try await ServiceAPITests.curl(second.endpoints, "GET", "/twins/dev1\(version)")
        #expect(twinAnswer.body?["tags"]?["site"] == .string("plant-4"))
        #expect(await second.telemetry(deviceId: "dev1").map(\.bodyText) == ["kept-0", "kept-1", "kept-2"])
        #expect(await second.registrations().contains { $0.registrationId == "individual-1" })
        #expect(await second.cloudToDeviceMessages().contains { $0.messageId == queued && $0.state == .queued })

        // The queued message reaches its device now, and the device made through the API connects.
        let away = try Self.device(second.endpoints, "dev2", key: EmulatorFixture.secondDeviceKey)
        try await away.subscribe(to: [.cloudToDeviceMessages])
        try await away.connect()
        var messages = away.cloudToDeviceMessages.makeAsyncIterator()
        let message = try #require(await messages.next())
        #expect(message.messageId == queued && String(decoding: message.body, as: UTF8.self) == "while you were away")
        await away.disconnect()
        let key = try #require(device.body?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
        try await DeviceClient.withConnection(
            configuration: try Self.device(second.endpoints, "durable-1", key: key).configuration
        ) { client in
            try await client.send(TelemetryMessage(text: "after the restart"))
        }
    }

    @Test(
        "a data directory whose database file is not a database, or that cannot be created, is refused with startFailed"
    )
    func refusals() async throws {
        var configuration = EmulatorConfiguration.default
        let directory = try Self.temporaryDirectory()
        try Data("not a database".utf8).write(to: URL(fileURLWithPath: directory + "/emulator.sqlite3"))
        configuration.dataDirectory = directory
        await #expect(throws: EmulatorError.self) { _ = try await IoTEmulator.start(configuration: configuration) }
        configuration.dataDirectory = "/proc/not-writable/emulator"
        await #expect(throws: EmulatorError.self) { _ = try await IoTEmulator.start(configuration: configuration) }
    }

    @Test("kill -9 while a device sends: every acknowledged message is there after the restart")
    func killedWhileWriting() async throws {
        let directory = try Self.temporaryDirectory()
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("azure-iot")
        let process = try await PeerProcess(
            binary.path,
            ["emulator", "--data-dir", directory],
            readyMarker: "}\n",
            timeout: .seconds(60)
        )
        let text = try #require(process.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let endpoints = try JSONDecoder().decode(EmulatorEndpoints.self, from: Data(text.utf8))
        let credentials = try #require(endpoints.devices.first { $0.moduleId == nil })
        let key = try #require(credentials.primaryKey)
        var configuration = try Self.device(endpoints, credentials.deviceId, key: key).configuration
        configuration.operationTimeout = .seconds(5)
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(50),
            maximumDelay: .milliseconds(100),
            maximumAttempts: 2
        )
        let client = try DeviceClient(configuration: configuration)
        try await client.connect()
        // Eight senders at once: when the 200th acknowledgement arrives, the emulator is killed while the other
        // sends are on the wire or being written.
        let acknowledgements = Acknowledgements()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<8 {
                group.addTask {
                    for index in 0..<10_000 {
                        var message = TelemetryMessage(text: "message-\(sender)-\(index)")
                        message.messageId = "m-\(sender)-\(index)"
                        do {
                            try await client.send(message, timeout: .seconds(5))
                        } catch {
                            return
                        }
                        let count = acknowledgements.ids.withLock {
                            $0.append("m-\(sender)-\(index)")
                            return $0.count
                        }
                        if count == 200 { process.stop() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let acknowledged = acknowledgements.ids.withLock { $0 }
        await client.disconnect()
        #expect(acknowledged.count >= 200)

        var restart = EmulatorConfiguration.default
        restart.dataDirectory = directory
        let emulator = try await IoTEmulator.start(configuration: restart)
        defer { Task { await emulator.shutdown() } }
        let stored = Set(await emulator.telemetry(deviceId: credentials.deviceId).compactMap(\.messageId))
        let lost = acknowledged.filter { !stored.contains($0) }
        print("kill -9 while sending: \(acknowledged.count) acknowledged, \(stored.count) stored after the restart")
        #expect(lost.isEmpty, "acknowledged but not stored: \(lost.prefix(10))")
        // The keys generated by the killed process were kept too.
        #expect(emulator.endpoints.devices.first { $0.moduleId == nil }?.primaryKey == key)
    }
}

/// Message ids acknowledged by the emulator, from several senders.
final class Acknowledgements: Sendable {
    let ids = Mutex<[String]>([])
}
