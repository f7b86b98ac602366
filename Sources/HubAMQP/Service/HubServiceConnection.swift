package import AzureIoTCore
import Foundation

/// A backend's AMQP connection to IoT Hub (not public API; the `azure-iot service` commands use it): SASL PLAIN as
/// `{policy}@sas.root.{hub}` with a service token, then cloud-to-device messages on `/messages/devicebound` and
/// readers of the hub's built-in event partitions. The protocol is ``AMQPClientState``'s; this actor only moves
/// bytes, one step at a time, within the operation time-out.
package actor HubServiceConnection {
    /// Where and who.
    package struct Settings: Sendable {
        /// The host to dial (the connection string's `HostName` without a port).
        package var host: String
        /// 5671 for IoT Hub.
        package var port: Int
        /// The hub's name for SAS `sr` and the SASL user (`{hub}.azure-devices.net`, or the emulator's host).
        package var tokenResource: String
        /// The hub's short name, for `{policy}@sas.root.{hub}`.
        package var hubName: String
        package var keyName: String
        package var key: SymmetricKey
        package var trustRoots: TLSConfiguration.TrustRoots
        package var operationTimeout: Duration

        package init(
            host: String,
            port: Int,
            tokenResource: String,
            hubName: String,
            keyName: String,
            key: SymmetricKey,
            trustRoots: TLSConfiguration.TrustRoots,
            operationTimeout: Duration
        ) {
            self.host = host
            self.port = port
            self.tokenResource = tokenResource
            self.hubName = hubName
            self.keyName = keyName
            self.key = key
            self.trustRoots = trustRoots
            self.operationTimeout = operationTimeout
        }
    }

    private let settings: Settings
    private var state = AMQPClientState(cloudToDeviceCredit: 100)
    private var connection: TLSConnection?
    private var buffer: [UInt8] = []
    private var framer = AMQPFramer(maximumFrameSize: 65_536)
    /// Actions the state returned that a wait has not taken yet (settlements, received messages).
    private var pending: [AMQPClientState.Action] = []
    private var nextLink = 0

    package init(settings: Settings) {
        self.settings = settings
    }

    /// Connects, authenticates and opens a session.
    package func open() async throws {
        let connection = try await TLSConnection.connect(
            host: self.settings.host,
            port: self.settings.port,
            configuration: TLSConfiguration(
                trustRoots: self.settings.trustRoots,
                connectTimeout: self.settings.operationTimeout
            )
        )
        self.connection = connection
        try await connection.write(AMQPProtocolHeader.sasl.bytes, timeout: self.settings.operationTimeout)
        guard try await self.header() == .sasl else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the SASL protocol header")
        }
        guard case .saslMechanisms(let offered) = try await self.performative(),
            offered.mechanisms.contains("PLAIN")
        else {
            throw HubAMQPError(.authenticationFailed, "the peer does not offer SASL PLAIN")
        }
        let token = SASToken.generate(
            for: SASResource(uri: self.settings.tokenResource),
            key: self.settings.key,
            expiry: UnixTime.now() + 3_600,
            keyName: self.settings.keyName
        )
        let user = "\(self.settings.keyName)@sas.root.\(self.settings.hubName)"
        let initial = SASLInit(
            mechanism: "PLAIN",
            initialResponse: [0] + Array(user.utf8) + [0] + Array(token.secretValue.utf8),
            hostname: self.settings.host
        )
        try await connection.write(
            AMQPFrame(type: .sasl, body: try AMQPPerformative.saslInit(initial).encoded()).encoded,
            timeout: self.settings.operationTimeout
        )
        guard case .saslOutcome(let outcome) = try await self.performative(), outcome.code == .ok else {
            throw HubAMQPError(.authenticationFailed, "SASL PLAIN as \(user) was refused")
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes, timeout: self.settings.operationTimeout)
        guard try await self.header() == .amqp else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the AMQP protocol header")
        }
        try await self.perform(
            self.state.open(
                containerId: "azure-iot-service-\(UUID().uuidString.prefix(8))",
                hostname: self.settings.host,
                idleTimeout: 0,
                properties: [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(SDKVersion.clientName))]
            )
        )
        try await self.step(until: "the session") { $0.remoteOpened }
    }

    /// Sends one cloud-to-device message (its `to` names the device) and waits for the hub's outcome.
    package func sendCloudToDevice(_ message: AMQPMessage) async throws {
        let link = AMQPClientLink.telemetry(0)
        if !self.state.hasLink(link) {
            try await self.perform(
                self.state.attach(link, name: "service-c2d", address: "/messages/devicebound", properties: nil)
            )
            try await self.step(until: "the cloud-to-device link") { $0.isAttached(link) }
        }
        let sequence = UInt64(self.nextLink)
        self.nextLink += 1
        try await self.perform(self.state.enqueue(sequence: sequence, payload: try message.encoded()))
        while true {
            if let index = self.pending.firstIndex(where: {
                if case .settled(sequence, _) = $0 { true } else { false }
            }), case .settled(_, let error) = self.pending.remove(at: index) {
                if let error { throw error }
                return
            }
            try await self.step()
        }
    }

    /// Attaches a receiver to each of `addresses` (with Event Hubs' selector `filter` when given) and hands every
    /// message to `handle` with the index of its address until `handle` returns `false`; each is accepted.
    package func receive(
        from addresses: [String],
        filter: String?,
        _ handle: (Int, AMQPMessage) -> Bool
    ) async throws {
        let filterEntries = filter.map { selector in
            [
                AMQPMapEntry(
                    .symbol("apache.org:selector-filter:string"),
                    .described(descriptor: .symbol("apache.org:selector-filter:string"), value: .string(selector))
                )
            ]
        }
        for (index, address) in addresses.enumerated() {
            try await self.perform(
                self.state.attach(
                    .cloudToDevice(index),
                    name: "service-reader-\(index)",
                    address: address,
                    properties: nil,
                    filter: filterEntries
                )
            )
        }
        while true {
            while let index = self.pending.firstIndex(where: {
                if case .received = $0 { true } else { false }
            }) {
                guard
                    case .received(let message, let deliveryId, let settled, let slot) = self.pending.remove(at: index)
                else { continue }
                if !settled { try await self.perform(self.state.settle(deliveryId, state: .accepted)) }
                if !handle(slot, message) { return }
            }
            try await self.step()
        }
    }

    /// Closes the connection (best effort).
    package func close() async {
        guard let connection = self.connection else { return }
        self.connection = nil
        let close = AMQPFrame(type: .amqp, body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? [])
        try? await connection.write(close.encoded, timeout: .seconds(2))
        connection.close()
    }

    // MARK: - Moving bytes

    private func perform(_ actions: [AMQPClientState.Action]) async throws {
        guard let connection = self.connection else {
            throw HubAMQPError(.connectionClosed, "the connection is not open")
        }
        for action in actions {
            switch action {
            case .write(let performatives):
                var bytes: [UInt8] = []
                for performative in performatives {
                    bytes += AMQPFrame(type: .amqp, body: try performative.encoded()).encoded
                }
                try await connection.write(bytes, timeout: self.settings.operationTimeout)
            case .writeFrames(let frames):
                try await connection.write(frames, timeout: self.settings.operationTimeout)
            case .progress:
                break
            case .settled, .received, .message, .identityDetached:
                self.pending.append(action)
            }
        }
    }

    /// Reads and applies frames until `condition` holds.
    private func step(until what: String, _ condition: (AMQPClientState) -> Bool) async throws {
        while !condition(self.state) { try await self.step() }
    }

    /// Reads once and applies every complete frame.
    private func step() async throws {
        guard let connection = self.connection else {
            throw HubAMQPError(.connectionClosed, "the connection is not open")
        }
        let chunk = try await connection.read(timeout: self.settings.operationTimeout)
        guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
        self.buffer += chunk
        var consumed = 0
        while let (frame, size) = try self.framer.nextFrame(in: self.buffer[consumed...]) {
            consumed += size
            if frame.isHeartbeat { continue }
            try await self.perform(try self.state.receive(try AMQPPerformative.decode(frame.body)))
        }
        self.buffer.removeFirst(consumed)
    }

    private func header() async throws -> AMQPProtocolHeader {
        while true {
            if let header = try AMQPProtocolHeader.parse(self.buffer[...]) {
                self.buffer.removeFirst(8)
                return header
            }
            try await self.fill()
        }
    }

    private func performative() async throws -> AMQPPerformative {
        while true {
            if let (frame, size) = try self.framer.nextFrame(in: self.buffer[...]) {
                self.buffer.removeFirst(size)
                if frame.isHeartbeat { continue }
                return try AMQPPerformative.decode(frame.body)
            }
            try await self.fill()
        }
    }

    private func fill() async throws {
        guard let connection = self.connection else {
            throw HubAMQPError(.connectionClosed, "the connection is not open")
        }
        let chunk = try await connection.read(timeout: self.settings.operationTimeout)
        guard !chunk.isEmpty else { throw HubAMQPError(.connectionClosed, "the peer closed the connection") }
        self.buffer += chunk
    }
}
