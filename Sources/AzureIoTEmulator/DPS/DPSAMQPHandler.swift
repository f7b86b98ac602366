import AzureIoTCore
import Foundation
import HubAMQP
import Logging

/// Serves one connection of the emulated DPS over AMQP (directly or in a WebSocket), as Azure's C and Node
/// provisioning clients speak it. SASL PLAIN with user `{idScope}/registrations/{registrationId}` and the
/// registration's SAS token (`skn=registration`) as password; or a client certificate, with SASL EXTERNAL or
/// ANONYMOUS, or with no SASL layer at all (the C SDK's X.509 flow). Then one session with a sender and a receiver on
/// `[amqps://{host}/]{idScope}/registrations/{registrationId}`. Each request message (`iotdps-operation-type`
/// `iotdps-register` with the registration body, or `iotdps-get-operationstatus` with `iotdps-operation-id`) becomes
/// the REST request it stands for and goes to the same ``ProvisioningService``. The answer goes back with the
/// request's correlation id, the REST body, and `retry-after` as an application property.
struct DPSAMQPHandler: Sendable {
    let service: ProvisioningService
    let limits: EmulatorLimits
    let logger: Logger

    /// The largest frame, and the largest request message (a registration body with a CSR is a few KB).
    static let maximumFrameSize: UInt32 = 64 * 1024
    /// Credit granted to the client's sender: requests it may have outstanding.
    static let credit: UInt32 = 8

    /// Who the connection is, once attested.
    struct Session {
        var idScope: String
        var registrationId: String
        var authorization: String?
        var attested = false
        /// The `com.microsoft:api-version` the client's links name (certificate issuance needs the preview one).
        var apiVersion = "2021-06-01"
    }

    /// What one connection holds while it is served.
    private struct Connection {
        let tls: TLSConnection
        var buffer: [UInt8] = []
        var framer = AMQPFramer(maximumFrameSize: Int(DPSAMQPHandler.maximumFrameSize))
        /// The channel the current frame came on; replies go on it (a client may open a session per link, as
        /// uamqp's clients sharing one connection do).
        var channel: UInt16 = 0
        /// Sessions begun, by channel, with our next outgoing transfer id on each.
        var sessions: [UInt16: UInt32] = [:]
        var nextOutgoingId: UInt32 {
            get { self.sessions[self.channel] ?? 0 }
            set { self.sessions[self.channel] = newValue }
        }
        /// The channel of the link that carries answers.
        var answerChannel: UInt16 = 0
        var nextDeliveryId: UInt32 = 0
        /// Our handle of the link on which we send answers, and the credit the client gave it.
        var answerHandle: UInt32?
        var answerCredit: UInt32 = 0
        /// The client's sender handle, whose transfers are requests.
        var requestHandle: UInt32?
        /// The client's receiver handle, whose flows grant credit for answers.
        var receiverHandle: UInt32?
        var nextHandle: UInt32 = 0
        /// Answers waiting for credit.
        var waiting: [[UInt8]] = []
        /// A request message arriving in several transfers.
        var partial: [UInt8] = []
    }

