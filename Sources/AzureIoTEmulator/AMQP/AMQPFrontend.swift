import AzureIoTCore
import Logging

/// Accepts AMQP-over-TLS connections for the emulated hub, one task per connection.
final class AMQPFrontend: Sendable {
    private let listener: TLSListener
    private let hub: EmulatedHub
    private let logger: Logger

    init(listener: TLSListener, hub: EmulatedHub, logger: Logger) {
        self.listener = listener
        self.hub = hub
        self.logger = logger
    }

    var port: Int { self.listener.port }

    func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                do {
                    let connection = try await self.listener.accept()
                    let id = await self.hub.makeId()
                    group.addTask {
                        await AMQPDeviceConnection(connection: connection, hub: self.hub, linkId: id, logger: self.logger).run()
                    }
                } catch let error as AzureIoTError where error.code == .connectionClosed {
                    return
                } catch {
                    self.logger.debug("an AMQP handshake failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    func close() { self.listener.close() }
}
