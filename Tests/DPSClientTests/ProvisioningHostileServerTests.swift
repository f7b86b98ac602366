import AzureIoTCore
import AzureIoTTestSupport
import DPSClient
import Foundation
import Testing

/// The DPS client against a server that answers what no DPS would: absurd `Retry-After` values, a 2 GB body, a
/// time-out nobody means. Each ends in a typed error within bounded time and memory, never a trap.
@Suite("DPS client against a hostile server")
struct ProvisioningHostileServerTests {
    @Test(
        "Retry-After inf, 1e300 and 1e18 wait at most the ceiling: a 2 s registration times out in about 2 s",
        arguments: ["inf", "1e300", "1e18", "-inf", "nan"]
    )
    func absurdRetryAfter(_ value: String) async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["r": ProvisioningClientTests.deviceKey],
            behaviors: ["r": ["assigning": 100, "retryAfter": value]]
        )
        defer { server.stop() }
        let client = try ProvisioningClientTests.client(
            server,
            pki,
            id: "r",
            attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey))
        )
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: ProvisioningError(.timedOut, "")) { _ = try await client.register(timeout: .seconds(2)) }
        #expect(clock.now - start < .seconds(10))
    }

    @Test("a 200 whose body never ends is cut off at 1 MiB with malformedResponse, without holding the body")
    func endlessBody() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["h": ProvisioningClientTests.deviceKey],
            behaviors: ["h": ["hugeBody": true]]
        )
        defer { server.stop() }
        let client = try ProvisioningClientTests.client(
            server,
            pki,
            id: "h",
            attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey))
        )
        let before = ProcessMemory.peakResidentBytes()
        await #expect(throws: ProvisioningError(.malformedResponse, "")) {
            _ = try await client.register(timeout: .seconds(60))
        }
        // It used to grow to 4.2 GB; other suites running beside this one stay far below this margin.
        #expect(ProcessMemory.peakResidentBytes() - before < 256 << 20)
    }

    @Test("a response nested 100,000 deep is refused as malformed without decoding it")
    func deepBody() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["d": ProvisioningClientTests.deviceKey],
            behaviors: ["d": ["deepBody": true]]
        )
        defer { server.stop() }
        let client = try ProvisioningClientTests.client(
            server,
            pki,
            id: "d",
            attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey))
        )
        await #expect(throws: ProvisioningError(.malformedResponse, "")) {
            _ = try await client.register(timeout: .seconds(30))
        }
    }

    @Test("the longest time-out a Duration holds neither traps nor waits: the registration completes")
    func hugeTimeout() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["t": ProvisioningClientTests.deviceKey],
            behaviors: ["t": ["retryAfter": 0]]
        )
        defer { server.stop() }
        let client = try ProvisioningClientTests.client(
            server,
            pki,
            id: "t",
            attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey))
        )
        #expect(try await client.register(timeout: .seconds(Int64.max)).deviceId == "t")
    }
}
