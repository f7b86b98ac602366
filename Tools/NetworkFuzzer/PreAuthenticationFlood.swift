import AzureIoTCore
import Foundation
import HubAMQP
import HubMQTT

/// Issue #10's memory attacks without credentials, at scale: many connections each holding as much as the emulator
/// lets a client hold before it authenticates (AMQP: SASL ANONYMOUS, three `$cbs` links with unfinished transfers
/// just under the allowance; MQTT: a CONNECT whose body never finishes), then the same plus one byte over, which the
/// emulator must refuse. Reports the emulator's resident memory before, while they are held, and after they close.
enum PreAuthenticationFlood {
    static let connectionsPerProtocol = 150

    static func run(_ target: EmulatorProcess) async throws -> String {
        let before = target.residentBytes()
        var held: [TLSConnection] = []
        defer { for connection in held { connection.close() } }
        var refused = 0
        for index in 0..<(Self.connectionsPerProtocol * 2) {
            let amqp = index % 2 == 0
            do {
                let connection = try await within(.seconds(10)) {
                    try await TLSConnection.connect(
                        host: "localhost",
                        port: amqp ? target.amqpPort : target.mqttPort,
                        configuration: target.trust
                    )
                }
                try await (amqp ? Self.holdAMQP(connection) : Self.holdMQTT(connection))
                held.append(connection)
            } catch {
                refused += 1
            }
        }
        try await Task.sleep(for: .seconds(1))
        let during = target.residentBytes()
        // One byte over the AMQP allowance is refused with a close, and the connection ends.
        let over = try await within(.seconds(10)) {
            try await TLSConnection.connect(host: "localhost", port: target.amqpPort, configuration: target.trust)
        }
        try await Self.holdAMQP(over, extra: 1)
        let overClosed = await Self.endsSoon(over)
        over.close()
        for connection in held { connection.close() }
        held.removeAll()
        try await Task.sleep(for: .seconds(2))
        let after = target.residentBytes()
        let perConnection = (during - before) / max(1, Self.connectionsPerProtocol * 2 - refused)
        return
            "\(Self.connectionsPerProtocol * 2 - refused) connections (\(Self.connectionsPerProtocol) AMQP with 3 links of unfinished transfers, "
            + "\(Self.connectionsPerProtocol) MQTT with an unfinished CONNECT) each holding its pre-authentication allowance: emulator RSS "
            + "\(before >> 20) MiB before, \(during >> 20) MiB while held (\(perConnection >> 10) KiB per connection), \(after >> 20) MiB after they closed; "
            + "one byte over the allowance \(overClosed ? "was refused" : "was NOT refused"); \(refused) refused before the allowance"
    }

    /// Reads until the server ends the connection; whether it did within 10 s.
    static func endsSoon(_ connection: TLSConnection) async -> Bool {
        let end = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < end {
            do {
                if try await connection.read(timeout: .seconds(1)).isEmpty { return true }
            } catch let error as AzureIoTError where error.code == .timedOut {
                continue
            } catch {
                return true
            }
        }
        return false
    }

    /// SASL ANONYMOUS, open, begin, three `$cbs` sender links, and unfinished transfers filling the 64 KiB allowance
    /// (plus `extra` bytes).
    static func holdAMQP(_ connection: TLSConnection, extra: Int = 0) async throws {
        var chunks: [[UInt8]] = [
            AMQPProtocolHeader.sasl.bytes, AMQPCases.frame(.saslInit(SASLInit(mechanism: "ANONYMOUS")), type: .sasl),
            AMQPProtocolHeader.amqp.bytes,
        ]
        chunks.append(AMQPCases.frame(.open(AMQPOpen(containerId: "flood", maxFrameSize: 65_536, channelMax: 0))))
        chunks.append(AMQPCases.frame(.begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 5000))))
        let allowance = 64 * 1024 + extra
        for handle in 0..<3 as Range<UInt32> {
            chunks.append(
                AMQPCases.frame(
                    .attach(
                        AMQPAttach(
                            name: "cbs-\(handle)",
                            handle: handle,
                            isReceiver: false,
                            source: AMQPTerminus(address: "f"),
                            target: AMQPTerminus(address: "$cbs"),
                            initialDeliveryCount: 0
                        )
                    )
                )
            )
        }
        for handle in 0..<3 as Range<UInt32> {
            let size = allowance / 3 + (handle == 2 ? allowance % 3 : 0)
            chunks.append(
                AMQPCases.frame(
                    .transfer(
                        AMQPTransfer(
                            handle: handle,
                            deliveryId: handle,
                            deliveryTag: [UInt8(handle)],
                            messageFormat: 0,
                            more: true
                        ),
                        payload: [UInt8](repeating: 0x41, count: size)
                    )
                )
            )
        }
        for chunk in chunks { try await connection.write(chunk, timeout: .seconds(5)) }
    }

    /// A CONNECT announcing just under the pre-authentication packet size, sent all but its last byte.
    static func holdMQTT(_ connection: TLSConnection) async throws {
        let body = 64 * 1024 - 8
        var header: [UInt8] = [0x10]
        var remaining = body
        repeat {
            var byte = UInt8(remaining % 128)
            remaining /= 128
            if remaining > 0 { byte |= 0x80 }
            header.append(byte)
        } while remaining > 0
        try await connection.write(header + [UInt8](repeating: 0, count: body - 1), timeout: .seconds(5))
    }
}
