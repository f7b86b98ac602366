import AzureIoTCore
import Dispatch
import Foundation
import Logging

/// A device's file upload as the emulated hub saw it: the storage grant, the upload, and the notification.
public struct FileUploadRecord: Sendable, Equatable {
    /// The id the hub gave the upload (`correlationId`).
    public var correlationId: String
    /// The uploading device.
    public var deviceId: String
    /// The blob's name in the container: `{deviceId}/{name the device asked for}`.
    public var blobName: String
    /// Where the uploaded bytes are, once the blob was written.
    public var path: String?
    /// How many bytes the blob holds.
    public var size: Int?
    /// Whether the device notified the hub of the outcome.
    public var notified: Bool
    /// What the device reported (`isSuccess`, `statusCode`, `statusDescription`).
    public var isSuccess: Bool?
    /// The status code the device reported.
    public var statusCode: Int?
    /// The description the device reported.
    public var statusDescription: String?
}

/// IoT Hub's file upload, emulated: devices ask the hub for a blob SAS URI (`POST /devices/{id}/files`), upload to
/// a minimal Azure Blob Storage endpoint (a whole block blob, or blocks and a block list), and notify the hub
/// (`POST /devices/{id}/files/notifications`). Uploads are written to `uploads/{deviceId}/{name}` under the data
/// directory (or the state directory); only the SAS the hub issued for a blob opens it, until it expires.
actor BlobStore {
    static let containerName = "uploads"
    /// A grant's lifetime (IoT Hub's default SAS time to live for file uploads is one hour).
    static let grantLifetime: UInt64 = 3_600
    /// Blocks held per blob before a block list commits them (Azure's limit is 100,000 uncommitted blocks).
    static let maximumBlocksPerBlob = 50_000
    /// Bytes of uncommitted blocks held in all.
    static let maximumUncommittedBytes = 512 << 20
    /// Put Block requests to fail with 500 (fault injection), counting down.
    var failBlocks = 0

    private struct Grant {
        var correlationId: String
        var deviceId: String
        var signature: String
        var expiry: UInt64
    }

    let directory: String
    let host: String
    private var grants: [String: Grant] = [:]
    private var blocks: [String: [String: [UInt8]]] = [:]
    private var uncommittedBytes = 0
    private(set) var records: [FileUploadRecord] = []
    private let files = DispatchQueue(label: "azure-iot.emulator.uploads")
    private let logger: Logger

    /// `host`: the blob endpoint as devices reach it (`localhost:{port}`).
    /// The hub that tells the service of finished uploads (`/messages/serviceBound/filenotifications`).
    private let hub: EmulatedHub

    init(directory: String, host: String, hub: EmulatedHub, logger: Logger) {
        self.directory = directory
        self.host = host
        self.hub = hub
        self.logger = logger
    }

    /// A grant for `deviceId` to upload `name`: the answer to `POST /devices/{id}/files`.
    func grant(deviceId: String, name: String) -> JSONValue {
        let correlationId = UUID().uuidString.lowercased()
        let blobName = "\(deviceId)/\(name)"
        let signature = Base64.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let expiry = UnixTime.now() + Self.grantLifetime
        self.grants["\(Self.containerName)/\(blobName)"] = Grant(
            correlationId: correlationId,
            deviceId: deviceId,
            signature: signature,
            expiry: expiry
        )
        self.records.append(
            FileUploadRecord(correlationId: correlationId, deviceId: deviceId, blobName: blobName, notified: false)
        )
        let expiryText = ProvisioningService.timestamp(Date(timeIntervalSince1970: Double(expiry)))
        let sas =
            "?sv=2018-03-28&sr=b&sig=\(PercentEncoding.encode(signature))&se=\(PercentEncoding.encode(expiryText))&sp=rw"
        return [
            "correlationId": .string(correlationId), "hostName": .string(self.host),
            "containerName": .string(Self.containerName), "blobName": .string(blobName), "sasToken": .string(sas),
        ]
    }

    func injectBlockFailures(_ count: Int) { self.failBlocks = count }

    /// Records the device's notification; `false` when the correlation id is not one of its uploads.
    func notify(deviceId: String, correlationId: String, isSuccess: Bool, statusCode: Int?, description: String?)
        async -> Bool
    {
        guard
            let index = self.records.firstIndex(where: { $0.correlationId == correlationId && $0.deviceId == deviceId })
        else { return false }
        self.records[index].notified = true
        self.records[index].isSuccess = isSuccess
        self.records[index].statusCode = statusCode
        self.records[index].statusDescription = description
        let record = self.records[index]
        // IoT Hub tells the service of a successful upload of a blob that was written.
        if isSuccess, let size = record.size {
            let now = ProvisioningService.timestamp(Date())
            let notification: JSONValue = [
                "deviceId": .string(deviceId),
                "blobUri": .string("https://\(self.host)/\(Self.containerName)/\(record.blobName)"),
                "blobName": .string(record.blobName), "lastUpdatedTime": .string(now),
                "blobSizeInBytes": .number(JSONNumber(size)), "enqueuedTimeUtc": .string(now),
            ]
            await self.hub.enqueue(notification, on: .fileNotifications)
        }
        return true
    }

    // MARK: - The blob endpoint

    /// Serves one request of the blob endpoint.
    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let path = String(request.path.drop { $0 == "/" })
        guard let grant = self.grants[path] else {
            return Self.error(404, "BlobNotFound", "no upload was granted for this blob")
        }
        guard request.query["sig"] == grant.signature else {
            return Self.error(403, "AuthenticationFailed", "the SAS signature is not the one the hub issued")
        }
        guard UnixTime.now() < grant.expiry else {
            return Self.error(403, "AuthenticationFailed", "the SAS expired")
        }
        switch (request.method, request.query["comp"]) {
        case ("PUT", nil):
            return await self.write(path, request.body, grant: grant)
        case ("PUT", "block") where self.failBlocks > 0:
            self.failBlocks -= 1
            return Self.error(500, "InternalError", "a block failed by fault injection")
        case ("PUT", "block"):
            guard let id = request.query["blockid"], !id.isEmpty, id.utf8.count <= 128 else {
                return Self.error(400, "InvalidQueryParameterValue", "blockid is missing or too long")
            }
            var held = self.blocks[path, default: [:]]
            guard held.count < Self.maximumBlocksPerBlob || held[id] != nil else {
                return Self.error(409, "BlockCountExceedsLimit", "too many uncommitted blocks")
            }
            let replaced = held[id]?.count ?? 0
            guard self.uncommittedBytes - replaced + request.body.count <= Self.maximumUncommittedBytes else {
                return Self.error(413, "RequestBodyTooLarge", "too many uncommitted bytes in the emulator")
            }
            self.uncommittedBytes += request.body.count - replaced
            held[id] = request.body
            self.blocks[path] = held
            return HTTPResponse(status: 201, headers: Self.standardHeaders)
        case ("PUT", "blocklist"):
            guard let ids = Self.blockIds(in: request.body) else {
                return Self.error(400, "InvalidXmlDocument", "the block list is not one the emulator reads")
            }
            let held = self.blocks[path, default: [:]]
            var bytes: [UInt8] = []
            for id in ids {
                guard let block = held[id] else {
                    return Self.error(400, "InvalidBlockList", "the block list names a block that was not put")
                }
                bytes += block
            }
            self.uncommittedBytes -= held.values.reduce(0) { $0 + $1.count }
            self.blocks[path] = nil
            return await self.write(path, bytes, grant: grant)
        case ("GET", nil):
            guard let file = self.records.first(where: { $0.correlationId == grant.correlationId })?.path,
                let data = await self.read(file)
            else {
                return Self.error(404, "BlobNotFound", "the blob has not been written")
            }
            return HTTPResponse(
                status: 200,
                headers: Self.standardHeaders + [
                    ("Content-Type", "application/octet-stream"), ("x-ms-blob-type", "BlockBlob"),
                ],
                body: data
            )
        default:
            return Self.error(
                400,
                "UnsupportedHttpVerb",
                "the emulator's blob endpoint takes PUT (blob, block, block list) and GET"
            )
        }
    }

    private static let standardHeaders: [(String, String)] = [
        ("x-ms-version", "2021-08-06"), ("x-ms-request-server-encrypted", "true"), ("ETag", "\"0x8D000000000000\""),
        ("Last-Modified", "Wed, 02 Dec 2026 00:00:00 GMT"),
    ]

    private func write(_ path: String, _ bytes: [UInt8], grant: Grant) async -> HTTPResponse {
        let file = (self.directory as NSString).appendingPathComponent(path)
        let written: Bool = await withCheckedContinuation { continuation in
            self.files.async {
                let folder = (file as NSString).deletingLastPathComponent
                let created =
                    (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)) != nil
                continuation.resume(
                    returning: created && FileManager.default.createFile(atPath: file, contents: Data(bytes))
                )
            }
        }
        guard written else { return Self.error(500, "InternalError", "the emulator could not write the blob") }
        if let index = self.records.firstIndex(where: { $0.correlationId == grant.correlationId }) {
            self.records[index].path = file
            self.records[index].size = bytes.count
        }
        self.logger.info("file uploaded", metadata: ["blob": "\(path)", "bytes": "\(bytes.count)"])
        return HTTPResponse(status: 201, headers: Self.standardHeaders)
    }

    private func read(_ file: String) async -> [UInt8]? {
        await withCheckedContinuation { continuation in
            self.files.async {
                continuation.resume(returning: FileManager.default.contents(atPath: file).map { Array($0) })
            }
        }
    }

    /// The ids of a `<BlockList>`, in order (`Latest`, `Committed` and `Uncommitted` entries alike).
    static func blockIds(in body: [UInt8]) -> [String]? {
        let text = String(decoding: body, as: UTF8.self)
        guard text.contains("<BlockList>"), text.count <= 8 << 20 else { return nil }
        var ids: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "<", options: []) {
            rest = rest[open.upperBound...]
            guard let close = rest.firstIndex(of: ">") else { return nil }
            let tag = rest[..<close]
            rest = rest[rest.index(after: close)...]
            guard ["Latest", "Committed", "Uncommitted"].contains(tag) else { continue }
            guard let end = rest.range(of: "</\(tag)>") else { return nil }
            ids.append(String(rest[..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return ids
    }

    /// An Azure Storage error: the `x-ms-error-code` header and an XML body.
    static func error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [("x-ms-error-code", code), ("Content-Type", "application/xml")],
            body: Array(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>\(code)</Code><Message>\(message)</Message></Error>"
                    .utf8
            )
        )
    }
}
