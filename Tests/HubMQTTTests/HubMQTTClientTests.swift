import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import HubMQTT
import Synchronization
import Testing

/// The IoT Hub client against a real mosquitto, with the hub side played by mosquitto_sub/mosquitto_pub.
@Suite("IoT Hub MQTT client against mosquitto", .serialized)
struct HubMQTTClientTests {
    static let hub = "test-hub.azure-devices.net"
    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    static func configuration(
        _ broker: MosquittoBroker,
        port: Int,
        authentication: HubMQTTConfiguration.Authentication,
        keepAlive: Duration = .seconds(60)
    ) async throws -> HubMQTTConfiguration {
        HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: hub, deviceId: "dev1"),
            authentication: authentication,
            gatewayHostName: "localhost",
            port: port,
            trustRoots: .pemFile(try await TestPKI.shared().path("ca.pem")),
            keepAlive: keepAlive,
            reconnectMinimumDelay: .milliseconds(100),
            reconnectMaximumDelay: .seconds(1),
            operationTimeout: .seconds(10)
        )
    }

    static func anyPassword() throws -> HubMQTTConfiguration.Authentication {
        .sas(try SymmetricKeyCredential(base64Key: key))
    }

    @Test("password = the SAS token the client computes; exact telemetry topic bytes with every property")
    func telemetryTopicBytes() async throws {
        let pki = try await TestPKI.shared()
        let identity = HubMQTTIdentity(hubHost: Self.hub, deviceId: "dev1")
        let token = SASToken.generate(
            for: identity.sasResource,
            key: try SymmetricKey(base64: Self.key),
            expiry: UnixTime.now() + 3600
        )
        let broker = try await MosquittoBroker(pki: pki, users: [identity.username: token.secretValue])
        let subscriber = try await HubSideSubscriber(broker: broker, filters: ["devices/#"])
        let configuration = try await Self.configuration(
            broker,
            port: broker.passwordPort,
            authentication: .sas(FixedTokenCredential(token: token))
        )
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            var message = TelemetryMessage(
                text: #"{"temp":21.5}"#,
                contentType: "application/json",
                contentEncoding: "utf-8"
            )
            message.messageId = "m-1"
            message.correlationId = "c/1"
            message.userId = "u 1"
            message.creationTime = "2026-11-27T10:00:00Z"
            message.componentName = "thermostat1"
            message.properties = [("alert", "true"), ("a b", "x/y&z=1"), ("ünï", "€")]
            try await client.send(message)
            try await client.send(TelemetryMessage(body: [0x00, 0xFF]), qos: .atMostOnce)
        }
        let expected =
            "devices/dev1/messages/events/%24.mid=m-1&%24.cid=c%2F1&%24.uid=u%201&%24.ct=application%2Fjson&%24.ce=utf-8"
            + "&%24.ctime=2026-11-27T10%3A00%3A00Z&%24.sub=thermostat1&alert=true&a%20b=x%2Fy%26z%3D1&%C3%BCn%C3%AF=%E2%82%AC"
        let line = await subscriber.waitForLine { $0.hasPrefix("devices/dev1/messages/events/%24.mid") }
        #expect(line == expected + #"|{"temp":21.5}"#)
        #expect(await subscriber.waitForLine { $0.hasPrefix("devices/dev1/messages/events/|") } != nil)
        // The broker saw our user name and a clean-session-off, keep-alive 60 CONNECT.
        #expect(await broker.waitForLog(containing: "u'\(identity.username)'"))
        #expect(await broker.waitForLog(containing: "(p2, c0, k60"))
    }

    @Test(
        "a wrong token is refused with CONNACK 5: tried as often as the retry policy allows, then retriesExhausted with the refusal as cause"
    )
    func wrongPassword() async throws {
        let pki = try await TestPKI.shared()
        let identity = HubMQTTIdentity(hubHost: Self.hub, deviceId: "dev1")
        let broker = try await MosquittoBroker(
            pki: pki,
            users: [identity.username: "SharedAccessSignature sr=x&sig=y&se=1"]
        )
        var configuration = try await Self.configuration(
            broker,
            port: broker.passwordPort,
            authentication: try Self.anyPassword()
        )
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(20),
            maximumDelay: .milliseconds(50),
            maximumPermanentFailures: 3
        )
        let client = try HubMQTTClient(configuration: configuration)
        do {
            try await client.connect()
            Issue.record("expected a refusal")
        } catch let error as HubMQTTError {
            #expect(error.code == .retriesExhausted)
            #expect(error.status == 5)
            #expect((error.underlying as? HubMQTTError)?.code == .connectionRefused)
            #expect(error.message.contains("(5)") && error.message.contains("3 permanent failures"))
            #expect(!error.description.contains("sig="))
        }
        // The client is idle again, not shut down: connect() may be called again.
        await #expect(throws: HubMQTTError.self) { try await client.connect() }
        await client.disconnect()
    }

    @Test("X.509: the client certificate's CN becomes the user name on a require_certificate listener")
    func clientCertificate() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let identity = try X509Identity(
            certificateFile: pki.path("dev2-chain.pem"),
            privateKeyFile: pki.path("dev2.key")
        )
        var configuration = try await Self.configuration(
            broker,
            port: broker.certificatePort,
            authentication: .x509(identity)
        )
        configuration.identity = HubMQTTIdentity(hubHost: Self.hub, deviceId: "dev2")
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(text: "x509"))
        }
        #expect(await broker.waitForLog(containing: "as dev2 (p2, c0, k60, u'dev2')"))
    }

    @Test("C2D, desired patches and direct methods injected on the hub's topics; answers on the response topics")
    func inbound() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let hubSide = try await HubSideSubscriber(broker: broker, filters: ["$iothub/#"])
        let client = try HubMQTTClient(
            configuration: try await Self.configuration(
                broker,
                port: broker.anyPasswordPort,
                authentication: try Self.anyPassword()
            )
        )
        try await client.subscribe(to: Set(HubMQTTClient.Inbound.allCases))
        try await client.connect()

        try await broker.hubPublish(
            topic:
                "devices/dev1/messages/devicebound/%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.mid=c2d-1&%24.ct=application%2Fjson&k1=v%201&flag&empty=",
            payload: "hello"
        )
        var c2d = client.cloudToDeviceMessages.makeAsyncIterator()
        let message = try #require(await c2d.next())
        #expect(message.body == Array("hello".utf8))
        #expect(message.to == "/devices/dev1/messages/deviceBound")
        #expect(message.messageId == "c2d-1")
        #expect(message.contentType == "application/json")
        #expect(message.property("k1") == "v 1")
        #expect(message.applicationProperties.contains { $0.key == "flag" && $0.value == nil })
        #expect(message.property("empty") == "")
        #expect(message.applicationProperties.map(\.key) == ["k1", "flag", "empty"])

        // The write-up's literal '$.' form is accepted too.
        try await broker.hubPublish(
            topic: "devices/dev1/messages/devicebound/$.ct=application%2Fjson&$.ce=utf-8",
            payload: "literal"
        )
        let literal = try #require(await c2d.next())
        #expect(literal.contentType == "application/json" && literal.contentEncoding == "utf-8")

        try await broker.hubPublish(
            topic: "$iothub/twin/PATCH/properties/desired/?$version=5",
            payload: #"{"fan":true,"$version":5}"#
        )
        var desired = client.desiredPropertyPatches.makeAsyncIterator()
        let patch = try #require(await desired.next())
        #expect(patch.version == 5)
        #expect(String(decoding: patch.json, as: UTF8.self) == #"{"fan":true,"$version":5}"#)

        try await broker.hubPublish(topic: "$iothub/methods/POST/reboot/?$rid=abc", payload: #"{"delay":1}"#)
        var methods = client.methodRequests.makeAsyncIterator()
        let call = try #require(await methods.next())
        #expect(call.name == "reboot" && call.requestId == "abc")
        #expect(String(decoding: call.payload, as: UTF8.self) == #"{"delay":1}"#)
        try await call.respond(status: 200, payload: Array(#"{"ok":true}"#.utf8))
        #expect(await hubSide.waitForLine { $0 == #"$iothub/methods/res/200/?$rid=abc|{"ok":true}"# } != nil)

        // Twin GET and reported PATCH: the hub side answers on $iothub/twin/res/.
        let twinTask = Task { try await client.twin() }
        let get = try #require(await hubSide.waitForLine { $0.hasPrefix("$iothub/twin/GET/?$rid=") })
        let rid = get.dropFirst("$iothub/twin/GET/?$rid=".count).prefix { $0 != "|" }
        try await broker.hubPublish(
            topic: "$iothub/twin/res/200/?$rid=\(rid)",
            payload: #"{"desired":{"fan":true,"$version":5},"reported":{"$version":2}}"#
        )
        let twin = try await twinTask.value
        #expect(twin.desiredVersion == 5 && twin.reportedVersion == 2)

        let patchTask = Task { try await client.updateReportedProperties(Array(#"{"fw":"1.0"}"#.utf8)) }
        let reported = try #require(
            await hubSide.waitForLine { $0.hasPrefix("$iothub/twin/PATCH/properties/reported/?$rid=") }
        )
        #expect(reported.hasSuffix(#"|{"fw":"1.0"}"#))
        let patchRid = reported.dropFirst("$iothub/twin/PATCH/properties/reported/?$rid=".count).prefix { $0 != "|" }
        try await broker.hubPublish(topic: "$iothub/twin/res/204/?$rid=\(patchRid)&$version=3", payload: "")
        #expect(try await patchTask.value == 3)

        // An error status is a typed error.
        let failing = Task { try await client.updateReportedProperties(Array("{}".utf8)) }
        let second = try #require(
            await hubSide.waitForLine {
                $0.hasPrefix("$iothub/twin/PATCH/properties/reported/?$rid=") && !$0.contains("$rid=\(patchRid)|")
            }
        )
        let secondRid = second.dropFirst("$iothub/twin/PATCH/properties/reported/?$rid=".count).prefix { $0 != "|" }
        try await broker.hubPublish(topic: "$iothub/twin/res/400/?$rid=\(secondRid)", payload: #"{"message":"bad"}"#)
        do {
            _ = try await failing.value
            Issue.record("expected a twin error")
        } catch let error as HubMQTTError {
            #expect(error.code == .twinRequestFailed && error.status == 400)
        }
        await client.disconnect()
        #expect(await broker.waitForLog(containing: "Received SUBSCRIBE from dev1"))
        #expect(await broker.waitForLog(containing: "devices/dev1/messages/devicebound/# (QoS 1)"))
    }

    @Test("a message over 256 KB is refused before anything is sent")
    func tooLarge() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        try await HubMQTTClient.withConnection(
            configuration: try await Self.configuration(
                broker,
                port: broker.anyPasswordPort,
                authentication: try Self.anyPassword()
            )
        ) { client in
            await #expect(throws: HubMQTTError(.messageTooLarge, "")) {
                try await client.send(TelemetryMessage(body: [UInt8](repeating: 1, count: 256 * 1024)))
            }
            try await client.send(TelemetryMessage(body: [UInt8](repeating: 1, count: 200 * 1024)))
        }
        #expect(await broker.waitForLog(containing: "(204800 bytes)"))
        #expect(!broker.log.contains("(262144 bytes)"))
    }

    @Test(
        "kill and restart the broker three times while 10,000 QoS 1 messages go out from 4 tasks: every send completes, none is lost, duplicates are counted"
    )
    func brokerRestart() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        var configuration = try await Self.configuration(
            broker,
            port: broker.anyPasswordPort,
            authentication: try Self.anyPassword()
        )
        configuration.inflightWindow = 8
        // A send waits through each restart and the reconnect after it: a clean-clone run beside other builds took
        // over the default 10 s once. The test is about loss and duplicates, not that deadline.
        configuration.operationTimeout = .seconds(60)
        let client = try HubMQTTClient(configuration: configuration)
        try await client.connect()
        let count = 10_000
        /// Messages whose send returned, shared by the senders.
        final class Sent: Sendable {
            let count = Mutex(0)
            let finished = Mutex(false)
        }
        let sent = Sent()
        // Four senders at once, so the window is full when the broker dies.
        let sender = Task {
            defer { sent.finished.withLock { $0 = true } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<4 {
                    group.addTask {
                        for index in stride(from: lane, to: count, by: 4) {
                            var message = TelemetryMessage(body: Array("m\(index)".utf8))
                            message.properties = [("seq", String(index))]
                            try await client.send(message)
                            sent.count.withLock { $0 += 1 }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        for threshold in [1_500, 4_500, 7_500] {
            // The senders stop early only by failing: then their error is the test's.
            try await eventually("\(threshold) messages sent", within: .seconds(120)) {
                sent.count.withLock { $0 } >= threshold || sent.finished.withLock { $0 }
            }
            broker.kill()
            try await broker.start()
        }
        try await sender.value
        await client.disconnect()
        // The broker's log reaches us asynchronously; give the last lines a moment. Each PUBLISH the brokers got is
        // one "messages/events/seq=N'" in their logs, read in one pass.
        func received(_ log: String) -> [Int] {
            log.components(separatedBy: "messages/events/seq=").dropFirst().compactMap { Int($0.prefix { $0 != "'" }) }
        }
        var missing: [Int] = []
        var seen: [Int] = []
        // Every send completed, so every message reached a broker; a loaded machine may read the brokers' logs late.
        try? await eventually("every message in the brokers' logs", within: .seconds(60)) {
            seen = received(broker.log)
            let unique = Set(seen)
            missing = (0..<count).filter { !unique.contains($0) }
            return missing.isEmpty
        }
        #expect(missing.isEmpty, "not received by any broker: \(missing.prefix(20))")
        #expect(broker.log.contains("(d1, q1"), "unacknowledged messages are resent with DUP")
        // At least once: a message in flight when the broker died may have reached it and is sent again.
        let duplicates = seen.count - Set(seen).count
        print(
            "broker restarts: \(count) sent, \(count - missing.count) received, \(duplicates) duplicates over 3 restarts"
        )
    }

    @Test(
        "the in-flight window: with the broker paused at most N PUBLISHes are outstanding, the rest wait for room, all complete on resume"
    )
    func inflightWindow() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        var configuration = try await Self.configuration(
            broker,
            port: broker.anyPasswordPort,
            authentication: try Self.anyPassword()
        )
        configuration.inflightWindow = 4
        let client = try HubMQTTClient(configuration: configuration)
        try await client.connect()
        broker.pause(true)
        let senders = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<10 {
                    group.addTask {
                        var message = TelemetryMessage(body: Array("w\(index)".utf8))
                        message.properties = [("w", String(index))]
                        try await client.send(message)
                    }
                }
                try await group.waitForAll()
            }
        }
        // Wait until every sender is either in the window or waiting for room (a loaded machine may take a while to
        // start ten tasks): then the window holds exactly four.
        try await eventually("ten senders in the window or waiting for room") {
            await client.pendingMessageCount + client.queuedMessageCount == 10
        }
        #expect(await client.pendingMessageCount == 4)
        #expect(client.queuedMessageCount == 6)
        broker.pause(false)
        try await senders.value
        #expect(await client.pendingMessageCount == 0)
        await client.disconnect()
        var missing: [Int] = []
        for _ in 0..<100 {
            let log = broker.log
            missing = (0..<10).filter { !log.contains("messages/events/w=\($0)'") }
            if missing.isEmpty { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(missing.isEmpty, "not received: \(missing)")
    }

    /// A client of `broker`'s any-password listener whose timers run on `clock`.
    static func client(
        _ broker: MosquittoBroker,
        authentication: HubMQTTConfiguration.Authentication,
        clock: ManualClock
    ) async throws -> HubMQTTClient {
        try HubMQTTClient(
            configuration: try await Self.configuration(
                broker,
                port: broker.anyPasswordPort,
                authentication: authentication
            ),
            clock: clock
        )
    }

    /// Connection events as they come, for tests that move a virtual clock on while they watch.
    final class EventLog: Sendable {
        let kinds = Mutex<[ConnectionEvent]>([])
        func watch(_ client: HubMQTTClient) -> Task<Void, Never> {
            Task { for await event in client.connectionEvents { self.kinds.withLock { $0.append(event) } } }
        }
        var events: [ConnectionEvent] { self.kinds.withLock { $0 } }
        func count(_ kind: ConnectionEvent.Kind) -> Int { self.events.filter { $0.kind == kind }.count }
    }

    @Test(
        "keep-alive on a virtual clock: PINGREQ after a keep-alive period of silence; an unanswered PINGREQ drops the connection, and the client reconnects"
    )
    func keepAlive() async throws {
        let (broker, clock) = (try await MosquittoBroker(pki: try await TestPKI.shared()), ManualClock())
        // 60 s announced to mosquitto, which enforces it in real time: far more than the test takes.
        let client = try await Self.client(broker, authentication: try Self.anyPassword(), clock: clock)
        let log = EventLog()
        let watcher = log.watch(client)
        try await client.connect()
        // The tick timer (1 s) is armed; 59 s of silence is not enough for a ping.
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(59))
        try await clock.waitForSleepers(1)
        #expect(!broker.log.contains("Received PINGREQ from dev1"))
        clock.advance(by: .seconds(1))
        #expect(await broker.waitForLog(containing: "Sending PINGRESP to dev1", timeout: .seconds(20)))
        // The broker stops answering: the next ping goes unanswered for longer than the keep-alive.
        broker.pause(true)
        try await eventually("the connection is dropped for the unanswered PINGREQ") {
            try await clock.waitForSleepers(1)
            clock.advance(by: .seconds(31))
            return log.count(.disconnected) >= 1
        }
        let dropped = log.events.first { $0.kind == .disconnected }
        #expect(dropped?.reason.contains("PINGREQ") == true, "\(String(describing: dropped))")
        #expect(log.count(.connected) == 1)
        broker.pause(false)
        // The reconnect waits for its back-off on the same clock.
        try await eventually("reconnected", within: .seconds(60)) {
            clock.advance(by: .milliseconds(500))
            return log.count(.connected) >= 2
        }
        await client.disconnect()
        await watcher.value
    }

    @Test(
        "token renewal on a virtual clock: no reconnect before 80 % of the lifetime; at 80 % DISCONNECT and a new CONNECT with a fresh token"
    )
    func tokenRenewal() async throws {
        let (broker, clock) = (try await MosquittoBroker(pki: try await TestPKI.shared()), ManualClock())
        let credential = SymmetricKeyCredential(
            key: try SymmetricKey(base64: Self.key),
            timeToLive: 3600,
            renewalFraction: 0.8
        )
        let client = try await Self.client(broker, authentication: .sas(credential), clock: clock)
        let log = EventLog()
        let watcher = log.watch(client)
        try await client.connect()
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(2879))
        try await clock.waitForSleepers(1)
        #expect(log.events.map(\.kind) == [.connected], "nothing happens before the renewal time")
        clock.advance(by: .seconds(1))
        try await eventually("reconnected with a fresh token") { log.count(.connected) >= 2 }
        #expect(log.events.map(\.kind) == [.connected, .renewingToken, .disconnected, .connected])
        try await client.send(TelemetryMessage(text: "after renewal"))
        #expect(await broker.waitForLog(containing: "Received DISCONNECT from dev1"), "a planned renewal says goodbye")
        await client.disconnect()
        await watcher.value
        #expect(broker.log.components(separatedBy: "New client connected").count - 1 >= 2)
    }

    @Test(
        "telemetry expiry on a virtual clock: a message that cannot be delivered completes with expired at its deadline, not before"
    )
    func expiryOnVirtualClock() async throws {
        let (broker, clock) = (try await MosquittoBroker(pki: try await TestPKI.shared()), ManualClock())
        let client = try await Self.client(broker, authentication: try Self.anyPassword(), clock: clock)
        try await client.connect()
        broker.pause(true)
        var message = TelemetryMessage(text: "short-lived")
        message.expire(after: .seconds(30))
        let pending = Task { try await client.send(message, timeout: .seconds(600)) }
        try await eventually("the message in flight") { await client.pendingMessageCount == 1 }
        // The deadline sweep waits on the clock; 29 s is not yet the deadline.
        try await clock.waitForSleepers(2)
        clock.advance(by: .seconds(29))
        try await clock.waitForSleepers(2)
        #expect(await client.pendingMessageCount == 1)
        clock.advance(by: .seconds(1))
        let outcome = await pending.result
        #expect(throws: HubMQTTError.self) { try outcome.get() }
        if case .failure(let error as HubMQTTError) = outcome { #expect(error.code == .expired) }
        #expect(await client.pendingMessageCount == 0)
        broker.pause(false)
        try await client.send(TelemetryMessage(text: "after"))
        await client.disconnect()
    }

    @Test("cancelling a send stops its wait without corrupting the session")
    func cancellation() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let client = try HubMQTTClient(
            configuration: try await Self.configuration(
                broker,
                port: broker.anyPasswordPort,
                authentication: try Self.anyPassword()
            )
        )
        try await client.connect()
        broker.pause(true)
        let pending = Task { try await client.send(TelemetryMessage(text: "stuck")) }
        try await eventually("the message in flight") { await client.pendingMessageCount == 1 }
        pending.cancel()
        await #expect(throws: CancellationError.self) { try await pending.value }
        broker.pause(false)
        try await client.send(TelemetryMessage(text: "after"))
        // The cancelled message stayed in flight; the resumed broker acknowledges it too.
        try await eventually("the last acknowledgement") { await client.pendingMessageCount == 0 }
        #expect(await client.pendingMessageCount == 0)
        await client.disconnect()
    }
}
