import AzureIoTCore
import AzureIoTDevice
import AzureIoTEdge
import AzureIoTEmulator
import AzureIoTTestSupport
import AzureIoTTesting
import DPSClient
import Foundation
import HubFileUpload
import HubMQTT
import Logging
import Synchronization
import Testing

/// Runs every article's code (``ArticleExamples``) against the emulator and checks that the articles show exactly
/// that code.
@Suite("DocC articles: code compiled and run", .timeLimit(.minutes(5)))
struct ArticleExampleTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let individualKey = "aW5kaXZpZHVhbC1rZXktaW5kaXZpZHVhbC1rZXktMTI="
    static let groupKey = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktZ3JvdXA="
    static let deviceKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    /// Every `.md` file in the DocC catalogs.
    static func articles() throws -> [URL] {
        let sources = Self.repository.appendingPathComponent("Sources")
        let enumerator = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        var found: [URL] = []
        while let url = enumerator?.nextObject() as? URL {
            if url.pathExtension == "md" && url.path.contains(".docc/") { found.append(url) }
        }
        return found.sorted { $0.path < $1.path }
    }

    /// The fenced blocks of `language` in a Markdown file.
    static func blocks(_ language: String, in url: URL) throws -> [String] {
        let text = try String(contentsOf: url, encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil, trimmed == "```\(language)" {
                current = []
            } else if current != nil, trimmed == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    static func emulatorConfiguration(deviceCA: CertificateAuthority) -> EmulatorConfiguration {
        EmulatorConfiguration(
            hubName: "docs-hub",
            devices: [
                .init(deviceId: "dev1", primaryKey: Self.deviceKey),
                .init(deviceId: "dev2", primaryKey: Self.individualKey),
            ],
            provisioning: .init(
                idScope: "0ne00DOCS1",
                individualEnrollments: [.init(registrationId: "individual-1", primaryKey: Self.individualKey)],
                enrollmentGroups: [
                    .init(name: "sensors", primaryKey: Self.groupKey),
                    .init(name: "certified", caCertificatePEM: deviceCA.certificatePEM),
                ]
            )
        )
    }

    @Test("AzureIoTProxy: the configuration carries the opener, whose description has no credentials")
    func proxyArticle() throws {
        let connection = try ConnectionString(parsing: "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=MDEy")
        let configuration = try ArticleExamples.configureProxy(connection: connection)
        let opener = try #require(configuration.connectionOpener)
        #expect("\(opener)" == "proxy http://proxy.corp:8080")
    }

    @Test("every ```swift block of every article and of the README appears line for line in ArticleExamples.swift")
    func articlesShowCompiledCode() throws {
        let examples = try String(
            contentsOf: Self.repository.appendingPathComponent(
                "Tests/DocumentationExamplesTests/ArticleExamples.swift"
            ),
            encoding: .utf8
        )
        let exampleLines = examples.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let articles = try Self.articles()
        #expect(articles.count >= 13, "catalog pages and articles: \(articles.map(\.lastPathComponent))")
        var checked = 0
        var readmeChecked = 0
        // The README's Swift example too (its `import` lines aside: the file has its own).
        let readme = Self.repository.appendingPathComponent("README.md")
        for article in articles + [readme] {
            for block in try Self.blocks("swift", in: article) {
                let block = block.split(separator: "\n", omittingEmptySubsequences: false).filter {
                    !$0.hasPrefix("import ")
                }.joined(separator: "\n")
                if article == readme { readmeChecked += 1 }
                let lines = block.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                    !$0.isEmpty
                }
                let found = exampleLines.indices.contains { start in
                    var index = start
                    for line in lines {
                        while index < exampleLines.count && exampleLines[index].isEmpty { index += 1 }
                        guard index < exampleLines.count, exampleLines[index] == line else { return false }
                        index += 1
                    }
                    return true
                }
                #expect(found, "\(article.lastPathComponent): this block is not in ArticleExamples.swift:\n\(block)")
                checked += 1
            }
        }
        #expect(checked >= 9)
        #expect(readmeChecked >= 1, "the README's Swift example was not found")
    }

    @Test("DPS articles: individual and group symmetric keys, X.509 through an intermediate CA")
    func provisioning() async throws {
        let root = try CertificateAuthority(commonName: "Docs Device Root")
        let intermediate = try root.intermediate(commonName: "Docs Device Intermediate")
        var configuration = Self.emulatorConfiguration(deviceCA: intermediate)
        configuration.provisioningRetryAfterSeconds = 0
        let emulator = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await emulator.shutdown() } }
        let endpoint = "localhost:\(emulator.endpoints.dps.port)"
        let trust = TLSConfiguration.TrustRoots.pemFile(emulator.endpoints.caCertificatePath)
        let port = emulator.endpoints.mqtt.port

        let individual = try await ArticleExamples.provisionIndividual(
            endpoint: endpoint,
            trust: trust,
            idScope: "0ne00DOCS1",
            enrollmentKey: Self.individualKey
        )
        #expect(individual.deviceId == "individual-1" && individual.assignedHub == "docs-hub.azure-devices.net")

        let member = try await ArticleExamples.provisionGroupMember(
            endpoint: endpoint,
            trust: trust,
            gateway: "localhost",
            port: port,
            idScope: "0ne00DOCS1",
            groupKey: Self.groupKey
        )
        #expect(member.deviceId == "sensor-0042")

        let device = try intermediate.issue(commonName: "camera-7")
        let directory = NSTemporaryDirectory() + "docs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try (device.certificatePEM + device.chainPEM).write(
            toFile: directory + "/camera-7.pem",
            atomically: true,
            encoding: .utf8
        )
        try device.privateKeyPEM.write(toFile: directory + "/camera-7.key", atomically: true, encoding: .utf8)
        let certified = try await ArticleExamples.provisionWithCertificate(
            endpoint: endpoint,
            trust: trust,
            gateway: "localhost",
            port: port,
            idScope: "0ne00DOCS1",
            certificateFile: directory + "/camera-7.pem",
            keyFile: directory + "/camera-7.key"
        )
        #expect(certified.deviceId == "camera-7")
        #expect(try await emulator.waitForTelemetry(deviceId: "camera-7").first?.bodyText == #"{"provisioned":true}"#)
        #expect(await emulator.registrations().map(\.enrollmentGroup) == [nil, "sensors", "certified"])
    }

    @Test(
        "running unattended: a ServiceGroup runs the client, telemetry with an expiry, C2D acknowledged when taken, graceful shutdown"
    )
    func runningUnattended() async throws {
        let root = try CertificateAuthority(commonName: "Docs Device Root")
        let emulator = try await IoTEmulator.start(configuration: Self.emulatorConfiguration(deviceCA: root))
        defer { Task { await emulator.shutdown() } }
        let trust = TLSConfiguration.TrustRoots.pemFile(emulator.endpoints.caCertificatePath)
        let connectionString = try #require(emulator.endpoints.devices.first?.connectionString)
        let id = try await emulator.sendCloudToDevice(deviceId: "dev1", body: Array("reboot".utf8))
        let commands = try await ArticleExamples.runUnattended(
            connectionString: connectionString,
            trust: trust,
            port: emulator.endpoints.mqtt.port,
            logger: Logger(label: "docs")
        )
        #expect(commands == ["reboot"])
        _ = try await emulator.waitForCloudToDevice(messageId: id, state: .completed)
        let reading = try #require(try await emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(reading.bodyText == #"{"temperature":21.5}"# && reading.systemProperties["exp"] != nil)
        // The client sent DISCONNECT before returning; the emulator reads it when it gets to it.
        try await emulator.waitUntilDisconnected(deviceId: "dev1")
    }

    @Test(
        "the one-client article runs over MQTT and over AMQP: telemetry, reported properties and a method call arrive the same way",
        arguments: DeviceClientConfiguration.Transport.allCases
    )
    func oneClientTwoTransports(_ transport: DeviceClientConfiguration.Transport) async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "Unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let trust = TLSConfiguration.TrustRoots.pemFile(emulator.endpoints.caCertificatePath)
        let connectionString = try #require(emulator.endpoints.devices.first?.connectionString)
        let device = try #require(emulator.endpoints.devices.first)
        let caller = Task {
            try await emulator.waitUntilConnected(deviceId: device.deviceId, timeout: .seconds(60))
            // The device subscribes before it connects; the call may still find it between the two, so it is tried
            // until the device takes it.
            let response = Mutex<MethodResponse?>(nil)
            try await eventually("the method call answered", within: .seconds(60)) {
                guard
                    let answer = try? await emulator.invokeMethod(
                        deviceId: device.deviceId,
                        name: "reboot",
                        timeout: .seconds(30)
                    )
                else { return false }
                response.withLock { $0 = answer }
                return true
            }
            return response.withLock { $0 }
        }
        let answered = try await ArticleExamples.runDevice(
            connectionString: connectionString,
            transport: transport,
            trust: trust,
            port: emulator.endpoints.port(for: transport)
        )
        #expect(answered == "reboot")
        #expect(try await caller.value?.status == 200)
        let reading = try #require(try await emulator.waitForTelemetry(deviceId: device.deviceId).first)
        #expect(reading.bodyText == #"{"temperature":21.5}"# && reading.contentType == "application/json")
        #expect(reading.transport == (transport.isMQTT ? .mqtt : .amqp))
        #expect(try await emulator.twin(deviceId: device.deviceId).reported == .object(["firmware": .string("1.2")]))
    }

    @Test("the one-client article's provisioning step: DPS assigns the device, which then sends over AMQP")
    func provisionThenSend() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "Unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let deviceId = try await ArticleExamples.provisionThenSend(
            dpsEndpoint: "127.0.0.1:\(emulator.endpoints.dps.port)",
            scope: emulator.endpoints.idScope,
            groupKey: Self.groupKey,
            trust: .pemFile(emulator.endpoints.caCertificatePath),
            gateway: "localhost",
            port: emulator.endpoints.amqp.port
        )
        #expect(deviceId == "sensor-42")
        let reading = try #require(try await emulator.waitForTelemetry(deviceId: deviceId).first)
        #expect(reading.bodyText == #"{"provisioned":true}"# && reading.transport == .amqp)
    }

    @Test(
        "the firewall article: DPS and MQTT in a WebSocket through tinyproxy with credentials, the proxy's log showing both tunnels"
    )
    func behindAFirewall() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "Unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let proxy = try await ProxyPeer.tinyproxy(allowing: [
            emulator.endpoints.dps.port, emulator.endpoints.webSockets.port,
        ])
        defer { proxy.process.stop() }
        let deviceId = try await ArticleExamples.behindAFirewall(
            proxy: "http://\(ProxyPeer.user):\(ProxyPeer.password)@127.0.0.1:\(proxy.port)",
            dpsEndpoint: "localhost:\(emulator.endpoints.dps.port)",
            scope: emulator.endpoints.idScope,
            groupKey: Self.groupKey,
            trust: .pemFile(emulator.endpoints.caCertificatePath),
            gateway: "localhost",
            port: emulator.endpoints.webSockets.port
        )
        #expect(deviceId == "sensor-443")
        let reading = try #require(try await emulator.waitForTelemetry(deviceId: deviceId).first)
        #expect(reading.bodyText == #"{"through":"port 443"}"# && reading.overWebSockets)
        let log = proxy.log
        #expect(log.contains("CONNECT localhost:\(emulator.endpoints.dps.port)"), "\(log.suffix(2000))")
        #expect(log.contains("CONNECT localhost:\(emulator.endpoints.webSockets.port)"), "\(log.suffix(2000))")
    }

    @Test("routing, IoT Edge and AMQP articles (one device, and several through a CBS gateway)")
    func hubArticles() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "Unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let trust = TLSConfiguration.TrustRoots.pemFile(emulator.endpoints.caCertificatePath)
        let connectionString = try #require(emulator.endpoints.devices.first?.connectionString)
        try await ArticleExamples.sendRoutableTelemetry(
            connectionString: connectionString,
            trust: trust,
            port: emulator.endpoints.mqtt.port
        )
        let hubOnly = "HostName=docs-hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=\(Self.deviceKey)"
        try await ArticleExamples.connectThroughEdge(
            hubConnectionString: hubOnly,
            edgeHost: "localhost",
            edgeRootCA: emulator.endpoints.caCertificatePath,
            port: emulator.endpoints.mqtt.port
        )
        try await ArticleExamples.sendOverAMQP(
            hubHost: "docs-hub.azure-devices.net",
            deviceId: "dev1",
            deviceKey: Self.deviceKey,
            gateway: "localhost",
            port: emulator.endpoints.amqp.port,
            trust: trust
        )
        try await ArticleExamples.gatewayForSeveralDevices(
            hubHost: "docs-hub.azure-devices.net",
            keys: ["dev1": Self.deviceKey, "dev2": Self.individualKey],
            gateway: "localhost",
            port: emulator.endpoints.amqp.port,
            trust: trust
        )
        let telemetry = try await emulator.waitForTelemetry(deviceId: "dev1", count: 4)
        #expect(
            telemetry[0].contentType == "application/json" && telemetry[0].contentEncoding == "utf-8"
                && telemetry[0].properties == ["alert": "true"]
        )
        #expect(telemetry[1].bodyText == "via the gateway")
        #expect(
            telemetry[2].transport == .amqp && telemetry[2].messageId == "reading-1"
                && telemetry[2].properties == ["alert": "false"]
        )
        #expect(telemetry[3].bodyText == "reading from dev1")
        #expect(await emulator.telemetry(deviceId: "dev2").map(\.bodyText) == ["reading from dev2"])
    }

    @Test("bridge article: its mosquitto.conf with the article's credentials translates sensors/dev1/… into telemetry")
    func bridgeArticle() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "Unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let credentials = try ArticleExamples.bridgeCredentials(
            hubHost: "docs-hub.azure-devices.net",
            deviceId: "dev1",
            deviceKey: Self.deviceKey
        )
        let article = try #require(try Self.articles().first { $0.lastPathComponent == "BridgingMosquitto.md" })
        let template = try #require(try Self.blocks("conf", in: article).first)
        let localPort = try PeerProcess.freePort()
        let config =
            "persistence false\nuser root\nlog_dest stderr\nlog_type all\nlistener \(localPort) 127.0.0.1\nallow_anonymous true\n"
            + template
            .replacingOccurrences(of: "<hub-host>:8883", with: "localhost:\(emulator.endpoints.mqtt.port)")
            .replacingOccurrences(of: "<username>", with: credentials.username)
            .replacingOccurrences(of: "<sas-token>", with: credentials.password)
            .replacingOccurrences(of: "<ca-file>", with: emulator.endpoints.caCertificatePath) + "\n"
        let path = NSTemporaryDirectory() + "docs-bridge-\(UUID().uuidString.prefix(8)).conf"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let bridge = try await PeerProcess("/usr/sbin/mosquitto", ["-c", path], readyMarker: " running")
        defer { bridge.stop() }
        try await emulator.waitUntilConnected(deviceId: "dev1")
        let publish = try await PeerProcess.complete(
            "/usr/bin/mosquitto_pub",
            ["-h", "127.0.0.1", "-p", String(localPort), "-t", "sensors/dev1/alert=true", "-m", "hot"]
        )
        #expect(publish.status == 0)
        let received = try #require(try await emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.bodyText == "hot" && received.properties == ["alert": "true"], "\(bridge.output)")
    }

    @Test("file upload: the module's example uploads a file to the emulator, which holds the same bytes")
    func fileUploadExample() async throws {
        let emulator = try await IoTEmulator.start()
        defer { Task { await emulator.shutdown() } }
        let device = try #require(emulator.endpoints.devices.first { $0.moduleId == nil })
        let path = NSTemporaryDirectory() + "article-upload-\(UUID().uuidString.prefix(8)).bin"
        let data = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try data.write(to: URL(fileURLWithPath: path))
        let result = try await ArticleExamples.uploadFile(
            connection: try ConnectionString(parsing: device.connectionString),
            trust: .pemFile(emulator.endpoints.caCertificatePath),
            port: emulator.endpoints.service.port,
            path: path
        )
        #expect(
            result.byteCount == 300_000 && result.blockCount == 1 && result.blobName == "thermostat-1/logs/today.bin"
        )
        let record = try #require(await emulator.fileUploads().first)
        #expect(record.notified && record.isSuccess == true)
        #expect(FileManager.default.contents(atPath: try #require(record.path)) == data)
    }

    @Test("DPSClient page: DPS over MQTT with a certificate DPS issues, then the hub with that certificate")
    func provisionOverMQTTArticle() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let trust = TLSConfiguration.TrustRoots.pemFile(emulator.endpoints.caCertificatePath)
        let result = try await ArticleExamples.provisionOverMQTTWithIssuedCertificate(
            endpoint: "localhost:\(emulator.endpoints.dpsMQTT.port)",
            trust: trust,
            gateway: "localhost",
            port: emulator.endpoints.mqtt.port,
            idScope: "0ne00DOCS1",
            groupKey: Self.groupKey
        )
        #expect(result.credential == nil && result.identity?.leaf.commonName == "sensor-0043")
        #expect(try await emulator.waitForTelemetry(deviceId: "sensor-0043").first?.bodyText == #"{"issued":true}"#)
    }

    @Test("Plug and Play article: model id, component telemetry and properties, a writable property, a typed command")
    func plugAndPlayArticle() async throws {
        let emulator = try await IoTEmulator.start(
            configuration: Self.emulatorConfiguration(deviceCA: try CertificateAuthority(commonName: "unused"))
        )
        defer { Task { await emulator.shutdown() } }
        let device = try #require(emulator.endpoints.devices.first { $0.deviceId == "dev1" })
        let run = Task {
            try await ArticleExamples.plugAndPlay(
                connection: try ConnectionString(parsing: device.connectionString),
                trust: .pemFile(emulator.endpoints.caCertificatePath),
                port: emulator.endpoints.mqtt.port
            )
        }
        let telemetry = try await emulator.waitForTelemetry(deviceId: "dev1", count: 1)
        #expect(telemetry.first?.systemProperties["sub"] == "thermostat1")
        #expect(await emulator.modelId(deviceId: "dev1") == "dtmi:com:example:TemperatureController;2")
        _ = try await emulator.waitForReportedProperties(deviceId: "dev1") {
            $0["thermostat1"]?["maxTempSinceLastReboot"] != nil
        }
        let version = try await emulator.updateDesiredProperties(
            deviceId: "dev1",
            patch: .object(["thermostat1": .object(["__t": .string("c"), "targetTemperature": .number(22)])])
        )
        let reported = try await emulator.waitForReportedProperties(deviceId: "dev1") {
            $0["thermostat1"]?["targetTemperature"] != nil
        }
        #expect(
            reported["thermostat1"]?["targetTemperature"]
                == .object([
                    "value": .number(22), "ac": .number(200), "av": .number(JSONNumber(version)),
                    "ad": .string("applied"),
                ])
        )
        #expect(reported["thermostat1"]?["__t"] == .string("c"))
        // The device subscribed to methods before connecting: the command is answered by its typed handler.
        let answer = try await emulator.invokeMethod(
            deviceId: "dev1",
            name: "thermostat1*getMaxMinReport",
            payload: .string("2026-12-01T00:00:00Z")
        )
        #expect(answer.status == 200)
        #expect(
            try JSONValue(parsing: answer.payload)
                == .object([
                    "maxTemp": .number(38.7), "minTemp": .number(18.2), "startTime": .string("2026-12-01T00:00:00Z"),
                ])
        )
        try await run.value
    }

    @Test("AzureIoTEdge: a module from its Edge environment sends to an output a route brings back to its input")
    func edgeModuleArticle() async throws {
        var configuration = EmulatorConfiguration(
            hubName: "docs-hub",
            devices: [.init(deviceId: "edge-box", modules: [.init(moduleId: "thermostat")])],
            provisioning: .init(idScope: "0ne00DOCS1")
        )
        configuration.edge = .init(
            deviceId: "edge-box",
            routes: [
                "loop":
                    #"FROM /messages/modules/thermostat/outputs/temperature INTO BrokeredEndpoint("/modules/thermostat/inputs/commands")"#
            ]
        )
        let emulator = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await emulator.shutdown() } }
        try await ArticleExamples.edgeModule(
            variables: try #require(emulator.edgeEnvironment(moduleId: "thermostat")),
            port: emulator.endpoints.mqtt.port
        )
        // The loop ended on the routed message, which the module took (acknowledged): nothing waits for it once the
        // emulator has read the acknowledgement.
        try await eventually("the module's acknowledgement") {
            await emulator.moduleInputBacklog(moduleId: "thermostat").waiting == 0
        }
        #expect(await emulator.moduleInputBacklog(moduleId: "thermostat").dropped == 0)
        #expect(await emulator.activity(deviceId: "edge-box", moduleId: "thermostat").connections == 1)
    }

    @Test("backends article: the printed connection strings, and the same keys after a restart with the data directory")
    func backendsArticle() async throws {
        let directory = NSTemporaryDirectory() + "article-hub-\(UUID().uuidString.prefix(8))"
        let first = try await ArticleExamples.localHubForBackends(dataDirectory: directory)
        let second = try await ArticleExamples.localHubForBackends(dataDirectory: directory)
        #expect(first.service.contains("SharedAccessKeyName=iothubowner;SharedAccessKey="))
        #expect(first.events.hasPrefix("Endpoint=sb://") && first.events.hasSuffix(";EntityPath=emulator-hub"))
        #expect(first.service.split(separator: ";").last == second.service.split(separator: ";").last)
    }

    @Test("emulator article: fault injection, methods and desired properties")
    func emulatorArticle() async throws {
        try await ArticleExamples.testWithEmulator()
    }
}

extension EmulatorEndpoints {
    /// The emulator's port for `transport`: MQTT, AMQP, or the WebSocket port that serves both.
    func port(for transport: DeviceClientConfiguration.Transport) -> Int {
        switch transport {
        case .mqtt: self.mqtt.port
        case .amqp: self.amqp.port
        case .mqttWebSockets, .amqpWebSockets: self.webSockets.port
        }
    }
}
