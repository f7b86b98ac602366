import AzureIoTCore
import Foundation
package import MQTTCodec

/// DPS over MQTT as values (no I/O): the packets one registration sends and what the answers mean. The driver
/// (``DPSMQTTConnection``) writes what this returns and feeds it what it reads.
///
/// The wire form is Azure's (the SDKs' `$dps` topics): client id = registration id, user name
/// `{idScope}/registrations/{registrationId}/api-version={v}&ClientVersion={agent}` (no `?`), the SAS token
/// (`skn=registration`) as password or none for X.509; subscribe `$dps/registrations/res/#`; requests are QoS 1
/// PUBLISHes to `$dps/registrations/PUT/iotdps-register/?$rid={rid}` and
/// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`; each answer comes on
/// `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}]` with the body DPS sends over REST.
package struct DPSMQTTProtocol: Sendable {
    /// A request of the registration.
    package enum Request: Sendable, Equatable {
        /// `iotdps-register` with the `DeviceRegistration` body.
        case register(body: [UInt8])
        /// `iotdps-get-operationstatus` for an operation.
        case poll(operationId: String)
    }

    /// What a packet from DPS asks of the driver.
    package enum Action: Sendable, Equatable {
        /// Write this packet (a PUBACK for a QoS 1 answer).
        case send(MQTTPacket)
        /// The pending request's answer, as the REST client reads answers: status, `retry-after`, body.
        case answered(status: Int, retryAfter: String?, body: [UInt8])
    }

    package let idScope: String
    package let registrationId: String
    package let apiVersion: String
    package let userAgent: String
    private var nextRequestId = 1
    private var nextPacketId: UInt16 = 1
    /// The `$rid` of the request waiting for its answer.
    package private(set) var pendingRequestId: String?

    package init(idScope: String, registrationId: String, apiVersion: String, userAgent: String) {
        self.idScope = idScope
        self.registrationId = registrationId
        self.apiVersion = apiVersion
        self.userAgent = userAgent
    }

    /// The MQTT user name (no `?` before `api-version`, as DPS requires).
    package var username: String {
        "\(self.idScope)/registrations/\(self.registrationId)/api-version=\(PercentEncoding.encode(self.apiVersion))"
            + "&ClientVersion=\(PercentEncoding.encode(self.userAgent))"
    }

    /// CONNECT: a clean session (DPS keeps none), the SAS token as password or none for X.509.
    package func connect(password: [UInt8]?, keepAliveSeconds: UInt16) -> MQTTPacket {
        .connect(
            ConnectPacket(
                clientId: self.registrationId,
                cleanSession: true,
                keepAliveSeconds: keepAliveSeconds,
                username: self.username,
                password: password
            )
        )
    }

    /// What a CONNACK means: `nil` when accepted, otherwise the error (refused credentials are not transient).
    package static func refusal(_ connack: ConnAckPacket) -> ProvisioningError? {
        switch connack.returnCode {
        case .accepted:
            return nil
        case .badUsernameOrPassword, .notAuthorized:
            return ProvisioningError(
                .unauthorized,
                "DPS refused the MQTT connection (CONNACK \(connack.returnCode.rawValue)): the credentials or the ID scope are wrong",
                httpStatus: 401
            )
        case .serverUnavailable:
            return ProvisioningError(
                .serviceError,
                "DPS is unavailable (CONNACK 3)",
                httpStatus: 503
            )
        default:
            return ProvisioningError(
                .serviceError,
                "DPS refused the MQTT connection (CONNACK \(connack.returnCode.rawValue))"
            )
        }
    }

    /// SUBSCRIBE to the answers.
    package mutating func subscribe() -> MQTTPacket {
        .subscribe(
            SubscribePacket(
                packetId: self.takePacketId(),
                subscriptions: [.init(topicFilter: "$dps/registrations/res/#", qos: .atLeastOnce)]
            )
        )
    }

    /// The PUBLISH carrying `request`; its answer is the next ``Action/answered(status:retryAfter:body:)``.
    package mutating func publish(_ request: Request) -> MQTTPacket {
        let requestId = String(self.nextRequestId)
        self.nextRequestId += 1
        self.pendingRequestId = requestId
        let topic: String
        let body: [UInt8]
        switch request {
        case .register(let registration):
            topic = "$dps/registrations/PUT/iotdps-register/?$rid=\(requestId)"
            body = registration
        case .poll(let operationId):
            topic =
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=\(requestId)&operationId=\(PercentEncoding.encode(operationId))"
            // The SDKs send a single space; DPS reads no body for a poll.
            body = [0x20]
        }
        return .publish(PublishPacket(topic: topic, payload: body, qos: .atLeastOnce, packetId: self.takePacketId()))
    }

    /// What `packet` from DPS means. Throws ``ProvisioningError/Code/malformedResponse`` for a packet a DPS server
    /// does not send (a refused subscription, a SUBSCRIBE, an answer topic without a status).
    package mutating func receive(_ packet: MQTTPacket) throws(ProvisioningError) -> [Action] {
        switch packet {
        case .publish(let publish):
            var actions: [Action] = []
            if publish.qos == .atLeastOnce, let packetId = publish.packetId {
                actions.append(.send(.puback(packetId: packetId)))
            }
            guard let answer = try Self.answer(topic: publish.topic) else { return actions }
            guard answer.requestId == self.pendingRequestId else {
                // An answer to a request given up on (a time-out, a reconnect): not this one.
                return actions
            }
            self.pendingRequestId = nil
            actions.append(.answered(status: answer.status, retryAfter: answer.retryAfter, body: publish.payload))
            return actions
        case .suback(let suback):
            guard !suback.returnCodes.contains(.failure) else {
                throw ProvisioningError(.serviceError, "DPS refused the subscription to $dps/registrations/res/#")
            }
            return []
        case .puback, .pingresp, .unsuback:
            return []
        default:
            throw ProvisioningError(.malformedResponse, "DPS sent an MQTT packet a server never sends: \(packet)")
        }
    }

    /// The status, `$rid` and `retry-after` of an answer topic; `nil` for a topic outside `$dps/registrations/res/`.
    static func answer(topic: String) throws(ProvisioningError) -> (
        status: Int, requestId: String?, retryAfter: String?
    )? {
        let prefix = "$dps/registrations/res/"
        guard topic.hasPrefix(prefix) else { return nil }
        let rest = topic.dropFirst(prefix.count)
        let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let status = Int(first), (100...999).contains(status) else {
            throw ProvisioningError(.malformedResponse, "the DPS answer topic '\(topic)' has no status")
        }
        var requestId: String?
        var retryAfter: String?
        if parts.count == 2, let query = parts[1].split(separator: "?", maxSplits: 1).last, parts[1].contains("?") {
            for pair in query.split(separator: "&") {
                let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard keyValue.count == 2 else { continue }
                let value = (try? PercentEncoding.decode(keyValue[1])) ?? String(keyValue[1])
                switch keyValue[0] {
                case "$rid": requestId = value
                case "retry-after": retryAfter = value
                default: break
                }
            }
        }
        return (status, requestId, retryAfter)
    }

    private mutating func takePacketId() -> UInt16 {
        let id = self.nextPacketId
        self.nextPacketId = self.nextPacketId == .max ? 1 : self.nextPacketId + 1
        return id
    }
}
