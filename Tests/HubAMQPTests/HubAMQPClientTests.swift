import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import HubAMQP
import Testing

/// The AMQP client against qpid-proton over TLS, with SASL PLAIN checked by cyrus-sasl.
@Suite("IoT Hub AMQP client against qpid-proton", .serialized)
struct HubAMQPClientTests {
    static let hub = "testhub.azure-devices.net"
    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    static func token(device: String = "dev1") throws -> SASToken {
        SASToken.generate(
            for: .device(hubHost: hub, deviceId: device),
            key: try SymmetricKey(base64: key),
            expiry: UnixTime.now() + 3600
        )
    }

    static func configuration(_ peer: AMQPTestPeer, token: SASToken, device: String = "dev1") async throws
        -> HubAMQPConfiguration
    {
        HubAMQPConfiguration(
            hubHost: hub,
            deviceId: device,
            tokenSource: FixedTokenCredential(token: token),
            gatewayHostName: "localhost",
            port: peer.port,
            trustRoots: .pemFile(try await TestPKI.shared().path("ca.pem")),
            operationTimeout: .seconds(10)
        )
    }

    @Test(
        "telemetry over SASL PLAIN: the peer receives body, properties and application properties; accepted settles send"
    )
    func telemetry() async throws {
        let pki = try await TestPKI.shared()
        let token = try Self.token()
        let peer = try await AMQPTestPeer(pki: pki, users: ["dev1@sas.testhub": token.secretValue])
        let client = HubAMQPClient(configuration: try await Self.configuration(peer, token: token))
        try await client.connect()
        var message = AMQPMessage(data: Array(#"{"temp":21.5}"#.utf8))
        message.messageId = .string("msg-0001")
        message.correlationId = .string("corr-0001")
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        message.applicationProperties = [("a", .string("1")), ("b c", .string("x/y"))]
        try await client.send(message)
        // A message larger than the peer's frame size goes out in several transfer frames.
        try await client.send(AMQPMessage(data: [UInt8](repeating: 0x61, count: 200_000)))
        await client.close()

        let open = try #require(await peer.waitForEvent { $0["ev"] as? String == "connection_open" })
        #expect(open["user"] as? String == "dev1@sas.testhub")
        #expect(open["hostname"] as? String == Self.hub)
        let attach = try #require(
            await peer.waitForEvent { $0["ev"] as? String == "link_attach" && $0["we"] as? String == "receive" }
        )
        #expect(attach["address"] as? String == "/devices/dev1/messages/events")
        #expect(
            (attach["properties"] as? [String: Any])?["com.microsoft:client-version"] as? String
                == "azure-iot-swift/0.1.0"
        )
        let received = try #require(
            await peer.waitForEvent { $0["ev"] as? String == "message" && $0["id"] as? String == "msg-0001" }
        )
        #expect((received["body"] as? [String: Any])?["binary"] as? String == #"{"temp":21.5}"#)
        #expect(received["correlation_id"] as? String == "corr-0001")
        #expect(received["content_type"] as? String == "application/json")
        #expect(received["content_encoding"] as? String == "utf-8")
        #expect(received["properties"] as? [String: String] == ["a": "1", "b c": "x/y"])
        #expect(received["address"] as? String == "/devices/dev1/messages/events")
        let large = try #require(
            await peer.waitForEvent {
                ($0["body"] as? [String: Any])?["binary"] as? String == String(repeating: "a", count: 200_000)
            }
        )
        #expect(large["user"] as? String == "dev1@sas.testhub")
    }

    @Test("a wrong token is refused by SASL with a typed error")
    func wrongToken() async throws {
        let pki = try await TestPKI.shared()
        let peer = try await AMQPTestPeer(pki: pki, users: ["dev1@sas.testhub": try Self.token().secretValue])
        let wrong = SASToken.generate(
            for: .device(hubHost: Self.hub, deviceId: "dev1"),
            key: try SymmetricKey(base64: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            expiry: UnixTime.now() + 60
        )
        let client = HubAMQPClient(configuration: try await Self.configuration(peer, token: wrong))
        do {
            try await client.connect()
            Issue.record("expected a SASL refusal")
        } catch let error as HubAMQPError {
            // Refused as often as the retry policy allows, as a reconnect would be.
            #expect(error.code == .retriesExhausted)
            #expect((error.underlying as? HubAMQPError)?.code == .authenticationFailed)
            #expect(!error.description.contains("sig="))
        }
    }

    @Test("C2D: complete, reject and abandon reach the peer as accepted, rejected and released")
    func cloudToDevice() async throws {
        let pki = try await TestPKI.shared()
        let token = try Self.token()
        let peer = try await AMQPTestPeer(
            pki: pki,
            users: ["dev1@sas.testhub": token.secretValue],
            c2d: [
                [
                    "id": "c2d-1", "body": #"{"cmd":"reboot"}"#, "content_type": "application/json",
                    "properties": ["k1": "v1"],
                ],
                ["id": "c2d-2", "body": "second"],
                ["id": "c2d-3", "body": "third"],
            ]
        )
        let client = HubAMQPClient(configuration: try await Self.configuration(peer, token: token))
        try await client.connect()
        var iterator = client.cloudToDeviceMessages.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(first.message.data == Array(#"{"cmd":"reboot"}"#.utf8))
        #expect(first.message.messageId == .string("c2d-1"))
        #expect(first.message.contentType == "application/json")
        #expect(first.message.applicationProperties.first?.0 == "k1")
        try await first.complete()
        let second = try #require(await iterator.next())
        try await second.reject()
        let third = try #require(await iterator.next())
        try await third.abandon()
        for (id, outcome) in [("c2d-1", "accepted"), ("c2d-2", "rejected"), ("c2d-3", "released")] {
            let event = await peer.waitForEvent {
                $0["ev"] as? String == "c2d_disposition" && $0["id"] as? String == id
            }
            #expect(event?["outcome"] as? String == outcome, "\(id)")
        }
        await client.close()
    }

    @Test("a link the peer detaches with an error surfaces as linkDetached with the condition")
    func refusedLink() async throws {
        let pki = try await TestPKI.shared()
        let token = SASToken.generate(
            for: .device(hubHost: Self.hub, deviceId: "refuse-link"),
            key: try SymmetricKey(base64: Self.key),
            expiry: UnixTime.now() + 3600
        )
        let peer = try await AMQPTestPeer(pki: pki, users: ["refuse-link@sas.testhub": token.secretValue])
        let client = HubAMQPClient(
            configuration: try await Self.configuration(peer, token: token, device: "refuse-link")
        )
        do {
            try await client.connect()
            try await client.send(AMQPMessage(data: [1]))
            Issue.record("expected the link to be refused")
        } catch let error as HubAMQPError {
            #expect(error.code == .linkDetached)
            #expect(error.condition == "amqp:unauthorized-access")
        }
    }
}
