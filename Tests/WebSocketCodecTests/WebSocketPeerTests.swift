import AzureIoTTestSupport
import Foundation
import Testing
import WebSocketCodec

/// The codec against wsproto (`Tests/Peers/ws_crosscheck.py`), an RFC 6455 implementation nobody here wrote: each
/// side's frames and handshakes are read by the other.
@Suite("WebSocket codec against wsproto")
struct WebSocketPeerTests {
    static func peer(_ arguments: [String], input: String? = nil) async throws -> String {
        let result = try await PeerProcess.capture(
            PeerProcess.clientPython,
            [PeerProcess.peerScript("ws_crosscheck.py")] + arguments,
            input: input
        )
        guard result.status == 0 else { throw TestFailure("ws_crosscheck.py \(arguments) failed: \(result.stderr)") }
        return result.stdout
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap {
            UInt8(String(decoding: digits[$0...($0 + 1)], as: UTF8.self), radix: 16)
        }
    }

    /// The frames wsproto sends (see the script): two fragments of "hello", ping "p", 300 and 70,000 bytes, close.
    static func expectWsprotoFrames(_ frames: [WebSocketFrame]) {
        var receiver = WebSocketReceiver()
        var events: [WebSocketReceiver.Event] = []
        for frame in frames {
            do {
                if let event = try receiver.receive(frame) { events.append(event) }
            } catch {
                Issue.record("\(error)")
            }
        }
        #expect(events.count == 7)
        guard events.count == 7 else { return }
        #expect(events[0] == .binary(Array("hel".utf8), isMessageEnd: false))
        #expect(events[1] == .binary(Array("lo".utf8), isMessageEnd: true))
        #expect(events[2] == .ping(Array("p".utf8)))
        #expect(events[3] == .binary(Array(0...255) + [UInt8](repeating: 0, count: 44), isMessageEnd: true))
        #expect(events[4] == .binary((0..<70_000).map { UInt8($0 % 251) }, isMessageEnd: true))
        #expect(events[5] == .close(code: 1000, reason: "bye"))
        #expect(events.count == 7)
    }

    @Test("wsproto's server frames decode as a client reads them; its client frames as a server does")
    func wsprotoFramesDecode() async throws {
        for (peerRole, ourRole) in [("server", WebSocketFrameDecoder.Role.client), ("client", .server)] {
            let stream = Self.bytes(try await Self.peer(["frames", peerRole]))
            var frames = try WebSocketCodecTests.decodeAll(stream, role: ourRole)
            // The script's last event is the close; a seventh placeholder keeps the indices of the check simple.
            frames.append(WebSocketFrame(opcode: .pong))
            Self.expectWsprotoFrames(frames)
        }
    }

    @Test("our masked client frames and unmasked server frames are what wsproto reads")
    func ourFramesParse() async throws {
        let frames = [
            WebSocketFrame(fin: false, opcode: .binary, payload: Array("MQ".utf8)),
            WebSocketFrame(opcode: .ping, payload: [1, 2]),
            WebSocketFrame(fin: true, opcode: .continuation, payload: Array("TT".utf8)),
            WebSocketFrame(opcode: .binary, payload: (0..<70_000).map { UInt8($0 % 253) }),
            WebSocketFrame.close(code: 1001, reason: "going away"),
        ]
        for (role, masked) in [("server", true), ("client", false)] {
            var stream: [UInt8] = []
            for frame in frames { try frame.encode(into: &stream, maskingKey: masked ? (0x12, 0x34, 0x56, 0x78) : nil) }
            let output = try await Self.peer(["parse", role], input: Self.hex(stream))
            let events = output.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            // wsproto may hand a long frame over in pieces: join the payloads of each opcode run.
            var binary: [UInt8] = []
            var pings: [[UInt8]] = []
            var close: (Int, String)?
            for event in events {
                switch event["opcode"] as? Int {
                case 0, 2: binary += Self.bytes(event["payload"] as? String ?? "")
                case 9: pings.append(Self.bytes(event["payload"] as? String ?? ""))
                case 8: close = (event["code"] as? Int ?? 0, event["reason"] as? String ?? "")
                default: Issue.record("unexpected \(event)")
                }
            }
            #expect(binary == Array("MQTT".utf8) + (0..<70_000).map { UInt8($0 % 253) }, "as \(role)")
            #expect(pings == [[1, 2]], "as \(role)")
            #expect(close?.0 == 1001 && close?.1 == "going away", "as \(role)")
        }
    }

    @Test("our client's upgrade is accepted by wsproto, and our check takes its 101 answer; sub-protocol case kept")
    func clientHandshake() async throws {
        var nonce = [UInt8](repeating: 0, count: 16)
        var random = SeededRandom()
        for index in nonce.indices { nonce[index] = UInt8.random(in: 0...255, using: &random) }
        let handshake = try WebSocketClientHandshake(
            host: "localhost:8443",
            path: "/$iothub/websocket",
            protocols: ["AMQPWSB10"],
            nonce: nonce
        )
        let output = try await Self.peer(["accept", "AMQPWSB10"], input: Self.hex(handshake.requestBytes))
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(answer["path"] as? String == "/$iothub/websocket")
        #expect(answer["subprotocols"] as? [String] == ["AMQPWSB10"])
        let response = Self.bytes(answer["answer"] as? String ?? "")
        let parsed = try #require(try handshake.parseResponse(response[...]))
        #expect(parsed.selectedProtocol == "AMQPWSB10")
        #expect(parsed.size == response.count)
    }

    @Test("wsproto's client upgrade parses on our server side, and wsproto accepts our 101 answer")
    func serverHandshake() async throws {
        let request = Self.bytes(try await Self.peer(["request", "MQTT"]))
        let (parsed, size) = try #require(try WebSocketUpgradeRequest.parse(request[...]))
        #expect(size == request.count)
        #expect(parsed.path == "/$iothub/websocket")
        let chosen = parsed.selectProtocol(from: ["mqtt"])
        #expect(chosen == "MQTT")
        let output = try await Self.peer(
            ["connect", "MQTT"],
            input: Self.hex(parsed.acceptance(selectedProtocol: chosen))
        )
        let verdict = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(verdict["accepted"] as? Bool == true, "\(output)")
        #expect(verdict["subprotocol"] as? String == "MQTT")
    }
}