    func serve(_ tls: TLSConnection) async {
        defer { tls.close() }
        var connection = Connection(tls: tls)
        let certificates = tls.peerCertificateChain
        let handshake = Duration.seconds(self.limits.handshakeTimeoutSeconds)
        do {
            var session: Session?
            var header = try await Self.header(&connection, timeout: handshake)
            if header == .sasl {
                try await tls.write(AMQPProtocolHeader.sasl.bytes, timeout: .seconds(10))
                try await Self.write(
                    &connection,
                    .saslMechanisms(SASLMechanisms(mechanisms: ["PLAIN", "EXTERNAL", "ANONYMOUS"])),
                    type: .sasl
                )
                guard case .saslInit(let initial) = try await Self.performative(&connection, timeout: handshake) else {
                    return
                }
                if initial.mechanism == "PLAIN" {
                    guard let plain = Self.plain(initial.initialResponse ?? []) else {
                        try await Self.write(&connection, .saslOutcome(SASLOutcome(code: .auth)), type: .sasl)
                        return
                    }
                    guard var attested = Self.session(path: plain.user) else {
                        self.logger.info("DPS over AMQP: a SASL user not of the form {idScope}/registrations/{id}")
                        try await Self.write(&connection, .saslOutcome(SASLOutcome(code: .auth)), type: .sasl)
                        return
                    }
                    attested.authorization = plain.password
                    guard await self.attest(&attested, certificates: certificates) else {
                        try await Self.write(&connection, .saslOutcome(SASLOutcome(code: .auth)), type: .sasl)
                        return
                    }
                    session = attested
                } else if initial.mechanism != "EXTERNAL" && initial.mechanism != "ANONYMOUS" {
                    try await Self.write(&connection, .saslOutcome(SASLOutcome(code: .auth)), type: .sasl)
                    return
                }
                try await Self.write(&connection, .saslOutcome(SASLOutcome(code: .ok)), type: .sasl)
                header = try await Self.header(&connection, timeout: handshake)
            }
            guard header == .amqp else { return }
            try await tls.write(AMQPProtocolHeader.amqp.bytes, timeout: .seconds(10))
            while true {
                let (performative, channel) = try await Self.frame(&connection, timeout: .seconds(240))
                connection.channel = channel
                guard try await self.handle(performative, &connection, &session, certificates: certificates) else {
                    return
                }
            }
        } catch {
            self.logger.debug("a DPS AMQP connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Handles one performative; `false` ends the connection.
    private func handle(
        _ performative: AMQPPerformative,
        _ connection: inout Connection,
        _ session: inout Session?,
        certificates: [X509Certificate]
    ) async throws -> Bool {
        switch performative {
        case .open:
            try await Self.write(
                &connection,
                .open(
                    AMQPOpen(
                        containerId: "azure-iot-emulator-dps",
                        hostname: nil,
                        maxFrameSize: Self.maximumFrameSize,
                        channelMax: 0,
                        idleTimeOut: 240_000,
                        properties: [AMQPMapEntry(.symbol("product"), .string("azure-iot-emulator"))]
                    )
                )
            )
        case .begin:
            guard connection.sessions[connection.channel] == nil, connection.sessions.count < 2 else {
                try await Self.close(&connection, "amqp:resource-limit-exceeded", "two sessions at most")
                return false
            }
            connection.sessions[connection.channel] = 0
            try await Self.write(
                &connection,
                .begin(
                    AMQPBegin(
                        remoteChannel: connection.channel,
                        nextOutgoingId: connection.nextOutgoingId,
                        incomingWindow: 5000,
                        outgoingWindow: 5000,
                        handleMax: 3
                    )
                )
            )
        case .attach(let attach):
            guard connection.sessions[connection.channel] != nil else {
                try await Self.close(&connection, "amqp:not-allowed", "attach before begin")
                return false
            }
            let address = attach.isReceiver ? attach.source?.address : attach.target?.address
            guard var named = address.flatMap(Self.session(path:)) else {
                return try await self.refuse(
                    &connection,
                    attach,
                    "amqp:not-found",
                    "DPS serves {idScope}/registrations/{id}"
                )
            }
            if let current = session {
                guard current.idScope == named.idScope, current.registrationId == named.registrationId else {
                    return try await self.refuse(
                        &connection,
                        attach,
                        "amqp:unauthorized-access",
                        "another registration"
                    )
                }
            } else {
                // Attested by its certificate (X.509), on the first link.
                guard await self.attest(&named, certificates: certificates) else {
                    return try await self.refuse(&connection, attach, "amqp:unauthorized-access", "not attested")
                }
                session = named
            }
            for entry in attach.properties ?? [] {
                if case .symbol("com.microsoft:api-version") = entry.key, case .string(let version) = entry.value,
                    !version.isEmpty, version.utf8.count <= 64
                {
                    session?.apiVersion = version
                }
            }
            guard connection.nextHandle < 2 else {
                return try await self.refuse(&connection, attach, "amqp:resource-limit-exceeded", "two links at most")
            }
            let ours = connection.nextHandle
            connection.nextHandle += 1
            try await Self.write(
                &connection,
                .attach(
                    AMQPAttach(
                        name: attach.name,
                        handle: ours,
                        isReceiver: !attach.isReceiver,
                        senderSettleMode: attach.senderSettleMode,
                        receiverSettleMode: attach.receiverSettleMode,
                        source: attach.source,
                        target: attach.target,
                        initialDeliveryCount: attach.isReceiver ? 0 : nil,
                        maxMessageSize: UInt64(Self.maximumFrameSize)
                    )
                )
            )
            if attach.isReceiver {
                connection.answerHandle = ours
                connection.receiverHandle = attach.handle
                connection.answerChannel = connection.channel
            } else {
                connection.requestHandle = attach.handle
                try await Self.write(
                    &connection,
                    Self.flow(
                        connection,
                        handle: attach.handle,
                        deliveryCount: attach.initialDeliveryCount,
                        credit: Self.credit
                    )
                )
            }
        case .flow(let flow):
            if let handle = flow.handle, handle == connection.receiverHandle,
                connection.channel == connection.answerChannel, let credit = flow.linkCredit
            {
                connection.answerCredit = credit
                try await Self.drain(&connection)
            }
        case .transfer(let transfer, let payload):
            guard transfer.handle == connection.requestHandle, let current = session else {
                try await Self.close(
                    &connection,
                    "amqp:not-allowed",
                    "a transfer on a link that does not take requests"
                )
                return false
            }
            guard connection.partial.count + payload.count <= Int(Self.maximumFrameSize) else {
                try await Self.close(&connection, "amqp:link:message-size-exceeded", "a request over 64 KB")
                return false
            }
            connection.partial += payload
            if transfer.more == true { return true }
            let bytes = connection.partial
            connection.partial = []
            if transfer.settled != true, let deliveryId = transfer.deliveryId {
                try await Self.write(
                    &connection,
                    .disposition(AMQPDisposition(isReceiver: true, first: deliveryId, settled: true, state: .accepted))
                )
            }
            let message: AMQPMessage
            do {
                message = try AMQPMessage(decoding: bytes)
            } catch {
                try await Self.close(&connection, "amqp:decode-error", "the request is not an AMQP message")
                return false
            }
            let answer = await self.answer(message, current, certificates: certificates)
            connection.waiting.append(answer)
            guard connection.waiting.count <= Int(Self.credit) * 2 else {
                try await Self.close(&connection, "amqp:resource-limit-exceeded", "too many answers not taken")
                return false
            }
            try await Self.drain(&connection)
            // Credit back for the request just taken.
            try await Self.write(
                &connection,
                Self.flow(connection, handle: connection.requestHandle, deliveryCount: nil, credit: Self.credit)
            )
        case .disposition:
            break
        case .detach(let detach):
            try await Self.write(&connection, .detach(AMQPDetach(handle: detach.handle, closed: true)))
        case .end:
            try await Self.write(&connection, .end(AMQPEndOrClose()))
            connection.sessions[connection.channel] = nil
        case .close:
            try await Self.write(&connection, .close(AMQPEndOrClose()))
            return false
        default:
            try await Self.close(&connection, "amqp:not-allowed", "an unexpected frame")
            return false
        }
        return true
    }

    /// The encoded answer message to a request.
    private func answer(_ message: AMQPMessage, _ session: Session, certificates: [X509Certificate]) async -> [UInt8] {
        var type: String?
        var operationId: String?
        for (key, value) in message.applicationProperties {
            guard case .string(let text) = value else { continue }
            if key == "iotdps-operation-type" { type = text }
            if key == "iotdps-operation-id" { operationId = text }
        }
        let base = "/\(session.idScope)/registrations/\(session.registrationId)"
        var headers: [String: String] = ["content-type": "application/json"]
        headers["authorization"] = session.authorization
        let response: HTTPResponse
        switch type {
        case "iotdps-register"?:
            response = await self.service.handle(
                HTTPRequest(
                    method: "PUT",
                    path: base + "/register",
                    query: ["api-version": session.apiVersion],
                    headers: headers,
                    body: message.data ?? [],
                    allowsUnnamedSASKey: true
                ),
                peerCertificates: certificates
            )
        case "iotdps-get-operationstatus"? where operationId.map({ !$0.isEmpty && !$0.contains("/") }) == true:
            response = await self.service.handle(
                HTTPRequest(
                    method: "GET",
                    path: base + "/operations/\(operationId ?? "")",
                    query: ["api-version": session.apiVersion],
                    headers: headers,
                    body: [],
                    allowsUnnamedSASKey: true
                ),
                peerCertificates: certificates
            )
        default:
            response = ProvisioningService.error(400, 400_004, "iotdps-operation-type is missing or unknown")
        }
        var answer = AMQPMessage(data: response.body)
        answer.correlationId = message.correlationId
        answer.contentType = "application/json"
        answer.applicationProperties = [("iotdps-status", .int(Int32(clamping: response.status)))]
        if let retryAfter = response.headers.first(where: { $0.0.lowercased() == "retry-after" })?.1 {
            answer.applicationProperties.append(("retry-after", .string(retryAfter)))
        }
        return (try? answer.encoded()) ?? []
    }

    private func attest(_ session: inout Session, certificates: [X509Certificate]) async -> Bool {
        session.attested = await self.service.attests(
            idScope: session.idScope,
            registrationId: session.registrationId,
            authorization: session.authorization,
            certificates: certificates,
            transport: "AMQP"
        )
        return session.attested
    }

    /// `[amqps://{host}]/{idScope}/registrations/{registrationId}`, or the SASL user `{idScope}/registrations/{id}`.
    static func session(path: String) -> Session? {
        var rest = Substring(path)
        if rest.hasPrefix("amqps://") || rest.hasPrefix("amqp://") {
            rest = rest.drop { $0 != "/" }.dropFirst(2)
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            rest = rest[rest.index(after: slash)...]
        }
        if rest.hasPrefix("/") { rest = rest.dropFirst() }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "registrations", !parts[0].isEmpty, !parts[2].isEmpty,
            parts[0].utf8.count <= 64, parts[2].utf8.count <= 128
        else { return nil }
        return Session(idScope: String(parts[0]), registrationId: String(parts[2]))
    }

    /// SASL PLAIN's `[authzid] NUL authcid NUL passwd`.
    static func plain(_ response: [UInt8]) -> (user: String, password: String)? {
        let fields = response.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { return nil }
        return (String(decoding: fields[1], as: UTF8.self), String(decoding: fields[2], as: UTF8.self))
    }

    // MARK: - Frames

    private func refuse(_ connection: inout Connection, _ attach: AMQPAttach, _ condition: String, _ text: String)
        async throws -> Bool
    {
        self.logger.info("DPS over AMQP: a link refused", metadata: ["reason": "\(text)"])
        try await Self.close(&connection, condition, text)
        return false
    }

    private static func flow(_ connection: Connection, handle: UInt32?, deliveryCount: UInt32?, credit: UInt32)
        -> AMQPPerformative
    {
        .flow(
            AMQPFlow(
                nextIncomingId: nil,
                incomingWindow: 5000,
                nextOutgoingId: connection.nextOutgoingId,
                outgoingWindow: 5000,
                handle: handle,
                deliveryCount: deliveryCount ?? 0,
                linkCredit: credit
            )
        )
    }

    /// Sends waiting answers while the client's receiver has credit.
    private static func drain(_ connection: inout Connection) async throws {
        guard let handle = connection.answerHandle else { return }
        let current = connection.channel
        connection.channel = connection.answerChannel
        defer { connection.channel = current }
        while connection.answerCredit > 0, !connection.waiting.isEmpty {
            let payload = connection.waiting.removeFirst()
            let deliveryId = connection.nextDeliveryId
            connection.nextDeliveryId &+= 1
            connection.answerCredit -= 1
            try await Self.write(
                &connection,
                .transfer(
                    AMQPTransfer(
                        handle: handle,
                        deliveryId: deliveryId,
                        deliveryTag: withUnsafeBytes(of: deliveryId.bigEndian) { Array($0) },
                        messageFormat: 0,
                        // Unsettled, as DPS sends answers: the client accepts each (its disposition changes nothing).
                        settled: false
                    ),
                    payload: payload
                )
            )
            connection.nextOutgoingId &+= 1
        }
    }

    private static func close(_ connection: inout Connection, _ condition: String, _ text: String) async throws {
        try await Self.write(
            &connection,
            .close(AMQPEndOrClose(error: AMQPError(condition: condition, description: text)))
        )
    }

    private static func write(
        _ connection: inout Connection,
        _ performative: AMQPPerformative,
        type: AMQPFrame.FrameType = .amqp
    ) async throws {
        let frame = AMQPFrame(type: type, channel: connection.channel, body: try performative.encoded())
        try await connection.tls.write(frame.encoded, timeout: .seconds(10))
    }

    private static func header(_ connection: inout Connection, timeout: Duration) async throws -> AMQPProtocolHeader {
        while true {
            if let header = try AMQPProtocolHeader.parse(connection.buffer[...]) {
                connection.buffer.removeFirst(8)
                return header
            }
            try await Self.fill(&connection, timeout: timeout)
        }
    }

    private static func frame(_ connection: inout Connection, timeout: Duration) async throws
        -> (AMQPPerformative, UInt16)
    {
        while true {
            if let (frame, size) = try connection.framer.nextFrame(in: connection.buffer[...]) {
                connection.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return (try AMQPPerformative.decode(frame.body), frame.channel)
            }
            try await Self.fill(&connection, timeout: timeout)
        }
    }

    private static func performative(_ connection: inout Connection, timeout: Duration) async throws
        -> AMQPPerformative
    {
        while true {
            if let (frame, size) = try connection.framer.nextFrame(in: connection.buffer[...]) {
                connection.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await Self.fill(&connection, timeout: timeout)
        }
    }

    private static func fill(_ connection: inout Connection, timeout: Duration) async throws {
        let bytes = try await connection.tls.read(maxBytes: 64 * 1024, timeout: timeout)
        guard !bytes.isEmpty else { throw AzureIoTError(.connectionClosed, "the device closed the connection") }
        connection.buffer += bytes
    }
}
