import ArgumentParser
import AzureIoTCore

/// `azure-iot demo`: the README's main job. Until the emulator lands it shows the auth core on the README's example
/// values: a derived group key and the DPS and hub SAS tokens a device would send.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the SDK demo (key derivation and SAS tokens for the README's example values)."
    )

    /// The README's example values (from the DPS symmetric-key write-up).
    static let idScope = "0ne00052505"
    static let registrationId = "dps-test-sym-device01"
    static let groupKey = "gPD2SOUYSOMXygVZA+pupNvWckqaS3Qnu+BUBbw7TbIZU7y2UZ5ksp4uMJfdV+nTIBayN+fZIZco4tS7oeVR/A=="
    static let fixedExpiry: UInt64 = 1_568_718_116

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let groupKey = try SymmetricKey(base64: Self.groupKey)
        let deviceKey = try groupKey.derivedKey(forRegistrationId: Self.registrationId)
        print("1. derived device key for '\(Self.registrationId)' (group enrollment):")
        print("   \(deviceKey.base64EncodedSecret)")

        let registration = SASResource.registration(idScope: Self.idScope, registrationId: Self.registrationId)
        print("2. DPS SAS token signed with the group key, se=\(Self.fixedExpiry) (the write-up's example):")
        print("   \(SASToken.string(for: registration, key: groupKey, expiry: Self.fixedExpiry, keyName: "registration"))")

        let credential = SymmetricKeyCredential(key: deviceKey, keyName: "registration")
        let issued = try credential.issueToken(for: registration)
        print("3. DPS SAS token from the derived key, valid one hour (renew after \(issued.renewAt - issued.issuedAt) s):")
        print("   \(issued.token.secretValue)")

        let hubCredential = SymmetricKeyCredential(key: deviceKey)
        let hubToken = try hubCredential.issueToken(for: .device(hubHost: "example-hub.azure-devices.net", deviceId: Self.registrationId))
        print("4. IoT Hub SAS token for the device (no skn), as logged (redacted):")
        print("   \(hubToken.token)")
        print("done in \(clock.now - start)")
    }
}
