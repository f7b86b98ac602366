import AzureIoTTestSupport
import Foundation
import Testing

@Suite("azure-iot send and listen", .serialized)
struct HubCommandTests {
    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    static let connectionString = "HostName=test-hub.azure-devices.net;DeviceId=cli1;SharedAccessKey=\(key)"

    @Test("send: content type, encoding and properties on the exact topic; progress on stderr")
    func send() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let subscriber = try await HubSideSubscriber(broker: broker, filters: ["devices/#"])
        let result = try await CLITests.run([
            "send", "--connection-string", Self.connectionString, "--gateway-host", "localhost", "--ca-file",
            pki.path("ca.pem"),
            "--port", String(broker.anyPasswordPort), "--content-type", "application/json", "--content-encoding",
            "utf-8",
            "--property", "alert=on", "--property", "k y=v/1", "--count", "2", #"{"t":1}"#,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("sent 2/2"))
        let expected =
            #"devices/cli1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&alert=on&k%20y=v%2F1|{"t":1}"#
        #expect(await subscriber.waitForLine { $0 == expected } != nil)
        #expect(subscriber.lines.filter { $0 == expected }.count == 2)
        #expect(
            await broker.waitForLog(
                containing:
                    "u'test-hub.azure-devices.net/cli1/?api-version=2021-04-12&DeviceClientType=azure-iot-swift%2F0.1.0'"
            )
        )
        #expect(!result.stderr.contains(Self.key))
    }

    @Test("listen: prints C2D and method calls, answers methods with the given status")
    func listen() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let hubSide = try await HubSideSubscriber(broker: broker, filters: ["$iothub/methods/res/#"])
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        ).path
        let listener = try await PeerProcess(
            binary,
            [
                "listen", "--connection-string", Self.connectionString, "--gateway-host", "localhost", "--ca-file",
                pki.path("ca.pem"),
                "--port", String(broker.anyPasswordPort), "--method-status", "201", "--method-response",
                #"{"done":true}"#, "--duration", "30",
            ],
            readyMarker: "listening as cli1"
        )
        defer { listener.stop() }
        #expect(await broker.waitForSubscription(of: "cli1"))
        try await broker.hubPublish(
            topic: "devices/cli1/messages/devicebound/%24.mid=m1&color=blue",
            payload: "turn on"
        )
        try await broker.hubPublish(topic: "$iothub/methods/POST/blink/?$rid=7", payload: #"{"times":3}"#)
        try await broker.hubPublish(
            topic: "$iothub/twin/PATCH/properties/desired/?$version=2",
            payload: #"{"led":true,"$version":2}"#
        )
        #expect(await listener.waitForOutput(containing: "c2d: turn on [$.mid=m1 color=blue]"))
        #expect(await listener.waitForOutput(containing: #"method: blink {"times":3} -> 201"#))
        #expect(await listener.waitForOutput(containing: #"desired (version 2): {"led":true,"$version":2}"#))
        #expect(await hubSide.waitForLine { $0 == #"$iothub/methods/res/201/?$rid=7|{"done":true}"# } != nil)
    }
}

/// `send` through a proxy: `--proxy`, the environment as curl reads it, and `NO_PROXY`.
@Suite("azure-iot send through a proxy")
struct ProxyCommandTests {
    @Test("--proxy and HTTPS_PROXY tunnel through tinyproxy; NO_PROXY goes direct; the password never shows")
    func sendThroughProxy() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let subscriber = try await HubSideSubscriber(broker: broker, filters: ["devices/#"])
        let proxy = try await ProxyPeer.tinyproxy(allowing: [broker.anyPasswordPort])
        defer { proxy.process.stop() }
        let url = "http://\(ProxyPeer.user):\(ProxyPeer.password)@127.0.0.1:\(proxy.port)"
        let common = [
            "send", "--connection-string", HubCommandTests.connectionString, "--gateway-host", "localhost",
            "--ca-file", pki.path("ca.pem"), "--port", String(broker.anyPasswordPort),
        ]
        var environment = ProcessInfo.processInfo.environment
        for name in ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"] {
            environment[name] = nil
        }
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("azure-iot").path
        // 1. --proxy.
        let explicit = try await PeerProcess.capture(
            binary,
            common + ["--proxy", url, "via-option"],
            environment: environment
        )
        #expect(explicit.status == 0, "\(explicit.stderr)")
        // 2. HTTPS_PROXY, as curl reads it.
        var viaEnvironment = environment
        viaEnvironment["HTTPS_PROXY"] = url
        let implicit = try await PeerProcess.capture(binary, common + ["via-environment"], environment: viaEnvironment)
        #expect(implicit.status == 0, "\(implicit.stderr)")
        // 3. NO_PROXY=localhost: direct, although HTTPS_PROXY names a proxy that is not there.
        var bypass = environment
        bypass["HTTPS_PROXY"] = "http://127.0.0.1:1"
        bypass["NO_PROXY"] = "localhost"
        let direct = try await PeerProcess.capture(binary, common + ["via-no-proxy"], environment: bypass)
        #expect(direct.status == 0, "\(direct.stderr)")
        for body in ["via-option", "via-environment", "via-no-proxy"] {
            #expect(await subscriber.waitForLine { $0.hasSuffix("|\(body)") } != nil, "\(body)")
        }
        // One tunnel each for the option and the environment (curl asks once without credentials to learn the
        // scheme, so each tunnel is two CONNECT requests), none for NO_PROXY.
        let tunnels = proxy.log.components(separatedBy: "\n").filter {
            $0.contains("Established connection to host \"localhost\"")
        }
        #expect(tunnels.count == 2, "\(proxy.log.suffix(2000))")
        // 4. A wrong password: a clear error that names the proxy without its credentials.
        let refused = try await PeerProcess.capture(
            binary,
            common + ["--proxy", "http://\(ProxyPeer.user):wrong@127.0.0.1:\(proxy.port)", "--timeout", "5", "never"],
            environment: environment
        )
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("proxyRefused") || refused.stderr.contains("credentials"), "\(refused.stderr)")
        for output in [explicit.stderr, implicit.stderr, refused.stderr] {
            #expect(!output.contains(ProxyPeer.password) && !output.contains("wrong@"), "\(output)")
        }
    }
}
