import AzureIoTTestSupport
import Foundation
import Testing

/// `azure-iot demo --serve` prints the write-ups' recipes filled in for its emulator; pasted as printed, they work.
@Suite("azure-iot demo recipe sheet")
struct RecipeSheetTests {
    /// The printed line that starts with `prefix`.
    static func line(_ output: String, _ prefix: String) throws -> String {
        try #require(
            output.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init),
            "no line '\(prefix)…'"
        )
    }

    /// `curl -i` output: the last status code and the body.
    static func response(_ stdout: String) -> (status: Int, body: String) {
        let sections = stdout.components(separatedBy: "\r\n\r\n")
        let statusLine = sections.dropLast().last?.split(separator: "\r\n").first ?? ""
        return (Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0, sections.last ?? "")
    }

    static func bash(_ script: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await PeerProcess.capture("/bin/bash", ["-c", script])
    }

    @Test("the derivation pipeline, curl register and poll, the bridge block and the Node-RED settings, as printed")
    func pastedAsPrinted() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        )
        let demo = try await PeerProcess(
            binary.path,
            ["demo", "--serve"],
            readyMarker: "serving until Ctrl-C",
            timeout: .seconds(120)
        )
        defer { demo.stop() }
        let output = demo.output

        // The key derivation prints the key the sheet announces.
        let announced = try Self.line(output, "# DPS over REST").split(separator: " ").last.map {
            String($0.dropLast())
        }
        let derivation = ["KEY=", "REG_ID=", "keybytes=", "echo -n $REG_ID"].map { prefix in
            (try? Self.line(output, prefix)) ?? ""
        }
        let derived = try await Self.bash(derivation.joined(separator: "\n"))
        #expect(derived.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == announced)

        // curl register, then the operation status with the operation id filled in.
        let register = try await Self.bash(try Self.line(output, "curl -L -i -X PUT"))
        let registered = Self.response(register.stdout)
        #expect(registered.status == 202, "\(register.stdout)\(register.stderr)")
        let operationId = try #require(
            registered.body.split(separator: "\"").dropFirst().first { $0.hasPrefix("4.") }.map(String.init)
        )
        let poll = try await Self.bash(
            try Self.line(output, "curl -L -i -X GET").replacingOccurrences(of: "[operation_id]", with: operationId)
        )
        let polled = Self.response(poll.stdout)
        #expect(polled.status == 200 && polled.body.contains(#""status":"assigned""#), "\(poll.stdout)")

        // The bridge block, below a local listener, forwards mosquitto_pub and gets the hub's PUBACK.
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: "connection azureiot-bridge"))
        let block = lines[start...].prefix { !$0.isEmpty }.joined(separator: "\n")
        let port = try PeerProcess.freePort()
        let folder = NSTemporaryDirectory() + "sheet-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let config =
            "persistence false\nuser root\nlog_dest stderr\nlog_type all\nlistener \(port) 127.0.0.1\nallow_anonymous true\n\n"
            + block + "\n"
        try config.write(toFile: folder + "/mosquitto.conf", atomically: true, encoding: .utf8)
        let bridge = try await PeerProcess(
            "/usr/sbin/mosquitto",
            ["-c", folder + "/mosquitto.conf"],
            readyMarker: "Received CONNACK on connection",
            timeout: .seconds(30)
        )
        defer { bridge.stop() }
        let deviceId = try Self.line(output, "remote_clientid ").dropFirst("remote_clientid ".count)
        // At QoS 1 so that the hub's PUBACK shows in the bridge's log.
        let publish = try await PeerProcess.complete(
            "/usr/bin/mosquitto_pub",
            ["-p", String(port), "-q", "1", "-t", "devices/\(deviceId)/messages/events/", "-m", "hello world!"]
        )
        #expect(publish.status == 0)
        #expect(
            await bridge.waitForOutput(containing: "Received PUBACK from local.\(deviceId)", timeout: .seconds(10)),
            "\(bridge.output)"
        )

        // The Node-RED settings, with paho playing the node.
        let nodePort =
            try Self.line(output, "# Node-RED MQTT node").split(separator: ",")[1].split(separator: " ").last.map(
                String.init
            ) ?? ""
        let ca = String(try Self.line(output, "CA file").split(separator: ": ").last ?? "")
        let value = { (prefix: String) in
            String((try? Self.line(output, prefix + ": "))?.dropFirst(prefix.count + 2) ?? "")
        }
        let node = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/mqtt_node.py"), "localhost", nodePort, ca, value("Client ID"),
                value("Username"), value("Password"),
                "1", value("Topic"), #"{"messageType":"alert"}"#,
            ]
        )
        #expect(node.output.contains("published 1"), "\(node.output)")
    }
}
