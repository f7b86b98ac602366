import ArgumentParser
import AzureIoTCore
import HubMQTT

/// Options shared by `send` and `listen`.
struct HubConnectionOptions: ParsableArguments {
    @Option(help: "The device (or module) connection string.")
    var connectionString: String

    @Option(help: "Connect TLS to this IoT Edge gateway (overrides GatewayHostName).")
    var gatewayHost: String?

    @Option(help: "PEM file with the CA to trust (an Edge root CA) instead of the system store.")
    var caFile: String?

    @Option(help: "PEM certificate (leaf first) for x509=true connection strings.")
    var cert: String?

    @Option(help: "PEM private key for --cert.")
    var certKey: String?

    @Option(help: "The MQTT port.")
    var port: Int = 8883

    func configuration() throws -> HubMQTTConfiguration {
        var connection = try ConnectionString(parsing: self.connectionString)
        if let gatewayHost { connection.gatewayHostName = gatewayHost }
        let identity = try self.cert.map { try X509Identity(certificateFile: $0, privateKeyFile: self.certKey ?? $0) }
        return try HubMQTTConfiguration(
            connectionString: connection, x509Identity: identity, trustRoots: self.caFile.map { .pemFile($0) } ?? .system, port: self.port
        )
    }
}
