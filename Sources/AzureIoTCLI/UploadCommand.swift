import ArgumentParser
import AzureIoTCore
import Foundation
import HubFileUpload

/// `azure-iot upload`: a device's file upload (blob SAS URI from the hub, the file in blocks, the notification).
struct UploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload a file as a device, to the storage account linked to its hub (IoT Hub file upload)."
    )

    @Option(help: "The device connection string (SharedAccessKey; GatewayHostName is where requests go).")
    var connectionString: String

    @Option(help: "PEM file with the CA to trust instead of the system's (the emulator's CA).")
    var caFile: String?

    @Option(help: "The hub's HTTPS port, 1 to 65535 (default 443; the emulator prints its service port).")
    var port: Int?

    @Option(help: "The blob name (default: the file's name); the hub stores it as {deviceId}/{name}.")
    var blobName: String?

    @Option(help: "The block size in KiB, 64 to 102400 (default 4096).")
    var blockSize = 4096

    @Argument(help: "The file to upload.")
    var file: String

    func run() async throws {
        if let port = self.port, !(1...65535).contains(port) { throw ValidationError("--port must be 1 to 65535") }
        guard (64...102_400).contains(self.blockSize) else {
            throw ValidationError("--block-size must be 64 to 102400")
        }
        var configuration = try FileUploadClient.Configuration(
            connectionString: try ConnectionString(parsing: self.connectionString),
            trustRoots: self.caFile.map { .pemFile($0) } ?? .system,
            port: self.port
        )
        configuration.blockSize = self.blockSize << 10
        let client = try FileUploadClient(configuration: configuration)
        let name = self.blobName ?? URL(fileURLWithPath: self.file).lastPathComponent
        let result = try await client.upload(contentsOfFile: self.file, as: name)
        emit("uploaded \(result.byteCount) bytes in \(result.blockCount) blocks as \(result.blobName)")
    }
}
