public import AzureIoTCore
private import CAzureIoTCurl
private import CAzureIoTCurlShims
import Foundation
import Synchronization

/// Opens the TCP connection to IoT Hub through an HTTP or SOCKS proxy with libcurl (HTTP `CONNECT` with Basic,
/// Digest, NTLM or Negotiate, an HTTPS proxy, SOCKS4/4a/5/5h), exactly as the `curl` command would, and hands the
/// tunneled socket to the SDK's own TLS. Set it as `connectionOpener` in `HubMQTTConfiguration`,
/// `HubAMQPConfiguration` or a `TLSConfiguration`.
///
/// The proxy URL may carry credentials (`http://user:pass@proxy:8888`); they are a secret: ``description`` and every
/// error show the URL without them.
public struct ProxyConnectionOpener: ConnectionOpener {
    /// Where the proxy comes from.
    public enum Source: Sendable {
        /// This proxy URL (`http://`, `https://`, `socks4://`, `socks4a://`, `socks5://`, `socks5h://`).
        case url(String)
        /// The environment, as curl reads it for an HTTPS destination: `https_proxy`/`HTTPS_PROXY`, then
        /// `all_proxy`/`ALL_PROXY`; `no_proxy`/`NO_PROXY` lists hosts to reach directly. No proxy set: direct.
        case environment
    }

    /// Where the proxy comes from.
    public let source: Source

    /// The schemes libcurl takes for a proxy.
    static let schemes: Set<String> = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"]

    /// An opener for `source`. Throws `AzureIoTError/Code/invalidArgument` for a URL whose scheme is not a proxy
    /// scheme libcurl knows or that names no host.
    public init(_ source: Source) throws(AzureIoTError) {
        if case .url(let url) = source { _ = try Self.validated(url) }
        self.source = source
    }

    /// An opener for the proxy at `url`; see ``init(_:)``.
    public init(url: String) throws(AzureIoTError) { try self.init(.url(url)) }

    /// Whether the environment names a proxy for HTTPS destinations (`https_proxy`, `HTTPS_PROXY`, `all_proxy` or
    /// `ALL_PROXY`), so that ``environment`` would tunnel at all.
    public static var environmentNamesProxy: Bool { Self.environmentProxy() != nil }

    /// The proxy URL as given (credentials included: a secret), for handing to another libcurl user such as
    /// `DPSClient`'s `ProvisioningClient.Configuration.proxy`; `nil` for ``Source/environment``.
    public var checkedURL: String? {
        if case .url(let url) = self.source { return url }
        return nil
    }

    /// An opener that follows the environment like curl.
    public static let environment = ProxyConnectionOpener(uncheckedSource: .environment)

    private init(uncheckedSource: Source) { self.source = uncheckedSource }

    /// The proxy URL without credentials, or how the environment is read.
    public var description: String {
        switch self.source {
        case .url(let url): return "proxy \(Self.redacted(url))"
        case .environment:
            return "the proxy from the environment (\(Self.environmentProxy().map(Self.redacted) ?? "none set"))"
        }
    }

    /// `scheme://host:port` of `url`, credentials left out.
    static func redacted(_ url: String) -> String {
        guard let components = URLComponents(string: url), let host = components.host else { return "<unparsable URL>" }
        return "\(components.scheme ?? "http")://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    static func validated(_ url: String) throws(AzureIoTError) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            Self.schemes.contains(scheme), let host = components.host, !host.isEmpty
        else {
            throw AzureIoTError(
                .invalidArgument,
                "'\(Self.redacted(url))' is not a proxy URL (http://, https://, socks4://, socks4a://, socks5:// or socks5h:// with a host)"
            )
        }
        return url
    }

    /// The proxy the environment names for an HTTPS destination, as curl picks it.
    static func environmentProxy() -> String? {
        let environment = ProcessInfo.processInfo.environment
        for name in ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            if let value = environment[name], !value.isEmpty { return value }
        }
        return nil
    }

    /// The hosts the environment says to reach directly.
    static func environmentNoProxy() -> String? {
        let environment = ProcessInfo.processInfo.environment
        return environment["no_proxy"] ?? environment["NO_PROXY"]
    }

    /// Opens the tunnel on a thread of its own (libcurl blocks while it connects), so the cooperative pool never
    /// waits on it; cancelling the task aborts the attempt.
    public func openSocket(host: String, port: Int, timeout: Duration) async throws -> Int32 {
        let proxy: String?
        let noProxy: String?
        switch self.source {
        case .url(let url):
            proxy = try Self.validated(url)
            noProxy = nil
        case .environment:
            proxy = try Self.environmentProxy().map { url throws(AzureIoTError) in try Self.validated(url) }
            noProxy = Self.environmentNoProxy()
        }
        let attempt = TunnelAttempt(host: host, port: port, proxy: proxy, noProxy: noProxy, timeout: timeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                let thread = Thread { continuation.resume(with: attempt.run()) }
                thread.name = "AzureIoT.ProxyTunnel"
                thread.start()
            }
        } onCancel: {
            attempt.cancelled.store(true, ordering: .relaxed)
        }
    }
}

