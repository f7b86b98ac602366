import AzureIoTCore
import AzureIoTTestSupport
import DPSClient
import Foundation
import Synchronization
import Testing

/// The DPS client against a real HTTPS DPS peer that checks SAS signatures and client certificates.
@Suite("DPS registration")
struct ProvisioningClientTests {
    static let deviceKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    static let groupKey = "gPD2SOUYSOMXygVZA+pupNvWckqaS3Qnu+BUBbw7TbIZU7y2UZ5ksp4uMJfdV+nTIBayN+fZIZco4tS7oeVR/A=="

    static func client(
        _ server: DPSTestServer,
        _ pki: TestPKI,
        id: String,
        attestation: ProvisioningClient.Attestation,
        apiVersion: String = "2021-10-01"
    ) throws -> ProvisioningClient {
        try ProvisioningClient(
            configuration: .init(
                endpoint: server.endpoint,
                idScope: DPSTestServer.idScope,
                registrationId: id,
                attestation: attestation,
                apiVersion: apiVersion,
                trustRoots: .pemFile(pki.path("ca.pem")),
                defaultPollInterval: .milliseconds(200)
            )
        )
    }

    final class StatusLog: Sendable {
        let statuses = Mutex<[RegistrationStatus]>([])
        func record(_ status: RegistrationStatus) { self.statuses.withLock { $0.append(status) } }
        var all: [RegistrationStatus] { self.statuses.withLock { $0 } }
    }

