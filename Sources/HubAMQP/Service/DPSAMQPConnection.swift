package import AzureIoTCore
import Foundation

/// The I/O of DPS over AMQP for one registration (not public API; `DPSClient` uses it for its `.amqp` and
/// `.amqpWebSockets` transports), as Azure's C and Node provisioning clients speak it: SASL PLAIN as
/// `{idScope}/registrations/{registrationId}` with the registration's SAS token, or no SASL layer with an X.509
/// client certificate; a receiver and a sender on `amqps://{host}/{idScope}/registrations/{registrationId}` with the
/// `com.microsoft:api-version` link property; each request a message with a fresh correlation id and the
/// `iotdps-operation-type` (and `iotdps-operation-id`) application properties; each answer the REST body with the
/// same correlation id, and `retry-after` as an application property. The protocol is ``AMQPClientState``'s; this
/// actor moves bytes, within the caller's deadline.
package actor DPSAMQPConnection {
    /// Where and who.
    package struct Settings: Sendable {
        package var host: String
        package var port: Int
        /// TLS, with the client certificate for X.509 and the WebSocket upgrade for `amqp-ws`.
        package var tls: TLSConfiguration
        package var idScope: String
        package var registrationId: String
        package var apiVersion: String
        package var userAgent: String
        /// The SAS token for SASL PLAIN (symmetric keys); `nil` for X.509 (no SASL layer).
        package var token: (@Sendable () async throws -> String)?

        package init(
            host: String,
            port: Int,
            tls: TLSConfiguration,
            idScope: String,
            registrationId: String,
            apiVersion: String,
            userAgent: String,
            token: (@Sendable () async throws -> String)?
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.idScope = idScope
            self.registrationId = registrationId
            self.apiVersion = apiVersion
            self.userAgent = userAgent
            self.token = token
        }
    }

    /// One answer: the status the body stands for, DPS's `retry-after`, and the body (REST's JSON).
    package struct Answer: Sendable {
        package var status: Int
        package var retryAfter: String?
        package var body: [UInt8]
    }

    private let settings: Settings
    private var io = DPSAMQPConnection.makeIO()
    private var nextSequence: UInt64 = 0
    private var deadline = ContinuousClock.now

    package init(settings: Settings) {
        self.settings = settings
    }

    /// The link address: `amqps://{host}/{idScope}/registrations/{registrationId}`.
    package var address: String {
        "amqps://\(self.settings.host)/\(self.settings.idScope)/registrations/\(self.settings.registrationId)"
    }

    /// Sends one request (`iotdps-register` with the registration body, or `iotdps-get-operationstatus` with the
    /// operation id) and waits for its answer until `deadline`. Transport failures throw `AzureIoTError` (for the
    /// caller's retry policy); a failed exchange closes the connection, and the next one opens a new one.
    package func exchange(operationType: String, operationId: String?, body: [UInt8], deadline: ContinuousClock.Instant)
        async throws -> Answer
    {
        self.deadline = deadline
        do {
            if self.io.connection == nil { try await self.open() }
            let correlationId = UUID().uuidString.lowercased()
            var message = AMQPMessage(data: body)
            message.correlationId = .string(correlationId)
            message.contentType = "application/json"
            message.contentEncoding = "utf-8"
            message.applicationProperties = [("iotdps-operation-type", .string(operationType))]
            if let operationId {
                message.applicationProperties.append(("iotdps-operation-id", .string(operationId)))
            } else {
                message.applicationProperties.append(("iotdps-forceRegistration", .boolean(false)))
            }
            let sequence = self.nextSequence
            self.nextSequence += 1
            try await self.io.perform(
                self.io.state.enqueue(sequence: sequence, payload: try message.encoded()),
                timeout: self.remaining()
            )
            while true {
                while let index = self.io.pending.firstIndex(where: { action in
                    switch action {
                    case .settled(sequence, _): return true
                    case .received: return true
                    default: return false
                    }
                }) {
                    switch self.io.pending.remove(at: index) {
                    case .settled(_, let error):
                        // DPS accepts the request before it answers; a rejection is the exchange failing.
                        if let error { throw error }
                    case .received(let answer, let deliveryId, let presettled, _):
                        if !presettled {
                            try await self.io.perform(
                                self.io.state.settle(deliveryId, state: .accepted),
                                timeout: self.remaining()
                            )
                        }
                        guard answer.correlationId == .string(correlationId) else { continue }
                        return Self.answer(answer)
                    default:
                        continue
                    }
                }
                try await self.io.step(timeout: self.remaining())
            }
        } catch {
            self.close()
            throw error
        }
    }

    /// Closes the connection (best effort).
    package func finish() async {
        if let connection = self.io.connection {
            let close = AMQPFrame(type: .amqp, body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? [])
            try? await connection.write(close.encoded, timeout: .seconds(1))
        }
        self.close()
    }

    private func close() {
        self.io.connection?.close()
        self.io = Self.makeIO()
    }

    private static func makeIO() -> AMQPClientIO {
        AMQPClientIO(state: AMQPClientState(cloudToDeviceCredit: 16)) { AzureIoTError(.connectionClosed, $0) }
    }

    /// The status an answer's body stands for: DPS's `errorCode` (e.g. 401002 is 401), `assigning` 202, else 200.
    static func answer(_ message: AMQPMessage) -> Answer {
        let body =
            message.data ?? message.value.flatMap { value -> [UInt8]? in
                if case .string(let text) = value { return Array(text.utf8) }
                if case .binary(let bytes) = value { return bytes }
                return nil
            } ?? []
        var retryAfter: String?
        for (key, value) in message.applicationProperties where key.lowercased() == "retry-after" {
            switch value {
            case .string(let text): retryAfter = text
            case .int(let number): retryAfter = String(number)
            case .uint(let number): retryAfter = String(number)
            case .long(let number): retryAfter = String(number)
            case .ulong(let number): retryAfter = String(number)
            default: break
            }
        }
        let json = try? JSONValue(parsing: body)
        var status = 200
        if case .number(let code)? = json?["errorCode"], let value = Int(code.description), value >= 100_000 {
            status = min(599, max(400, value / 1000))
        } else if json?["status"]?.stringValue == "assigning" {
            status = 202
        }
        return Answer(status: status, retryAfter: retryAfter, body: body)
    }

    // MARK: - Opening

    private func open() async throws {
        let connection = try await TLSConnection.connect(
            host: self.settings.host,
            port: self.settings.port,
            configuration: self.settings.tls
        )
        self.io.connection = connection
        if let token = self.settings.token {
            try await connection.write(AMQPProtocolHeader.sasl.bytes, timeout: self.remaining())
            guard try await self.io.header(timeout: self.remaining()) == .sasl else {
                throw HubAMQPError(.protocolViolation, "DPS did not answer with the SASL protocol header")
            }
            guard case .saslMechanisms(let offered) = try await self.io.performative(timeout: self.remaining()),
                offered.mechanisms.contains("PLAIN")
            else {
                throw HubAMQPError(.authenticationFailed, "DPS does not offer SASL PLAIN")
            }
            let user = "\(self.settings.idScope)/registrations/\(self.settings.registrationId)"
            let secret = try await token()
            let initial = SASLInit(
                mechanism: "PLAIN",
                initialResponse: [0] + Array(user.utf8) + [0] + Array(secret.utf8),
                hostname: self.settings.host
            )
            try await connection.write(
                AMQPFrame(type: .sasl, body: try AMQPPerformative.saslInit(initial).encoded()).encoded,
                timeout: self.remaining()
            )
            guard case .saslOutcome(let outcome) = try await self.io.performative(timeout: self.remaining()),
                outcome.code == .ok
            else {
                throw HubAMQPError(.authenticationFailed, "DPS refused SASL PLAIN as \(user)")
            }
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes, timeout: self.remaining())
        guard try await self.io.header(timeout: self.remaining()) == .amqp else {
            throw HubAMQPError(.protocolViolation, "DPS did not answer with the AMQP protocol header")
        }
        try await self.io.perform(
            self.io.state.open(
                containerId: self.settings.registrationId,
                hostname: self.settings.host,
                idleTimeout: 0,
                properties: [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(self.settings.userAgent))]
            ),
            timeout: self.remaining()
        )
        try await self.io.step(timeout: self.remaining()) { $0.remoteOpened }
        let properties = [AMQPMapEntry(.symbol("com.microsoft:api-version"), .string(self.settings.apiVersion))]
        try await self.io.perform(
            self.io.state.attach(.cloudToDevice(0), name: "dps-receiver", address: self.address, properties: properties)
                + self.io.state.attach(.telemetry(0), name: "dps-sender", address: self.address, properties: properties),
            timeout: self.remaining()
        )
        try await self.io.step(timeout: self.remaining()) {
            $0.isAttached(.cloudToDevice(0)) && $0.isAttached(.telemetry(0))
        }
    }

    // MARK: - Time

    private func remaining() -> Duration {
        max(.milliseconds(1), self.deadline - ContinuousClock.now)
    }
}
