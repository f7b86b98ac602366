import AMQPCodec
import AzureIoTCore
import HubAMQP
import Logging
import MQTTCodec

/// The I/O of DPS over MQTT for one registration: TLS (in a WebSocket when asked), CONNECT and SUBSCRIBE once, then
/// one request at a time, each answered as the REST client reads answers. ``DPSMQTTProtocol`` decides what is sent
/// and what the answers mean. A failed exchange closes the connection; the next one opens a new one.
/// One registration's message connection (MQTT or AMQP): a request, then its answer as the REST client reads
/// answers.
protocol DPSMessageConnection: Actor {
    /// Sends `request` and waits for its answer until `deadline`.
    func exchange(_ request: DPSMQTTProtocol.Request, deadline: ContinuousClock.Instant) async throws -> HTTPResponse
    /// Closes the connection (best effort).
    func finish() async
}

/// DPS over AMQP behind the same exchange as MQTT: ``DPSAMQPConnection`` (in HubAMQP) does the protocol.
actor DPSAMQPExchange: DPSMessageConnection {
    private let connection: DPSAMQPConnection

    init(connection: DPSAMQPConnection) { self.connection = connection }

    func exchange(_ request: DPSMQTTProtocol.Request, deadline: ContinuousClock.Instant) async throws -> HTTPResponse {
        let answer: DPSAMQPConnection.Answer
        do {
            switch request {
            case .register(let body):
                answer = try await self.connection.exchange(
                    operationType: "iotdps-register",
                    operationId: nil,
                    body: body,
                    deadline: deadline
                )
            case .poll(let operationId):
                answer = try await self.connection.exchange(
                    operationType: "iotdps-get-operationstatus",
                    operationId: operationId,
                    body: [],
                    deadline: deadline
                )
            }
        } catch let error as HubAMQPError {
            throw Self.provisioningError(error)
        } catch let error as AMQPCodecError {
            throw ProvisioningError(.malformedResponse, "DPS sent a malformed AMQP frame: \(error)")
        }
        return HTTPResponse(
            status: answer.status,
            headers: answer.retryAfter.map { ["retry-after": $0] } ?? [:],
            body: answer.body
        )
    }

    /// What an AMQP failure of an exchange is to the provisioning client. A transport failure (the `AzureIoTError`
    /// under it, a lost connection, a time-out) is thrown as the `AzureIoTError` it is, as DPS over MQTT and REST
    /// throw theirs: the client retries it when it is transient and keeps the certificate codes. The rest is a
    /// ``ProvisioningError`` with the AMQP error as its cause.
    static func provisioningError(_ error: HubAMQPError) -> any Error {
        if let transport = error.underlying as? AzureIoTError { return transport }
        switch error.code {
        case .authenticationFailed:
            return ProvisioningError(
                .unauthorized,
                "DPS refused the credentials over AMQP: \(error.message)",
                httpStatus: 401,
                underlying: error
            )
        case .timedOut:
            return AzureIoTError(.timedOut, "DPS did not answer over AMQP in time", underlying: error)
        case .connectionClosed, .connectionFailed:
            return AzureIoTError(.connectionClosed, "DPS over AMQP: \(error.message)", underlying: error)
        case .rejected, .released, .modified, .linkDetached:
            return ProvisioningError(
                .serviceError,
                "DPS refused the request over AMQP: \(error.message)",
                underlying: error
            )
        default:
            return ProvisioningError(.malformedResponse, "DPS over AMQP failed: \(error.message)", underlying: error)
        }
    }

    func finish() async { await self.connection.finish() }
}

