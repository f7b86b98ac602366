import AzureIoTCore
import Foundation
import Logging

/// IoT Hub's service REST API as the emulator serves it on its service port (api-version `2021-04-12` and the
/// earlier GA versions): the identity registry (devices, modules), twins, direct methods, a minimal query and
/// statistics, authorized by service SAS tokens signed with a shared access policy (`sr` = the hub host, or the
/// host and port the client connected to; `skn` = the policy). Shapes follow Azure's `azure-iot-hub` SDK.
struct ServiceAPI: Sendable {
    let hub: EmulatedHub
    let policies: ServicePolicies
    /// Device file uploads (`/devices/{id}/files`), when the emulator serves a blob endpoint.
    var blobs: BlobStore?
    let logger: Logger

    /// The api-versions IoT Hub's service REST API has had; anything else is refused with 400001.
    static let apiVersions: Set<String> = [
        "2016-11-14", "2017-06-30", "2018-04-01", "2018-06-30", "2019-03-30", "2019-07-01-preview", "2019-10-01",
        "2020-03-13", "2020-05-31-preview", "2020-06-30", "2020-09-30", "2021-04-12",
    ]
    /// The most items one query page returns (`x-ms-max-item-count` may ask for fewer).
    static let maximumPageSize = 1_000
    /// A method's response time-out range, in seconds (IoT Hub's).
    static let responseTimeoutRange = 5...300
    static let connectTimeoutRange = 0...300

    /// An error as IoT Hub writes it: the `iothub-errorcode` header, and a body whose `Message` holds the JSON of
    /// `errorCode`, `trackingId`, `message` and `timestampUtc`.
    static func error(_ status: Int, _ code: Int, _ name: String, _ message: String) -> HTTPResponse {
        let now = ProvisioningService.timestamp(Date())
        let trackingId = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let inner = JSONValue.object([
            "errorCode": .number(JSONNumber(code)),
            "trackingId": .string("\(trackingId)-G:0-TimeStamp:\(now)"),
            "message": .string(message),
            "timestampUtc": .string(now),
        ])
        return HTTPResponse(
            status: status,
            headers: [("iothub-errorcode", name)],
            body: JSONValue.object(["Message": .string(inner.jsonText), "ExceptionMessage": .string("")]).jsonBytes
        )
    }

    static func refusal(_ error: HTTPRequest.ParseError) -> HTTPResponse {
        switch error {
        case .bodyTooLarge: return Self.error(413, 413_001, "MessageTooLarge", error.description)
        case .headerTooLarge: return Self.error(431, 400_004, "ArgumentInvalid", error.description)
        case .malformed: return Self.error(400, 400_004, "ArgumentInvalid", error.description)
        }
    }

