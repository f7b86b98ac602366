import Foundation

/// The local DPS peer (`Tests/Peers/dps_server.py`) on 127.0.0.1 over TLS, with enrollments and behaviours chosen
/// by the test, and the JSONL log of every request it saw.
public final class DPSTestServer: Sendable {
    /// The ID scope it serves.
    public static let idScope = "0ne00TEST01"
    /// The hub it assigns devices to.
    public static let hub = "test-hub.azure-devices.net"

    /// One request as the server logged it.
    public struct LoggedRequest: Decodable, Sendable {
        public let method: String
        public let path: String
        public let headers: [String: String]
        public let body: String
        public let clientCN: String?
        public let auth: String?
        public let outcome: String
        public let time: Double
    }

    public let port: Int
    public let logPath: String
    private let peer: PeerProcess

    /// Starts the server. `individual` maps registration ids to base64 keys; `groups` maps group ids to base64
    /// group keys; `behaviors` maps registration ids to behaviour objects (see dps_server.py).
    public init(
        pki: TestPKI,
        individual: [String: String] = [:],
        groups: [String: String] = [:],
        behaviors: [String: [String: any Sendable]] = [:]
    ) async throws {
        let directory = NSTemporaryDirectory() + "dps-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "idScope": Self.idScope,
            "hub": Self.hub,
            "individual": individual,
            "groups": groups.map { ["groupId": $0.key, "key": $0.value] },
            "behaviors": behaviors,
            "serverCert": pki.path("server.pem"),
            "serverKey": pki.path("server.key"),
            "clientCA": pki.path("ca.pem"),
        ]
        let configPath = directory + "/config.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        self.logPath = directory + "/requests.jsonl"
        _ = FileManager.default.createFile(atPath: self.logPath, contents: nil)
        self.peer = try await PeerProcess(
            "/usr/bin/env",
            ["python3", Self.script, configPath, self.logPath],
            readyMarker: "READY "
        )
        guard let line = self.peer.output.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }),
            let port = Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { throw TestFailure("dps_server.py did not report its port: \(self.peer.output)") }
        self.port = port
    }

    /// `localhost:port`, the endpoint a client passes.
    public var endpoint: String { "localhost:\(self.port)" }

    /// Every request logged so far.
    public func requests() throws -> [LoggedRequest] {
        let text = try String(contentsOfFile: self.logPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(LoggedRequest.self, from: Data($0.utf8)) }
    }

    /// Stops the server.
    public func stop() { self.peer.stop() }

    deinit { self.peer.stop() }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Peers/dps_server.py").path
}
