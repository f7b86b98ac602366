import AzureIoTCore
import AzureIoTDevice
import AzureIoTEdge
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import Testing

@testable import AzureIoTEmulator

/// IoT Edge modules: the route grammar, the Edge environment, the emulator's workload API (read with curl and with
/// this SDK through libcurl), modules of this SDK routed to each other, and Azure's Python module client.
@Suite("IoT Edge modules", .timeLimit(.minutes(3)))
struct EdgeModuleTests {
    static let python = PeerProcess.clientPython

    static func randomKey() -> String { Base64.encode((0..<32).map { _ in UInt8.random(in: 0...255) }) }

    /// An emulator with Edge device `edge1` and modules `sensor`, `filter` and `pymod`: the sensor's `temperature`
    /// output goes to the filter's `input1`; the filter's `alerts` go upstream; the Python module's `toSwift` output
    /// goes to the filter's `fromPython`, and the filter's `toPython` to the Python module's `fromSwift`.
    static func start(mqttPort: Int = 0) async throws -> (IoTEmulator, [String: String]) {
        let keys = ["sensor": randomKey(), "filter": randomKey(), "pymod": randomKey()]
        var configuration = EmulatorConfiguration(
            hubName: "edge-hub",
            mqttPort: mqttPort,
            devices: [
                .init(
                    deviceId: "edge1",
                    primaryKey: randomKey(),
                    modules: keys.sorted { $0.key < $1.key }.map { .init(moduleId: $0.key, primaryKey: $0.value) }
                ),
                .init(deviceId: "leaf", primaryKey: randomKey()),
            ],
            provisioning: .init(idScope: "0ne00EDGE1")
        )
        configuration.edge = .init(
            deviceId: "edge1",
            routes: [
                "sensorToFilter":
                    #"FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/input1")"#,
                "alertsUp": "FROM /messages/modules/filter/outputs/alerts INTO $upstream",
                "pythonToFilter":
                    #"FROM /messages/modules/pymod/outputs/toSwift INTO BrokeredEndpoint("/modules/filter/inputs/fromPython")"#,
                "filterToPython":
                    #"from /messages/modules/filter/outputs/toPython into brokeredEndpoint("/modules/pymod/inputs/fromSwift")"#,
            ]
        )
        configuration.amqpPort = 0
        return (try await IoTEmulator.start(configuration: configuration), keys)
    }

    // MARK: - Pure parts

    @Test("routes: every source and sink form, keywords in any case; WHERE, bad sinks and names are refused")
    func routeGrammar() throws {
        let cases: [(String, EdgeRoute)] = [
            ("FROM /* INTO $upstream", EdgeRoute(source: .all, sink: .upstream)),
            ("from /messages/* into $UPSTREAM", EdgeRoute(source: .all, sink: .upstream)),
            ("FROM /messages/modules/* INTO $upstream", EdgeRoute(source: .allModules, sink: .upstream)),
            ("FROM /messages/modules/a/* INTO $upstream", EdgeRoute(source: .module("a"), sink: .upstream)),
            (
                "FROM /messages/modules/a/outputs/* INTO $upstream",
                EdgeRoute(source: .anyOutput(module: "a"), sink: .upstream)
            ),
            (
                #"  FROM /messages/modules/a/outputs/x INTO BrokeredEndpoint( "/modules/b/inputs/y" )  "#,
                EdgeRoute(source: .output(module: "a", output: "x"), sink: .moduleInput(module: "b", input: "y"))
            ),
        ]
        for (text, expected) in cases {
            #expect(try EdgeRoute(parsing: text) == expected, "\(text)")
        }
        let refused = [
            "", "FROM", "INTO $upstream", "FROM /* TO $upstream", "FROM /* INTO",
            "FROM /messages/modules/a/* WHERE $body.t > 1 INTO $upstream",
            "FROM /messages/modules//* INTO $upstream", "FROM /messages/modules/a/outputs/x/y INTO $upstream",
            "FROM /twinChangeNotifications INTO $upstream",
            #"FROM /* INTO BrokeredEndpoint(/modules/b/inputs/y)"#,
            #"FROM /* INTO BrokeredEndpoint("/modules/b/outputs/y")"#,
            #"FROM /* INTO BrokeredEndpoint("/modules/b*/inputs/y")"#,
            "FROM /* INTO $downstream",
            "FROM /* INTO $upstream " + String(repeating: "x", count: 3000),
        ]
        for text in refused {
            #expect(throws: EdgeRoute.ParseError.self, "\(text.prefix(80))") { try EdgeRoute(parsing: text) }
        }
        let route = try EdgeRoute(parsing: "FROM /messages/modules/a/outputs/* INTO $upstream")
        #expect(route.matches(moduleId: "a", output: "x") && !route.matches(moduleId: "a", output: nil))
        #expect(!route.matches(moduleId: "b", output: "x") && !route.matches(moduleId: nil, output: "x"))
        #expect(!EdgeRoute(source: .allModules, sink: .upstream).matches(moduleId: nil, output: nil))
    }

