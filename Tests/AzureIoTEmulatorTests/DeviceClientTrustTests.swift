import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import HubAMQP
import HubMQTT
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The MQTT device client when things go wrong (issue #11), against the emulator: two devices sharing an identity,
/// credentials refused on reconnect, acknowledgements that do not come, cancellation, concurrent connects.
@Suite("MQTT device client under faults", .timeLimit(.minutes(2)))
struct DeviceClientTrustTests {
    /// The configuration of device `dev1` against the fixture's emulator, with `credential` (default: its key).
    static func configuration(_ fixture: EmulatorFixture, credential: SymmetricKeyCredential? = nil) throws
        -> HubMQTTConfiguration
    {
        HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: fixture.hubHost, deviceId: "dev1"),
            authentication: .sas(
                try credential ?? SymmetricKeyCredential(key: SymmetricKey(base64: EmulatorFixture.deviceKey))
            ),
            gatewayHostName: "localhost",
            port: fixture.endpoints.mqtt.port,
            trustRoots: fixture.trust
        )
    }

    static func client(
        _ fixture: EmulatorFixture,
        policy: RetryPolicy = .default,
        operationTimeout: Duration = .seconds(30)
    ) throws -> HubMQTTClient {
        var configuration = try Self.configuration(fixture)
        configuration.operationTimeout = operationTimeout
        configuration.retryPolicy = policy
        return try HubMQTTClient(configuration: configuration)
    }

    /// Counts the `connected` events of a client.
    final class Counter: Sendable {
        let connected = Mutex(0)
        let kinds = Mutex<[ConnectionEvent.Kind]>([])
        func watch(_ client: HubMQTTClient) -> Task<Void, Never> {
            Task {
                for await event in client.connectionEvents {
                    self.kinds.withLock { $0.append(event.kind) }
                    if event.kind == .connected { self.connected.withLock { $0 += 1 } }
                }
            }
        }
    }

    @Test(
        "two clients with one identity (a cloned SD card), against the emulator and against mosquitto, 30 s with the default policy: they back off"
    )
    func clonedIdentity() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        func mosquittoClient() throws -> HubMQTTClient {
            try HubMQTTClient(
                configuration: HubMQTTConfiguration(
                    identity: HubMQTTIdentity(hubHost: "cloned-hub.azure-devices.net", deviceId: "cloned"),
                    authentication: .sas(try SymmetricKeyCredential(base64Key: EmulatorFixture.deviceKey)),
                    gatewayHostName: "localhost",
                    port: broker.anyPasswordPort,
                    trustRoots: .pemFile(pki.path("ca.pem"))
                )
            )
        }
        let emulatorCounter = Counter()
        let mosquittoCounter = Counter()
        let pairs = [
            (try Self.client(fixture), try Self.client(fixture), emulatorCounter),
            (try mosquittoClient(), try mosquittoClient(), mosquittoCounter),
        ]
        var watchers: [Task<Void, Never>] = []
        for (first, second, counter) in pairs {
            watchers += [counter.watch(first), counter.watch(second)]
            try await first.connect()
            try await second.connect()
        }
        // A measurement window, not a synchronisation: the CONNECTs made in it are what is counted. The old client
        // reconnected at once every time, and one pair kicked each other 751 and 809 times in 6 s.
        try await Task.sleep(for: .seconds(30))
        for (first, second, _) in pairs {
            await first.disconnect()
            await second.disconnect()
        }
        for watcher in watchers { await watcher.value }
        let emulatorConnects = emulatorCounter.connected.withLock { $0 }
        let mosquittoConnects = mosquittoCounter.connected.withLock { $0 }
        let mosquittoLogged = broker.log.components(separatedBy: "New client connected").count - 1
        print(
            "cloned identity, default retry policy, 30 s: emulator \(emulatorConnects) CONNECTs (\(emulatorConnects * 2)/min), "
                + "mosquitto \(mosquittoConnects) CONNECTs (\(mosquittoConnects * 2)/min; the broker logged \(mosquittoLogged) connections)"
        )
        // Each takeover makes the other back off 1, 2, 4, 8, 16 s: a handful per client in 30 s.
        for connects in [emulatorConnects, mosquittoConnects] {
            #expect(connects >= 2 && connects <= 24, "\(connects) CONNECTs in 30 s")
        }
        #expect(mosquittoLogged <= 30)
    }

    @Test("credentials refused on every reconnect: the client gives up after the policy's limit and says so")
    func givesUp() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(
            fixture,
            policy: RetryPolicy(
                initialDelay: .milliseconds(50),
                maximumDelay: .milliseconds(200),
                maximumPermanentFailures: 3
            )
        )
        let counter = Counter()
        let watcher = counter.watch(client)
        // Connected from the client's side first (a drop during its first SUBACK is a different case).
        try await client.connect()
        let running = Task { try await client.run() }
        await fixture.emulator.injectFaults { $0.refuseConnections = 100 }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        await #expect(throws: HubMQTTError(.retriesExhausted, "")) { try await running.value }
        await client.disconnect()
        await watcher.value
        let kinds = counter.kinds.withLock { $0 }
        #expect(kinds.last == .gaveUp, "\(kinds)")
        #expect(kinds.filter { $0 == .reconnectFailed }.count == 2, "\(kinds)")
        #expect(await fixture.emulator.faults().refuseConnections == 97)
        // Later calls fail with the reason the client stopped.
        await #expect(throws: HubMQTTError(.retriesExhausted, "")) {
            try await client.send(TelemetryMessage(text: "after giving up"))
        }
    }

    @Test(
        "AMQP: credentials refused on every reconnect end the retries; waiting and later sends fail with retriesExhausted"
    )
    func amqpGivesUp() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = HubAMQPConfiguration(
            hubHost: fixture.hubHost,
            deviceId: "dev1",
            tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)),
            gatewayHostName: "localhost",
            port: fixture.endpoints.amqp.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(10)
        )
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(50),
            maximumDelay: .milliseconds(200),
            maximumPermanentFailures: 3
        )
        let client = try HubAMQPClient(configuration: configuration)
        try await client.connect()
        await fixture.emulator.injectFaults { $0.refuseConnections = 100 }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        await #expect(throws: HubAMQPError(.retriesExhausted, "")) {
            try await client.send(AMQPMessage(data: Array("while reconnecting".utf8)))
        }
        #expect(await fixture.emulator.faults().refuseConnections == 97)
        await #expect(throws: HubAMQPError(.retriesExhausted, "")) {
            try await client.send(AMQPMessage(data: Array("after".utf8)))
        }
        await client.close()
    }

    @Test("withheld PUBACKs: send with a 1 s deadline throws timedOut, nothing stays pending, later sends work")
    func sendDeadline() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(fixture)
        try await client.connect()
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = true }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: HubMQTTError(.timedOut, "")) {
            try await client.send(TelemetryMessage(text: "unanswered"), timeout: .seconds(1))
        }
        #expect(clock.now - start >= .seconds(1) && clock.now - start < .seconds(20))
        #expect(await client.pendingMessageCount == 0)
        await fixture.emulator.injectFaults { $0.withholdAcknowledgements = false }
        try await client.send(TelemetryMessage(text: "answered"))
        #expect(await client.pendingMessageCount == 0)
        await client.disconnect()
    }

    @Test(
        "token renewal under load (32 senders, 12 s tokens renewed every 3 s): planned renewals drain first, so nothing is lost or sent twice"
    )
    func renewalUnderLoad() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let configuration = try Self.configuration(
            fixture,
            credential: SymmetricKeyCredential(
                key: try SymmetricKey(base64: EmulatorFixture.deviceKey),
                timeToLive: 12,
                renewalFraction: 0.25
            )
        )
        let client = try HubMQTTClient(configuration: configuration)
        let counter = Counter()
        let watcher = counter.watch(client)
        try await client.connect()
        // Senders keep going until two renewals happened (at 3 s and 6 s); the emulator closes a connection whose
        // token expired, so each renewal has 9 s for its drain and reconnect even on a loaded machine.
        let renewals: @Sendable () -> Int = {
            counter.kinds.withLock { kinds in kinds.filter { $0 == .renewingToken }.count }
        }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for sender in 0..<32 {
                group.addTask {
                    var index = 0
                    while renewals() < 2 {
                        try await client.send(TelemetryMessage(text: "\(sender)-\(index)"))
                        index += 1
                    }
                    return index
                }
            }
            return try await group.reduce(0, +)
        }
        await client.disconnect()
        await watcher.value
        let received = try await fixture.emulator.waitForTelemetry(count: total, timeout: .seconds(20)).map(\.bodyText)
        let unique = Set(received)
        let kinds = counter.kinds.withLock { $0 }
        print(
            "renewal under load: \(total) sent, \(received.count) received, \(received.count - unique.count) duplicates, "
                + "\(kinds.filter { $0 == .renewingToken }.count) renewals, \(kinds.filter { $0 == .connected }.count) connects"
        )
        #expect(unique.count == total, "every acknowledged message arrived")
        #expect(received.count == unique.count, "no duplicates from planned renewals")
        #expect(!kinds.contains(.reconnectFailed))
    }

    @Test(
        "C2D not taken by the application is not acknowledged and comes again after a reconnect; taken, it is completed"
    )
    func cloudToDeviceTakenOrNot() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let first = try Self.client(fixture)
        try await first.subscribe(to: [.cloudToDeviceMessages])
        try await first.connect()
        let id = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("reboot".utf8))
        try await eventually("the message reaching the stream") { first.cloudToDeviceMessages.bufferedCount == 1 }
        let record = await fixture.emulator.cloudToDeviceMessages().first { $0.messageId == id }
        #expect(record?.state == .delivered, "delivered, not completed: the application has not taken it")
        // The process goes away without taking it (a crash would do the same).
        await first.disconnect()

        let second = try Self.client(fixture)
        try await second.connect()
        var iterator = second.cloudToDeviceMessages.makeAsyncIterator()
        let again = try #require(await iterator.next())
        #expect(again.messageId == id && again.body == Array("reboot".utf8))
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: id, state: .completed)
        await second.disconnect()
    }

    @Test(
        "pushed traffic is subscribed on demand: a client that never reads methods is not sent any; a full method buffer answers 503 at once"
    )
    func subscribeOnDemandAndBoundedMethods() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = try Self.configuration(fixture)
        configuration.inboundBufferSize = 1
        let client = try HubMQTTClient(configuration: configuration)
        try await client.connect()
        let unsubscribed = await #expect(throws: EmulatorError.self) {
            _ = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "nobody-listens", timeout: .seconds(5))
        }
        #expect(unsubscribed?.code == .deviceNotConnected, "IoT Hub's 404: connected but not subscribed to methods")

        try await client.subscribe(to: [.methodRequests])
        // The first call fills the one-place buffer (nobody takes it); the second is answered 503 by the client.
        let waiting = Task {
            try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "first", timeout: .seconds(30))
        }
        try await eventually("the first call reaching the stream") { client.methodRequests.bufferedCount == 1 }
        let busy = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "second", timeout: .seconds(30))
        #expect(busy.status == 503)
        var methods = client.methodRequests.makeAsyncIterator()
        let call = try #require(await methods.next())
        #expect(call.name == "first")
        try await call.respond(status: 200)
        #expect(try await waiting.value.status == 200)
        await client.disconnect()
    }

    /// A client that keeps retrying refused connects every 200 ms (the emulator refuses while a test keeps it offline).
    static func patientClient(_ fixture: EmulatorFixture, window: Int = 16, maximumQueued: Int = 1000) throws
        -> HubMQTTClient
    {
        var configuration = try Self.configuration(fixture)
        configuration.inflightWindow = window
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(200),
            maximumDelay: .milliseconds(200),
            maximumPermanentFailures: 10_000
        )
        configuration.maximumQueuedMessages = maximumQueued
        return try HubMQTTClient(configuration: configuration)
    }

    /// Takes the client offline: every CONNECT is refused until `online` is called.
    static func offline(_ fixture: EmulatorFixture, _ client: HubMQTTClient) async throws {
        await fixture.emulator.injectFaults { $0.refuseConnections = 1_000_000 }
        await fixture.emulator.dropConnection(deviceId: "dev1")
        try await eventually("the client noticing the drop") { await !client.isConnected }
    }

    static func online(_ fixture: EmulatorFixture) async {
        await fixture.emulator.injectFaults { $0.refuseConnections = 0 }
    }

    @Test(
        "telemetry expiry: a message queued while offline expires on time with expired and is never sent; the rest arrive, with $.exp"
    )
    func expiry() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.patientClient(fixture)
        try await client.connect()
        try await Self.offline(fixture, client)

        // The clock starts before the expiry is set: the message expires 1 s after that, not earlier.
        let clock = ContinuousClock()
        let start = clock.now
        var shortLived = TelemetryMessage(text: "stale in 1 s")
        shortLived.expire(after: .seconds(1))
        var longLived = TelemetryMessage(text: "good for a minute")
        longLived.expire(after: .seconds(60))
        let stale = Task { try await client.send(shortLived, timeout: .seconds(30)) }
        let good = Task { try await client.send(longLived, timeout: .seconds(30)) }
        let plain = Task { try await client.send(TelemetryMessage(text: "no expiry"), timeout: .seconds(30)) }
        let error = await #expect(throws: HubMQTTError.self) { try await stale.value }
        let waited = clock.now - start
        #expect(error?.code == .expired)
        #expect(waited >= .seconds(1) && waited < .seconds(10), "expired after \(waited)")

        await Self.online(fixture)
        try await good.value
        try await plain.value
        let received = try await fixture.emulator.waitForTelemetry(count: 2)
        #expect(Set(received.map(\.bodyText)) == ["good for a minute", "no expiry"])
        let exp = received.first { $0.bodyText == "good for a minute" }?.systemProperties["exp"]
        #expect(exp?.hasSuffix("Z") == true && exp?.count == 24, "ISO 8601 UTC with milliseconds, got \(exp ?? "nil")")
        #expect(await client.pendingMessageCount == 0)
        // A message already past its expiry is refused before anything is queued.
        var expired = TelemetryMessage(text: "too late")
        expired.deadline = clock.now - .seconds(1)
        await #expect(throws: HubMQTTError(.expired, "")) { try await client.send(expired) }
        await client.disconnect()
        #expect(await fixture.emulator.telemetry().count == 2, "the expired messages never reached the hub")
    }

    @Test(
        "the offline queue is bounded: past maximumQueuedMessages a send throws queueFull at once and loses nothing queued"
    )
    func boundedOfflineQueue() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.patientClient(fixture, window: 1, maximumQueued: 2)
        try await client.connect()
        try await Self.offline(fixture, client)
        // One in the (offline) window, two waiting for room: the fourth does not fit.
        var queued: [Task<Void, any Error>] = []
        for index in 0..<3 {
            queued.append(
                Task { try await client.send(TelemetryMessage(text: "queued \(index)"), timeout: .seconds(30)) }
            )
            try await eventually("send \(index) to be queued") {
                await client.pendingMessageCount == 1 && (index == 0 || client.queuedMessageCount == index)
            }
        }
        await #expect(throws: HubMQTTError(.queueFull, "")) {
            try await client.send(TelemetryMessage(text: "one too many"))
        }
        await Self.online(fixture)
        for task in queued { try await task.value }
        let received = try await fixture.emulator.waitForTelemetry(count: 3)
        #expect(Set(received.map(\.bodyText)) == ["queued 0", "queued 1", "queued 2"])
        await client.disconnect()
    }

    @Test("both clients run in a ServiceGroup: a graceful shutdown disconnects them cleanly and run() returns")
    func serviceGroup() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let mqtt = try Self.client(fixture)
        let amqp = try fixture.amqp(device: "dev2", key: EmulatorFixture.secondDeviceKey)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: mqtt), .init(service: amqp)],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            )
        )
        let running = Task { try await group.run() }
        try await fixture.emulator.waitUntilConnected(deviceId: "dev1")
        try await fixture.emulator.waitUntilConnected(deviceId: "dev2")
        try await mqtt.send(TelemetryMessage(text: "from a service"))
        try await amqp.send(AMQPMessage(data: Array("from a service too".utf8)))
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await !mqtt.isConnected)
        try await eventually("the hub seeing both devices leave") {
            let first = await fixture.emulator.isConnected(deviceId: "dev1")
            let second = await fixture.emulator.isConnected(deviceId: "dev2")
            return !first && !second
        }
        await #expect(throws: HubMQTTError(.shutDown, "")) {
            try await mqtt.send(TelemetryMessage(text: "after shutdown"))
        }
    }

    /// Runs the `azure-iot` CLI built beside the tests.
    static func cli(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        )
        return try await PeerProcess.capture(binary.path, arguments, timeout: timeout)
    }

    @Test(
        "a fixed SAS token that expires mid-stream: the hub closes, reconnects are refused, send fails with retriesExhausted; the CLI says so and exits non-zero"
    )
    func fixedTokenExpires() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // 10 s: long enough for a loaded machine to connect and send before the token expires.
        let token = try fixture.token(lifetime: 10)
        let connectionString = "HostName=\(fixture.hubHost);DeviceId=dev1;SharedAccessSignature=\(token)"
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await Self.cli([
            "send", "--connection-string", connectionString, "--gateway-host", "localhost", "--port",
            String(fixture.endpoints.mqtt.port),
            "--ca-file", fixture.endpoints.caCertificatePath, "--count", "1000", "--interval", "0.2", "--timeout", "30",
            "tick",
        ])
        let took = clock.now - start
        print(
            "fixed token: the CLI ended after \(took) with status \(result.status): \(result.stderr.split(separator: "\n").last ?? "")"
        )
        #expect(result.status == 3, "\(result.stderr.suffix(500))")
        #expect(result.stderr.contains("retriesExhausted"))
        #expect(took < .seconds(30), "it ended on the refusals, not on a time-out")
        #expect(!result.stderr.contains(String(token.split(separator: "&").first { $0.hasPrefix("sig=") } ?? "sig=")))
        let sent = await fixture.emulator.telemetry(deviceId: "dev1").count
        #expect(sent >= 1, "telemetry went out while the token was valid (\(sent))")
    }

    @Test(
        "AMQP token renewal under load (SASL PLAIN renews by reconnecting, CBS in session): nothing lost, nothing sent twice",
        arguments: ["plain", "cbs"]
    )
    func amqpRenewalUnderLoad(_ mode: String) async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let credential = SymmetricKeyCredential(
            key: try SymmetricKey(base64: EmulatorFixture.deviceKey),
            // Renewed every 2 s, with 14 s left before the token expires: room for a loaded machine.
            timeToLive: 16,
            renewalFraction: 0.125
        )
        let client = try HubAMQPClient(
            configuration: HubAMQPConfiguration(
                hubHost: fixture.hubHost,
                deviceId: "dev1",
                authentication: mode == "plain" ? .saslPlain(credential) : .cbs(credential, tokenType: .azureDevices),
                gatewayHostName: "localhost",
                port: fixture.endpoints.amqp.port,
                trustRoots: fixture.trust
            )
        )
        try await client.connect()
        let renewed: @Sendable () async -> Bool = {
            await fixture.emulator.activity(deviceId: "dev1").tokenAuthentications >= 3
        }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for sender in 0..<16 {
                group.addTask {
                    var index = 0
                    while await !renewed() {
                        try await client.send(AMQPMessage(data: Array("\(sender)-\(index)".utf8)))
                        index += 1
                    }
                    return index
                }
            }
            return try await group.reduce(0, +)
        }
        await client.close()
        let received = try await fixture.emulator.waitForTelemetry(
            deviceId: "dev1",
            count: total,
            timeout: .seconds(20)
        ).map(\.bodyText)
        let activity = await fixture.emulator.activity(deviceId: "dev1")
        print(
            "AMQP \(mode) renewal under load: \(total) sent, \(received.count) received, \(received.count - Set(received).count) duplicates, "
                + "\(activity.tokenAuthentications) authentications, \(activity.connections) connections"
        )
        #expect(Set(received).count == total, "every settled message arrived")
        #expect(received.count == Set(received).count, "no duplicates from planned renewals")
    }

    @Test(
        "desired patches that find their stream full are dropped, and the whole desired section arrives once the application catches up"
    )
    func desiredOverflow() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = try Self.configuration(fixture)
        configuration.inboundBufferSize = 1
        let client = try HubMQTTClient(configuration: configuration)
        try await client.subscribe(to: [.desiredPropertyPatches])
        try await client.connect()
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        // Three patches while the application reads none: the first fills the one-place buffer, two are dropped.
        try await fixture.emulator.updateDesiredProperties(deviceId: "dev1", patch: .object(["a": .number(1)]))
        try await eventually("the first patch buffered") { client.desiredPropertyPatches.bufferedCount == 1 }
        try await fixture.emulator.updateDesiredProperties(deviceId: "dev1", patch: .object(["b": .number(2)]))
        let last = try await fixture.emulator.updateDesiredProperties(
            deviceId: "dev1",
            patch: .object(["c": .number(3)])
        )
        // A twin read is a barrier: its answer comes after the pushed patches on the one connection, so by then the
        // client has handled (and dropped) them.
        #expect(try await client.twin().desiredVersion == last)
        let first = try #require(await patches.next())
        #expect(!first.isFullDocument && (try? JSONValue(parsing: first.json))?.objectValue["a"] == .number(1))
        // Taking it makes room: the client reads the twin again and delivers the whole desired section.
        let whole = try #require(await patches.next())
        #expect(whole.isFullDocument && whole.version == last)
        let desired = (try? JSONValue(parsing: whole.json))?.objectValue
        #expect(desired?["a"] == .number(1) && desired?["b"] == .number(2) && desired?["c"] == .number(3))
        await client.disconnect()
    }

    @Test("a broker gone for good: the CLI's send ends at its --timeout with timedOut and exits non-zero")
    func cliBrokerGone() async throws {
        let fixture = try await EmulatorFixture.start()
        let endpoints = fixture.endpoints
        let token = try fixture.token()
        let connectionString = "HostName=\(fixture.hubHost);DeviceId=dev1;SharedAccessSignature=\(token)"
        // The hub goes away for good once the first messages are through.
        let stopper = Task {
            _ = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 2, timeout: .seconds(30))
            await fixture.emulator.shutdown()
        }
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await Self.cli([
            "send", "--connection-string", connectionString, "--gateway-host", "localhost", "--port",
            String(endpoints.mqtt.port),
            // 10 s per send: with 3 s, a CI machine loaded with a build beside the suite once took longer than that
            // for the first PUBACK, and the CLI gave up before the hub went away.
            "--ca-file", endpoints.caCertificatePath, "--count", "1000", "--interval", "0.1", "--timeout", "10", "tick",
        ])
        let took = clock.now - start
        if case .failure(let error) = await stopper.result {
            Issue.record("the hub did not see 2 messages (\(error)); the CLI: \(result.stderr.suffix(1500))")
        }
        #expect(result.status == 3, "\(result.stderr.suffix(500))")
        #expect(result.stderr.contains("timedOut"))
        #expect(took < .seconds(60), "took \(took)")
    }

    @Test("a broker gone for good: send ends with timedOut at its deadline instead of waiting forever")
    func brokerGone() async throws {
        let fixture = try await EmulatorFixture.start()
        let client = try Self.client(
            fixture,
            policy: RetryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        )
        try await client.connect()
        await fixture.emulator.shutdown()
        await #expect(throws: HubMQTTError(.timedOut, "")) {
            try await client.send(TelemetryMessage(text: "nobody there"), timeout: .seconds(2))
        }
        await client.disconnect()
    }

    @Test("twin calls made while the client reconnects wait for the connection; with no hub they time out")
    func twinThroughReconnect() async throws {
        let fixture = try await EmulatorFixture.start()
        let client = try Self.client(
            fixture,
            policy: RetryPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(1)),
            operationTimeout: .seconds(10)
        )
        try await client.connect()
        await fixture.emulator.dropConnection(deviceId: "dev1")
        // Both are issued while the connection is down (or about to be noticed as down) and complete once it is back.
        let version = try await client.updateReportedProperties(Array(#"{"during":"reconnect"}"#.utf8))
        #expect(version != nil)
        #expect(try await client.twin().desiredVersion != nil)
        #expect(try await fixture.emulator.twin(deviceId: "dev1").reported == .object(["during": .string("reconnect")]))
        await client.disconnect()

        let short = try Self.client(
            fixture,
            policy: RetryPolicy(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500)),
            operationTimeout: .seconds(2)
        )
        try await short.connect()
        await fixture.emulator.shutdown()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: HubMQTTError(.timedOut, "")) { _ = try await short.twin() }
        #expect(clock.now - start < .seconds(20))
        await short.disconnect()
    }

    @Test("cancelling the task that runs the client disconnects it cleanly and run() returns")
    func runHonoursCancellation() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(fixture)
        let running = Task { try await client.run() }
        try await fixture.emulator.waitUntilConnected(deviceId: "dev1")
        running.cancel()
        try await running.value
        // DISCONNECT went out before run() returned: the hub sees the device leave.
        try await fixture.emulator.waitUntilDisconnected(deviceId: "dev1")
    }

    @Test("connect() called from several tasks at once makes one connection")
    func concurrentConnects() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(fixture)
        let counter = Counter()
        let watcher = counter.watch(client)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<5 { group.addTask { try await client.connect() } }
            try await group.waitForAll()
        }
        try await client.send(TelemetryMessage(text: "one connection"))
        await client.disconnect()
        await watcher.value
        #expect(counter.connected.withLock { $0 } == 1)
    }
}
