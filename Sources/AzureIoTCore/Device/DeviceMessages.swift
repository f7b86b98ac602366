// What a device client receives and answers, whichever transport carries it (MQTT or AMQP).

/// A desired-properties change pushed by the hub, or found by re-reading the twin after a reconnect.
public struct DesiredPropertyPatch: Sendable {
    /// The desired-properties version after this change.
    public let version: Int?
    /// The JSON patch (`null` values delete), or the whole desired section after a reconnect.
    public let json: [UInt8]
    /// Whether this came from re-reading the twin after a reconnect rather than from a push.
    public let isFullDocument: Bool

    package init(version: Int?, json: [UInt8], isFullDocument: Bool) {
        self.version = version
        self.json = json
        self.isFullDocument = isFullDocument
    }
}

/// The device twin: the desired and reported sections as JSON, with their versions.
public struct Twin: Sendable {
    /// The whole twin document as IoT Hub returned it.
    public let json: [UInt8]
    /// `desired.$version`.
    public let desiredVersion: Int?
    /// `reported.$version`.
    public let reportedVersion: Int?

    package init(json: [UInt8], desiredVersion: Int?, reportedVersion: Int?) {
        self.json = json
        self.desiredVersion = desiredVersion
        self.reportedVersion = reportedVersion
    }

    /// Reads the versions from a twin document (`{"desired": {…}, "reported": {…}}`).
    package init(document json: [UInt8]) {
        let document = try? JSONValue(parsing: json)
        func version(_ section: String) -> Int? {
            document?[section]?["$version"]?.int64Value.flatMap { Int(exactly: $0) }
        }
        self.init(json: json, desiredVersion: version("desired"), reportedVersion: version("reported"))
    }
}

/// A direct-method call. Answer it exactly once with ``respond(status:payload:)``.
public struct MethodRequest: Sendable {
    /// The method name (`{component}*{command}` for Plug and Play commands).
    public let name: String
    /// The request id to echo.
    public let requestId: String
    /// The JSON payload (may be empty).
    public let payload: [UInt8]
    let responder: @Sendable (Int, [UInt8]) async throws -> Void

    package init(
        name: String,
        requestId: String,
        payload: [UInt8],
        responder: @escaping @Sendable (Int, [UInt8]) async throws -> Void
    ) {
        self.name = name
        self.requestId = requestId
        self.payload = payload
        self.responder = responder
    }

    /// Sends the response: a status (e.g. 200) and a JSON payload.
    public func respond(status: Int, payload: [UInt8] = Array("{}".utf8)) async throws {
        try await self.responder(status, payload)
    }
}