actor DPSMQTTConnection: DPSMessageConnection {
    private let host: String
    private let port: Int
    private let tls: TLSConfiguration
    private let password: @Sendable () throws -> [UInt8]?
    private let logger: Logger
    private var state: DPSMQTTProtocol
    private var connection: TLSConnection?
    private var buffer: [UInt8] = []
    /// The largest packet DPS is expected to send (its answers are small JSON documents).
    private let framer = MQTTFramer(maximumPacketSize: 256 * 1024)

    init(
        host: String,
        port: Int,
        tls: TLSConfiguration,
        protocol state: DPSMQTTProtocol,
        logger: Logger,
        password: @escaping @Sendable () throws -> [UInt8]?
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.state = state
        self.logger = logger
        self.password = password
    }

    /// Sends `request` and waits for its answer until `deadline`. Transport failures throw `AzureIoTError` (for the
    /// client's retry policy); a refused CONNECT or a packet DPS never sends throws ``ProvisioningError``.
    func exchange(_ request: DPSMQTTProtocol.Request, deadline: ContinuousClock.Instant) async throws -> HTTPResponse {
        do {
            let connection = try await self.open(deadline: deadline)
            try await connection.write(
                try self.state.publish(request).encoded(),
                timeout: Self.remaining(deadline)
            )
            while true {
                for packet in try await self.readPackets(connection, deadline: deadline) {
                    for action in try self.state.receive(packet) {
                        switch action {
                        case .send(let reply):
                            try await connection.write(try reply.encoded(), timeout: Self.remaining(deadline))
                        case .answered(let status, let retryAfter, let body):
                            return HTTPResponse(
                                status: status,
                                headers: retryAfter.map { ["retry-after": $0] } ?? [:],
                                body: body
                            )
                        }
                    }
                }
            }
        } catch let error as MQTTCodecError {
            self.close()
            throw ProvisioningError(.malformedResponse, "DPS sent a malformed MQTT packet: \(error)", underlying: error)
        } catch {
            self.close()
            throw error
        }
    }

    /// Sends DISCONNECT (best effort) and closes.
    func finish() async {
        if let connection = self.connection {
            try? await connection.write(try MQTTPacket.disconnect.encoded(), timeout: .seconds(1))
        }
        self.close()
    }

    private func close() {
        self.connection?.close()
        self.connection = nil
        self.buffer = []
    }

    private func open(deadline: ContinuousClock.Instant) async throws -> TLSConnection {
        if let connection = self.connection { return connection }
        var tls = self.tls
        tls.connectTimeout = max(.milliseconds(1), Self.remaining(deadline))
        let connection = try await TLSConnection.connect(
            host: self.host,
            port: self.port,
            configuration: tls,
            logger: self.logger
        )
        self.connection = connection
        self.buffer = []
        try await connection.write(
            try self.state.connect(password: try self.password(), keepAliveSeconds: 60).encoded(),
            timeout: Self.remaining(deadline)
        )
        // CONNACK comes first (MQTT 3.1.1 §3.2).
        var connack: ConnAckPacket?
        while connack == nil {
            for packet in try await self.readPackets(connection, deadline: deadline) {
                guard case .connack(let answer) = packet else {
                    throw ProvisioningError(.malformedResponse, "DPS sent \(packet) before CONNACK")
                }
                connack = answer
            }
        }
        if let refusal = DPSMQTTProtocol.refusal(connack!) { throw refusal }
        try await connection.write(try self.state.subscribe().encoded(), timeout: Self.remaining(deadline))
        self.logger.debug("DPS over MQTT connected", metadata: ["host": "\(self.host)", "port": "\(self.port)"])
        return connection
    }

    /// The packets that arrive next (at least one), read until `deadline`.
    private func readPackets(_ connection: TLSConnection, deadline: ContinuousClock.Instant) async throws
        -> [MQTTPacket]
    {
        while true {
            let packets = try self.framer.decodePackets(from: &self.buffer)
            if !packets.isEmpty { return packets }
            let bytes = try await connection.read(timeout: Self.remaining(deadline))
            guard !bytes.isEmpty else {
                throw AzureIoTError(.connectionClosed, "DPS closed the MQTT connection")
            }
            self.buffer += bytes
        }
    }

    private static func remaining(_ deadline: ContinuousClock.Instant) -> Duration {
        max(.zero, deadline - ContinuousClock.now)
    }
}