    @Test("symmetric key, individual enrollment: assigning twice with Retry-After 1 s, then assigned; request shape")
    func individualSymmetricKey() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["dev-sym": Self.deviceKey],
            behaviors: ["dev-sym": ["assigning": 2, "retryAfter": 1]]
        )
        defer { server.stop() }
        let client = try Self.client(
            server,
            pki,
            id: "dev-sym",
            attestation: .symmetricKey(try SymmetricKey(base64: Self.deviceKey))
        )
        let log = StatusLog()
        let result = try await client.register(onStatus: { log.record($0) })
        #expect(result.assignedHub == DPSTestServer.hub)
        #expect(result.deviceId == "dev-sym")
        #expect(result.registration.status == .assigned)
        #expect(result.registration.substatus == "initialAssignment")
        #expect(log.all == [.assigning, .assigned])
        #expect(
            result.connectionString?.description
                == "HostName=\(DPSTestServer.hub);DeviceId=dev-sym;SharedAccessKey=<redacted>"
        )

        let requests = try server.requests()
        #expect(requests.map(\.method) == ["PUT", "GET", "GET"])
        #expect(requests.map(\.outcome) == ["202", "202 poll", "assigned"])
        let put = requests[0]
        #expect(put.path == "/\(DPSTestServer.idScope)/registrations/dev-sym/register?api-version=2021-10-01")
        #expect(put.headers["Content-Type"] == "application/json")
        #expect(put.headers["Content-Encoding"] == "utf-8")
        #expect(put.headers["Accept"] == "application/json")
        #expect(put.headers["User-Agent"] == ProvisioningClient.userAgent)
        #expect(
            put.headers["Authorization"]?.hasPrefix(
                "SharedAccessSignature sr=\(DPSTestServer.idScope)%2Fregistrations%2Fdev-sym&sig="
            ) == true
        )
        #expect(put.headers["Authorization"]?.hasSuffix("&skn=registration") == true)
        #expect(put.body == #"{"registrationId":"dev-sym"}"#)
        // Retry-After honoured: each poll waited at least the second the service asked for.
        #expect(requests[1].time - requests[0].time >= 0.99)
        #expect(requests[2].time - requests[1].time >= 0.99)
    }

    @Test("symmetric key, group enrollment: the derived key is used and the payload round-trips")
    func groupSymmetricKey() async throws {
        struct Payload: Codable, Sendable, Equatable {
            let model: String
            let floor: Int
        }
        struct Echo: Codable, Equatable { let echo: Payload }
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            groups: ["grp-1": Self.groupKey],
            behaviors: ["group-dev-7": ["assigning": 1, "retryAfter": 0]]
        )
        defer { server.stop() }
        let client = try Self.client(
            server,
            pki,
            id: "group-dev-7",
            attestation: .groupSymmetricKey(try SymmetricKey(base64: Self.groupKey)),
            apiVersion: "2019-03-31"
        )
        let result = try await client.register(payload: Payload(model: "thermo", floor: 3))
        #expect(result.registration.symmetricKey?.enrollmentGroupId == "grp-1")
        #expect(try result.registration.decodePayload(as: Echo.self) == Echo(echo: Payload(model: "thermo", floor: 3)))
        let derived = try DerivedKey.compute(groupKey: Self.groupKey, registrationId: "group-dev-7")
        #expect(result.credential?.key.base64EncodedSecret == derived)
        let put = try #require(try server.requests().first)
        #expect(put.path.hasSuffix("?api-version=2019-03-31"))
        #expect(put.body.contains(#""payload":{"#))
    }

    @Test("X.509 individual (root-signed) and group (through an intermediate) with the client certificate")
    func x509() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            behaviors: ["dev1": ["retryAfter": 0], "dev2": ["retryAfter": 0]]
        )
        defer { server.stop() }
        for (id, certificate, key) in [("dev1", "dev1.pem", "dev1.key"), ("dev2", "dev2-chain.pem", "dev2.key")] {
            let identity = try X509Identity(certificateFile: pki.path(certificate), privateKeyFile: pki.path(key))
            let result = try await Self.client(server, pki, id: id, attestation: .x509(identity)).register()
            #expect(result.deviceId == id)
            #expect(result.identity?.commonName == id)
            #expect(result.credential == nil)
            #expect(result.registration.x509?.certificateInfo?.subjectName == "CN=\(id)")
        }
        let requests = try server.requests()
        #expect(requests.allSatisfy { $0.headers["Authorization"] == nil })
        #expect(requests.filter { $0.method == "PUT" }.map(\.clientCN) == ["dev1", "dev2"])
    }

    @Test("X.509: a registration id that is not the certificate's CN is refused before any request")
    func x509MismatchedId() async throws {
        let pki = try await TestPKI.shared()
        let identity = try X509Identity(certificateFile: pki.path("dev1.pem"), privateKeyFile: pki.path("dev1.key"))
        #expect(throws: ProvisioningError(.invalidConfiguration, "")) {
            try ProvisioningClient(
                configuration: .init(idScope: "s", registrationId: "not-dev1", attestation: .x509(identity))
            )
        }
    }

    @Test("a wrong key surfaces 401 with the service's errorCode, and no secret in the error")
    func wrongKey() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(pki: pki, individual: ["dev-sym": Self.deviceKey])
        defer { server.stop() }
        let wrong = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        let client = try Self.client(
            server,
            pki,
            id: "dev-sym",
            attestation: .symmetricKey(try SymmetricKey(base64: wrong))
        )
        do {
            _ = try await client.register()
            Issue.record("expected 401")
        } catch let error as ProvisioningError {
            #expect(error.code == .unauthorized)
            #expect(error.httpStatus == 401)
            #expect(error.errorCode == 401002)
            #expect(error.trackingId != nil)
            #expect(!error.description.contains(wrong))
            #expect(!error.description.contains("sig="))
        }
    }

    @Test("failed and disabled registrations, 404, 500 and malformed JSON are typed errors")
    func serviceOutcomes() async throws {
        let pki = try await TestPKI.shared()
        let ids = ["f", "d", "e", "m"]
        let server = try await DPSTestServer(
            pki: pki,
            individual: Dictionary(uniqueKeysWithValues: ids.map { ($0, Self.deviceKey) }),
            behaviors: [
                "f": ["final": "failed", "errorCode": 400209, "errorMessage": "no hub", "retryAfter": 0],
                "d": ["final": "disabled", "retryAfter": 0], "e": ["status500": true], "m": ["malformed": true],
            ]
        )
        defer { server.stop() }
        let key = ProvisioningClient.Attestation.symmetricKey(try SymmetricKey(base64: Self.deviceKey))
        func outcome(_ id: String, scope: String = DPSTestServer.idScope) async -> ProvisioningError? {
            do {
                let client = try ProvisioningClient(
                    configuration: .init(
                        endpoint: server.endpoint,
                        idScope: scope,
                        registrationId: id,
                        attestation: key,
                        trustRoots: .pemFile(try await TestPKI.shared().path("ca.pem")),
                        defaultPollInterval: .milliseconds(50),
                        serverErrorRetries: 2
                    )
                )
                _ = try await client.register(timeout: .seconds(20))
                return nil
            } catch {
                return error as? ProvisioningError
            }
        }
        let failed = await outcome("f")
        #expect(failed?.code == .registrationFailed)
        #expect(failed?.errorCode == 400209)
        #expect(await outcome("d")?.code == .registrationDisabled)
        let serverError = await outcome("e")
        #expect(serverError?.code == .serviceError)
        #expect(serverError?.httpStatus == 500)
        #expect(try server.requests().filter { $0.path.contains("/e/") }.count == 3)
        #expect(await outcome("m")?.code == .malformedResponse)
        let notFound = await outcome("f", scope: "0ne00OTHER")
        #expect(notFound?.code == .notFound)
        #expect(notFound?.errorCode == 404201)
    }

    @Test("429 on PUT and on GET waits Retry-After and retries")
    func throttling() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["t": Self.deviceKey],
            behaviors: ["t": ["throttlePUT": 1, "throttleGET": 1, "retryAfter": 0]]
        )
        defer { server.stop() }
        let client = try Self.client(
            server,
            pki,
            id: "t",
            attestation: .symmetricKey(try SymmetricKey(base64: Self.deviceKey))
        )
        let result = try await client.register()
        #expect(result.deviceId == "t")
        let requests = try server.requests()
        #expect(requests.map(\.outcome) == ["429", "202", "429", "assigned"])
        #expect(requests[1].time - requests[0].time >= 0.99)
        #expect(requests[3].time - requests[2].time >= 0.99)
    }

    @Test("cancellation while waiting to poll ends register promptly; the overall timeout is honoured")
    func cancellationAndTimeout() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["slow": Self.deviceKey],
            behaviors: ["slow": ["assigning": 100, "retryAfter": 30]]
        )
        defer { server.stop() }
        let client = try Self.client(
            server,
            pki,
            id: "slow",
            attestation: .symmetricKey(try SymmetricKey(base64: Self.deviceKey))
        )
        let clock = ContinuousClock()
        let task = Task { try await client.register() }
        // Mid-wait: the registration is in, and the client waits out its Retry-After (30 s) before the first poll.
        // Ending well before that wait would is what "promptly" means here; the bounds leave a loaded machine
        // (two test suites at once once took 1.25 s against a bound of 500 ms) ample room without luck.
        try await eventually("the registration") { try server.requests().count >= 1 }
        let cancelledAt = clock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(clock.now - cancelledAt < .seconds(15))

        // A 2 s deadline against a 30 s Retry-After: the client gives up at its deadline, not after the wait.
        let start = clock.now
        await #expect(throws: ProvisioningError(.timedOut, "")) { _ = try await client.register(timeout: .seconds(2)) }
        #expect(clock.now - start < .seconds(15))
    }

    @Test("registrationStatus posts to the status route")
    func statusLookup() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(pki: pki, individual: ["s": Self.deviceKey])
        defer { server.stop() }
        let client = try Self.client(
            server,
            pki,
            id: "s",
            attestation: .symmetricKey(try SymmetricKey(base64: Self.deviceKey))
        )
        let state = try await client.registrationStatus()
        #expect(state.status == .assigned)
        #expect(try server.requests().first?.method == "POST")
    }

    @Test("the server speaks what the write-ups' curl commands send (certificate and SAS forms)")
    func writeUpCurlCommands() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(
            pki: pki,
            individual: ["dps-sym": Self.deviceKey],
            behaviors: ["dev1": ["retryAfter": 1], "dps-sym": ["retryAfter": 1]]
        )
        defer { server.stop() }
        let base = "https://localhost:\(server.port)/\(DPSTestServer.idScope)/registrations"
        func curl(_ arguments: [String]) async throws -> String {
            let result = try await PeerProcess.complete(
                "/usr/bin/curl",
                ["-sS", "--cacert", pki.path("ca.pem")] + arguments
            )
            #expect(result.status == 0, "\(result.output)")
            return result.output
        }
        func operationId(_ response: String) throws -> String {
            let json = try #require(response.components(separatedBy: "\r\n\r\n").last)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            return try #require(object["operationId"] as? String)
        }
        // Certificate form, as in the X.509 write-up.
        let put = try await curl([
            "-L", "-i", "-X", "PUT", "--cert", pki.path("dev1.pem"), "--key", pki.path("dev1.key"),
            "-H", "Content-Type: application/json", "-H", "Content-Encoding:  utf-8",
            "-d", #"{"registrationId": "dev1"}"#, "\(base)/dev1/register?api-version=2019-03-31",
        ])
        #expect(put.contains("\"status\": \"assigning\""))
        let id = try operationId(put)
        let get = try await curl([
            "-L", "-i", "-X", "GET", "--cert", pki.path("dev1.pem"), "--key", pki.path("dev1.key"),
            "-H", "Content-Type: application/json", "-H", "Content-Encoding:  utf-8",
            "\(base)/dev1/operations/\(id)?api-version=2019-03-31",
        ])
        #expect(get.contains("\"status\": \"assigned\""))

        // SAS form, with the token the write-up's script computes (here: this SDK's CLI-equivalent API).
        let sas = SASToken.string(
            for: .registration(idScope: DPSTestServer.idScope, registrationId: "dps-sym"),
            key: try SymmetricKey(base64: Self.deviceKey),
            expiry: UnixTime.now() + 3600,
            keyName: "registration"
        )
        let sasPut = try await curl([
            "-L", "-i", "-X", "PUT", "-H", "Content-Type: application/json", "-H", "Content-Encoding:  utf-8",
            "-H", "Authorization: \(sas)", "-d", #"{"registrationId": "dps-sym"}"#,
            "\(base)/dps-sym/register?api-version=2019-03-31",
        ])
        #expect(sasPut.contains("\"status\": \"assigning\""))
        let sasGet = try await curl([
            "-L", "-i", "-X", "GET", "-H", "Content-Type: application/json", "-H", "Content-Encoding:  utf-8",
            "-H", "Authorization: \(sas)",
            "\(base)/dps-sym/operations/\(try operationId(sasPut))?api-version=2019-03-31",
        ])
        #expect(sasGet.contains("\"status\": \"assigned\""))
        #expect(try server.requests().map(\.auth) == ["ok", "ok", "ok", "ok"])
    }
}

