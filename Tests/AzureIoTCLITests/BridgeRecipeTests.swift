import AzureIoTTestSupport
import Foundation
import Testing

/// The mosquitto bridge write-up: a local mosquitto forwards `devices/{id}/messages/events/#` to a TLS broker that
/// stands in for IoT Hub, logging in with the IoT Hub user name and a SAS token made by `azure-iot sas`.
@Suite("mosquitto bridge recipe with CLI credentials")
struct BridgeRecipeTests {
    @Test("mosquitto_pub to the local broker arrives at the TLS broker that checks the CLI's SAS token")
    func bridge() async throws {
        let pki = try await TestPKI.shared()
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        let username = "test-hub.azure-devices.net/bridged1/api-version=2019-03-31"
        let sas = try await CLITests.run([
            "sas", "--resource", "test-hub.azure-devices.net/devices/bridged1", "--key", key, "--ttl", "3600",
        ])
        #expect(sas.status == 0)
        let token = sas.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let hub = try await MosquittoBroker(pki: pki, users: [username: token])
        let hubSide = try await HubSideSubscriber(broker: hub, filters: ["devices/#"])

        let directory = NSTemporaryDirectory() + "bridge-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let localPort = try PeerProcess.freePort()
        let config = """
            persistence false
            user root
            log_dest stderr
            log_type all
            listener \(localPort) 127.0.0.1
            allow_anonymous true
            connection azureiot-bridge
            address localhost:\(hub.passwordPort)
            remote_username \(username)
            remote_password \(token)
            remote_clientid bridged1
            bridge_cafile \(pki.path("ca.pem"))
            bridge_insecure false
            bridge_protocol_version mqttv311
            try_private false
            cleansession true
            notifications false
            start_type automatic
            topic devices/bridged1/messages/events/# out 1

            """
        try config.write(toFile: directory + "/bridge.conf", atomically: true, encoding: .utf8)
        let local = try await PeerProcess(
            "/usr/sbin/mosquitto",
            ["-c", directory + "/bridge.conf"],
            readyMarker: " running"
        )
        defer { local.stop() }
        #expect(
            await local.waitForOutput(
                containing: "Received CONNACK on connection local.bridged1",
                timeout: .seconds(10)
            )
                || local.output.contains("Received CONNACK on connection azureiot-bridge")
        )

        let publish = try await PeerProcess.complete(
            "/usr/bin/mosquitto_pub",
            [
                "-h", "127.0.0.1", "-p", String(localPort), "-t", "devices/bridged1/messages/events/", "-m",
                "hello world!",
            ]
        )
        #expect(publish.status == 0)
        #expect(
            await hubSide.waitForLine { $0 == "devices/bridged1/messages/events/|hello world!" } != nil,
            "\(local.output)"
        )
        #expect(await hub.waitForLog(containing: "u'\(username)'"))
    }
}
