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
    private let io = AMQPClientIO(state: AMQPClientState(cloudToDeviceCredit: 100)) {
        HubAMQPError(.connectionClosed, $0)
    }
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
        self.io.connection = connection
        let timeout = self.settings.operationTimeout
        try await connection.write(AMQPProtocolHeader.sasl.bytes, timeout: timeout)
        guard try await self.io.header(timeout: timeout) == .sasl else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the SASL protocol header")
        }
        guard case .saslMechanisms(let offered) = try await self.io.performative(timeout: timeout),
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
        guard case .saslOutcome(let outcome) = try await self.io.performative(timeout: timeout), outcome.code == .ok
        else {
            throw HubAMQPError(.authenticationFailed, "SASL PLAIN as \(user) was refused")
        }
        try await connection.write(AMQPProtocolHeader.amqp.bytes, timeout: self.settings.operationTimeout)
        guard try await self.io.header(timeout: timeout) == .amqp else {
            throw HubAMQPError(.protocolViolation, "the peer did not answer with the AMQP protocol header")
        }
        try await self.io.perform(
            self.io.state.open(
                containerId: "azure-iot-service-\(UUID().uuidString.prefix(8))",
                hostname: self.settings.host,
                idleTimeout: 0,
                properties: [AMQPMapEntry(.symbol("com.microsoft:client-version"), .string(SDKVersion.clientName))]
            ),
            timeout: timeout
        )
        try await self.io.step(timeout: timeout) { $0.remoteOpened }
    }

    /// Sends one cloud-to-device message (its `to` names the device) and waits for the hub's outcome.
    package func sendCloudToDevice(_ message: AMQPMessage) async throws {
        let link = AMQPClientLink.telemetry(0)
        let timeout = self.settings.operationTimeout
        if !self.io.state.hasLink(link) {
            try await self.io.perform(
                self.io.state.attach(link, name: "service-c2d", address: "/messages/devicebound", properties: nil),
                timeout: timeout
            )
            try await self.io.step(timeout: timeout) { $0.isAttached(link) }
        }
        let sequence = UInt64(self.nextLink)
        self.nextLink += 1
        try await self.io.perform(
            self.io.state.enqueue(sequence: sequence, payload: try message.encoded()),
            timeout: timeout
        )
        while true {
            if let index = self.io.pending.firstIndex(where: {
                if case .settled(sequence, _) = $0 { true } else { false }
            }), case .settled(_, let error) = self.io.pending.remove(at: index) {
                if let error { throw error }
                return
            }
            try await self.io.step(timeout: timeout)
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
        let timeout = self.settings.operationTimeout
        for (index, address) in addresses.enumerated() {
            try await self.io.perform(
                self.io.state.attach(
                    .cloudToDevice(index),
                    name: "service-reader-\(index)",
                    address: address,
                    properties: nil,
                    filter: filterEntries
                ),
                timeout: timeout
            )
        }
        while true {
            while let index = self.io.pending.firstIndex(where: {
                if case .received = $0 { true } else { false }
            }) {
                guard
                    case .received(let message, let deliveryId, let settled, let slot) = self.io.pending.remove(
                        at: index
                    )
                else { continue }
                if !settled {
                    try await self.io.perform(self.io.state.settle(deliveryId, state: .accepted), timeout: timeout)
                }
                if !handle(slot, message) { return }
            }
            try await self.io.step(timeout: timeout)
        }
    }

    /// Closes the connection (best effort).
    package func close() async {
        guard let connection = self.io.connection else { return }
        self.io.connection = nil
        let close = AMQPFrame(type: .amqp, body: (try? AMQPPerformative.close(AMQPEndOrClose()).encoded()) ?? [])
        try? await connection.write(close.encoded, timeout: .seconds(2))
        connection.close()
    }
}
