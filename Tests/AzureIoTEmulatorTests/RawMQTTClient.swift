import AzureIoTCore
import HubMQTT

/// A bare MQTT client over TLS for the cases the SDK's client never produces (bad topics, QoS 2, silence).
struct RawMQTTClient {
    let connection: TLSConnection
    private var buffer: [UInt8] = []

    static func connect(
        port: Int,
        caFile: String,
        clientId: String,
        username: String,
        password: String,
        keepAlive: UInt16 = 60
    ) async throws -> (RawMQTTClient, ConnAckPacket) {
        let connection = try await TLSConnection.connect(
            host: "localhost",
            port: port,
            configuration: TLSConfiguration(trustRoots: .pemFile(caFile))
        )
        var client = RawMQTTClient(connection: connection)
        try await client.send(
            .connect(
                ConnectPacket(
                    clientId: clientId,
                    cleanSession: true,
                    keepAliveSeconds: keepAlive,
                    username: username,
                    password: Array(password.utf8)
                )
            )
        )
        guard case .connack(let connack)? = try await client.next(timeout: .seconds(30)) else {
            throw TestError("no CONNACK")
        }
        return (client, connack)
    }

    func send(_ packet: MQTTPacket) async throws {
        try await self.connection.write(try packet.encoded())
    }

    /// The next packet, or `nil` when the server closed the connection.
    mutating func next(timeout: Duration) async throws -> MQTTPacket? {
        while true {
            if let frame = try MQTTFramer().nextFrame(in: self.buffer[...]) {
                let packet = try MQTTPacket.decode(firstByte: frame.firstByte, body: self.buffer[frame.body])
                self.buffer.removeSubrange(0..<frame.end)
                return packet
            }
            guard let bytes = try await self.connection.readUnlessClosed(timeout: timeout) else { return nil }
            self.buffer += bytes
        }
    }

    /// Reads until the server closes; throws if it does not within `timeout`.
    mutating func expectClosed(within timeout: Duration) async throws {
        while let packet = try await self.next(timeout: timeout) {
            _ = packet
        }
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
