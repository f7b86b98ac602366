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
        let client = try HubAMQPClient(configuration: try await Self.configuration(peer, token: token))
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
        let client = try HubAMQPClient(configuration: try await Self.configuration(peer, token: wrong))
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
        let client = try HubAMQPClient(configuration: try await Self.configuration(peer, token: token))
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
        let client = try HubAMQPClient(
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

    @Test(
        "twin and methods against qpid-proton playing IoT Hub: link names, addresses, settle modes and properties; twin annotations, correlation ids and the method answer as the Azure SDKs send them"
    )
    func twinAndMethods() async throws {
        let pki = try await TestPKI.shared()
        let token = try Self.token()
        let peer = try await AMQPTestPeer(pki: pki, users: ["dev1@sas.testhub": token.secretValue])
        let client = try HubAMQPClient(configuration: try await Self.configuration(peer, token: token))
        try await client.connect()
        let twin = try await client.twin()
        #expect(twin.desiredVersion == 4 && twin.reportedVersion == 1)
        #expect(try await client.updateReportedProperties(Array(#"{"fw":"1.0"}"#.utf8)) == 2)
        try await client.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        let patch = try #require(await patches.next())
        #expect(patch.version == 5 && String(decoding: patch.json, as: UTF8.self) == #"{"interval":30,"$version":5}"#)
        var calls = client.methodRequests.makeAsyncIterator()
        let call = try #require(await calls.next())
        #expect(call.name == "reboot" && call.requestId == "12345678-1234-5678-1234-567812345678")
        #expect(String(decoding: call.payload, as: UTF8.self) == #"{"delay":1}"#)
        try await call.respond(status: 202, payload: Array(#"{"rebooting":true}"#.utf8))

        // The answer as IoT Hub reads it: the same UUID correlation id, the status as an int application property.
        let answer = try #require(
            await peer.waitForEvent {
                $0["ev"] as? String == "message"
                    && ($0["address"] as? String)?.hasSuffix("/methods/devicebound") == true
            }
        )
        #expect(answer["correlation_id"] as? String == "12345678-1234-5678-1234-567812345678")
        #expect((answer["properties"] as? [String: Any])?["IoThub-status"] as? Int == 202)
        #expect((answer["body"] as? [String: Any])?["binary"] as? String == #"{"rebooting":true}"#)
        await client.close()

        let events = try peer.events()
        let twinRequests = events.filter {
            $0["ev"] as? String == "message" && ($0["address"] as? String) == "/devices/dev1/twin"
        }
        let annotations = twinRequests.map { ($0["annotations"] as? [String: Any]) ?? [:] }
        #expect(annotations.map { $0["operation"] as? String } == ["GET", "PATCH", "PUT"])
        #expect(
            annotations.map { $0["resource"] as? String } == [
                nil, "/properties/reported", "/notifications/twin/properties/desired",
            ]
        )
        #expect(
            (twinRequests.first?["body"] as? [String: Any])?["binary"] as? String == " ",
            "an empty body is one space"
        )
        let ids = twinRequests.compactMap { $0["correlation_id"] as? String }
        #expect(ids.count == 3 && Set(ids).count == 3, "every request has its own correlation id: \(ids)")

        let attaches = events.filter { $0["ev"] as? String == "link_attach" }
        func attach(_ address: String, we: String) -> [String: Any]? {
            attaches.first { $0["address"] as? String == address && $0["we"] as? String == we }
        }
        let twinSender = try #require(attach("/devices/dev1/twin", we: "receive"))
        let twinReceiver = try #require(attach("/devices/dev1/twin", we: "send"))
        let methodReceiver = try #require(attach("/devices/dev1/methods/devicebound", we: "send"))
        let methodSender = try #require(attach("/devices/dev1/methods/devicebound", we: "receive"))
        #expect(twinSender["snd_settle_mode"] as? Int == 1, "twin requests go settled")
        #expect((methodReceiver["name"] as? String)?.hasPrefix("methods_requests_link-dev1") == true)
        #expect((methodSender["name"] as? String)?.hasPrefix("methods_responses_link-dev1") == true)
        for link in [twinSender, twinReceiver, methodReceiver, methodSender] {
            let properties = (link["properties"] as? [String: Any]) ?? [:]
            #expect(properties["com.microsoft:client-version"] as? String == SDKVersion.clientName)
            #expect(properties["com.microsoft:api-version"] as? String == "2021-04-12")
        }
        let twinChannel = (twinSender["properties"] as? [String: Any])?["com.microsoft:channel-correlation-id"]
        #expect((twinChannel as? String)?.hasPrefix("twin:") == true)
        let methodChannel = (methodReceiver["properties"] as? [String: Any])?["com.microsoft:channel-correlation-id"]
        #expect(methodChannel as? String == "dev1")
    }
}
