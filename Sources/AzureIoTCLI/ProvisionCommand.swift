import ArgumentParser
import AzureIoTCore
import AzureIoTProxy
import DPSClient
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `azure-iot provision`: registers a device with DPS over REST.
struct ProvisionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Register a device with the Device Provisioning Service and print the assigned hub.",
        discussion:
            "Attestation: --key (individual enrollment), --group-key (group; the device key is derived), or --cert with --cert-key (X.509; the registration id must be the certificate's CN)."
    )

    @Option(help: "The DPS ID scope.")
    var scope: String

    @Option(help: "The registration id.")
    var registrationId: String

    @Option(help: "Individual enrollment key, base64.")
    var key: String?

    @Option(help: "Group enrollment key, base64 (the device key is derived from it).")
    var groupKey: String?

    @Option(help: "PEM file with the device certificate (leaf first, then intermediates).")
    var cert: String?

    @Option(help: "PEM file with the certificate's private key.")
    var certKey: String?

    @Option(help: "Passphrase of an encrypted --cert-key.")
    var certPassphrase: String?

    @Option(help: "DPS endpoint HOST[:PORT].")
    var endpoint: String = RegistrationRoute.globalEndpoint

    @Option(help: "PEM file with the CA to trust instead of the system store.")
    var caFile: String?

    @Option(
        help:
            "Send the DPS requests through this proxy (http://user:pass@host:port, socks5h://…); default: https_proxy/no_proxy as curl reads them."
    )
    var proxy: String?

    @Option(
        help: """
            How the registration travels: https (REST, the default), mqtt ($dps topics, port 8883), amqp (port 5671), \
            or mqtt-ws / amqp-ws (the protocol in a WebSocket, port 443). A port in --endpoint wins.
            """
    )
    var transport: String = "https"

    @Option(
        help: """
            Have DPS issue the device a certificate: make a P-256 key pair and a certificate signing request (CN = the \
            registration id), send it with the registration (api-version 2025-07-01-preview), and write the key to \
            PREFIX.key.pem (mode 600) and the issued chain to PREFIX.pem.
            """
    )
    var csr: String?

    @Option(help: "The api-version to send.")
    var apiVersion: String = RegistrationRoute.defaultAPIVersion

    @Option(help: "A JSON payload for custom allocation.")
    var payload: String?

    @Option(parsing: .unconditional, help: "Give up after this many seconds, 1 to 86400.")
    var timeout: Int = 120

    func validate() throws {
        let chosen = [self.key != nil, self.groupKey != nil, self.cert != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("pass exactly one of --key, --group-key or --cert") }
        guard (self.cert == nil) == (self.certKey == nil) else {
            throw ValidationError("--cert and --cert-key go together")
        }
        guard ProvisioningClient.Transport(rawValue: self.transport) != nil else {
            throw ValidationError("--transport takes https, mqtt, mqtt-ws, amqp or amqp-ws")
        }
        guard (1...86_400).contains(self.timeout) else {
            throw ValidationError("--timeout must be 1...86400 seconds, got \(self.timeout)")
        }
    }

    func run() async throws {
        let attestation: ProvisioningClient.Attestation
        if let key {
            attestation = .symmetricKey(try SymmetricKey(base64: key))
        } else if let groupKey {
            attestation = .groupSymmetricKey(try SymmetricKey(base64: groupKey))
        } else {
            attestation = .x509(
                try X509Identity(
                    certificateFile: self.cert!,
                    privateKeyFile: self.certKey!,
                    passphrase: self.certPassphrase
                )
            )
        }
        var configuration = ProvisioningClient.Configuration(
            endpoint: self.endpoint,
            idScope: self.scope,
            registrationId: self.registrationId,
            attestation: attestation,
            apiVersion: self.apiVersion,
            trustRoots: self.caFile.map { .pemFile($0) } ?? .system
        )
        if let proxy { configuration.proxy = try ProxyConnectionOpener(url: proxy).checkedURL }
        configuration.transport = ProvisioningClient.Transport(rawValue: self.transport) ?? .https
        if self.csr != nil {
            configuration.certificateSigningRequest = try CertificateSigningRequest(commonName: self.registrationId)
        }
        let client = try ProvisioningClient(configuration: configuration)
        let clock = ContinuousClock()
        let start = clock.now
        let onStatus: @Sendable (RegistrationStatus) -> Void = { status in
            print("status: \(status) (+\(clock.now - start))")
        }
        let result: ProvisioningResult
        if let payload {
            result = try await client.register(
                payloadJSON: Data(payload.utf8),
                timeout: .seconds(self.timeout),
                onStatus: onStatus
            )
        } else {
            result = try await client.register(timeout: .seconds(self.timeout), onStatus: onStatus)
        }
        print("assignedHub: \(result.assignedHub)")
        print("deviceId: \(result.deviceId)")
        if let prefix = self.csr, let request = configuration.certificateSigningRequest, let issued = result.identity {
            let keyPath = prefix + ".key.pem"
            let chainPath = prefix + ".pem"
            // The key is a secret: the file is created owner-only before anything is written to it, and an existing
            // file is not overwritten.
            let descriptor = open(keyPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard descriptor >= 0 else {
                throw ValidationError("cannot create \(keyPath): \(String(cString: strerror(errno)))")
            }
            let key = Array(request.exportPrivateKeyPEM().utf8)
            let written = key.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == key.count,
                FileManager.default.createFile(
                    atPath: chainPath,
                    contents: Data(([issued.leaf] + issued.chain).map(\.pem).joined().utf8)
                )
            else {
                throw ValidationError("cannot write \(keyPath) and \(chainPath)")
            }
            print("certificate: \(chainPath) (\(issued.leaf.subject), issued by \(issued.leaf.issuer))")
            print("key: \(keyPath)")
        }
        if let payload = result.registration.payloadJSON {
            print("payload: \(String(decoding: payload, as: UTF8.self))")
        }
    }
}
