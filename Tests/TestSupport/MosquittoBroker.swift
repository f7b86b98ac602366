import Foundation

/// A real mosquitto broker on 127.0.0.1 for the MQTT tests, with four listeners:
/// - `passwordPort`: TLS, user name + password from a password file (the SAS token the client computes);
/// - `certificatePort`: TLS, client certificate required, its CN becomes the user name;
/// - `anyPasswordPort`: TLS, any user name and password accepted (tokens that change every run);
/// - `plainPort`: no TLS, anonymous: for the "hub side" helpers (`mosquitto_sub`/`mosquitto_pub`).
/// `log_type all` goes to the output, so tests can read what the broker received.
public final class MosquittoBroker: Sendable {
    public let passwordPort: Int
    public let certificatePort: Int
    public let anyPasswordPort: Int
    public let plainPort: Int
    public let directory: String
    private let configPath: String
    private let peers = PeerBox()

    private final class PeerBox: @unchecked Sendable {
        private let lock = NSLock()
        private var current: PeerProcess?
        /// The brokers before a restart, kept whole: a killed broker's last log lines may still be in the pipe when
        /// the next one starts (a loaded machine reads them late), and they count.
        private var previous: [PeerProcess] = []
        func set(_ peer: PeerProcess?) {
            self.lock.lock()
            if let old = self.current { self.previous.append(old) }
            self.current = peer
            self.lock.unlock()
        }
        var output: String {
            self.lock.lock()
            defer { self.lock.unlock() }
            return (self.previous + (self.current.map { [$0] } ?? [])).map(\.output).joined(separator: "\n")
        }
        func stop() {
            self.lock.lock()
            let peer = self.current
            self.lock.unlock()
            peer?.stop()
        }
        var currentPeer: PeerProcess? {
            self.lock.lock()
            defer { self.lock.unlock() }
            return self.current
        }
        var pid: Int32? {
            self.lock.lock()
            defer { self.lock.unlock() }
            return self.current?.processIdentifier
        }
    }

    /// Writes the configuration and starts the broker. `users` maps user names to passwords for `passwordPort`.
    public init(pki: TestPKI, users: [String: String] = [:]) async throws {
        let directory = NSTemporaryDirectory() + "mosquitto-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.passwordPort = try PeerProcess.freePort()
        self.certificatePort = try PeerProcess.freePort()
        self.anyPasswordPort = try PeerProcess.freePort()
        self.plainPort = try PeerProcess.freePort()
        let passwordFile = directory + "/passwd"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: nil)
        for (user, password) in users {
            let result = try await PeerProcess.complete(
                "/usr/bin/mosquitto_passwd",
                ["-b", passwordFile, user, password]
            )
            guard result.status == 0 else { throw TestFailure("mosquitto_passwd failed: \(result.output)") }
        }
        let tls =
            "cafile \(pki.path("ca.pem"))\ncertfile \(pki.path("server.pem"))\nkeyfile \(pki.path("server.key"))\n"
        let config = """
            per_listener_settings true
            persistence false
            user root
            log_dest stderr
            log_type all
            connection_messages true
            max_queued_messages 100000
            listener \(self.passwordPort) 127.0.0.1
            protocol mqtt
            \(tls)allow_anonymous false
            password_file \(passwordFile)
            listener \(self.certificatePort) 127.0.0.1
            protocol mqtt
            \(tls)require_certificate true
            use_identity_as_username true
            allow_anonymous false
            listener \(self.anyPasswordPort) 127.0.0.1
            protocol mqtt
            \(tls)allow_anonymous true
            listener \(self.plainPort) 127.0.0.1
            protocol mqtt
            allow_anonymous true

            """
        self.configPath = directory + "/mosquitto.conf"
        try config.write(toFile: self.configPath, atomically: true, encoding: .utf8)
        try await self.start()
    }

    /// Starts (or restarts) the broker process on the same ports.
    public func start() async throws {
        var lastError: any Error = TestFailure("mosquitto did not start")
        for _ in 0..<20 {
            do {
                let peer = try await PeerProcess(
                    "/usr/sbin/mosquitto",
                    ["-c", self.configPath],
                    readyMarker: " running"
                )
                self.peers.set(peer)
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))  // the old process may still hold the ports
            }
        }
        throw lastError
    }

    /// Kills the broker (SIGKILL, as a crash would).
    public func kill() { self.peers.stop() }

    /// Pauses or resumes the broker process (SIGSTOP/SIGCONT), to simulate a dead peer.
    public func pause(_ paused: Bool) {
        if let pid = self.peers.pid { Foundation.kill(pid, paused ? SIGSTOP : SIGCONT) }
    }

    /// Everything every broker process of this instance logged.
    public var log: String { self.peers.output }

    deinit { self.peers.stop() }
}

