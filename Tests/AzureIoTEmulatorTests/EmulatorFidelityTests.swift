import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import Synchronization
import Testing

/// Clients nobody here wrote, against the emulator: curl for DPS (SAS header and client certificate, refusals), the
/// documentation's Python SAS script, uamqp (SASL PLAIN in the URL, and CBS with both token types), and Azure's Python
/// device SDK. The write-ups' own recipes, as printed, are `WriteUpRecipeTests`.
@Suite("Emulator fidelity with third-party clients", .serialized)
struct EmulatorFidelityTests {
    static let python = PeerProcess.clientPython

    static func sasToken(_ uri: String, key: String, policy: String = "", lifetime: Int = 3600) async throws -> String {
        let result = try await PeerProcess.complete(
            python,
            [PeerProcess.peerScript("fidelity/sas_token.py"), uri, key, policy, String(lifetime)]
        )
        guard result.status == 0 else { throw TestError("sas_token.py failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs curl and splits its `-i` output into status, headers and JSON body.
    static func curl(_ arguments: [String]) async throws -> (status: Int, body: JSONValue?) {
        let result = try await PeerProcess.complete("/usr/bin/curl", ["-sS"] + arguments)
        guard result.status == 0 else { throw TestError("curl failed: \(result.output)") }
        let sections = result.output.components(separatedBy: "\r\n\r\n")
        let statusLine = sections.first?.split(separator: "\r\n").first ?? ""
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, (try? JSONValue(parsing: Array((sections.last ?? "").utf8))))
    }

    static func write(_ text: String, to name: String) throws -> String {
        let directory = NSTemporaryDirectory() + "fidelity-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Calls method `name` on dev1 once the device has subscribed to methods (a call before that is refused as not
    /// connected and tried again); other failures are thrown.
    static func invokeWhenSubscribed(_ emulator: IoTEmulator, name: String, payload: JSONValue) async throws
        -> MethodResponse?
    {
        let response = Mutex<MethodResponse?>(nil)
        try await eventually("dev1 took the '\(name)' call", within: .seconds(60)) {
            do {
                let answer = try await emulator.invokeMethod(
                    deviceId: "dev1",
                    name: name,
                    payload: payload,
                    timeout: .seconds(30)
                )
                response.withLock { $0 = answer }
                return true
            } catch let error as EmulatorError where error.code == .deviceNotConnected {
                return false
            }
        }
        return response.withLock { $0 }
    }

    @Test(
        "curl with a SAS Authorization header from the Python script: register, then poll the operation until assigned"
    )
    func curlSymmetricKey() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 1)
        defer { Task { await fixture.emulator.shutdown() } }
        let scope = fixture.endpoints.idScope
        let base = "https://localhost:\(fixture.endpoints.dps.port)/\(scope)/registrations/individual-1"
        let token = try await Self.sasToken(
            "\(scope)/registrations/individual-1",
            key: EmulatorFixture.individualKey,
            policy: "registration"
        )
        let common = [
            "--cacert", fixture.endpoints.caCertificatePath, "-L", "-i", "-H", "Content-Type: application/json", "-H",
            "Content-Encoding: utf-8", "-H", "Authorization: \(token)",
        ]
        let register = try await Self.curl(
            common + [
                "-X", "PUT", "-d", #"{"registrationId": "individual-1"}"#, "\(base)/register?api-version=2021-06-01",
            ]
        )
        #expect(register.status == 202)
        guard case .string(let operationId)? = register.body?.objectValue["operationId"] else {
            throw TestError("no operationId")
        }
        #expect(register.body?.objectValue["status"] == .string("assigning"))
        let poll = try await Self.curl(
            common + ["-X", "GET", "\(base)/operations/\(operationId)?api-version=2021-06-01"]
        )
        #expect(poll.status == 200)
        let state = poll.body?.objectValue["registrationState"]?.objectValue ?? [:]
        #expect(state["status"] == .string("assigned"))
        #expect(state["assignedHub"] == .string("test-hub.azure-devices.net"))
        #expect(state["deviceId"] == .string("provisioned-individual"))
        let lookup = try await Self.curl(
            common + ["-X", "POST", "-d", #"{"registrationId": "individual-1"}"#, "\(base)?api-version=2021-06-01"]
        )
        #expect(lookup.status == 200)
        #expect(lookup.body?.objectValue["status"] == .string("assigned"))

        // The same script's token signed with another key is refused with DPS's error body.
        let forged = try await Self.sasToken(
            "\(scope)/registrations/individual-1",
            key: EmulatorFixture.groupKey,
            policy: "registration"
        )
        let refused = try await Self.curl([
            "--cacert", fixture.endpoints.caCertificatePath, "-i", "-X", "PUT", "-H", "Content-Type: application/json",
            "-H", "Authorization: \(forged)", "-d", #"{"registrationId": "individual-1"}"#,
            "\(base)/register?api-version=2021-06-01",
        ])
        #expect(refused.status == 401)
        #expect(refused.body?.objectValue["errorCode"] == .number(401_002))
        #expect(refused.body?.objectValue["trackingId"] != nil)
        // DPS tokens must name the `registration` policy.
        let noPolicy = try await Self.sasToken(
            "\(scope)/registrations/individual-1",
            key: EmulatorFixture.individualKey
        )
        let unnamed = try await Self.curl([
            "--cacert", fixture.endpoints.caCertificatePath, "-i", "-X", "PUT", "-H", "Content-Type: application/json",
            "-H", "Authorization: \(noPolicy)", "-d", #"{"registrationId": "individual-1"}"#,
            "\(base)/register?api-version=2021-06-01",
        ])
        #expect(unnamed.status == 401)
    }

    @Test(
        "curl with --cert/--key (chain through the group's intermediate CA); a CN that is not the registration id is refused"
    )
    func curlX509() async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 1)
        defer { Task { await fixture.emulator.shutdown() } }
        let device = try fixture.deviceIntermediate.issue(commonName: "curl-x509-device")
        let certificate = try Self.write(device.certificatePEM + device.chainPEM, to: "device-chain.pem")
        let key = try Self.write(device.privateKeyPEM, to: "device.key")
        let scope = fixture.endpoints.idScope
        let base = "https://localhost:\(fixture.endpoints.dps.port)/\(scope)/registrations"
        let common = [
            "--cacert", fixture.endpoints.caCertificatePath, "-L", "-i", "--cert", certificate, "--key", key, "-H",
            "Content-Type: application/json", "-H", "Content-Encoding:  utf-8",
        ]
        let register = try await Self.curl(
            common + [
                "-X", "PUT", "-d", #"{"registrationId": "curl-x509-device"}"#,
                "\(base)/curl-x509-device/register?api-version=2021-06-01",
            ]
        )
        #expect(register.status == 202)
        guard case .string(let operationId)? = register.body?.objectValue["operationId"] else {
            throw TestError("no operationId")
        }
        let poll = try await Self.curl(
            common + ["-X", "GET", "\(base)/curl-x509-device/operations/\(operationId)?api-version=2021-06-01"]
        )
        let state = poll.body?.objectValue["registrationState"]?.objectValue ?? [:]
        #expect(state["status"] == .string("assigned"))
        #expect(state["x509"]?.objectValue["enrollmentGroupId"] == .string("x509-group"))

        let mismatch = try await Self.curl(
            common + [
                "-X", "PUT", "-d", #"{"registrationId": "other-id"}"#,
                "\(base)/other-id/register?api-version=2021-06-01",
            ]
        )
        #expect(mismatch.status == 401)
        #expect(mismatch.body?.objectValue["errorCode"] == .number(401_002))
        let noCredential = try await Self.curl([
            "--cacert", fixture.endpoints.caCertificatePath, "-i", "-X", "PUT", "-d", "{}",
            "\(base)/curl-x509-device/register?api-version=2021-06-01",
        ])
        #expect(noCredential.status == 401)
    }

