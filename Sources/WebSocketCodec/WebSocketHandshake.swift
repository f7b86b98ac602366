/// The opening handshake of RFC 6455 §4: an HTTP/1.1 upgrade, built and parsed strictly and within a size limit.
public enum WebSocketHandshake {
    /// The GUID §1.3 appends to the key.
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The most header bytes accepted by default, request or response.
    public static let defaultMaximumSize = 16 * 1024

    /// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
    public static func acceptValue(forKey key: String) -> String {
        HandshakeBase64.encode(SHA1.hash(Array((key + Self.guid).utf8)))
    }

    /// An HTTP header block: the start line and the header fields in order, names as sent.
    struct Head {
        var startLine: String
        var fields: [(name: String, value: String)]

        /// Every value of header `name` (case-insensitive).
        func values(_ name: String) -> [String] {
            self.fields.filter { $0.name.lowercased() == name }.map(\.value)
        }

        /// The comma-separated tokens of every `name` header, trimmed.
        func tokens(_ name: String) -> [String] {
            self.values(name).flatMap { $0.split(separator: ",") }.map { String($0).trimmingSpaces() }.filter {
                !$0.isEmpty
            }
        }

        /// The one value of `name`; throws when it is missing or repeated.
        func single(_ name: String) throws(WebSocketCodecError) -> String {
            let values = self.values(name)
            guard values.count == 1 else {
                throw WebSocketCodecError(
                    .malformedHandshake,
                    values.isEmpty ? "no \(name) header" : "\(name) appears \(values.count) times"
                )
            }
            return values[0]
        }
    }

    /// The header block at the start of `bytes` and its length with the blank line, `nil` until it is complete.
    static func head(in bytes: ArraySlice<UInt8>, maximumSize: Int) throws(WebSocketCodecError) -> (Head, Int)? {
        let limit = min(bytes.count, maximumSize)
        var end: Int?
        var index = bytes.startIndex
        while index + 3 < bytes.startIndex + limit {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                end = index
                break
            }
            index += 1
        }
        guard let end else {
            if bytes.count >= maximumSize {
                throw WebSocketCodecError(.handshakeTooLarge, "the HTTP header block exceeds \(maximumSize) bytes")
            }
            return nil
        }
        guard let text = String(validating: bytes[bytes.startIndex..<end], as: UTF8.self) else {
            throw WebSocketCodecError(.malformedHandshake, "the HTTP header block is not UTF-8")
        }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let startLine = lines.removeFirst()
        var fields: [(name: String, value: String)] = []
        for line in lines {
            guard let first = line.unicodeScalars.first, first != " ", first != "\t" else {
                throw WebSocketCodecError(.malformedHandshake, "folded or empty header lines are not accepted")
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw WebSocketCodecError(.malformedHandshake, "a header line without a colon")
            }
            let name = String(line[..<colon])
            guard name.utf8.allSatisfy(Self.isTokenByte) else {
                throw WebSocketCodecError(.malformedHandshake, "a header name with characters HTTP does not allow")
            }
            let value = String(line[line.index(after: colon)...]).trimmingSpaces()
            guard !value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else {
                throw WebSocketCodecError(.malformedHandshake, "a header value with control characters")
            }
            fields.append((name, value))
        }
        return (Head(startLine: startLine, fields: fields), end + 4 - bytes.startIndex)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    /// Throws unless `text` is safe inside a header line (no CR, LF or other control characters).
    static func checkHeaderText(_ text: String, _ what: String) throws(WebSocketCodecError) {
        guard !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw WebSocketCodecError(.malformedHandshake, "\(what) contains control characters")
        }
    }
}

/// The client's side of the opening handshake: the upgrade request and the check of the server's answer.
public struct WebSocketClientHandshake: Sendable {
    /// `Sec-WebSocket-Key`: base64 of the 16 random bytes given.
    public let key: String
    /// The sub-protocols offered, in order of preference (e.g. `["mqtt"]`, `["AMQPWSB10"]`).
    public let protocols: [String]
    /// The request to send, byte for byte.
    public let requestBytes: [UInt8]

