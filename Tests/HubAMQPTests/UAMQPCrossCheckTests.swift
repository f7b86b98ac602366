import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import HubAMQP
import Testing

/// The same qpid-proton peer receives the same message from uamqp (the library of the raw-AMQP write-up) and from
/// this SDK; every decoded section must be equal.
@Suite("AMQP cross-check with uamqp")
struct UAMQPCrossCheckTests {
    @Test("uamqp and HubAMQPClient deliver equal message sections to qpid-proton")
    func sameSections() async throws {
        let pki = try await TestPKI.shared()
        let hub = "testhub.azure-devices.net"
        let key = try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        let token = SASToken.generate(
            for: .device(hubHost: hub, deviceId: "dev1"),
            key: key,
            expiry: UnixTime.now() + 3600
        )
        let peer = try await AMQPTestPeer(pki: pki, users: ["dev1@sas.testhub": token.secretValue])

        let uamqp = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/uamqp_send.py"), "sasl", "localhost", "dev1", hub, token.secretValue,
                pki.path("ca.pem"), String(peer.port),
            ]
        )
        #expect(uamqp.status == 0, "\(uamqp.output)")

        let client = try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: hub,
                deviceId: "dev1",
                tokenSource: FixedTokenCredential(token: token),
                gatewayHostName: "localhost",
                port: peer.port,
                trustRoots: .pemFile(pki.path("ca.pem")),
                operationTimeout: .seconds(10)
            )
        )
        try await client.connect()
        var message = AMQPMessage(data: Array(#"{"temperature": 21.5}"#.utf8))
        message.messageId = .string("uamqp-1")
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        message.applicationProperties = [("source", .string("uamqp")), ("level", .int(3))]
        try await client.send(message)
        await client.close()

        let fields = [
            "body", "inferred", "id", "correlation_id", "user_id", "to", "content_type", "content_encoding",
            "properties", "annotations",
        ]
        var received: [[String: Any]] = []
        for _ in 0..<50 where received.count < 2 {
            received = try peer.events().filter { $0["ev"] as? String == "message" }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(received.count == 2)
        func canonical(_ value: Any?) -> String {
            guard let value else { return "nil" }
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
        }
        for field in fields {
            let fromUAMQP = canonical(received[0][field])
            let fromSDK = canonical(received[1][field])
            #expect(fromUAMQP == fromSDK, "\(field): uamqp \(fromUAMQP) vs SDK \(fromSDK)")
        }
        #expect((received[1]["body"] as? [String: Any])?["binary"] as? String == #"{"temperature": 21.5}"#)
    }
}
