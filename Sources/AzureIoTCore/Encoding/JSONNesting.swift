/// How deeply a JSON text nests, found in one pass without parsing it, so that a peer's document can be refused
/// before a recursive decoder (Foundation's recurses once per level) spends a stack frame per level on it.
package enum JSONNesting {
    /// The deepest nesting of `[` and `{` outside strings; counting stops once it passes `limit`.
    package static func depth(of bytes: [UInt8], stoppingAbove limit: Int = .max) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
                if deepest > limit { return deepest }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
