import AzureIoTCore
import Foundation
import Logging
import MQTTCodec

/// Serves one connection of the emulated DPS over MQTT (directly or in a WebSocket), the `$dps/registrations/…`
/// topics the device SDKs use. Each request becomes the REST request it stands for and goes to the same
/// ``ProvisioningService``, so both transports assign, throttle and fail alike; the answer goes back on
/// `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}]`.
///
/// CONNECT: client id = registration id, user name `{idScope}/registrations/{registrationId}/api-version={v}[&…]`
/// (the `?` some clients put before `api-version` is accepted too), the SAS token (`skn=registration`) as password
/// or a client certificate. Credentials that do not attest get CONNACK 5.
struct DPSMQTTHandler: Sendable {
    let service: ProvisioningService
    let limits: EmulatorLimits
    let logger: Logger

    /// The largest request accepted (a registration body and its topic).
    static let maximumPacketSize = 64 * 1024

    func serve(_ connection: TLSConnection) async {
        defer { connection.close() }
        let certificates = connection.peerCertificateChain
        var buffer: [UInt8] = []
        let framer = MQTTFramer(maximumPacketSize: Self.maximumPacketSize)
        do {
            let first = try await Self.readPacket(
                connection,
                &buffer,
                framer: framer,
                timeout: .seconds(self.limits.handshakeTimeoutSeconds)
            )
            guard case .connect(let connect) = first else {
                self.logger.info("DPS over MQTT: the first packet was not CONNECT")
                return
            }
            guard let session = await self.accept(connect, certificates: certificates) else {
                try await connection.write(
                    try MQTTPacket.connack(ConnAckPacket(returnCode: .notAuthorized)).encoded(),
                    timeout: .seconds(10)
                )
                return
            }
            try await connection.write(try MQTTPacket.connack(ConnAckPacket()).encoded(), timeout: .seconds(10))
            let keepAlive = connect.keepAliveSeconds
            let timeout: Duration? = keepAlive == 0 ? nil : .milliseconds(Int(keepAlive) * 1500)
            while true {
                let packet = try await Self.readPacket(connection, &buffer, framer: framer, timeout: timeout)
                switch packet {
                case .subscribe(let subscribe):
                    let codes = subscribe.subscriptions.map { subscription -> SubAckPacket.ReturnCode in
                        subscription.topicFilter == "$dps/registrations/res/#" ? .grantedQoS1 : .failure
                    }
                    try await connection.write(
                        try MQTTPacket.suback(SubAckPacket(packetId: subscribe.packetId, returnCodes: codes)).encoded(),
                        timeout: .seconds(10)
                    )
                case .publish(let publish):
                    if publish.qos == .atLeastOnce, let packetId = publish.packetId {
                        try await connection.write(
                            try MQTTPacket.puback(packetId: packetId).encoded(),
                            timeout: .seconds(10)
                        )
                    }
                    guard let (request, requestId) = Self.request(publish, session) else {
                        self.logger.info(
                            "DPS over MQTT: a PUBLISH to a topic DPS does not serve",
                            metadata: ["topic": "\(publish.topic)"]
                        )
                        return
                    }
                    let response = await self.service.handle(request, peerCertificates: certificates)
                    var topic = "$dps/registrations/res/\(response.status)/?$rid=\(PercentEncoding.encode(requestId))"
                    if let retryAfter = response.headers.first(where: { $0.0.lowercased() == "retry-after" })?.1 {
                        topic += "&retry-after=\(retryAfter)"
                    }
                    try await connection.write(
                        try MQTTPacket.publish(PublishPacket(topic: topic, payload: response.body)).encoded(),
                        timeout: .seconds(10)
                    )
                case .puback:
                    break
                case .pingreq:
                    try await connection.write(try MQTTPacket.pingresp.encoded(), timeout: .seconds(10))
                case .disconnect:
                    return
                default:
                    self.logger.info("DPS over MQTT: an unexpected packet", metadata: ["packet": "\(packet)"])
                    return
                }
            }
        } catch {
            self.logger.debug("a DPS MQTT connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// What a connection is allowed to ask for once its CONNECT attested.
    struct Session: Sendable {
        var idScope: String
        var registrationId: String
        var apiVersion: String
        var authorization: String?
    }

    /// The session a CONNECT opens, or `nil` when the user name is not DPS's form or the credentials do not attest.
    private func accept(_ connect: ConnectPacket, certificates: [X509Certificate]) async -> Session? {
        guard let username = connect.username, let session = Self.session(username: username) else {
            self.logger.info("DPS over MQTT: a user name not of the form {idScope}/registrations/{id}/api-version=…")
            return nil
        }
        var withPassword = session
        if let password = connect.password, !password.isEmpty {
            withPassword.authorization = String(decoding: password, as: UTF8.self)
        }
        let attested = await self.service.attests(
            idScope: withPassword.idScope,
            registrationId: withPassword.registrationId,
            authorization: withPassword.authorization,
            certificates: certificates,
            transport: "MQTT"
        )
        return attested ? withPassword : nil
    }

    /// `{idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion=…]`, with or without `?`.
    static func session(username: String) -> Session? {
        let parts = username.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[1] == "registrations", !parts[0].isEmpty, !parts[2].isEmpty else { return nil }
        var query = parts[3]
        if query.hasPrefix("?") { query = query.dropFirst() }
        var apiVersion: String?
        for pair in query.split(separator: "&") {
            let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if keyValue.count == 2, keyValue[0] == "api-version" {
                apiVersion = (try? PercentEncoding.decode(keyValue[1])) ?? String(keyValue[1])
            }
        }
        guard let apiVersion, !apiVersion.isEmpty else { return nil }
        return Session(
            idScope: String(parts[0]),
            registrationId: String(parts[2]),
            apiVersion: apiVersion,
            authorization: nil
        )
    }

    /// The REST request a PUBLISH stands for, and its `$rid`; `nil` for a topic DPS does not serve.
    static func request(_ publish: PublishPacket, _ session: Session) -> (HTTPRequest, String)? {
        let topic = publish.topic
        let base = "/\(session.idScope)/registrations/\(session.registrationId)"
        guard let question = topic.firstIndex(of: "?") else { return nil }
        let name = topic[..<question]
        var parameters: [String: String] = [:]
        for pair in topic[topic.index(after: question)...].split(separator: "&") {
            let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard keyValue.count == 2 else { continue }
            parameters[String(keyValue[0])] = (try? PercentEncoding.decode(keyValue[1])) ?? String(keyValue[1])
        }
        guard let requestId = parameters["$rid"], !requestId.isEmpty else { return nil }
        var headers: [String: String] = ["content-type": "application/json"]
        headers["authorization"] = session.authorization
        let query = ["api-version": session.apiVersion]
        switch name {
        case "$dps/registrations/PUT/iotdps-register/":
            let request = HTTPRequest(
                method: "PUT",
                path: base + "/register",
                query: query,
                headers: headers,
                body: publish.payload,
                allowsUnnamedSASKey: true
            )
            return (request, requestId)
        case "$dps/registrations/GET/iotdps-get-operationstatus/":
            guard let operationId = parameters["operationId"], !operationId.isEmpty,
                !operationId.contains("/")
            else { return nil }
            let request = HTTPRequest(
                method: "GET",
                path: base + "/operations/\(operationId)",
                query: query,
                headers: headers,
                body: [],
                allowsUnnamedSASKey: true
            )
            return (request, requestId)
        default:
            return nil
        }
    }

    private static func readPacket(
        _ connection: TLSConnection,
        _ buffer: inout [UInt8],
        framer: MQTTFramer,
        timeout: Duration?
    ) async throws -> MQTTPacket {
        while true {
            if let frame = try framer.nextFrame(in: buffer[...]) {
                let packet = try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body])
                buffer.removeSubrange(0..<frame.end)
                return packet
            }
            let bytes = try await connection.read(maxBytes: 16 * 1024, timeout: timeout)
            guard !bytes.isEmpty else { throw AzureIoTError(.connectionClosed, "the device closed the connection") }
            buffer += bytes
        }
    }
}
