import AzureIoTCore
import AzureIoTTestSupport
import Testing

@Suite("Connection strings")
struct ConnectionStringTests {
    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    @Test(
        "device, module, gateway, policy and x509 forms round trip",
        arguments: [
            "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=\(key)",
            "HostName=hub.azure-devices.net;DeviceId=dev1;ModuleId=mod1;SharedAccessKey=\(key)",
            "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=\(key);GatewayHostName=edge.local",
            "HostName=hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=\(key)",
            "HostName=hub.azure-devices.net;DeviceId=dev1;x509=true",
            "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=hub.azure-devices.net%2Fdevices%2Fdev1&sig=abc%3D&se=4102444800",
        ]
    )
    func roundTrip(_ text: String) throws {
        let parsed = try ConnectionString(parsing: text)
        #expect(parsed.secretValue == text)
        let again = try ConnectionString(parsing: parsed.secretValue)
        #expect(again.secretValue == text)
    }

    @Test("field order, whitespace after ';' and a trailing ';' are tolerated")
    func lenientLayout() throws {
        let parsed = try ConnectionString(
            parsing: "DeviceId=dev1; SharedAccessKey=\(Self.key);HostName=hub.azure-devices.net;"
        )
        #expect(parsed.hostName == "hub.azure-devices.net")
        #expect(parsed.deviceId == "dev1")
    }

    @Test("GatewayHostName moves only the TLS endpoint")
    func gateway() throws {
        let parsed = try ConnectionString(
            parsing:
                "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=\(Self.key);GatewayHostName=edge.local"
        )
        #expect(parsed.connectHost == "edge.local")
        #expect(parsed.hubName == "hub")
        #expect(parsed.sasResource == .device(hubHost: "hub.azure-devices.net", deviceId: "dev1"))
        let issued = try parsed.tokenSource()!.issueToken(for: parsed.sasResource!, now: 100)
        #expect(issued.token.encodedResource == "hub.azure-devices.net%2Fdevices%2Fdev1")
        #expect(!issued.token.secretValue.contains("edge.local"))
    }

    @Test(
        "bad input gives one typed error each",
        arguments: [
            ("DeviceId=dev1;SharedAccessKey=\(key)", AzureIoTError.Code.missingConnectionStringField),
            ("HostName=h;SharedAccessKey=\(key)", .missingConnectionStringField),
            ("HostName=h;DeviceId=d", .missingConnectionStringField),
            ("HostName=h;ModuleId=m;SharedAccessKeyName=p;SharedAccessKey=\(key)", .missingConnectionStringField),
            ("HostName=h;DeviceId=d;DeviceId=e;SharedAccessKey=\(key)", .duplicateConnectionStringField),
            ("HostName=h;DeviceId=d;SharedAccessKey=\(key);Foo=bar", .unknownConnectionStringField),
            ("HostName=h;DeviceId=d;hostname=x;SharedAccessKey=\(key)", .unknownConnectionStringField),
            ("HostName=h;DeviceId=d;SharedAccessKey=not*base64", .invalidBase64),
            ("HostName=h;DeviceId=d;SharedAccessKey", .malformedConnectionString),
            ("HostName=h;DeviceId=;SharedAccessKey=\(key)", .malformedConnectionString),
            ("HostName=h;DeviceId=d;SharedAccessKey=\(key);x509=true", .malformedConnectionString),
            ("HostName=h;DeviceId=d;x509=yes", .malformedConnectionString),
            ("HostName=h;DeviceId=d;SharedAccessSignature=garbage", .malformedSASToken),
            ("", .missingConnectionStringField),
        ]
    )
    func badInput(_ text: String, _ code: AzureIoTError.Code) {
        #expect(throws: AzureIoTError(code, "")) { try ConnectionString(parsing: text) }
    }

    @Test("neither description nor errors show the key")
    func redaction() throws {
        let text = "HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=\(Self.key)"
        let parsed = try ConnectionString(parsing: text)
        #expect(!parsed.description.contains(Self.key))
        #expect(!String(reflecting: parsed).contains(Self.key))
        #expect(parsed.description.contains("SharedAccessKey=<redacted>"))
        do {
            _ = try ConnectionString(parsing: text + ";Bogus=1")
        } catch {
            #expect(!error.description.contains(Self.key))
        }
        let badKey = "c2VjcmV0LWtleQ@@"
        do {
            _ = try ConnectionString(parsing: "HostName=h;DeviceId=d;SharedAccessKey=\(badKey)")
        } catch {
            #expect(!error.description.contains(badKey))
        }
    }
}
