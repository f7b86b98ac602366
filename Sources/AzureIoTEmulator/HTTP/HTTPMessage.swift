import AzureIoTCore
import Foundation

/// An HTTP/1.1 request as the emulator's DPS endpoint reads it: request line, headers, and a body framed by
/// `Content-Length` or `Transfer-Encoding: chunked`.
struct HTTPRequest: Equatable {
    var method: String
    /// The path without the query.
    var path: String
    /// Query parameters, percent-decoded.
    var query: [String: String]
    /// Header names lower-cased; values without surrounding white space (so `Content-Encoding:  utf-8` with the
    /// DPS write-up's two spaces reads `utf-8`, RFC 9110 §5.5).
    var headers: [String: String]
    var body: [UInt8]
    /// Whether a SAS token without `skn` attests (DPS over MQTT: Azure's Python provisioning client sends none; the
    /// REST samples always name `skn=registration`, and REST requires it here).
    var allowsUnnamedSASKey = false

    /// Whether the client wants the connection kept open (HTTP/1.1's default).
    var keepAlive: Bool { self.headers["connection"]?.lowercased() != "close" }

    /// Why a request cannot be served; each maps to the status the emulator answers with before it closes.
    enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        /// The request line, a header line or the header block is over its limit: 431.
        case headerTooLarge
        /// The body is over its limit, announced or as it arrives: 413.
        case bodyTooLarge

        var status: Int {
            switch self {
            case .malformed: return 400
            case .headerTooLarge: return 431
            case .bodyTooLarge: return 413
            }
        }

        var description: String {
            switch self {
            case .malformed(let reason): return reason
            case .headerTooLarge: return "the request's header is too large"
            case .bodyTooLarge: return "the request body is too large"
            }
        }
    }
}

/// Reads HTTP/1.1 requests off a connection's bytes, one at a time, holding nothing beyond its limits: the header
/// block (each line and in all), the number of header lines and the body (decoded, and as framed) are bounded, and
/// a limit is reported as soon as the bytes that pass it arrive. Pure: no I/O.
struct HTTPRequestParser {
    /// The request line and headers together, CRLFs included.
    static let maximumHeaderBytes = 16 * 1024
    /// One request or header line.
    static let maximumLineBytes = 8 * 1024
    static let maximumHeaderCount = 100
    /// A request body by default (DPS's bodies are a registration id and an optional payload).
    static let maximumBodyBytes = 64 * 1024

    /// The body limit of this parser (a blob endpoint takes blocks of megabytes).
    let maximumBodyBytes: Int

    init(maximumBodyBytes: Int = HTTPRequestParser.maximumBodyBytes) {
        self.maximumBodyBytes = maximumBodyBytes
    }

    enum Step: Equatable {
        case request(HTTPRequest)
        /// More bytes are needed; `sendContinue` once when the client asked for `Expect: 100-continue`.
        case needMore(sendContinue: Bool)
    }

    private enum Framing: Equatable {
        case length(Int)
        case chunked
    }

    private struct Head {
        var request: HTTPRequest
        var bodyStart: Int
        var framing: Framing
        var expectsContinue: Bool
    }

    private var head: Head?
    private var continueAnswered = false

    /// The next request at the front of `buffer`, removing its bytes, or what is needed for one.
    mutating func next(from buffer: inout [UInt8]) throws(HTTPRequest.ParseError) -> Step {
        if self.head == nil {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            var blank = 0
            while blank + 1 < buffer.count, buffer[blank] == 13, buffer[blank + 1] == 10 { blank += 2 }
            if blank > 0 { buffer.removeSubrange(0..<blank) }
            guard let headerEnd = try Self.headerEnd(in: buffer) else { return .needMore(sendContinue: false) }
            self.head = try Self.parseHead(
                buffer[..<headerEnd],
                bodyStart: headerEnd + 4,
                maximumBodyBytes: self.maximumBodyBytes
            )
            self.continueAnswered = false
        }
        guard var head = self.head else { return .needMore(sendContinue: false) }
        let available = buffer.count - head.bodyStart
        switch head.framing {
        case .length(let length):
            if available >= length {
                head.request.body = Array(buffer[head.bodyStart..<(head.bodyStart + length)])
                buffer.removeSubrange(0..<(head.bodyStart + length))
                self.head = nil
                return .request(head.request)
            }
        case .chunked:
            if let (body, consumed) = try Self.decodeChunked(
                buffer[head.bodyStart...],
                maximumBodyBytes: self.maximumBodyBytes
            ) {
                head.request.body = body
                buffer.removeSubrange(0..<(head.bodyStart + consumed))
                self.head = nil
                return .request(head.request)
            }
        }
        let sendContinue = head.expectsContinue && !self.continueAnswered
        self.continueAnswered = true
        return .needMore(sendContinue: sendContinue)
    }

