public import AzureIoTCore
import AzureIoTTesting
import Foundation

/// Everything the emulator serves: one hub with its devices and modules, one DPS instance with its enrollments, and
/// where to listen. Loaded from JSON (`azure-iot emulator --config FILE`) or built in code.
///
/// Keys are base64 strings as in the Azure portal. A device or enrollment without a key and without X.509 gets a
/// random key when the emulator starts (it is printed in the endpoints JSON).
public struct EmulatorConfiguration: Sendable, Codable {
    /// The hub's short name; its host name is `{hubName}.azure-devices.net`, used in SAS `sr`, MQTT usernames and
    /// DPS assignments, while clients reach it through the loopback address (like an IoT Edge gateway).
    public var hubName: String
    /// The address to listen on (default `127.0.0.1`).
    public var listenAddress: String
    /// Ports; 0 picks a free one.
    public var dpsPort: Int
    /// The MQTT-over-TLS port (IoT Hub's is 8883); 0 picks a free one.
    public var mqttPort: Int
    /// The AMQP-over-TLS port (IoT Hub's is 5671); 0 picks a free one.
    public var amqpPort: Int
    /// The port serving MQTT and AMQP over WebSockets at `/$iothub/websocket` (IoT Hub's is 443; sub-protocols `mqtt`
    /// and `AMQPWSB10`); 0 picks a free one.
    public var webSocketPort: Int = 0
    /// The port of DPS over MQTT/TLS (`$dps/registrations/…`; DPS's is 8883); 0 picks a free one.
    public var dpsMQTTPort: Int = 0
    /// The port of DPS over MQTT in a WebSocket (`/$iothub/websocket`, sub-protocol `mqtt`; DPS's is 443); 0 picks
    /// a free one.
    public var dpsWebSocketPort: Int = 0
    /// DPS over AMQP/TLS (0: any free port; Azure's SDKs use 5671).
    public var dpsAMQPPort: Int = 0
    /// The port of the service REST API over HTTPS (registry, twins, direct methods, statistics; IoT Hub's is 443);
    /// 0 picks a free one.
    public var servicePort: Int = 0
    /// The hub's shared access policies for backends; keys left out are generated at start.
    public var sharedAccessPolicies: [SharedAccessPolicy] = SharedAccessPolicy.defaults
    /// The port of the minimal Azure Blob Storage endpoint that device file uploads go to (HTTPS); 0 picks a free
    /// one.
    public var blobPort: Int = 0
    /// A port for AMQP without TLS, off (`nil`) by default: what Azure's Event Hubs clients dial in their development
    /// mode (`UseDevelopmentEmulator=true` in the connection string; 5672 unless the endpoint names a port). It
    /// serves the same as the AMQP port (0 picks a free one). Loopback only: credentials cross it in the clear.
    public var amqpPlainPort: Int?
    /// The Event Hub-compatible endpoint's partitions, consumer groups and retention.
    public var eventHub = EventHubSettings()
    /// Where the emulator keeps its state across restarts (`--data-dir`): the registry, twins, DPS registrations,
    /// pending cloud-to-device messages, retained telemetry, generated keys and its CA, in SQLite. `nil` (the
    /// default): everything stays in memory and is lost when the emulator stops.
    public var dataDirectory: String?
    /// Where the emulator writes its CA certificate (`emulator-ca.pem`); default: a new temporary directory.
    public var stateDirectory: String?
    /// Seconds DPS asks clients to wait (`Retry-After`) while a registration is `assigning` (default 1).
    public var provisioningRetryAfterSeconds: Int
    /// The hub's devices.
    public var devices: [Device]
    /// The DPS instance.
    public var provisioning: Provisioning
    /// What one peer may make the emulator hold (connections, links, buffered bytes, timers).
    public var limits: EmulatorLimits
    /// An IoT Edge device the emulator plays edgeHub and the workload API for, or `nil`.
    public var edge: Edge?

    /// An IoT Edge device: one of ``devices``, whose modules run as Edge modules. The emulator serves the workload API
    /// for them on a unix socket, routes their outputs to each other's inputs or upstream, and
    /// ``IoTEmulator/edgeEnvironment(moduleId:)`` gives the environment each needs.
    public struct Edge: Sendable, Codable {
        /// The Edge device's id (a device in ``EmulatorConfiguration/devices``, with the modules).
        public var deviceId: String
        /// Where the workload API listens; `nil` puts `workload.sock` in the state directory.
        public var workloadSocketPath: String?
        /// edgeHub's routes by name, e.g. `"toB": "FROM /messages/modules/a/outputs/x INTO
        /// BrokeredEndpoint(\"/modules/b/inputs/y\")"`; empty means edgeHub's default, `FROM /* INTO $upstream`.
        public var routes: [String: String]

