import AzureIoTCore
import AzureIoTEmulator
import AzureIoTProxy
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import HubAMQP
import HubMQTT
import Synchronization
import Testing
import WebSocketCodec

/// MQTT and AMQP over WebSockets (RFC 6455, `wss://…/$iothub/websocket`): this SDK and clients nobody here wrote
/// against the emulator's WebSocket port, through tinyproxy, and both ends against peers that break the rules.
@Suite("MQTT and AMQP over WebSockets")
struct WebSocketTransportTests {
    static let python = PeerProcess.clientPython

    static func mqtt(_ fixture: EmulatorFixture, opener: (any ConnectionOpener)? = nil) throws -> HubMQTTConfiguration {
        var configuration = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: fixture.hubHost, deviceId: "dev1"),
            authentication: .sas(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))),
            gatewayHostName: "localhost",
            port: fixture.endpoints.webSockets.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(20)
        )
        configuration.webSockets = true
        configuration.connectionOpener = opener
        return configuration
    }

    static func amqp(_ fixture: EmulatorFixture, opener: (any ConnectionOpener)? = nil) throws -> HubAMQPConfiguration {
        var configuration = HubAMQPConfiguration(
            hubHost: fixture.hubHost,
            deviceId: "dev1",
            authentication: .cbs(
                SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey)),
                tokenType: .azureDevices
            ),
            gatewayHostName: "localhost",
            port: fixture.endpoints.webSockets.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(20),
            reconnects: false
        )
        configuration.webSockets = true
        configuration.connectionOpener = opener
        return configuration
    }

    @Test("messages larger than one outgoing frame (64 KiB) go out in several frames and arrive whole, both protocols")
    func largeMessages() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let mqtt = try HubMQTTClient(configuration: try Self.mqtt(fixture))
        try await mqtt.connect()
        try await mqtt.send(TelemetryMessage(body: body))
        // The twin answer comes back through the client's WebSocket reader.
        let twin = try await mqtt.twin()
        #expect(twin.desiredVersion == 1 && String(decoding: twin.json, as: UTF8.self).contains(#""interval":10"#))
        await mqtt.disconnect()
        let amqp = try HubAMQPClient(configuration: try Self.amqp(fixture))
        try await amqp.connect()
        try await amqp.send(AMQPMessage(data: body))
        await amqp.close()
        let received = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 2)
        #expect(received.map(\.body) == [body, body])
        #expect(received.map(\.transport) == [.mqtt, .amqp] && received.allSatisfy(\.overWebSockets))
    }

    @Test("an AMQP gateway in a WebSocket: two devices share the connection and their telemetry is attributed")
    func gatewayOverWebSockets() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        var configuration = HubAMQPGateway.Configuration(
            hubHost: fixture.hubHost,
            gatewayHostName: "localhost",
            port: fixture.endpoints.webSockets.port,
            trustRoots: fixture.trust,
            operationTimeout: .seconds(20),
            reconnects: false
        )
        configuration.webSockets = true
        let gateway = HubAMQPGateway(configuration: configuration)
        let first = try await gateway.addDevice(
            deviceId: "dev1",
            tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))
        )
        try await gateway.connect()
        let second = try await gateway.addDevice(
            deviceId: "dev2",
            tokenSource: SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.secondDeviceKey))
        )
        try await first.send(AMQPMessage(data: Array("gateway dev1".utf8)))
        try await second.send(AMQPMessage(data: Array("gateway dev2".utf8)))
        let received = try await fixture.emulator.waitForTelemetry(count: 2)
        #expect(Set(received.map { "\($0.deviceId):\($0.bodyText)" }) == ["dev1:gateway dev1", "dev2:gateway dev2"])
        #expect(received.allSatisfy { $0.overWebSockets && $0.transport == .amqp })
        await gateway.close()
    }

    @Test("MQTT and AMQP over WebSockets through tinyproxy with Basic credentials: the proxy log shows the CONNECTs")
    func throughProxy() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let proxy = try await ProxyPeer.tinyproxy(allowing: [fixture.endpoints.webSockets.port])
        defer { proxy.process.stop() }
        let opener = try ProxyConnectionOpener(
            url: "http://\(ProxyPeer.user):\(ProxyPeer.password)@127.0.0.1:\(proxy.port)"
        )
        let mqtt = try HubMQTTClient(configuration: try Self.mqtt(fixture, opener: opener))
        try await mqtt.connect()
        try await mqtt.send(TelemetryMessage(body: Array("mqtt-ws via proxy".utf8)))
        await mqtt.disconnect()
        let amqp = try HubAMQPClient(configuration: try Self.amqp(fixture, opener: opener))
        try await amqp.connect()
        try await amqp.send(AMQPMessage(data: Array("amqp-ws via proxy".utf8)))
        await amqp.close()
        let received = try await fixture.emulator.waitForTelemetry(deviceId: "dev1", count: 2)
        #expect(received.map(\.bodyText) == ["mqtt-ws via proxy", "amqp-ws via proxy"])
        let connects = proxy.log.components(separatedBy: "CONNECT localhost:\(fixture.endpoints.webSockets.port)")
        #expect(connects.count - 1 >= 2, "\(proxy.log.suffix(2000))")
    }

    @Test("paho-mqtt with transport=\"websockets\": CONNACK, a QoS 1 PUBACK and a twin GET answered")
    func pahoWebSockets() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let token = try await EmulatorFidelityTests.sasToken(
            "\(fixture.hubHost)/devices/dev1",
            key: EmulatorFixture.deviceKey
        )
        let result = try await PeerProcess.complete(
            Self.python,
            [
                PeerProcess.peerScript("fidelity/paho_websockets.py"), "localhost",
                String(fixture.endpoints.webSockets.port), fixture.hubHost, "dev1", token,
                fixture.endpoints.caCertificatePath,
            ],
            timeout: .seconds(60)
        )
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("twin answer $iothub/twin/res/200/?$rid=7"), "\(result.output)")
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.bodyText == #"{"via": "paho-ws"}"# && received.properties == ["room": "lab"])
        #expect(received.contentType == "application/json")
    }

    @Test("uamqp with TransportType.AmqpOverWebsocket (its own path, /$servicebus/websocket/) sends through SASL PLAIN")
    func uamqpWebSockets() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let token = try await EmulatorFidelityTests.sasToken(
            "\(fixture.hubHost)/devices/dev1",
            key: EmulatorFixture.deviceKey
        )
        var environment = ProcessInfo.processInfo.environment
        environment["SSL_CERT_FILE"] = fixture.endpoints.caCertificatePath
        let result = try await PeerProcess.complete(
            Self.python,
            [
                PeerProcess.peerScript("fidelity/uamqp_send.py"), "ws", "localhost", "dev1", fixture.hubHost, token,
                fixture.endpoints.caCertificatePath, String(fixture.endpoints.webSockets.port),
            ],
            environment: environment,
            timeout: .seconds(60)
        )
        #expect(result.status == 0 && result.output.contains("1 sent, 1 complete"), "\(result.output)")
        let received = try #require(try await fixture.emulator.waitForTelemetry(deviceId: "dev1").first)
        #expect(received.transport == .amqp && received.bodyText == #"{"temperature": 21.5}"#)
    }

    @Test("Azure's Python device SDK with websockets=True: telemetry, reported patch, twin, a method and C2D")
    func azureDeviceSDKWebSockets() async throws {
        let fixture = try await EmulatorFixture.start()
        let emulator = fixture.emulator
        defer { Task { await emulator.shutdown() } }
        let connectionString = try #require(
            emulator.endpoints.devices.first { $0.deviceId == "dev1" && $0.moduleId == nil }
        ).connectionString
        let device = try await PeerProcess(
            Self.python,
            [
                PeerProcess.peerScript("fidelity/azure_device_sdk.py"), connectionString,
                emulator.endpoints.caCertificatePath, String(emulator.endpoints.webSockets.port),
            ],
            readyMarker: "twin desired:",
            timeout: .seconds(30)
        )
        defer { device.stop() }
        let response = try await EmulatorFidelityTests.invokeWhenSubscribed(
            emulator,
            name: "reboot",
            payload: .object(["delay": .number(5)])
        )
        #expect(response?.status == 200)
        _ = try await emulator.sendCloudToDevice(
            deviceId: "dev1",
            body: Array("over websockets".utf8),
            properties: ["version": "3.1"]
        )
        #expect(await device.waitForOutput(containing: "done", timeout: .seconds(30)), "\(device.output)")
        #expect(device.output.contains(#"c2d: over websockets {"version": "3.1"}"#), "\(device.output)")
        let telemetry = try #require(await emulator.telemetry(deviceId: "dev1").first)
        #expect(telemetry.bodyText == #"{"temperature": 22.5}"# && telemetry.messageId == "sdk-1")
        #expect(try await emulator.twin(deviceId: "dev1").reported["sdk"] == .string("python"))
    }

    @Test(
        "this SDK over MQTT in a WebSocket to amqtt's wss listener (a WebSocket server and broker nobody here wrote): telemetry out, C2D in"
    )
    func amqttWebSocketBroker() async throws {
        let pki = try await TestPKI.shared()
        let tcpPort = try PeerProcess.freePort()
        let webSocketPort = try PeerProcess.freePort()
        let folder = NSTemporaryDirectory() + "amqtt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let configuration = """
            listeners:
              default:
                type: tcp
                bind: 127.0.0.1:\(tcpPort)
              secure-ws:
                type: ws
                bind: 127.0.0.1:\(webSocketPort)
                ssl: true
                certfile: \(pki.path("server.pem"))
                keyfile: \(pki.path("server.key"))
            plugins:
              amqtt.plugins.authentication.AnonymousAuthPlugin:
                allow_anonymous: true

            """
        try configuration.write(toFile: folder + "/broker.yaml", atomically: true, encoding: .utf8)
        let broker = try await PeerProcess(PeerProcess.amqttBroker, ["-c", folder + "/broker.yaml"], readyMarker: nil)
        defer { broker.stop() }
        try await ProxyPeer.waitForListener(tcpPort)
        try await ProxyPeer.waitForListener(webSocketPort)
        // stdbuf: mosquitto_sub's stdout is block-buffered when it is a pipe.
        let subscriber = try await PeerProcess(
            "/usr/bin/stdbuf",
            ["-oL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(tcpPort), "-t", "devices/#", "-v", "-d"],
            readyMarker: "received SUBACK",
            timeout: .seconds(30)
        )
        defer { subscriber.stop() }

        var settings = HubMQTTConfiguration(
            identity: HubMQTTIdentity(hubHost: "hub.azure-devices.net", deviceId: "ws1"),
            authentication: .sas(SymmetricKeyCredential(key: try SymmetricKey(base64: EmulatorFixture.deviceKey))),
            gatewayHostName: "localhost",
            port: webSocketPort,
            trustRoots: .pemFile(pki.path("ca.pem")),
            operationTimeout: .seconds(20)
        )
        settings.webSockets = true
        let client = try HubMQTTClient(configuration: settings)
        try await client.subscribe(to: [.cloudToDeviceMessages])
        try await client.connect()
        try await client.send(TelemetryMessage(body: Array("hello amqtt".utf8)))
        #expect(
            await subscriber.waitForOutput(
                containing: "devices/ws1/messages/events/ hello amqtt",
                timeout: .seconds(20)
            ),
            "\(subscriber.output)"
        )
        let published = try await PeerProcess.complete(
            "/usr/bin/mosquitto_pub",
            [
                "-h", "127.0.0.1", "-p", String(tcpPort), "-q", "1", "-t",
                "devices/ws1/messages/devicebound/%24.mid=c2d-ws&zone=b", "-m", "switch on",
            ]
        )
        #expect(published.status == 0, "\(published.output)")
        var c2d = client.cloudToDeviceMessages.makeAsyncIterator()
        let message = try #require(await c2d.next())
        #expect(message.body == Array("switch on".utf8) && message.messageId == "c2d-ws")
        #expect(message.property("zone") == "b")
        await client.disconnect()
    }

    // MARK: - The emulator against clients that break the rules

    /// A TLS connection to the WebSocket port that has not upgraded.
    static func raw(_ fixture: EmulatorFixture) async throws -> TLSConnection {
        try await TLSConnection.connect(
            host: "localhost",
            port: fixture.endpoints.webSockets.port,
            configuration: TLSConfiguration(trustRoots: fixture.trust, connectTimeout: .seconds(20))
        )
    }

    /// Everything the server sends until it closes.
    static func readToEnd(_ connection: TLSConnection) async throws -> [UInt8] {
        var received: [UInt8] = []
        while let more = try await connection.readUnlessClosed(timeout: .seconds(20)) { received += more }
        return received
    }

    static func upgradeRequest(path: String = "/$iothub/websocket", protocols: String = "mqtt", version: String = "13")
        -> [UInt8]
    {
        Array(
            ("GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \(version)\r\n"
                + "Sec-WebSocket-Protocol: \(protocols)\r\n\r\n").utf8
        )
    }

    @Test(
        "the emulator refuses upgrades it cannot serve with an HTTP status: another path 404, no common sub-protocol 400, another version 426, plain MQTT 400"
    )
    func refusedUpgrades() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let cases: [([UInt8], String)] = [
            (Self.upgradeRequest(path: "/other"), "HTTP/1.1 404"),
            (Self.upgradeRequest(protocols: "stomp, wamp"), "HTTP/1.1 400"),
            (Self.upgradeRequest(version: "8"), "HTTP/1.1 426"),
            // An MQTT CONNECT, as a client that forgot to ask for WebSockets sends it.
            ([0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00], "HTTP/1.1 400"),
        ]
        for (request, status) in cases {
            let connection = try await Self.raw(fixture)
            try await connection.write(request)
            let answer = String(decoding: try await Self.readToEnd(connection), as: UTF8.self)
            #expect(answer.hasPrefix(status), "\(answer)")
            connection.close()
        }
        // The sub-protocol is matched case-insensitively and echoed as the client spelled it.
        let connection = try await Self.raw(fixture)
        try await connection.write(Self.upgradeRequest(protocols: "MQTT"))
        let answer = String(decoding: try await connection.read(timeout: .seconds(20)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 101") && answer.contains("Sec-WebSocket-Protocol: MQTT\r\n"), "\(answer)")
        #expect(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "\(answer)")
        connection.close()
    }

    @Test(
        "frames that break RFC 6455 close the connection with the matching status: unmasked 1002, text 1003, over the frame limit 1009",
        arguments: [("unmasked", UInt16(1002)), ("text", 1003), ("oversized", 1009)]
    )
    func hostileFrames(_ kind: String, _ status: UInt16) async throws {
        var limits = EmulatorLimits()
        limits.maximumWebSocketFrameBytes = 4096
        let fixture = try await EmulatorFixture.start(limits: limits)
        defer { Task { await fixture.emulator.shutdown() } }
        let connection = try await Self.raw(fixture)
        defer { connection.close() }
        try await connection.write(Self.upgradeRequest())
        var received: [UInt8] = []
        while Self.headEnd(received) == nil { received += try await connection.read(timeout: .seconds(20)) }
        let frame: [UInt8]
        switch kind {
        case "unmasked": frame = try WebSocketFrame(opcode: .binary, payload: [0x10, 0x00]).encoded()
        case "text":
            frame = try WebSocketFrame(opcode: .text, payload: Array("hi".utf8)).encoded(maskingKey: (1, 2, 3, 4))
        default:
            frame = try WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 0, count: 5000)).encoded(
                maskingKey: (1, 2, 3, 4)
            )
        }
        try await connection.write(frame)
        let rest = Array(received[Self.headEnd(received)!...]) + (try await Self.readToEnd(connection))
        let decoder = WebSocketFrameDecoder(role: .client)
        let close = try #require(try decoder.nextFrame(in: rest[...])?.frame, "no frame in \(rest)")
        #expect(close.opcode == .close)
        #expect(close.payload.count >= 2 && UInt16(close.payload[0]) << 8 | UInt16(close.payload[1]) == status)
    }

    /// Where the HTTP header block in `bytes` ends (after its blank line), if it is complete.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index..<(index + 4)].elementsEqual([13, 10, 13, 10]) {
            return index + 4
        }
        return nil
    }

    // MARK: - The client against servers that break the rules

    /// A TLS server on loopback that answers one upgrade request with `answer(key)` followed by `frames`, then
    /// collects what the client sends until it closes (``FakeServer/received``).
    final class FakeServer: Sendable {
        let port: Int
        let trust: TLSConfiguration.TrustRoots
        private let collected = Mutex<[UInt8]>([])
        private let task = Mutex<Task<Void, Never>?>(nil)

        /// `chunkSize`: the frames go out in TLS records of that many bytes (a drip-feed), after the answer.
        init(answer: @escaping @Sendable (String) -> [UInt8], frames: [UInt8] = [], chunkSize: Int? = nil) throws {
            let authority = try CertificateAuthority(commonName: "WebSocket Test CA")
            let server = try authority.issue(commonName: "localhost", subjectAlternativeNames: ["localhost"])
            let listener = try TLSListener(configuration: TLSServerConfiguration(identity: server.identity))
            self.port = listener.port
            self.trust = .pem(authority.certificatePEM)
            let task = Task { [self] in
                defer { listener.close() }
                guard let connection = try? await listener.accept() else { return }
                defer { connection.close() }
                var request: [UInt8] = []
                while WebSocketTransportTests.headEnd(request) == nil {
                    guard let more = try? await connection.read(timeout: .seconds(20)), !more.isEmpty else { return }
                    request += more
                }
                let key =
                    String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n")
                    .first { $0.lowercased().hasPrefix("sec-websocket-key:") }
                    .map { String($0.dropFirst("sec-websocket-key:".count)).trimmingCharacters(in: .whitespaces) }
                    ?? ""
                if let chunkSize {
                    try? await connection.write(answer(key))
                    var offset = 0
                    while offset < frames.count {
                        let end = min(frames.count, offset + chunkSize)
                        try? await connection.write(Array(frames[offset..<end]))
                        offset = end
                    }
                } else {
                    try? await connection.write(answer(key) + frames)
                }
                while let more = try? await connection.readUnlessClosed(timeout: .seconds(20)) {
                    self.collected.withLock { $0 += more }
                }
            }
            self.task.withLock { $0 = task }
        }

        /// What the client sent after the upgrade request, once it has closed.
        func received() async -> [UInt8] {
            await self.task.withLock { $0 }?.value
            return self.collected.withLock { $0 }
        }

        func stop() { self.task.withLock { $0 }?.cancel() }

        /// A correct `101` answer choosing `mqtt`.
        static func accepting(_ key: String) -> [UInt8] {
            Array(
                ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: key))\r\n"
                    + "Sec-WebSocket-Protocol: mqtt\r\n\r\n").utf8
            )
        }
    }

    static func connect(to server: FakeServer) async throws -> TLSConnection {
        try await TLSConnection.connect(
            host: "localhost",
            port: server.port,
            configuration: TLSConfiguration(trustRoots: server.trust, connectTimeout: .seconds(20), webSocket: .mqtt)
        )
    }

    @Test(
        "the client refuses a wrong accept key, a refusal status, a sub-protocol it did not offer and a missing one",
        arguments: ["wrong key", "status 403", "other protocol", "no protocol"]
    )
    func refusedByClient(_ kind: String) async throws {
        let server = try FakeServer { key in
            let accept = WebSocketHandshake.acceptValue(forKey: key)
            let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            switch kind {
            case "wrong key":
                return Array((head + "Sec-WebSocket-Accept: AAAA\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").utf8)
            case "status 403":
                return Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8)
            case "other protocol":
                return Array((head + "Sec-WebSocket-Accept: \(accept)\r\nSec-WebSocket-Protocol: amqp\r\n\r\n").utf8)
            default:
                return Array((head + "Sec-WebSocket-Accept: \(accept)\r\n\r\n").utf8)
            }
        }
        defer { server.stop() }
        do {
            let connection = try await Self.connect(to: server)
            connection.close()
            Issue.record("the upgrade was accepted: \(kind)")
        } catch let error as AzureIoTError {
            #expect(error.code == .webSocketHandshakeFailed, "\(error)")
            #expect(kind == "no protocol" || error.underlying is WebSocketCodecError, "\(error)")
        }
    }

    @Test(
        "a server that masks its frames, or sends text, fails the read with webSocketProtocolViolation and gets a Close",
        arguments: ["masked", "text"]
    )
    func hostileServerFrames(_ kind: String) async throws {
        let frame =
            kind == "masked"
            ? try WebSocketFrame(opcode: .binary, payload: [0x20, 0x02, 0, 0]).encoded(maskingKey: (9, 9, 9, 9))
            : try WebSocketFrame(opcode: .text, payload: Array("{}".utf8)).encoded()
        let server = try FakeServer(answer: FakeServer.accepting, frames: frame)
        defer { server.stop() }
        let connection = try await Self.connect(to: server)
        #expect(connection.isWebSocket)
        do {
            let bytes = try await connection.read(timeout: .seconds(20))
            Issue.record("read \(bytes) from a \(kind) frame")
        } catch let error as AzureIoTError {
            #expect(error.code == .webSocketProtocolViolation, "\(error)")
            #expect(error.underlying is WebSocketCodecError, "\(error)")
        }
        connection.close()
        let sent = await server.received()
        let close = try #require(try WebSocketFrameDecoder(role: .server).nextFrame(in: sent[...])?.frame)
        #expect(close.opcode == .close)
        #expect(close.payload.prefix(2).elementsEqual(kind == "masked" ? [0x03, 0xEA] : [0x03, 0xEB]))
    }

    @Test(
        "frames dripped in TLS records of 1 and 997 bytes (headers split, a 70,000-byte frame, fragments, a ping between) read back whole",
        arguments: [1, 997]
    )
    func dripFed(_ chunkSize: Int) async throws {
        let large = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var frames = try WebSocketFrame(opcode: .binary, payload: [1, 2, 3]).encoded()
        frames += try WebSocketFrame(opcode: .binary, payload: large).encoded()
        frames += try WebSocketFrame(fin: false, opcode: .binary, payload: Array(repeating: 9, count: 300)).encoded()
        frames += try WebSocketFrame(opcode: .ping, payload: [7]).encoded()
        frames += try WebSocketFrame(opcode: .continuation, payload: [4, 5]).encoded()
        frames += try WebSocketFrame.close(code: 1000).encoded()
        let server = try FakeServer(answer: FakeServer.accepting, frames: frames, chunkSize: chunkSize)
        defer { server.stop() }
        let connection = try await Self.connect(to: server)
        var bytes: [UInt8] = []
        while true {
            let more = try await connection.read(timeout: .seconds(30))
            if more.isEmpty { break }
            bytes += more
        }
        #expect(bytes == [1, 2, 3] + large + Array(repeating: 9, count: 300) + [4, 5])
        connection.close()
    }

    @Test("a ping is answered with a masked pong carrying its bytes; a server Close ends reads and is echoed")
    func pingAndClose() async throws {
        var frames = try WebSocketFrame(opcode: .ping, payload: Array("are you there".utf8)).encoded()
        frames += try WebSocketFrame(fin: false, opcode: .binary, payload: [0xD0]).encoded()
        frames += try WebSocketFrame(opcode: .continuation, payload: [0x00]).encoded()
        frames += try WebSocketFrame.close(code: 1001, reason: "going away").encoded()
        let server = try FakeServer(answer: FakeServer.accepting, frames: frames)
        defer { server.stop() }
        let connection = try await Self.connect(to: server)
        var bytes: [UInt8] = []
        while true {
            let more = try await connection.read(timeout: .seconds(20))
            if more.isEmpty { break }
            bytes += more
        }
        // The MQTT PINGRESP split over two fragments comes out as its two bytes.
        #expect(bytes == [0xD0, 0x00])
        connection.close()
        let sent = await server.received()
        let decoder = WebSocketFrameDecoder(role: .server)
        let (pong, size) = try #require(try decoder.nextFrame(in: sent[...]))
        #expect(pong.opcode == .pong && pong.payload == Array("are you there".utf8))
        let close = try #require(try decoder.nextFrame(in: sent[size...])?.frame)
        #expect(close.opcode == .close && close.payload.prefix(2).elementsEqual([0x03, 0xE9]))
    }
}
