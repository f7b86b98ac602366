/// A JSON value with numbers kept exactly as written: twin documents, DPS payloads, method payloads, and anything
/// else the SDK carries without a fixed schema.
///
/// `init(parsing:maximumDepth:)` is a strict RFC 8259 parser over bytes (bounded nesting, UTF-8
/// checked, no trailing garbage) and ``jsonBytes`` writes compact JSON with sorted keys. Neither goes through
/// `Double`, so a twin `$version`, a 64-bit id or a 30-digit decimal round-trips unchanged.
public enum JSONValue: Sendable, Equatable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, as its exact text.
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object. Keys are unique; a document that repeats a key keeps the last value, as most parsers do.
    case object([String: JSONValue])

    /// The deepest nesting `init(parsing:maximumDepth:)` accepts by default. IoT Hub refuses twins deeper than 10
    /// levels; 32 leaves room for DPS payloads while a document nested hundreds deep is refused unread.
    public static let defaultMaximumDepth = 32

    /// Parses one JSON value from `bytes` (leading and trailing whitespace allowed, nothing else). Throws
    /// ``AzureIoTError/Code/malformedJSON`` naming the byte offset of the first problem, including nesting deeper
    /// than `maximumDepth`.
    public init(parsing bytes: some Collection<UInt8>, maximumDepth: Int = JSONValue.defaultMaximumDepth)
        throws(AzureIoTError)
    {
        let array = Array(bytes)
        var parser = JSONParser(bytes: array, maximumDepth: maximumDepth)
        self = try parser.parseDocument()
    }

    /// Parses JSON text; see `init(parsing:maximumDepth:)`.
    public init(parsing text: String, maximumDepth: Int = JSONValue.defaultMaximumDepth) throws(AzureIoTError) {
        try self.init(parsing: Array(text.utf8), maximumDepth: maximumDepth)
    }

    /// Compact JSON text; object keys sorted (by their UTF-8 bytes) when `sortedKeys`, so equal values give equal bytes.
    public func jsonBytes(sortedKeys: Bool = true) -> [UInt8] {
        var output: [UInt8] = []
        self.write(into: &output, sortedKeys: sortedKeys)
        return output
    }

    /// Compact JSON with sorted keys; see ``jsonBytes(sortedKeys:)``.
    public var jsonBytes: [UInt8] { self.jsonBytes(sortedKeys: true) }

    /// Compact JSON text with sorted keys.
    public var jsonText: String { String(decoding: self.jsonBytes, as: UTF8.self) }

    /// The members of an object (empty for anything else).
    public var objectValue: [String: JSONValue] {
        if case .object(let members) = self { return members }
        return [:]
    }

    /// The member `key` of an object; `nil` for a missing key or a value that is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number as an `Int64`, if this is an integer that fits.
    public var int64Value: Int64? {
        if case .number(let number) = self { return number.int64Value }
        return nil
    }

    /// Applies a JSON merge patch (RFC 7396), the way twin patches work: `null` deletes a key.
    public func merging(_ patch: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var members = self.objectValue
        for (key, value) in changes {
            if value == .null {
                members[key] = nil
            } else if let existing = members[key], case .object = existing, case .object = value {
                members[key] = existing.merging(value)
            } else {
                members[key] = value
            }
        }
        return .object(members)
    }

    private func write(into output: inout [UInt8], sortedKeys: Bool) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let number): output.append(contentsOf: number.text.utf8)
        case .string(let value): Self.writeString(value, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(into: &output, sortedKeys: sortedKeys)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            var keys = Array(members.keys)
            if sortedKeys { keys.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
            for (index, key) in keys.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                members[key]!.write(into: &output, sortedKeys: sortedKeys)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeString(_ value: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                output.append(Self.hexDigits[Int(byte >> 4)])
                output.append(Self.hexDigits[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// A JSON number kept as its exact text (RFC 8259 grammar), so that integers beyond 2^53 and long decimals survive a
/// round trip. Integer and floating-point literals make one: `.number(5)`, `.number(2.5)`.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral
{
    /// The number as written in JSON.
    public let text: String

    /// A number whose text is already known to match the grammar.
    init(validatedText text: String) { self.text = text }

    /// The JSON number `text`, or `nil` if `text` is not one (`"01"`, `"1."`, `"NaN"`, `"+1"` are not).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard JSONParser.numberLength(in: bytes, from: 0) == bytes.count, !bytes.isEmpty else { return nil }
        self.text = text
    }

    /// An integer.
    public init(_ value: some BinaryInteger) { self.text = String(value) }

    /// A finite floating-point value, written with the shortest text that reads back as the same `Double`; `nil`
    /// for infinities and NaN, which JSON cannot carry.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value == value.rounded(.towardZero), abs(value) < 9_007_199_254_740_992 {
            self.text = String(Int64(value))
        } else {
            // Swift's description is the shortest round-tripping form and JSON's grammar ("1e-07", "1.5e+20").
            self.text = "\(value)"
        }
    }

    /// An integer literal.
    public init(integerLiteral value: Int64) { self.text = String(value) }

    /// A floating-point literal (must be finite).
    public init(floatLiteral value: Double) {
        self = JSONNumber(value) ?? JSONNumber(validatedText: "0")
    }

    /// The value as an `Int64` if the text is an integer that fits (no fraction, no exponent).
    public var int64Value: Int64? { Int64(self.text) }

    /// The value as a `UInt64` if the text is a non-negative integer that fits.
    public var uint64Value: UInt64? { UInt64(self.text) }

    /// The nearest `Double` (large or long numbers lose precision here, never in ``text``).
    public var doubleValue: Double { Double(self.text) ?? .nan }

    /// The number's JSON text.
    public var description: String { self.text }

    /// Numbers are equal when they denote the same value: `1`, `1.0` and `1e0` are equal; exact integers compare
    /// exactly, anything else through `Double`.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if lhs.text == rhs.text { return true }
        if let left = lhs.int64Value, let right = rhs.int64Value { return left == right }
        if let left = lhs.uint64Value, let right = rhs.uint64Value { return left == right }
        return lhs.doubleValue == rhs.doubleValue
    }

    /// Consistent with `==`: hashes the `Double` value.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.doubleValue) }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
    /// A boolean.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An integer.
    public init(integerLiteral value: Int64) { self = .number(JSONNumber(integerLiteral: value)) }
    /// A finite floating-point number.
    public init(floatLiteral value: Double) { self = .number(JSONNumber(floatLiteral: value)) }
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An array.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// An object (a repeated key keeps the last value).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text (sorted keys).
    public var description: String { self.jsonText }
}

extension JSONValue: Codable {
    /// Decodes any JSON value through a `Decoder`. Numbers go through the decoder's own types (integers that fit
    /// 64 bits exactly, anything else as `Double`); `init(parsing:maximumDepth:)` keeps every number exactly.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .number(JSONNumber(value))
        } else if let value = try? container.decode(UInt64.self) {
            self = .number(JSONNumber(value))
        } else if let value = try? container.decode(Double.self) {
            guard let number = JSONNumber(value) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a number JSON cannot carry")
            }
            self = .number(number)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Encodes the value through an `Encoder` (integers that fit 64 bits exactly, other numbers as `Double`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let number):
            if let value = number.int64Value {
                try container.encode(value)
            } else if let value = number.uint64Value {
                try container.encode(value)
            } else {
                try container.encode(number.doubleValue)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A strict recursive-descent JSON parser over a byte array; every index is checked, nesting is bounded.
struct JSONParser {
    let bytes: [UInt8]
    let maximumDepth: Int
    var index = 0
    var depth = 0

    init(bytes: [UInt8], maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = max(0, maximumDepth)
    }

    mutating func parseDocument() throws(AzureIoTError) -> JSONValue {
        self.skipWhitespace()
        let value = try self.parseValue()
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.failure("unexpected data after the JSON value") }
        return value
    }

    private func failure(_ reason: String) -> AzureIoTError {
        AzureIoTError(.malformedJSON, "not valid JSON at byte \(self.index): \(reason)")
    }

    private mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(AzureIoTError) -> JSONValue {
        guard self.index < self.bytes.count else { throw self.failure("the text ends where a value was expected") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject()
        case UInt8(ascii: "["): return try self.parseArray()
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.expectWord("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.expectWord("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.expectWord("null")
            return .null
        default:
            let length = Self.numberLength(in: self.bytes, from: self.index)
            guard length > 0 else { throw self.failure("a value was expected") }
            let text = String(decoding: self.bytes[self.index..<(self.index + length)], as: UTF8.self)
            self.index += length
            return .number(JSONNumber(validatedText: text))
        }
    }

    private mutating func expectWord(_ word: StaticString) throws(AzureIoTError) {
        let count = word.utf8CodeUnitCount
        guard self.bytes.count - self.index >= count else { throw self.failure("a value was expected") }
        for offset in 0..<count where self.bytes[self.index + offset] != word.utf8Start[offset] {
            throw self.failure("a value was expected")
        }
        self.index += count
    }

    private mutating func enter() throws(AzureIoTError) {
        self.depth += 1
        guard self.depth <= self.maximumDepth else {
            throw self.failure("nested deeper than \(self.maximumDepth) levels")
        }
    }

    private mutating func parseArray() throws(AzureIoTError) -> JSONValue {
        try self.enter()
        self.index += 1
        var elements: [JSONValue] = []
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            self.depth -= 1
            return .array(elements)
        }
        while true {
            self.skipWhitespace()
            elements.append(try self.parseValue())
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.failure("an array is not closed") }
            let byte = self.bytes[self.index]
            self.index += 1
            if byte == UInt8(ascii: "]") { break }
            guard byte == UInt8(ascii: ",") else { throw self.failure("',' or ']' expected in an array") }
        }
        self.depth -= 1
        return .array(elements)
    }

    private mutating func parseObject() throws(AzureIoTError) -> JSONValue {
        try self.enter()
        self.index += 1
        var members: [String: JSONValue] = [:]
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            self.depth -= 1
            return .object(members)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.failure("an object key (a string) expected")
            }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                throw self.failure("':' expected after an object key")
            }
            self.index += 1
            self.skipWhitespace()
            members[key] = try self.parseValue()
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.failure("an object is not closed") }
            let byte = self.bytes[self.index]
            self.index += 1
            if byte == UInt8(ascii: "}") { break }
            guard byte == UInt8(ascii: ",") else { throw self.failure("',' or '}' expected in an object") }
        }
        self.depth -= 1
        return .object(members)
    }

    private mutating func parseString() throws(AzureIoTError) -> String {
        self.index += 1  // the opening quote
        var output: [UInt8] = []
        while true {
            guard self.index < self.bytes.count else { throw self.failure("a string is not closed") }
            let byte = self.bytes[self.index]
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: output, as: UTF8.self) else {
                    throw self.failure("a string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.failure("a string is not closed") }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"): try self.parseUnicodeEscape(into: &output)
                default: throw self.failure("an unknown escape in a string")
                }
            case 0x00..<0x20:
                throw self.failure("a control character inside a string")
            default:
                output.append(byte)
            }
        }
    }

    private mutating func hex4() throws(AzureIoTError) -> UInt32 {
        guard self.bytes.count - self.index >= 4 else { throw self.failure("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.failure("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }

    private mutating func parseUnicodeEscape(into output: inout [UInt8]) throws(AzureIoTError) {
        var scalar = try self.hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            // A high surrogate must be followed by an escaped low surrogate.
            guard self.bytes.count - self.index >= 2, self.bytes[self.index] == UInt8(ascii: "\\"),
                self.bytes[self.index + 1] == UInt8(ascii: "u")
            else { throw self.failure("a lone UTF-16 surrogate in a \\u escape") }
            self.index += 2
            let low = try self.hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw self.failure("a lone UTF-16 surrogate in a \\u escape") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
            throw self.failure("a lone UTF-16 surrogate in a \\u escape")
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw self.failure("an invalid \\u escape") }
        output.append(contentsOf: Array(String(Character(unicode)).utf8))
    }

    /// The length of the JSON number starting at `start` (`-? int frac? exp?`), or 0 if none starts there.
    static func numberLength(in bytes: [UInt8], from start: Int) -> Int {
        var index = start
        func digit(_ at: Int) -> Bool {
            at < bytes.count && bytes[at] >= UInt8(ascii: "0") && bytes[at] <= UInt8(ascii: "9")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard digit(index) else { return 0 }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while digit(index) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            guard digit(index + 1) else { return 0 }
            index += 1
            while digit(index) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            var next = index + 1
            if next < bytes.count, bytes[next] == UInt8(ascii: "+") || bytes[next] == UInt8(ascii: "-") { next += 1 }
            guard digit(next) else { return 0 }
            index = next
            while digit(index) { index += 1 }
        }
        // A number directly followed by another digit ("01") is not a number.
        if digit(index) { return 0 }
        return index - start
    }
}
