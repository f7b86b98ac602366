import AzureIoTCore
import AzureIoTTestSupport
import Testing

@Suite("Credentials")
struct CredentialTests {
    static let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    @Test("a symmetric-key credential mints valid tokens with a TTL and renews at 80 %")
    func symmetricKey() throws {
        let credential = try SymmetricKeyCredential(base64Key: Self.key)
        let resource = SASResource.device(hubHost: "hub.azure-devices.net", deviceId: "dev1")
        let issued = try credential.issueToken(for: resource, now: 1_000_000)
        #expect(issued.expiresAt == 1_003_600)
        #expect(issued.renewAt == 1_002_880)
        #expect(!issued.needsRenewal(now: 1_002_879))
        #expect(issued.needsRenewal(now: 1_002_880))
        #expect(issued.token.keyName == nil)
        try issued.token.validate(with: try SymmetricKey(base64: Self.key), now: 1_000_001, expectedResource: resource)

        let dps = SymmetricKeyCredential(
            key: try SymmetricKey(base64: Self.key),
            keyName: "registration",
            timeToLive: 100,
            renewalFraction: 0.5
        )
        let dpsToken = try dps.issueToken(for: .registration(idScope: "0ne1", registrationId: "r"), now: 10)
        #expect(dpsToken.renewAt == 60)
        #expect(dpsToken.token.secretValue.hasSuffix("&se=110&skn=registration"))
        #expect(!credential.description.contains(Self.key))
    }

    @Test("a current clock issues tokens that expire in the future")
    func realClock() throws {
        let credential = try SymmetricKeyCredential(base64Key: Self.key, timeToLive: 60)
        let before = UnixTime.now()
        let issued = try credential.issueToken(for: .device(hubHost: "h", deviceId: "d"))
        #expect(issued.expiresAt >= before + 60 && issued.expiresAt <= UnixTime.now() + 60)
        #expect(before > 1_700_000_000)
    }

    @Test("a fixed token is handed out until it expires, for its own resource only")
    func fixedToken() throws {
        let resource = SASResource.device(hubHost: "hub.azure-devices.net", deviceId: "dev1")
        let token = SASToken.generate(for: resource, key: try SymmetricKey(base64: Self.key), expiry: 500)
        let credential = FixedTokenCredential(token: token)
        let issued = try credential.issueToken(for: resource, now: 100)
        #expect(issued.token.secretValue == token.secretValue)
        #expect(issued.renewAt == 500)
        #expect(throws: AzureIoTError(.sasTokenExpired, "")) { try credential.issueToken(for: resource, now: 500) }
        #expect(throws: AzureIoTError(.sasResourceMismatch, "")) {
            try credential.issueToken(for: .device(hubHost: "hub.azure-devices.net", deviceId: "dev2"), now: 100)
        }
        #expect(!credential.description.contains(token.secretValue))
    }
}
