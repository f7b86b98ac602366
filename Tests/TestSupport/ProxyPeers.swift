import Foundation

/// Proxies on loopback for the proxy tests: tinyproxy (HTTP CONNECT with Basic credentials, logging each CONNECT),
/// squid (Digest, or NTLM) and microsocks (SOCKS5 with a user name and password).
public struct ProxyPeer: Sendable {
    /// The user name both proxies require.
    public static let user = "gateway"
    /// The password both proxies require (a secret: tests check that it never shows).
    public static let password = "pr0xy-s3cret"

    /// The running proxy.
    public let process: PeerProcess
    /// Its port on 127.0.0.1.
    public let port: Int
    /// tinyproxy's or squid's log (each CONNECT is a line); empty for microsocks.
    public let logPath: String?

    /// tinyproxy requiring ``user``/``password`` (unless `credentials` is false) and allowing CONNECT to `ports` only.
    public static func tinyproxy(allowing ports: [Int], credentials: Bool = true) async throws -> ProxyPeer {
        let port = try PeerProcess.freePort()
        let folder = NSTemporaryDirectory() + "tinyproxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = folder + "/tinyproxy.log"
        var configuration = "Port \(port)\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\n"
        if credentials { configuration += "BasicAuth \(Self.user) \(Self.password)\n" }
        configuration += "LogLevel Connect\nLogFile \"\(log)\"\n"
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

    /// How squid authenticates proxy users.
    public enum SquidAuthentication: Sendable {
        /// HTTP Digest against ``user``/``password`` (a wrong password is refused).
        case digest
        /// NTLM through squid's `ntlm_fake_auth`, which runs the three-message handshake and accepts any user: it
        /// shows that the client speaks NTLM, not that it proves a password.
        case ntlm
        /// Negotiate (Kerberos) through squid's `negotiate_kerberos_auth`, which verifies the client's ticket for
        /// `HTTP/localhost` with the realm's keytab.
        case negotiate(KerberosRealm)
    }

    /// squid (Debian's) requiring `authentication` for every request, `CONNECT` to any port, logging each request.
    public static func squid(_ authentication: SquidAuthentication) async throws -> ProxyPeer {
        let port = try PeerProcess.freePort()
        let folder = NSTemporaryDirectory() + "squid-\(UUID().uuidString)"
        // squid drops to its own user when started as root: it must be able to write its logs here.
        try FileManager.default.createDirectory(
            atPath: folder,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o777]
        )
        let log = folder + "/access.log"
        var configuration = "http_port 127.0.0.1:\(port)\npid_filename \(folder)/squid.pid\n"
        configuration += "access_log stdio:\(log)\ncache_log \(folder)/cache.log\ncache_store_log none\n"
        configuration += "coredump_dir \(folder)\ncache deny all\npinger_enable off\nshutdown_lifetime 0 seconds\n"
        switch authentication {
        case .digest:
            try "\(Self.user):\(Self.password)\n".write(
                toFile: folder + "/digest.passwd",
                atomically: true,
                encoding: .utf8
            )
            configuration += "auth_param digest program /usr/lib/squid/digest_file_auth \(folder)/digest.passwd\n"
            configuration += "auth_param digest realm azure-iot-tests\nauth_param digest children 2\n"
        case .ntlm:
            configuration += "auth_param ntlm program /usr/lib/squid/ntlm_fake_auth\nauth_param ntlm children 2\n"
        case .negotiate(let realm):
            configuration += "auth_param negotiate program /usr/bin/env KRB5_CONFIG=\(realm.configurationPath) "
            configuration += "KRB5_KTNAME=\(realm.keytabPath) /usr/lib/squid/negotiate_kerberos_auth "
            configuration += "-s \(KerberosRealm.service)\nauth_param negotiate children 2\n"
        }
        configuration +=
            "acl authenticated proxy_auth REQUIRED\nhttp_access allow authenticated\nhttp_access deny all\n"
        try configuration.write(toFile: folder + "/squid.conf", atomically: true, encoding: .utf8)
        for file in ["squid.conf", "digest.passwd"] {
            _ = try? FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: folder + "/" + file)
        }
        let process = try await PeerProcess(
            "/usr/sbin/squid",
            ["-N", "-f", folder + "/squid.conf"],
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
