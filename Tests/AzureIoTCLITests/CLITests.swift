import AzureIoTTestSupport
import Foundation
import Testing

/// Runs the built `azure-iot` binary as a user would.
@Suite("azure-iot CLI")
struct CLITests {
    struct Seed: Decodable {
        struct SAS: Decodable {
            let resourceURI: String
            let key: String
            let policyName: String?
            let expiry: UInt64
            let token: String
        }
        struct Derived: Decodable {
            let groupKey: String
            let registrationId: String
            let derivedKey: String
        }
        let sas: [SAS]
        let derivedKeys: [Derived]
    }

    static func seed() throws -> Seed {
        let url = try #require(
            Bundle.module.url(forResource: "seed-vectors", withExtension: "json", subdirectory: "Vectors")
        )
        return try JSONDecoder().decode(Seed.self, from: Data(contentsOf: url))
    }

    /// Runs `azure-iot` with `arguments` without blocking a thread; returns status, stdout and stderr.
    static func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        )
        return try await PeerProcess.capture(binary.path, arguments)
    }

    @Test("sas reproduces every shared vector")
    func sasVectors() async throws {
        for vector in try Self.seed().sas {
            var arguments = [
                "sas", "--resource", vector.resourceURI, "--key", vector.key, "--expiry", String(vector.expiry),
            ]
            if let policy = vector.policyName { arguments += ["--policy", policy] }
            let result = try await Self.run(arguments)
            #expect(result.status == 0)
            #expect(result.stdout == vector.token + "\n")
        }
    }

    @Test("derive-key reproduces every shared vector")
    func deriveVectors() async throws {
        for vector in try Self.seed().derivedKeys {
            let result = try await Self.run([
                "derive-key", "--group-key", vector.groupKey, "--registration-id", vector.registrationId,
            ])
            #expect(result.status == 0)
            #expect(result.stdout == vector.derivedKey + "\n")
        }
    }

    @Test("sas --ttl gives a token expiring ttl seconds from now")
    func ttl() async throws {
        let before = UInt64(Date().timeIntervalSince1970)
        let result = try await Self.run([
            "sas", "--resource", "h/devices/d", "--key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "--ttl", "600",
        ])
        #expect(result.status == 0)
        let se = try #require(result.stdout.split(separator: "&").first { $0.hasPrefix("se=") })
        let expiry = try #require(UInt64(se.dropFirst(3).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(expiry >= before + 600 && expiry <= before + 602)
        #expect(!result.stdout.contains("skn="))
    }

    @Test(
        "bad input exits non-zero with one clear line on stderr",
        arguments: [
            ["sas", "--resource", "r", "--key", "not*base64", "--ttl", "5"],
            ["sas", "--resource", "r", "--key", "MDEy"],
            ["sas", "--resource", "r", "--key", "MDEy", "--ttl", "5", "--expiry", "5"],
            ["sas", "--key", "MDEy", "--ttl", "5"],
            ["derive-key", "--group-key", "%%%", "--registration-id", "x"],
            ["derive-key", "--group-key", "MDEy"],
            ["derive-key", "--group-key", "MDEy", "--registration-id", ""],
            ["no-such-command"],
        ]
    )
    func badInput(_ arguments: [String]) async throws {
        let result = try await Self.run(arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("azure-iot: error: "))
        #expect(!result.stderr.contains("not*base64"))
    }

    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    static let connectionString =
        "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    @Test(
        "numbers at their extremes are refused with the option and its range, never a trap",
        arguments: [
            (
                ["sas", "--resource", "r", "--key", CLITests.key, "--ttl", "18446744073709551615"],
                "--ttl must be 1...3153600000"
            ),
            (["sas", "--resource", "r", "--key", CLITests.key, "--ttl", "0"], "--ttl must be 1...3153600000"),
            (
                [
                    "provision", "--scope", "s", "--registration-id", "r", "--key", CLITests.key, "--timeout",
                    "9223372036854775807",
                ], "--timeout must be 1...86400"
            ),
            (
                ["provision", "--scope", "s", "--registration-id", "r", "--key", CLITests.key, "--timeout", "-5"],
                "--timeout must be 1...86400"
            ),
            (
                ["send", "--connection-string", CLITests.connectionString, "--interval", "1e300", "m"],
                "--interval must be 0...86400"
            ),
            (
                [
                    "send", "--connection-string", CLITests.connectionString, "--protocol", "amqp", "--interval",
                    "1e300", "m",
                ], "--interval must be 0...86400"
            ),
            (
                ["send", "--connection-string", CLITests.connectionString, "--interval", "nan", "m"],
                "--interval must be 0...86400"
            ),
            (
                ["send", "--connection-string", CLITests.connectionString, "--count", "-1", "m"],
                "--count must be 1...1000000000"
            ),
            (
                ["send", "--connection-string", CLITests.connectionString, "--port", "70000", "m"],
                "--port must be 1...65535"
            ),
            (
                ["listen", "--connection-string", CLITests.connectionString, "--duration", "1e300"],
                "--duration must be more than 0"
            ),
            (
                ["listen", "--connection-string", CLITests.connectionString, "--duration", "-1"],
                "--duration must be more than 0"
            ),
        ]
    )
    func numericExtremes(_ arguments: [String], _ message: String) async throws {
        let result = try await Self.run(arguments)
        #expect(result.status == 64 || result.status == 1, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test("an emulator configuration with a port out of range is refused with the field named")
    func emulatorPortOutOfRange() async throws {
        let path = NSTemporaryDirectory() + "emulator-\(UUID().uuidString).json"
        try #"{"hubName": "h", "mqttPort": 70000, "provisioning": {"idScope": "s"}}"#.write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let result = try await Self.run(["emulator", "--config", path])
        #expect(
            result.status != 0 && result.stderr.contains("mqttPort is 70000; it must be in 0...65535"),
            "\(result.stderr)"
        )
    }

    @Test("demo: provisions two devices, talks MQTT and AMQP to the in-process emulator and summarises what it saw")
    func demo() async throws {
        let result = try await Self.run(["demo"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for line in [
            "DPS: demo-sym-device-01 → assigned (symmetricKey, group demo-symmetric-group)",
            "DPS: demo-x509-device → assigned (x509, group demo-x509-group)",
            #"MQTT telemetry from demo-sym-device-01: {"temperature":21.5,"humidity":40} ct=application/json ce=utf-8 [alert=false]"#,
            #"MQTT telemetry from demo-x509-device: {"pressure":1013} ct=application/json"#,
            #"AMQP telemetry from demo-sym-device-01: {"temperature":21.7,"humidity":41} ct=application/json ce=utf-8 [alert=false]"#,
            #"MQTT-WS telemetry from demo-sym-device-01: {"temperature":21.8,"humidity":41} ct=application/json"#,
            "to demo-sym-device-01: completed",
            #"the service got 200 {"status":"ok","method":"getStatus"}"#,
            #"reported v2 {"firmware":"1.0.0","telemetryInterval":5}"#,
        ] {
            #expect(result.stdout.contains(line), "missing: \(line)")
        }
    }

    @Test("emulator: prints one JSON object with endpoints and credentials; `send` works with what it printed")
    func emulator() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("azure-iot")
        let process = try await PeerProcess(binary.path, ["emulator"], readyMarker: "}\n", timeout: .seconds(60))
        // Killed if the test ends early; an orderly shutdown (awaited, not blocking a thread) otherwise.
        defer { process.stop() }
        // The JSON object is one line of stdout (stderr, joined to it, carries only warnings).
        let text = try #require(process.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(json["hubHost"] as? String == "emulator-hub.azure-devices.net")
        #expect(json["idScope"] as? String == "0ne00EMU01")
        let mqtt = try #require(json["mqtt"] as? [String: Any])
        let ca = try #require(json["caCertificatePath"] as? String)
        #expect(FileManager.default.fileExists(atPath: ca))
        let devices = try #require(json["devices"] as? [[String: Any]])
        let connectionString = try #require(devices.first?["connectionString"] as? String)
        #expect(connectionString.contains("GatewayHostName=localhost"))
        let enrollments = try #require(json["enrollments"] as? [[String: Any]])
        #expect(
            enrollments.contains { $0["kind"] as? String == "group" && ($0["primaryKey"] as? String)?.isEmpty == false }
        )

        let sent = try await Self.run([
            "send", "--connection-string", connectionString, "--ca-file", ca, "--port",
            String(mqtt["port"] as? Int ?? 0), "--content-type", "application/json", #"{"from":"cli"}"#,
        ])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("sent 1/1"))
        // The WebSocket port the JSON lists takes MQTT and AMQP in a WebSocket.
        let webSockets = try #require(json["webSockets"] as? [String: Any])
        for transport in ["mqtt-ws", "amqp-ws"] {
            let result = try await Self.run([
                "send", "--connection-string", connectionString, "--ca-file", ca, "--transport", transport, "--port",
                String(webSockets["port"] as? Int ?? 0), #"{"over":"\#(transport)"}"#,
            ])
            #expect(result.status == 0, "\(transport): \(result.stderr)")
            #expect(result.stderr.contains("sent 1/1"), "\(transport): \(result.stderr)")
        }
        // DPS over MQTT and AMQP, each also in a WebSocket, with the group key the JSON lists.
        let groupKey = try #require(enrollments.first { $0["kind"] as? String == "group" }?["primaryKey"] as? String)
        for (transport, key) in [
            ("mqtt", "dpsMQTT"), ("mqtt-ws", "dpsWebSockets"), ("amqp", "dpsAMQP"), ("amqp-ws", "dpsWebSockets"),
        ] {
            let port = try #require((json[key] as? [String: Any])?["port"] as? Int)
            let provisioned = try await Self.run([
                "provision", "--scope", "0ne00EMU01", "--registration-id", "cli-\(transport)", "--group-key", groupKey,
                "--endpoint", "localhost:\(port)", "--ca-file", ca, "--transport", transport,
            ])
            #expect(provisioned.status == 0, "\(transport): \(provisioned.stdout)\(provisioned.stderr)")
            #expect(provisioned.stdout.contains("deviceId: cli-\(transport)"), "\(transport): \(provisioned.stdout)")
        }
        // A certificate issued by DPS for a request made on the spot: the key and the chain land in files.
        let dpsPort = try #require((json["dps"] as? [String: Any])?["port"] as? Int)
        let prefix = NSTemporaryDirectory() + "cli-csr-\(UUID().uuidString)"
        let issued = try await Self.run([
            "provision", "--scope", "0ne00EMU01", "--registration-id", "cli-csr", "--group-key", groupKey,
            "--endpoint", "localhost:\(dpsPort)", "--ca-file", ca, "--csr", prefix,
        ])
        #expect(issued.status == 0, "\(issued.stdout)\(issued.stderr)")
        #expect(issued.stdout.contains("certificate: \(prefix).pem"), "\(issued.stdout)")
        let keyAttributes = try FileManager.default.attributesOfItem(atPath: prefix + ".key.pem")
        #expect((keyAttributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let verified = try await PeerProcess.complete("/usr/bin/openssl", ["verify", "-CAfile", ca, prefix + ".pem"])
        #expect(verified.status == 0, "\(verified.output)")
        let wrong = try await Self.run(["send", "--connection-string", connectionString, "--transport", "ws", "x"])
        #expect(wrong.status != 0 && wrong.stderr.contains("--transport takes mqtt, mqtt-ws, amqp or amqp-ws"))
        await process.shutDown()
    }
}