/// One `CONNECT_ONLY` transfer: connect to the proxy, open the tunnel, hand over the socket.
private final class TunnelAttempt: Sendable {
    let host: String
    let port: Int
    let proxy: String?
    let noProxy: String?
    let timeout: Duration
    let cancelled = Atomic<Bool>(false)

    init(host: String, port: Int, proxy: String?, noProxy: String?, timeout: Duration) {
        self.host = host
        self.port = port
        self.proxy = proxy
        self.noProxy = noProxy
        self.timeout = timeout
    }

    private var proxyName: String { self.proxy.map(ProxyConnectionOpener.redacted) ?? "no proxy" }

    /// `curl_global_init`, once per process (Swift runs a static initializer exactly once, thread-safely).
    private static let globalInitResult = azi_curl_global_init()

    /// Runs on the tunnel's own thread.
    func run() -> Result<Int32, any Error> {
        guard Self.globalInitResult == Int32(CURLE_OK.rawValue) else {
            return .failure(
                AzureIoTError(.ioFailure, "libcurl could not initialise (curl_global_init: \(Self.globalInitResult))")
            )
        }
        guard let easy = curl_easy_init() else {
            return .failure(AzureIoTError(.ioFailure, "libcurl could not create a handle"))
        }
        defer { curl_easy_cleanup(easy) }
        var refused: String?
        func check(_ name: String, _ result: Int32) {
            if result != Int32(CURLE_OK.rawValue), refused == nil { refused = name }
        }
        // An IPv6 literal needs brackets in a URL.
        let authority = self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        check("CURLOPT_URL", azi_curl_setopt_string(easy, Int32(CURLOPT_URL.rawValue), "http://\(authority)"))
        check("CURLOPT_CONNECT_ONLY", azi_curl_setopt_long(easy, Int32(CURLOPT_CONNECT_ONLY.rawValue), 1))
        check("CURLOPT_NOSIGNAL", azi_curl_setopt_long(easy, Int32(CURLOPT_NOSIGNAL.rawValue), 1))
        let (seconds, attoseconds) = self.timeout.components
        let milliseconds =
            seconds >= 86_400 ? 86_400_000 : max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
        check(
            "CURLOPT_CONNECTTIMEOUT_MS",
            azi_curl_setopt_long(easy, Int32(CURLOPT_CONNECTTIMEOUT_MS.rawValue), milliseconds)
        )
        check("CURLOPT_TIMEOUT_MS", azi_curl_setopt_long(easy, Int32(CURLOPT_TIMEOUT_MS.rawValue), milliseconds))
        if let proxy = self.proxy {
            check("CURLOPT_PROXY", azi_curl_setopt_string(easy, Int32(CURLOPT_PROXY.rawValue), proxy))
            check("CURLOPT_HTTPPROXYTUNNEL", azi_curl_setopt_long(easy, Int32(CURLOPT_HTTPPROXYTUNNEL.rawValue), 1))
            check(
                "CURLOPT_PROXYAUTH",
                azi_curl_setopt_long(easy, Int32(CURLOPT_PROXYAUTH.rawValue), azi_curl_auth_any())
            )
        } else {
            // No proxy named: curl must not pick one up from http_proxy on its own.
            check("CURLOPT_PROXY", azi_curl_setopt_string(easy, Int32(CURLOPT_PROXY.rawValue), ""))
        }
        if let noProxy = self.noProxy {
            check("CURLOPT_NOPROXY", azi_curl_setopt_string(easy, Int32(CURLOPT_NOPROXY.rawValue), noProxy))
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        check("CURLOPT_NOPROGRESS", azi_curl_setopt_long(easy, Int32(CURLOPT_NOPROGRESS.rawValue), 0))
        check("CURLOPT_XFERINFODATA", azi_curl_setopt_pointer(easy, Int32(CURLOPT_XFERINFODATA.rawValue), context))
        check(
            "CURLOPT_XFERINFOFUNCTION",
            azi_curl_setopt_pointer(
                easy,
                Int32(CURLOPT_XFERINFOFUNCTION.rawValue),
                unsafeBitCast(Self.progress, to: UnsafeMutableRawPointer.self)
            )
        )
        if let refused {
            return .failure(
                AzureIoTError(.invalidArgument, "this libcurl cannot open a proxy tunnel: it refused \(refused)")
            )
        }
        let code = curl_easy_perform(easy)
        if self.cancelled.load(ordering: .relaxed) { return .failure(CancellationError()) }
        var connectCode = 0
        _ = azi_curl_getinfo_long(easy, Int32(CURLINFO_HTTP_CONNECTCODE.rawValue), &connectCode)
        if connectCode == 407 || connectCode == 401 {
            return .failure(
                AzureIoTError(
                    .proxyAuthenticationRequired,
                    "\(self.proxyName) answered CONNECT with HTTP \(connectCode): it wants credentials, or refused the ones given"
                )
            )
        }
        if connectCode >= 300 {
            return .failure(
                AzureIoTError(
                    .proxyRefused,
                    "\(self.proxyName) refused the tunnel to \(self.host):\(self.port) with HTTP \(connectCode)"
                )
            )
        }
        guard code == CURLE_OK else {
            let text = String(cString: curl_easy_strerror(code))
            let target = "\(self.host):\(self.port) through \(self.proxyName)"
            switch code {
            case CURLE_COULDNT_RESOLVE_PROXY:
                return .failure(AzureIoTError(.nameResolutionFailed, "cannot resolve \(self.proxyName): \(text)"))
            case CURLE_COULDNT_RESOLVE_HOST:
                return .failure(AzureIoTError(.nameResolutionFailed, "cannot resolve \(target): \(text)"))
            case CURLE_OPERATION_TIMEDOUT:
                return .failure(AzureIoTError(.timedOut, "connecting to \(target) timed out"))
            case CURLE_PROXY:
                var detail = 0
                _ = azi_curl_getinfo_long(easy, Int32(CURLINFO_PROXY_ERROR.rawValue), &detail)
                if detail == Int(CURLPX_USER_REJECTED.rawValue) || detail == Int(CURLPX_NO_AUTH.rawValue) {
                    return .failure(
                        AzureIoTError(
                            .proxyAuthenticationRequired,
                            "\(self.proxyName) wants credentials, or refused the ones given: \(text)"
                        )
                    )
                }
                return .failure(
                    AzureIoTError(
                        .proxyRefused,
                        "\(self.proxyName) did not open a tunnel to \(self.host):\(self.port): \(text)"
                    )
                )
            case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING:
                return .failure(
                    AzureIoTError(
                        .proxyRefused,
                        "\(self.proxyName) did not open a tunnel to \(self.host):\(self.port): \(text)"
                    )
                )
            case CURLE_COULDNT_CONNECT where self.proxy != nil:
                // libcurl connects to the proxy first: it is the proxy that cannot be reached.
                return .failure(AzureIoTError(.connectionFailed, "cannot reach the proxy \(self.proxyName): \(text)"))
            default:
                return .failure(AzureIoTError(.connectionFailed, "cannot connect to \(target): \(text)"))
            }
        }
        var socket: Int32 = -1
        _ = azi_curl_getinfo_socket(easy, Int32(CURLINFO_ACTIVESOCKET.rawValue), &socket)
        guard socket >= 0 else {
            return .failure(AzureIoTError(.ioFailure, "libcurl connected but has no socket to hand over"))
        }
        // curl closes its descriptor at cleanup; the SDK keeps a duplicate of the tunneled connection.
        let owned = fcntl(socket, F_DUPFD_CLOEXEC, 0)
        guard owned >= 0 else {
            return .failure(
                AzureIoTError(.ioFailure, "cannot keep the tunneled socket: \(String(cString: strerror(errno)))")
            )
        }
        return .success(owned)
    }

    private static let progress: @convention(c) (UnsafeMutableRawPointer?, Int64, Int64, Int64, Int64) -> Int32 = {
        context,
        _,
        _,
        _,
        _ in
        guard let context else { return 0 }
        let attempt = Unmanaged<TunnelAttempt>.fromOpaque(context).takeUnretainedValue()
        return attempt.cancelled.load(ordering: .relaxed) ? 1 : 0
    }
}
