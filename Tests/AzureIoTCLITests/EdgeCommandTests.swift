import AzureIoTTestSupport
import Foundation
import Testing

/// `azure-iot emulator --edge-device` and the module side of `send` and `listen` (`--edge`), run as a user would.
@Suite("azure-iot with IoT Edge modules", .timeLimit(.minutes(3)))
struct EdgeCommandTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("azure-iot")
            .path
    }

    @Test(
        "the emulator prints each module's environment; `send --edge --output` reaches `listen --edge` through a route"
    )
    func modulesThroughRoutes() async throws {
        let socket = NSTemporaryDirectory() + "cli-workload-\(UUID().uuidString.prefix(8)).sock"
        let emulator = try await PeerProcess(
            Self.binary,
            [
                "emulator", "--edge-device", "gw", "--edge-module", "sensor", "--edge-module", "filter",
                "--edge-route",
                #"FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/readings")"#,
                "--edge-route", "FROM /messages/modules/filter/* INTO $upstream",
                "--workload-socket", socket, "--edge-exports",
            ],
            readyMarker: "# module sensor",
            timeout: .seconds(60)
        )
        // Killed if the test ends early; an orderly shutdown (awaited, not blocking a thread) otherwise.
        defer { emulator.stop() }
        try await eventually("the export lines") {
            emulator.output.contains("export IOTEDGE_WORKLOADURI='unix://\(socket)'")
        }
        let text = try #require(emulator.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let edge = try #require(json["edge"] as? [String: Any])
        #expect(edge["deviceId"] as? String == "gw" && edge["workloadURI"] as? String == "unix://\(socket)")
        let modules = try #require(edge["modules"] as? [String: [String: String]])
        let sensor = try #require(modules["sensor"])
        let filter = try #require(modules["filter"])
        #expect(sensor["IOTEDGE_MODULEID"] == "sensor" && sensor["IOTEDGE_AUTHSCHEME"] == "sasToken")
        #expect(sensor["IOTEDGE_GATEWAYHOSTNAME"] == "localhost" && sensor["IOTEDGE_DEVICEID"] == "gw")
        #expect(
            emulator.output.contains(
                "export IOTEDGE_MODULEGENERATIONID='\(filter["IOTEDGE_MODULEGENERATIONID"] ?? "?")'"
            )
        )
        let port = String(try #require((json["mqtt"] as? [String: Any])?["port"] as? Int))

        var base = ProcessInfo.processInfo.environment
        base = base.filter { !$0.key.hasPrefix("IOTEDGE_") }
        let listener = try await PeerProcess(
            Self.binary,
            ["listen", "--edge", "--port", port, "--duration", "60"],
            readyMarker: "listening as gw/filter",
            environment: base.merging(filter) { _, new in new },
            timeout: .seconds(60)
        )
        defer { listener.stop() }
        let sent = try await PeerProcess.capture(
            Self.binary,
            ["send", "--edge", "--port", port, "--output", "temperature", "--property", "unit=C", "21.5"],
            environment: base.merging(sensor) { _, new in new }
        )
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(
            await listener.waitForOutput(containing: "input readings: 21.5", timeout: .seconds(30)),
            "\(listener.output)"
        )
        #expect(listener.output.contains("unit=C"), "\(listener.output)")

        // Outside a module: one line naming the missing variable, exit status 8.
        let outside = try await PeerProcess.capture(Self.binary, ["send", "--edge", "x"], environment: base)
        #expect(
            outside.status == 8 && outside.stderr.contains("IOTEDGE_IOTHUBHOSTNAME is not set"),
            "\(outside.stderr)"
        )
        // A workload socket that is not there: the environment is read, the workload API cannot be reached.
        var gone = sensor
        gone["IOTEDGE_WORKLOADURI"] = "unix:///tmp/no-such-\(UUID().uuidString.prefix(8)).sock"
        let unreachable = try await PeerProcess.capture(
            Self.binary,
            ["send", "--edge", "--port", port, "x"],
            environment: base.merging(gone) { _, new in new }
        )
        #expect(unreachable.status == 8 && unreachable.stderr.contains("workloadUnavailable"), "\(unreachable.stderr)")
        let both = try await PeerProcess.capture(
            Self.binary,
            ["send", "--edge", "--connection-string", "HostName=h;DeviceId=d;SharedAccessKey=AA==", "x"]
        )
        #expect(both.status != 0 && both.stderr.contains("not both"), "\(both.stderr)")
        let edgeOnly = try await PeerProcess.capture(Self.binary, ["emulator", "--edge-module", "m"])
        #expect(edgeOnly.status != 0 && edgeOnly.stderr.contains("need --edge-device"), "\(edgeOnly.stderr)")
        await emulator.shutDown()
    }
}
