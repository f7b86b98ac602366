import AzureIoTCore
import Foundation

/// An HTTP/1.1 request as the emulator's DPS endpoint reads it: request line, headers, and a `Content-Length` body.
struct HTTPRequest {
    var method: String
    /// The path without the query.
    var path: String
    /// Query parameters, percent-decoded.
    var query: [String: String]
    /// Header names lower-cased.
    var headers: [String: String]
    var body: [UInt8]

    /// Whether the client wants the connection kept open (HTTP/1.1's default).
    var keepAlive: Bool { self.headers["connection"]?.lowercased() != "close" }

    enum ParseError: Error, CustomStringConvertible {
        case malformed(String)
        case tooLarge

        var description: String {
            switch self {
            case .malformed(let reason): return reason
            case .tooLarge: return "the request is too large"
            }
        }
    }

    static let maximumHeaderBytes = 16 * 1024
    static let maximumBodyBytes = 64 * 1024

    /// Parses one request from the front of `buffer`, removing it; `nil` if more bytes are needed.
    static func parse(from buffer: inout [UInt8]) throws(ParseError) -> HTTPRequest? {
        guard let headerEnd = Self.find([13, 10, 13, 10], in: buffer) else {
            if buffer.count > Self.maximumHeaderBytes { throw .tooLarge }
            return nil
        }
        let head = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw .malformed("an empty request") }
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else { throw .malformed("a malformed request line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("a header without ':'") }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["transfer-encoding"] != nil { throw .malformed("chunked bodies are not supported; send Content-Length") }
        let length = Int(headers["content-length"] ?? "0") ?? -1
        guard length >= 0 else { throw .malformed("an invalid Content-Length") }
        guard length <= Self.maximumBodyBytes else { throw .tooLarge }
        let bodyStart = headerEnd + 4
        guard buffer.count - bodyStart >= length else { return nil }
        let body = Array(buffer[bodyStart..<(bodyStart + length)])
        buffer.removeSubrange(0..<(bodyStart + length))
        let target = String(requestLine[1])
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if pathPart.count == 2 {
            for field in pathPart[1].split(separator: "&") {
                let pair = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = (try? PercentEncoding.decode(pair[0])) ?? String(pair[0])
                query[key] = pair.count == 2 ? ((try? PercentEncoding.decode(pair[1])) ?? String(pair[1])) : ""
            }
        }
        let path = (try? PercentEncoding.decode(pathPart[0])) ?? String(pathPart[0])
        return HTTPRequest(method: String(requestLine[0]), path: path, query: query, headers: headers, body: body)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}

/// An HTTP/1.1 response.
struct HTTPResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    static let reasons: [Int: String] = [
        200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
        413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
    ]

    func serialized(keepAlive: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(self.status) \(Self.reasons[self.status] ?? "Status")\r\n"
        for (name, value) in self.headers { text += "\(name): \(value)\r\n" }
        if !self.body.isEmpty { text += "Content-Type: application/json; charset=utf-8\r\n" }
        text += "Content-Length: \(self.body.count)\r\n"
        text += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        return Array(text.utf8) + self.body
    }
}
