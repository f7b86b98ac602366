import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import AzureIoTTesting
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

    @Test(
        "a wrong token fails SASL under the retry policy: retriesExhausted with the authentication error as cause; one refusal is retried"
    )
    func refusals() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // The policy's attempt limit, not the connect's time budget, must end this: 60 s of budget leaves a loaded
        // machine room for every attempt (at load average 5 on 2 cores, 10 s ran out first).
        let wrong = try fixture.amqp(key: EmulatorFixture.groupKey, operationTimeout: .seconds(60))
        let error = await #expect(throws: HubAMQPError.self) { try await wrong.connect() }
        #expect(error?.code == .retriesExhausted)
        #expect((error?.underlying as? HubAMQPError)?.code == .authenticationFailed)
        // With automatic reconnects off the first connect is one attempt, and the refusal itself is thrown.
        let once = try Self.client(
            fixture,
            .saslPlain(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.groupKey))),
            reconnects: false
        )
        await #expect(throws: HubAMQPError(.authenticationFailed, "")) { try await once.connect() }
        // One injected refusal: the first connect tries again, as a reconnect would, and gets in.
        await fixture.emulator.injectFaults { $0.refuseConnections = 1 }
        let refusedOnce = try fixture.amqp()
        try await refusedOnce.connect()
        #expect(await fixture.emulator.faults().refuseConnections == 0)
        await refusedOnce.close()
    }

    @Test("C2D over AMQP: complete, reject and abandon are tracked as the hub does (abandoned messages come back)")
    func cloudToDevice() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        try await fixture.emulator.waitUntilConnected(deviceId: "dev1")
        let first = try await fixture.emulator.sendCloudToDevice(
            deviceId: "dev1",
            body: Array("one".utf8),
            properties: ["n": "1"]
        )
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
        let client = try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: fixture.hubHost,
                deviceId: "dev1",
                tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)),
                gatewayHostName: "localhost",
                port: fixture.endpoints.amqp.port,
                trustRoots: fixture.trust,
                operationTimeout: .seconds(4)
            )
        )
        try await client.connect()
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let error = await #expect(throws: HubAMQPError.self) { try await client.send(AMQPMessage(data: [1])) }
        #expect(error?.code == .timedOut)
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").count == 1)
        await client.close()
    }

    static func client(
        _ fixture: EmulatorFixture,
        _ authentication: HubAMQPConfiguration.Authentication,
        device: String = "dev1",
        idleTimeout: Duration = .seconds(240),
        operationTimeout: Duration = .seconds(30),
        reconnects: Bool = true,
        clock: any IoTClock = SystemClock()
    ) throws -> HubAMQPClient {
        try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: fixture.hubHost,
                deviceId: device,
                authentication: authentication,
                gatewayHostName: "localhost",
                port: fixture.endpoints.amqp.port,
                trustRoots: fixture.trust,
                idleTimeout: idleTimeout,
                operationTimeout: operationTimeout,
                reconnects: reconnects,
                reconnectMinimumDelay: .milliseconds(50),
                reconnectMaximumDelay: .milliseconds(200)
            ),
            clock: clock
        )
    }

    /// Waits for the renewals of the CBS client (dev1: a second put-token on the same connection) and the PLAIN
    /// client (dev2: a second connection with a new token), then checks that both still send, and closes them.
    static func expectRenewed(_ fixture: EmulatorFixture, cbs: HubAMQPClient, plain: HubAMQPClient) async throws {
        // CBS: a second put-token on the same connection. PLAIN: a second connection with a new token.
        let cbsActivity = try await fixture.emulator.waitForActivity(deviceId: "dev1", timeout: .seconds(30)) {
            $0.tokenAuthentications >= 2
        }
        #expect(cbsActivity.connections == 1, "CBS renews without reconnecting")
        // PLAIN: the new token comes with a new connection (SASL first, then the links).
        try await fixture.emulator.waitForActivity(deviceId: "dev2", timeout: .seconds(30)) {
            $0.tokenAuthentications >= 2 && $0.connections >= 2
        }
        try await cbs.send(AMQPMessage(data: Array("cbs after renewal".utf8)))
        try await plain.send(AMQPMessage(data: Array("plain after renewal".utf8)))
        await cbs.close()
        await plain.close()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["cbs after renewal"])
        #expect(await fixture.emulator.telemetry(deviceId: "dev2").map(\.bodyText) == ["plain after renewal"])
    }

    /// In virtual time: one-hour tokens are renewed at 80 % (2,880 s) exactly, CBS with a second put-token on the same
    /// connection, PLAIN with a new connection, and nothing renews before then.
    @Test("token renewal runs on the injected clock: due at 80 % of an hour, CBS in session, PLAIN by reconnecting")
    func renewalInVirtualTime() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let clock = ManualClock()
        let cbs = try Self.client(
            fixture,
            .cbs(
                SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)),
                tokenType: .azureDevices
            ),
            reconnects: false,
            clock: clock
        )
        let plain = try Self.client(
            fixture,
            .saslPlain(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.secondDeviceKey))),
            device: "dev2",
            reconnects: false,
            clock: clock
        )
        try await cbs.connect()
        try await plain.connect()
        // Two renewal timers, each due 2,880 s from now (the default TTL of an hour, renewed at 80 %).
        try await eventually("both renewal timers are armed") {
            clock.pendingIntervals.filter { $0 == .seconds(2880) }.count == 2
        }
        clock.advance(by: .seconds(2879))
        #expect(clock.pendingIntervals.filter { $0 == .seconds(1) }.count == 2, "nothing renews before 80 %")
        #expect(await fixture.emulator.activity(deviceId: "dev1").tokenAuthentications == 1)
        clock.advance(by: .seconds(1))
        try await Self.expectRenewed(fixture, cbs: cbs, plain: plain)
    }

    @Test(
        "CBS put-token after SASL ANONYMOUS/MSSBCBS, with both token types; a wrong key is refused by CBS",
        arguments: [
            HubAMQPConfiguration.CBSTokenType.azureDevices, .serviceBus,
        ]
    )
    func cbs(_ type: HubAMQPConfiguration.CBSTokenType) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let key = SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))
        let client = try Self.client(fixture, .cbs(key, tokenType: type))
        try await client.connect()
        try await client.send(AMQPMessage(data: Array("over cbs".utf8)))
        await client.close()
        #expect(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first?.bodyText == "over cbs")

        let wrong = try Self.client(
            fixture,
            .cbs(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.groupKey)), tokenType: type)
        )
        let error = await #expect(throws: HubAMQPError.self) { try await wrong.connect() }
        #expect(error?.code == .retriesExhausted)
        let cause = error?.underlying as? HubAMQPError
        #expect(cause?.code == .authenticationFailed && cause?.message.contains("401") == true)
    }

    @Test("X.509 with SASL EXTERNAL: the certificate whose thumbprint the hub holds; another is refused")
    func x509() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(fixture, .x509(fixture.thumbprintDevice.identity), device: "x509-device")
        try await client.connect()
        try await client.send(AMQPMessage(data: Array("certified".utf8)))
        await client.close()
        #expect(try await fixture.emulator.waitForTelemetry(deviceId: "x509-device").first?.bodyText == "certified")
        let stranger = try CertificateAuthority(commonName: "Stranger CA").issue(commonName: "x509-device")
        let refused = try Self.client(fixture, .x509(stranger.identity), device: "x509-device")
        let error = await #expect(throws: HubAMQPError.self) { try await refused.connect() }
        #expect(error?.code == .retriesExhausted && (error?.underlying as? HubAMQPError)?.code == .authenticationFailed)
    }

    @Test("reconnect: unsettled messages are resent after a drop and every send completes")
    func reconnectResends() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(
            fixture,
            .saslPlain(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)))
        )
        try await client.connect()
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let sends = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<5 {
                    group.addTask { try await client.send(AMQPMessage(data: Array("m\(index)".utf8))) }
                }
                try await group.waitForAll()
            }
        }
        _ = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 5)
        await fixture.emulator.injectFaults {
            $0.withholdAcknowledgements = false
            $0.refuseConnections = 1
        }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        try await sends.value
        let bodies = await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText)
        #expect(Set(bodies) == Set((0..<5).map { "m\($0)" }))
        #expect(bodies.count >= 10, "each message arrives again after the reconnect")
        #expect(await fixture.emulator.faults().refuseConnections == 0)
        try await client.send(AMQPMessage(data: Array("after".utf8)))
        await client.close()
    }

    /// A CBS client for dev1 and a SASL PLAIN client for dev2, automatic reconnects off, whose tokens live
    /// `lifetime` seconds and are renewed after `renewalFraction` of it.
    static func shortLivedClients(_ fixture: EmulatorFixture, lifetime: UInt64, renewalFraction: Double) throws -> (
        cbs: HubAMQPClient, plain: HubAMQPClient
    ) {
        func credential(_ key: String) throws -> SymmetricKeyCredential {
            SymmetricKeyCredential(
                key: try SymmetricKey(base64: key),
                timeToLive: lifetime,
                renewalFraction: renewalFraction
            )
        }
        return (
            try Self.client(
                fixture,
                .cbs(try credential(EmulatorFixture.deviceKey), tokenType: .azureDevices),
                reconnects: false
            ),
            try Self.client(
                fixture,
                .saslPlain(try credential(EmulatorFixture.secondDeviceKey)),
                device: "dev2",
                reconnects: false
            )
        )
    }

    @Test(
        "token lifetimes (automatic reconnects off): CBS renews in session, PLAIN by reconnecting; a fixed token's connection is closed at expiry"
    )
    func renewal() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // One-minute tokens renewed after 1 s: the test waits for the renewals themselves, and a loaded machine has
        // a minute of slack before any token expires.
        let (cbs, plain) = try Self.shortLivedClients(fixture, lifetime: 60, renewalFraction: 1.0 / 60)
        // A fixed token cannot be renewed: the hub closes the connection when it expires. It connects first, right
        // after its token is made. 15 s is enough to connect on most machines; one so loaded that the token expires
        // before the connection is up gets a new token that lives longer (the test is about what happens after).
        var doomed: HubAMQPClient?
        var lifetime: UInt64 = 15
        while doomed == nil {
            let fixed = FixedTokenCredential(
                token: SASToken.generate(
                    for: .module(hubHost: fixture.hubHost, deviceId: "dev1", moduleId: "mod1"),
                    key: try SymmetricKey(base64: EmulatorFixture.moduleKey),
                    expiry: UnixTime.now() + lifetime
                )
            )
            let client = try HubAMQPClient(
                configuration: HubAMQPConfiguration(
                    hubHost: fixture.hubHost,
                    deviceId: "dev1",
                    moduleId: "mod1",
                    authentication: .saslPlain(fixed),
                    gatewayHostName: "localhost",
                    port: fixture.endpoints.amqp.port,
                    trustRoots: fixture.trust,
                    operationTimeout: .seconds(Int64(lifetime)),
                    reconnects: false
                )
            )
            do {
                try await client.connect()
                doomed = client
            } catch let error as HubAMQPError where Self.tokenExpired(error) && lifetime < 120 {
                await client.close()
                lifetime *= 3
            }
        }
        guard let doomed else { return }
        try await cbs.connect()
        try await plain.connect()
        try await Self.expectRenewed(fixture, cbs: cbs, plain: plain)
        try await fixture.emulator.waitUntilDisconnected(
            deviceId: "dev1",
            moduleId: "mod1",
            timeout: .seconds(Int64(lifetime) + 30)
        )
        let error = await #expect(throws: HubAMQPError.self) { try await doomed.send(AMQPMessage(data: [1])) }
        #expect(error?.code == .connectionClosed)
    }

    /// Whether the token expired before the connection was up: refused by the hub, or by the client before sending.
    static func tokenExpired(_ error: HubAMQPError) -> Bool {
        error.condition == "amqp:unauthorized-access" || (error.underlying as? AzureIoTError)?.code == .sasTokenExpired
    }

    @Test(
        "a renewal that falls due while the connection is still being set up is retried once it is up (CBS and PLAIN)"
    )
    func renewalDuringSetup() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // Renewal falls due after 1 s, while the hub still holds the telemetry link attaches back (3 s). Without a
        // retry nothing renews the token: the wait for a second authentication below would time out.
        let (cbs, plain) = try Self.shortLivedClients(fixture, lifetime: 60, renewalFraction: 1.0 / 60)
        await fixture.emulator.injectFaults { $0.attachDelay = .seconds(3) }
        async let cbsConnected: Void = cbs.connect()
        async let plainConnected: Void = plain.connect()
        _ = try await (cbsConnected, plainConnected)
        await fixture.emulator.injectFaults { $0.attachDelay = .zero }
        try await fixture.emulator.waitForActivity(deviceId: "dev1", timeout: .seconds(30)) {
            $0.tokenAuthentications >= 2
        }
        try await fixture.emulator.waitForActivity(deviceId: "dev2", timeout: .seconds(30)) {
            $0.tokenAuthentications >= 2 && $0.connections >= 2
        }
        try await cbs.send(AMQPMessage(data: Array("cbs renewed".utf8)))
        try await plain.send(AMQPMessage(data: Array("plain renewed".utf8)))
        await cbs.close()
        await plain.close()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["cbs renewed"])
        let plainReceived = await fixture.emulator.telemetry(deviceId: "dev2").map(\.bodyText)
        #expect(plainReceived == ["plain renewed"], "\(plainReceived)")
    }

    @Test("heartbeats: with a 4 s idle time-out the hub's heartbeats keep a silent connection open")
    func heartbeats() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // 4 s rather than 1 s: a peer silent for 1.5 idle time-outs (6 s here) counts as dead, and a loaded 2-core CI
        // machine (a build beside the tests) stalled a task for more than 3 s.
        let client = try Self.client(
            fixture,
            .saslPlain(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))),
            idleTimeout: .seconds(4)
        )
        try await client.connect()
        // The hub's heartbeats (every 2 s, half the client's idle time-out) keep an otherwise silent connection open:
        // after three of them the client has been silent past its own idle time-out, and is still connected.
        let activity = try await fixture.emulator.waitForActivity(deviceId: "dev1", timeout: .seconds(60)) {
            $0.heartbeatsSent >= 3
        }
        #expect(activity.connections == 1)
        #expect(await fixture.emulator.isConnected(deviceId: "dev1"))
        try await client.send(AMQPMessage(data: Array("still here".utf8)))
        await client.close()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").count == 1)
    }
}
