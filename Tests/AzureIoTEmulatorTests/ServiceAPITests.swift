import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import Synchronization
import Testing

/// The emulator's service REST API: Azure's own Python service SDK (`azure-iot-hub` 2.7.0) drives the registry,
/// twins and direct methods with the connection string the emulator prints, against devices connected with this
/// SDK; curl sends it what no SDK would.
@Suite("Emulator: service REST API")
struct ServiceAPITests {
    static let createdKey = "c2VydmljZS1jcmVhdGVkLWRldmljZS1rZXktMDAwMDA="

    static func owner(_ fixture: EmulatorFixture) throws -> String {
        try #require(fixture.endpoints.serviceConnectionString)
    }

    static func policy(_ fixture: EmulatorFixture, _ name: String) throws -> EmulatorEndpoints.PolicyCredentials {
        try #require(fixture.endpoints.sharedAccessPolicies.first { $0.keyName == name })
    }

    static func deviceClient(_ fixture: EmulatorFixture, _ deviceId: String, key: String) throws -> DeviceClient {
        let connectionString = try ConnectionString(
            parsing: "HostName=\(fixture.hubHost);DeviceId=\(deviceId);SharedAccessKey=\(key);GatewayHostName=localhost"
        )
        var configuration = try DeviceClientConfiguration(
            connectionString: connectionString,
            transport: .mqtt,
            trustRoots: fixture.trust,
            port: fixture.endpoints.mqtt.port
        )
        configuration.operationTimeout = .seconds(30)
        configuration.retryPolicy = RetryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200))
        return try DeviceClient(configuration: configuration)
    }

    static func python(_ arguments: [String]) async throws -> String {
        let result = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [PeerProcess.peerScript("fidelity/azure_service_sdk.py")] + arguments,
            timeout: .seconds(120)
        )
        #expect(result.status == 0, "\(result.output)")
        return result.output
    }

    /// The value printed after `step:` in the script's output.
    static func line(_ output: String, _ step: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("\(step): ") }.map { String($0.dropFirst(step.count + 2)) }
    }

    @Test(
        "azure-iot-hub creates a device and a module, patches a twin a connected device sees, calls its method, queries, disables and deletes; a read-only policy and a wrong key get 401"
    )
    func pythonServiceSDK() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let owner = try Self.owner(fixture)
        #expect(
            owner.hasPrefix("HostName=localhost:\(fixture.endpoints.service.port);SharedAccessKeyName=iothubowner;")
        )

        // dev1 (this SDK, MQTT) takes desired patches and answers "reboot" with what it got plus a field.
        let device = try Self.deviceClient(fixture, "dev1", key: EmulatorFixture.deviceKey)
        try await device.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        try await device.connect()
        let responder = Task {
            for await request in device.methodRequests {
                var answer = (try? JSONValue(parsing: request.payload))?.objectValue ?? [:]
                answer["done"] = .bool(true)
                try await request.respond(status: 200, payload: JSONValue.object(answer).jsonBytes)
                return request.name
            }
            return ""
        }
        var patches = device.desiredPropertyPatches.makeAsyncIterator()

        let created = try await Self.python([
            owner, fixture.endpoints.caCertificatePath, "create", "svc-new", Self.createdKey,
        ])
        #expect(Self.line(created, "created") == "svc-new sas enabled", "\(created)")
        #expect(Self.line(created, "module") == "m1 True", "\(created)")
        #expect(Self.line(created, "duplicate") == "409", "\(created)")

        // The device the service created connects with its key and sends.
        let newcomer = try Self.deviceClient(fixture, "svc-new", key: Self.createdKey)
        try await newcomer.connect()
        try await newcomer.send(TelemetryMessage(text: "hello from a registered device"))
        await newcomer.disconnect()
        let arrived = try await fixture.emulator.waitForTelemetry(deviceId: "svc-new")
        #expect(arrived.first?.bodyText == "hello from a registered device")
        try await fixture.emulator.waitUntilDisconnected(deviceId: "svc-new")

        let readOnly = try Self.policy(fixture, "registryRead").connectionString
        let output = try await Self.python([
            owner, fixture.endpoints.caCertificatePath, "scenario", "dev1", "svc-new", readOnly,
        ])
        #expect(output.contains("\ndone"), "\(output)")
        #expect(Self.line(output, "get")?.hasPrefix("svc-new enabled Disconnected ") == true, "\(output)")
        #expect(Self.line(output, "modules") == "m1", "\(output)")
        #expect(Self.line(output, "twin") == "dev1 1 Connected", "\(output)")
        #expect(Self.line(output, "twin-updated") == "2 25 43", "\(output)")
        #expect(Self.line(output, "stale-etag") == "412", "\(output)")
        #expect(Self.line(output, "method") == "200 {'delay': 3, 'done': True}", "\(output)")
        #expect(Self.line(output, "offline") == "404", "\(output)")
        #expect(Self.line(output, "query") == "twin dev1", "\(output)")
        #expect(Self.line(output, "statistics") == "1 5", "\(output)")
        #expect(Self.line(output, "disabled") == "disabled", "\(output)")
        #expect(Self.line(output, "stale-device-etag") == "412", "\(output)")
        #expect(Self.line(output, "deleted") == "404", "\(output)")
        #expect(Self.line(output, "read-only-get") == "ok", "\(output)")
        #expect(Self.line(output, "read-only-create") == "401", "\(output)")
        #expect(Self.line(output, "wrong-key") == "401", "\(output)")

        // What dev1 saw: the desired patch from the service, and the method call.
        let patch = try #require(await patches.next())
        #expect(patch.version == 2)
        #expect((try? JSONValue(parsing: patch.json))?["targetTemperature"] == .number(25))
        let twin = try await fixture.emulator.twin(deviceId: "dev1")
        #expect(twin.desired["targetTemperature"] == .number(25))
        await device.disconnect()
        #expect(try await responder.value == "reboot")

        // The deleted device (and its module) can no longer connect.
        let gone = try Self.deviceClient(fixture, "svc-new", key: Self.createdKey)
        await #expect(throws: (any Error).self) { try await gone.connect(timeout: .seconds(10)) }
        await gone.disconnect()
    }
}
