import AzureIoTTestSupport
import Testing

@testable import AzureIoTEmulator

/// The emulator's HTTP/1.1 request parser, fed bytes as a connection would: header forms clients send, bodies framed
/// both ways, `Expect: 100-continue`, and every limit, reported as soon as the bytes that pass it arrive.
@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    static let register = """
        PUT /0ne00057505/registrations/dev-1/register?api-version=2019-03-31 HTTP/1.1\r
        Host: localhost:8443\r
        Content-Type: application/json\r
        Content-Encoding:  utf-8\r
        Authorization: SharedAccessSignature sr=0ne00057505%2Fregistrations%2Fdev-1&sig=abc%3D&se=1&skn=registration\r
        Content-Length: 28\r
        \r
        {"registrationId": "dev-1"}
        """

    /// Feeds `bytes` to a parser in pieces of `size`; returns the requests and whether 100 Continue was asked for.
    static func feed(_ bytes: [UInt8], pieces size: Int) throws(HTTPRequest.ParseError) -> (
        requests: [HTTPRequest], continues: Int
    ) {
        var parser = HTTPRequestParser()
        var buffer: [UInt8] = []
        var requests: [HTTPRequest] = []
        var continues = 0
        var offset = 0
        while offset < bytes.count {
            buffer += bytes[offset..<min(offset + size, bytes.count)]
            offset += size
            parsing: while true {
                switch try parser.next(from: &buffer) {
                case .request(let request):
                    requests.append(request)
                case .needMore(let sendContinue):
                    if sendContinue { continues += 1 }
                    break parsing
                }
            }
        }
        return (requests, continues)
    }

    @Test("the DPS write-up's curl request, arriving in pieces of any size, parses the same way")
    func curlRequestInPieces() throws {
        let bytes = Array(Self.register.utf8) + [10]
        for size in [1, 2, 3, 7, 64, bytes.count] {
            let parsed = try Self.feed(bytes, pieces: size)
            #expect(parsed.requests.count == 1, "pieces of \(size)")
            let request = try #require(parsed.requests.first)
            #expect(request.method == "PUT" && request.path == "/0ne00057505/registrations/dev-1/register")
            #expect(request.query["api-version"] == "2019-03-31")
            #expect(request.headers["content-encoding"] == "utf-8", "two spaces after the colon are white space")
            #expect(String(decoding: request.body, as: UTF8.self) == #"{"registrationId": "dev-1"}"# + "\n")
        }
    }

    @Test("two requests on one connection, then a chunked body with extensions and a trailer")
    func pipelinedAndChunked() throws {
        let chunked =
            "POST /s/registrations/r?api-version=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"re\r\n0018\r\ngistrationId\": \"dev-1\"}\n\r\n0\r\nX-Trailer: 1\r\n\r\n"
        let bytes = Array((Self.register + "\n" + chunked).utf8)
        for size in [1, 5, bytes.count] {
            let parsed = try Self.feed(bytes, pieces: size)
            #expect(parsed.requests.count == 2)
            #expect(
                parsed.requests.last.map { String(decoding: $0.body, as: UTF8.self) }
                    == "{\"registrationId\": \"dev-1\"}\n"
            )
        }
    }

    @Test("Expect: 100-continue asks for one interim answer, and none once the body is there")
    func expectContinue() throws {
        let head =
            "PUT /s/registrations/r/register?api-version=1 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        var parser = HTTPRequestParser()
        var buffer = Array(head.utf8)
        #expect(try parser.next(from: &buffer) == .needMore(sendContinue: true))
        #expect(try parser.next(from: &buffer) == .needMore(sendContinue: false))
        buffer += Array("{}".utf8)
        guard case .request(let request) = try parser.next(from: &buffer) else { throw TestFailure("no request") }
        #expect(request.body == Array("{}".utf8) && buffer.isEmpty)
        let whole = try Self.feed(Array((head + "{}").utf8), pieces: 1000)
        #expect(whole.continues == 0 && whole.requests.count == 1)
    }

    @Test("limits: a long line, a large or crowded header block, a large body announced or sent chunked")
    func limits() {
        let line = "GET /s/registrations/r?api-version=1 HTTP/1.1\r\n"
        let cases: [(String, HTTPRequest.ParseError)] = [
            // One 9 KB header line: refused before its end arrives.
            (line + "X-Long: " + String(repeating: "a", count: 9 * 1024), .headerTooLarge),
            // 20 KB of short header lines with the end of the block in sight (it once passed the 16 KB limit).
            (
                line + String(repeating: "X-A: 0123456789012345678901234567890123456789\r\n", count: 440) + "\r\n",
                .headerTooLarge
            ),
            (line + String(repeating: "X: 1\r\n", count: 101) + "\r\n", .headerTooLarge),
            (String(repeating: "A", count: 9000), .headerTooLarge),
            ("PUT /s HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", .bodyTooLarge),
            (
                "PUT /s HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                .malformed("an invalid Content-Length")
            ),
            ("PUT /s HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .malformed("an invalid Content-Length")),
            (
                "PUT /s HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                .malformed("two different Content-Length headers")
            ),
            ("PUT /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n", .bodyTooLarge),
            (
                "PUT /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + String(repeating: "8000\r\n" + String(repeating: "a", count: 0x8000) + "\r\n", count: 2)
                    + "1\r\n", .bodyTooLarge
            ),
            ("PUT /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\n", .malformed("an invalid chunk size")),
            ("PUT /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformed("an invalid chunk size")),
            (
                "PUT /s HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                .malformed("only 'Transfer-Encoding: chunked' without Content-Length is understood")
            ),
            ("PUT /s HTTP/1.1\r\nBad Name: 1\r\n\r\n", .malformed("white space in a header name")),
            ("PUT /s HTTP/1.1\r\n: 1\r\n\r\n", .malformed("a header line without a name and ':'")),
            ("PUT /s\r\n\r\n", .malformed("a malformed request line")),
            ("PUT s HTTP/1.1\r\n\r\n", .malformed("a malformed request line")),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text.prefix(60))") { _ = try Self.feed(Array(text.utf8), pieces: 4096) }
        }
    }

    @Test("empty lines before a request are skipped; a partial body waits")
    func needsMore() throws {
        let parsed = try Self.feed(Array("\r\n\r\nPUT /s HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8), pieces: 1)
        #expect(parsed.requests.map(\.method) == ["PUT"])
        var parser = HTTPRequestParser()
        var partial = Array("PUT /s HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".utf8)
        #expect(try parser.next(from: &partial) == .needMore(sendContinue: false))
    }
}
