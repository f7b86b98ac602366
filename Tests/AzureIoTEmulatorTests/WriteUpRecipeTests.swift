import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import Testing

/// Every recipe of the write-ups, run against the emulator as the text prints it (`Tests/Peers/write-ups/`), with
/// only host, port, CA file, ids and keys filled in, and the blog's typography undone (``WriteUpExcerpt/pasted``).
/// Where the text gives example ids (`dps-sym-key-test01` with its key, `nodeRedTest`, `sdbiothub1`, `amqptest`),
/// the tests use them. What cannot run verbatim says why here and in the README.
@Suite("The write-ups' recipes, as printed", .serialized)
struct WriteUpRecipeTests {
    static let python = PeerProcess.clientPython
    static let excerpts = [
        "dps-sas-token.py.txt", "dps-sas-token-inputs.txt", "dps-derive-key.sh.txt", "dps-symmetric-register.sh.txt",
        "dps-symmetric-operation.sh.txt", "dps-x509-register.sh.txt", "dps-x509-operation.sh.txt",
        "mosquitto-bridge.conf.txt",
        "mosquitto-bridge-publish.sh.txt", "topic-translate.py.txt", "topic-translate-publish.sh.txt",
        "uamqp-send.py.txt",
    ]

    @Test(
        "every excerpt stands in the write-ups byte for byte (the Node-RED settings line by line)",
        .enabled(
            if: FileManager.default.fileExists(atPath: WriteUpExcerpt.seedPath),
            "needs ../shared/seed beside the clone"
        )
    )
    func excerptsMatchTheWriteUps() throws {
        let text = try String(contentsOfFile: WriteUpExcerpt.seedPath, encoding: .utf8)
        for name in Self.excerpts {
            #expect(text.contains(try WriteUpExcerpt(name).printed), "\(name) is not in the write-ups as it stands")
        }
        for line in try WriteUpExcerpt("nodered-mqtt-node.txt").printed.split(separator: "\n") {
            #expect(text.contains(line), "'\(line)' is not in the Node-RED write-up")
        }
    }

    // MARK: - DPS over REST, symmetric key (part 2)

    /// The write-up's own example: scope `0ne00057505`, registration `dps-sym-key-test01` with its key; a group
    /// `dps-test-sym-group1` for `dps-test-sym-device01`.
    static let exampleScope = "0ne00057505"
    static let groupKey = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktZ3JvdXA="

    static func symmetricKeyEmulator(individualKey: String) async throws -> IoTEmulator {
        var configuration = EmulatorConfiguration(
            hubName: "test-hub",
            provisioning: .init(
                idScope: Self.exampleScope,
                individualEnrollments: [.init(registrationId: "dps-sym-key-test01", primaryKey: individualKey)],
                enrollmentGroups: [.init(name: "dps-test-sym-group1", primaryKey: Self.groupKey)]
            )
        )
        configuration.provisioningRetryAfterSeconds = 1
        return try await IoTEmulator.start(configuration: configuration)
    }

    /// The write-up's SAS script is Python 2 and its indentation did not survive the blog (body lines at 5 and 4
    /// columns): pasted as printed, Python 3 refuses it. These are the repairs that make it run on Python 3, and
    /// nothing else changes.
    static let python3Repairs: [(String, String)] = [
        ("from urllib import quote_plus, urlencode", "from urllib.parse import quote_plus, urlencode"),
        ("print sign_key", "print(sign_key)"),
        ("HMAC(b64decode(key), sign_key, sha256)", "HMAC(b64decode(key), sign_key.encode('utf-8'), sha256)"),
        ("print generate_sas_token(uri, key, policy, expiry)", "print(generate_sas_token(uri, key, policy, expiry))"),
    ]

    /// Runs the write-up's SAS script with its bottom four lines filled in; returns its last line, the token.
    static func sasFromWriteUpScript(uri: String, key: String, expiry: String, policy: String) async throws -> String {
        let script = try WriteUpExcerpt("dps-sas-token.py.txt")
        let filled = [
            ("[resource_uri]", uri), ("[device_key]", key), ("[expiry_in_seconds]", expiry), ("[policy]", policy),
        ]
        let folder = try RecipeShell.folder()
        // As printed, the script does not get past Python 3's parser.
        try script.pasted(filled).write(toFile: folder + "/sas.py", atomically: true, encoding: .utf8)
        let verbatim = try await PeerProcess.complete(Self.python, [folder + "/sas.py"])
        #expect(verbatim.status != 0 && verbatim.output.contains("SyntaxError"), "\(verbatim.output)")
        // Re-indented to 4 and 8 columns, with the Python 3 repairs.
        var lines: [String] = []
        for line in script.pasted(filled + Self.python3Repairs).split(separator: "\n", omittingEmptySubsequences: false)
        {
            let indent = line.prefix { $0 == " " }.count
            lines.append(String(repeating: " ", count: indent >= 8 ? 8 : indent >= 4 ? 4 : 0) + line.drop { $0 == " " })
        }
        try lines.joined(separator: "\n").write(toFile: folder + "/sas3.py", atomically: true, encoding: .utf8)
        let result = try await PeerProcess.complete(Self.python, [folder + "/sas3.py"])
        guard result.status == 0, let token = result.output.split(separator: "\n").last,
            token.hasPrefix("SharedAccessSignature ")
        else {
            throw TestFailure("the repaired SAS script failed: \(result.output)")
        }
        return String(token)
    }

