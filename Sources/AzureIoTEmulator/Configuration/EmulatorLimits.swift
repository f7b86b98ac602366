import AzureIoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// What any one peer may make the emulator hold, so that a test harness or CI machine can leave it running in front
/// of any client. A limit that is hit ends only the connection that hit it, with that protocol's error (AMQP
/// `amqp:resource-limit-exceeded`, MQTT a closed connection, HTTP 413 or 431), and is logged once; connections over
/// a connection limit are accepted and closed at once, so the listener keeps serving everyone else.
///
/// Every field may be left out of the JSON configuration (`"limits": {…}`); the defaults suit a developer machine.
public struct EmulatorLimits: Sendable, Codable, Equatable {
    /// Open connections across DPS, MQTT and AMQP. Default: the process's open-file limit less an eighth (at least
    /// 64) kept for everything else, between 16 and 4096.
    public var maximumConnections: Int
    /// Open connections on any one port. Default: ``maximumConnections``.
    public var maximumConnectionsPerPort: Int
    /// Open connections from any one address. Default: three quarters of ``maximumConnections``, so that one host
    /// cannot lock every other out.
    public var maximumConnectionsPerSource: Int
    /// Seconds a client has to finish its TLS handshake (each in its own task). Default 10.
    public var handshakeTimeoutSeconds: Int
    /// TLS handshakes the emulator runs at once, across its listeners; further connections wait their turn (at most
    /// a handshake time-out). Default 64.
    public var maximumConcurrentHandshakes: Int
    /// AMQP links one connection may have attached. Default 64.
    public var maximumLinksPerConnection: Int
    /// Bytes of unfinished AMQP transfers a connection may hold before any identity has authenticated on it.
    /// Default 64 KiB (a CBS put-token is well under 4 KiB).
    public var maximumBufferedBytesBeforeAuthentication: Int
    /// Bytes of unfinished AMQP transfers a connection may hold once authenticated (all links together). Default
    /// 1 MiB: four messages of IoT Hub's 256 KB.
    public var maximumBufferedBytesPerConnection: Int
    /// Bytes waiting to be written to a client that does not read. Default 4 MiB.
    public var maximumPendingWriteBytes: Int
    /// The floor on a peer's AMQP idle time-out: the emulator sends its keep-alive frames no more often than
    /// this. Default 500 ms.
    public var minimumHeartbeatMilliseconds: Int
    /// The longest MQTT topic name accepted; IoT Hub also counts the property bag into a message's 256 KB.
    /// Default 16 KiB.
    public var maximumTopicBytes: Int
    /// The largest WebSocket frame a client may send on the WebSocket port; a larger one closes the connection with
    /// status 1009. Default 1 MiB (an MQTT or AMQP message of IoT Hub's 256 KB fits whole).
    public var maximumWebSocketFrameBytes: Int
    /// Device-to-cloud messages the Swift API keeps for ``IoTEmulator/telemetry(deviceId:)``; the oldest go first past
    /// this, so an emulator left running does not grow without end. Default 100,000. (The Event Hub-compatible
    /// endpoint keeps its own, per ``EmulatorConfiguration/EventHubSettings``.)
    public var maximumRetainedTelemetry: Int

    /// The defaults, sized from this process's open-file limit.
    public init() {
        let connections = min(4096, Self.connectionCeiling())
        self.maximumConnections = connections
        self.maximumConnectionsPerPort = connections
        self.maximumConnectionsPerSource = max(1, connections * 3 / 4)
        self.handshakeTimeoutSeconds = 10
        self.maximumConcurrentHandshakes = 64
        self.maximumLinksPerConnection = 64
        self.maximumBufferedBytesBeforeAuthentication = 64 * 1024
        self.maximumBufferedBytesPerConnection = 1024 * 1024
        self.maximumPendingWriteBytes = 4 * 1024 * 1024
        self.minimumHeartbeatMilliseconds = 500
        self.maximumTopicBytes = 16 * 1024
        self.maximumWebSocketFrameBytes = 1024 * 1024
        self.maximumRetainedTelemetry = 100_000
    }

