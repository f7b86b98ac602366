import AzureIoTCore
import DPSClient
import MQTTCodec
import Testing

/// DPS over MQTT as values: the packets a registration sends and how answers are read, without a socket.
@Suite("DPS over MQTT: the protocol without I/O")
struct DPSMQTTProtocolTests {
    static func make() -> DPSMQTTProtocol {
        DPSMQTTProtocol(idScope: "0ne00ABC", registrationId: "dev 1", apiVersion: "2019-03-31", userAgent: "sdk/1 (x)")
    }

    @Test("CONNECT: client id = registration id, clean session, user name without '?', the password as given")
    func connect() throws {
        let state = Self.make()
        #expect(state.username == "0ne00ABC/registrations/dev 1/api-version=2019-03-31&ClientVersion=sdk%2F1%20%28x%29")
        guard case .connect(let connect) = state.connect(password: Array("token".utf8), keepAliveSeconds: 60) else {
            Issue.record("not a CONNECT")
            return
        }
        #expect(connect.clientId == "dev 1" && connect.cleanSession && connect.password == Array("token".utf8))
        guard case .connect(let x509) = state.connect(password: nil, keepAliveSeconds: 60) else { return }
        #expect(x509.password == nil)
    }

    @Test("requests: register and poll topics with increasing $rid; the poll body is one space")
    func requests() throws {
        var state = Self.make()
        guard case .subscribe(let subscribe) = state.subscribe() else { return }
        #expect(subscribe.subscriptions.map(\.topicFilter) == ["$dps/registrations/res/#"])
        guard case .publish(let register) = state.publish(.register(body: Array("{}".utf8))) else { return }
        #expect(register.topic == "$dps/registrations/PUT/iotdps-register/?$rid=1" && register.qos == .atLeastOnce)
        #expect(state.pendingRequestId == "1")
        guard case .publish(let poll) = state.publish(.poll(operationId: "4.abc/def")) else { return }
        #expect(poll.topic == "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc%2Fdef")
        #expect(poll.payload == [0x20] && state.pendingRequestId == "2")
    }

    @Test(
        "answers: status, retry-after and body for the pending $rid; a QoS 1 answer is acknowledged; stale ones ignored"
    )
    func answers() throws {
        var state = Self.make()
        _ = state.publish(.register(body: []))
        let stale = PublishPacket(topic: "$dps/registrations/res/202/?$rid=9&retry-after=3", payload: [1])
        #expect(try state.receive(.publish(stale)).isEmpty)
        let answer = PublishPacket(
            topic: "$dps/registrations/res/202/?$rid=1&retry-after=3",
            payload: Array(#"{"status":"assigning"}"#.utf8),
            qos: .atLeastOnce,
            packetId: 7
        )
        #expect(
            try state.receive(.publish(answer)) == [
                .send(.puback(packetId: 7)),
                .answered(status: 202, retryAfter: "3", body: Array(#"{"status":"assigning"}"#.utf8)),
            ]
        )
        #expect(state.pendingRequestId == nil)
        // Another answer to the same $rid is no longer awaited.
        #expect(try state.receive(.publish(answer)) == [.send(.puback(packetId: 7))])
        #expect(try state.receive(.puback(packetId: 1)).isEmpty && (try state.receive(.pingresp)).isEmpty)
    }

    @Test("what a DPS server never sends is a typed error: a refused subscription, a status-less topic, a SUBSCRIBE")
    func violations() {
        var state = Self.make()
        #expect(throws: ProvisioningError.self) {
            _ = try state.receive(.suback(SubAckPacket(packetId: 1, returnCodes: [.failure])))
        }
        #expect(throws: ProvisioningError.self) {
            _ = try state.receive(.publish(PublishPacket(topic: "$dps/registrations/res/abc/?$rid=1", payload: [])))
        }
        #expect(throws: ProvisioningError.self) {
            _ = try state.receive(
                .subscribe(SubscribePacket(packetId: 1, subscriptions: [.init(topicFilter: "#", qos: .atMostOnce)]))
            )
        }
        // Topics outside the answers are ignored (nothing to do with them).
        #expect((try? state.receive(.publish(PublishPacket(topic: "other/topic", payload: [])))) == [])
    }

    @Test("CONNACK: 4 and 5 are refused credentials (401, not transient), 3 an unavailable service (transient)")
    func connack() {
        #expect(DPSMQTTProtocol.refusal(ConnAckPacket()) == nil)
        let refused = DPSMQTTProtocol.refusal(ConnAckPacket(returnCode: .notAuthorized))
        #expect(refused?.code == .unauthorized && refused?.isTransient == false)
        #expect(DPSMQTTProtocol.refusal(ConnAckPacket(returnCode: .badUsernameOrPassword))?.code == .unauthorized)
        let unavailable = DPSMQTTProtocol.refusal(ConnAckPacket(returnCode: .serverUnavailable))
        #expect(unavailable?.code == .serviceError && unavailable?.isTransient == true)
    }
}
