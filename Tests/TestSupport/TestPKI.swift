import Foundation

/// A throw-away PKI made by `Tests/Peers/make-test-pki.sh` with the openssl CLI, once per test process.
public struct TestPKI: Sendable {
    /// The folder holding the PEM files.
    public let directory: String

    /// The path of a file in the PKI folder.
    public func path(_ name: String) -> String { "\(self.directory)/\(name)" }
    /// The text of a file in the PKI folder.
    public func text(_ name: String) throws -> String { try String(contentsOfFile: self.path(name), encoding: .utf8) }

    /// The shared instance; generation runs once, on first use, without blocking a thread (tests share two cores).
    public static func shared() async throws -> TestPKI {
        _ = StallWatchdog.started
        return try await generator.get()
    }

    private static let generator = Generator()

    private actor Generator {
        private var task: Task<TestPKI, any Error>?

        func get() async throws -> TestPKI {
            if self.task == nil {
                self.task = Task {
                    let directory = NSTemporaryDirectory() + "azure-iot-pki-\(getpid())"
                    let script = URL(fileURLWithPath: #filePath)
                        .deletingLastPathComponent().deletingLastPathComponent()
                        .appendingPathComponent("Peers/make-test-pki.sh").path
                    let result = try await PeerProcess.complete(
                        "/bin/bash",
                        [script, directory],
                        timeout: .seconds(120)
                    )
                    guard result.status == 0 else { throw TestFailure("make-test-pki.sh failed: \(result.output)") }
                    return TestPKI(directory: directory)
                }
            }
            return try await self.task!.value
        }
    }
}

/// A failure raised by a test helper.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