    /// A `GET` upgrade request for `path` on `host` (with `:port` when it is not the scheme's default), offering
    /// `protocols`. `nonce` must be 16 bytes, fresh and random for every connection (§4.1). Throws
    /// ``WebSocketCodecError/Code/malformedHandshake`` for a nonce of another length or text that would break the
    /// request (control characters, a path not starting with `/`).
    public init(
        host: String,
        path: String,
        protocols: [String],
        nonce: [UInt8],
        extraHeaders: [(name: String, value: String)] = []
    ) throws(WebSocketCodecError) {
        guard nonce.count == 16 else {
            throw WebSocketCodecError(.malformedHandshake, "the key nonce must be 16 bytes (it is \(nonce.count))")
        }
        guard path.hasPrefix("/"), !path.contains(" ") else {
            throw WebSocketCodecError(.malformedHandshake, "the request path must start with / and contain no spaces")
        }
        try WebSocketHandshake.checkHeaderText(host, "the host")
        try WebSocketHandshake.checkHeaderText(path, "the path")
        for name in protocols {
            guard !name.isEmpty, name.utf8.allSatisfy(WebSocketHandshake.isTokenByte) else {
                throw WebSocketCodecError(.malformedHandshake, "a sub-protocol name must be an HTTP token")
            }
        }
        for (name, value) in extraHeaders {
            guard !name.isEmpty, name.utf8.allSatisfy(WebSocketHandshake.isTokenByte) else {
                throw WebSocketCodecError(.malformedHandshake, "a header name must be an HTTP token")
            }
            try WebSocketHandshake.checkHeaderText(value, "the value of \(name)")
        }
        self.key = HandshakeBase64.encode(nonce)
        self.protocols = protocols
        var text = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Key: \(self.key)\r\nSec-WebSocket-Version: 13\r\n"
        if !protocols.isEmpty { text += "Sec-WebSocket-Protocol: \(protocols.joined(separator: ", "))\r\n" }
        for (name, value) in extraHeaders { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        self.requestBytes = Array(text.utf8)
    }

    /// Checks the server's answer at the start of `bytes`: `nil` while the header block is incomplete; otherwise the
    /// sub-protocol the server chose (one of those offered, compared case-insensitively, returned as offered) and the
    /// bytes the answer took (what follows is already WebSocket frames). Throws
    /// ``WebSocketCodecError/Code/handshakeRefused`` for a status other than 101 or a wrong accept key and
    /// ``WebSocketCodecError/Code/malformedHandshake`` for any other departure from §4.2.2.
    public func parseResponse(
        _ bytes: ArraySlice<UInt8>,
        maximumSize: Int = WebSocketHandshake.defaultMaximumSize
    ) throws(WebSocketCodecError) -> (selectedProtocol: String?, size: Int)? {
        guard let (head, size) = try WebSocketHandshake.head(in: bytes, maximumSize: maximumSize) else { return nil }
        let parts = head.startLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", parts[1].count == 3, let status = Int(parts[1]) else {
            throw WebSocketCodecError(.malformedHandshake, "not an HTTP/1.1 status line")
        }
        guard status == 101 else {
            let reason = parts.count > 2 ? " \(parts[2])" : ""
            throw WebSocketCodecError(
                .handshakeRefused,
                "the server answered \(status)\(reason), not 101 Switching Protocols"
            )
        }
        guard head.tokens("upgrade").contains(where: { $0.lowercased() == "websocket" }) else {
            throw WebSocketCodecError(.malformedHandshake, "the 101 answer does not upgrade to websocket")
        }
        guard head.tokens("connection").contains(where: { $0.lowercased() == "upgrade" }) else {
            throw WebSocketCodecError(.malformedHandshake, "the 101 answer has no Connection: Upgrade")
        }
        let accept = try head.single("sec-websocket-accept")
        guard accept == WebSocketHandshake.acceptValue(forKey: self.key) else {
            throw WebSocketCodecError(.handshakeRefused, "Sec-WebSocket-Accept does not match the key sent")
        }
        guard head.values("sec-websocket-extensions").isEmpty else {
            throw WebSocketCodecError(.malformedHandshake, "the server chose an extension that was not offered")
        }
        let chosen = head.tokens("sec-websocket-protocol")
        guard chosen.count <= 1 else {
            throw WebSocketCodecError(.malformedHandshake, "the server chose more than one sub-protocol")
        }
        guard let name = chosen.first else { return (nil, size) }
        guard let offered = self.protocols.first(where: { $0.lowercased() == name.lowercased() }) else {
            throw WebSocketCodecError(
                .malformedHandshake,
                "the server chose sub-protocol '\(name)', which was not offered"
            )
        }
        return (offered, size)
    }
}

