import AzureIoTTestSupport
import Foundation
import HubAMQP
import Testing

/// Frames qpid-proton's client and server really exchanged (captured at test time by
/// `Tests/Peers/capture_amqp_frames.py` through a recording proxy), decoded by this codec and encoded again: the
/// bytes must come out identical, frame by frame and message by message.
@Suite("AMQP codec on frames captured from qpid-proton")
struct AMQPCapturedFramesTests {
    struct Capture: Decodable {
        let client: String
        let server: String
    }

    static func bytes(fromHex hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// Splits a stream into its protocol headers and frames.
    static func frames(_ stream: [UInt8]) throws -> [AMQPFrame] {
        var frames: [AMQPFrame] = []
        var offset = 0
        let framer = AMQPFramer(maximumFrameSize: 1 << 20)
        while offset < stream.count {
            if let header = try? AMQPProtocolHeader.parse(stream[offset...]), header == .sasl || header == .amqp {
                offset += 8
                continue
            }
            guard let (frame, size) = try framer.nextFrame(in: stream[offset...]) else {
                throw TestFailure("a truncated frame at \(offset)")
            }
            frames.append(frame)
            offset += size
        }
        return frames
    }

    @Test("every captured frame and message re-encodes byte for byte")
    func reencode() async throws {
        let python = AMQPTestPeer.python
        let result = try await PeerProcess.capture(
            python,
            [PeerProcess.peerScript("capture_amqp_frames.py")],
            timeout: .seconds(60)
        )
        #expect(result.status == 0, "\(result.stderr)")
        let capture = try JSONDecoder().decode(Capture.self, from: Data(result.stdout.utf8))
        var names: [String] = []
        var messages = 0
        for stream in [capture.client, capture.server] {
            for frame in try Self.frames(Self.bytes(fromHex: stream)) where !frame.isHeartbeat {
                let performative = try AMQPPerformative.decode(frame.body)
                names.append("\(performative)".prefix(while: { $0 != "(" }).description)
                let encoded = try performative.encoded()
                #expect(
                    encoded == frame.body,
                    "\(performative)\n  proton: \(frame.body.map { String(format: "%02x", $0) }.joined())\n  ours:   \(encoded.map { String(format: "%02x", $0) }.joined())"
                )
                #expect(
                    AMQPFrame(type: frame.type, channel: frame.channel, body: encoded).encoded.count == frame.body.count
                        + 8
                )
                if case .transfer(_, let payload) = performative {
                    let message = try AMQPMessage(decoding: payload)
                    #expect(try message.encoded() == payload, "message \(message)")
                    messages += 1
                }
            }
        }
        #expect(messages == 2)
        for expected in [
            "saslMechanisms", "saslInit", "saslOutcome", "open", "begin", "attach", "flow", "transfer", "disposition",
            "detach", "close",
        ] {
            #expect(names.contains(expected), "no \(expected) in \(names)")
        }
    }
}
