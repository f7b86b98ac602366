import ArgumentParser
import AzureIoTCore
import AzureIoTEdge
import AzureIoTProxy
import HubAMQP
import HubMQTT

/// Options shared by `send` and `listen`.
struct HubConnectionOptions: ParsableArguments {
    @Option(help: "The device (or module) connection string.")
    var connectionString: String?

    @Flag(
        help: """
            Run as the IoT Edge module the IOTEDGE_* environment describes (instead of --connection-string): tokens \
            signed and the trust bundle read through the workload API, the connection to IOTEDGE_GATEWAYHOSTNAME (MQTT).
            """
    )
    var edge = false

    @Option(help: "Connect TLS to this IoT Edge gateway (overrides GatewayHostName).")
    var gatewayHost: String?

    @Option(help: "PEM file with the CA to trust (an Edge root CA) instead of the system store.")
    var caFile: String?

    @Option(help: "PEM certificate (leaf first) for x509=true connection strings.")
    var cert: String?

    @Option(help: "PEM private key for --cert.")
    var certKey: String?

    @Option(
        parsing: .unconditional,
        help: "The port, 1 to 65535 (default 8883 for MQTT, 5671 for AMQP, 443 over WebSockets)."
    )
    var port: Int?

    @Option(
        help: """
            The transport: mqtt, amqp, or mqtt-ws/amqp-ws (the protocol in a WebSocket at /$iothub/websocket, port             443, for networks that let only HTTPS out).
            """
    )
    var transport: String?

    @Option(help: "The protocol, mqtt or amqp (the same as --transport without WebSockets).")
    var `protocol`: String?

    /// `--transport`, else `--protocol`, else MQTT.
    var transportName: String { self.transport ?? self.protocol ?? "mqtt" }
    /// Whether the transport is AMQP (directly or in a WebSocket).
    var usesAMQP: Bool { self.transportName.hasPrefix("amqp") }
    /// Whether the protocol runs in a WebSocket.
    var usesWebSockets: Bool { self.transportName.hasSuffix("-ws") }

    @Option(
        help: """
            Tunnel through this proxy (http://user:pass@host:port, https://…, socks5://…, socks5h://…). Without it, \
            https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY and no_proxy/NO_PROXY are followed as curl does.
            """
    )
    var proxy: String?

    /// The proxy opener: `--proxy`, else the environment when it names a proxy, else none (a direct connection).
    func connectionOpener() throws -> (any ConnectionOpener)? {
        if let proxy { return try ProxyConnectionOpener(url: proxy) }
        return ProxyConnectionOpener.environmentNamesProxy ? ProxyConnectionOpener.environment : nil
    }

    func validateProtocol() throws {
        switch (self.connectionString, self.edge) {
        case (nil, false): throw ValidationError("give --connection-string, or --edge inside an IoT Edge module")
        case (.some, true): throw ValidationError("give --connection-string or --edge, not both")
        default: break
        }
        if self.edge, self.transportName != "mqtt" {
            throw ValidationError("--edge connects over MQTT (--transport mqtt)")
        }
        if let name = self.protocol, name != "mqtt" && name != "amqp" {
            throw ValidationError("--protocol takes mqtt or amqp")
        }
        if let name = self.transport, !["mqtt", "mqtt-ws", "amqp", "amqp-ws"].contains(name) {
            throw ValidationError("--transport takes mqtt, mqtt-ws, amqp or amqp-ws")
        }
        if self.transport != nil && self.protocol != nil {
            throw ValidationError("give --transport or --protocol, not both")
        }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be 1...65535, got \(port)") }
    }

    /// The connection string, parsed (`validateProtocol` made sure there is one unless `--edge`).
    func parsedConnectionString() throws -> ConnectionString {
        guard let text = self.connectionString else { throw ValidationError("--connection-string is required") }
        return try ConnectionString(parsing: text)
    }

    /// The MQTT configuration: from the connection string, or from the IoT Edge environment with `--edge`.
    func configuration() async throws -> HubMQTTConfiguration {
        if self.edge { return try await self.edgeConfiguration() }
        var connection = try self.parsedConnectionString()
        if let gatewayHost { connection.gatewayHostName = gatewayHost }
        let identity = try self.cert.map { try X509Identity(certificateFile: $0, privateKeyFile: self.certKey ?? $0) }
        var configuration = try HubMQTTConfiguration(
            connectionString: connection,
            x509Identity: identity,
            trustRoots: self.caFile.map { .pemFile($0) } ?? .system,
            port: self.port ?? (self.usesWebSockets ? 443 : 8883)
        )
        configuration.webSockets = self.usesWebSockets
        configuration.connectionOpener = try self.connectionOpener()
        return configuration
    }

    /// An IoT Edge module's MQTT configuration from its `IOTEDGE_*` environment.
    private func edgeConfiguration() async throws -> HubMQTTConfiguration {
        let environment = try EdgeEnvironment()
        let bundle = try await WorkloadClient(environment: environment).trustBundle()
        var configuration = HubMQTTConfiguration(
            identity: HubMQTTIdentity(
                hubHost: environment.hubHostName,
                deviceId: environment.deviceId,
                moduleId: environment.moduleId
            ),
            authentication: .sas(WorkloadTokenSource(environment: environment)),
            gatewayHostName: self.gatewayHost ?? environment.gatewayHostName,
            port: self.port ?? 8883,
            trustRoots: self.caFile.map { .pemFile($0) } ?? .pem(bundle)
        )
        configuration.connectionOpener = try self.connectionOpener()
        return configuration
    }

    /// The AMQP configuration: SASL PLAIN for `SharedAccessKey`/`SharedAccessSignature` connection strings, the
    /// client certificate with SASL EXTERNAL for `x509=true` (with `--cert`/`--cert-key`).
    func amqpConfiguration() throws -> HubAMQPConfiguration {
        let connection = try self.parsedConnectionString()
        guard let deviceId = connection.deviceId else { throw ValidationError("the connection string has no DeviceId") }
        let authentication: HubAMQPConfiguration.Authentication
        if let source = connection.tokenSource() {
            authentication = .saslPlain(source)
        } else if let cert {
            authentication = .x509(try X509Identity(certificateFile: cert, privateKeyFile: self.certKey ?? cert))
        } else {
            throw ValidationError("AMQP needs SharedAccessKey, SharedAccessSignature, or x509=true with --cert")
        }
        var configuration = HubAMQPConfiguration(
            hubHost: connection.hostName,
            deviceId: deviceId,
            moduleId: connection.moduleId,
            authentication: authentication,
            gatewayHostName: self.gatewayHost ?? connection.gatewayHostName,
            port: self.port ?? (self.usesWebSockets ? 443 : 5671),
            trustRoots: self.caFile.map { .pemFile($0) } ?? .system
        )
        configuration.webSockets = self.usesWebSockets
        configuration.connectionOpener = try self.connectionOpener()
        return configuration
    }
}
