import AzureIoTCore
import Logging

/// Serves the emulated DPS REST API over HTTPS/1.1 with keep-alive, one task per connection.
final class DPSFrontend: Sendable {
    private let listener: TLSListener
    private let service: ProvisioningService
    private let logger: Logger

    init(listener: TLSListener, service: ProvisioningService, logger: Logger) {
        self.listener = listener
        self.service = service
        self.logger = logger
    }

    var port: Int { self.listener.port }

    func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                do {
                    let connection = try await self.listener.accept()
                    group.addTask { await self.serve(connection) }
                } catch let error as AzureIoTError where error.code == .connectionClosed {
                    return
                } catch {
                    self.logger.debug("a DPS handshake failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func serve(_ connection: TLSConnection) async {
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

    func close() { self.listener.close() }
}
