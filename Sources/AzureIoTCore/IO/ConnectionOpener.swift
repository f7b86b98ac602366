/// Opens the TCP connection that TLS then runs over. Without one, clients connect directly; `AzureIoTProxy`'s
/// `ProxyConnectionOpener` tunnels through an HTTP or SOCKS proxy with libcurl, so that only applications that use a
/// proxy link libcurl.
public protocol ConnectionOpener: Sendable, CustomStringConvertible {
    /// A connected socket to `host:port` (the hub or its gateway), ready for TLS; the caller owns it from then on,
    /// sets it non-blocking and closes it. Throws `AzureIoTError` (e.g. ``AzureIoTError/Code/proxyRefused``) within
    /// `timeout`, and `CancellationError` when the task is cancelled.
    func openSocket(host: String, port: Int, timeout: Duration) async throws -> Int32
}