    private static func ok(_ body: JSONValue, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: body.jsonBytes)
    }

    // MARK: - Routing

    private enum Route {
        case devices
        case device(String)
        case modules(String)
        case module(IdentityName)
        case commands(String)
        case query
        case twin(IdentityName)
        case methods(IdentityName)
        case serviceStatistics
        case deviceStatistics
    }

    private static func route(_ path: String) -> Route? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard !segments.contains(where: \.isEmpty) || segments == [""] else { return nil }
        switch segments.count {
        case 1 where segments[0] == "devices": return .devices
        case 2 where segments[0] == "devices" && segments[1] == "query": return .query
        case 2 where segments[0] == "devices": return .device(segments[1])
        case 2 where segments[0] == "twins": return .twin(IdentityName(deviceId: segments[1]))
        case 2 where segments[0] == "statistics" && segments[1] == "service": return .serviceStatistics
        case 2 where segments[0] == "statistics" && segments[1] == "devices": return .deviceStatistics
        case 3 where segments[0] == "devices" && segments[2] == "modules": return .modules(segments[1])
        case 3 where segments[0] == "devices" && segments[2] == "commands": return .commands(segments[1])
        case 3 where segments[0] == "twins" && segments[2] == "methods":
            return .methods(IdentityName(deviceId: segments[1]))
        case 4 where segments[0] == "devices" && segments[2] == "modules":
            return .module(IdentityName(deviceId: segments[1], moduleId: segments[3]))
        case 4 where segments[0] == "twins" && segments[2] == "modules":
            return .twin(IdentityName(deviceId: segments[1], moduleId: segments[3]))
        case 5 where segments[0] == "twins" && segments[2] == "modules" && segments[4] == "methods":
            return .methods(IdentityName(deviceId: segments[1], moduleId: segments[3]))
        default: return nil
        }
    }

    func handle(_ request: HTTPRequest, peerCertificates: [X509Certificate] = []) async -> HTTPResponse {
        if let blobs = self.blobs, let upload = FileUploadRoute(request.path) {
            return await self.fileUpload(upload, request, certificates: peerCertificates, blobs: blobs)
        }
        guard let route = Self.route(request.path) else {
            return Self.error(404, 404_001, "NotFound", "no such resource: \(Self.printable(request.path))")
        }
        let rights: SharedAccessPolicy.Rights
        switch self.authorize(request) {
        case .success(let granted): rights = granted
        case .failure(let response): return response
        }
        guard let version = request.query["api-version"] else {
            return Self.error(400, 400_001, "InvalidProtocolVersion", "the api-version query parameter is required")
        }
        guard Self.apiVersions.contains(version) else {
            return Self.error(
                400,
                400_001,
                "InvalidProtocolVersion",
                "the api-version '\(Self.printable(version))' is not supported"
            )
        }
        let needed: SharedAccessPolicy.Rights
        switch (route, request.method) {
        case (.devices, "GET"), (.device, "GET"), (.modules, "GET"), (.module, "GET"), (.deviceStatistics, "GET"):
            needed = .registryRead
        case (.device, "PUT"), (.device, "DELETE"), (.module, "PUT"), (.module, "DELETE"):
            needed = .registryWrite
        case (.query, "POST"), (.twin, "GET"):
            // Twins and queries are open to either right, as in IoT Hub.
            needed = rights.contains(.registryRead) ? .registryRead : .serviceConnect
        case (.twin, "PATCH"), (.twin, "PUT"), (.methods, "POST"), (.commands, "DELETE"), (.serviceStatistics, "GET"):
            needed = .serviceConnect
        default:
            return Self.error(
                405,
                405_001,
                "MethodNotAllowed",
                "\(Self.printable(request.method)) is not allowed on \(Self.printable(request.path))"
            )
        }
        guard rights.contains(needed) else {
            return Self.error(
                401,
                401_002,
                "IotHubUnauthorizedAccess",
                "the shared access policy does not grant \(needed) for \(request.method) \(Self.printable(request.path))"
            )
        }
        do throws(ServiceFailure) {
            switch (route, request.method) {
            case (.devices, _):
                let top = try Self.integer(request.query["top"], name: "top", range: 1...Self.maximumPageSize) ?? 1_000
                return Self.ok(.array(await self.hub.deviceSnapshots(limit: top).map(Self.identityJSON)))
            case (.device(let id), "GET"):
                return Self.ok(Self.identityJSON(try await self.snapshot(IdentityName(deviceId: id))))
            case (.module(let name), "GET"):
                return Self.ok(Self.identityJSON(try await self.snapshot(name)))
            case (.modules(let id), _):
                _ = try await self.snapshot(IdentityName(deviceId: id))
                return Self.ok(.array(await self.hub.moduleSnapshots(of: id).map(Self.identityJSON)))
            case (.device(let id), "PUT"):
                return try await self.put(IdentityName(deviceId: id), request)
            case (.module(let name), "PUT"):
                return try await self.put(name, request)
            case (.device(let id), "DELETE"):
                try await self.delete(IdentityName(deviceId: id), request)
                return HTTPResponse(status: 204)
            case (.module(let name), "DELETE"):
                try await self.delete(name, request)
                return HTTPResponse(status: 204)
            case (.commands(let id), _):
                _ = try await self.snapshot(IdentityName(deviceId: id))
                let purged = await self.hub.purgeCloudToDevice(deviceId: id)
                return Self.ok([
                    "totalMessagesPurged": .number(JSONNumber(purged)), "deviceId": .string(id), "moduleId": .null,
                ])
            case (.twin(let name), "GET"):
                return Self.ok(Self.twinJSON(try await self.snapshot(name)))
            case (.twin(let name), _):
                return try await self.updateTwin(name, request, replace: request.method == "PUT")
            case (.methods(let name), _):
                return try await self.invokeMethod(name, request)
            case (.query, _):
                return try await self.query(request)
            case (.serviceStatistics, _):
                let connected = await self.hub.deviceSnapshots().count { $0.connected }
                return Self.ok(["connectedDeviceCount": .number(JSONNumber(connected))])
            case (.deviceStatistics, _):
                let devices = await self.hub.deviceSnapshots()
                let enabled = devices.count { $0.identity.registry.enabled }
                return Self.ok([
                    "totalDeviceCount": .number(JSONNumber(devices.count)),
                    "enabledDeviceCount": .number(JSONNumber(enabled)),
                    "disabledDeviceCount": .number(JSONNumber(devices.count - enabled)),
                ])
            default:
                return Self.error(405, 405_001, "MethodNotAllowed", "\(request.method) is not allowed here")
            }
        } catch {
            return error.response
        }
    }

    // MARK: - File upload (the device side)

    /// `/devices/{id}/files` and `/devices/{id}/files/notifications` (a trailing `/`, as the C SDK writes, too).
    struct FileUploadRoute {
        var deviceId: String
        var notification: Bool

        init?(_ path: String) {
            let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard parts.count == 3 || parts.count == 4, parts[0] == "devices", parts[2] == "files" else { return nil }
            guard parts.count == 3 || parts[3] == "notifications" else { return nil }
            self.deviceId = parts[1]
            self.notification = parts.count == 4
        }
    }

    private func fileUpload(
        _ route: FileUploadRoute,
        _ request: HTTPRequest,
        certificates: [X509Certificate],
        blobs: BlobStore
    ) async -> HTTPResponse {
        let name = IdentityName(deviceId: route.deviceId)
        do throws(EmulatedHub.AuthenticationFailure) {
            if let token = request.headers["authorization"] {
                _ = try await self.hub.authenticate(name, token: token)
            } else {
                try await self.hub.authenticate(name, certificates: certificates)
            }
        } catch {
            return Self.error(
                401,
                401_002,
                "IotHubUnauthorizedAccess",
                "the device could not be authenticated: \(error)"
            )
        }
        guard request.method == "POST" else {
            return Self.error(405, 405_001, "MethodNotAllowed", "file upload takes POST")
        }
        guard let version = request.query["api-version"], Self.apiVersions.contains(version) else {
            return Self.error(400, 400_001, "InvalidProtocolVersion", "a supported api-version is required")
        }
        let body: JSONValue
        do throws(ServiceFailure) {
            body = try Self.jsonBody(request)
        } catch {
            return error.response
        }
        if route.notification {
            guard case .string(let correlationId) = body["correlationId"] ?? .null,
                case .bool(let success) = body["isSuccess"] ?? .null
            else {
                return Self.error(400, 400_004, "ArgumentInvalid", "a notification needs correlationId and isSuccess")
            }
            let known = await blobs.notify(
                deviceId: route.deviceId,
                correlationId: correlationId,
                isSuccess: success,
                statusCode: body["statusCode"]?.int64Value.flatMap { Int(exactly: $0) },
                description: body["statusDescription"]?.stringValue.map { String($0.prefix(1024)) }
            )
            guard known else {
                return Self.error(400, 400_004, "ArgumentInvalid", "no upload of this device has that correlationId")
            }
            return HTTPResponse(status: 204)
        }
        guard case .string(let blobName) = body["blobName"] ?? .null, Self.isSafeBlobName(blobName) else {
            return Self.error(
                400,
                400_004,
                "ArgumentInvalid",
                "blobName must be 1 to 1024 characters without '..' segments, a leading '/', '\\' or control characters"
            )
        }
        return Self.ok(await blobs.grant(deviceId: route.deviceId, name: blobName))
    }

    /// A blob name that stays inside the device's folder when it becomes a path.
    static func isSafeBlobName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 1024, !name.hasPrefix("/"), !name.contains("\\") else { return false }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return false }
        return !name.split(separator: "/", omittingEmptySubsequences: false).contains {
            $0 == ".." || $0 == "." || $0.isEmpty
        }
    }

    // MARK: - Authorization

    private enum Authorization {
        case success(SharedAccessPolicy.Rights)
        case failure(HTTPResponse)
    }

    /// Checks the `Authorization` header: a service SAS token for this hub (or the host the client connected to),
    /// signed with a policy's key, not expired. Never echoes the token.
    private func authorize(_ request: HTTPRequest) -> Authorization {
        guard let header = request.headers["authorization"] else {
            return .failure(
                Self.error(401, 401_002, "IotHubUnauthorizedAccess", "the Authorization header is missing")
            )
        }
        switch self.policies.authorize(token: header, hosts: [request.headers["host"]].compactMap { $0 }) {
        case .success(let rights): return .success(rights)
        case .failure(let refusal):
            return .failure(Self.error(401, 401_002, "IotHubUnauthorizedAccess", refusal.reason))
        }
    }

    // MARK: - Registry

    private func snapshot(_ name: IdentityName) async throws(ServiceFailure) -> IdentitySnapshot {
        guard let snapshot = await self.hub.snapshot(name) else {
            if name.moduleId != nil, await self.hub.snapshot(IdentityName(deviceId: name.deviceId)) != nil {
                throw ServiceFailure(.moduleNotFound(name))
            }
            throw ServiceFailure(.deviceNotFound(name.deviceId))
        }
        return snapshot
    }

    private func put(_ name: IdentityName, _ request: HTTPRequest) async throws(ServiceFailure) -> HTTPResponse {
        try Self.checkId(name.deviceId, what: "device id")
        if let moduleId = name.moduleId { try Self.checkId(moduleId, what: "module id") }
        let body = try Self.jsonBody(request)
        let specification = try Self.specification(name, from: body)
        let condition = EntityTagCondition(header: request.headers["if-match"])
        do throws(RegistryFailure) {
            let snapshot = try await self.hub.upsert(specification, condition: condition)
            self.logger.info(
                "registry: \(condition == nil ? "created" : "updated") an identity",
                metadata: ["identity": "\(name)"]
            )
            return Self.ok(Self.identityJSON(snapshot))
        } catch {
            throw ServiceFailure(error)
        }
    }

    private func delete(_ name: IdentityName, _ request: HTTPRequest) async throws(ServiceFailure) {
        do throws(RegistryFailure) {
            try await self.hub.remove(name, condition: EntityTagCondition(header: request.headers["if-match"]))
            self.logger.info("registry: deleted an identity", metadata: ["identity": "\(name)"])
        } catch {
            throw ServiceFailure(error)
        }
    }

    /// IoT Hub's id rule: up to 128 ASCII letters, digits and `-.+%_#*?!(),:=@$'`.
    static func checkId(_ id: String, what: String) throws(ServiceFailure) {
        let allowed = Set("-.+%_#*?!(),:=@$'".utf8)
        guard !id.isEmpty, id.utf8.count <= 128,
            id.utf8.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || allowed.contains($0)
            })
        else {
            throw ServiceFailure(
                400,
                400_004,
                "ArgumentInvalid",
                "the \(what) must be 1 to 128 ASCII letters, digits or -.+%_#*?!(),:=@$'"
            )
        }
    }

    /// Reads a device or module from its JSON body.
    static func specification(_ name: IdentityName, from body: JSONValue) throws(ServiceFailure)
        -> IdentitySpecification
    {
        func invalid(_ reason: String) -> ServiceFailure { ServiceFailure(400, 400_004, "ArgumentInvalid", reason) }
        guard case .object = body else { throw invalid("the body must be a JSON object") }
        if let id = body["deviceId"], id != .null, id != .string(name.deviceId) {
            throw invalid("the deviceId in the body differs from the one in the path")
        }
        if let moduleId = name.moduleId, let id = body["moduleId"], id != .null, id != .string(moduleId) {
            throw invalid("the moduleId in the body differs from the one in the path")
        }
        var specification = IdentitySpecification(name: name)
        switch body["status"] {
        case nil, .null: break
        case .string(let status) where status.lowercased() == "enabled": specification.enabled = true
        case .string(let status) where status.lowercased() == "disabled": specification.enabled = false
        default: throw invalid("status must be 'enabled' or 'disabled'")
        }
        switch body["statusReason"] {
        case nil, .null: break
        case .string(let reason) where reason.utf8.count <= 128: specification.statusReason = reason
        default: throw invalid("statusReason must be a string of at most 128 bytes")
        }
        switch body["capabilities"]?["iotEdge"] {
        case nil, .null: break
        case .bool(let edge): specification.iotEdge = edge
        default: throw invalid("capabilities.iotEdge must be true or false")
        }
        switch body["managedBy"] {
        case nil, .null: break
        case .string(let owner) where owner.utf8.count <= 128: specification.managedBy = owner
        default: throw invalid("managedBy must be a string of at most 128 bytes")
        }
        let authentication = body["authentication"] ?? .null
        func string(_ value: JSONValue?, _ what: String) throws(ServiceFailure) -> String? {
            switch value {
            case nil, .null: return nil
            case .string(let text) where text.isEmpty: return nil
            case .string(let text): return text
            default: throw invalid("\(what) must be a string")
            }
        }
        let type = try string(authentication["type"], "authentication.type")?.lowercased()
        switch type {
        case nil, "sas": specification.authentication = .sas
        case "selfsigned": specification.authentication = .selfSigned
        case "certificateauthority": specification.authentication = .certificateAuthority
        case "none": specification.authentication = .none
        default: throw invalid("authentication.type must be sas, selfSigned, certificateAuthority or none")
        }
        if specification.authentication == .sas {
            for (slot, field) in [(0, "primaryKey"), (1, "secondaryKey")] {
                guard let key = try string(authentication["symmetricKey"]?[field], "symmetricKey.\(field)") else {
                    continue
                }
                guard let bytes = try? Base64.decode(key, what: "a key"), (16...64).contains(bytes.count) else {
                    throw invalid("authentication.symmetricKey.\(field) must be base64 of 16 to 64 bytes")
                }
                if slot == 0 { specification.primaryKey = key } else { specification.secondaryKey = key }
            }
        }
        if specification.authentication == .selfSigned {
            for (slot, field) in [(0, "primaryThumbprint"), (1, "secondaryThumbprint")] {
                guard let print = try string(authentication["x509Thumbprint"]?[field], "x509Thumbprint.\(field)")
                else { continue }
                guard print.utf8.count == 40 || print.utf8.count == 64, print.allSatisfy(\.isHexDigit) else {
                    throw invalid("authentication.x509Thumbprint.\(field) must be 40 or 64 hex digits")
                }
                if slot == 0 {
                    specification.primaryThumbprint = print.uppercased()
                } else {
                    specification.secondaryThumbprint = print.uppercased()
                }
            }
        }
        return specification
    }

    // MARK: - Twins

    private func updateTwin(_ name: IdentityName, _ request: HTTPRequest, replace: Bool)
        async throws(ServiceFailure) -> HTTPResponse
    {
        func invalid(_ reason: String) -> ServiceFailure { ServiceFailure(400, 400_004, "ArgumentInvalid", reason) }
        let body = try Self.jsonBody(request)
        guard case .object = body else { throw invalid("the twin must be a JSON object") }
        if let reported = body["properties"]?["reported"], reported != .null, !replace {
            throw invalid("reported properties are written by the device, not the service")
        }
        var tags: JSONValue?
        switch body["tags"] {
        case nil, .null: tags = replace ? .object([:]) : nil
        case .object(let members): tags = .object(members)
        default: throw invalid("tags must be an object")
        }
        var desired: JSONValue?
        switch body["properties"]?["desired"] {
        case nil, .null: desired = replace ? .object([:]) : nil
        case .object(var members):
            members["$version"] = nil
            members["$metadata"] = nil
            desired = .object(members)
        default: throw invalid("properties.desired must be an object")
        }
        for document in [tags, desired].compactMap({ $0 }) where Self.depth(document) > 10 {
            throw invalid("a twin may nest at most 10 levels")
        }
        do throws(RegistryFailure) {
            let snapshot = try await self.hub.updateTwin(
                name,
                tags: tags,
                desired: desired,
                replace: replace,
                condition: EntityTagCondition(header: request.headers["if-match"])
            )
            return Self.ok(Self.twinJSON(snapshot))
        } catch {
            throw ServiceFailure(error)
        }
    }

    private static func depth(_ value: JSONValue) -> Int {
        switch value {
        case .object(let members): return 1 + (members.values.map(depth).max() ?? 0)
        case .array(let elements): return 1 + (elements.map(depth).max() ?? 0)
        default: return 0
        }
    }

    // MARK: - Methods

    private func invokeMethod(_ name: IdentityName, _ request: HTTPRequest) async throws(ServiceFailure) -> HTTPResponse
    {
        func invalid(_ reason: String) -> ServiceFailure { ServiceFailure(400, 400_004, "ArgumentInvalid", reason) }
        let body = try Self.jsonBody(request)
        guard case .string(let method) = body["methodName"] ?? .null, !method.isEmpty, method.utf8.count <= 128 else {
            throw invalid("methodName must be a string of 1 to 128 bytes")
        }
        func seconds(_ field: String, _ range: ClosedRange<Int>, default value: Int) throws(ServiceFailure) -> Int {
            switch body[field] {
            case nil, .null: return value
            case .number(let number):
                guard let seconds = number.int64Value, range.contains(Int(clamping: seconds)) else {
                    throw invalid("\(field) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
                }
                return Int(seconds)
            default: throw invalid("\(field) must be a number")
            }
        }
        let responseTimeout = try seconds("responseTimeoutInSeconds", Self.responseTimeoutRange, default: 30)
        let connectTimeout = try seconds("connectTimeoutInSeconds", Self.connectTimeoutRange, default: 0)
        _ = try await self.snapshot(name)
        let payload = (body["payload"] ?? .null).jsonBytes
        // A device that is not connected yet may still come within the connect time-out.
        let connectDeadline = ContinuousClock.now + .seconds(connectTimeout)
        while !(await self.hub.isConnected(name)), ContinuousClock.now < connectDeadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        do throws(EmulatedHub.MethodFailure) {
            let response = try await self.hub.invokeMethod(
                name,
                method: method,
                payload: payload,
                timeout: .seconds(responseTimeout)
            )
            let answer =
                (try? JSONValue(parsing: response.payload))
                ?? .string(String(decoding: response.payload, as: UTF8.self))
            return Self.ok(["status": .number(JSONNumber(response.status)), "payload": answer])
        } catch {
            switch error {
            case .notConnected, .notSubscribed:
                throw ServiceFailure(
                    404,
                    404_103,
                    "DeviceNotOnline",
                    "'\(name)' is not connected or has not subscribed to direct methods"
                )
            case .timedOut:
                throw ServiceFailure(
                    504,
                    504_101,
                    "GatewayTimeout",
                    "'\(name)' did not answer '\(method)' within \(responseTimeout) s"
                )
            }
        }
    }

    // MARK: - Query

    private func query(_ request: HTTPRequest) async throws(ServiceFailure) -> HTTPResponse {
        let body = try Self.jsonBody(request)
        guard case .string(let text) = body["query"] ?? .null else {
            throw ServiceFailure(400, 400_004, "ArgumentInvalid", "the body must be {\"query\": \"SELECT …\"}")
        }
        let query: TwinQuery
        do throws(TwinQuery.ParseError) {
            query = try TwinQuery(parsing: text)
        } catch {
            throw ServiceFailure(400, 400_004, "ArgumentInvalid", "the query is not supported: \(error.description)")
        }
        let pageSize =
            try Self.integer(
                request.headers["x-ms-max-item-count"],
                name: "x-ms-max-item-count",
                range: 1...Self.maximumPageSize
            )
            ?? 100
        let start =
            try Self.integer(request.headers["x-ms-continuation"], name: "x-ms-continuation", range: 0...Int.max) ?? 0
        let identities =
            query.source == .devices ? await self.hub.deviceSnapshots() : await self.hub.moduleSnapshots(of: nil)
        var twins: [JSONValue] = []
        for identity in identities {
            let twin = Self.twinJSON(identity)
            if query.matches(twin) { twins.append(twin) }
        }
        let page = Array(twins.dropFirst(start).prefix(pageSize))
        var headers = [("x-ms-item-type", "twin")]
        if start + page.count < twins.count { headers.append(("x-ms-continuation", String(start + page.count))) }
        return Self.ok(.array(page), headers: headers)
    }

    // MARK: - JSON

    private static func jsonBody(_ request: HTTPRequest) throws(ServiceFailure) -> JSONValue {
        do throws(AzureIoTError) {
            return try JSONValue(parsing: request.body.isEmpty ? Array("{}".utf8) : request.body)
        } catch {
            throw ServiceFailure(400, 400_004, "ArgumentInvalid", "the body is not valid JSON: \(error.message)")
        }
    }

    private static func integer(_ text: String?, name: String, range: ClosedRange<Int>) throws(ServiceFailure) -> Int? {
        guard let text else { return nil }
        guard text.utf8.count <= 18, let value = Int(text), range.contains(value) else {
            throw ServiceFailure(400, 400_004, "ArgumentInvalid", "\(name) must be a whole number in \(range)")
        }
        return value
    }

    private static let neverTime = "0001-01-01T00:00:00Z"

    private static func time(_ date: Date?) -> JSONValue {
        .string(date.map(ProvisioningService.timestamp) ?? Self.neverTime)
    }

    private static func authenticationJSON(_ identity: EmulatedHub.Identity) -> JSONValue {
        func value(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }
        return [
            "type": .string(identity.authentication.rawValue),
            "symmetricKey": [
                "primaryKey": value(identity.key?.base64EncodedSecret),
                "secondaryKey": value(identity.secondaryKey?.base64EncodedSecret),
            ],
            "x509Thumbprint": [
                "primaryThumbprint": value(identity.thumbprint),
                "secondaryThumbprint": value(identity.secondaryThumbprint),
            ],
        ]
    }

    /// A device or module as `GET /devices/{id}` and `GET /devices/{id}/modules/{m}` return it.
    static func identityJSON(_ snapshot: IdentitySnapshot) -> JSONValue {
        let registry = snapshot.identity.registry
        var members: [String: JSONValue] = [
            "deviceId": .string(snapshot.name.deviceId),
            "generationId": .string(registry.generationId),
            "etag": .string(snapshot.etag),
            "connectionState": .string(snapshot.connected ? "Connected" : "Disconnected"),
            "connectionStateUpdatedTime": Self.time(registry.connectionStateUpdatedTime),
            "lastActivityTime": Self.time(registry.lastActivityTime),
            "cloudToDeviceMessageCount": .number(JSONNumber(snapshot.cloudToDeviceMessageCount)),
            "authentication": Self.authenticationJSON(snapshot.identity),
        ]
        if let moduleId = snapshot.name.moduleId {
            members["moduleId"] = .string(moduleId)
            members["managedBy"] = registry.managedBy.map(JSONValue.string) ?? .null
        } else {
            members["status"] = .string(registry.enabled ? "enabled" : "disabled")
            members["statusReason"] = registry.statusReason.map(JSONValue.string) ?? .null
            members["statusUpdatedTime"] = Self.time(registry.statusUpdatedTime)
            members["capabilities"] = ["iotEdge": .bool(registry.iotEdge)]
        }
        return .object(members)
    }

    /// A twin as `GET /twins/{id}` returns it.
    static func twinJSON(_ snapshot: IdentitySnapshot) -> JSONValue {
        let registry = snapshot.identity.registry
        let twin = snapshot.identity.twin
        let updated = ProvisioningService.timestamp(Date())
        func section(_ document: JSONValue, version: Int) -> JSONValue {
            var members = document.objectValue
            members["$version"] = .number(JSONNumber(version))
            members["$metadata"] = ["$lastUpdated": .string(updated)]
            return .object(members)
        }
        var members: [String: JSONValue] = [
            "deviceId": .string(snapshot.name.deviceId),
            "etag": .string(snapshot.twinETag),
            "deviceEtag": .string(snapshot.etag),
            "status": .string(registry.enabled ? "enabled" : "disabled"),
            "statusUpdateTime": Self.time(registry.statusUpdatedTime),
            "connectionState": .string(snapshot.connected ? "Connected" : "Disconnected"),
            "lastActivityTime": Self.time(registry.lastActivityTime),
            "cloudToDeviceMessageCount": .number(JSONNumber(snapshot.cloudToDeviceMessageCount)),
            "authenticationType": .string(snapshot.identity.authentication.rawValue),
            "x509Thumbprint": [
                "primaryThumbprint": snapshot.identity.thumbprint.map(JSONValue.string) ?? .null,
                "secondaryThumbprint": snapshot.identity.secondaryThumbprint.map(JSONValue.string) ?? .null,
            ],
            "modelId": .string(snapshot.modelId ?? ""),
            "version": .number(JSONNumber(registry.twinVersion)),
            "tags": registry.tags,
            "properties": [
                "desired": section(twin.desired, version: twin.desiredVersion),
                "reported": section(twin.reported, version: twin.reportedVersion),
            ],
            "capabilities": ["iotEdge": .bool(registry.iotEdge)],
        ]
        if let moduleId = snapshot.name.moduleId { members["moduleId"] = .string(moduleId) }
        return .object(members)
    }

    /// Text from a request that is safe to put in an answer or a log line: printable and short.
    static func printable(_ text: String) -> String {
        let clipped = text.prefix(128)
        return clipped.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F })
            ? String(clipped) : "<unprintable>"
    }
}

