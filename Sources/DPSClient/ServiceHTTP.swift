package import AzureIoTCore

/// One HTTPS request through the SDK's libcurl engine, for the package's own tools (the `azure-iot service`
/// commands call IoT Hub's service REST API with it). Not public API.
package enum ServiceHTTP {
    /// What came back.
    package struct Response: Sendable {
        /// The HTTP status.
        package var status: Int
        /// Headers, names lower-cased.
        package var headers: [String: String]
        /// The body.
        package var body: [UInt8]
        /// IoT Hub's `iothub-errorcode` header.
        package var errorCode: String? { self.headers["iothub-errorcode"] }
    }

    /// Performs the request; transport failures throw `AzureIoTError`.
    package static func perform(
        method: String,
        url: String,
        headers: [(String, String)],
        body: [UInt8]?,
        tls: TLSConfiguration,
        timeout: Duration
    ) async throws -> Response {
        let response = try await CurlEngine.shared.perform(
            HTTPRequest(method: method, url: url, headers: headers, body: body),
            tls: tls,
            timeout: timeout,
            userAgent: "\(SDKVersion.clientName) (service)"
        )
        return Response(status: response.status, headers: response.headers, body: response.body)
    }

    /// Performs a plain HTTP request, over the unix socket at `socketPath` when there is one (the IoT Edge workload
    /// API), never through a proxy; transport failures throw `AzureIoTError`.
    package static func perform(
        method: String,
        url: String,
        unixSocketPath socketPath: String?,
        headers: [(String, String)],
        body: [UInt8]?,
        timeout: Duration,
        userAgent: String
    ) async throws -> Response {
        var request = HTTPRequest(method: method, url: url, headers: headers, body: body)
        request.unixSocketPath = socketPath
        request.direct = true
        let response = try await CurlEngine.shared.perform(
            request,
            tls: TLSConfiguration(),
            timeout: timeout,
            userAgent: userAgent
        )
        return Response(status: response.status, headers: response.headers, body: response.body)
    }
}
