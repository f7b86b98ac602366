import AzureIoTCore
import DPSClient

/// The IoT Edge workload API, as a module calls it: HMAC signatures with the module's key (which never leaves the
/// Edge runtime) and the trust bundle that edgeHub's server certificate chains to. Requests go through the system
/// libcurl, over the unix socket (`CURLOPT_UNIX_SOCKET_PATH`) or to an HTTP listener, never through a proxy; each
/// is bounded by ``timeout`` and honours task cancellation.
public struct WorkloadClient: Sendable {
    /// Where the API listens.
    public var uri: EdgeEnvironment.WorkloadURI
    /// The `api-version` sent with every request.
    public var apiVersion: String
    /// How long one request may take.
    public var timeout: Duration

    /// The largest trust bundle taken (a handful of PEM certificates is a few KB).
    public static let maximumTrustBundleBytes = 256 * 1024

    /// A client for the API at `uri`.
    public init(
        uri: EdgeEnvironment.WorkloadURI,
        apiVersion: String = EdgeEnvironment.defaultAPIVersion,
        timeout: Duration = .seconds(30)
    ) {
        self.uri = uri
        self.apiVersion = apiVersion
        self.timeout = timeout
    }

    /// The client for the module described by `environment`.
    public init(environment: EdgeEnvironment, timeout: Duration = .seconds(30)) {
        self.init(uri: environment.workloadURI, apiVersion: environment.apiVersion, timeout: timeout)
    }

    /// Signs `data` with HMAC-SHA256 under the module's `keyId` key (`primary` or `secondary`):
    /// `POST /modules/{moduleId}/genid/{generationId}/sign`. Returns the raw 32-byte digest.
    public func sign(
        moduleId: String,
        generationId: String,
        keyId: String = "primary",
        data: [UInt8]
    ) async throws(EdgeError) -> [UInt8] {
        let body = JSONValue.object([
            "keyId": .string(keyId), "algo": .string("HMACSHA256"), "data": .string(Base64.encode(data)),
        ])
        let path =
            "/modules/\(PercentEncoding.encode(moduleId))/genid/\(PercentEncoding.encode(generationId))/sign"
        let json = try await self.request("POST", path, body: body.jsonBytes, what: "sign")
        guard let text = json["digest"]?.stringValue else {
            throw EdgeError(.malformedResponse, "the workload API's sign answer has no digest")
        }
        let digest: [UInt8]
        do {
            digest = try Base64.decode(text, what: "the workload API's digest")
        } catch {
            throw EdgeError(.malformedResponse, "the workload API's digest is not base64", underlying: error)
        }
        guard digest.count == 32 else {
            throw EdgeError(.malformedResponse, "the workload API's digest has \(digest.count) bytes, not 32")
        }
        return digest
    }

    /// The CA certificates to trust for edgeHub, as PEM text: `GET /trust-bundle`. Throws
    /// ``EdgeError/Code/invalidTrustBundle`` when none can be loaded.
    public func trustBundle() async throws(EdgeError) -> String {
        let json = try await self.request("GET", "/trust-bundle", body: nil, what: "trust-bundle")
        guard let pem = json["certificate"]?.stringValue else {
            throw EdgeError(.malformedResponse, "the workload API's trust bundle has no certificate")
        }
        let certificates: [X509Certificate]
        do {
            certificates = try X509Certificate.certificates(fromPEM: pem)
        } catch {
            throw EdgeError(.invalidTrustBundle, "the workload API's trust bundle cannot be loaded", underlying: error)
        }
        guard !certificates.isEmpty else {
            throw EdgeError(.invalidTrustBundle, "the workload API's trust bundle holds no certificate")
        }
        return pem
    }

    private func request(_ method: String, _ path: String, body: [UInt8]?, what: String) async throws(EdgeError)
        -> JSONValue
    {
        let query = "?api-version=\(PercentEncoding.encode(self.apiVersion))"
        let response: ServiceHTTP.Response
        do {
            switch self.uri {
            case .unixSocket(let socket):
                response = try await ServiceHTTP.perform(
                    method: method,
                    url: "http://localhost\(path)\(query)",
                    unixSocketPath: socket,
                    headers: body == nil ? [] : [("Content-Type", "application/json")],
                    body: body,
                    timeout: self.timeout,
                    userAgent: "\(SDKVersion.clientName) (edge module)"
                )
            case .http(let base):
                response = try await ServiceHTTP.perform(
                    method: method,
                    url: "\(base)\(path)\(query)",
                    unixSocketPath: nil,
                    headers: body == nil ? [] : [("Content-Type", "application/json")],
                    body: body,
                    timeout: self.timeout,
                    userAgent: "\(SDKVersion.clientName) (edge module)"
                )
            }
        } catch let error as AzureIoTError {
            throw EdgeError(.workloadUnavailable, "the workload API at \(self.uri) did not answer", underlying: error)
        } catch is CancellationError {
            throw EdgeError(.workloadUnavailable, "the workload request was cancelled")
        } catch {
            throw EdgeError(.workloadUnavailable, "the workload API at \(self.uri) did not answer: \(error)")
        }
        guard (200..<300).contains(response.status) else {
            // IoT Edge answers errors as {"message": "…"}; it names the module, never a key.
            let reason = (try? JSONValue(parsing: response.body))?["message"]?.stringValue.map { ": \($0.prefix(200))" }
            throw EdgeError(
                .workloadRefused,
                "the workload API refused \(what)\(reason ?? "")",
                status: response.status
            )
        }
        guard response.body.count <= Self.maximumTrustBundleBytes else {
            throw EdgeError(
                .malformedResponse,
                "the workload API's \(what) answer is over \(Self.maximumTrustBundleBytes) bytes"
            )
        }
        do {
            return try JSONValue(parsing: response.body)
        } catch {
            throw EdgeError(.malformedResponse, "the workload API's \(what) answer is not JSON", underlying: error)
        }
    }
}