/// A service API failure with IoT Hub's status, numeric code and name.
struct ServiceFailure: Error {
    var status: Int
    var code: Int
    var name: String
    var message: String

    init(_ status: Int, _ code: Int, _ name: String, _ message: String) {
        self.status = status
        self.code = code
        self.name = name
        self.message = message
    }

    init(_ failure: RegistryFailure) {
        switch failure {
        case .deviceNotFound(let id):
            self.init(404, 404_001, "DeviceNotFound", "the device '\(ServiceAPI.printable(id))' is not registered")
        case .moduleNotFound(let name):
            self.init(
                404,
                404_010,
                "ModuleNotFound",
                "the module '\(ServiceAPI.printable(name.description))' is not registered"
            )
        case .alreadyExists(let name) where name.moduleId != nil:
            self.init(
                409,
                409_301,
                "ModuleAlreadyExistsOnDevice",
                "the module '\(ServiceAPI.printable(name.description))' already exists"
            )
        case .alreadyExists(let name):
            self.init(
                409,
                409_001,
                "DeviceAlreadyExists",
                "the device '\(ServiceAPI.printable(name.deviceId))' already exists"
            )
        case .preconditionFailed(let reason):
            self.init(412, 412_002, "PreconditionFailed", ServiceAPI.printable(reason))
        case .invalid(let reason):
            self.init(400, 400_004, "ArgumentInvalid", reason)
        }
    }

    var response: HTTPResponse { ServiceAPI.error(self.status, self.code, self.name, self.message) }
}
