import ArgumentParser
import AzureIoTCore

/// `azure-iot derive-key`: prints a group-enrollment device key.
struct DeriveKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "derive-key",
        abstract: "Print the device key of a registration id in a DPS symmetric-key group enrollment."
    )

    @Option(help: "The enrollment group's key, base64.")
    var groupKey: String

    @Option(help: "The device's registration id.")
    var registrationId: String

    func run() throws {
        print(try DerivedKey.compute(groupKey: self.groupKey, registrationId: self.registrationId))
    }
}
