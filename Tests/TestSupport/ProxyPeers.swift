import Foundation

/// Proxies on loopback for the proxy tests: tinyproxy (HTTP CONNECT with Basic credentials, logging each CONNECT)
/// and microsocks (SOCKS5 with a user name and password).
public struct ProxyPeer: Sendable {
    /// The user name both proxies require.
    public static let user = "gateway"
    /// The password both proxies require (a secret: tests check that it never shows).
    public static let password = "pr0xy-s3cret"

    /// The running proxy.
    public let process: PeerProcess
    /// Its port on 127.0.0.1.
    public let port: Int
    /// tinyproxy's log (each CONNECT is a line); empty for microsocks.
    public let logPath: String?

    /// tinyproxy requiring ``user``/``password`` and allowing CONNECT to `ports` only.
    public static func tinyproxy(allowing ports: [Int]) async throws -> ProxyPeer {
        let port = try PeerProcess.freePort()
        let folder = NSTemporaryDirectory() + "tinyproxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = folder + "/tinyproxy.log"
        var configuration = "Port \(port)\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\n"
        configuration += "BasicAuth \(Self.user) \(Self.password)\nLogLevel Connect\nLogFile \"\(log)\"\n"
        for allowed in ports { configuration += "ConnectPort \(allowed)\n" }
        try configuration.write(toFile: folder + "/tinyproxy.conf", atomically: true, encoding: .utf8)
        let process = try await PeerProcess(
            "/usr/bin/tinyproxy",
            ["-d", "-c", folder + "/tinyproxy.conf"],
            readyMarker: nil
        )
        try await Self.waitForListener(port)
        return ProxyPeer(process: process, port: port, logPath: log)
    }

    /// microsocks requiring ``user``/``password``.
    public static func microsocks() async throws -> ProxyPeer {
        let port = try PeerProcess.freePort()
        let process = try await PeerProcess(
            "/usr/bin/microsocks",
            ["-i", "127.0.0.1", "-p", "\(port)", "-u", Self.user, "-P", Self.password],
            readyMarker: nil
        )
        try await Self.waitForListener(port)
        return ProxyPeer(process: process, port: port, logPath: nil)
    }

    /// tinyproxy's log so far.
    public var log: String { self.logPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }

    /// Waits until something accepts connections on `port` of 127.0.0.1.
    public static func waitForListener(_ port: Int) async throws {
        try await eventually("a listener on port \(port)") {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        }
    }
}
