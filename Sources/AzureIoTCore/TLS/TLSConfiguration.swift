/// How a TLS connection is set up: whom to trust, who we are, which versions, and how long to wait.
public struct TLSConfiguration: Sendable {
    /// Where trusted root certificates come from.
    public enum TrustRoots: Sendable {
        /// The operating system's trust store (`/etc/ssl/certs` on Debian).
        case system
        /// A PEM bundle file (an IoT Edge root CA, a private CA), used instead of the system store.
        case pemFile(String)
        /// PEM text holding one or more CA certificates, used instead of the system store.
        case pem(String)
        /// Already loaded certificates, used instead of the system store.
        case certificates([X509Certificate])
    }

    /// The lowest protocol version accepted.
    public enum MinimumVersion: Sendable {
        /// TLS 1.2 (IoT Hub's minimum).
        case tls12
        /// TLS 1.3.
        case tls13
    }

    /// Whom to trust (default: the system store).
    public var trustRoots: TrustRoots
    /// Our certificate and key, for X.509 authentication.
    public var clientIdentity: X509Identity?
    /// The lowest version accepted (default TLS 1.2).
    public var minimumVersion: MinimumVersion
    /// The name to send in SNI and to verify the certificate against, when it differs from the host connected to.
    public var serverName: String?
    /// Whether to check that the server's certificate names the host (default true; turn off only in tests).
    public var verifiesHostname: Bool
    /// How long TCP connect plus handshake may take (default 30 s).
    public var connectTimeout: Duration
    /// How the TCP connection is opened: `nil` (the default) connects directly; a proxy opener tunnels.
    public var connectionOpener: (any ConnectionOpener)?
    /// A WebSocket to open over TLS before the protocol starts (MQTT or AMQP over WebSockets, port 443); `nil` (the
    /// default) speaks the protocol straight over TLS.
    public var webSocket: WebSocketUpgrade?

    /// A client configuration. The defaults are what IoT Hub expects: system roots, TLS 1.2+, host name checked.
    public init(
        trustRoots: TrustRoots = .system,
        clientIdentity: X509Identity? = nil,
        minimumVersion: MinimumVersion = .tls12,
        serverName: String? = nil,
        verifiesHostname: Bool = true,
        connectTimeout: Duration = .seconds(30),
        connectionOpener: (any ConnectionOpener)? = nil,
        webSocket: WebSocketUpgrade? = nil
    ) {
        self.trustRoots = trustRoots
        self.clientIdentity = clientIdentity
        self.minimumVersion = minimumVersion
        self.serverName = serverName
        self.verifiesHostname = verifiesHostname
        self.connectTimeout = connectTimeout
        self.connectionOpener = connectionOpener
        self.webSocket = webSocket
    }
}