    /// Where the header block ends (the offset of its CRLFCRLF), checking the limits on what has arrived so far.
    private static func headerEnd(in buffer: [UInt8]) throws(HTTPRequest.ParseError) -> Int? {
        var lineStart = 0
        var lines = 0
        var index = 0
        let scanned = min(buffer.count, Self.maximumHeaderBytes + 4)
        while index + 1 < scanned {
            if buffer[index] == 13, buffer[index + 1] == 10 {
                if index == lineStart { return index - 2 }
                guard index - lineStart <= Self.maximumLineBytes else { throw .headerTooLarge }
                lines += 1
                guard lines <= Self.maximumHeaderCount + 1 else { throw .headerTooLarge }
                lineStart = index + 2
                index += 2
            } else {
                index += 1
            }
        }
        if scanned - lineStart > Self.maximumLineBytes || buffer.count > Self.maximumHeaderBytes + 4 {
            throw .headerTooLarge
        }
        return nil
    }

    private static func parseHead(_ bytes: ArraySlice<UInt8>, bodyStart: Int, maximumBodyBytes: Int)
        throws(HTTPRequest.ParseError) -> Head
    {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw .malformed("an empty request") }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[1].hasPrefix("/"),
            requestLine[2].hasPrefix("HTTP/1.")
        else {
            throw .malformed("a malformed request line")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw .malformed("a header line without a name and ':'")
            }
            let name = line[..<colon]
            guard !name.contains(where: { $0 == " " || $0 == "\t" }) else {
                throw .malformed("white space in a header name")
            }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let key = name.lowercased()
            if key == "content-length", let earlier = headers[key], earlier != value {
                throw .malformed("two different Content-Length headers")
            }
            headers[key] = value
        }
        let framing: Framing
        if let coding = headers["transfer-encoding"] {
            guard coding.lowercased() == "chunked", headers["content-length"] == nil else {
                throw .malformed("only 'Transfer-Encoding: chunked' without Content-Length is understood")
            }
            framing = .chunked
        } else if let text = headers["content-length"] {
            guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (48...57).contains($0) }),
                let length = Int(text)
            else {
                throw .malformed("an invalid Content-Length")
            }
            guard length <= maximumBodyBytes else { throw .bodyTooLarge }
            framing = .length(length)
        } else {
            framing = .length(0)
        }
        let target = requestLine[1]
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
        let request = HTTPRequest(method: String(requestLine[0]), path: path, query: query, headers: headers, body: [])
        return Head(
            request: request,
            bodyStart: bodyStart,
            framing: framing,
            expectsContinue: headers["expect"]?.lowercased() == "100-continue"
        )
    }

    /// A complete chunked body and the bytes it took, `nil` while more are needed (RFC 9112 §7.1). Extensions after
    /// `;` and trailer fields are read past, not kept.
    private static func decodeChunked(_ bytes: ArraySlice<UInt8>, maximumBodyBytes: Int)
        throws(HTTPRequest.ParseError) -> ([UInt8], Int)?
    {
        var body: [UInt8] = []
        var index = bytes.startIndex
        func line() throws(HTTPRequest.ParseError) -> ArraySlice<UInt8>? {
            var end = index
            while end + 1 < bytes.endIndex {
                if bytes[end] == 13, bytes[end + 1] == 10 {
                    let found = bytes[index..<end]
                    index = end + 2
                    return found
                }
                end += 1
                guard end - index <= Self.maximumLineBytes else {
                    throw .malformed("a chunk-size or trailer line is too long")
                }
            }
            return nil
        }
        while true {
            guard let sizeLine = try line() else { return nil }
            let digits = sizeLine.prefix { $0 != UInt8(ascii: ";") }
            guard !digits.isEmpty, digits.count <= 8 else { throw .malformed("an invalid chunk size") }
            var size = 0
            for digit in digits {
                guard let value = PercentEncoding.hexValue(digit) else { throw .malformed("an invalid chunk size") }
                size = size << 4 | Int(value)
            }
            guard body.count + size <= maximumBodyBytes else { throw .bodyTooLarge }
            if size == 0 {
                while true {
                    guard let trailer = try line() else { return nil }
                    if trailer.isEmpty { return (body, index - bytes.startIndex) }
                }
            }
            guard bytes.endIndex - index >= size + 2 else { return nil }
            body += bytes[index..<(index + size)]
            guard bytes[index + size] == 13, bytes[index + size + 1] == 10 else {
                throw .malformed("a chunk without its CRLF")
            }
            index += size + 2
        }
    }
}

/// An HTTP/1.1 response.
struct HTTPResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    static let reasons: [Int: String] = [
        200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
        403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
        413: "Content Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
        431: "Request Header Fields Too Large", 500: "Internal Server Error", 504: "Gateway Timeout",
    ]

    func serialized(keepAlive: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(self.status) \(Self.reasons[self.status] ?? "Status")\r\n"
        for (name, value) in self.headers { text += "\(name): \(value)\r\n" }
        if !self.body.isEmpty, !self.headers.contains(where: { $0.0.lowercased() == "content-type" }) {
            text += "Content-Type: application/json; charset=utf-8\r\n"
        }
        text += "Content-Length: \(self.body.count)\r\n"
        text += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        return Array(text.utf8) + self.body
    }
}