@Suite("DPS transport failures")
struct ProvisioningTransportTests {
    @Test(
        "an untrusted server certificate has its own code with the TLS error as cause; a closed port is a transport failure"
    )
    func transport() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(pki: pki, individual: ["x": ProvisioningClientTests.deviceKey])
        defer { server.stop() }
        let key = try SymmetricKey(base64: ProvisioningClientTests.deviceKey)
        let untrusted = try ProvisioningClient(
            configuration: .init(
                endpoint: server.endpoint,
                idScope: DPSTestServer.idScope,
                registrationId: "x",
                attestation: .symmetricKey(key),
                trustRoots: .pemFile(pki.path("rogue-ca.pem"))
            )
        )
        do {
            _ = try await untrusted.register(timeout: .seconds(10))
            Issue.record("expected a TLS failure")
        } catch let error as ProvisioningError {
            #expect(error.code == .serverCertificateUntrusted)
            #expect(error.httpStatus == nil)
            #expect((error.underlying as? AzureIoTError)?.code == .certificateUntrusted)
        }
        #expect(try server.requests().isEmpty)

        let closed = try ProvisioningClient(
            configuration: .init(
                endpoint: "127.0.0.1:\(try PeerProcess.freePort())",
                idScope: DPSTestServer.idScope,
                registrationId: "x",
                attestation: .symmetricKey(key),
                trustRoots: .pemFile(pki.path("ca.pem")),
                defaultPollInterval: .milliseconds(100),
                transportRetries: 2
            )
        )
        let clock = ContinuousClock()
        let start = clock.now
        let failure = await #expect(throws: ProvisioningError(.transportFailure, "")) {
            _ = try await closed.register(timeout: .seconds(10))
        }
        #expect((failure?.underlying as? AzureIoTError)?.code == .connectionFailed)
        // Two retries with backoff (0.1 s then 0.2 s, each ±20 %) before giving up.
        #expect(clock.now - start >= .milliseconds(240) * 0.8)

        // The hub clients' RetryPolicy works here too: four retries 50 ms apart, no jitter; then none at all.
        let policy = RetryPolicy(
            initialDelay: .milliseconds(50),
            maximumDelay: .milliseconds(50),
            jitter: 0,
            maximumAttempts: 4
        )
        let patient = try ProvisioningClient(
            configuration: .init(
                endpoint: "127.0.0.1:\(try PeerProcess.freePort())",
                idScope: DPSTestServer.idScope,
                registrationId: "x",
                attestation: .symmetricKey(key),
                trustRoots: .pemFile(pki.path("ca.pem")),
                retryPolicy: policy
            )
        )
        #expect(patient.configuration.transportRetries == 4)
        let patientStart = clock.now
        await #expect(throws: ProvisioningError(.transportFailure, "")) {
            _ = try await patient.register(timeout: .seconds(10))
        }
        #expect(clock.now - patientStart >= .milliseconds(200))
        var once = patient.configuration
        once.transportRetries = 0
        await #expect(throws: ProvisioningError(.transportFailure, "")) {
            _ = try await ProvisioningClient(configuration: once).register(timeout: .seconds(10))
        }
    }
}