    private enum CodingKeys: String, CodingKey {
        case maximumConnections, maximumConnectionsPerPort, maximumConnectionsPerSource, handshakeTimeoutSeconds,
            maximumConcurrentHandshakes
        case maximumLinksPerConnection, maximumBufferedBytesBeforeAuthentication, maximumBufferedBytesPerConnection
        case maximumPendingWriteBytes, minimumHeartbeatMilliseconds, maximumTopicBytes, maximumWebSocketFrameBytes
        case maximumRetainedTelemetry
    }

    /// Decodes limits; each one left out keeps its default.
    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func read(_ key: CodingKeys, _ value: inout Int) throws {
            if let decoded = try container.decodeIfPresent(Int.self, forKey: key) { value = decoded }
        }
        let explicitTotal = try container.decodeIfPresent(Int.self, forKey: .maximumConnections)
        if let explicitTotal {
            self.maximumConnections = explicitTotal
            self.maximumConnectionsPerPort = explicitTotal
            self.maximumConnectionsPerSource = max(1, explicitTotal * 3 / 4)
        }
        try read(.maximumConnectionsPerPort, &self.maximumConnectionsPerPort)
        try read(.maximumConnectionsPerSource, &self.maximumConnectionsPerSource)
        try read(.handshakeTimeoutSeconds, &self.handshakeTimeoutSeconds)
        try read(.maximumConcurrentHandshakes, &self.maximumConcurrentHandshakes)
        try read(.maximumLinksPerConnection, &self.maximumLinksPerConnection)
        try read(.maximumBufferedBytesBeforeAuthentication, &self.maximumBufferedBytesBeforeAuthentication)
        try read(.maximumBufferedBytesPerConnection, &self.maximumBufferedBytesPerConnection)
        try read(.maximumPendingWriteBytes, &self.maximumPendingWriteBytes)
        try read(.minimumHeartbeatMilliseconds, &self.minimumHeartbeatMilliseconds)
        try read(.maximumTopicBytes, &self.maximumTopicBytes)
        try read(.maximumWebSocketFrameBytes, &self.maximumWebSocketFrameBytes)
        try read(.maximumRetainedTelemetry, &self.maximumRetainedTelemetry)
    }

    /// The most connections this process can hold while keeping descriptors in reserve for everything else:
    /// libdispatch, for one, opens `/proc` files to manage its threads and stops the process when it cannot.
    /// The open-file limit less an eighth of it (at least 64).
    static func connectionCeiling() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(Int32.max) else {
            return 1_000_000
        }
        let files = Int(limit.rlim_cur)
        return max(16, files - max(64, files / 8))
    }

    /// These limits with the connection limits lowered to ``connectionCeiling()`` where they are above it.
    func clampedToDescriptors() -> (limits: EmulatorLimits, clamped: Bool) {
        let ceiling = Self.connectionCeiling()
        var limits = self
        limits.maximumConnections = min(limits.maximumConnections, ceiling)
        limits.maximumConnectionsPerPort = min(limits.maximumConnectionsPerPort, ceiling)
        limits.maximumConnectionsPerSource = min(limits.maximumConnectionsPerSource, ceiling)
        return (limits, limits != self)
    }

    /// Each limit's allowed range; a value outside it is a configuration error that names the field.
    static var ranges: [(name: String, path: KeyPath<EmulatorLimits, Int>, range: ClosedRange<Int>)] {
        [
            ("maximumConnections", \.maximumConnections, 1...1_000_000),
            ("maximumConnectionsPerPort", \.maximumConnectionsPerPort, 1...1_000_000),
            ("maximumConnectionsPerSource", \.maximumConnectionsPerSource, 1...1_000_000),
            ("handshakeTimeoutSeconds", \.handshakeTimeoutSeconds, 1...3600),
            ("maximumConcurrentHandshakes", \.maximumConcurrentHandshakes, 1...100_000),
            ("maximumLinksPerConnection", \.maximumLinksPerConnection, 4...65_536),
            ("maximumBufferedBytesBeforeAuthentication", \.maximumBufferedBytesBeforeAuthentication, 4096...(1 << 30)),
            ("maximumBufferedBytesPerConnection", \.maximumBufferedBytesPerConnection, 300 * 1024...(1 << 30)),
            ("maximumPendingWriteBytes", \.maximumPendingWriteBytes, 300 * 1024...(1 << 30)),
            ("minimumHeartbeatMilliseconds", \.minimumHeartbeatMilliseconds, 10...3_600_000),
            ("maximumTopicBytes", \.maximumTopicBytes, 256...65_535),
            ("maximumWebSocketFrameBytes", \.maximumWebSocketFrameBytes, 1024...(1 << 30)),
            ("maximumRetainedTelemetry", \.maximumRetainedTelemetry, 1...100_000_000),
        ]
    }

    /// Throws `AzureIoTError.invalidArgument` naming the first limit outside its range.
    func validate() throws(AzureIoTError) {
        for (name, path, range) in Self.ranges where !range.contains(self[keyPath: path]) {
            throw AzureIoTError(
                .invalidArgument,
                "limits.\(name) is \(self[keyPath: path]); it must be in \(range.lowerBound)...\(range.upperBound)"
            )
        }
    }
}

