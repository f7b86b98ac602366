import AzureIoTDevice
import AzureIoTTesting
import HubAMQP
import HubMQTT
import Testing

/// The endpoint and the time-outs are one building block each, shared by the device client's configuration and the
/// two protocol configurations: setting one sets every field it stands for, on each of them.
@Suite("Configuration building blocks")
struct ConfigurationBuildingBlockTests {

    @Test("an endpoint and time-outs carry over whole; a nil port becomes each protocol's own")
    func buildingBlocks() throws {
        let credential = SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))
        let endpoint = HubEndpoint(
            hubHost: "hub.azure-devices.net",
            gatewayHostName: "edge.local",
            trustRoots: .pemFile("/etc/edge-ca.pem")
        )
        let timeouts = HubTimeouts(operation: .seconds(7), connect: .seconds(11), keepAlive: .seconds(90))

        var device = DeviceClientConfiguration(hubHost: "old", deviceId: "dev1", authentication: .sas(credential))
        device.endpoint = endpoint
        device.timeouts = timeouts
        #expect(device.hubHost == "hub.azure-devices.net" && device.gatewayHostName == "edge.local")
        #expect(device.port == nil && device.operationTimeout == .seconds(7) && device.keepAlive == .seconds(90))

        var mqtt = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: "old", deviceId: "dev1"),
            authentication: .sas(credential),
            port: 1234
        )
        mqtt.endpoint = device.endpoint
        mqtt.timeouts = device.timeouts
        #expect(mqtt.identity.hubHost == "hub.azure-devices.net" && mqtt.gatewayHostName == "edge.local")
        #expect(mqtt.port == 8883)
        #expect(mqtt.connectTimeout == .seconds(11) && mqtt.keepAlive == .seconds(90))
        #expect(mqtt.timeouts == timeouts)

        var amqp = HubAMQPConfiguration(hubHost: "old", deviceId: "dev1", authentication: .x509(try Self.identity()))
        amqp.endpoint = device.endpoint
        amqp.timeouts = device.timeouts
        #expect(amqp.hubHost == "hub.azure-devices.net" && amqp.gatewayHostName == "edge.local" && amqp.port == 5671)
        #expect(amqp.idleTimeout == .seconds(90) && amqp.connectTimeout == .seconds(11))
        #expect(amqp.timeouts == timeouts)
        if case .pemFile(let path) = amqp.endpoint.trustRoots {
            #expect(path == "/etc/edge-ca.pem")
        } else {
            Issue.record("the trust roots did not carry over")
        }

        // An explicit port carries over as it is.
        device.port = 443
        mqtt.endpoint = device.endpoint
        amqp.endpoint = device.endpoint
        #expect(mqtt.port == 443 && amqp.port == 443)
    }

    static func identity() throws -> X509Identity {
        let authority = try CertificateAuthority(commonName: "Building blocks CA")
        return try authority.issue(commonName: "dev1").identity
    }
}
