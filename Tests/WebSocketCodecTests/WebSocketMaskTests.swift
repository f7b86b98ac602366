import Testing
import WebSocketCodec

/// `applyMask` against byte-by-byte masking, for every length up to 200 and every start offset modulo 4: the word
/// loop and the tail agree with RFC 6455 §5.3. (`WebSocketMaskCheck` runs the same comparison in a release build.)
@Suite("WebSocket masking")
struct WebSocketMaskTests {
    @Test("applyMask equals byte-by-byte masking for lengths 0…199 at offsets 0…3")
    func againstByteByByte() {
        let key: (UInt8, UInt8, UInt8, UInt8) = (0x9D, 0x21, 0x7E, 0x04)
        let keyBytes = [key.0, key.1, key.2, key.3]
        for length in 0..<200 {
            let original = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
            for offset in 0..<4 where offset <= length {
                var data = original
                data.withUnsafeMutableBytes { bytes in
                    WebSocketFrame.applyMask(key, to: UnsafeMutableRawBufferPointer(rebasing: bytes[offset...]))
                }
                var want = original
                for index in offset..<length { want[index] ^= keyBytes[(index - offset) % 4] }
                #expect(data == want, "length \(length), offset \(offset)")
            }
        }
    }
}
