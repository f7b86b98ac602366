import AzureIoTTestSupport
import Foundation
import Testing

/// The network fuzzer (`azure-iot-netfuzz`, `make netfuzz`) against a fresh `azure-iot emulator`: a fixed seed and a
/// fixed number of cases, so the run is the same on every machine however fast; then the pre-authentication flood.
/// Its two processes load both cores, so `make test` runs this suite alone, after the others.
@Suite("network fuzzer")
struct NetworkFuzzerTests {
    @Test(
        "240 seeded cases over every port and the workload socket, then the pre-authentication flood: the emulator survives"
    )
    func seededRun() async throws {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let fuzzer = directory.appendingPathComponent("azure-iot-netfuzz").path
        let findings = NSTemporaryDirectory() + "netfuzz-\(UUID().uuidString.prefix(8))"
        let result = try await PeerProcess.capture(
            fuzzer,
            [
                "--cases", "240", "--seed", "20261201", "--check-every", "20", "--findings", findings,
                "--emulator", directory.appendingPathComponent("azure-iot").path,
            ],
            timeout: .seconds(600)
        )
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("fuzzer result: 240 passed, 0 failed"), "\(result.stdout)")
        // Every protocol had cases, the IoT Edge workload API's unix socket among them.
        #expect(!result.stdout.contains(" 0,") && result.stdout.contains("workload "), "\(result.stdout)")
        #expect(result.stdout.contains("one byte over the allowance was refused"), "\(result.stdout)")
        #expect(!FileManager.default.fileExists(atPath: findings))
    }
}
