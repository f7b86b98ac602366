import FuzzSupport
import MQTTCodec

/// Frames and decodes arbitrary bytes as an MQTT stream. Every packet that decodes must encode again and decode to
/// the same value; anything else must be a typed error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMQTT(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    var buffer = Array(UnsafeBufferPointer(start: data, count: size))
    guard let packets = try? MQTTFramer(maximumPacketSize: 1 << 20).decodePackets(from: &buffer) else { return 0 }
    for packet in packets {
        guard let bytes = try? packet.encoded() else { continue }
        var again = bytes
        let decoded = try? MQTTFramer(maximumPacketSize: 1 << 21).decodePackets(from: &again)
        precondition(decoded == [packet], "round trip changed \(packet)")
    }
    return 0
}

/// The executable's entry point (SwiftPM names it `{target}_main`): hands control to libFuzzer.
@_cdecl("MQTTFuzzer_main")
func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { data, size in fuzzMQTT(data, size) }
}
