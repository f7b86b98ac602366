import AzureIoTTestSupport
import Foundation
import Testing

/// `azure-iot service` against `azure-iot emulator`, both as users run them, with the service connection string the
/// emulator printed.
@Suite("azure-iot service")
struct ServiceCommandTests {
    @Test(
        "create, list, patch desired, show, query, invoke (offline: exit 6), delete; the created device sends with its key; wrong keys and device strings are refused"
    )
    func lifecycle() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("azure-iot")
        let emulator = try await PeerProcess(binary.path, ["emulator"], readyMarker: "}\n", timeout: .seconds(60))
        defer {
            emulator.interrupt()
            if emulator.waitForExit() == nil { emulator.stop() }
        }
        let text = try #require(emulator.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let owner = try #require(json["serviceConnectionString"] as? String)
        let ca = try #require(json["caCertificatePath"] as? String)
        let hubHost = try #require(json["hubHost"] as? String)
        let mqtt = try #require((json["mqtt"] as? [String: Any])?["port"] as? Int)
        let common = ["--connection-string", owner, "--ca-file", ca]
        func service(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await CLITests.run(["service", arguments[0]] + common + arguments.dropFirst())
        }

        let created = try await service(["create-device", "cli-device"])
        #expect(created.status == 0, "\(created.stderr)")
        let device = try #require(
            try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any]
        )
        let key = try #require(
            ((device["authentication"] as? [String: Any])?["symmetricKey"] as? [String: Any])?["primaryKey"] as? String
        )
        let listed = try await service(["list-devices"])
        #expect(listed.stdout.split(separator: "\n").contains("cli-device"), "\(listed.stdout)")
        let patched = try await service(["update-desired", "cli-device", #"{"rate":3}"#])
        #expect(patched.status == 0 && patched.stdout.contains(#""rate":3"#), "\(patched.stderr)")
        let twin = try await service(["show-twin", "cli-device"])
        #expect(twin.stdout.contains(#""$version":2"#), "\(twin.stdout)")
        let query = try await service(["query", "SELECT * FROM devices WHERE properties.desired.rate = 3"])
        #expect(query.stdout.split(separator: "\n").count == 1 && query.stdout.contains(#""deviceId":"cli-device""#))
        let offline = try await service(["invoke", "cli-device", "reboot", "--payload", #"{"delay":1}"#])
        #expect(offline.status == 6 && offline.stderr.contains("404 (DeviceNotOnline)"), "\(offline.stderr)")

        // The device the service made connects with its key.
        let sent = try await CLITests.run([
            "send", "--connection-string",
            "HostName=\(hubHost);DeviceId=cli-device;SharedAccessKey=\(key);GatewayHostName=localhost", "--ca-file",
            ca, "--port", String(mqtt), "made by the service command",
        ])
        #expect(sent.status == 0, "\(sent.stderr)")

        let deleted = try await service(["delete-device", "cli-device"])
        #expect(deleted.status == 0 && deleted.stdout == "deleted cli-device\n")
        let gone = try await service(["get-device", "cli-device"])
        #expect(gone.status == 6 && gone.stderr.contains("404 (DeviceNotFound)"), "\(gone.stderr)")

        // Refusals: a wrong key (401), a device connection string, bad arguments; none prints a key.
        let wrong = owner.replacingOccurrences(
            of: #"SharedAccessKey=[^;]*"#,
            with: "SharedAccessKey=AAAA",
            options: .regularExpression
        )
        let unauthorized = try await CLITests.run([
            "service", "list-devices", "--connection-string", wrong, "--ca-file", ca,
        ])
        #expect(unauthorized.status == 6 && unauthorized.stderr.contains("401"), "\(unauthorized.stderr)")
        #expect(!unauthorized.stderr.contains("SharedAccessSignature"))
        let deviceString = try await CLITests.run([
            "service", "list-devices", "--connection-string",
            "HostName=\(hubHost);DeviceId=cli-device;SharedAccessKey=\(key)", "--ca-file", ca,
        ])
        #expect(deviceString.status != 0 && deviceString.stderr.contains("service connection string"))
        #expect(!deviceString.stderr.contains(key))
        let badPatch = try await service(["update-desired", "x", "[1]"])
        #expect(badPatch.status != 0 && badPatch.stderr.contains("JSON object"))
        let badTimeout = try await service(["invoke", "x", "m", "--response-timeout", "1"])
        #expect(badTimeout.status != 0)
    }
}
