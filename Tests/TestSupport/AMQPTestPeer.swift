import Foundation

/// The qpid-proton AMQP 1.0 peer (`Tests/Peers/amqp_server.py`) over TLS with SASL PLAIN checked by cyrus-sasl
/// against a sasldb holding `users` (`device@sas.hub` → password).
public final class AMQPTestPeer: Sendable {
    /// The Python with qpid-proton that `scripts/ensure-deps.sh test` builds into `.build-peers/venv`.
    public static var python: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build-peers/venv/bin/python").path
    }

    public let port: Int
    private let peer: PeerProcess
    private let receivedPath: String

    public init(pki: TestPKI, users: [String: String], c2d: [[String: any Sendable]] = []) async throws {
        let directory = NSTemporaryDirectory() + "amqp-\(UUID().uuidString)"
        let saslDirectory = directory + "/sasl"
        try FileManager.default.createDirectory(atPath: saslDirectory, withIntermediateDirectories: true)
        let database = saslDirectory + "/sasldb2"
        try "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: \(database)\nmech_list: PLAIN\n"
            .write(toFile: saslDirectory + "/proton-server.conf", atomically: true, encoding: .utf8)
        for (user, password) in users {
            // cyrus splits the PLAIN identity at '@': user "dev1" in realm "sas.hub".
            let parts = user.split(separator: "@", maxSplits: 1).map(String.init)
            let result = try await PeerProcess.complete(
                "/usr/sbin/saslpasswd2",
                ["-c", "-p", "-f", database, "-u", parts[1], parts[0]],
                input: password
            )
            guard result.status == 0 else { throw TestFailure("saslpasswd2 failed: \(result.output)") }
        }
        self.receivedPath = directory + "/received.jsonl"
        _ = FileManager.default.createFile(atPath: self.receivedPath, contents: nil)
        let c2dPath = directory + "/c2d.json"
        try JSONSerialization.data(withJSONObject: c2d).write(to: URL(fileURLWithPath: c2dPath))
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let python = Self.python
        let script = root.appendingPathComponent("Tests/Peers/amqp_server.py").path
        var environment = ProcessInfo.processInfo.environment
        environment["PN_SASL_CONFIG_PATH"] = saslDirectory
        // A port that was free when chosen can be taken before the peer binds it: then another one.
        var attempt = 0
        while true {
            let port = try PeerProcess.freePort()
            do {
                self.peer = try await PeerProcess(
                    python,
                    [
                        script, String(port), pki.path("server.pem"), pki.path("server.key"), saslDirectory,
                        self.receivedPath, c2dPath,
                    ],
                    readyMarker: "READY",
                    environment: environment
                )
                self.port = port
                return
            } catch let error as TestFailure where attempt < 3 && error.description.contains("exited early") {
                attempt += 1
            }
        }
    }

    /// The events the peer logged, as JSON objects.
    public func events() throws -> [[String: Any]] {
        let text = try String(contentsOfFile: self.receivedPath, encoding: .utf8)
        return try text.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Waits until an event satisfies `predicate`.
    public func waitForEvent(timeout: Duration = .seconds(10), where predicate: ([String: Any]) -> Bool) async
        -> [String: Any]?
    {
        let end = ContinuousClock.now + timeout
        while true {
            // The peer prints "EVENT n" after it wrote its n-th event: wait for the next one, not on a poll.
            let events = (try? self.events()) ?? []
            if let event = events.first(where: predicate) { return event }
            let left = end - ContinuousClock.now
            guard left > .zero else { return nil }
            guard await self.peer.waitForOutput(containing: "EVENT \(events.count + 1)\n", timeout: left) else {
                // The time is up, or the peer's output ended (it exited): what the file holds is all there is.
                return (try? self.events())?.first(where: predicate)
            }
        }
    }

    public var output: String { self.peer.output }
    public func stop() { self.peer.stop() }
    deinit { self.peer.stop() }
}
