import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import Testing

@Suite("SAS tokens")
struct SASTokenTests {
    @Test("every shared and own vector reproduces byte for byte")
    func vectors() throws {
        var count = 0
        for file in try VectorFile.all() {
            for vector in file.sas {
                let key = try SymmetricKey(base64: vector.key)
                let resource = SASResource(uri: vector.resourceURI)
                let token = SASToken.generate(
                    for: resource,
                    key: key,
                    expiry: vector.expiry,
                    keyName: vector.policyName
                )
                #expect(token.secretValue == vector.token, "\(vector.resourceURI)")
                #expect(
                    SASToken.string(for: resource, key: key, expiry: vector.expiry, keyName: vector.policyName)
                        == vector.token
                )
                #expect(key.signature(of: vector.stringToSign) == vector.signature)
                #expect("\(resource.encoded)\n\(vector.expiry)" == vector.stringToSign)
                count += 1
            }
        }
        #expect(count >= 9)
    }

    @Test("parsing accepts any field order and validates the signature")
    func parseAnyOrder() throws {
        let vector = try VectorFile.load("seed-vectors").sas[0]
        let key = try SymmetricKey(base64: vector.key)
        let fields = vector.token.dropFirst("SharedAccessSignature ".count).split(separator: "&").map(String.init)
        for permutation in [fields, fields.reversed(), [fields[2], fields[0], fields[3], fields[1]]] {
            let token = try SASToken(parsing: "SharedAccessSignature " + permutation.joined(separator: "&"))
            #expect(token.resource.uri == vector.resourceURI)
            #expect(token.expiry == vector.expiry)
            #expect(token.keyName == "registration")
            try token.validate(
                with: key,
                now: vector.expiry - 1,
                expectedResource: SASResource(uri: vector.resourceURI)
            )
        }
    }

    @Test("validation refuses a wrong key, an expired token and another resource, each distinctly")
    func validationFailures() throws {
        let key = try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        let otherKey = try SymmetricKey(base64: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        let resource = SASResource.device(hubHost: "hub.azure-devices.net", deviceId: "dev1")
        let token = try SASToken(parsing: SASToken.string(for: resource, key: key, expiry: 1000))
        try token.validate(with: key, now: 999, expectedResource: resource)
        #expect(throws: AzureIoTError(.sasSignatureMismatch, "")) { try token.validate(with: otherKey, now: 999) }
        #expect(throws: AzureIoTError(.sasTokenExpired, "")) { try token.validate(with: key, now: 1000) }
        #expect(throws: AzureIoTError(.sasResourceMismatch, "")) {
            try token.validate(
                with: key,
                now: 999,
                expectedResource: .device(hubHost: "hub.azure-devices.net", deviceId: "dev2")
            )
        }
        // Host names compare case-insensitively.
        try token.validate(
            with: key,
            now: 999,
            expectedResource: .device(hubHost: "HUB.azure-devices.net", deviceId: "dev1")
        )
        // A tampered expiry breaks the signature.
        let tampered = try SASToken(parsing: token.secretValue.replacingOccurrences(of: "se=1000", with: "se=1001"))
        #expect(throws: AzureIoTError(.sasSignatureMismatch, "")) { try tampered.validate(with: key, now: 0) }
    }

    @Test(
        "malformed tokens are refused with a typed error",
        arguments: [
            "sr=a&sig=b&se=1",
            "SharedAccessSignature sig=abc%3D&se=1",
            "SharedAccessSignature sr=a&se=1",
            "SharedAccessSignature sr=a&sig=abc",
            "SharedAccessSignature sr=a&sig=abc&se=12x",
            "SharedAccessSignature sr=a&sig=abc&se=-5",
            "SharedAccessSignature sr=a&sig=abc&se=1&foo=bar",
            "SharedAccessSignature sr=a&sr=b&sig=abc&se=1",
            "SharedAccessSignature sr=a&sig=abc&se=1&",
            "SharedAccessSignature sr=a&sig=&se=1",
            "SharedAccessSignature sr=%ZZ&sig=abc&se=1",
            "SharedAccessSignature sr=a&sig=abc&se=99999999999999999999999",
            "SharedAccessSignature sr",
        ]
    )
    func malformed(_ text: String) {
        #expect(throws: AzureIoTError(.malformedSASToken, "")) { try SASToken(parsing: text) }
    }

    @Test("resources for devices, modules and DPS registrations")
    func resources() {
        #expect(
            SASResource.device(hubHost: "h.azure-devices.net", deviceId: "d").encoded
                == "h.azure-devices.net%2Fdevices%2Fd"
        )
        #expect(
            SASResource.module(hubHost: "h.azure-devices.net", deviceId: "d", moduleId: "m").encoded
                == "h.azure-devices.net%2Fdevices%2Fd%2Fmodules%2Fm"
        )
        #expect(
            SASResource.registration(idScope: "0ne0001", registrationId: "r 1").encoded
                == "0ne0001%2Fregistrations%2Fr%201"
        )
    }

    @Test("description never shows the signature")
    func redaction() throws {
        let key = try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        let token = SASToken.generate(for: .device(hubHost: "h", deviceId: "d"), key: key, expiry: 5, keyName: "p")
        let signature = token.secretValue.split(separator: "&").first { $0.hasPrefix("sig=") }!.dropFirst(4)
        for text in [token.description, "\(token)", String(reflecting: token)] {
            #expect(!text.contains(signature))
            #expect(text.contains("<redacted>"))
        }
    }
}
