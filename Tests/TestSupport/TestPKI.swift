import Foundation

/// A throw-away PKI made by `Tests/Peers/make-test-pki.sh` with the openssl CLI, once per test process.
public struct TestPKI: Sendable {
    /// The folder holding the PEM files.
    public let directory: String

    /// The path of a file in the PKI folder.
    public func path(_ name: String) -> String { "\(self.directory)/\(name)" }
    /// The text of a file in the PKI folder.
    public func text(_ name: String) throws -> String { try String(contentsOfFile: self.path(name), encoding: .utf8) }

    /// The shared instance; generation runs once, on first use.
    public static func shared() throws -> TestPKI { try sharedResult.get() }

    private static let sharedResult: Result<TestPKI, any Error> = Result {
        let directory = NSTemporaryDirectory() + "azure-iot-pki-\(getpid())"
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Peers/make-test-pki.sh").path
        let result = try PeerProcess.run("/bin/bash", [script, directory])
        guard result.status == 0 else { throw TestFailure("make-test-pki.sh failed: \(result.output)") }
        return TestPKI(directory: directory)
    }
}

/// A failure raised by a test helper.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
