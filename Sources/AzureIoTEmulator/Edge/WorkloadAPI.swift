import AzureIoTCore
import Foundation

/// The IoT Edge workload API as the emulator serves it on its unix socket, for the modules of one Edge device:
/// `POST /modules/{m}/genid/{g}/sign` (HMAC-SHA256 with the module's primary or secondary key, checked against
/// the module identity's generation id) and `GET /trust-bundle` (the emulator's CA, which its server certificate
/// chains to). Errors are `{"message": "…"}`, as aziot-edged answers them. Any `api-version` is taken.
struct WorkloadAPI: Sendable {
    let hub: EmulatedHub
    let edgeDeviceId: String
    let trustBundlePEM: String

    /// The largest `data` to sign, decoded (a string to sign is a resource URI and an expiry).
    static let maximumSignedBytes = 4096

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard request.query["api-version"] != nil else {
            return Self.error(400, "the api-version query parameter is required")
        }
        if request.path == "/trust-bundle" {
            guard request.method == "GET" else { return Self.error(405, "trust-bundle is read with GET") }
            return Self.json(200, .object(["certificate": .string(self.trustBundlePEM)]))
        }
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].isEmpty, parts[1] == "modules", parts[3] == "genid", parts[5] == "sign",
            let moduleId = try? PercentEncoding.decode(parts[2]),
            let generationId = try? PercentEncoding.decode(parts[4])
        else {
            return Self.error(404, "no workload API route for \(request.method) \(request.path.prefix(200))")
        }
        guard request.method == "POST" else { return Self.error(405, "sign is called with POST") }
        guard let body = try? JSONValue(parsing: request.body), case .object = body else {
            return Self.error(400, "the sign request body is not a JSON object")
        }
        guard body["algo"]?.stringValue == "HMACSHA256" else {
            return Self.error(400, "algo must be HMACSHA256")
        }
        let keyId = body["keyId"]?.stringValue ?? ""
        guard keyId == "primary" || keyId == "secondary" else {
            return Self.error(400, "keyId must be primary or secondary")
        }
        guard let text = body["data"]?.stringValue, let data = try? Base64.decode(text, what: "data"),
            data.count <= Self.maximumSignedBytes
        else {
            return Self.error(400, "data must be base64 of at most \(Self.maximumSignedBytes) bytes")
        }
        let name = IdentityName(deviceId: self.edgeDeviceId, moduleId: moduleId)
        switch await self.hub.signForModule(name, generationId: generationId, secondary: keyId == "secondary", data) {
        case .signed(let digest):
            return Self.json(200, .object(["digest": .string(Base64.encode(digest))]))
        case .unknownModule:
            return Self.error(404, "module '\(moduleId.prefix(128))' not found")
        case .staleGeneration:
            return Self.error(404, "module '\(moduleId.prefix(128))' has no generation '\(generationId.prefix(64))'")
        case .noKey:
            return Self.error(400, "module '\(moduleId.prefix(128))' has no \(keyId) key")
        }
    }

    static func json(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: value.jsonBytes)
    }

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        self.json(status, .object(["message": .string(message)]))
    }
}
