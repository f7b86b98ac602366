import Foundation

/// A throw-away PKI made by `Tests/Peers/make-test-pki.sh` with the openssl CLI, once per test process.
struct TestPKI: Sendable {
    let directory: String

    func path(_ name: String) -> String { "\(self.directory)/\(name)" }
    func text(_ name: String) throws -> String { try String(contentsOfFile: self.path(name), encoding: .utf8) }

    /// The shared instance; generation runs once, on first use.
    static func shared() throws -> TestPKI { try sharedResult.get() }

    private static let sharedResult: Result<TestPKI, any Error> = Result {
        let directory = NSTemporaryDirectory() + "azure-iot-pki-\(getpid())"
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Peers/make-test-pki.sh").path
        let result = try PeerProcess.run("/bin/bash", [script, directory])
        guard result.status == 0 else { throw TestFailure("make-test-pki.sh failed: \(result.output)") }
        return TestPKI(directory: directory)
    }
}

/// A failure raised by a test helper.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
