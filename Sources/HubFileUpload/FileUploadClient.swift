public import AzureIoTCore
import DPSClient
import Dispatch
import Foundation

/// Uploads files from a device to the storage account linked to its IoT hub, as Azure's device SDKs do:
/// `POST /devices/{id}/files` for a blob SAS URI, the file in blocks (Put Block, then Put Block List, each block
/// retried on its own), then `POST /devices/{id}/files/notifications` with the outcome. HTTPS goes through libcurl.
///
/// ```swift
/// let uploader = try FileUploadClient(configuration: .init(connectionString: connection, trustRoots: trust))
/// let result = try await uploader.upload(contentsOfFile: path, as: "logs/today.bin")
/// ```
public struct FileUploadClient: Sendable {
    /// How the device proves its identity to the hub.
    public enum Authentication: Sendable {
        /// A SAS token from this source in the `Authorization` header.
        case sas(any SASTokenSource)
        /// A TLS client certificate.
        case x509(X509Identity)
    }

    /// Where to upload, as whom, and how.
    public struct Configuration: Sendable {
        /// `{hub}.azure-devices.net`: what device SAS tokens are signed for.
        public var hubHost: String
        /// `host[:port]` the HTTPS requests go to: the hub, or (for the emulator) where it listens.
        public var endpoint: String
        /// The device.
        public var deviceId: String
        /// Its credentials.
        public var authentication: Authentication
        /// The CAs to trust for the hub.
        public var trustRoots: TLSConfiguration.TrustRoots
        /// The CAs to trust for the storage account (default: the same as for the hub).
        public var storageTrustRoots: TLSConfiguration.TrustRoots?
        /// The size of each block, 64 KiB to 100 MiB (default 4 MiB); the file is read one block at a time.
        public var blockSize = 4 << 20
        /// Attempts per block, 1 to 10 (default 3): a failed block is sent again, not the whole file.
        public var attemptsPerBlock = 3
        /// The time-out of each HTTPS request.
        public var requestTimeout: Duration = .seconds(60)
        /// The api-version of the hub's file upload endpoints.
        public var apiVersion = "2021-04-12"

        /// A configuration.
        public init(
            hubHost: String,
            endpoint: String? = nil,
            deviceId: String,
            authentication: Authentication,
            trustRoots: TLSConfiguration.TrustRoots = .system
        ) {
            self.hubHost = hubHost
            self.endpoint = endpoint ?? hubHost
            self.deviceId = deviceId
            self.authentication = authentication
            self.trustRoots = trustRoots
        }

        /// From a device connection string with a shared access key (`GatewayHostName` is where requests go, with
        /// `port` when given).
        public init(
            connectionString: ConnectionString,
            trustRoots: TLSConfiguration.TrustRoots = .system,
            port: Int? = nil
        ) throws(FileUploadError) {
            guard let deviceId = connectionString.deviceId, connectionString.moduleId == nil else {
                throw FileUploadError(.invalidArgument, "file upload needs a device connection string (no module)")
            }
            guard let key = connectionString.sharedAccessKey else {
                throw FileUploadError(.invalidArgument, "the connection string has no SharedAccessKey")
            }
            let host = connectionString.gatewayHostName ?? connectionString.hostName
            self.init(
                hubHost: connectionString.hostName,
                endpoint: port.map { "\(host):\($0)" } ?? host,
                deviceId: deviceId,
                authentication: .sas(SymmetricKeyCredential(key: key)),
                trustRoots: trustRoots
            )
        }

        /// Checks the ranges; throws ``FileUploadError/Code/invalidArgument`` naming the field.
        public func validate() throws(FileUploadError) {
            guard (64 << 10...100 << 20).contains(self.blockSize) else {
                throw FileUploadError(.invalidArgument, "blockSize must be 64 KiB to 100 MiB")
            }
            guard (1...10).contains(self.attemptsPerBlock) else {
                throw FileUploadError(.invalidArgument, "attemptsPerBlock must be 1 to 10")
            }
            guard !self.deviceId.isEmpty, !self.hubHost.isEmpty, !self.endpoint.isEmpty else {
                throw FileUploadError(.invalidArgument, "hubHost, endpoint and deviceId must not be empty")
            }
            guard self.requestTimeout > .zero else {
                throw FileUploadError(.invalidArgument, "requestTimeout must be positive")
            }
        }
    }

    /// The configuration in force.
    public let configuration: Configuration

