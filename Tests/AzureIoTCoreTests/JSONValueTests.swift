import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import Testing

/// The one JSON value type of the SDK: exact numbers, strict parsing, bounded nesting.
@Suite("JSON values")
struct JSONValueTests {
    @Test(
        "numbers keep their exact text through parse and write",
        arguments: [
            "0", "-0", "1", "-17", "9007199254740993", "18446744073709551615", "123456789012345678901234567890",
            "1.000000000000000000001", "0.1", "-2.5e-300", "1E400", "6.02214076e+23",
        ]
    )
    func exactNumbers(text: String) throws {
        let value = try JSONValue(parsing: "[\(text)]")
        #expect(value.jsonText == "[\(text)]")
        guard case .array(let elements) = value, case .number(let number) = elements.first else {
            Issue.record("not an array of one number: \(value)")
            return
        }
        #expect(number.text == text)
        #expect(JSONNumber(text) == number)
    }

    @Test("integers compare exactly beyond 2^53; equal values written differently are equal")
    func numberEquality() throws {
        #expect(JSONNumber("9007199254740993") != JSONNumber("9007199254740992"))
        #expect(JSONNumber("1") == JSONNumber("1.0"))
        #expect(JSONNumber("1e0") == JSONNumber("1"))
        #expect(JSONNumber(42).int64Value == 42)
        #expect(JSONNumber(Double(2.5))?.text == "2.5")
        #expect(JSONNumber(Double(3))?.text == "3")
        #expect(JSONNumber(Double.nan) == nil)
        #expect(try JSONValue(parsing: #"{"$version": 9223372036854775807}"#)["$version"]?.int64Value == Int64.max)
        for bad in ["01", "1.", ".5", "+1", "-", "1e", "NaN", "Infinity", "0x10", ""] {
            #expect(JSONNumber(bad) == nil, "\(bad)")
        }
    }

    @Test("strings: escapes, surrogate pairs and raw UTF-8 read and write back")
    func strings() throws {
        let value = try JSONValue(parsing: #"{"k\"ey":"a\\b\/c\n\t\u00e9\ud83d\ude00 \u0001 ü"}"#)
        #expect(value["k\"ey"]?.stringValue == "a\\b/c\n\té😀 \u{01} ü")
        #expect(value.jsonText == #"{"k\"ey":"a\\b/c\n\té😀 \u0001 ü"}"#)
        #expect(try JSONValue(parsing: value.jsonBytes) == value)
    }

    @Test(
        "malformed documents are typed errors with the offset, never a trap",
        arguments: [
            "", " ", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "[", "]", "\"open", "tru", "nul",
            "[01]", "[1.]", "[-]", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\u12\"", "1 2",
            "{} x", "\"a\u{01}b\"", "[1e+]",
        ]
    )
    func malformed(text: String) {
        do {
            let value = try JSONValue(parsing: text)
            Issue.record("parsed \(value)")
        } catch {
            #expect(error.code == .malformedJSON)
            #expect(error.message.contains("at byte"))
        }
    }

    @Test("invalid UTF-8 in a string and nesting past the limit are refused")
    func utf8AndDepth() throws {
        #expect(throws: AzureIoTError(.malformedJSON, "")) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: AzureIoTError(.malformedJSON, "")) { try JSONValue(parsing: [0x22, 0xED, 0xA0, 0x80, 0x22]) }
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: AzureIoTError(.malformedJSON, "")) { try JSONValue(parsing: deep) }
        #expect(try JSONValue(parsing: deep, maximumDepth: 33) != .null)
        // Far past the limit is refused just as fast, without recursing into it.
        let hostile = String(repeating: "[", count: 1_000_000)
        #expect(throws: AzureIoTError(.malformedJSON, "")) { try JSONValue(parsing: hostile) }
    }

    @Test("merge patches follow RFC 7396: null deletes, objects merge, anything else replaces")
    func mergePatch() throws {
        let twin = try JSONValue(parsing: #"{"a":1,"b":{"c":2,"d":3},"e":[1]}"#)
        let patch = try JSONValue(parsing: #"{"a":null,"b":{"c":null,"x":4},"e":"s","n":5}"#)
        #expect(twin.merging(patch) == (try JSONValue(parsing: #"{"b":{"d":3,"x":4},"e":"s","n":5}"#)))
    }

    @Test("literals build values; Codable round-trips through Foundation")
    func literalsAndCodable() throws {
        let value: JSONValue = ["a": 1, "b": [true, nil, "s", 2.5], "c": ["d": "e"]]
        #expect(value.jsonText == #"{"a":1,"b":[true,null,"s",2.5],"c":{"d":"e"}}"#)
        let decoded = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
        #expect(decoded == value)
    }

    /// Random documents: what this writer writes, this parser and Foundation's both read back as the same value.
    @Test("random documents round-trip and Foundation agrees they are JSON")
    func randomRoundTrip() throws {
        var random = SeededRandom()
        for _ in 0..<500 {
            let value = Self.randomValue(depth: 0, using: &random)
            let bytes = value.jsonBytes
            #expect(try JSONValue(parsing: bytes) == value, "\(random.replay): \(value)")
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil,
                "\(random.replay)"
            )
        }
    }

    /// Random bytes and mutated documents: each parses or fails with a typed error (a trap would end the run, so
    /// the seed is printed first).
    @Test("random and mutated input never traps")
    func randomInput() async {
        var random = SeededRandom()
        print("JSON random input: \(random.replay)")
        let alphabet = Array(#"{}[]",:-+.eE0123456789 truefalsn\u"#.utf8) + [0xC3, 0xA9, 0xFF, 0x00, 0x5C]
        for round in 0..<20_000 {
            await yieldToOtherTests(at: round)
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0..<40, using: &random)).map { _ in alphabet.randomElement(using: &random)!
                }
            } else {
                bytes = Self.randomValue(depth: 0, using: &random).jsonBytes
                if !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] = alphabet.randomElement(using: &random)!
                }
            }
            do {
                let value = try JSONValue(parsing: bytes)
                #expect(try JSONValue(parsing: value.jsonBytes) == value, "\(random.replay)")
            } catch {
                #expect(error.code == .malformedJSON, "\(random.replay)")
            }
        }
    }

    static func randomValue(depth: Int, using random: inout SeededRandom) -> JSONValue {
        let pick = Int.random(in: 0..<(depth >= 4 ? 5 : 7), using: &random)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .number(JSONNumber(Int64.random(in: .min ... .max, using: &random)))
        case 3: return .number(JSONNumber(Double.random(in: -1e12...1e12, using: &random)) ?? 0)
        case 4:
            let scalars = (0..<Int.random(in: 0..<8, using: &random)).map { _ -> Character in
                let choices: [Character] = ["a", "\"", "\\", "\n", "\u{01}", "é", "😀", " ", "/"]
                return choices.randomElement(using: &random)!
            }
            return .string(String(scalars))
        case 5:
            return .array(
                (0..<Int.random(in: 0..<4, using: &random)).map { _ in randomValue(depth: depth + 1, using: &random) }
            )
        default:
            var members: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0..<4, using: &random) {
                members["k\(index)\(Bool.random(using: &random) ? "é" : "")"] = randomValue(
                    depth: depth + 1,
                    using: &random
                )
            }
            return .object(members)
        }
    }
}
