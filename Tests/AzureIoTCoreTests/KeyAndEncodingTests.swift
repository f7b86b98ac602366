import AzureIoTCore
import AzureIoTTestSupport
import Testing

@Suite("Keys and encodings")
struct KeyAndEncodingTests {
    @Test("derived keys reproduce every vector")
    func derivedKeys() throws {
        var count = 0
        for file in try VectorFile.all() {
            for vector in file.derivedKeys {
                #expect(
                    try DerivedKey.compute(groupKey: vector.groupKey, registrationId: vector.registrationId)
                        == vector.derivedKey
                )
                let derived = try SymmetricKey(base64: vector.groupKey).derivedKey(
                    forRegistrationId: vector.registrationId
                )
                #expect(derived.base64EncodedSecret == vector.derivedKey)
                count += 1
            }
        }
        #expect(count >= 4)
    }

    @Test("derive-key refuses bad input")
    func derivedKeyErrors() {
        #expect(throws: AzureIoTError(.invalidBase64, "")) {
            try DerivedKey.compute(groupKey: "not base64!", registrationId: "x")
        }
        #expect(throws: AzureIoTError(.invalidArgument, "")) {
            try DerivedKey.compute(groupKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", registrationId: "")
        }
    }

    @Test("percent-encoding matches Python's quote(safe='')")
    func percentEncoding() throws {
        for vector in try VectorFile.load("extra-vectors").percentEncoding ?? [] {
            #expect(PercentEncoding.encode(vector.input) == vector.encoded)
            #expect(try PercentEncoding.decode(vector.encoded) == vector.input)
        }
        #expect(try PercentEncoding.decode("a%2fb%2Fc") == "a/b/c")
        #expect(try PercentEncoding.decode("a+b", plusAsSpace: true) == "a b")
        #expect(throws: AzureIoTError(.invalidArgument, "")) { try PercentEncoding.decode("abc%4") }
        #expect(throws: AzureIoTError(.invalidArgument, "")) { try PercentEncoding.decode("%G0") }
        #expect(throws: AzureIoTError(.invalidArgument, "")) { try PercentEncoding.decode("%FF%FE") }
    }

    @Test("base64 round trips every length and rejects malformed text")
    func base64() throws {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64.encode(bytes)
            if length > 0 { #expect(try Base64.decode(text) == bytes) }
            #expect(text.count == (length + 2) / 3 * 4)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        for bad in ["", "A", "Zm9v!", "Zm=v", "Zm8===", "Zm9=", "Zm9vYmFy=", "Zg=a"] {
            #expect(throws: AzureIoTError(.invalidBase64, ""), "\(bad)") { try Base64.decode(bad) }
        }
    }

    @Test("a bad key names what it was, never its value")
    func keyErrorText() {
        let secretLooking = "c2VjcmV0!c2VjcmV0"
        do {
            _ = try SymmetricKey(base64: secretLooking)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidBase64)
            #expect(!error.description.contains(secretLooking))
            #expect(error.message.contains("shared access key"))
        }
        let key = try? SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        #expect("\(key!)" == "SymmetricKey(<redacted>)")
    }
}
