import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import DPSClient
import Foundation
import HubMQTT
import Testing

/// DPS certificate issuance (api-version `2025-07-01-preview`): the device sends a PKCS #10 request made with
/// OpenSSL, the emulator issues from its CA, and the device connects with the issued certificate.
@Suite("DPS certificate issuance")
struct CertificateIssuanceTests {
    @Test(
        "a symmetric-key device gets a certificate for its request (REST, MQTT, AMQP): openssl verify accepts the chain and the hub takes it",
        arguments: [ProvisioningClient.Transport.https, .mqtt, .amqp]
    )
    func issued(_ transport: ProvisioningClient.Transport) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let registrationId = "csr-\(transport.rawValue)"
        let request = try CertificateSigningRequest(commonName: registrationId)
        #expect(!"\(request)".contains("PRIVATE KEY"))
        var configuration = ProvisioningClient.Configuration(
            endpoint: fixture.dpsEndpoint(transport),
            idScope: fixture.endpoints.idScope,
            registrationId: registrationId,
            attestation: .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
            trustRoots: fixture.trust,
            defaultPollInterval: .milliseconds(200)
        )
        configuration.transport = transport
        configuration.certificateSigningRequest = request
        let result = try await ProvisioningClient(configuration: configuration).register(timeout: .seconds(20))
        let identity = try #require(result.identity)
        #expect(result.credential == nil)
        #expect(identity.leaf.commonName == registrationId && identity.chain.count == 1)
        #expect(identity.leaf.issuerCommonName == "Azure IoT Emulator Root CA")

        // openssl, not this SDK, checks the chain against the emulator's CA.
        let folder = NSTemporaryDirectory() + "csr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try identity.leaf.pem.write(toFile: folder + "/leaf.pem", atomically: true, encoding: .utf8)
        let verified = try await PeerProcess.complete(
            "/usr/bin/openssl",
            ["verify", "-CAfile", fixture.endpoints.caCertificatePath, folder + "/leaf.pem"]
        )
        #expect(verified.status == 0 && verified.output.contains(": OK"), "\(verified.output)")

        // The device connects with its new certificate.
        try await HubMQTTClient.withConnection(
            configuration: HubMQTTConfiguration(
                identity: HubMQTTIdentity(hubHost: result.assignedHub, deviceId: result.deviceId),
                authentication: .x509(identity),
                gatewayHostName: "localhost",
                port: fixture.endpoints.mqtt.port,
                trustRoots: fixture.trust
            )
        ) { client in
            try await client.send(TelemetryMessage(text: "issued"))
        }
        #expect(try await fixture.emulator.waitForTelemetry(deviceId: registrationId).first?.bodyText == "issued")
    }

    @Test("a request whose CN is not the registration id is refused before sending; an old api-version gets DPS's 400")
    func refused() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = ProvisioningClient.Configuration(
            endpoint: "localhost:\(fixture.endpoints.dps.port)",
            idScope: fixture.endpoints.idScope,
            registrationId: "csr-device",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
            trustRoots: fixture.trust
        )
        configuration.certificateSigningRequest = try CertificateSigningRequest(commonName: "someone-else")
        #expect(throws: ProvisioningError.self) { _ = try ProvisioningClient(configuration: configuration) }
        configuration.certificateSigningRequest = try CertificateSigningRequest(commonName: "csr-device")
        configuration.apiVersion = "2021-10-01-x"
        let error = await #expect(throws: ProvisioningError.self) {
            _ = try await ProvisioningClient(configuration: configuration).register(timeout: .seconds(10))
        }
        #expect(error?.httpStatus == 400 && error?.errorCode == 400_004, "\(String(describing: error))")
        #expect(await fixture.emulator.registrations().isEmpty)
    }
}
