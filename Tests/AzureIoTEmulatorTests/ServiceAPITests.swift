import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import HubFileUpload
import HubMQTT
import Synchronization
import Testing

/// The emulator's service REST API: Azure's own Python service SDK (`azure-iot-hub` 2.7.0) drives the registry,
/// twins and direct methods with the connection string the emulator prints, against devices connected with this
/// SDK; curl sends it what no SDK would.
@Suite("Emulator: service REST API")
struct ServiceAPITests {
    static let createdKey = "c2VydmljZS1jcmVhdGVkLWRldmljZS1rZXktMDAwMDA="

    static func owner(_ fixture: EmulatorFixture) throws -> String {
        try #require(fixture.endpoints.serviceConnectionString)
    }

    static func policy(_ fixture: EmulatorFixture, _ name: String) throws -> EmulatorEndpoints.PolicyCredentials {
        try #require(fixture.endpoints.sharedAccessPolicies.first { $0.keyName == name })
    }

    static func deviceClient(_ fixture: EmulatorFixture, _ deviceId: String, key: String) throws -> DeviceClient {
        try DeviceClient(configuration: try fixture.endpoints.deviceConfiguration(deviceId, key: key))
    }

    static func python(
        _ arguments: [String],
        script: String = "fidelity/azure_service_sdk.py",
        environment: [String: String]? = nil
    ) async throws -> String {
        let result = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [PeerProcess.peerScript(script)] + arguments,
            environment: environment,
            timeout: .seconds(120)
        )
        #expect(result.status == 0, "\(result.output)")
        return result.output
    }

    /// The value printed after `step:` in the script's output.
    static func line(_ output: String, _ step: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("\(step): ") }.map { String($0.dropFirst(step.count + 2)) }
    }

    @Test(
        "azure-iot-hub creates a device and a module, patches a twin a connected device sees, calls a device and a module method, queries, disables and deletes; a read-only policy and a wrong key get 401"
    )
    func pythonServiceSDK() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let owner = try Self.owner(fixture)
        #expect(
            owner.hasPrefix("HostName=localhost:\(fixture.endpoints.service.port);SharedAccessKeyName=iothubowner;")
        )

        // dev1 (this SDK, MQTT) takes desired patches and answers "reboot" with what it got plus a field.
        let device = try Self.deviceClient(fixture, "dev1", key: EmulatorFixture.deviceKey)
        try await device.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        try await device.connect()
        let responder = Task {
            for await request in device.methodRequests {
                var answer = (try? JSONValue(parsing: request.payload))?.objectValue ?? [:]
                answer["done"] = .bool(true)
                try await request.respond(status: 200, payload: JSONValue.object(answer).jsonBytes)
                return request.name
            }
            return ""
        }
        var patches = device.desiredPropertyPatches.makeAsyncIterator()
        // Its module mod1 answers "calibrate" with status 201 and the payload it got.
        var moduleConfiguration = try fixture.endpoints.deviceConfiguration("dev1", key: EmulatorFixture.moduleKey)
        moduleConfiguration.moduleId = "mod1"
        let module = try DeviceClient(configuration: moduleConfiguration)
        try await module.subscribe(to: [.methodRequests])
        try await module.connect()
        let moduleResponder = Task {
            for await request in module.methodRequests {
                try await request.respond(status: 201, payload: request.payload)
                return request.name
            }
            return ""
        }

        let created = try await Self.python([
            owner, fixture.endpoints.caCertificatePath, "create", "svc-new", Self.createdKey,
        ])
        #expect(Self.line(created, "created") == "svc-new sas enabled", "\(created)")
        #expect(Self.line(created, "module") == "m1 True", "\(created)")
        #expect(Self.line(created, "duplicate") == "409", "\(created)")

        // The device the service created connects with its key and sends.
        let newcomer = try Self.deviceClient(fixture, "svc-new", key: Self.createdKey)
        try await newcomer.connect()
        try await newcomer.send(TelemetryMessage(text: "hello from a registered device"))
        await newcomer.disconnect()
        let arrived = try await fixture.emulator.waitForTelemetry(deviceId: "svc-new")
        #expect(arrived.first?.bodyText == "hello from a registered device")
        try await fixture.emulator.waitUntilDisconnected(deviceId: "svc-new")

        let readOnly = try Self.policy(fixture, "registryRead").connectionString
        let output = try await Self.python([
            owner, fixture.endpoints.caCertificatePath, "scenario", "dev1", "svc-new", readOnly,
        ])
        #expect(output.contains("\ndone"), "\(output)")
        #expect(Self.line(output, "get")?.hasPrefix("svc-new enabled Disconnected ") == true, "\(output)")
        #expect(Self.line(output, "modules") == "m1", "\(output)")
        #expect(Self.line(output, "twin") == "dev1 1 Connected", "\(output)")
        #expect(Self.line(output, "twin-updated") == "2 25 43", "\(output)")
        #expect(Self.line(output, "stale-etag") == "412", "\(output)")
        #expect(Self.line(output, "method") == "200 {'delay': 3, 'done': True}", "\(output)")
        #expect(Self.line(output, "module-method") == "201 [1, 2]", "\(output)")
        #expect(Self.line(output, "module-twin") == "dev1 mod1", "\(output)")
        #expect(Self.line(output, "offline") == "404", "\(output)")
        #expect(Self.line(output, "query") == "twin dev1", "\(output)")
        #expect(Self.line(output, "statistics") == "1 5", "\(output)")
        #expect(Self.line(output, "disabled") == "disabled", "\(output)")
        #expect(Self.line(output, "stale-device-etag") == "412", "\(output)")
        #expect(Self.line(output, "deleted") == "404", "\(output)")
        #expect(Self.line(output, "read-only-get") == "ok", "\(output)")
        #expect(Self.line(output, "read-only-create") == "401", "\(output)")
        #expect(Self.line(output, "wrong-key") == "401", "\(output)")

        // What dev1 saw: the desired patch from the service, and the method call.
        let patch = try #require(await patches.next())
        #expect(patch.version == 2)
        #expect((try? JSONValue(parsing: patch.json))?["targetTemperature"] == .number(25))
        let twin = try await fixture.emulator.twin(deviceId: "dev1")
        #expect(twin.desired["targetTemperature"] == .number(25))
        await device.disconnect()
        #expect(try await responder.value == "reboot")
        await module.disconnect()
        #expect(try await moduleResponder.value == "calibrate")

        // The deleted device (and its module) can no longer connect.
        let gone = try Self.deviceClient(fixture, "svc-new", key: Self.createdKey)
        await #expect(throws: (any Error).self) { try await gone.connect(timeout: .seconds(10)) }
        await gone.disconnect()
    }

    static func elements(_ value: JSONValue?) -> [JSONValue] {
        if case .array(let elements)? = value { return elements }
        return []
    }

    @Test(
        "azure-iot-hub sends cloud-to-device messages over AMQP that a device of this SDK receives with their properties; feedback (completed, expired) and a file upload notification reach uamqp receivers"
    )
    func cloudToDeviceFromTheService() async throws {
        try await FixedPortLock.withLock { try await Self.cloudToDeviceOnPort5671() }
    }

    static func cloudToDeviceOnPort5671() async throws {
        var configuration = try await EmulatorFixture.configuration()
        configuration.amqpPort = 5671
        let emulator = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await emulator.shutdown() } }
        let endpoints = emulator.endpoints
        let owner = try #require(endpoints.serviceConnectionString)
        let deviceConfiguration = try endpoints.deviceConfiguration("dev1", key: EmulatorFixture.deviceKey)
        let device = try DeviceClient(configuration: deviceConfiguration)
        try await device.subscribe(to: [.cloudToDeviceMessages])
        try await device.connect()
        var messages = device.cloudToDeviceMessages.makeAsyncIterator()
        try await device.send(TelemetryMessage(text: "read as printed"))

        var environment = ProcessInfo.processInfo.environment
        environment["SSL_CERT_FILE"] = endpoints.caCertificatePath
        let sent = try await Self.python(
            [owner, endpoints.caCertificatePath, "c2d", "dev1", "dev2"],
            environment: environment
        )
        #expect(sent.contains("sent: svc-c2d-1") && sent.contains("sent: svc-c2d-2"), "\(sent)")
        #expect(Self.line(sent, "unknown") == "refused", "\(sent)")

        let message = try #require(await messages.next())
        #expect(String(decoding: message.body, as: UTF8.self) == "switch on")
        #expect(message.messageId == "svc-c2d-1" && message.correlationId == "corr-7")
        #expect(message.contentType == "text/plain" && message.property("zone") == "b")
        _ = try await emulator.waitForCloudToDevice(messageId: "svc-c2d-1", state: .completed)
        _ = try await emulator.waitForCloudToDevice(messageId: "svc-c2d-2", state: .expired)
        await device.disconnect()

        let owners = try #require(endpoints.sharedAccessPolicies.first { $0.keyName == "service" })
        let feedback = try await Self.python(
            ["localhost:\(endpoints.service.port)", owners.keyName, owners.primaryKey, "2"],
            script: "fidelity/uamqp_feedback.py",
            environment: environment
        )
        #expect(feedback.contains("content-type application/vnd.microsoft.iothub.feedback.json"), "\(feedback)")
        #expect(feedback.contains("record Success svc-c2d-1 dev1"), "\(feedback)")
        #expect(feedback.contains("record Expired svc-c2d-2 dev2"), "\(feedback)")

        // A device's file upload: the backend hears of it on /messages/serviceBound/filenotifications.
        let uploader = try FileUploadClient(
            configuration: .init(
                connectionString: try ConnectionString(
                    parsing:
                        "HostName=\(endpoints.hubHost);DeviceId=dev1;SharedAccessKey=\(EmulatorFixture.deviceKey);GatewayHostName=localhost"
                ),
                trustRoots: .pemFile(endpoints.caCertificatePath),
                port: endpoints.service.port
            )
        )
        let uploaded = try await uploader.upload(Array(repeating: 42, count: 70_000), as: "reports/noon.bin")
        let files = try await Self.python(
            ["localhost:\(endpoints.service.port)", owners.keyName, owners.primaryKey, "1", "filenotifications"],
            script: "fidelity/uamqp_feedback.py",
            environment: environment
        )
        #expect(files.contains("content-type application/vnd.microsoft.iothub.filenotification.json"), "\(files)")
        #expect(
            files.contains(
                "file dev1 \(uploaded.blobName) 70000 https://localhost:\(endpoints.blob.port)/uploads/dev1/reports/noon.bin"
            ),
            "\(files)"
        )

        // The Event Hub-compatible connection string as printed: with TLS, azure-eventhub dials port 5671.
        let eventHub = try #require(endpoints.eventHub.connectionString)
        let consumer = try await EventHubEndpointTests.consumeAsPrinted(
            eventHub,
            ca: endpoints.caCertificatePath,
            count: 1
        )
        #expect(consumer.status == 0 && consumer.output.contains(" dev1 - read as printed {}"), "\(consumer.output)")
    }

    struct Answer {
        var status: Int
        var headers: String
        var body: JSONValue?

        /// IoT Hub's numeric error code, from the JSON inside the body's `Message`.
        var errorCode: Int64? {
            guard case .string(let inner)? = self.body?["Message"] else { return nil }
            return (try? JSONValue(parsing: inner))?["errorCode"]?.int64Value
        }
    }

    /// curl against the service port with a token of `policy` (or none), a method, a path and a body.
    static func curl(
        _ endpoints: EmulatorEndpoints,
        _ method: String,
        _ path: String,
        body: String? = nil,
        headers: [String] = [],
        policy: String? = "iothubowner"
    ) async throws -> Answer {
        var arguments = [
            "-sS", "-i", "-X", method, "--cacert", endpoints.caCertificatePath,
            "https://localhost:\(endpoints.service.port)\(path)",
        ]
        if let policy {
            let credentials = try #require(endpoints.sharedAccessPolicies.first { $0.keyName == policy })
            let token = SASToken.generate(
                for: SASResource(uri: endpoints.hubHost),
                key: try SymmetricKey(base64: credentials.primaryKey),
                expiry: UnixTime.now() + 600,
                keyName: policy
            )
            arguments += ["-H", "Authorization: \(token.secretValue)"]
        }
        for header in headers { arguments += ["-H", header] }
        if let body {
            let file = NSTemporaryDirectory() + "service-body-\(UUID().uuidString)"
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["-H", "Content-Type: application/json", "--data-binary", "@\(file)"]
        }
        let result = try await PeerProcess.complete("/usr/bin/curl", arguments, timeout: .seconds(60))
        guard result.status == 0 else { throw TestFailure("curl failed: \(result.output)") }
        var sections = result.output.components(separatedBy: "\r\n\r\n")
        // A 100 Continue comes before the real head.
        while sections.first?.hasPrefix("HTTP/1.1 100") == true { sections.removeFirst() }
        let head = sections.first ?? ""
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        let text = sections.dropFirst().joined(separator: "\r\n\r\n")
        return Answer(status: status, headers: head.lowercased(), body: try? JSONValue(parsing: Array(text.utf8)))
    }

    @Test("bad input on every route gets IoT Hub's status and error code, and the emulator keeps serving")
    func hostileInput() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let version = "?api-version=2021-04-12"
        let unsigned = try await Self.curl(fixture.endpoints, "GET", "/devices/dev1\(version)", policy: nil)
        #expect(unsigned.status == 401 && unsigned.errorCode == 401_002)
        #expect(unsigned.headers.contains("iothub-errorcode: iothubunauthorizedaccess"))
        let forged = try await Self.curl(
            fixture.endpoints,
            "GET",
            "/devices/dev1\(version)",
            headers: ["Authorization: SharedAccessSignature sr=x&sig=AAAA&se=1&skn=iothubowner"],
            policy: nil
        )
        #expect(forged.status == 401)
        let noVersion = try await Self.curl(fixture.endpoints, "GET", "/devices/dev1")
        #expect(noVersion.status == 400 && noVersion.errorCode == 400_001)
        let futureVersion = try await Self.curl(fixture.endpoints, "GET", "/devices/dev1?api-version=2099-01-01")
        #expect(futureVersion.status == 400 && futureVersion.errorCode == 400_001)
        let unknownRoute = try await Self.curl(fixture.endpoints, "GET", "/jobs/v2\(version)")
        #expect(unknownRoute.status == 404)
        let wrongMethod = try await Self.curl(fixture.endpoints, "POST", "/devices/dev1\(version)", body: "{}")
        #expect(wrongMethod.status == 405)
        let missing = try await Self.curl(fixture.endpoints, "GET", "/devices/nobody\(version)")
        #expect(missing.status == 404 && missing.errorCode == 404_001)
        #expect(missing.headers.contains("iothub-errorcode: devicenotfound"))
        let missingModule = try await Self.curl(fixture.endpoints, "GET", "/devices/dev1/modules/nobody\(version)")
        #expect(missingModule.status == 404 && missingModule.errorCode == 404_010)

        let malformed = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/bad-json\(version)",
            body: #"{"deviceId": "#
        )
        #expect(malformed.status == 400 && malformed.errorCode == 400_004)
        let notObject = try await Self.curl(fixture.endpoints, "PUT", "/devices/bad-json\(version)", body: "[1,2]")
        #expect(notObject.status == 400)
        let otherId = try await Self.curl(fixture.endpoints, "PUT", "/devices/a\(version)", body: #"{"deviceId":"b"}"#)
        #expect(otherId.status == 400)
        let badId = try await Self.curl(fixture.endpoints, "PUT", "/devices/has%20space\(version)", body: "{}")
        #expect(badId.status == 400)
        let longId = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/\(String(repeating: "x", count: 129))\(version)",
            body: "{}"
        )
        #expect(longId.status == 400)
        let badKey = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/bad-key\(version)",
            body: #"{"authentication":{"type":"sas","symmetricKey":{"primaryKey":"not base64!"}}}"#
        )
        #expect(badKey.status == 400)
        let badStatus = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/bad-status\(version)",
            body: #"{"status":"maybe"}"#
        )
        #expect(badStatus.status == 400)
        let badThumbprint = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/bad-print\(version)",
            body: #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"xyz"}}}"#
        )
        #expect(badThumbprint.status == 400)
        let huge = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/huge\(version)",
            body: #"{"tags":""# + String(repeating: "a", count: 200_000) + #""}"#
        )
        #expect(huge.status == 413)
        let existing = try await Self.curl(fixture.endpoints, "PUT", "/devices/dev1\(version)", body: "{}")
        #expect(existing.status == 409 && existing.errorCode == 409_001)
        let staleDelete = try await Self.curl(
            fixture.endpoints,
            "DELETE",
            "/devices/dev2\(version)",
            headers: [#"If-Match: "not-the-etag""#]
        )
        #expect(staleDelete.status == 412 && staleDelete.errorCode == 412_002)
        let updateMissing = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/nobody\(version)",
            body: "{}",
            headers: [#"If-Match: "*""#]
        )
        #expect(updateMissing.status == 404)

        let reported = try await Self.curl(
            fixture.endpoints,
            "PATCH",
            "/twins/dev1\(version)",
            body: #"{"properties":{"reported":{"fw":"1"}}}"#
        )
        #expect(reported.status == 400)
        let deep = String(repeating: #"{"a":"#, count: 12) + "1" + String(repeating: "}", count: 12)
        let tooDeep = try await Self.curl(
            fixture.endpoints,
            "PATCH",
            "/twins/dev1\(version)",
            body: #"{"tags":"# + deep + "}"
        )
        #expect(tooDeep.status == 400)
        let badTimeout = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/twins/dev1/methods\(version)",
            body: #"{"methodName":"reboot","responseTimeoutInSeconds":100000}"#
        )
        #expect(badTimeout.status == 400)
        let noName = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/twins/dev1/methods\(version)",
            body: #"{"payload":1}"#
        )
        #expect(noName.status == 400)
        let offline = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/twins/dev1/methods\(version)",
            body: #"{"methodName":"reboot","responseTimeoutInSeconds":5}"#
        )
        #expect(offline.status == 404 && offline.errorCode == 404_103)
        #expect(offline.headers.contains("iothub-errorcode: devicenotonline"))
        for query in [
            "DELETE FROM devices", "SELECT * FROM jobs", "SELECT * FROM devices WHERE (",
            "SELECT * FROM devices WHERE a =",
        ] {
            let refused = try await Self.curl(
                fixture.endpoints,
                "POST",
                "/devices/query\(version)",
                body: JSONValue.object(["query": .string(query)]).jsonText
            )
            #expect(refused.status == 400, "\(query)")
        }
        let nested =
            "SELECT * FROM devices WHERE " + String(repeating: "(", count: 40) + "a = 1"
            + String(repeating: ")", count: 40)
        let tooNested = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/devices/query\(version)",
            body: JSONValue.object(["query": .string(nested)]).jsonText
        )
        #expect(tooNested.status == 400)
        let badPage = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/devices/query\(version)",
            body: #"{"query":"SELECT * FROM devices"}"#,
            headers: ["x-ms-max-item-count: -3"]
        )
        #expect(badPage.status == 400)

        // Still serving, and nothing above changed the registry.
        let devices = try await Self.curl(fixture.endpoints, "GET", "/devices\(version)")
        #expect(devices.status == 200)
        guard case .array(let list)? = devices.body else {
            Issue.record("GET /devices did not answer an array")
            return
        }
        #expect(list.compactMap { $0["deviceId"]?.stringValue } == ["ca-device", "dev1", "dev2", "x509-device"])
    }

    @Test(
        "X.509 devices created through the API connect: by thumbprint, and chained to a CA the hub knows (CN = device id); a wrong certificate is refused"
    )
    func x509FromTheAPI() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let version = "?api-version=2021-04-12"
        let issuer = try CertificateAuthority(commonName: "API Device Issuer")
        let selfSigned = try issuer.issue(commonName: "api-thumbprint")
        let printed = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/api-thumbprint\(version)",
            body:
                #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"\#(selfSigned.identity.leaf.sha1Thumbprint)"}}}"#
        )
        #expect(printed.status == 200 && printed.body?["authentication"]?["type"] == .string("selfSigned"))
        let chained = try await Self.curl(
            fixture.endpoints,
            "PUT",
            "/devices/api-ca\(version)",
            body: #"{"authentication":{"type":"certificateAuthority"}}"#
        )
        #expect(chained.status == 200)
        func configuration(_ device: String, _ identity: X509Identity) -> HubMQTTConfiguration {
            var configuration = fixture.x509Configuration(device, identity)
            configuration.retryPolicy = RetryPolicy(initialDelay: .milliseconds(20), maximumAttempts: 1)
            return configuration
        }
        try await HubMQTTClient.withConnection(configuration: configuration("api-thumbprint", selfSigned.identity)) {
            client in try await client.send(TelemetryMessage(text: "by thumbprint"))
        }
        // The fixture's X.509 group CA is one the hub knows.
        let signed = try fixture.deviceIntermediate.issue(commonName: "api-ca")
        try await HubMQTTClient.withConnection(configuration: configuration("api-ca", signed.identity)) { client in
            try await client.send(TelemetryMessage(text: "chained to a verified CA"))
        }
        let received = await fixture.emulator.telemetry().map(\.bodyText)
        #expect(received.contains("by thumbprint") && received.contains("chained to a verified CA"))
        let stranger = try issuer.issue(commonName: "api-ca")
        await #expect(throws: (any Error).self) {
            try await HubMQTTClient.withConnection(configuration: configuration("api-ca", stranger.identity)) { _ in }
        }
    }

    @Test("query pages follow x-ms-continuation, and WHERE reads tags, status and reported properties")
    func queryPaging() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let version = "?api-version=2021-04-12"
        for index in 0..<5 {
            let created = try await Self.curl(fixture.endpoints, "PUT", "/devices/paged-\(index)\(version)", body: "{}")
            #expect(created.status == 200)
            let tagged = try await Self.curl(
                fixture.endpoints,
                "PATCH",
                "/twins/paged-\(index)\(version)",
                body: #"{"tags":{"floor":\#(index)}}"#,
                headers: [#"If-Match: "*""#]
            )
            #expect(tagged.status == 200)
        }
        var seen: [String] = []
        var continuation: String?
        var pages = 0
        repeat {
            let page = try await Self.curl(
                fixture.endpoints,
                "POST",
                "/devices/query\(version)",
                body:
                    #"{"query":"SELECT * FROM devices WHERE tags.floor >= 1 AND NOT (tags.floor = 3) AND status = 'enabled'"}"#,
                headers: ["x-ms-max-item-count: 2"] + (continuation.map { ["x-ms-continuation: \($0)"] } ?? []),
                policy: "service"
            )
            #expect(page.status == 200 && page.headers.contains("x-ms-item-type: twin"))
            seen += Self.elements(page.body).compactMap { $0["deviceId"]?.stringValue }
            continuation = page.headers.split(separator: "\r\n").first { $0.hasPrefix("x-ms-continuation: ") }
                .map { String($0.dropFirst("x-ms-continuation: ".count)) }
            pages += 1
        } while continuation != nil && pages < 10
        #expect(seen == ["paged-1", "paged-2", "paged-4"])
        #expect(pages == 2)

        // Reported properties come from the device.
        let device = try Self.deviceClient(fixture, "dev1", key: EmulatorFixture.deviceKey)
        try await device.connect()
        _ = try await device.updateReportedProperties(Array(#"{"firmware":"2.1.0"}"#.utf8))
        await device.disconnect()
        let reported = try await Self.curl(
            fixture.endpoints,
            "POST",
            "/devices/query\(version)",
            body: #"{"query":"select * from devices where properties.reported.firmware = '2.1.0'"}"#
        )
        #expect(Self.elements(reported.body).compactMap { $0["deviceId"]?.stringValue } == ["dev1"])
    }
}

/// Cloud-to-device limits as IoT Hub states them: 50 queued per device, 10 deliveries, feedback for rejections.
@Suite("Emulator: cloud-to-device limits")
struct CloudToDeviceLimitTests {
    @Test("the 51st queued message for a device is refused with queueFull; an unknown device with unknownIdentity")
    func queueDepth() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        for index in 0..<50 {
            _ = try await fixture.emulator.sendCloudToDevice(deviceId: "dev2", body: Array("m\(index)".utf8))
        }
        await #expect(throws: EmulatorError(.queueFull, "")) {
            _ = try await fixture.emulator.sendCloudToDevice(deviceId: "dev2", body: [1])
        }
        await #expect(throws: EmulatorError(.unknownIdentity, "")) {
            _ = try await fixture.emulator.sendCloudToDevice(deviceId: "nobody", body: [1])
        }
    }

    @Test("a message abandoned ten times is dead-lettered; a rejected one is rejected; both leave the queue")
    func deliveryCount() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try DeviceClient(
            configuration: try fixture.endpoints.deviceConfiguration(
                "dev1",
                key: EmulatorFixture.deviceKey,
                transport: .amqp
            )
        )
        try await client.subscribe(to: [.cloudToDeviceMessages])
        try await client.connect()
        var messages = client.cloudToDeviceMessages.makeAsyncIterator()
        let bounced = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("bounce".utf8))
        for _ in 0..<10 {
            let message = try #require(await messages.next())
            #expect(message.messageId == bounced)
            try await message.abandon()
        }
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: bounced, state: .deadLettered)
        let refused = try await fixture.emulator.sendCloudToDevice(deviceId: "dev1", body: Array("no".utf8))
        let message = try #require(await messages.next())
        #expect(message.messageId == refused)
        try await message.reject()
        _ = try await fixture.emulator.waitForCloudToDevice(messageId: refused, state: .rejected)
        await client.disconnect()
        let states = await fixture.emulator.cloudToDeviceMessages().map(\.state)
        #expect(states == [.deadLettered, .rejected])
    }
}
