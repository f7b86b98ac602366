import AzureIoTCore
import Logging

/// Accepts TLS connections for one of the emulator's protocols and serves each in its own child task until the
/// listener is closed; a failed handshake is logged and the listener keeps going.
final class EmulatorListener: Sendable {
    private let listener: TLSListener
    private let name: String
    private let logger: Logger
    private let serve: @Sendable (TLSConnection) async -> Void

    init(listener: TLSListener, name: String, logger: Logger, serve: @escaping @Sendable (TLSConnection) async -> Void) {
        self.listener = listener
        self.name = name
        self.logger = logger
        self.serve = serve
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
                    self.logger.debug("a handshake failed", metadata: ["listener": "\(self.name)", "error": "\(error)"])
                }
            }
        }
    }

    func close() { self.listener.close() }
}
