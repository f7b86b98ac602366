/// RFC 3986 percent-encoding as IoT Hub and DPS expect it: UTF-8 first, upper-case hex, and only the unreserved
/// characters `A-Z a-z 0-9 - . _ ~` left as they are (so `/` becomes `%2F` and a space `%20`).
public enum PercentEncoding {
    /// Encodes `string` for use in a SAS `sr`, a property bag key or value, or a query value.
    public static func encode(_ string: String) -> String {
        string.withUTF8Bytes { bytes in
            if bytes.allSatisfy(isUnreserved) { return string }
            return String(unsafeUninitializedCapacity: bytes.count * 3) { output in
                var writer = ByteWriter(output.baseAddress!)
                writer.writePercentEncoded(bytes)
                return writer.count
            }
        }
    }

    /// Decodes `%XX` escapes (either hex case). With `plusAsSpace`, a `+` becomes a space, as in HTML forms.
    /// Throws ``AzureIoTError/Code/invalidArgument`` for a truncated or non-hex escape or bytes that are not UTF-8.
    public static func decode(_ string: some StringProtocol, plusAsSpace: Bool = false) throws(AzureIoTError) -> String
    {
        let utf8 = Array(string.utf8)
        if !utf8.contains(UInt8(ascii: "%")) && !(plusAsSpace && utf8.contains(UInt8(ascii: "+"))) {
            return String(string)
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < utf8.count, let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2])
                else {
                    throw AzureIoTError(.invalidArgument, "invalid percent-escape at offset \(index)")
                }
                out.append(high << 4 | low)
                index += 3
            } else if plusAsSpace && byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
                index += 1
            } else {
                out.append(byte)
                index += 1
            }
        }
        guard let decoded = String(validating: out, as: UTF8.self) else {
            throw AzureIoTError(.invalidArgument, "percent-decoded bytes are not valid UTF-8")
        }
        return decoded
    }

    /// Whether `byte` is an RFC 3986 unreserved character (a 128-bit map of `A-Z a-z 0-9 - . _ ~`).
    @inline(__always)
    public static func isUnreserved(_ byte: UInt8) -> Bool {
        guard byte < 128 else { return false }
        let word: UInt64 = byte < 64 ? 0x03FF_6000_0000_0000 : 0x47FF_FFFE_87FF_FFFE
        return (word >> UInt64(byte & 63)) & 1 == 1
    }

    /// The value of an ASCII hex digit, either case.
    package static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
