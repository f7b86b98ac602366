import AzureIoTCore
import Logging

/// Serves one HTTPS/1.1 connection (with keep-alive) of one of the emulator's REST APIs (DPS, the service API):
/// reads requests with the bounded ``HTTPRequestParser``, answers each with `handle`, and answers a request it
/// cannot parse with `refusal` before closing.
struct HTTPConnectionHandler: Sendable {
    /// The API's name in log lines (`DPS`, `service`).
    let name: String
    let logger: Logger
    let handle: @Sendable (HTTPRequest, [X509Certificate]) async -> HTTPResponse
    let refusal: @Sendable (HTTPRequest.ParseError) -> HTTPResponse
    /// The largest request body taken.
    var maximumBodyBytes = HTTPRequestParser.maximumBodyBytes

    func serve(_ connection: TLSConnection) async {
        defer { connection.close() }
        let certificates = connection.peerCertificateChain
        var buffer: [UInt8] = []
        var parser = HTTPRequestParser(maximumBodyBytes: self.maximumBodyBytes)
        do {
            while true {
                let step: HTTPRequestParser.Step
                do throws(HTTPRequest.ParseError) {
                    step = try parser.next(from: &buffer)
                } catch {
                    self.logger.info(
                        "a \(self.name) request was refused",
                        metadata: ["status": "\(error.status)", "reason": "\(error.description)"]
                    )
                    try await connection.write(self.refusal(error).serialized(keepAlive: false), timeout: .seconds(10))
                    await Self.linger(connection)
                    return
                }
                guard case .request(let request) = step else {
                    if case .needMore(sendContinue: true) = step {
                        try await connection.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), timeout: .seconds(10))
                    }
                    let bytes = try await connection.read(maxBytes: 64 * 1024, timeout: .seconds(60))
                    guard !bytes.isEmpty else { return }
                    buffer += bytes
                    continue
                }
                let response = await self.handle(request, certificates)
                self.logger.debug(
                    "\(self.name) request",
                    metadata: [
                        "method": "\(request.method)", "path": "\(request.path)", "status": "\(response.status)",
                    ]
                )
                try await connection.write(response.serialized(keepAlive: request.keepAlive), timeout: .seconds(10))
                if !request.keepAlive { return }
            }
        } catch {
            self.logger.debug("a \(self.name) connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// After refusing a request whose body may still be arriving, reads and drops what the client sends, for up to
    /// 2 s or 2 MiB, before closing: a client still uploading then reads the answer instead of failing on a reset
    /// connection (what HTTP servers call a lingering close).
    static func linger(_ connection: TLSConnection) async {
        let end = ContinuousClock.now + .seconds(2)
        var drained = 0
        while drained < 2 << 20, ContinuousClock.now < end {
            guard let bytes = try? await connection.read(maxBytes: 64 * 1024, timeout: .milliseconds(200)),
                !bytes.isEmpty
            else { return }
            drained += bytes.count
        }
    }
}
