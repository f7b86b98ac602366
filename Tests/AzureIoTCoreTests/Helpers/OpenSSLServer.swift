import AzureIoTTestSupport
import Foundation

/// A real `openssl s_server -www` peer on 127.0.0.1 with a certificate from the test PKI.
struct OpenSSLServer {
    let peer: PeerProcess
    let port: Int

    /// Starts `openssl s_server` with the given certificate and key names from the PKI, plus extra arguments.
    static func start(pki: TestPKI, certificate: String = "server", extra: [String] = []) async throws -> OpenSSLServer
    {
        var lastError: any Error = TestFailure("s_server did not start")
        for _ in 0..<3 {
            let port = try PeerProcess.freePort()
            do {
                let peer = try await PeerProcess(
                    "/usr/bin/openssl",
                    [
                        "s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.path("\(certificate).pem"),
                        "-key", pki.path("\(certificate).key"), "-www",
                    ] + extra,
                    readyMarker: "ACCEPT"
                )
                return OpenSSLServer(peer: peer, port: port)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    func stop() { self.peer.stop() }
}
