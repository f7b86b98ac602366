import AzureIoTCore
import AzureIoTEmulator
import Foundation
import HubAMQP
import Testing

/// The emulated hub's AMQP side against this SDK's AMQP client.
@Suite("Emulator: IoT Hub over AMQP")
struct EmulatorAMQPTests {
    @Test("telemetry over SASL PLAIN: properties and application properties recorded, sends settle accepted")
    func telemetry() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        var message = AMQPMessage(data: Array(#"{"t":2}"#.utf8))
        message.messageId = .string("amqp-1")
        message.correlationId = .string("corr-1")
        message.contentType = "application/json"
        message.contentEncoding = "utf-8"
        message.applicationProperties = [("alert", .string("yes")), ("level", .int(3))]
        try await client.send(message)
        // Larger than one frame: reassembled by the emulator.
        try await client.send(AMQPMessage(data: [UInt8](repeating: 0x62, count: 100_000)))
        await client.close()
        let received = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 2)
        #expect(received[0].transport == .amqp && received[0].bodyText == #"{"t":2}"#)
        #expect(received[0].messageId == "amqp-1" && received[0].correlationId == "corr-1")
        #expect(received[0].contentType == "application/json" && received[0].contentEncoding == "utf-8")
        #expect(received[0].properties == ["alert": "yes", "level": "3"])
        #expect(received[1].body.count == 100_000)
    }

    @Test("a wrong token fails SASL with an authentication error; an injected refusal too")
    func refusals() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let wrong = try fixture.amqp(key: EmulatorFixture.groupKey)
        let error = await #expect(throws: HubAMQPError.self) { try await wrong.connect() }
        #expect(error?.code == .authenticationFailed)
        await fixture.emulator.injectFaults { $0.refuseConnections = 1 }
        let refused = try fixture.amqp()
        await #expect(throws: HubAMQPError.self) { try await refused.connect() }
        let fine = try fixture.amqp()
        try await fine.connect()
        await fine.close()
    }

    @Test("C2D over AMQP: complete, reject and abandon are tracked as the hub does (abandoned messages come back)")
    func cloudToDevice() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        try await fixture.emulator.waitUntilConnected(deviceId: "dev1")
        let first = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("one".utf8), properties: ["n": "1"])
        let second = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("two".utf8))
        var iterator = client.cloudToDeviceMessages.makeAsyncIterator()
        let one = try #require(await iterator.next())
        #expect(one.message.data == Array("one".utf8))
        #expect(one.message.applicationProperties.first?.0 == "n")
        try await one.complete()
        let two = try #require(await iterator.next())
        try await two.abandon()
        let again = try #require(await iterator.next())
        #expect(again.message.data == Array("two".utf8))
        try await again.reject()
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: first, state: .completed)
        let rejected = try await fixture.emulator.waitForCloudToDevice(messageId: second, state: .rejected)
        #expect(rejected.deliveryCount == 2)
        await client.close()
    }

    @Test("withheld dispositions keep send waiting until its timeout")
    func withheldDisposition() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = HubAMQPClient(configuration: HubAMQPConfiguration(
            hubHost: fixture.hubHost, deviceId: "dev1", tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)),
            gatewayHostName: "localhost", port: fixture.endpoints.amqp.port, trustRoots: fixture.trust, operationTimeout: .seconds(2)
        ))
        try await client.connect()
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let error = await #expect(throws: HubAMQPError.self) { try await client.send(AMQPMessage(data: [1])) }
        #expect(error?.code == .timedOut)
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").count == 1)
        await client.close()
    }
}
