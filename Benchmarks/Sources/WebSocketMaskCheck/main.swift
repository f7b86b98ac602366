import Foundation
import WebSocketCodec

// Checks WebSocketFrame.applyMask against byte-by-byte masking in an optimised build: the debug-built tests once
// passed while a release build left every 8-byte block unmasked (paho-mqtt over WebSockets then failed against a
// release emulator). `scripts/check-packages.sh` runs this with `-c release`.
var failures = 0
for length in 0..<200 {
    let original = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
    let key: (UInt8, UInt8, UInt8, UInt8) = (0x9D, 0x21, 0x7E, 0x04)
    let keyBytes = [key.0, key.1, key.2, key.3]
    let expected = original.enumerated().map { $0.element ^ keyBytes[$0.offset % 4] }
    for offset in 0..<4 where offset <= length {
        var data = original
        var want = original
        data.withUnsafeMutableBytes { bytes in
            WebSocketFrame.applyMask(key, to: UnsafeMutableRawBufferPointer(rebasing: bytes[offset...]))
        }
        for index in offset..<length { want[index] = original[index] ^ keyBytes[(index - offset) % 4] }
        if offset == 0 && want != expected { failures += 1 }
        if data != want { failures += 1 }
    }
}
print(
    failures == 0
        ? "WebSocket masking: optimised build agrees with byte-by-byte masking"
        : "WebSocket masking: \(failures) mismatches"
)
exit(failures == 0 ? 0 : 1)