/// A `mosquitto_sub` on the broker's plain port printing `topic|payload` lines: the hub side's eyes.
public final class HubSideSubscriber: Sendable {
    private let peer: PeerProcess

    /// Subscribes to `filters` (QoS 1) and waits until the subscription is in place.
    public init(broker: MosquittoBroker, filters: [String]) async throws {
        // stdbuf: mosquitto_sub's stdout is block-buffered when it is a pipe.
        var arguments = [
            "-oL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(broker.plainPort), "-q", "1", "-F",
            "%t|%p", "-d",
        ]
        for filter in filters { arguments += ["-t", filter] }
        self.peer = try await PeerProcess("/usr/bin/stdbuf", arguments, readyMarker: "received SUBACK")
    }

    /// The `topic|payload` lines received so far (debug lines from `-d` are left out).
    public var lines: [String] { Self.lines(in: self.peer.output) }

    private static func lines(in output: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("Client ") && !$0.hasPrefix("Subscribed")
        }
    }

    /// Waits until a line satisfies `predicate` (checked as lines arrive); returns it, or nil after the timeout.
    public func waitForLine(
        timeout: Duration = .seconds(10),
        where predicate: @escaping @Sendable (String) -> Bool
    ) async -> String? {
        _ = await self.peer.waitForOutput(timeout: timeout) { Self.lines(in: $0).contains(where: predicate) }
        return self.lines.first(where: predicate)
    }

    public func stop() { self.peer.stop() }
    deinit { self.peer.stop() }
}

extension MosquittoBroker {
    /// Waits until the broker's log (which reaches us asynchronously) contains `text`: the running broker's output
    /// is watched as it arrives (a broker started again meanwhile is watched in turn).
    public func waitForLog(containing text: String, timeout: Duration = .seconds(5)) async -> Bool {
        let end = ContinuousClock.now + timeout
        while true {
            if self.log.contains(text) { return true }
            let left = end - ContinuousClock.now
            guard left > .zero, let peer = self.peers.currentPeer else { return false }
            if await peer.waitForOutput(containing: text, timeout: left) { return true }
            // The broker was started again while we waited: watch the new one for the rest of the time.
            guard self.peers.currentPeer !== peer else { return self.log.contains(text) }
        }
    }

    /// Waits until the broker logged a SUBSCRIBE from `clientId`.
    public func waitForSubscription(of clientId: String, timeout: Duration = .seconds(10)) async -> Bool {
        await self.waitForLog(containing: "Received SUBSCRIBE from \(clientId)", timeout: timeout)
    }

    /// Publishes as the hub would (QoS 1, on the plain port).
    public func hubPublish(topic: String, payload: String) async throws {
        let result = try await PeerProcess.complete(
            "/usr/bin/mosquitto_pub",
            ["-h", "127.0.0.1", "-p", String(self.plainPort), "-q", "1", "-t", topic, "-m", payload]
        )
        guard result.status == 0 else { throw TestFailure("mosquitto_pub failed: \(result.output)") }
    }
}
