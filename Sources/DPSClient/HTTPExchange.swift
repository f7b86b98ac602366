import Foundation

/// One HTTPS request and what came back, as the DPS client needs them.
struct HTTPRequest: Sendable {
    var method: String
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]?
    /// A unix socket to send the request over instead of TCP (the IoT Edge workload API); the URL's host is then
    /// only the `Host` header, and no proxy applies.
    var unixSocketPath: String? = nil
    /// Never through a proxy, whatever the environment says (local services).
    var direct = false
}

/// A response: status, headers (names lower-cased) and body.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    /// A header by lower-case name.
    func header(_ name: String) -> String? { self.headers[name] }
}
