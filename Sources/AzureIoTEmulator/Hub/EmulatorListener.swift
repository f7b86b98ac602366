import AzureIoTCore
import AzureIoTTesting
import Logging

/// Accepts TCP connections for one of the emulator's protocols in a loop that does nothing else, and serves each in
/// a child task of its own, TLS handshake included (within the handshake time-out), so that a client that connects
/// and sends nothing delays nobody. A connection over a ``ConnectionLimiter`` limit is closed at once and the first
/// one of a run is logged; running out of file descriptors makes the listener back off, not spin or stop.
final class EmulatorListener: Sendable {
    private let listener: TLSListener
    private let name: String
    private let limiter: ConnectionLimiter
    private let logger: Logger
    private let serve: @Sendable (TLSConnection) async -> Void
    private let handshakes: HandshakeGate
    private let handshakeTimeout: Duration

    init(
        listener: TLSListener,
        name: String,
        limiter: ConnectionLimiter,
        handshakes: HandshakeGate,
        handshakeTimeout: Duration,
        logger: Logger,
        serve: @escaping @Sendable (TLSConnection) async -> Void
    ) {
        self.listener = listener
        self.name = name
        self.limiter = limiter
        self.handshakes = handshakes
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
        self.serve = serve
    }

    var port: Int { self.listener.port }

    func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let pending: PendingTLSConnection
                do {
                    pending = try await self.listener.acceptConnection()
                } catch let error as AzureIoTError where error.code == .connectionClosed {
                    return
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("accept failed", metadata: ["listener": "\(self.name)", "error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                let admission = self.limiter.admit(port: self.listener.port, source: pending.peerAddress)
                guard let ticket = admission.ticket else {
                    if admission.firstRefusal, let refusal = admission.refusal {
                        self.logger.warning(
                            "connections shed",
                            metadata: ["listener": "\(self.name)", "reason": "\(refusal)"]
                        )
                    }
                    continue
                }
                group.addTask {
                    defer { ticket.release() }
                    // A bounded number of handshakes at once (the client's ClientHello waits in its socket meanwhile).
                    guard await self.handshakes.enter(timeout: self.handshakeTimeout) else {
                        return  // the unused connection closes its socket when released
                    }
                    let connection: TLSConnection
                    do {
                        connection = try await pending.handshake()
                        self.handshakes.leave()
                    } catch {
                        self.handshakes.leave()
                        self.logger.debug(
                            "a handshake failed",
                            metadata: ["listener": "\(self.name)", "error": "\(error)"]
                        )
                        return
                    }
                    await self.serve(connection)
                }
            }
        }
    }

    func close() { self.listener.close() }
}
