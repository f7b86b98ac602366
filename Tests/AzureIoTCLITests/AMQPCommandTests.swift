import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import Testing

@Suite("azure-iot send and listen over AMQP")
struct AMQPCommandTests {
    @Test("send --protocol amqp and listen --protocol amqp against qpid-proton with SASL PLAIN")
    func amqp() async throws {
        let pki = try await TestPKI.shared()
        let token = SASToken.generate(
            for: .device(hubHost: "clihub.azure-devices.net", deviceId: "cli2"),
            key: try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
            expiry: UnixTime.now() + 3600
        )
        let peer = try await AMQPTestPeer(
            pki: pki,
            users: ["cli2@sas.clihub": token.secretValue],
            c2d: [["id": "c-1", "body": "switch on", "properties": ["zone": "b"]]]
        )
        let connectionString =
            "HostName=clihub.azure-devices.net;DeviceId=cli2;SharedAccessSignature=\(token.secretValue)"
        let common = [
            "--connection-string", connectionString, "--protocol", "amqp", "--gateway-host", "localhost",
            "--ca-file", pki.path("ca.pem"), "--port", String(peer.port),
        ]
        let send = try await CLITests.run(
            ["send"] + common + ["--content-type", "application/json", "--property", "k=v", #"{"x":1}"#]
        )
        #expect(send.status == 0, "\(send.stderr)")
        #expect(send.stderr.contains("sent 1/1"))
        let message = try #require(await peer.waitForEvent { $0["ev"] as? String == "message" })
        #expect((message["body"] as? [String: Any])?["binary"] as? String == #"{"x":1}"#)
        #expect(message["content_type"] as? String == "application/json")
        #expect(message["properties"] as? [String: String] == ["k": "v"])
        #expect(message["user"] as? String == "cli2@sas.clihub")

        let listen = try await CLITests.run(["listen"] + common + ["--duration", "2"])
        #expect(listen.status == 0, "\(listen.stderr)")
        #expect(listen.stdout.contains("c2d: switch on [zone=b]"))
        let disposition = await peer.waitForEvent { $0["ev"] as? String == "c2d_disposition" }
        #expect(disposition?["outcome"] as? String == "accepted")
        #expect(!send.stderr.contains("sig="))
    }
}