/// The server's side of the opening handshake: a client's upgrade request, checked, and the answers to it.
public struct WebSocketUpgradeRequest: Sendable {
    /// The request target (e.g. `/$iothub/websocket`).
    public let path: String
    /// `Sec-WebSocket-Key` as sent.
    public let key: String
    /// The sub-protocols the client offered, in its order and spelling.
    public let protocols: [String]
    /// Every header field as sent.
    public let headers: [(name: String, value: String)]

    /// The upgrade request at the start of `bytes`: `nil` while its header block is incomplete; otherwise the request
    /// and the bytes it took. Throws ``WebSocketCodecError/Code/handshakeTooLarge`` past `maximumSize` and
    /// ``WebSocketCodecError/Code/malformedHandshake`` for anything §4.2.1 does not allow (answer it with
    /// ``refusal(status:reason:)``).
    public static func parse(
        _ bytes: ArraySlice<UInt8>,
        maximumSize: Int = WebSocketHandshake.defaultMaximumSize
    ) throws(WebSocketCodecError) -> (request: WebSocketUpgradeRequest, size: Int)? {
        guard let (head, size) = try WebSocketHandshake.head(in: bytes, maximumSize: maximumSize) else { return nil }
        let parts = head.startLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "GET", parts[2] == "HTTP/1.1", parts[1].hasPrefix("/") else {
            throw WebSocketCodecError(.malformedHandshake, "not an HTTP/1.1 GET request line")
        }
        _ = try head.single("host")
        guard head.tokens("upgrade").contains(where: { $0.lowercased() == "websocket" }) else {
            throw WebSocketCodecError(.malformedHandshake, "the request does not ask to upgrade to websocket")
        }
        guard head.tokens("connection").contains(where: { $0.lowercased() == "upgrade" }) else {
            throw WebSocketCodecError(.malformedHandshake, "the request has no Connection: Upgrade")
        }
        guard try head.single("sec-websocket-version") == "13" else {
            throw WebSocketCodecError(.malformedHandshake, "only Sec-WebSocket-Version 13 is spoken")
        }
        let key = try head.single("sec-websocket-key")
        guard let nonce = HandshakeBase64.decode(Substring(key)), nonce.count == 16 else {
            throw WebSocketCodecError(.malformedHandshake, "Sec-WebSocket-Key is not base64 of 16 bytes")
        }
        let protocols = head.tokens("sec-websocket-protocol")
        let request = WebSocketUpgradeRequest(
            path: String(parts[1]),
            key: key,
            protocols: protocols,
            headers: head.fields
        )
        return (request, size)
    }

    /// The first offered sub-protocol that `supported` names, compared case-insensitively and returned as the client
    /// spelled it (the server must echo the client's value).
    public func selectProtocol(from supported: [String]) -> String? {
        let names = Set(supported.map { $0.lowercased() })
        return self.protocols.first { names.contains($0.lowercased()) }
    }

    /// The `101 Switching Protocols` answer, naming `selectedProtocol` when there is one.
    public func acceptance(selectedProtocol: String?) -> [UInt8] {
        var text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: self.key))\r\n"
        if let selectedProtocol { text += "Sec-WebSocket-Protocol: \(selectedProtocol)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// An HTTP answer that refuses the upgrade (`400 Bad Request` for a malformed request, `426 Upgrade Required`
    /// with `Sec-WebSocket-Version: 13` for another version, `404` for another path), with a short plain-text body.
    public static func refusal(status: Int, reason: String) -> [UInt8] {
        let phrase: String
        switch status {
        case 400: phrase = "Bad Request"
        case 404: phrase = "Not Found"
        case 426: phrase = "Upgrade Required"
        default: phrase = "Error"
        }
        let body = Array((reason.filter { $0 != "\r" && $0 != "\n" } + "\n").utf8)
        var text = "HTTP/1.1 \(status) \(phrase)\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n"
        if status == 426 { text += "Sec-WebSocket-Version: 13\r\n" }
        text += "Connection: close\r\n\r\n"
        return Array(text.utf8) + body
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
