import AMQPCodec
import FuzzSupport

/// Feeds arbitrary bytes to the AMQP 1.0 decoders: the protocol header, the framer, the performative decoder, the
/// message-section decoder and the type decoder. Anything that decodes must re-encode to bytes that decode and
/// re-encode to the same bytes (encoders pick the smallest forms, so the first re-encoding may differ from the
/// input); everything else must be a typed error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzAMQP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? AMQPProtocolHeader.parse(bytes[...])

    // A frame stream: every frame's body as a performative, transfer payloads as messages; the transfer hot path
    // must read exactly what the general decoder reads, or leave the frame to it.
    var offset = 0
    let framer = AMQPFramer(maximumFrameSize: 1 << 20)
    while offset < bytes.count, let (frame, length) = try? framer.nextFrame(in: bytes[offset...]) {
        if case .transfer(let header, let range, let size)? = try? AMQPTransferFrame.read(
            bytes[offset...],
            maximumFrameSize: 1 << 20
        ) {
            precondition(size == length, "the hot path and the framer disagree on a frame's size")
            guard case .transfer(let transfer, let payload)? = try? AMQPPerformative.decode(frame.body) else {
                preconditionFailure("the hot path read a transfer the general decoder does not")
            }
            precondition(
                transfer.handle == header.handle && transfer.deliveryId == header.deliveryId
                    && transfer.deliveryTag == header.deliveryTag.map(Array.init)
                    && transfer.messageFormat == header.messageFormat && transfer.settled == header.settled
                    && transfer.more == header.more && payload == Array(bytes[range]),
                "the hot path and the general decoder read a transfer differently"
            )
        }
        if case .disposition(let disposition, _, let size)? = try? AMQPDispositionFrame.read(
            bytes[offset...],
            maximumFrameSize: 1 << 20
        ) {
            precondition(size == length, "the disposition hot path and the framer disagree on a frame's size")
            guard case .disposition(let general)? = try? AMQPPerformative.decode(frame.body), general == disposition
            else { preconditionFailure("the hot path and the general decoder read a disposition differently") }
        }
        if case .flow(let flow, _, let size)? = try? AMQPFlowFrame.read(bytes[offset...], maximumFrameSize: 1 << 20) {
            precondition(size == length, "the flow hot path and the framer disagree on a frame's size")
            guard case .flow(let general)? = try? AMQPPerformative.decode(frame.body), general == flow
            else { preconditionFailure("the hot path and the general decoder read a flow differently") }
        }
        offset += length
        guard !frame.isHeartbeat, let performative = try? AMQPPerformative.decode(frame.body) else { continue }
        if case .transfer(_, let payload) = performative, let message = try? AMQPMessage(decoding: payload) {
            checkMessage(message)
        }
        if let encoded = try? performative.encoded() {
            guard let again = try? AMQPPerformative.decode(encoded) else {
                preconditionFailure("a re-encoded \(performative) does not decode")
            }
            precondition((try? again.encoded()) == encoded, "re-encoding \(performative) is not stable")
        }
    }

    // The same bytes as one typed value and as message sections.
    if let value = try? AMQPDecoder.decode(bytes), let encoded = try? AMQPEncoder.encode(value) {
        guard let again = try? AMQPDecoder.decode(encoded) else {
            preconditionFailure("a re-encoded value does not decode")
        }
        precondition((try? AMQPEncoder.encode(again)) == encoded, "re-encoding a value is not stable")
    }
    if let message = try? AMQPMessage(decoding: bytes) { checkMessage(message) }
    return 0
}

/// A decoded message encodes to sections that decode to the same message.
func checkMessage(_ message: AMQPMessage) {
    guard let encoded = try? message.encoded() else { return }
    guard let again = try? AMQPMessage(decoding: encoded) else {
        preconditionFailure("a re-encoded message does not decode")
    }
    precondition((try? again.encoded()) == encoded, "re-encoding a message is not stable")
}

/// The executable's entry point (SwiftPM names it `{target}_main`): hands control to libFuzzer.
@_cdecl("AMQPFuzzer_main")
func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { data, size in fuzzAMQP(data, size) }
}
