import ArgumentParser
import AzureIoTCore

/// `azure-iot sas`: prints a SAS token.
struct SASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sas",
        abstract: "Print a SharedAccessSignature token for a resource.",
        discussion: """
            Resources: '{hub}.azure-devices.net/devices/{id}' (device key, no --policy), \
            '{hub}.azure-devices.net/devices/{id}/modules/{m}', or '{scope}/registrations/{id}' (DPS, --policy registration).
            """
    )

    @Option(help: "The resource URI, unencoded (e.g. 0ne00057505/registrations/dev1).")
    var resource: String

    @Option(help: "The shared access key, base64.")
    var key: String

    @Option(parsing: .unconditional, help: "Absolute expiry in seconds since 1970 (UTC).")
    var expiry: UInt64?

    @Option(
        parsing: .unconditional,
        help: "Lifetime in seconds from now (instead of --expiry), 1 to 3153600000 (100 years)."
    )
    var ttl: UInt64?

    static let ttlRange: ClosedRange<UInt64> = 1...3_153_600_000

    @Option(help: "The key name (skn): 'registration' for DPS, a policy name for policy keys.")
    var policy: String?

    func validate() throws {
        guard (self.expiry == nil) != (self.ttl == nil) else {
            throw ValidationError("pass exactly one of --expiry or --ttl")
        }
        guard !self.resource.isEmpty else { throw ValidationError("--resource is empty") }
        if let ttl, !Self.ttlRange.contains(ttl) {
            throw ValidationError(
                "--ttl must be \(Self.ttlRange.lowerBound)...\(Self.ttlRange.upperBound) seconds, got \(ttl)"
            )
        }
    }

    func run() throws {
        let key = try SymmetricKey(base64: self.key)
        let expiry = self.expiry ?? UnixTime.now() + (self.ttl ?? 0)
        print(SASToken.string(for: SASResource(uri: self.resource), key: key, expiry: expiry, keyName: self.policy))
    }
}
