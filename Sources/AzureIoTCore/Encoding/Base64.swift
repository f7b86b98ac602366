/// Standard base64 (RFC 4648 §4, `+` and `/`, with `=` padding), strict on decode.
public enum Base64 {
    /// Encodes `bytes` as base64 text.
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { input in
            String(unsafeUninitializedCapacity: (input.count + 2) / 3 * 4) { output in
                var writer = ByteWriter(output.baseAddress!)
                writer.writeBase64(input)
                return writer.count
            }
        }
    }

    /// Decodes base64 text. Padding is required for lengths that are not a multiple of four only when present;
    /// any other character, misplaced padding or non-zero trailing bits throw ``AzureIoTError/Code/invalidBase64``.
    /// `what` names the value in the error (for example "SharedAccessKey"); the value itself is never echoed.
    public static func decode(_ text: some StringProtocol, what: String = "value") throws(AzureIoTError) -> [UInt8] {
        let input = Array(text.utf8)
        var end = input.count
        var padding = 0
        while end > 0 && input[end - 1] == UInt8(ascii: "=") && padding < 2 {
            end -= 1
            padding += 1
        }
        let remainder = end % 4
        guard !input.isEmpty, remainder != 1, padding == 0 || (remainder + padding) == 4 else {
            throw AzureIoTError(.invalidBase64, "\(what) is not valid base64 (length \(input.count))")
        }
        var out: [UInt8] = []
        out.reserveCapacity(end / 4 * 3 + 2)
        var accumulator: UInt32 = 0
        var bits = 0
        for index in 0..<end {
            let value = decodeTable[Int(input[index])]
            guard value != 0xFF else {
                throw AzureIoTError(.invalidBase64, "\(what) is not valid base64 (bad character at offset \(index))")
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        guard accumulator == 0 else {
            throw AzureIoTError(.invalidBase64, "\(what) is not valid base64 (non-canonical final character)")
        }
        return out
    }

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()
}
