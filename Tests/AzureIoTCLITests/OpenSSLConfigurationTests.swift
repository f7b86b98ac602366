import AzureIoTTestSupport
import Foundation
import Testing

/// SAS signing follows the OpenSSL configuration's providers. OpenSSL reads `OPENSSL_CONF` once per process, so
/// each configuration runs the CLI as a child process.
@Suite("OpenSSL configuration")
struct OpenSSLConfigurationTests {
    /// Writes an OpenSSL configuration that activates exactly `providers` and returns its path.
    static func configuration(activating providers: [String]) throws -> String {
        var text = "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n[provider_sect]\n"
        for provider in providers { text += "\(provider) = \(provider)_sect\n" }
        for provider in providers { text += "[\(provider)_sect]\nactivate = 1\n" }
        let path = NSTemporaryDirectory() + "azure-iot-openssl-\(UUID().uuidString).cnf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func run(_ arguments: [String], openSSLConfiguration path: String) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        var environment = ProcessInfo.processInfo.environment
        environment["OPENSSL_CONF"] = path
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        )
        return try await PeerProcess.capture(binary.path, arguments, environment: environment)
    }

    @Test("every vector reproduces with the default provider loaded explicitly by the configuration")
    func explicitDefaultProvider() async throws {
        let path = try Self.configuration(activating: ["default"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let seed = try CLITests.seed()
        for vector in seed.sas {
            var arguments = [
                "sas", "--resource", vector.resourceURI, "--key", vector.key, "--expiry", String(vector.expiry),
            ]
            if let policy = vector.policyName { arguments += ["--policy", policy] }
            let result = try await Self.run(arguments, openSSLConfiguration: path)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == vector.token + "\n")
        }
        for vector in seed.derivedKeys {
            let arguments = ["derive-key", "--group-key", vector.groupKey, "--registration-id", vector.registrationId]
            let result = try await Self.run(arguments, openSSLConfiguration: path)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == vector.derivedKey + "\n")
        }
    }

    /// The proof that signing goes through providers: with only the `base` provider (encoders, no algorithms)
    /// there is no HMAC, and the CLI must say so instead of signing with OpenSSL's low-level SHA-256 behind the
    /// configuration's back.
    @Test("with no provider offering HMAC, signing fails with a clear error instead of bypassing the configuration")
    func noHMACProvider() async throws {
        let path = try Self.configuration(activating: ["base"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let vector = try #require(CLITests.seed().derivedKeys.first)
        let derive = try await Self.run(
            ["derive-key", "--group-key", vector.groupKey, "--registration-id", vector.registrationId],
            openSSLConfiguration: path
        )
        #expect(derive.status != 0)
        #expect(derive.stdout.isEmpty)
        #expect(derive.stderr.contains("no OpenSSL provider offers HMAC-SHA256"), "\(derive.stderr)")
        #expect(!derive.stderr.contains(vector.groupKey))
        let sas = try await Self.run(
            ["sas", "--resource", "h/devices/d", "--key", vector.groupKey, "--ttl", "60"],
            openSSLConfiguration: path
        )
        #expect(sas.status != 0)
        #expect(sas.stderr.contains("no OpenSSL provider offers HMAC-SHA256"), "\(sas.stderr)")
    }
}
