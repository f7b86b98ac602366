import AzureIoTCore
import AzureIoTDevice
import AzureIoTEmulator
import AzureIoTProxy
import AzureIoTTestSupport
import DPSClient
import Foundation
import HubAMQP
import HubMQTT
import Testing

/// The MQTT and AMQP clients through real proxies on loopback: tinyproxy (HTTP CONNECT with Basic credentials) and
/// microsocks (SOCKS5 with a user name and password), the tunnel opened by libcurl, TLS ours.
@Suite("Clients through HTTP and SOCKS proxies")
struct ProxyTests {
    static let user = ProxyPeer.user
    static let password = ProxyPeer.password

    static func mqttConfiguration(_ fixture: EmulatorFixture, through opener: any ConnectionOpener) throws
        -> HubMQTTConfiguration
    {
        var configuration = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: fixture.hubHost, deviceId: "dev1"),
            authentication: .sas(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))),
            gatewayHostName: "localhost",
            port: fixture.endpoints.mqtt.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(20)
        )
        configuration.connectionOpener = opener
        return configuration
    }

    @Test("MQTT through tinyproxy with Basic credentials: the tunnel carries our TLS to the hub")
    func mqttThroughHTTPProxy() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let proxy = try await ProxyPeer.tinyproxy(allowing: [fixture.endpoints.mqtt.port])
        defer { proxy.process.stop() }
        let opener = try ProxyConnectionOpener(url: "http://\(Self.user):\(Self.password)@127.0.0.1:\(proxy.port)")
        #expect(!"\(opener)".contains(Self.password) && "\(opener)" == "proxy http://127.0.0.1:\(proxy.port)")
        let client = try HubMQTTClient(configuration: try Self.mqttConfiguration(fixture, through: opener))
        try await client.connect()
        try await client.send(TelemetryMessage(body: Array("through the proxy".utf8)))
        await client.disconnect()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["through the proxy"])
        let log = proxy.log
        #expect(log.contains("CONNECT localhost:\(fixture.endpoints.mqtt.port)"), "\(log.suffix(2000))")
    }

    @Test(
        "a proxy that refuses the credentials is a typed proxyAuthenticationRequired (HTTP 401/407) that never shows the password"
    )
    func wrongProxyCredentials() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let proxy = try await ProxyPeer.tinyproxy(allowing: [fixture.endpoints.mqtt.port])
        defer { proxy.process.stop() }
        let opener = try ProxyConnectionOpener(
            url: "http://\(Self.user):wrong-\(Self.password)@127.0.0.1:\(proxy.port)"
        )
        let direct = TLSConfiguration(trustRoots: fixture.trust, connectTimeout: .seconds(20), connectionOpener: opener)
        do {
            _ = try await TLSConnection.connect(
                host: "localhost",
                port: fixture.endpoints.mqtt.port,
                configuration: direct
            )
            Issue.record("connected with the wrong proxy password")
        } catch let error as AzureIoTError {
            #expect(error.code == .proxyAuthenticationRequired, "\(error)")
            // tinyproxy answers 401 where RFC 9110 says 407.
            #expect(error.message.contains("HTTP 401") || error.message.contains("HTTP 407"), "\(error)")
            #expect(error.message.contains("credentials"), "\(error)")
            #expect(!"\(error)".contains(Self.password), "\(error)")
        }
        // The MQTT client reports it as a connection failure with the proxy's refusal as the cause.
        var configuration = try Self.mqttConfiguration(fixture, through: opener)
        configuration.retryPolicy = RetryPolicy(
            initialDelay: .milliseconds(10),
            maximumDelay: .milliseconds(20),
            maximumAttempts: 1
        )
        let client = try HubMQTTClient(configuration: configuration)
        do {
            try await client.connect()
            Issue.record("the MQTT client connected with the wrong proxy password")
        } catch {
            #expect(!"\(error)".contains(Self.password), "\(error)")
            #expect("\(error)".contains("proxyAuthenticationRequired"), "\(error)")
        }
        await client.disconnect()
    }

    @Test(
        "a tunnel the proxy refuses (403 for a port it does not allow) is proxyRefused, an unreachable proxy connectionFailed; both name the proxy without its password"
    )
    func refusedAndUnreachableProxies() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        // tinyproxy allows CONNECT only to the ports listed, and the AMQP port is not.
        let proxy = try await ProxyPeer.tinyproxy(allowing: [fixture.endpoints.mqtt.port])
        defer { proxy.process.stop() }
        let refusing = try ProxyConnectionOpener(url: "http://\(Self.user):\(Self.password)@127.0.0.1:\(proxy.port)")
        let unusedPort = try PeerProcess.freePort()
        let unreachable = try ProxyConnectionOpener(url: "http://\(Self.user):\(Self.password)@127.0.0.1:\(unusedPort)")
        for (opener, code, text) in [
            (refusing, AzureIoTError.Code.proxyRefused, "HTTP 403"),
            (unreachable, .connectionFailed, "cannot reach the proxy http://127.0.0.1:\(unusedPort)"),
        ] {
            do {
                _ = try await TLSConnection.connect(
                    host: "localhost",
                    port: fixture.endpoints.amqp.port,
                    configuration: TLSConfiguration(
                        trustRoots: fixture.trust,
                        connectTimeout: .seconds(20),
                        connectionOpener: opener
                    )
                )
                Issue.record("connected through \(opener)")
            } catch let error as AzureIoTError {
                #expect(error.code == code, "\(error)")
                #expect(error.message.contains(text) && error.message.contains("127.0.0.1"), "\(error)")
                #expect(!"\(error)".contains(Self.password), "\(error)")
            }
        }
    }

    @Test(
        "squid with Digest: MQTT in a WebSocket and AMQP through it; a wrong Digest password is proxyAuthenticationRequired"
    )
    func digestProxy() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let squid = try await ProxyPeer.squid(.digest)
        defer { squid.process.stop() }
        let opener = try ProxyConnectionOpener(url: "http://\(Self.user):\(Self.password)@127.0.0.1:\(squid.port)")
        let mqtt = try HubMQTTClient(configuration: try WebSocketTransportTests.mqtt(fixture, opener: opener))
        try await mqtt.connect()
        try await mqtt.send(TelemetryMessage(body: Array("digest".utf8)))
        await mqtt.disconnect()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["digest"])
        // squid logs the authenticated user with each CONNECT, once the tunnel has closed.
        let logged = "CONNECT localhost:\(fixture.endpoints.webSockets.port) \(Self.user)"
        try await eventually("squid logged '\(logged)'", within: .seconds(20)) { squid.log.contains(logged) }
        let wrong = try ProxyConnectionOpener(url: "http://\(Self.user):wrong@127.0.0.1:\(squid.port)")
        do {
            _ = try await TLSConnection.connect(
                host: "localhost",
                port: fixture.endpoints.amqp.port,
                configuration: TLSConfiguration(
                    trustRoots: fixture.trust,
                    connectTimeout: .seconds(20),
                    connectionOpener: wrong
                )
            )
            Issue.record("squid let a wrong Digest password through")
        } catch let error as AzureIoTError {
            #expect(error.code == .proxyAuthenticationRequired && error.message.contains("HTTP 407"), "\(error)")
        }
    }

    @Test("squid with NTLM: AMQP in a WebSocket through the three-message NTLM handshake libcurl runs")
    func ntlmProxy() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let squid = try await ProxyPeer.squid(.ntlm)
        defer { squid.process.stop() }
        let opener = try ProxyConnectionOpener(url: "http://\(Self.user):\(Self.password)@127.0.0.1:\(squid.port)")
        let amqp = try HubAMQPClient(configuration: try WebSocketTransportTests.amqp(fixture, opener: opener))
        try await amqp.connect()
        try await amqp.send(AMQPMessage(data: Array("ntlm".utf8)))
        await amqp.close()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["ntlm"])
        // Without NTLM the CONNECT is refused (407) and logged without a user; with it, under the NTLM user name.
        // squid writes a tunnel's line once it has closed.
        let tunnel = "CONNECT localhost:\(fixture.endpoints.webSockets.port) "
        try await eventually("squid logged the tunnel with its NTLM user", within: .seconds(20)) {
            squid.log.contains(tunnel) && squid.log.contains(Self.user)
        }
        #expect(squid.log.contains("TCP_DENIED/407"), "\(squid.log)")
    }

    @Test(
        "one tinyproxy, with and without Basic credentials, carries DPS (REST, MQTT, MQTT-WS, AMQP, AMQP-WS) and the device client over MQTT, MQTT-WS, AMQP and AMQP-WS; its log shows every CONNECT",
        arguments: [true, false]
    )
    func everyTransportThroughTinyproxy(_ credentials: Bool) async throws {
        let fixture = try await EmulatorFixture.start(retryAfter: 0)
        defer { Task { await fixture.emulator.shutdown() } }
        let endpoints = fixture.endpoints
        let ports = [
            endpoints.dps.port, endpoints.dpsMQTT.port, endpoints.dpsWebSockets.port, endpoints.dpsAMQP?.port ?? 0,
            endpoints.mqtt.port,
            endpoints.amqp.port, endpoints.webSockets.port,
        ]
        let proxy = try await ProxyPeer.tinyproxy(allowing: ports, credentials: credentials)
        defer { proxy.process.stop() }
        let url =
            credentials
            ? "http://\(Self.user):\(Self.password)@127.0.0.1:\(proxy.port)" : "http://127.0.0.1:\(proxy.port)"
        for (transport, port) in [
            (ProvisioningClient.Transport.https, endpoints.dps.port), (.mqtt, endpoints.dpsMQTT.port),
            (.mqttWebSockets, endpoints.dpsWebSockets.port), (.amqp, endpoints.dpsAMQP?.port ?? 0),
            (.amqpWebSockets, endpoints.dpsWebSockets.port),
        ] {
            var dps = ProvisioningClient.Configuration(
                endpoint: "localhost:\(port)",
                idScope: endpoints.idScope,
                registrationId: "proxied-\(transport.rawValue)",
                attestation: .groupSymmetricKey(try SymmetricKey(base64: EmulatorFixture.groupKey)),
                trustRoots: fixture.trust,
                defaultPollInterval: .milliseconds(200)
            )
            dps.transport = transport
            dps.proxy = url
            let result = try await ProvisioningClient(configuration: dps).register(timeout: .seconds(20))
            #expect(result.deviceId == "proxied-\(transport.rawValue)")
        }
        let connectionString = try #require(
            endpoints.devices.first { $0.deviceId == "dev1" && $0.moduleId == nil }
        ).connectionString
        for transport in DeviceClientConfiguration.Transport.allCases {
            var configuration = try DeviceClientConfiguration(
                connectionString: try ConnectionString(parsing: connectionString),
                transport: transport,
                trustRoots: fixture.trust,
                port: transport.usesWebSockets
                    ? endpoints.webSockets.port : transport.isMQTT ? endpoints.mqtt.port : endpoints.amqp.port
            )
            configuration.connectionOpener = try ProxyConnectionOpener(url: url)
            try await DeviceClient.withConnection(configuration: configuration) { client in
                try await client.send(TelemetryMessage(text: transport.rawValue))
            }
        }
        let received = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 4)
        #expect(received.map(\.bodyText) == ["mqtt", "amqp", "mqtt-ws", "amqp-ws"])
        #expect(received.map(\.overWebSockets) == [false, false, true, true])
        let log = proxy.log
        for port in ports {
            #expect(log.contains("CONNECT localhost:\(port)"), "no CONNECT to \(port): \(log.suffix(3000))")
        }
    }

    @Test("AMQP through microsocks (SOCKS5 with user name and password)")
    func amqpThroughSOCKS5() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let socks = try await ProxyPeer.microsocks()
        defer { socks.process.stop() }
        let port = socks.port
        var configuration = HubAMQPConfiguration(
            hubHost: fixture.hubHost,
            deviceId: "dev1",
            authentication: .saslPlain(
                SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))
            ),
            gatewayHostName: "localhost",
            port: fixture.endpoints.amqp.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(20),
            reconnects: false
        )
        configuration.connectionOpener = try ProxyConnectionOpener(
            url: "socks5h://\(Self.user):\(Self.password)@127.0.0.1:\(port)"
        )
        let client = try HubAMQPClient(configuration: configuration)
        try await client.connect()
        try await client.send(AMQPMessage(data: Array("through socks".utf8)))
        await client.close()
        #expect(await fixture.emulator.telemetry(deviceId: "dev1").map(\.bodyText) == ["through socks"])
        // Without credentials microsocks refuses the SOCKS5 handshake.
        let anonymous = try ProxyConnectionOpener(url: "socks5h://127.0.0.1:\(port)")
        await #expect(throws: AzureIoTError.self) {
            _ = try await TLSConnection.connect(
                host: "localhost",
                port: fixture.endpoints.amqp.port,
                configuration: TLSConfiguration(
                    trustRoots: fixture.trust,
                    connectTimeout: .seconds(20),
                    connectionOpener: anonymous
                )
            )
        }
    }

    @Test("proxy URLs are checked: unknown schemes and URLs without a host are refused without echoing secrets")
    func proxyURLs() {
        for url in ["ftp://user:pw-secret@proxy:21", "proxy:8080", "http://:pw-secret@/", ""] {
            #expect(throws: AzureIoTError.self, "\(url)") { _ = try ProxyConnectionOpener(url: url) }
            do {
                _ = try ProxyConnectionOpener(url: url)
            } catch {
                #expect(!"\(error)".contains("pw-secret"), "\(error)")
            }
        }
        for url in [
            "http://p:8080", "https://p", "socks4://p:1080", "socks4a://p", "socks5://u:p@p:1080", "socks5h://p",
        ] {
            #expect((try? ProxyConnectionOpener(url: url)) != nil, "\(url)")
        }
    }
}
