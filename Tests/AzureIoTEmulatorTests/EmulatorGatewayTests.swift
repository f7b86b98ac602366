import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import HubAMQP
import Testing

/// Several identities on one AMQP connection through CBS, against the emulator.
@Suite("Emulator: an AMQP gateway connection with several identities")
struct EmulatorGatewayTests {
    static func gateway(
        _ fixture: EmulatorFixture,
        reconnects: Bool = true,
        clock: any IoTClock = SystemClock()
    ) -> HubAMQPGateway {
        HubAMQPGateway(
            configuration: .init(
                hubHost: fixture.hubHost,
                gatewayHostName: "localhost",
                port: fixture.endpoints.amqp.port,
                trustRoots: fixture.trust,
                // Generous: each wait ends on its event, and a clean-clone run beside a release build once needed
                // more than 10 s for one identity's links among 200.
                operationTimeout: .seconds(30),
                reconnects: reconnects,
                reconnectMinimumDelay: .milliseconds(50),
                reconnectMaximumDelay: .milliseconds(200)
            ),
            clock: clock
        )
    }

    static func credential(_ key: String, lifetime: UInt64 = 3600) throws -> SymmetricKeyCredential {
        SymmetricKeyCredential(key: try SymmetricKey(base64: key), timeToLive: lifetime, renewalFraction: 0.25)
    }

    @Test("two devices and a module share one connection: telemetry is attributed and C2D reaches only its identity")
    func identities() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let gateway = Self.gateway(fixture)
        let first = try await gateway.addDevice(
            deviceId: "dev1",
            tokenSource: try Self.credential(EmulatorFixture.deviceKey)
        )
        try await gateway.connect()
        let second = try await gateway.addDevice(
            deviceId: "dev2",
            tokenSource: try Self.credential(EmulatorFixture.secondDeviceKey)
        )
        let module = try await gateway.addDevice(
            deviceId: "dev1",
            moduleId: "mod1",
            tokenSource: try Self.credential(EmulatorFixture.moduleKey)
        )
        try await first.send(AMQPMessage(data: Array("from dev1".utf8)))
        try await second.send(AMQPMessage(data: Array("from dev2".utf8)))
        try await module.send(AMQPMessage(data: Array("from mod1".utf8)))
        let received = try await fixture.emulator.waitForTelemetry(count: 3)
        #expect(
            Set(received.map { "\($0.deviceId)/\($0.moduleId ?? "-"):\($0.bodyText)" }) == [
                "dev1/-:from dev1", "dev2/-:from dev2", "dev1/mod1:from mod1",
            ]
        )

        let id = try await fixture.emulator.sendCloudToDevice(deviceId: "dev2", body: Array("for dev2".utf8))
        var iterator = second.cloudToDeviceMessages.makeAsyncIterator()
        let delivery = try #require(await iterator.next())
        #expect(delivery.message.data == Array("for dev2".utf8))
        try await delivery.complete()
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: id, state: .completed)
        await gateway.close()
    }

    @Test("a refused identity does not disturb the others; each token is renewed in the session")
    func refusalAndRenewal() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // Virtual time: the one-hour tokens fall due for renewal (at 25 %, 900 s) when the test says so, so a loaded
        // machine cannot let a short real-time token expire before its renewal (it did, with 4 s tokens).
        let clock = ManualClock()
        let gateway = Self.gateway(fixture, reconnects: false, clock: clock)
        try await gateway.connect()
        let first = try await gateway.addDevice(
            deviceId: "dev1",
            tokenSource: try Self.credential(EmulatorFixture.deviceKey)
        )
        let error = await #expect(throws: HubAMQPError.self) {
            _ = try await gateway.addDevice(
                deviceId: "dev2",
                tokenSource: try Self.credential(EmulatorFixture.deviceKey)
            )
        }
        #expect(error?.code == .authenticationFailed)
        let second = try await gateway.addDevice(
            deviceId: "dev2",
            tokenSource: try Self.credential(EmulatorFixture.secondDeviceKey)
        )
        try await eventually("both identities' renewal timers are armed") {
            clock.pendingIntervals.filter { $0 == .seconds(900) }.count == 2
        }
        clock.advance(by: .seconds(900))
        // Each identity's renewal is a second put-token on the one connection.
        for device in ["dev1", "dev2"] {
            let activity = try await fixture.emulator.waitForActivity(deviceId: device, timeout: .seconds(30)) {
                $0.tokenAuthentications >= 2
            }
            #expect(activity.connections == 1, "\(device) renewed in the session")
        }
        try await first.send(AMQPMessage(data: Array("dev1 after renewal".utf8)))
        try await second.send(AMQPMessage(data: Array("dev2 after renewal".utf8)))
        #expect(await fixture.emulator.telemetry().count == 2)
        await gateway.close()
    }

    @Test("after a dropped connection every identity is authenticated and attached again, unsettled messages resent")
    func reconnect() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let gateway = Self.gateway(fixture)
        try await gateway.connect()
        let first = try await gateway.addDevice(
            deviceId: "dev1",
            tokenSource: try Self.credential(EmulatorFixture.deviceKey)
        )
        let second = try await gateway.addDevice(
            deviceId: "dev2",
            tokenSource: try Self.credential(EmulatorFixture.secondDeviceKey)
        )
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let pending = Task {
            try await first.send(AMQPMessage(data: Array("one".utf8)))
            try await second.send(AMQPMessage(data: Array("two".utf8)))
        }
        _ = try await fixture.emulator.waitForTelemetry(count: 1)
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = false }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        try await pending.value
        try await second.send(AMQPMessage(data: Array("after".utf8)))
        let bodies = await fixture.emulator.telemetry().map { "\($0.deviceId):\($0.bodyText)" }
        #expect(Set(bodies) == ["dev1:one", "dev2:two", "dev2:after"])
        await gateway.close()
    }
}