        /// An Edge device.
        public init(deviceId: String, workloadSocketPath: String? = nil, routes: [String: String] = [:]) {
            self.deviceId = deviceId
            self.workloadSocketPath = workloadSocketPath
            self.routes = routes
        }

        /// The routes parsed, in name order; throws naming the first that cannot be used.
        func parsedRoutes() throws(AzureIoTError) -> [EdgeRoute] {
            guard !self.routes.isEmpty else { return EdgeRoute.defaultRoutes }
            var parsed: [EdgeRoute] = []
            for (name, text) in self.routes.sorted(by: { $0.key < $1.key }) {
                do throws(EdgeRoute.ParseError) {
                    parsed.append(try EdgeRoute(parsing: text))
                } catch {
                    throw AzureIoTError(.invalidArgument, "the Edge route '\(name.prefix(64))': \(error)")
                }
            }
            return parsed
        }
    }

    /// The Event Hub-compatible endpoint (IoT Hub's built-in `messages/events`), served on the AMQP port.
    public struct EventHubSettings: Sendable, Codable, Equatable {
        /// Partitions (IoT Hub: 2 to 128; 4 by default here); a device's messages always go to the same one.
        public var partitionCount = 4
        /// Consumer groups besides `$Default`.
        public var consumerGroups: [String] = []
        /// Events kept per partition; the oldest go first past this.
        public var retainedEventsPerPartition = 10_000
        /// How long events are kept, in seconds (IoT Hub's default: one day).
        public var retentionSeconds = 86_400

        /// The defaults.
        public init() {}

        private enum CodingKeys: String, CodingKey {
            case partitionCount, consumerGroups, retainedEventsPerPartition, retentionSeconds
        }

        /// Decodes the settings; every field has a default.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.partitionCount = try container.decodeIfPresent(Int.self, forKey: .partitionCount) ?? 4
            self.consumerGroups = try container.decodeIfPresent([String].self, forKey: .consumerGroups) ?? []
            self.retainedEventsPerPartition =
                try container.decodeIfPresent(Int.self, forKey: .retainedEventsPerPartition) ?? 10_000
            self.retentionSeconds = try container.decodeIfPresent(Int.self, forKey: .retentionSeconds) ?? 86_400
        }