    @Test(
        "uamqp with SASL PLAIN in the URL (the AMQP write-up, 500 messages past the hub's credit) and with CBS put-token (both token types)"
    )
    func uamqp() async throws {
        try await FixedPortLock.withLock { try await Self.uamqpOnPort5671() }
    }

    static func uamqpOnPort5671() async throws {
        var configuration = try await EmulatorFixture.start(mqttPort: 0).emulator.configuration
        configuration.amqpPort = 5671
        configuration.mqttPort = 0
        configuration.dpsPort = 0
        configuration.stateDirectory = nil
        let emulator = try await IoTEmulator.start(configuration: configuration)
        let ca = emulator.endpoints.caCertificatePath
        let token = try await Self.sasToken(
            "\(emulator.endpoints.hubHost)/devices/dev1",
            key: EmulatorFixture.deviceKey
        )
        let script = PeerProcess.peerScript("fidelity/uamqp_send.py")
        var environment = ProcessInfo.processInfo.environment
        environment["SSL_CERT_FILE"] = ca
        // 500 messages: uamqp sends up to the hub's credit (100) and echoes it in flows of its own, which must not
        // replace the credit the hub granted (they did: the emulator stopped granting and uamqp hung at 151).
        let plain = try await PeerProcess.complete(
            Self.python,
            [script, "plain", "localhost", "dev1", emulator.endpoints.hubHost, token, ca, "500"],
            environment: environment
        )
        #expect(plain.status == 0, "\(plain.output)")
        #expect(plain.output.contains("500 sent, 500 complete"), "\(plain.output)")
        for type in ["servicebus.windows.net:sastoken", "azure-devices.net:sastoken"] {
            let cbs = try await PeerProcess.complete(
                Self.python,
                [script, "cbs", "localhost", "dev1", emulator.endpoints.hubHost, token, ca, type],
                environment: environment
            )
            #expect(cbs.status == 0, "\(cbs.output)")
        }
        let received = await emulator.telemetry(deviceId: "dev1")
        #expect(received.count == 502)
        for message in received {
            #expect(message.transport == .amqp && message.bodyText == #"{"temperature": 21.5}"#)
            #expect(
                message.messageId == "uamqp-1" && message.contentType == "application/json"
                    && message.contentEncoding == "utf-8"
            )
            #expect(message.properties == ["source": "uamqp", "level": "3"])
        }
        // A forged token is refused by SASL PLAIN.
        let forged = try await Self.sasToken(
            "\(emulator.endpoints.hubHost)/devices/dev1",
            key: EmulatorFixture.groupKey
        )
        let refused = try await PeerProcess.complete(
            Self.python,
            [script, "plain", "localhost", "dev1", emulator.endpoints.hubHost, forged, ca],
            environment: environment,
            timeout: .seconds(30)
        )
        #expect(refused.status != 0)
        await emulator.shutdown()
    }

    @Test(
        "Azure's Python device SDK: telemetry with content type/encoding and properties, reported patch, a method, C2D"
    )
    func azureDeviceSDK() async throws {
        try await FixedPortLock.withLock { try await Self.azureDeviceSDKOnPort8883() }
    }

    static func azureDeviceSDKOnPort8883() async throws {
        var configuration = try await EmulatorFixture.start().emulator.configuration
        configuration.mqttPort = 8883
        configuration.amqpPort = 0
        configuration.dpsPort = 0
        let emulator = try await IoTEmulator.start(configuration: configuration)
        let connectionString = try #require(
            emulator.endpoints.devices.first { $0.deviceId == "dev1" && $0.moduleId == nil }
        ).connectionString
        let device = try await PeerProcess(
            Self.python,
            [
                PeerProcess.peerScript("fidelity/azure_device_sdk.py"), connectionString,
                emulator.endpoints.caCertificatePath,
            ],
            readyMarker: "twin desired:",
            timeout: .seconds(30)
        )
        defer { device.stop() }
        // The SDK subscribes to methods when the script first waits for one: retry until it has.
        let response = try await Self.invokeWhenSubscribed(
            emulator,
            name: "reboot",
            payload: .object(["delay": .number(5)])
        )
        #expect(response?.status == 200)
        #expect(
            response.flatMap { (try? JSONValue(parsing: $0.payload)) }
                == .object(["handled": .string("reboot"), "payload": .object(["delay": .number(5)])])
        )
        _ = try await emulator.sendCloudToDevice(
            deviceId: "dev1",
            body: Array("firmware ready".utf8),
            properties: ["version": "3.0"]
        )
        #expect(await device.waitForOutput(containing: "done", timeout: .seconds(30)), "\(device.output)")
        #expect(device.output.contains(#"c2d: firmware ready {"version": "3.0"}"#), "\(device.output)")
        #expect(device.output.contains(#"twin desired: {"$version": 1, "interval": 10}"#), "\(device.output)")

        let telemetry = try #require(await emulator.telemetry(deviceId: "dev1").first)
        #expect(telemetry.bodyText == #"{"temperature": 22.5}"#)
        #expect(
            telemetry.contentType == "application/json" && telemetry.contentEncoding == "utf-8"
                && telemetry.messageId == "sdk-1"
        )
        #expect(telemetry.properties == ["alert": "high temp", "room": "lab/1"])
        let twin = try await emulator.twin(deviceId: "dev1")
        #expect(twin.reported == .object(["firmware": .string("2.14.0"), "sdk": .string("python")]))
        await emulator.shutdown()
    }

    @Test("a burst of 24 PUBLISHes, one TLS record each, sent together: the PUBACKs come back in 3 records of 8")
    func pubacksForABurstShareARecord() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let result = try await PeerProcess.complete(
            "/usr/bin/python3",
            [
                PeerProcess.peerScript("fidelity/mqtt_record_batch.py"), "localhost",
                String(fixture.endpoints.mqtt.port), fixture.endpoints.caCertificatePath, "dev1",
                "\(fixture.hubHost)/dev1/?api-version=2021-04-12", try fixture.token(), "24",
            ]
        )
        #expect(result.status == 0, "\(result.output)")
        // The emulator reads the records one at a time; before it answers one it takes what else has arrived, and
        // holds the PUBACKs, 8 at most, until the last of them is handled (a PUBACK per record would be 24 records).
        #expect(result.output.contains("pubacks 24 in 3 records"), "\(result.output)")
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").count == 24)
    }
}
