import AzureIoTTestSupport
import Foundation
import Testing

/// `azure-iot service` against `azure-iot emulator`, both as users run them, with the service connection string the
/// emulator printed.
@Suite("azure-iot service")
struct ServiceCommandTests {
    @Test(
        "create, list, patch desired, show, query, send-c2d, invoke (offline: exit 6, then answered), read-telemetry, upload, delete; the created device works with its key; wrong keys and device strings are refused"
    )
    func lifecycle() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("azure-iot")
        let emulator = try await PeerProcess(binary.path, ["emulator"], readyMarker: "}\n", timeout: .seconds(60))
        // Killed if the test ends early; an orderly shutdown (awaited, not blocking a thread) otherwise.
        defer { emulator.stop() }
        let text = try #require(emulator.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let owner = try #require(json["serviceConnectionString"] as? String)
        let ca = try #require(json["caCertificatePath"] as? String)
        let hubHost = try #require(json["hubHost"] as? String)
        let mqtt = try #require((json["mqtt"] as? [String: Any])?["port"] as? Int)
        let amqp = try #require((json["amqp"] as? [String: Any])?["port"] as? Int)
        let servicePort = try #require((json["service"] as? [String: Any])?["port"] as? Int)
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

        // A cloud-to-device message queued for it over AMQP; a device that does not exist is refused.
        let queued = try await service([
            "send-c2d", "cli-device", "hello device", "--amqp-port", String(amqp), "--property", "zone=b", "--ack",
            "full", "--message-id", "cli-c2d-1",
        ])
        #expect(queued.status == 0 && queued.stdout == "sent cli-c2d-1 to cli-device\n", "\(queued.stderr)")
        let nobody = try await service(["send-c2d", "nobody", "lost", "--amqp-port", String(amqp)])
        #expect(nobody.status != 0 && nobody.stderr.contains("not registered"), "\(nobody.stderr)")

        // The device the service made connects with its key, gets the message, answers a method and sends.
        let deviceString = "HostName=\(hubHost);DeviceId=cli-device;SharedAccessKey=\(key);GatewayHostName=localhost"
        let listener = try await PeerProcess(
            binary.path,
            [
                "listen", "--connection-string", deviceString, "--ca-file", ca, "--port", String(mqtt), "--duration",
                "60",
            ],
            readyMarker: "listening as cli-device",
            timeout: .seconds(60)
        )
        defer { listener.stop() }
        #expect(
            await listener.waitForOutput(containing: "c2d: hello device", timeout: .seconds(30)),
            "\(listener.output)"
        )
        #expect(listener.output.contains("zone=b"))
        let answered = try await service(["invoke", "cli-device", "reboot", "--payload", #"{"delay":1}"#])
        #expect(answered.status == 0 && answered.stdout.contains(#""status":200"#), "\(answered.stderr)")
        listener.stop()
        let sent = try await CLITests.run([
            "send", "--connection-string", deviceString, "--ca-file", ca, "--port", String(mqtt), "--property",
            "source=cli", "made by the service command",
        ])
        #expect(sent.status == 0, "\(sent.stderr)")
        let telemetry = try await service(["read-telemetry", "--amqp-port", String(amqp), "--count", "1"])
        #expect(telemetry.status == 0, "\(telemetry.stderr)")
        #expect(
            telemetry.stdout.contains(#""body":"made by the service command","deviceId":"cli-device""#)
                && telemetry.stdout.contains(#""properties":{"source":"cli"}"#),
            "\(telemetry.stdout)"
        )

        // A file upload as the device.
        let file = NSTemporaryDirectory() + "cli-upload-\(UUID().uuidString.prefix(8)).bin"
        let content = Data((0..<150_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try content.write(to: URL(fileURLWithPath: file))
        let uploaded = try await CLITests.run([
            "upload", "--connection-string", deviceString, "--ca-file", ca, "--port", String(servicePort),
            "--blob-name", "logs/one.bin", "--block-size", "64", file,
        ])
        #expect(
            uploaded.status == 0 && uploaded.stdout == "uploaded 150000 bytes in 3 blocks as cli-device/logs/one.bin\n",
            "\(uploaded.stderr)"
        )
        let stored = (ca as NSString).deletingLastPathComponent + "/uploads/cli-device/logs/one.bin"
        #expect(FileManager.default.contents(atPath: stored) == content)
        let missing = try await CLITests.run([
            "upload", "--connection-string", deviceString, "--ca-file", ca, "--port", String(servicePort),
            "/nonexistent",
        ])
        #expect(missing.status == 7 && missing.stderr.contains("fileNotReadable"), "\(missing.stderr)")

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
        let wrongKind = try await CLITests.run([
            "service", "list-devices", "--connection-string",
            "HostName=\(hubHost);DeviceId=cli-device;SharedAccessKey=\(key)", "--ca-file", ca,
        ])
        #expect(wrongKind.status != 0 && wrongKind.stderr.contains("service connection string"))
        #expect(!wrongKind.stderr.contains(key))
        let badPatch = try await service(["update-desired", "x", "[1]"])
        #expect(badPatch.status != 0 && badPatch.stderr.contains("JSON object"))
        let badTimeout = try await service(["invoke", "x", "m", "--response-timeout", "1"])
        #expect(badTimeout.status != 0)
        await emulator.shutDown()
    }
}
