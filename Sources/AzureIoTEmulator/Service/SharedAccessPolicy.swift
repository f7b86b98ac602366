import Foundation

/// A shared access policy of the emulated hub, as in the Azure portal: a key name, two keys and rights. Backends
/// sign service SAS tokens with it (`sr` = the hub host, `skn` = the name).
public struct SharedAccessPolicy: Sendable, Codable, Equatable {
    /// What a policy allows (IoT Hub's permission names).
    public struct Rights: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
        /// The bits of the set.
        public let rawValue: Int

        /// A set from its raw bits.
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Read the identity registry: devices, modules, twins, queries, statistics.
        public static let registryRead = Rights(rawValue: 1 << 0)
        /// Create, update and delete identities.
        public static let registryWrite = Rights(rawValue: 1 << 1)
        /// The service-facing endpoints: twins, direct methods, cloud-to-device messages, feedback, telemetry.
        public static let serviceConnect = Rights(rawValue: 1 << 2)
        /// The device-facing endpoints on behalf of any device.
        public static let deviceConnect = Rights(rawValue: 1 << 3)

        private static let names: [(Rights, String)] = [
            (.registryRead, "RegistryRead"), (.registryWrite, "RegistryWrite"),
            (.serviceConnect, "ServiceConnect"), (.deviceConnect, "DeviceConnect"),
        ]

        /// `RegistryRead, RegistryWrite`: the form the Azure portal and ARM use.
        public var description: String {
            Self.names.filter { self.contains($0.0) }.map(\.1).joined(separator: ", ")
        }

        /// Reads the comma-separated form (`"RegistryWrite, ServiceConnect"`); names compare case-insensitively.
        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            var rights: Rights = []
            for part in text.split(separator: ",") {
                let name = part.trimmingCharacters(in: .whitespaces).lowercased()
                guard let found = Self.names.first(where: { $0.1.lowercased() == name }) else {
                    throw DecodingError.dataCorrupted(
                        .init(codingPath: decoder.codingPath, debugDescription: "unknown right '\(name)'")
                    )
                }
                rights.insert(found.0)
            }
            self = rights
        }

        /// Writes the comma-separated form.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(self.description)
        }
    }

    /// The policy's name: `skn` in tokens, `SharedAccessKeyName` in connection strings.
    public var keyName: String
    /// Its primary key (base64); random when absent at start.
    public var primaryKey: String?
    /// Its secondary key (base64); random when absent at start.
    public var secondaryKey: String?
    /// What it allows.
    public var rights: Rights

    /// A policy.
    public init(keyName: String, primaryKey: String? = nil, secondaryKey: String? = nil, rights: Rights) {
        self.keyName = keyName
        self.primaryKey = primaryKey
        self.secondaryKey = secondaryKey
        self.rights = rights
    }

    /// The five policies every IoT hub starts with, keys to be generated: `iothubowner` (all rights), `service`,
    /// `device`, `registryRead` and `registryReadWrite`.
    public static let defaults: [SharedAccessPolicy] = [
        SharedAccessPolicy(
            keyName: "iothubowner",
            rights: [.registryRead, .registryWrite, .serviceConnect, .deviceConnect]
        ),
        SharedAccessPolicy(keyName: "service", rights: [.serviceConnect]),
        SharedAccessPolicy(keyName: "device", rights: [.deviceConnect]),
        SharedAccessPolicy(keyName: "registryRead", rights: [.registryRead]),
        SharedAccessPolicy(keyName: "registryReadWrite", rights: [.registryRead, .registryWrite]),
    ]
}
