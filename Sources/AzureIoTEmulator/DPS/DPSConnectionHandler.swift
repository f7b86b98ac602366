import AzureIoTCore
import Logging

/// Serves one HTTPS/1.1 connection (with keep-alive) of the emulated DPS REST API.
struct DPSConnectionHandler: Sendable {
    let service: ProvisioningService
    let logger: Logger

    func serve(_ connection: TLSConnection) async {
        defer { connection.close() }
        let certificates = connection.peerCertificateChain
        var buffer: [UInt8] = []
        do {
            while true {
                let parsed: HTTPRequest?
                do {
                    parsed = try HTTPRequest.parse(from: &buffer)
                } catch {
                    let tooLarge = if case .tooLarge = error { true } else { false }
                    let response = ProvisioningService.error(tooLarge ? 413 : 400, 400_001, error.description)
                    try await connection.write(response.serialized(keepAlive: false), timeout: .seconds(10))
                    return
                }
                guard let request = parsed else {
                    let bytes = try await connection.read(maxBytes: 16 * 1024, timeout: .seconds(60))
                    guard !bytes.isEmpty else { return }
                    buffer += bytes
                    continue
                }
                let response = await self.service.handle(request, peerCertificates: certificates)
                self.logger.debug("DPS request", metadata: ["method": "\(request.method)", "path": "\(request.path)", "status": "\(response.status)"])
                try await connection.write(response.serialized(keepAlive: request.keepAlive), timeout: .seconds(10))
                if !request.keepAlive { return }
            }
        } catch {
            self.logger.debug("a DPS connection ended", metadata: ["error": "\(error)"])
        }
    }

}