        func validate() throws(AzureIoTError) {
            guard (1...128).contains(self.partitionCount) else {
                throw AzureIoTError(.invalidArgument, "eventHub.partitionCount must be in 1...128")
            }
            guard (1...1_000_000).contains(self.retainedEventsPerPartition) else {
                throw AzureIoTError(.invalidArgument, "eventHub.retainedEventsPerPartition must be in 1...1000000")
            }
            guard (1...604_800).contains(self.retentionSeconds) else {
                throw AzureIoTError(.invalidArgument, "eventHub.retentionSeconds must be in 1...604800 (7 days)")
            }
            for group in self.consumerGroups
            where group.isEmpty || group.utf8.count > 50
                || !group.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.$".contains($0)) })
            {
                throw AzureIoTError(
                    .invalidArgument,
                    "a consumer group name must be 1 to 50 letters, digits, '-', '_', '.' or '$'"
                )
            }
        }
    }

    /// A device identity in the hub.
    public struct Device: Sendable, Codable {
        /// The device id.
        public var deviceId: String
        /// Its symmetric key (base64), when it authenticates with SAS.
        public var primaryKey: String?
        /// The SHA-1 or SHA-256 thumbprint (hex) of its certificate, when it authenticates with X.509.
        public var x509Thumbprint: String?
        /// A CA in PEM (root or intermediate) that signs its certificate, for CA-signed X.509 devices (the
        /// certificate's CN must be the device id).
        public var x509CertificateAuthorityPEM: String?
        /// Its modules.
        public var modules: [Module]?
        /// Desired properties the twin starts with.
        public var initialDesiredProperties: JSONValue?

        /// A device.
        public init(
            deviceId: String,
            primaryKey: String? = nil,
            x509Thumbprint: String? = nil,
            x509CertificateAuthorityPEM: String? = nil,
            modules: [Module]? = nil,
            initialDesiredProperties: JSONValue? = nil
        ) {
            self.deviceId = deviceId
            self.primaryKey = primaryKey
            self.x509Thumbprint = x509Thumbprint
            self.x509CertificateAuthorityPEM = x509CertificateAuthorityPEM
            self.modules = modules
            self.initialDesiredProperties = initialDesiredProperties
        }
    }

    /// A module identity of a device.
    public struct Module: Sendable, Codable {
        /// The module id.
        public var moduleId: String
        /// Its symmetric key (base64).
        public var primaryKey: String?

        /// A module.
        public init(moduleId: String, primaryKey: String? = nil) {
            self.moduleId = moduleId
            self.primaryKey = primaryKey
        }
    }

    /// The DPS instance: its ID scope and enrollments. Every registration is allocated to the emulated hub.
    public struct Provisioning: Sendable, Codable {
        /// The ID scope, e.g. `0ne00EMU1`.
        public var idScope: String
        /// Individual enrollments.
        public var individualEnrollments: [IndividualEnrollment]
        /// Enrollment groups.
        public var enrollmentGroups: [EnrollmentGroup]

        /// A DPS configuration.
        public init(
            idScope: String,
            individualEnrollments: [IndividualEnrollment] = [],
            enrollmentGroups: [EnrollmentGroup] = []
        ) {
            self.idScope = idScope
            self.individualEnrollments = individualEnrollments
            self.enrollmentGroups = enrollmentGroups
        }

        private enum CodingKeys: String, CodingKey { case idScope, individualEnrollments, enrollmentGroups }

        /// Decodes the DPS section; both enrollment lists may be left out.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.idScope = try container.decode(String.self, forKey: .idScope)
            self.individualEnrollments =
                try container.decodeIfPresent([IndividualEnrollment].self, forKey: .individualEnrollments) ?? []
            self.enrollmentGroups =
                try container.decodeIfPresent([EnrollmentGroup].self, forKey: .enrollmentGroups) ?? []
        }
    }

    /// An individual enrollment: one registration id with its own key or certificate.
    public struct IndividualEnrollment: Sendable, Codable {
        /// The registration id.
        public var registrationId: String
        /// The symmetric key (base64), for SAS attestation.
        public var primaryKey: String?
        /// The device certificate's SHA-1 or SHA-256 thumbprint, for X.509 attestation.
        public var certificateThumbprint: String?
        /// The device id to create (default: the registration id).
        public var deviceId: String?
        /// `false` makes DPS answer `disabled`.
        public var enabled: Bool?
        /// Desired properties given to the device's twin when it is created.
        public var initialDesiredProperties: JSONValue?

        /// An individual enrollment.
        public init(
            registrationId: String,
            primaryKey: String? = nil,
            certificateThumbprint: String? = nil,
            deviceId: String? = nil,
            enabled: Bool? = nil,
            initialDesiredProperties: JSONValue? = nil
        ) {
            self.registrationId = registrationId
            self.primaryKey = primaryKey
            self.certificateThumbprint = certificateThumbprint
            self.deviceId = deviceId
            self.enabled = enabled
            self.initialDesiredProperties = initialDesiredProperties
        }
    }

    /// An enrollment group: devices prove membership with a key derived from the group key, or with a certificate
    /// chaining to the group's (root or intermediate) CA.
    public struct EnrollmentGroup: Sendable, Codable {
        /// The group's name (`enrollmentGroupId`).
        public var name: String
        /// The group key (base64), for symmetric key attestation.
        public var primaryKey: String?
        /// The group CA in PEM (root or intermediate), for X.509 attestation.
        public var caCertificatePEM: String?
        /// A file holding the group CA in PEM, instead of ``caCertificatePEM``.
        public var caCertificateFile: String?
        /// `false` makes DPS answer `disabled` for every member.
        public var enabled: Bool?
        /// Desired properties given to every member's twin.
        public var initialDesiredProperties: JSONValue?

        /// An enrollment group.
        public init(
            name: String,
            primaryKey: String? = nil,
            caCertificatePEM: String? = nil,
            caCertificateFile: String? = nil,
            enabled: Bool? = nil,
            initialDesiredProperties: JSONValue? = nil
        ) {
            self.name = name
            self.primaryKey = primaryKey
            self.caCertificatePEM = caCertificatePEM
            self.caCertificateFile = caCertificateFile
            self.enabled = enabled
            self.initialDesiredProperties = initialDesiredProperties
        }
    }

    /// A configuration.
    public init(
        hubName: String,
        listenAddress: String = "127.0.0.1",
        dpsPort: Int = 0,
        mqttPort: Int = 0,
        amqpPort: Int = 0,
        webSocketPort: Int = 0,
        stateDirectory: String? = nil,
        provisioningRetryAfterSeconds: Int = 1,
        devices: [Device] = [],
        provisioning: Provisioning,
        limits: EmulatorLimits = EmulatorLimits()
    ) {
        self.limits = limits
        self.hubName = hubName
        self.listenAddress = listenAddress
        self.dpsPort = dpsPort
        self.mqttPort = mqttPort
        self.amqpPort = amqpPort
        self.webSocketPort = webSocketPort
        self.stateDirectory = stateDirectory
        self.provisioningRetryAfterSeconds = provisioningRetryAfterSeconds
        self.devices = devices
        self.provisioning = provisioning
    }

    private enum CodingKeys: String, CodingKey {
        case hubName, listenAddress, dpsPort, mqttPort, amqpPort, webSocketPort, dpsMQTTPort, dpsWebSocketPort,
            dpsAMQPPort,
            servicePort, blobPort, amqpPlainPort, sharedAccessPolicies, eventHub, dataDirectory, stateDirectory,
            provisioningRetryAfterSeconds,
            devices, provisioning, limits, edge
    }

    /// Decodes a configuration; every field but `hubName` and `provisioning.idScope` has a default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.hubName = try container.decode(String.self, forKey: .hubName)
        self.listenAddress = try container.decodeIfPresent(String.self, forKey: .listenAddress) ?? "127.0.0.1"
        self.dpsPort = try container.decodeIfPresent(Int.self, forKey: .dpsPort) ?? 0
        self.mqttPort = try container.decodeIfPresent(Int.self, forKey: .mqttPort) ?? 0
        self.amqpPort = try container.decodeIfPresent(Int.self, forKey: .amqpPort) ?? 0
        self.webSocketPort = try container.decodeIfPresent(Int.self, forKey: .webSocketPort) ?? 0
        self.dpsMQTTPort = try container.decodeIfPresent(Int.self, forKey: .dpsMQTTPort) ?? 0
        self.dpsWebSocketPort = try container.decodeIfPresent(Int.self, forKey: .dpsWebSocketPort) ?? 0
        self.dpsAMQPPort = try container.decodeIfPresent(Int.self, forKey: .dpsAMQPPort) ?? 0
        self.servicePort = try container.decodeIfPresent(Int.self, forKey: .servicePort) ?? 0
        self.amqpPlainPort = try container.decodeIfPresent(Int.self, forKey: .amqpPlainPort)
        self.blobPort = try container.decodeIfPresent(Int.self, forKey: .blobPort) ?? 0
        self.eventHub = try container.decodeIfPresent(EventHubSettings.self, forKey: .eventHub) ?? EventHubSettings()
        self.sharedAccessPolicies =
            try container.decodeIfPresent([SharedAccessPolicy].self, forKey: .sharedAccessPolicies)
            ?? SharedAccessPolicy.defaults
        self.stateDirectory = try container.decodeIfPresent(String.self, forKey: .stateDirectory)
        self.dataDirectory = try container.decodeIfPresent(String.self, forKey: .dataDirectory)
        self.provisioningRetryAfterSeconds =
            try container.decodeIfPresent(Int.self, forKey: .provisioningRetryAfterSeconds) ?? 1
        self.devices = try container.decodeIfPresent([Device].self, forKey: .devices) ?? []
        self.provisioning = try container.decode(Provisioning.self, forKey: .provisioning)
        self.limits = try container.decodeIfPresent(EmulatorLimits.self, forKey: .limits) ?? EmulatorLimits()
        self.edge = try container.decodeIfPresent(Edge.self, forKey: .edge)
    }

    /// Checks what JSON cannot: ports in 0...65535 (0 picks one), a `Retry-After` in 0...3600 s, and the limits'
    /// ranges. Throws `AzureIoTError.invalidArgument` naming the field.
    public func validate() throws(AzureIoTError) {
        let ports = [
            ("dpsPort", self.dpsPort), ("mqttPort", self.mqttPort), ("amqpPort", self.amqpPort),
            ("webSocketPort", self.webSocketPort), ("dpsMQTTPort", self.dpsMQTTPort),
            ("dpsWebSocketPort", self.dpsWebSocketPort), ("dpsAMQPPort", self.dpsAMQPPort),
            ("servicePort", self.servicePort),
            ("amqpPlainPort", self.amqpPlainPort ?? 0), ("blobPort", self.blobPort),
        ]
        for (name, port) in ports where !(0...65535).contains(port) {
            throw AzureIoTError(.invalidArgument, "\(name) is \(port); it must be in 0...65535 (0 picks a free port)")
        }
        guard (0...3600).contains(self.provisioningRetryAfterSeconds) else {
            throw AzureIoTError(
                .invalidArgument,
                "provisioningRetryAfterSeconds is \(self.provisioningRetryAfterSeconds); it must be in 0...3600"
            )
        }
        var policyNames: Set<String> = []
        for policy in self.sharedAccessPolicies {
            guard !policy.keyName.isEmpty, policy.keyName.utf8.count <= 64,
                policy.keyName.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw AzureIoTError(
                    .invalidArgument,
                    "a shared access policy name must be 1 to 64 letters, digits, '-', '_' or '.'"
                )
            }
            guard policyNames.insert(policy.keyName.lowercased()).inserted else {
                throw AzureIoTError(.invalidArgument, "the shared access policy '\(policy.keyName)' is listed twice")
            }
            for key in [policy.primaryKey, policy.secondaryKey].compactMap({ $0 }) {
                do throws(AzureIoTError) {
                    _ = try SymmetricKey(base64: key)
                } catch {
                    throw AzureIoTError(
                        .invalidArgument,
                        "a key of the shared access policy '\(policy.keyName)' is not base64"
                    )
                }
            }
        }
        try self.eventHub.validate()
        try self.limits.validate()
        if let edge = self.edge {
            guard self.devices.contains(where: { $0.deviceId == edge.deviceId }) else {
                throw AzureIoTError(.invalidArgument, "the Edge device '\(edge.deviceId)' is not among the devices")
            }
            if let path = edge.workloadSocketPath, !path.hasPrefix("/") || path.utf8.count >= 108 {
                throw AzureIoTError(.invalidArgument, "workloadSocketPath must be absolute and under 108 bytes")
            }
            _ = try edge.parsedRoutes()
        }
    }

    /// The documented default: hub `emulator-hub`, device `thermostat-1` (symmetric key) with module `sensor`,
    /// ID scope `0ne00EMU01`, an individual enrollment `individual-1` and a symmetric-key group `default-group`;
    /// keys are random per start. Ports are ephemeral.
    public static var `default`: EmulatorConfiguration {
        EmulatorConfiguration(
            hubName: "emulator-hub",
            devices: [
                Device(
                    deviceId: "thermostat-1",
                    modules: [Module(moduleId: "sensor")],
                    initialDesiredProperties: .object(["targetTemperature": .number(21)])
                )
            ],
            provisioning: Provisioning(
                idScope: "0ne00EMU01",
                individualEnrollments: [IndividualEnrollment(registrationId: "individual-1")],
                enrollmentGroups: [EnrollmentGroup(name: "default-group")]
            )
        )
    }

    /// Reads a JSON configuration file. Throws `AzureIoTError` `.fileNotReadable` or
    /// `.invalidArgument` naming the problem.
    public static func load(fromFile path: String) throws(AzureIoTError) -> EmulatorConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AzureIoTError(.fileNotReadable, "cannot read the emulator configuration at '\(path)'")
        }
        do {
            let configuration = try JSONDecoder().decode(EmulatorConfiguration.self, from: data)
            try configuration.validate()
            return configuration
        } catch let error as AzureIoTError {
            throw AzureIoTError(
                .invalidArgument,
                "the emulator configuration at '\(path)' is invalid: \(error.message)"
            )
        } catch let error as DecodingError {
            throw AzureIoTError(
                .invalidArgument,
                "the emulator configuration at '\(path)' is invalid: \(Self.describe(error))"
            )
        } catch {
            throw AzureIoTError(.invalidArgument, "the emulator configuration at '\(path)' is not JSON")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing '\(key.stringValue)' at '\(path(context))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "wrong value at '\(path(context))'"
        @unknown default: return "unreadable"
        }
    }

    /// `{hubName}.azure-devices.net`.
    public var hubHost: String { "\(self.hubName).azure-devices.net" }
}
