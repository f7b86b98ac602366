import Foundation

/// An MIT Kerberos realm of the test's own (`krb5kdc` from Debian's krb5-kdc, on a free loopback port, in a folder of
/// its own): a user principal with a password, and the `HTTP/localhost` service principal whose keytab a proxy
/// (squid's `negotiate_kerberos_auth`) verifies tickets with. Clients take part through ``environment(cache:)``.
public final class KerberosRealm: Sendable {
    public static let realm = "AZIOT.TEST"
    public static let user = "device@AZIOT.TEST"
    public static let userPassword = "device-password"
    public static let service = "HTTP/localhost@AZIOT.TEST"

    public let folder: String
    public let port: Int
    private let kdc: PeerProcess

    /// `krb5.conf`, for every Kerberos client and the proxy's helper.
    public var configurationPath: String { self.folder + "/krb5.conf" }
    /// The service principal's keytab.
    public var keytabPath: String { self.folder + "/http.keytab" }

    private init(folder: String, port: Int, kdc: PeerProcess) {
        self.folder = folder
        self.port = port
        self.kdc = kdc
    }

    /// Creates the realm's database and principals and starts its KDC.
    public static func start() async throws -> KerberosRealm {
        let folder = NSTemporaryDirectory() + "krb5-\(UUID().uuidString.prefix(8))"
        // The proxy's helper runs as squid's own user: it must read the configuration and the keytab.
        try FileManager.default.createDirectory(
            atPath: folder,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        let port = try PeerProcess.freePort()
        let client = """
            [libdefaults]
              default_realm = \(Self.realm)
              dns_lookup_kdc = false
              dns_lookup_realm = false
              rdns = false
              dns_canonicalize_hostname = false
              udp_preference_limit = 1
            [realms]
              \(Self.realm) = {
                kdc = 127.0.0.1:\(port)
              }
            [domain_realm]
              localhost = \(Self.realm)

            """
        let server = """
            [kdcdefaults]
              kdc_ports = \(port)
              kdc_tcp_ports = \(port)
            [realms]
              \(Self.realm) = {
                database_name = \(folder)/principal
                key_stash_file = \(folder)/stash
                acl_file = \(folder)/kadm5.acl
                supported_enctypes = aes256-cts-hmac-sha1-96:normal
              }
            [logging]
              kdc = FILE:\(folder)/kdc.log

            """
        try client.write(toFile: folder + "/krb5.conf", atomically: true, encoding: .utf8)
        try server.write(toFile: folder + "/kdc.conf", atomically: true, encoding: .utf8)
        let environment = ProcessInfo.processInfo.environment.merging([
            "KRB5_CONFIG": folder + "/krb5.conf", "KRB5_KDC_PROFILE": folder + "/kdc.conf",
        ]) { _, new in new }
        let steps: [(String, [String])] = [
            ("/usr/sbin/kdb5_util", ["create", "-s", "-P", "master-\(UUID().uuidString)", "-r", Self.realm]),
            ("/usr/sbin/kadmin.local", ["-q", "addprinc -pw \(Self.userPassword) \(Self.user)"]),
            ("/usr/sbin/kadmin.local", ["-q", "addprinc -randkey \(Self.service)"]),
            ("/usr/sbin/kadmin.local", ["-q", "ktadd -k \(folder)/http.keytab \(Self.service)"]),
        ]
        for (tool, arguments) in steps {
            let (status, output) = try await PeerProcess.complete(tool, arguments, environment: environment)
            guard status == 0 else { throw TestFailure("\(tool) \(arguments.joined(separator: " ")): \(output)") }
        }
        for file in ["krb5.conf", "http.keytab"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: folder + "/" + file)
        }
        let kdc = try await PeerProcess(
            "/usr/sbin/krb5kdc",
            ["-n", "-P", folder + "/kdc.pid"],
            readyMarker: nil,
            environment: environment
        )
        try await ProxyPeer.waitForListener(port)
        return KerberosRealm(folder: folder, port: port, kdc: kdc)
    }

    /// Signs the user in (`kinit`) into a new credentials cache; its path.
    public func ticketCache() async throws -> String {
        let cache = self.folder + "/ccache-\(UUID().uuidString.prefix(8))"
        let result = try await PeerProcess.capture(
            "/usr/bin/kinit",
            [Self.user],
            environment: self.environment(cache: cache),
            input: Self.userPassword + "\n"
        )
        guard result.status == 0 else { throw TestFailure("kinit: \(result.stdout)\(result.stderr)") }
        return cache
    }

    /// The variables a Kerberos client (libcurl's GSS-API) needs: this realm's configuration and `cache`.
    public func environment(cache: String) -> [String: String] {
        ProcessInfo.processInfo.environment.merging([
            "KRB5_CONFIG": self.configurationPath, "KRB5CCNAME": "FILE:\(cache)",
        ]) { _, new in new }
    }

    /// Stops the KDC.
    public func stop() { self.kdc.stop() }
}
