import FuzzSupport
import WebSocketCodec

/// Feeds arbitrary bytes to the WebSocket frame decoder in both roles, to the receiver that checks frame order, and
/// to both handshake parsers. Every frame that decodes must encode (masked as a client would, or not) and decode to
/// the same frame; anything else must be a typed error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzWebSocket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for role in [WebSocketFrameDecoder.Role.server, .client] {
        let decoder = WebSocketFrameDecoder(role: role, maximumFrameSize: 1 << 16)
        var receiver = WebSocketReceiver(maximumMessageSize: 1 << 16)
        var rest = bytes[...]
        while let (frame, consumed) = try? decoder.nextFrame(in: rest) {
            rest = rest.dropFirst(consumed)
            _ = try? receiver.receive(frame)
            let key: (UInt8, UInt8, UInt8, UInt8)? = role == .server ? (1, 2, 3, 4) : nil
            guard let encoded = try? frame.encoded(maskingKey: key) else { continue }
            let again = try? decoder.nextFrame(in: encoded[...])
            precondition(again?.frame == frame && again?.size == encoded.count, "round trip changed \(frame)")
        }
    }
    _ = try? WebSocketUpgradeRequest.parse(bytes[...], maximumSize: 4096)
    if let handshake = try? WebSocketClientHandshake(
        host: "h",
        path: "/",
        protocols: ["mqtt"],
        nonce: [UInt8](repeating: 0, count: 16)
    ) {
        _ = try? handshake.parseResponse(bytes[...], maximumSize: 4096)
    }
    return 0
}

/// The executable's entry point (SwiftPM names it `{target}_main`): hands control to libFuzzer.
@_cdecl("WebSocketFuzzer_main")
func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { data, size in fuzzWebSocket(data, size) }
}