    /// A client; throws ``FileUploadError/Code/invalidArgument`` for an invalid configuration.
    public init(configuration: Configuration) throws(FileUploadError) {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Uploads the file at `path` as `blobName` (the hub stores it as `{deviceId}/{blobName}`) and notifies the hub.
    /// A failure after the hub's grant is also reported to the hub (`isSuccess: false`) before it is thrown.
    public func upload(contentsOfFile path: String, as blobName: String) async throws(FileUploadError)
        -> FileUploadResult
    {
        let reader = try BlockReader(path: path)
        defer { reader.close() }
        return try await self.upload(as: blobName) { () async throws(FileUploadError) -> [UInt8]? in
            try await reader.next(self.configuration.blockSize)
        }
    }

    /// Uploads `bytes` as `blobName` and notifies the hub.
    public func upload(_ bytes: [UInt8], as blobName: String) async throws(FileUploadError) -> FileUploadResult {
        var offset = 0
        let blockSize = self.configuration.blockSize
        return try await self.upload(as: blobName) { () async throws(FileUploadError) -> [UInt8]? in
            guard offset < bytes.count else { return nil }
            let end = min(bytes.count, offset + blockSize)
            defer { offset = end }
            return Array(bytes[offset..<end])
        }
    }

    // MARK: - The three steps

    private struct Grant {
        var correlationId: String
        var blobURL: String
        var blobName: String
    }

    private func upload(as blobName: String, next: () async throws(FileUploadError) -> [UInt8]?)
        async throws(FileUploadError) -> FileUploadResult
    {
        guard !blobName.isEmpty, blobName.utf8.count <= 1024 else {
            throw FileUploadError(.invalidArgument, "the blob name must be 1 to 1024 bytes")
        }
        let grant = try await self.grant(blobName)
        var blockIds: [String] = []
        var bytes = 0
        var retried = 0
        do throws(FileUploadError) {
            while let block = try await next() {
                let id = Base64.encode(Array(String(format: "block-%08d", blockIds.count).utf8))
                retried += try await self.putBlock(block, id: id, grant: grant)
                blockIds.append(id)
                bytes += block.count
            }
            try await self.commit(blockIds, grant: grant)
        } catch {
            try? await self.notify(grant, success: false, status: error.status ?? 500, description: error.message)
            throw error
        }
        try await self.notify(
            grant,
            success: true,
            status: 201,
            description: "\(bytes) bytes in \(blockIds.count) blocks"
        )
        return FileUploadResult(
            correlationId: grant.correlationId,
            blobName: grant.blobName,
            byteCount: bytes,
            blockCount: blockIds.count,
            retriedBlocks: retried
        )
    }

    private func grant(_ blobName: String) async throws(FileUploadError) -> Grant {
        let body = JSONValue.object(["blobName": .string(blobName)]).jsonBytes
        let response = try await self.hubRequest("files", body: body)
        guard response.status == 200, let json = try? JSONValue(parsing: response.body),
            let correlationId = json["correlationId"]?.stringValue, let host = json["hostName"]?.stringValue,
            let container = json["containerName"]?.stringValue, let name = json["blobName"]?.stringValue,
            let sas = json["sasToken"]?.stringValue
        else {
            throw FileUploadError(.grantRefused, "the hub did not grant a blob SAS URI", status: response.status)
        }
        let path = name.split(separator: "/").map { PercentEncoding.encode(String($0)) }.joined(separator: "/")
        return Grant(
            correlationId: correlationId,
            blobURL:
                "https://\(host)/\(PercentEncoding.encode(container))/\(path)\(sas.hasPrefix("?") ? sas : "?" + sas)",
            blobName: name
        )
    }

    /// Puts one block, up to `attemptsPerBlock` times; returns how many attempts failed.
    private func putBlock(_ block: [UInt8], id: String, grant: Grant) async throws(FileUploadError) -> Int {
        var failures = 0
        while true {
            let outcome = await self.storageRequest(
                grant.blobURL + "&comp=block&blockid=\(PercentEncoding.encode(id))",
                body: block
            )
            if case .success(let status) = outcome, status == 201 { return failures }
            failures += 1
            guard failures < self.configuration.attemptsPerBlock else {
                switch outcome {
                case .success(let status):
                    throw FileUploadError(.blockFailed, "storage refused block \(id) \(failures) times", status: status)
                case .failure(let error):
                    throw FileUploadError(.blockFailed, "block \(id) failed \(failures) times", underlying: error)
                }
            }
        }
    }

    private func commit(_ ids: [String], grant: Grant) async throws(FileUploadError) {
        let list =
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + ids.map { "<Latest>\($0)</Latest>" }.joined()
            + "</BlockList>"
        switch await self.storageRequest(grant.blobURL + "&comp=blocklist", body: Array(list.utf8)) {
        case .success(201): return
        case .success(let status):
            throw FileUploadError(.commitFailed, "storage refused the block list", status: status)
        case .failure(let error):
            throw FileUploadError(.transportFailure, "the block list could not be sent", underlying: error)
        }
    }

    private func notify(_ grant: Grant, success: Bool, status: Int, description: String) async throws(FileUploadError) {
        let body = JSONValue.object([
            "correlationId": .string(grant.correlationId), "isSuccess": .bool(success),
            "statusCode": .number(JSONNumber(status)), "statusDescription": .string(String(description.prefix(512))),
        ]).jsonBytes
        let response = try await self.hubRequest("files/notifications", body: body)
        guard (200..<300).contains(response.status) else {
            throw FileUploadError(
                .notificationRefused,
                "the hub refused the upload notification",
                status: response.status
            )
        }
    }

    // MARK: - HTTPS

    private func hubRequest(_ path: String, body: [UInt8]) async throws(FileUploadError) -> ServiceHTTP.Response {
        var headers = [("Content-Type", "application/json; charset=utf-8"), ("Accept", "application/json")]
        var clientIdentity: X509Identity?
        switch self.configuration.authentication {
        case .sas(let source):
            do throws(AzureIoTError) {
                let issued = try await source.token(
                    for: .device(hubHost: self.configuration.hubHost, deviceId: self.configuration.deviceId),
                    now: UnixTime.now()
                )
                headers.append(("Authorization", issued.token.secretValue))
            } catch {
                throw FileUploadError(.invalidArgument, "no SAS token could be made", underlying: error)
            }
        case .x509(let identity):
            clientIdentity = identity
        }
        let device = PercentEncoding.encode(self.configuration.deviceId)
        do {
            return try await ServiceHTTP.perform(
                method: "POST",
                url:
                    "https://\(self.configuration.endpoint)/devices/\(device)/\(path)?api-version=\(self.configuration.apiVersion)",
                headers: headers,
                body: body,
                tls: TLSConfiguration(trustRoots: self.configuration.trustRoots, clientIdentity: clientIdentity),
                timeout: self.configuration.requestTimeout
            )
        } catch let error as AzureIoTError {
            throw FileUploadError(
                .transportFailure,
                "no answer from the hub at \(self.configuration.endpoint)",
                underlying: error
            )
        } catch {
            throw FileUploadError(.transportFailure, "no answer from the hub at \(self.configuration.endpoint)")
        }
    }

    private func storageRequest(_ url: String, body: [UInt8]) async -> Result<Int, AzureIoTError> {
        do {
            let response = try await ServiceHTTP.perform(
                method: "PUT",
                url: url,
                headers: [("x-ms-version", "2021-08-06"), ("Content-Type", "application/octet-stream")],
                body: body,
                tls: TLSConfiguration(
                    trustRoots: self.configuration.storageTrustRoots ?? self.configuration.trustRoots
                ),
                timeout: self.configuration.requestTimeout
            )
            return .success(response.status)
        } catch let error as AzureIoTError {
            return .failure(error)
        } catch {
            return .failure(AzureIoTError(.ioFailure, "the storage request failed"))
        }
    }
}

/// What an upload did.
public struct FileUploadResult: Sendable, Equatable {
    /// The hub's id for the upload.
    public var correlationId: String
    /// The blob's name in the container (`{deviceId}/{name}`).
    public var blobName: String
    /// Bytes uploaded.
    public var byteCount: Int
    /// Blocks committed.
    public var blockCount: Int
    /// Block attempts that failed and were repeated.
    public var retriedBlocks: Int
}

/// Reads a file one block at a time on a queue of its own (file reads block; the cooperative pool must not).
final class BlockReader: @unchecked Sendable {
    private let handle: FileHandle
    private let queue = DispatchQueue(label: "azure-iot.file-upload")

    init(path: String) throws(FileUploadError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileUploadError(.fileNotReadable, "cannot open '\(path)'")
        }
        self.handle = handle
    }

    /// The next block of at most `size` bytes, or `nil` at the end.
    func next(_ size: Int) async throws(FileUploadError) -> [UInt8]? {
        let result: Result<[UInt8]?, FileUploadError> = await withCheckedContinuation { continuation in
            self.queue.async {
                do {
                    let data = try self.handle.read(upToCount: size)
                    continuation.resume(returning: .success(data.flatMap { $0.isEmpty ? nil : Array($0) }))
                } catch {
                    continuation.resume(
                        returning: .failure(FileUploadError(.fileNotReadable, "the file could not be read"))
                    )
                }
            }
        }
        return try result.get()
    }

    func close() { try? self.handle.close() }
}