    /// The register call as printed, then the operation-status call in a loop until the status is no longer
    /// `assigning`, then once more (DPS answers a finished operation again). Returns the last registration state.
    static func registerAndPoll(
        register: String,
        operation: String,
        registrationId: String,
        substitutions: [(String, String)],
        emulator: IoTEmulator,
        folder: String
    ) async throws -> [String: JSONValue] {
        let host = [("global.azure-devices-provisioning.net", "localhost:\(emulator.endpoints.dps.port)")]
        let common =
            host + [("[dps_scope_id]", emulator.endpoints.idScope), ("[registration_id]", registrationId)]
            + substitutions
        let trust = ["CURL_CA_BUNDLE": emulator.endpoints.caCertificatePath]
        let registered = try await RecipeShell.run(
            try WriteUpExcerpt(register).pasted(common),
            in: folder,
            environment: trust
        )
        let answer = RecipeShell.httpResponse(registered.stdout)
        #expect(registered.status == 0 && answer.status == 202, "\(registered.stdout)\(registered.stderr)")
        #expect(answer.body?.objectValue["status"] == .string("assigning"))
        guard case .string(let operationId)? = answer.body?.objectValue["operationId"] else {
            throw TestFailure("no operationId in \(registered.stdout)")
        }
        let status = try WriteUpExcerpt(operation).pasted(common + [("[operation_id]", operationId)])
        var state: [String: JSONValue] = [:]
        for _ in 0..<30 {
            let polled = try await RecipeShell.run(status, in: folder, environment: trust)
            let response = RecipeShell.httpResponse(polled.stdout)
            #expect(response.status == 200, "\(polled.stdout)\(polled.stderr)")
            state = response.body?.objectValue["registrationState"]?.objectValue ?? [:]
            if state["status"] != .string("assigning") { break }
            try await Task.sleep(for: .seconds(1))
        }
        let again = RecipeShell.httpResponse(try await RecipeShell.run(status, in: folder, environment: trust).stdout)
        #expect(
            again.status == 200
                && again.body?.objectValue["registrationState"]?.objectValue["status"] == state["status"]
        )
        return state
    }

    @Test(
        "individual enrollment: the SAS script with the text's example inputs, then curl register and the status loop"
    )
    func dpsSymmetricIndividual() async throws {
        var inputs: [String: String] = [:]
        for line in try WriteUpExcerpt("dps-sas-token-inputs.txt").lines {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            inputs[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        let key = try #require(inputs["key"])
        let emulator = try await Self.symmetricKeyEmulator(individualKey: key)
        defer { Task { await emulator.shutdown() } }
        #expect(inputs["uri"] == "\(Self.exampleScope)/registrations/dps-sym-key-test01")
        let token = try await Self.sasFromWriteUpScript(
            uri: try #require(inputs["uri"]),
            key: key,
            expiry: try #require(inputs["expiry"]),
            policy: try #require(inputs["policy"])
        )
        let state = try await Self.registerAndPoll(
            register: "dps-symmetric-register.sh.txt",
            operation: "dps-symmetric-operation.sh.txt",
            registrationId: "dps-sym-key-test01",
            substitutions: [("[sas_token]", token)],
            emulator: emulator,
            folder: try RecipeShell.folder()
        )
        #expect(state["status"] == .string("assigned"))
        #expect(state["assignedHub"] == .string("test-hub.azure-devices.net"))
        #expect(state["deviceId"] == .string("dps-sym-key-test01"))
    }

    @Test("group enrollment: the openssl pipeline derives the key, the SAS script signs with it, curl registers")
    func dpsSymmetricGroup() async throws {
        let emulator = try await Self.symmetricKeyEmulator(individualKey: Self.groupKey)
        defer { Task { await emulator.shutdown() } }
        let folder = try RecipeShell.folder()
        let derive = try WriteUpExcerpt("dps-derive-key.sh.txt").pasted([
            ("[group enrollment key]", Self.groupKey), ("[registration id]", "dps-test-sym-device01"),
        ])
        let derived = try await RecipeShell.run(derive, in: folder)
        let derivedKey = derived.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(derived.status == 0, "\(derived.stderr)")
        let sdkKey = try SymmetricKey(base64: Self.groupKey).derivedKey(forRegistrationId: "dps-test-sym-device01")
        #expect(derivedKey == sdkKey.base64EncodedSecret, "the pipeline and the SDK derive different keys")

        let token = try await Self.sasFromWriteUpScript(
            uri: "\(Self.exampleScope)/registrations/dps-test-sym-device01",
            key: derivedKey,
            expiry: "3600",
            policy: "registration"
        )
        let state = try await Self.registerAndPoll(
            register: "dps-symmetric-register.sh.txt",
            operation: "dps-symmetric-operation.sh.txt",
            registrationId: "dps-test-sym-device01",
            substitutions: [("[sas_token]", token)],
            emulator: emulator,
            folder: folder
        )
        #expect(state["status"] == .string("assigned"))
        #expect(state["symmetricKey"]?.objectValue["enrollmentGroupId"] == .string("dps-test-sym-group1"))
    }

    // MARK: - DPS over REST, X.509 (part 1)

    enum X509Setup: String, CaseIterable, Sendable {
        /// `create_test_cert.js device "dps-test-device-01" "dps-test-root"`, enrolled by its certificate.
        case individual
        /// A device under `dps-test-intermediate` under `dps-test-root`; the group holds the (verified) root.
        case rootCAGroup
        /// The same device; the group holds the intermediate.
        case intermediateGroup
    }

    @Test("curl --cert/--key with the file names create_test_cert.js writes", arguments: X509Setup.allCases)
    func dpsX509(_ setup: X509Setup) async throws {
        let root = try CertificateAuthority(commonName: "dps-test-root")
        let intermediate = try root.intermediate(commonName: "dps-test-intermediate")
        let device = try (setup == .individual ? root : intermediate).issue(commonName: "dps-test-device-01")
        var provisioning = EmulatorConfiguration.Provisioning(idScope: Self.exampleScope)
        switch setup {
        case .individual:
            provisioning.individualEnrollments = [
                .init(
                    registrationId: "dps-test-device-01",
                    certificateThumbprint: device.identity.leaf.sha256Thumbprint
                )
            ]
        case .rootCAGroup:
            provisioning.enrollmentGroups = [.init(name: "dps-test-root-group", caCertificatePEM: root.certificatePEM)]
        case .intermediateGroup:
            provisioning.enrollmentGroups = [
                .init(name: "dps-test-intermediate-group", caCertificatePEM: intermediate.certificatePEM)
            ]
        }
        let emulator = try await IoTEmulator.start(
            configuration: EmulatorConfiguration(hubName: "test-hub", provisioning: provisioning)
        )
        defer { Task { await emulator.shutdown() } }
        let folder = try RecipeShell.folder()
        try (device.certificatePEM + device.chainPEM).write(
            toFile: folder + "/dpsTestDevice01_cert.pem",
            atomically: true,
            encoding: .utf8
        )
        _ = FileManager.default.createFile(
            atPath: folder + "/dpsTestDevice01_key.pem",
            contents: Data(device.privateKeyPEM.utf8),
            attributes: [.posixPermissions: 0o600]
        )
        let state = try await Self.registerAndPoll(
            register: "dps-x509-register.sh.txt",
            operation: "dps-x509-operation.sh.txt",
            registrationId: "dps-test-device-01",
            substitutions: [
                ("[device cert]", "dpsTestDevice01_cert"), ("[device-cert-private-key]", "dpsTestDevice01_key"),
            ],
            emulator: emulator,
            folder: folder
        )
        #expect(state["status"] == .string("assigned"))
        #expect(state["deviceId"] == .string("dps-test-device-01"))
        let group = state["x509"]?.objectValue["enrollmentGroupId"]
        switch setup {
        case .individual: #expect(group == nil)
        case .rootCAGroup: #expect(group == .string("dps-test-root-group"))
        case .intermediateGroup: #expect(group == .string("dps-test-intermediate-group"))
        }
    }

    // MARK: - MQTT: Node-RED, mosquitto bridge, topic translation

    /// A hub with the write-ups' example names, one device with a key.
    static func hubEmulator(hubName: String, deviceId: String, amqpPort: Int = 0) async throws -> IoTEmulator {
        try await IoTEmulator.start(
            configuration: EmulatorConfiguration(
                hubName: hubName,
                amqpPort: amqpPort,
                devices: [.init(deviceId: deviceId, primaryKey: EmulatorFixture.deviceKey)],
                provisioning: .init(idScope: Self.exampleScope)
            )
        )
    }

    @Test("the Node-RED MQTT node's settings (paho plays the node): both topics, QoS 0 and 1, the 2016-11-14 user name")
    func nodeRed() async throws {
        let emulator = try await Self.hubEmulator(hubName: "sdbiothub1", deviceId: "nodeRedTest")
        defer { Task { await emulator.shutdown() } }
        let settings = try WriteUpExcerpt("nodered-mqtt-node.txt").pasted([
            ("[device id]", "nodeRedTest"), ("[hub name]", "sdbiothub1"),
        ])
        .split(separator: "\n").map(String.init)
        let (topic, topicWithProperties, username) = (settings[0], settings[1], settings[2])
        #expect(username == "sdbiothub1.azure-devices.net/nodeRedTest/api-version=2016-11-14")
        // The write-up's token comes from `az iot hub generate-sas-token`; Azure's documented script makes the same one.
        let token = try await EmulatorFidelityTests.sasToken(
            "sdbiothub1.azure-devices.net/devices/nodeRedTest",
            key: EmulatorFixture.deviceKey
        )
        let node = PeerProcess.peerScript("fidelity/mqtt_node.py")
        let endpoint = ["localhost", String(emulator.endpoints.mqtt.port), emulator.endpoints.caCertificatePath]
        let stamp = String(Int(Date().timeIntervalSince1970 * 1000))
        let published = try await PeerProcess.complete(
            Self.python,
            [node] + endpoint + [
                "nodeRedTest", username, token, "0", topic, stamp, "1", topicWithProperties,
                #"{"messageType":"alert"}"#,
            ]
        )
        #expect(published.status == 0 && published.output.contains("published 2"), "\(published.output)")
        let received = try await emulator.waitForTelemetry(deviceId: "nodeRedTest", count: 2)
        #expect(received.map(\.bodyText).sorted() == [stamp, #"{"messageType":"alert"}"#].sorted())
        let routed = try #require(received.first { $0.bodyText.hasPrefix("{") })
        #expect(
            routed.contentType == "application/json" && routed.contentEncoding == "utf-8" && routed.properties.isEmpty
        )

        // Still refused: another hub, another device than the client id, a token signed with another key.
        let refusals: [(clientId: String, username: String, token: String)] = [
            ("nodeRedTest", "otherhub.azure-devices.net/nodeRedTest/api-version=2016-11-14", token),
            ("nodeRedTest", "sdbiothub1.azure-devices.net/someoneElse/api-version=2016-11-14", token),
            ("someoneElse", username, token),
            (
                "nodeRedTest", username,
                try await EmulatorFidelityTests.sasToken(
                    "sdbiothub1.azure-devices.net/devices/nodeRedTest",
                    key: Self.groupKey
                )
            ),
        ]
        for refusal in refusals {
            let refused = try await PeerProcess.complete(
                Self.python,
                [node] + endpoint + [refusal.clientId, refusal.username, refusal.token, "1", topic, "x"]
            )
            #expect(
                refused.output.contains("refused rc=5"),
                "\(refusal.clientId) \(refusal.username): \(refused.output)"
            )
        }
    }

    @Test("the mosquitto bridge block as printed, mosquitto_pub through it, and the topic-translation script")
    func mosquittoBridge() async throws {
        let emulator = try await Self.hubEmulator(hubName: "myiothub", deviceId: "bridge-device")
        defer { Task { await emulator.shutdown() } }
        let token = try await EmulatorFidelityTests.sasToken(
            "myiothub.azure-devices.net/devices/bridge-device",
            key: EmulatorFixture.deviceKey
        )
        let localPort = try PeerProcess.freePort()
        let block = try WriteUpExcerpt("mosquitto-bridge.conf.txt").pasted([
            ("[edge or hub fqdn]:8883", "localhost:\(emulator.endpoints.mqtt.port)"),
            ("[iothub-shortname]", "myiothub"),
            ("[device-id]", "bridge-device"), ("[sas-token]", token),
            ("[iot hub or edge root ca cert]", emulator.endpoints.caCertificatePath),
        ])
        // The write-up leaves the rest of mosquitto.conf to the reader: where the local broker listens.
        let harness =
            "persistence false\nuser root\nlog_dest stderr\nlistener \(localPort) 127.0.0.1\nallow_anonymous true\n\n"
        let folder = try RecipeShell.folder()
        try (harness + block).write(toFile: folder + "/mosquitto.conf", atomically: true, encoding: .utf8)
        // The block logs at debug level only, so its CONNACK line (not the notice " running") says it is up.
        let bridge = try await PeerProcess(
            "/usr/sbin/mosquitto",
            ["-c", folder + "/mosquitto.conf"],
            readyMarker: "Received CONNACK on connection",
            timeout: .seconds(30)
        )
        defer { bridge.stop() }
        try await emulator.waitUntilConnected(deviceId: "bridge-device", timeout: .seconds(30))

        // `mosquitto_pub` as printed, told the local broker's port.
        let publish = try WriteUpExcerpt("mosquitto-bridge-publish.sh.txt").pasted([
            ("[device-id]", "bridge-device"), ("mosquitto_pub ", "mosquitto_pub -p \(localPort) "),
        ])
        let published = try await RecipeShell.run(publish, in: folder)
        #expect(published.status == 0, "\(published.stderr)")
        #expect(
            try await emulator.waitForTelemetry(deviceId: "bridge-device").first?.bodyText == "hello world!",
            "\(bridge.output)"
        )

        // The translation script as printed, pointed at the local broker, republishes any topic onto the hub's.
        let translate = try WriteUpExcerpt("topic-translate.py.txt").pasted([
            ("[device-id]", "bridge-device"), ("[broker address]", "127.0.0.1"),
            ("client.connect(broker_address)", "client.connect(broker_address, \(localPort))"),
        ])
        try translate.write(toFile: folder + "/translate.py", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONUNBUFFERED"] = "1"
        let translator = try await PeerProcess(
            Self.python,
            [folder + "/translate.py"],
            readyMarker: "Subscribing to all topics",
            environment: environment
        )
        defer { translator.stop() }
        let anyTopic = try WriteUpExcerpt("topic-translate-publish.sh.txt").pasted([
            ("mosquitto_pub ", "mosquitto_pub -p \(localPort) ")
        ])
        // Its SUBACK is not printed: publish until the script has seen one message.
        var seen = false
        for _ in 0..<20 where !seen {
            _ = try await RecipeShell.run(anyTopic, in: folder)
            seen = await translator.waitForOutput(
                containing: "message topic= /any/topic/structure/you/want",
                timeout: .seconds(1)
            )
        }
        #expect(seen, "\(translator.output)")
        let all = try await emulator.waitForTelemetry(deviceId: "bridge-device", count: 2)
        #expect(all.contains { $0.bodyText == "hello world" }, "\(bridge.output)")
    }

    // MARK: - AMQP with uamqp

    @Test(
        "the uamqp sample as printed: amqps:// URL with %40sas. and the encoded token, SASL PLAIN with the Edge root CA"
    )
    func uamqpEdge() async throws {
        try await FixedPortLock.withLock {
            let emulator = try await Self.hubEmulator(hubName: "sdbiothub1", deviceId: "amqptest", amqpPort: 5671)
            do {
                try await Self.runUAMQPSample(emulator)
            } catch {
                await emulator.shutdown()
                throw error
            }
            await emulator.shutdown()
        }
    }

    static func runUAMQPSample(_ emulator: IoTEmulator) async throws {
        do {
            let script = try WriteUpExcerpt("uamqp-send.py.txt").pasted([
                ("'your long iothub name'", "'sdbiothub1.azure-devices.net'"), ("'your device id'", "'amqptest'"),
                ("'your primary or secondary device key'", "'\(EmulatorFixture.deviceKey)'"),
                ("'your FQDN for your edge box'", "'localhost'"),
                ("'the path to your root ca cert for edge'", "'\(emulator.endpoints.caCertificatePath)'"),
            ])
            let folder = try RecipeShell.folder()
            try script.write(toFile: folder + "/send.py", atomically: true, encoding: .utf8)
            let result = try await PeerProcess.complete(Self.python, [folder + "/send.py"], timeout: .seconds(60))
            #expect(result.status == 0 && result.output.contains("Message sent."), "\(result.output.suffix(3000))")
            #expect(
                result.output.contains(
                    "Target: amqps://amqptest%40sas.sdbiothub1:SharedAccessSignature+sr%3Dsdbiothub1.azure-devices.net%252Fdevices%252Famqptest%26sig%3D"
                )
            )
            let message = try #require(try await emulator.waitForTelemetry(deviceId: "amqptest").first)
            #expect(message.transport == .amqp && message.bodyText == "hello world")
            #expect(message.properties == ["test_prop_1": "value", "test_prop_2": "X"])
            #expect(UUID(uuidString: message.messageId ?? "") != nil)
        }
    }
}
