import AzureIoTTestSupport
import Foundation
import Testing
import WebSocketCodec

/// RFC 6455 framing and handshake: the RFC's own examples, every rule a peer can break, and arbitrary input.
@Suite("WebSocket codec")
struct WebSocketCodecTests {
    static let rfcMask: (UInt8, UInt8, UInt8, UInt8) = (0x37, 0xFA, 0x21, 0x3D)

    static func decodeAll(_ bytes: [UInt8], role: WebSocketFrameDecoder.Role) throws -> [WebSocketFrame] {
        let decoder = WebSocketFrameDecoder(role: role, maximumFrameSize: 1 << 20)
        var frames: [WebSocketFrame] = []
        var rest = bytes[...]
        while let (frame, size) = try decoder.nextFrame(in: rest) {
            frames.append(frame)
            rest = rest.dropFirst(size)
        }
        #expect(rest.isEmpty, "\(rest.count) bytes left over")
        return frames
    }

    @Test("the examples of RFC 6455 §5.7 encode and decode byte for byte")
    func rfcExamples() throws {
        let hello = Array("Hello".utf8)
        let unmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(try WebSocketFrame(opcode: .text, payload: hello).encoded() == unmasked)
        #expect(try WebSocketFrame(opcode: .text, payload: hello).encoded(maskingKey: Self.rfcMask) == masked)
        #expect(try Self.decodeAll(unmasked, role: .client) == [WebSocketFrame(opcode: .text, payload: hello)])
        #expect(try Self.decodeAll(masked, role: .server) == [WebSocketFrame(opcode: .text, payload: hello)])
        // A fragmented text message, then a ping and a masked pong.
        let fragmented: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F]
        #expect(
            try Self.decodeAll(fragmented, role: .client) == [
                WebSocketFrame(fin: false, opcode: .text, payload: Array("Hel".utf8)),
                WebSocketFrame(fin: true, opcode: .continuation, payload: Array("lo".utf8)),
            ]
        )
        #expect(try WebSocketFrame(opcode: .ping, payload: hello).encoded() == [0x89, 0x05] + hello)
        let pong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(try Self.decodeAll(pong, role: .server) == [WebSocketFrame(opcode: .pong, payload: hello)])
        // 256 bytes take the 16-bit length, 64 KiB the 64-bit one.
        let binary256 = try WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 7, count: 256)).encoded()
        #expect(Array(binary256.prefix(4)) == [0x82, 0x7E, 0x01, 0x00])
        let binary64k = try WebSocketFrame(opcode: .binary, payload: [UInt8](repeating: 7, count: 65536)).encoded()
        #expect(Array(binary64k.prefix(10)) == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
        #expect(try Self.decodeAll(binary64k, role: .client).first?.payload.count == 65536)
    }

    @Test("Sec-WebSocket-Accept matches the example of RFC 6455 §1.3")
    func acceptKey() throws {
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let handshake = try WebSocketClientHandshake(
            host: "hub.example",
            path: "/$iothub/websocket",
            protocols: ["mqtt"],
            nonce: Array("the sample nonce".utf8)
        )
        #expect(handshake.key == "dGhlIHNhbXBsZSBub25jZQ==")
        let request = String(decoding: handshake.requestBytes, as: UTF8.self)
        #expect(request.hasPrefix("GET /$iothub/websocket HTTP/1.1\r\nHost: hub.example\r\n"))
        #expect(request.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"))
        #expect(request.hasSuffix("\r\n\r\n"))
    }

    @Test(
        "every frame header rule is enforced, with the close code to send",
        arguments: [
            ([0xC1, 0x00], WebSocketFrameDecoder.Role.client, WebSocketCodecError.Code.reservedBitsSet),  // RSV1
            ([0x83, 0x00], .client, .reservedOpcode),
            ([0x8B, 0x00], .client, .reservedOpcode),
            ([0x82, 0x00], .server, .maskingViolation),  // unmasked client frame
            ([0x82, 0x80, 1, 2, 3, 4], .client, .maskingViolation),  // masked server frame
            ([0x82, 0x7E, 0x00, 0x7D], .client, .malformedLength),  // 125 in the 16-bit form
            ([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], .client, .malformedLength),  // 65535 in the 64-bit form
            ([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], .client, .malformedLength),  // top bit set
            ([0x89, 0x7E, 0x00, 0x7E], .client, .invalidControlFrame),  // 126-byte ping
            ([0x09, 0x00], .client, .invalidControlFrame),  // fragmented ping
            ([0x82, 0x7F, 0, 0, 0, 0, 0x7F, 0, 0, 0], .client, .frameTooLarge),  // 2 GiB announced
        ] as [([UInt8], WebSocketFrameDecoder.Role, WebSocketCodecError.Code)]
    )
    func headerRules(bytes: [UInt8], role: WebSocketFrameDecoder.Role, code: WebSocketCodecError.Code) {
        do {
            let frame = try WebSocketFrameDecoder(role: role, maximumFrameSize: 1 << 20).nextFrame(in: bytes[...])
            Issue.record("decoded \(String(describing: frame))")
        } catch {
            #expect(error.code == code, "\(error)")
            #expect(error.closeCode == (code == .frameTooLarge ? 1009 : 1002))
        }
    }

    @Test("frame order: continuations, interleaved control frames, limits, text and close bodies")
    func frameOrder() throws {
        var receiver = WebSocketReceiver(maximumMessageSize: 10)
        #expect(
            try receiver.receive(WebSocketFrame(fin: false, opcode: .binary, payload: [1, 2]))
                == .binary([1, 2], isMessageEnd: false)
        )
        // A ping may come between fragments; a new data frame may not.
        #expect(try receiver.receive(WebSocketFrame(opcode: .ping, payload: [9])) == .ping([9]))
        #expect(throws: WebSocketCodecError(.unexpectedContinuation, "")) {
            var copy = receiver
            _ = try copy.receive(WebSocketFrame(opcode: .binary, payload: [3]))
        }
        #expect(
            try receiver.receive(WebSocketFrame(fin: true, opcode: .continuation, payload: [3]))
                == .binary([3], isMessageEnd: true)
        )
        #expect(throws: WebSocketCodecError(.unexpectedContinuation, "")) {
            _ = try receiver.receive(WebSocketFrame(opcode: .continuation, payload: [4]))
        }
        // The message limit counts every fragment.
        var limited = WebSocketReceiver(maximumMessageSize: 10)
        _ = try limited.receive(WebSocketFrame(fin: false, opcode: .binary, payload: [UInt8](repeating: 0, count: 8)))
        let tooLarge = #expect(throws: WebSocketCodecError.self) {
            _ = try limited.receive(WebSocketFrame(opcode: .continuation, payload: [0, 0, 0]))
        }
        #expect(tooLarge?.code == .messageTooLarge && tooLarge?.closeCode == 1009)
        // Text is delivered whole and must be UTF-8.
        var text = WebSocketReceiver()
        #expect(try text.receive(WebSocketFrame(fin: false, opcode: .text, payload: [0xC3])) == nil)
        #expect(try text.receive(WebSocketFrame(opcode: .continuation, payload: [0xA9])) == .text("é"))
        let invalid = #expect(throws: WebSocketCodecError.self) {
            _ = try text.receive(WebSocketFrame(opcode: .text, payload: [0xC3, 0x28]))
        }
        #expect(invalid?.code == .invalidUTF8 && invalid?.closeCode == 1007)
        // Close bodies: empty, or a sendable code and a UTF-8 reason.
        var closes = WebSocketReceiver()
        #expect(try closes.receive(WebSocketFrame(opcode: .close)) == .close(code: nil, reason: ""))
        #expect(try closes.receive(.close(code: 1000, reason: "bye")) == .close(code: 1000, reason: "bye"))
        for body: [UInt8] in [
            [0x03], [0x03, 0xED], [0x03, 0xEE], [0x03, 0xF7], [0x03, 0xE7], [0x13, 0x88], [0x03, 0xE8, 0xFF],
        ] {
            #expect(throws: WebSocketCodecError.self, "\(body)") {
                _ = try closes.receive(WebSocketFrame(opcode: .close, payload: body))
            }
        }
        // A reason longer than a control frame allows is cut at a character boundary.
        let long = WebSocketFrame.close(code: 1001, reason: String(repeating: "é", count: 100))
        #expect(long.payload.count <= 125 && String(validating: long.payload[2...], as: UTF8.self) != nil)
        #expect(throws: WebSocketCodecError(.invalidControlFrame, "")) {
            _ = try WebSocketFrame(opcode: .ping, payload: [UInt8](repeating: 0, count: 126)).encoded()
        }
    }

    @Test("a stream split at every byte decodes to the same frames")
    func dripFeed() throws {
        var stream: [UInt8] = []
        let frames = [
            WebSocketFrame(fin: false, opcode: .binary, payload: Array(0..<200)),
            WebSocketFrame(opcode: .ping, payload: [1]),
            WebSocketFrame(fin: true, opcode: .continuation, payload: [UInt8](repeating: 5, count: 70_000)),
            WebSocketFrame.close(code: 1000, reason: "done"),
        ]
        for (index, frame) in frames.enumerated() {
            try frame.encode(into: &stream, maskingKey: (UInt8(index), 0x55, 0xAA, 0xFF))
        }
        let decoder = WebSocketFrameDecoder(role: .server)
        var buffer: [UInt8] = []
        var decoded: [WebSocketFrame] = []
        for byte in stream {
            buffer.append(byte)
            if let (frame, size) = try decoder.nextFrame(in: buffer[...]) {
                decoded.append(frame)
                buffer.removeFirst(size)
            }
        }
        #expect(decoded == frames)
        #expect(buffer.isEmpty)
    }

    @Test("random frames round-trip masked and unmasked; random bytes never trap")
    func randomInput() async {
        var random = SeededRandom()
        print("WebSocket random input: \(random.replay)")
        for _ in 0..<600 {
            let opcode = [WebSocketFrame.Opcode.binary, .text, .continuation, .ping, .pong, .close].randomElement(
                using: &random
            )!
            // Every length form: one byte (<126), two bytes (<65,536) and, now and then, eight bytes.
            let longest = opcode.isControl ? 125 : [125, 2000, 70_000].randomElement(using: &random)!
            let count = Int.random(in: 0...longest, using: &random)
            let frame = WebSocketFrame(
                fin: opcode.isControl || Bool.random(using: &random),
                opcode: opcode,
                payload: (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            )
            let key = (
                UInt8.random(in: 0...255, using: &random), UInt8(7), UInt8.random(in: 0...255, using: &random), UInt8(9)
            )
            let masked = try? WebSocketDecoding.one(frame.encoded(maskingKey: key), role: .server)
            let plain = try? WebSocketDecoding.one(frame.encoded(), role: .client)
            #expect(masked == frame && plain == frame, "\(random.replay)")
        }
        for iteration in 0..<20_000 {
            await yieldToOtherTests(at: iteration)
            let bytes = (0..<Int.random(in: 0..<24, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            for role in [WebSocketFrameDecoder.Role.client, .server] {
                _ = try? WebSocketFrameDecoder(role: role, maximumFrameSize: 4096).nextFrame(in: bytes[...])
            }
            _ = try? WebSocketUpgradeRequest.parse(bytes[...])
        }
    }

    @Test("upgrade requests: strict parsing, case-insensitive sub-protocols echoed as offered, bounded size")
    func upgradeRequests() throws {
        let request = Array(
            ("GET /$iothub/websocket HTTP/1.1\r\nHost: localhost:8443\r\nUpgrade: WebSocket\r\n"
                + "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: MQTT, mqttv3.1\r\n\r\nextra").utf8
        )
        #expect(try WebSocketUpgradeRequest.parse(request.prefix(40)) == nil)
        let (parsed, size) = try #require(try WebSocketUpgradeRequest.parse(request[...]))
        #expect(size == request.count - 5)
        #expect(parsed.path == "/$iothub/websocket" && parsed.protocols == ["MQTT", "mqttv3.1"])
        #expect(parsed.selectProtocol(from: ["mqtt"]) == "MQTT")
        #expect(parsed.selectProtocol(from: ["AMQPWSB10"]) == nil)
        let answer = String(decoding: parsed.acceptance(selectedProtocol: "MQTT"), as: UTF8.self)
        #expect(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(answer.contains("Sec-WebSocket-Protocol: MQTT\r\n"))
        let bad = [
            "POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n folded\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ]
        for text in bad {
            #expect(throws: WebSocketCodecError(.malformedHandshake, ""), "\(text)") {
                _ = try WebSocketUpgradeRequest.parse(Array(text.utf8)[...])
            }
        }
        let huge = Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000)).utf8)
        #expect(throws: WebSocketCodecError(.handshakeTooLarge, "")) {
            _ = try WebSocketUpgradeRequest.parse(huge[...])
        }
    }

    @Test("the client checks the 101 answer: status, accept key, upgrade headers, offered sub-protocol only")
    func clientChecksAnswer() throws {
        let handshake = try WebSocketClientHandshake(
            host: "h",
            path: "/$iothub/websocket",
            protocols: ["AMQPWSB10"],
            nonce: Array("the sample nonce".utf8)
        )
        func answer(_ lines: [String]) -> ArraySlice<UInt8> {
            Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)[...]
        }
        let good = [
            "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Protocol: amqpwsb10",
        ]
        #expect(try handshake.parseResponse(answer(good))?.selectedProtocol == "AMQPWSB10")
        var wrongKey = good
        wrongKey[3] = "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA="
        #expect(throws: WebSocketCodecError(.handshakeRefused, "")) {
            _ = try handshake.parseResponse(answer(wrongKey))
        }
        var notOffered = good
        notOffered[4] = "Sec-WebSocket-Protocol: mqtt"
        #expect(throws: WebSocketCodecError(.malformedHandshake, "")) {
            _ = try handshake.parseResponse(answer(notOffered))
        }
        #expect(throws: WebSocketCodecError(.handshakeRefused, "")) {
            _ = try handshake.parseResponse(
                answer(["HTTP/1.1 407 Proxy Authentication Required", "Content-Length: 0"])
            )
        }
        #expect(throws: WebSocketCodecError(.malformedHandshake, "")) {
            _ = try handshake.parseResponse(answer(good + ["Sec-WebSocket-Extensions: permessage-deflate"]))
        }
        #expect(throws: WebSocketCodecError(.malformedHandshake, "")) {
            _ = try WebSocketClientHandshake(
                host: "h\r\nX: y",
                path: "/",
                protocols: [],
                nonce: [UInt8](repeating: 0, count: 16)
            )
        }
    }
}

/// Decoding helpers for the tests.
enum WebSocketDecoding {
    static func one(_ bytes: [UInt8], role: WebSocketFrameDecoder.Role) throws -> WebSocketFrame? {
        try WebSocketFrameDecoder(role: role, maximumFrameSize: 1 << 20).nextFrame(in: bytes[...]).map(\.frame)
    }
}
