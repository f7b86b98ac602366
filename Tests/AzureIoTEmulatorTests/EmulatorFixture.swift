import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTesting
import DPSClient
import Foundation
import HubAMQP
import HubMQTT

/// A configured emulator for the tests: a SAS device with a module, an X.509 device by thumbprint, an individual
/// enrollment, a symmetric-key group and an X.509 group anchored at an intermediate CA.
struct EmulatorFixture {
    static let deviceKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    static let secondDeviceKey = "c2Vjb25kLWRldmljZS1rZXktc2Vjb25kLWRldmljZS0x"
    static let moduleKey = "bW9kdWxlLWtleS1tb2R1bGUta2V5LW1vZHVsZS1rZXk="
    static let individualKey = "aW5kaXZpZHVhbC1rZXktaW5kaXZpZHVhbC1rZXktMTI="
    static let groupKey = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktZ3JvdXA="

    let emulator: IoTEmulator
    let deviceRoot: CertificateAuthority
    let deviceIntermediate: CertificateAuthority
    let thumbprintDevice: IssuedCertificate
    let individualCertificate: IssuedCertificate

    static func start(
        retryAfter: Int = 1,
        mqttPort: Int = 0,
        limits: EmulatorLimits = EmulatorLimits(),
        desired: JSONValue = .object(["interval": .number(10)]),
        extraDevices: [(deviceId: String, key: String)] = []
    ) async throws -> EmulatorFixture {
        let root = try CertificateAuthority(commonName: "Test Device Root")
        let intermediate = try root.intermediate(commonName: "Test Device Intermediate")
        let selfSignedRoot = try CertificateAuthority(commonName: "Thumbprint Device Issuer")
        let thumbprintDevice = try selfSignedRoot.issue(commonName: "x509-device")
        let individualCertificate = try selfSignedRoot.issue(commonName: "x509-individual")
        var configuration = EmulatorConfiguration(
            hubName: "test-hub",
            mqttPort: mqttPort,
            provisioningRetryAfterSeconds: retryAfter,
            devices: [
                .init(
                    deviceId: "dev1",
                    primaryKey: deviceKey,
                    modules: [.init(moduleId: "mod1", primaryKey: moduleKey)],
                    initialDesiredProperties: desired
                ),
                .init(deviceId: "x509-device", x509Thumbprint: thumbprintDevice.identity.thumbprint),
                .init(deviceId: "ca-device", x509CertificateAuthorityPEM: intermediate.certificatePEM),
                .init(deviceId: "dev2", primaryKey: secondDeviceKey),
            ] + extraDevices.map { .init(deviceId: $0.deviceId, primaryKey: $0.key) },
            provisioning: .init(
                idScope: "0ne00TEST1",
                individualEnrollments: [
                    .init(
                        registrationId: "individual-1",
                        primaryKey: individualKey,
                        deviceId: "provisioned-individual"
                    ),
                    .init(
                        registrationId: "x509-individual",
                        certificateThumbprint: individualCertificate.identity.leaf.sha256Thumbprint
                    ),
                ],
                enrollmentGroups: [
                    .init(name: "sym-group", primaryKey: groupKey),
                    .init(name: "x509-group", caCertificatePEM: intermediate.certificatePEM),
                ]
            )
        )
        configuration.listenAddress = "127.0.0.1"
        configuration.limits = limits
        let emulator = try await IoTEmulator.start(configuration: configuration)
        return EmulatorFixture(
            emulator: emulator,
            deviceRoot: root,
            deviceIntermediate: intermediate,
            thumbprintDevice: thumbprintDevice,
            individualCertificate: individualCertificate
        )
    }

    /// The fixture's configuration with its keys filled in, for a test that starts an emulator of its own (a template
    /// emulator is started for it and shut down; ports and the state directory are left to the new one).
    static func configuration() async throws -> EmulatorConfiguration {
        let template = try await Self.start()
        await template.emulator.shutdown()
        var configuration = template.emulator.configuration
        configuration.stateDirectory = nil
        (configuration.mqttPort, configuration.amqpPort, configuration.dpsPort) = (0, 0, 0)
        (configuration.webSocketPort, configuration.servicePort) = (0, 0)
        return configuration
    }

    var endpoints: EmulatorEndpoints { self.emulator.endpoints }

    /// An MQTT configuration for `device` authenticating with `identity` through `GatewayHostName=localhost`, with a
    /// fast first retry.
    func x509Configuration(_ device: String, _ identity: X509Identity) -> HubMQTTConfiguration {
        var configuration = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: self.hubHost, deviceId: device),
            authentication: .x509(identity),
            gatewayHostName: "localhost",
            port: self.endpoints.mqtt.port,
            trustRoots: self.trust
        )
        configuration.retryPolicy.initialDelay = .milliseconds(20)
        return configuration
    }
    var trust: TLSConfiguration.TrustRoots { .pemFile(self.endpoints.caCertificatePath) }
    var hubHost: String { self.endpoints.hubHost }

    /// `localhost:{port}` of the emulator's DPS endpoint for `transport`.
    func dpsEndpoint(_ transport: ProvisioningClient.Transport) -> String {
        let port =
            switch transport {
            case .https: self.endpoints.dps.port
            case .mqtt: self.endpoints.dpsMQTT.port
            case .amqp: self.endpoints.dpsAMQP?.port ?? 0
            case .mqttWebSockets, .amqpWebSockets: self.endpoints.dpsWebSockets.port
            }
        return "localhost:\(port)"
    }

    func provisioning(
        _ registrationId: String,
        _ attestation: ProvisioningClient.Attestation,
        transport: ProvisioningClient.Transport = .https
    ) throws -> ProvisioningClient {
        var configuration = ProvisioningClient.Configuration(
            endpoint: self.dpsEndpoint(transport),
            idScope: self.endpoints.idScope,
            registrationId: registrationId,
            attestation: attestation,
            trustRoots: self.trust,
            defaultPollInterval: .milliseconds(200)
        )
        configuration.transport = transport
        return try ProvisioningClient(configuration: configuration)
    }

    func mqtt(
        device: String = "dev1",
        module: String? = nil,
        key: String = deviceKey,
        keepAlive: Duration = .seconds(60)
    ) throws -> HubMQTTClient {
        try HubMQTTClient(
            configuration: HubMQTTConfiguration(
                identity: HubMQTTIdentity(hubHost: self.hubHost, deviceId: device, moduleId: module),
                authentication: .sas(SymmetricKeyCredential(key: try SymmetricKey(base64: key))),
                gatewayHostName: "localhost",
                port: self.endpoints.mqtt.port,
                trustRoots: self.trust,
                keepAlive: keepAlive,
                reconnectMinimumDelay: .milliseconds(50),
                reconnectMaximumDelay: .milliseconds(200),
                operationTimeout: .seconds(30)
            )
        )
    }

    func amqp(device: String = "dev1", key: String = deviceKey, operationTimeout: Duration = .seconds(30)) throws
        -> HubAMQPClient
    {
        try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: self.hubHost,
                deviceId: device,
                tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: key)),
                gatewayHostName: "localhost",
                port: self.endpoints.amqp.port,
                trustRoots: self.trust,
                operationTimeout: operationTimeout
            )
        )
    }

    /// A hub SAS token for `device`, valid for `lifetime` seconds.
    func token(device: String = "dev1", key: String = deviceKey, lifetime: UInt64 = 3600) throws -> String {
        SASToken.generate(
            for: .device(hubHost: self.hubHost, deviceId: device),
            key: try SymmetricKey(base64: key),
            expiry: UnixTime.now() + lifetime
        ).secretValue
    }
}