@Suite("DPS error classification")
struct ProvisioningErrorClassificationTests {
    @Test(
        "ProvisioningError.isTransient: throttling, 5xx, time-outs and transport failures are; refusals and certificate problems are not"
    )
    func transience() {
        for code in [ProvisioningError.Code.throttled, .timedOut, .transportFailure] {
            #expect(ProvisioningError(code, "").isTransient, "\(code)")
        }
        #expect(ProvisioningError(.serviceError, "", httpStatus: 503).isTransient)
        #expect(!ProvisioningError(.serviceError, "", httpStatus: 400).isTransient)
        for code in [
            ProvisioningError.Code.unauthorized, .notFound, .registrationFailed, .registrationDisabled,
            .serverCertificateUntrusted,
            .clientCertificateRejected, .invalidConfiguration,
        ] {
            #expect(!ProvisioningError(code, "").isTransient, "\(code)")
        }
    }

    @Test("an explicit proxy: the registration goes through tinyproxy's tunnel; the credentials never show")
    func throughProxy() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(pki: pki, individual: ["dev-proxy": ProvisioningClientTests.deviceKey])
        defer { server.stop() }
        let port = server.port
        let proxy = try await ProxyPeer.tinyproxy(allowing: [port])
        defer { proxy.process.stop() }
        var configuration = ProvisioningClient.Configuration(
            endpoint: server.endpoint,
            idScope: DPSTestServer.idScope,
            registrationId: "dev-proxy",
            attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey)),
            trustRoots: .pemFile(pki.path("ca.pem"))
        )
        configuration.proxy = "http://\(ProxyPeer.user):\(ProxyPeer.password)@127.0.0.1:\(proxy.port)"
        #expect(
            !"\(configuration)".contains(ProxyPeer.password)
                && "\(configuration)".contains("http://127.0.0.1:\(proxy.port)")
        )
        #expect(!String(reflecting: configuration).contains(ProxyPeer.password))
        let result = try await ProvisioningClient(configuration: configuration).register()
        #expect(result.deviceId == "dev-proxy")
        #expect(proxy.log.contains("Established connection to host"), "\(proxy.log.suffix(1500))")
        // The wrong password: the proxy's refusal, typed, without the secret.
        configuration.proxy = "http://\(ProxyPeer.user):wrong-\(ProxyPeer.password)@127.0.0.1:\(proxy.port)"
        do {
            _ = try await ProvisioningClient(configuration: configuration).register(timeout: .seconds(10))
            Issue.record("registered through a proxy that refused the credentials")
        } catch let error as ProvisioningError {
            #expect(!"\(error)".contains(ProxyPeer.password), "\(error)")
            #expect((error.underlying as? AzureIoTError)?.code == .proxyAuthenticationRequired, "\(error)")
            #expect(!error.isTransient)
        }
    }

    /// libcurl refuses a string option longer than 8,000,000 bytes. Before every `curl_easy_setopt` result was
    /// checked, curl quietly used its own User-Agent and sent the request; the same silence on a libcurl without the
    /// OpenSSL backend dropped `CURLOPT_SSL_CTX_FUNCTION`, and with it the trust roots and client certificate.
    @Test("an option libcurl refuses is a typed configuration error and nothing is sent")
    func refusedCurlOption() async throws {
        let pki = try await TestPKI.shared()
        let server = try await DPSTestServer(pki: pki, individual: ["dev-ua": ProvisioningClientTests.deviceKey])
        defer { server.stop() }
        let client = try ProvisioningClient(
            configuration: .init(
                endpoint: server.endpoint,
                idScope: DPSTestServer.idScope,
                registrationId: "dev-ua",
                attestation: .symmetricKey(try SymmetricKey(base64: ProvisioningClientTests.deviceKey)),
                trustRoots: .pemFile(pki.path("ca.pem")),
                userAgent: String(repeating: "u", count: 8_000_001)
            )
        )
        do {
            _ = try await client.register()
            Issue.record("the request was sent with a User-Agent libcurl refused")
        } catch let error as ProvisioningError {
            #expect(error.code == .invalidConfiguration, "\(error)")
            #expect(error.message.contains("CURLOPT_USERAGENT"), "\(error.message.prefix(200))")
            #expect(error.underlying != nil)
        } catch {
            Issue.record("expected a ProvisioningError, got \(error)")
        }
        #expect(try server.requests().isEmpty)
    }
}
