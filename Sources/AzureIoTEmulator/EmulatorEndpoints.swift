/// What a client needs to use a running emulator, printed as one JSON object by `azure-iot emulator`.
///
/// It holds the configured keys and connection strings on purpose: they are test credentials of a local emulator.
public struct EmulatorEndpoints: Sendable, Codable {
    /// A listening address.
    public struct Endpoint: Sendable, Codable {
        /// The loopback address.
        public var host: String
        /// The port.
        public var port: Int
    }

    /// A device's credentials.
    public struct DeviceCredentials: Sendable, Codable {
        /// The device id.
        public var deviceId: String
        /// The module id, for module identities.
        public var moduleId: String?
        /// Its key (base64), if it uses SAS.
        public var primaryKey: String?
        /// `HostName=…;DeviceId=…;SharedAccessKey=…;GatewayHostName=…` (X.509 devices: `x509=true`).
        public var connectionString: String
    }

    /// An enrollment's credentials.
    public struct EnrollmentCredentials: Sendable, Codable {
        /// The registration id (individual) or group name.
        public var name: String
        /// `individual` or `group`.
        public var kind: String
        /// The key (base64), for symmetric key attestation.
        public var primaryKey: String?
    }

    /// A shared access policy's credentials, for backends.
    public struct PolicyCredentials: Sendable, Codable {
        /// The policy's name (`SharedAccessKeyName`, `skn`).
        public var keyName: String
        /// Its rights, e.g. `RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect`.
        public var rights: String
        /// Its primary key (base64).
        public var primaryKey: String
        /// Its secondary key (base64).
        public var secondaryKey: String
        /// `HostName={host}:{service port};SharedAccessKeyName=…;SharedAccessKey=…`, as Azure's service SDKs take it.
        public var connectionString: String
    }

    /// The Event Hub-compatible endpoint (IoT Hub's built-in `messages/events`), on the AMQP port.
    public struct EventHubEndpoint: Sendable, Codable {
        /// The event hub's name (`EntityPath`): the hub's short name.
        public var name: String
        /// Partition ids `0…partitionCount-1`.
        public var partitionCount: Int
        /// Consumer groups, `$Default` first.
        public var consumerGroups: [String]
        /// `Endpoint=sb://{host}:{amqp port}/;SharedAccessKeyName=iothubowner;SharedAccessKey=…;EntityPath={name}`, as
        /// Azure's Event Hubs SDKs take it (trust the emulator's CA, e.g. `connection_verify` in Python).
        public var connectionString: String?
        /// The same with `UseDevelopmentEmulator=true`, on the plain AMQP port (no TLS), when it is on.
        public var developmentConnectionString: String?
    }

    /// The IoT Edge device the emulator serves as edgeHub, and the environment each of its modules is started with.
    public struct EdgeEndpoint: Sendable, Codable {
        /// The Edge device's id.
        public var deviceId: String
        /// `unix:///…/workload.sock`: the workload API.
        public var workloadURI: String
        /// Per module id, its `IOTEDGE_*` variables, as edgeAgent would set them.
        public var modules: [String: [String: String]]
    }

    /// The hub's short name.
    public var hubName: String
    /// `{hubName}.azure-devices.net`, the name in SAS `sr`, MQTT usernames and `assignedHub`.
    public var hubHost: String
    /// DPS REST over HTTPS.
    public var dps: Endpoint
    /// DPS over MQTT/TLS (`$dps/registrations/…` topics).
    public var dpsMQTT: Endpoint
    /// DPS over MQTT or AMQP in a WebSocket (`/$iothub/websocket`, sub-protocol `mqtt` or `AMQPWSB10`).
    public var dpsWebSockets: Endpoint
    /// DPS over AMQP/TLS (`{idScope}/registrations/{registrationId}` links).
    public var dpsAMQP: Endpoint?
    /// IoT Hub over MQTT/TLS.
    public var mqtt: Endpoint
    /// IoT Hub over AMQP/TLS.
    public var amqp: Endpoint
    /// AMQP without TLS (Event Hubs clients' development mode), when ``EmulatorConfiguration/amqpPlainPort`` is set.
    public var amqpPlain: Endpoint?
    /// IoT Hub over WebSockets/TLS (`wss://host:port/$iothub/websocket`): sub-protocol `mqtt` for MQTT, `AMQPWSB10`
    /// for AMQP.
    public var webSockets: Endpoint
    /// The service REST API over HTTPS (registry, twins, direct methods, query, statistics).
    public var service: Endpoint
    /// The minimal Azure Blob Storage endpoint (HTTPS) where device file uploads go.
    public var blob: Endpoint
    /// The `iothubowner` policy's connection string (or the first policy's), `nil` when the hub has no policy:
    /// what `IoTHubRegistryManager.from_connection_string` and the `azure-iot service` commands take.
    public var serviceConnectionString: String?
    /// Every shared access policy with its keys and connection string.
    public var sharedAccessPolicies: [PolicyCredentials]
    /// The Event Hub-compatible endpoint.
    public var eventHub: EventHubEndpoint
    /// The PEM file of the CA that signed the emulator's server certificate: trust it as an Edge root CA.
    public var caCertificatePath: String
    /// The DPS ID scope.
    public var idScope: String
    /// Enrollments and their keys.
    public var enrollments: [EnrollmentCredentials]
    /// The hub's devices and modules with connection strings.
    public var devices: [DeviceCredentials]
    /// The IoT Edge device and its modules' environment, when ``EmulatorConfiguration/edge`` is set.
    public var edge: EdgeEndpoint?
}
