import AzureIoTTestSupport
import Foundation
import Testing

@Suite("azure-iot provision")
struct ProvisionCommandTests {
    static let groupKey = "gPD2SOUYSOMXygVZA+pupNvWckqaS3Qnu+BUBbw7TbIZU7y2UZ5ksp4uMJfdV+nTIBayN+fZIZco4tS7oeVR/A=="

    @Test("group key with a payload, and X.509, against the local DPS peer")
    func provision() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            groups: ["g": Self.groupKey],
            behaviors: ["cli-dev": ["assigning": 1, "retryAfter": 0], "dev1": ["retryAfter": 0]]
        )
        defer { server.stop() }
        let group = try await CLITests.run([
            "provision", "--scope", DPSTestServer.idScope, "--registration-id", "cli-dev", "--group-key", Self.groupKey,
            "--endpoint", server.endpoint, "--ca-file", pki.path("ca.pem"), "--payload", #"{"site":"b7"}"#,
        ])
        #expect(group.status == 0, "\(group.stderr)")
        let lines = group.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("status: assigning") == true)
        #expect(lines.contains { $0.hasPrefix("status: assigned") })
        #expect(lines.contains("assignedHub: \(DPSTestServer.hub)"))
        #expect(lines.contains("deviceId: cli-dev"))
        #expect(lines.contains(#"payload: {"echo":{"site":"b7"}}"#))
        #expect(!group.stdout.contains(Self.groupKey))

        let x509 = try await CLITests.run([
            "provision", "--scope", DPSTestServer.idScope, "--registration-id", "dev1", "--cert", pki.path("dev1.pem"),
            "--cert-key", pki.path("dev1.key"), "--endpoint", server.endpoint, "--ca-file", pki.path("ca.pem"),
        ])
        #expect(x509.status == 0, "\(x509.stderr)")
        #expect(x509.stdout.contains("deviceId: dev1"))

        let wrong = try await CLITests.run([
            "provision", "--scope", DPSTestServer.idScope, "--registration-id", "cli-dev", "--key",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "--endpoint", server.endpoint, "--ca-file", pki.path("ca.pem"),
        ])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("unauthorized"))
        #expect(wrong.stderr.split(separator: "\n").count == 1)
    }
}