/// Gateway fidelity: on a connection that carries many identities, a second connection for one of them takes over
/// only that identity's links, as IoT Hub does.
@Suite("Emulator: a takeover of one identity on a shared AMQP connection")
struct EmulatorGatewayTakeoverTests {
    @Test(
        "200 identities on one CBS connection, one of them connected again elsewhere: only its links go (amqp:link:stolen), it hears so on its own events, the other 199 keep sending"
    )
    func oneIdentityTakenOver() async throws {
        let count = 200
        let keys = (0..<count).map { index in
            Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }).base64EncodedString()
        }
        let fixture = try await EmulatorFixture.start(
            limits: {
                var limits = EmulatorLimits()
                limits.maximumLinksPerConnection = 1024
                return limits
            }(),
            extraDevices: (0..<count).map { ("gw-\($0)", keys[$0]) }
        )
        defer { Task { await fixture.emulator.shutdown() } }
        let gateway = EmulatorGatewayTests.gateway(fixture)
        try await gateway.connect()
        var devices: [HubAMQPGateway.Device] = []
        for index in 0..<count {
            devices.append(
                try await gateway.addDevice(
                    deviceId: "gw-\(index)",
                    tokenSource: try EmulatorGatewayTests.credential(keys[index])
                )
            )
        }
        let stolen = devices[7]
        var stolenEvents = stolen.connectionEvents.makeAsyncIterator()
        #expect(await stolenEvents.next()?.kind == .connected)
        // The same identity connects on a connection of its own.
        let duplicate = try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: fixture.hubHost,
                deviceId: "gw-7",
                authentication: .cbs(try EmulatorGatewayTests.credential(keys[7]), tokenType: .azureDevices),
                gatewayHostName: "localhost",
                port: fixture.endpoints.amqp.port,
                trustRoots: fixture.trust,
                operationTimeout: .seconds(30)
            )
        )
        try await duplicate.connect()
        let event = try #require(await stolenEvents.next())
        #expect(event.kind == .disconnected && event.reason.contains("amqp:link:stolen"), "\(event)")
        let refused = await #expect(throws: HubAMQPError.self) {
            try await stolen.send(AMQPMessage(data: Array("from the old connection".utf8)))
        }
        #expect(refused?.code == .linkDetached)
        // Everyone else is still on the gateway's connection, and the duplicate has gw-7.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, device) in devices.enumerated() where index != 7 {
                group.addTask { try await device.send(AMQPMessage(data: Array("still here \(index)".utf8))) }
            }
            try await group.waitForAll()
        }
        try await duplicate.send(AMQPMessage(data: Array("gw-7 on its own connection".utf8)))
        let received = try await fixture.emulator.waitForTelemetry(count: count).map(\.bodyText)
        #expect(Set(received).count == count)
        #expect(received.contains("gw-7 on its own connection"))
        let activity = await fixture.emulator.activity(deviceId: "gw-0")
        #expect(activity.connections == 1, "the gateway did not reconnect: \(activity)")
        await duplicate.close()
        await gateway.close()
    }
}