/// Counts the emulator's open connections, in all, per port and per source address, and admits a new one only
/// under every limit. Shared by the emulator's listeners.
final class ConnectionLimiter: Sendable {
    private struct State {
        var total = 0
        var perPort: [Int: Int] = [:]
        var perSource: [String: Int] = [:]
        var shedding = false
    }

    /// One admitted connection; ``release()`` gives its place back (once).
    final class Ticket: Sendable {
        private let limiter: ConnectionLimiter
        private let port: Int
        private let source: String
        private let released = AdaptiveLock(false)

        fileprivate init(limiter: ConnectionLimiter, port: Int, source: String) {
            self.limiter = limiter
            self.port = port
            self.source = source
        }

        func release() {
            let first = self.released.withLock { released -> Bool in
                defer { released = true }
                return !released
            }
            if first { self.limiter.release(port: self.port, source: self.source) }
        }

        deinit { self.release() }
    }

    /// Why a connection was shed, when it was.
    enum Refusal: Equatable, CustomStringConvertible {
        case total(Int)
        case port(Int)
        case source(Int)

        var description: String {
            switch self {
            case .total(let limit): return "the emulator holds its maximum of \(limit) connections"
            case .port(let limit): return "this port holds its maximum of \(limit) connections"
            case .source(let limit): return "this address holds its maximum of \(limit) connections"
            }
        }
    }

    let limits: EmulatorLimits
    private let state = AdaptiveLock(State())

    init(limits: EmulatorLimits) { self.limits = limits }

    /// A ticket for a new connection on `port` from `source`, or why there is none. `firstRefusal` is true for the
    /// first refusal since connections were last admitted, so that it is logged once.
    func admit(port: Int, source: String) -> (ticket: Ticket?, refusal: Refusal?, firstRefusal: Bool) {
        let outcome = self.state.withLock { state -> (Refusal?, Bool) in
            let refusal: Refusal?
            if state.total >= self.limits.maximumConnections {
                refusal = .total(self.limits.maximumConnections)
            } else if state.perPort[port, default: 0] >= self.limits.maximumConnectionsPerPort {
                refusal = .port(self.limits.maximumConnectionsPerPort)
            } else if state.perSource[source, default: 0] >= self.limits.maximumConnectionsPerSource {
                refusal = .source(self.limits.maximumConnectionsPerSource)
            } else {
                refusal = nil
            }
            guard refusal == nil else {
                defer { state.shedding = true }
                return (refusal, !state.shedding)
            }
            state.shedding = false
            state.total += 1
            state.perPort[port, default: 0] += 1
            state.perSource[source, default: 0] += 1
            return (nil, false)
        }
        if let refusal = outcome.0 { return (nil, refusal, outcome.1) }
        return (Ticket(limiter: self, port: port, source: source), nil, false)
    }

    /// Open connections in all.
    var openConnections: Int { self.state.withLock { $0.total } }

    fileprivate func release(port: Int, source: String) {
        let idle = self.state.withLock { state -> Bool in
            state.total -= 1
            state.perPort[port, default: 1] -= 1
            if state.perPort[port] == 0 { state.perPort[port] = nil }
            state.perSource[source, default: 1] -= 1
            if state.perSource[source] == 0 { state.perSource[source] = nil }
            return state.total == 0
        }
        // Once the last connection is gone, give the heap that a burst of clients (or an attack) left behind back to
        // the system, so the resident size falls back rather than staying at its peak.
        if idle { HeapTrim.returnFreedMemory() }
    }
}
