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
        let url = try #require(Bundle.module.url(forResource: "seed-vectors", withExtension: "json", subdirectory: "Vectors"))
        return try JSONDecoder().decode(Seed.self, from: Data(contentsOf: url))
    }

    /// Runs `azure-iot` with `arguments`; returns status, stdout and stderr.
    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("azure-iot")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test("sas reproduces every shared vector")
    func sasVectors() throws {
        for vector in try Self.seed().sas {
            var arguments = ["sas", "--resource", vector.resourceURI, "--key", vector.key, "--expiry", String(vector.expiry)]
            if let policy = vector.policyName { arguments += ["--policy", policy] }
            let result = try Self.run(arguments)
            #expect(result.status == 0)
            #expect(result.stdout == vector.token + "\n")
        }
    }

    @Test("derive-key reproduces every shared vector")
    func deriveVectors() throws {
        for vector in try Self.seed().derivedKeys {
            let result = try Self.run(["derive-key", "--group-key", vector.groupKey, "--registration-id", vector.registrationId])
            #expect(result.status == 0)
            #expect(result.stdout == vector.derivedKey + "\n")
        }
    }

    @Test("sas --ttl gives a token expiring ttl seconds from now")
    func ttl() throws {
        let before = UInt64(Date().timeIntervalSince1970)
        let result = try Self.run(["sas", "--resource", "h/devices/d", "--key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "--ttl", "600"])
        #expect(result.status == 0)
        let se = try #require(result.stdout.split(separator: "&").first { $0.hasPrefix("se=") })
        let expiry = try #require(UInt64(se.dropFirst(3).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(expiry >= before + 600 && expiry <= before + 602)
        #expect(!result.stdout.contains("skn="))
    }

    @Test("bad input exits non-zero with one clear line on stderr", arguments: [
        ["sas", "--resource", "r", "--key", "not*base64", "--ttl", "5"],
        ["sas", "--resource", "r", "--key", "MDEy"],
        ["sas", "--resource", "r", "--key", "MDEy", "--ttl", "5", "--expiry", "5"],
        ["sas", "--key", "MDEy", "--ttl", "5"],
        ["derive-key", "--group-key", "%%%", "--registration-id", "x"],
        ["derive-key", "--group-key", "MDEy"],
        ["derive-key", "--group-key", "MDEy", "--registration-id", ""],
        ["no-such-command"],
    ])
    func badInput(_ arguments: [String]) throws {
        let result = try Self.run(arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("azure-iot: error: "))
        #expect(!result.stderr.contains("not*base64"))
    }

    @Test("demo prints the derived key and the write-up's DPS token")
    func demo() throws {
        let result = try Self.run(["demo"])
        #expect(result.status == 0)
        let seed = try Self.seed()
        #expect(result.stdout.contains(seed.derivedKeys[0].derivedKey))
        #expect(result.stdout.contains(seed.sas[1].token))
        #expect(result.stdout.contains("sig=<redacted>"))
    }
}