    @Test("a configuration with a route the emulator cannot use, or an Edge device it does not have, does not start")
    func badEdgeConfiguration() async throws {
        var configuration = EmulatorConfiguration(
            hubName: "edge-hub",
            devices: [.init(deviceId: "edge1", primaryKey: Self.randomKey())],
            provisioning: .init(idScope: "0ne00EDGE1")
        )
        configuration.edge = .init(deviceId: "edge1", routes: ["r": "FROM /* WHERE x INTO $upstream"])
        #expect(throws: AzureIoTError.self) { try configuration.validate() }
        configuration.edge = .init(deviceId: "nobody")
        #expect(throws: AzureIoTError.self) { try configuration.validate() }
        configuration.edge = .init(deviceId: "edge1", workloadSocketPath: "relative.sock")
        #expect(throws: AzureIoTError.self) { try configuration.validate() }
    }

    @Test("the Edge environment: read, written back, and each missing or unusable variable named")
    func environment() throws {
        let variables = [
            "IOTEDGE_IOTHUBHOSTNAME": "hub.azure-devices.net", "IOTEDGE_GATEWAYHOSTNAME": "edge-gw",
            "IOTEDGE_DEVICEID": "edge1", "IOTEDGE_MODULEID": "filter", "IOTEDGE_MODULEGENERATIONID": "637",
            "IOTEDGE_WORKLOADURI": "unix:///var/run/iotedge/workload.sock", "IOTEDGE_APIVERSION": "2019-01-30",
            "IOTEDGE_AUTHSCHEME": "sasToken",
        ]
        let environment = try EdgeEnvironment(variables: variables)
        #expect(environment.workloadURI == .unixSocket(path: "/var/run/iotedge/workload.sock"))
        #expect(environment.variables == variables)
        var withoutVersion = variables
        withoutVersion["IOTEDGE_APIVERSION"] = nil
        #expect(try EdgeEnvironment(variables: withoutVersion).apiVersion == "2018-06-28")
        #expect(
            try EdgeEnvironment.WorkloadURI(parsing: "http://127.0.0.1:15580/")
                == .http(baseURL: "http://127.0.0.1:15580")
        )
        for name in variables.keys where name != "IOTEDGE_APIVERSION" && name != "IOTEDGE_AUTHSCHEME" {
            var missing = variables
            missing[name] = nil
            let error = #expect(throws: EdgeError.self) { try EdgeEnvironment(variables: missing) }
            #expect(error?.code == .missingEnvironment && error?.message.contains(name) == true)
        }
        for (name, value, code) in [
            ("IOTEDGE_WORKLOADURI", "tcp://host:1", EdgeError.Code.invalidEnvironment),
            ("IOTEDGE_WORKLOADURI", "unix://relative.sock", .invalidEnvironment),
            ("IOTEDGE_WORKLOADURI", "unix:///" + String(repeating: "d", count: 200), .invalidEnvironment),
            ("IOTEDGE_DEVICEID", "  ", .invalidEnvironment),
            ("IOTEDGE_AUTHSCHEME", "x509", .unsupportedAuthScheme),
        ] {
            var bad = variables
            bad[name] = value
            let error = #expect(throws: EdgeError.self) { try EdgeEnvironment(variables: bad) }
            #expect(error?.code == code, "\(name)=\(value)")
        }
    }

    // MARK: - The workload API

    @Test("the workload API read with curl over its unix socket: trust bundle, HMAC signatures, and its refusals")
    func workloadWithCurl() async throws {
        let (emulator, keys) = try await Self.start()
        defer { Task { await emulator.shutdown() } }
        let environment = try #require(emulator.edgeEnvironment(moduleId: "filter"))
        let socket = String(try #require(environment["IOTEDGE_WORKLOADURI"]).dropFirst("unix://".count))
        let generation = try #require(environment["IOTEDGE_MODULEGENERATIONID"])
        func curl(_ arguments: [String]) async throws -> (status: Int, body: JSONValue?) {
            let (status, output) = try await PeerProcess.complete(
                "/usr/bin/curl",
                ["-sS", "--unix-socket", socket, "-w", "\n%{http_code}"] + arguments,
                timeout: .seconds(30)
            )
            #expect(status == 0, "\(output)")
            let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
            let code = Int(lines.last ?? "") ?? -1
            return (code, try? JSONValue(parsing: lines.dropLast().joined(separator: "\n")))
        }
        let bundle = try await curl(["http://localhost/trust-bundle?api-version=2019-01-30"])
        #expect(bundle.status == 200)
        #expect(bundle.body?["certificate"]?.stringValue == emulator.certificateAuthority.certificatePEM)

        let sign = { (module: String, genid: String, body: String) async throws in
            try await curl([
                "-X", "POST", "-H", "Content-Type: application/json", "-d", body,
                "http://localhost/modules/\(module)/genid/\(genid)/sign?api-version=2019-01-30",
            ])
        }
        let data = "edge-hub.azure-devices.net%2Fdevices%2Fedge1%2Fmodules%2Ffilter\n1700000000"
        let request = #"{"keyId":"primary","algo":"HMACSHA256","data":"\#(Base64.encode(Array(data.utf8)))"}"#
        let signed = try await sign("filter", generation, request)
        #expect(signed.status == 200)
        let expected = try SymmetricKey(base64: try #require(keys["filter"])).signature(of: data)
        #expect(signed.body?["digest"]?.stringValue == expected)

        #expect(try await sign("filter", "stale-\(generation)", request).status == 404)
        #expect(try await sign("nobody", generation, request).status == 404)
        let refused = try await sign("filter", generation, #"{"keyId":"primary","algo":"HMACSHA1","data":"AA=="}"#)
        #expect(refused.status == 400 && refused.body?["message"]?.stringValue?.contains("HMACSHA256") == true)
        #expect(
            try await sign("filter", generation, #"{"keyId":"tertiary","algo":"HMACSHA256","data":"AA=="}"#).status
                == 400
        )
        #expect(try await sign("filter", generation, "not json").status == 400)
        #expect(try await curl(["http://localhost/trust-bundle"]).status == 400)
        #expect(try await curl(["http://localhost/modules/filter/identity?api-version=1"]).status == 404)
    }

    @Test("this SDK's workload client through libcurl: the same digest, tokens the hub takes, and typed failures")
    func workloadWithSDK() async throws {
        let (emulator, keys) = try await Self.start()
        defer { Task { await emulator.shutdown() } }
        let environment = try EdgeEnvironment(variables: #require(emulator.edgeEnvironment(moduleId: "sensor")))
        let workload = WorkloadClient(environment: environment)
        let digest = try await workload.sign(
            moduleId: "sensor",
            generationId: environment.generationId,
            data: Array("hello".utf8)
        )
        let key = try SymmetricKey(base64: try #require(keys["sensor"]))
        #expect(digest == key.authenticationCode(of: Array("hello".utf8)))
        #expect(try await workload.trustBundle() == emulator.certificateAuthority.certificatePEM)

        // The token it signs is the one the key would mint.
        let source = WorkloadTokenSource(environment: environment)
        let resource = SASResource.module(hubHost: environment.hubHostName, deviceId: "edge1", moduleId: "sensor")
        let issued = try await source.token(for: resource, now: 1_700_000_000)
        let local = SASToken.generate(for: resource, key: key, expiry: issued.expiresAt)
        #expect(issued.token.secretValue == local.secretValue)
        #expect(!source.description.contains("sig="))
        #expect(throws: AzureIoTError.self) { try source.issueToken(for: resource, now: 1_700_000_000) }

        let stale = WorkloadTokenSource(
            workload: workload,
            moduleId: "sensor",
            generationId: "stale"
        )
        let error = await #expect(throws: AzureIoTError.self) { try await stale.token(for: resource, now: 1) }
        #expect(error?.code == .signingFailed)
        #expect((error?.underlying as? EdgeError)?.code == .workloadRefused)
        #expect((error?.underlying as? EdgeError)?.status == 404)

        let nowhere = WorkloadClient(uri: .unixSocket(path: "/tmp/no-such-workload-\(UUID().uuidString).sock"))
        let unavailable = await #expect(throws: EdgeError.self) { try await nowhere.trustBundle() }
        #expect(unavailable?.code == .workloadUnavailable)
    }

    // MARK: - Modules

    static func module(_ emulator: IoTEmulator, _ moduleId: String) async throws -> DeviceClient {
        let environment = try EdgeEnvironment(variables: #require(emulator.edgeEnvironment(moduleId: moduleId)))
        var configuration = try await DeviceClientConfiguration.edgeModule(
            environment: environment,
            port: emulator.endpoints.mqtt.port
        )
        configuration.connectTimeout = .seconds(20)
        return try DeviceClient(configuration: configuration)
    }

    /// The sensor and the filter module, connected, the filter listening on its inputs.
    static func sensorAndFilter(_ emulator: IoTEmulator) async throws -> (DeviceClient, DeviceClient) {
        let sensor = try await Self.module(emulator, "sensor")
        let filter = try await Self.module(emulator, "filter")
        try await sensor.connect()
        try await filter.connect()
        try await filter.subscribe(to: [.cloudToDeviceMessages])
        return (sensor, filter)
    }

    @Test(
        "two modules of this SDK from their Edge environment: outputs routed to inputs, alerts upstream, the rest dropped"
    )
    func swiftModulesRouted() async throws {
        let (emulator, _) = try await Self.start()
        defer { Task { await emulator.shutdown() } }
        let (sensor, filter) = try await Self.sensorAndFilter(emulator)

        // Routed to the filter's input1 while it listens; an unrouted output goes nowhere.
        try await sensor.send(TelemetryMessage(body: Array("unrouted".utf8), outputName: "debug"))
        try await sensor.send(
            TelemetryMessage(
                body: Array(#"{"t":41.5}"#.utf8),
                contentType: "application/json",
                messageId: "s-1",
                outputName: "temperature",
                properties: [("unit", "C")]
            )
        )
        var inputs = filter.cloudToDeviceMessages.makeAsyncIterator()
        let received = try #require(await inputs.next())
        #expect(received.inputName == "input1")
        #expect(String(decoding: received.body, as: UTF8.self) == #"{"t":41.5}"#)
        #expect(received.messageId == "s-1" && received.contentType == "application/json")
        #expect(received.property("unit") == "C")

        try await filter.send(TelemetryMessage(body: Array("too hot".utf8), outputName: "alerts"))
        let upstream = try await emulator.waitForTelemetry(deviceId: "edge1", count: 1)
        #expect(upstream.count == 1)
        #expect(upstream.first?.moduleId == "filter" && upstream.first?.bodyText == "too hot")
        #expect(upstream.first?.systemProperties["on"] == "alerts")

        // Messages for a module that is away wait for it, and arrive once it subscribes again.
        await filter.disconnect()
        try await sensor.send(TelemetryMessage(body: Array("while away".utf8), outputName: "temperature"))
        try await eventually("the message waits for the filter") {
            await emulator.moduleInputBacklog(moduleId: "filter").waiting == 1
        }
        let again = try await Self.module(emulator, "filter")
        try await again.connect()
        try await again.subscribe(to: [.cloudToDeviceMessages])
        var more = again.cloudToDeviceMessages.makeAsyncIterator()
        let late = try #require(await more.next())
        #expect(late.inputName == "input1" && String(decoding: late.body, as: UTF8.self) == "while away")
        try await eventually("the filter acknowledges it") {
            await emulator.moduleInputBacklog(moduleId: "filter").waiting == 0
        }
        #expect(await emulator.telemetry(deviceId: "edge1").count == 1)
        await sensor.disconnect()
        await again.disconnect()
    }

    @Test("a burst of 120 routed messages, over the 50 a module may have unacknowledged: every one arrives, in order")
    func burstBeyondInFlightLimit() async throws {
        let (emulator, _) = try await Self.start()
        defer { Task { await emulator.shutdown() } }
        let (sensor, filter) = try await Self.sensorAndFilter(emulator)
        for index in 0..<120 {
            try await sensor.send(TelemetryMessage(body: Array("\(index)".utf8), outputName: "temperature"))
        }
        var inputs = filter.cloudToDeviceMessages.makeAsyncIterator()
        var received: [String] = []
        while received.count < 120, let message = await inputs.next() {
            received.append(String(decoding: message.body, as: UTF8.self))
        }
        #expect(received == (0..<120).map(String.init))
        try await eventually("every message acknowledged") {
            await emulator.moduleInputBacklog(moduleId: "filter").waiting == 0
        }
        await sensor.disconnect()
        await filter.disconnect()
    }

    @Test("Azure's Python module client from the printed Edge environment and this SDK's module, routed both ways")
    func pythonModuleClient() async throws {
        try await FixedPortLock.withLock { try await Self.pythonModuleOnPort8883() }
    }

    static func pythonModuleOnPort8883() async throws {
        let (emulator, _) = try await Self.start(mqttPort: 8883)
        defer { Task { await emulator.shutdown() } }
        let filter = try await Self.module(emulator, "filter")
        try await filter.connect()
        try await filter.subscribe(to: [.cloudToDeviceMessages])
        var environment = ProcessInfo.processInfo.environment
        environment.merge(try #require(emulator.edgeEnvironment(moduleId: "pymod"))) { _, new in new }
        let python = try await PeerProcess(
            Self.python,
            [PeerProcess.peerScript("fidelity/azure_module_client.py")],
            readyMarker: "sent to output toSwift",
            environment: environment,
            timeout: .seconds(60)
        )
        defer { python.stop() }
        var inputs = filter.cloudToDeviceMessages.makeAsyncIterator()
        let fromPython = try #require(await inputs.next())
        #expect(fromPython.inputName == "fromPython")
        #expect(String(decoding: fromPython.body, as: UTF8.self) == #"{"reading": 7}"#)
        #expect(fromPython.messageId == "py-module-1" && fromPython.contentType == "application/json")
        #expect(fromPython.property("origin") == "python module")

        try await filter.send(
            TelemetryMessage(
                body: Array("calibrate".utf8),
                messageId: "swift-1",
                outputName: "toPython",
                properties: [("origin", "swift module")]
            )
        )
        #expect(await python.waitForOutput(containing: "done", timeout: .seconds(60)), "\(python.output)")
        #expect(
            // Python reads the sender's ids, which edgeHub adds, as custom properties.
            python.output.contains(
                #"input: fromSwift calibrate {"$.cdid": "edge1", "$.cmid": "filter", "origin": "swift module"} swift-1"#
            ),
            "\(python.output)"
        )
        await filter.disconnect()
    }
}
