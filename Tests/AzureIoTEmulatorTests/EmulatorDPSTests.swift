import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTesting
import DPSClient
import Foundation
import HubMQTT
import Testing

/// The emulated DPS against this SDK's `ProvisioningClient`: every attestation, the service's error shapes, and the
/// DPS faults.
@Suite("Emulator: DPS REST")
struct EmulatorDPSTests {
    @Test("individual symmetric key: assigned to the hub with the enrollment's device id, which can then connect")
    func individualSymmetricKey() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let statuses = StatusLog()
        let result = try await fixture.provisioning(
            "individual-1",
            .symmetricKey(try SymmetricKey(base64: EmulatorFixture.individualKey))
        )
        .register(payloadJSON: Data(#"{"model":"thermostat"}"#.utf8), timeout: .seconds(60)) {
            statuses.append("\($0)")
        }
        #expect(result.assignedHub == "test-hub.azure-devices.net")
        #expect(result.deviceId == "provisioned-individual")
        #expect(statuses.values.first == "assigning" && statuses.values.last == "assigned")
        let record = try #require(await fixture.emulator.registrations().first)
        #expect(
            record.registrationId == "individual-1" && record.enrollmentGroup == nil
                && record.attestation == .symmetricKey
        )
        #expect(record.payload == .object(["model": .string("thermostat")]))
        let client = try fixture.mqtt(device: "provisioned-individual", key: EmulatorFixture.individualKey)
        try await client.connect()
        await client.disconnect()
    }

    @Test("group symmetric key: the device signs with the derived key and connects with it")
    func groupSymmetricKey() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let result = try await fixture.provisioning(
            "group-member-7",
            .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey))
        )
        .register(timeout: .seconds(60))
        #expect(result.deviceId == "group-member-7")
        #expect(await fixture.emulator.registrations().first?.enrollmentGroup == "sym-group")
        let derived = try DerivedKey.compute(groupKey: EmulatorFixture.groupKey, registrationId: "group-member-7")
        let client = try fixture.mqtt(device: "group-member-7", key: derived)
        try await client.connect()
        await client.disconnect()
    }

    @Test("X.509 group anchored at an intermediate CA: the chain is checked and CN must be the registration id")
    func x509Group() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let device = try fixture.deviceIntermediate.issue(commonName: "x509-member-1")
        let result = try await fixture.provisioning("x509-member-1", .x509(device.identity)).register(
            timeout: .seconds(60)
        )
        #expect(result.deviceId == "x509-member-1")
        let record = try #require(await fixture.emulator.registrations().first)
        #expect(record.attestation == .x509 && record.enrollmentGroup == "x509-group")

        // (A CN that is not the registration id is stopped by the client before sending; the emulator's own check
        // is exercised with curl in the fidelity tests.)
        // A certificate from an unknown CA is refused.
        let rogue = try CertificateAuthority(commonName: "Rogue CA").issue(commonName: "x509-member-2")
        let rogueError = await #expect(throws: ProvisioningError.self) {
            _ = try await fixture.provisioning("x509-member-2", .x509(rogue.identity)).register(timeout: .seconds(60))
        }
        #expect(rogueError?.httpStatus == 401)
    }

    @Test(
        "X.509 individual enrollment by thumbprint: the enrolled certificate is assigned, another with the same CN is not"
    )
    func x509Individual() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let result = try await fixture.provisioning("x509-individual", .x509(fixture.individualCertificate.identity))
            .register(timeout: .seconds(60))
        #expect(result.deviceId == "x509-individual")
        let impostor = try CertificateAuthority(commonName: "Other Issuer").issue(commonName: "x509-individual")
        let error = await #expect(throws: ProvisioningError.self) {
            _ = try await fixture.provisioning("x509-individual", .x509(impostor.identity)).register(
                timeout: .seconds(60)
            )
        }
        #expect(error?.errorCode == 401_002)
        // The provisioned device connects to the hub with the same certificate.
        try await HubMQTTClient.withConnection(
            configuration: HubMQTTConfiguration(
                identity: HubMQTTIdentity(hubHost: fixture.hubHost, deviceId: "x509-individual"),
                authentication: .x509(fixture.individualCertificate.identity),
                gatewayHostName: "localhost",
                port: fixture.endpoints.mqtt.port,
                trustRoots: fixture.trust
            )
        ) { client in
            try await client.send(TelemetryMessage(text: "from x509"))
        }
        #expect(try await fixture.emulator.waitForTelemetry(deviceId: "x509-individual").first?.bodyText == "from x509")
    }

    @Test("a wrong key gets 401 with DPS's error shape; the registration is not created")
    func wrongKey() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let error = await #expect(throws: ProvisioningError.self) {
            _ = try await fixture.provisioning(
                "individual-1",
                .symmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey))
            ).register(timeout: .seconds(60))
        }
        #expect(error?.code == .unauthorized)
        #expect(error?.errorCode == 401_002)
        #expect(error?.trackingId?.isEmpty == false)
        #expect(await fixture.emulator.registrations().isEmpty)
    }

    @Test(
        "fault injection over REST, MQTT and AMQP: 429 with Retry-After is honoured; forced failed and disabled outcomes",
        arguments: [ProvisioningClient.Transport.https, .mqtt, .amqp]
    )
    func faults(_ transport: ProvisioningClient.Transport) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        await fixture.emulator.injectFaults {
            $0.provisioningThrottles = 2
            $0.provisioningThrottleRetryAfterSeconds = 1
            $0.provisioningOutcomes = ["failing-1": .failed, "disabled-1": .disabled]
        }
        let clock = ContinuousClock()
        let start = clock.now
        let key = try SymmetricKey(base64: EmulatorFixture.groupKey)
        _ = try await fixture.provisioning("throttled-1", .groupSymmetricKey(key), transport: transport).register(
            timeout: .seconds(20)
        )
        #expect(clock.now - start >= .seconds(2), "two 429s with Retry-After: 1 must cost two seconds")
        #expect(await fixture.emulator.faults().provisioningThrottles == 0)

        let failed = await #expect(throws: ProvisioningError.self) {
            _ = try await fixture.provisioning("failing-1", .groupSymmetricKey(key), transport: transport).register(
                timeout: .seconds(60)
            )
        }
        #expect(failed?.code == .registrationFailed && failed?.errorCode == 400_209)
        let disabled = await #expect(throws: ProvisioningError.self) {
            _ = try await fixture.provisioning("disabled-1", .groupSymmetricKey(key), transport: transport).register(
                timeout: .seconds(60)
            )
        }
        #expect(disabled?.code == .registrationDisabled)
        #expect(await fixture.emulator.registrations().map(\.status).sorted() == ["assigned", "disabled", "failed"])
    }
}

/// Statuses reported by a registration, in order.
final class StatusLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ value: String) { self.lock.withLock { self.items.append(value) } }
    var values: [String] { self.lock.withLock { self.items } }
}
