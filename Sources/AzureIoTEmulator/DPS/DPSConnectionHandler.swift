import AzureIoTCore
import Logging

/// Serves one HTTPS/1.1 connection (with keep-alive) of the emulated DPS REST API.
struct DPSConnectionHandler: Sendable {
    let service: ProvisioningService
    let limits: EmulatorLimits
    let logger: Logger

    func serve(_ connection: TLSConnection) async {
        defer { connection.close() }
        let certificates = connection.peerCertificateChain
        var buffer: [UInt8] = []
        var parser = HTTPRequestParser()
        do {
            while true {
                let step: HTTPRequestParser.Step
                do throws(HTTPRequest.ParseError) {
                    step = try parser.next(from: &buffer)
                } catch {
                    let response = ProvisioningService.error(error.status, error.status * 1000 + 1, error.description)
                    self.logger.info(
                        "a DPS request was refused",
                        metadata: ["status": "\(error.status)", "reason": "\(error.description)"]
                    )
                    try await connection.write(response.serialized(keepAlive: false), timeout: .seconds(10))
                    await Self.linger(connection)
                    return
                }
                guard case .request(let request) = step else {
                    if case .needMore(sendContinue: true) = step {
                        try await connection.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), timeout: .seconds(10))
                    }
                    let bytes = try await connection.read(maxBytes: 16 * 1024, timeout: .seconds(60))
                    guard !bytes.isEmpty else { return }
                    buffer += bytes
                    continue
                }
                let response = await self.service.handle(request, peerCertificates: certificates)
                self.logger.debug(
                    "DPS request",
                    metadata: [
                        "method": "\(request.method)", "path": "\(request.path)", "status": "\(response.status)",
                    ]
                )
                try await connection.write(response.serialized(keepAlive: request.keepAlive), timeout: .seconds(10))
                if !request.keepAlive { return }
            }
        } catch {
            self.logger.debug("a DPS connection ended", metadata: ["error": "\(error)"])
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
