import AzureIoTCore
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import Testing

/// The TLS transport against a real `openssl s_server` (and our own listener), certificates made at test time.
@Suite("TLS transport")
struct TLSConnectionTests {
    /// Sends an HTTP request to an `s_server -www` and returns its whole answer.
    static func fetchStatusPage(_ connection: TLSConnection) async throws -> String {
        defer { connection.close() }
        try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8), timeout: .seconds(5))
        var response: [UInt8] = []
        while true {
            let chunk = try await connection.read(timeout: .seconds(5))
            if chunk.isEmpty { break }
            response += chunk
        }
        return String(decoding: response, as: UTF8.self)
    }

    static func expectFailure(
        _ code: AzureIoTError.Code,
        configuration: TLSConfiguration,
        server: OpenSSLServer,
        host: String = "localhost"
    ) async {
        do {
            let connection = try await TLSConnection.connect(
                host: host,
                port: server.port,
                configuration: configuration
            )
            // With TLS 1.3 a client learns of a rejected certificate on its first read.
            _ = try await fetchStatusPage(connection)
            Issue.record("expected \(code), but the connection worked")
        } catch let error as AzureIoTError {
            #expect(error.code == code, "\(error)")
        } catch {
            Issue.record("expected AzureIoTError \(code), got \(error)")
        }
    }

    @Test("connects with SNI and host-name checks to a server whose CA we trust")
    func success() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki)
        defer { server.stop() }
        let connection = try await TLSConnection.connect(
            host: "localhost",
            port: server.port,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")))
        )
        #expect(connection.protocolVersion == "TLSv1.3")
        #expect(connection.peerCertificate?.commonName == "localhost")
        let page = try await Self.fetchStatusPage(connection)
        #expect(page.hasPrefix("HTTP/1.0 200 ok"))
        #expect(page.contains("TLSv1.3"))
        connection.close()
    }

    @Test("an IP address is verified against the certificate's IP SAN; TLS 1.2 can be forced by the server")
    func ipAddressAndTLS12() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki, extra: ["-tls1_2"])
        defer { server.stop() }
        let connection = try await TLSConnection.connect(
            host: "127.0.0.1",
            port: server.port,
            configuration: TLSConfiguration(trustRoots: .pem(try pki.text("ca.pem")))
        )
        #expect(connection.protocolVersion == "TLSv1.2")
        #expect(try await Self.fetchStatusPage(connection).hasPrefix("HTTP/1.0 200 ok"))
    }

    @Test("a server signed by a CA we do not trust is refused")
    func wrongCA() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki)
        defer { server.stop() }
        await Self.expectFailure(
            .certificateUntrusted,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("rogue-ca.pem"))),
            server: server
        )
        await Self.expectFailure(
            .certificateUntrusted,
            configuration: TLSConfiguration(trustRoots: .system),
            server: server
        )
    }

    @Test("a certificate for another host name is refused")
    func hostnameMismatch() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki, certificate: "wronghost")
        defer { server.stop() }
        let configuration = TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")))
        await Self.expectFailure(.hostnameMismatch, configuration: configuration, server: server)
        await Self.expectFailure(.hostnameMismatch, configuration: configuration, server: server, host: "127.0.0.1")
        // The name to verify can differ from the host dialled (an Edge gateway reached by address).
        let named = TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")), serverName: "other.example")
        let connection = try await TLSConnection.connect(host: "127.0.0.1", port: server.port, configuration: named)
        #expect(try await Self.fetchStatusPage(connection).hasPrefix("HTTP/1.0 200 ok"))
    }

    @Test("an expired server certificate is refused")
    func expired() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki, certificate: "expired")
        defer { server.stop() }
        await Self.expectFailure(
            .certificateExpired,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem"))),
            server: server
        )
    }

    @Test("a server that speaks only TLS 1.1 is refused")
    func tls11Only() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki, extra: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        defer { server.stop() }
        await Self.expectFailure(
            .unsupportedTLSVersion,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem"))),
            server: server
        )
    }

    @Test("a client certificate chained through an intermediate is accepted by s_server -Verify")
    func clientCertificate() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(
            pki: pki,
            extra: ["-Verify", "4", "-CAfile", pki.path("ca.pem"), "-verify_return_error"]
        )
        defer { server.stop() }
        let identity = try X509Identity(
            certificateFile: pki.path("dev2-chain.pem"),
            privateKeyFile: pki.path("dev2.key")
        )
        let configuration = TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")), clientIdentity: identity)
        let connection = try await TLSConnection.connect(
            host: "localhost",
            port: server.port,
            configuration: configuration
        )
        let page = try await Self.fetchStatusPage(connection)
        #expect(page.hasPrefix("HTTP/1.0 200 ok"))
        #expect(page.contains("Subject: CN=dev2"))
        #expect(page.contains("Issuer: CN=AzureIoT Test Intermediate CA"))

        // Without a certificate, or with the leaf alone (no intermediate), the server refuses us.
        await Self.expectFailure(
            .clientCertificateRejected,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem"))),
            server: server
        )
        let leafOnly = try X509Identity(certificateFile: pki.path("dev2.pem"), privateKeyFile: pki.path("dev2.key"))
        await Self.expectFailure(
            .clientCertificateRejected,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")), clientIdentity: leafOnly),
            server: server
        )
    }

    @Test("a closed port fails fast with connectionFailed")
    func refused() async throws {
        let port = try PeerProcess.freePort()
        await #expect(throws: AzureIoTError(.connectionFailed, "")) {
            _ = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: TLSConfiguration())
        }
    }

    @Test("our own listener with required client certificates, read timeout and cancellation")
    func ownListener() async throws {
        let pki = try await TestPKI.shared()
        let serverIdentity = try X509Identity(
            certificateFile: pki.path("server.pem"),
            privateKeyFile: pki.path("server.key")
        )
        let listener = try TLSListener(
            configuration: TLSServerConfiguration(
                identity: serverIdentity,
                clientAuthentication: .required(.pemFile(pki.path("ca.pem")))
            )
        )
        defer { listener.close() }
        let accepted = Task { try await listener.accept() }
        let identity = try X509Identity(certificateFile: pki.path("dev1.pem"), privateKeyFile: pki.path("dev1.key"))
        let client = try await TLSConnection.connect(
            host: "localhost",
            port: listener.port,
            configuration: TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")), clientIdentity: identity)
        )
        let server = try await accepted.value
        #expect(server.peerCertificate?.commonName == "dev1")

        try await client.write(Array("ping".utf8))
        #expect(try await server.read(timeout: .seconds(5)) == Array("ping".utf8))

        // Nothing to read: the timeout fires.
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: AzureIoTError(.timedOut, "")) { _ = try await client.read(timeout: .milliseconds(200)) }
        #expect(clock.now - start >= .milliseconds(190))

        // A pending read ends promptly when its task is cancelled, and the connection stays usable.
        let pending = Task { try await client.read() }
        try await Task.sleep(for: .milliseconds(100))
        pending.cancel()
        await #expect(throws: CancellationError.self) { _ = try await pending.value }
        try await server.write(Array("pong".utf8))
        #expect(try await client.read(timeout: .seconds(5)) == Array("pong".utf8))

        // Closing locally fails a pending read with connectionClosed; the peer sees end of stream.
        let blocked = Task { try await client.read() }
        try await Task.sleep(for: .milliseconds(50))
        client.close()
        await #expect(throws: AzureIoTError(.connectionClosed, "")) { _ = try await blocked.value }
        #expect(try await server.read(timeout: .seconds(5)).isEmpty)
    }

    @Test("a held write queue keeps what is queued until the hold ends; finishing it writes what a hold kept back")
    func heldWriteQueue() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(pki: pki)
        defer { server.stop() }
        let configuration = TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")))
        for finishing in [false, true] {
            let connection = try await TLSConnection.connect(
                host: "localhost",
                port: server.port,
                configuration: configuration
            )
            defer { connection.close() }
            let queue = TLSWriteQueue(connection: connection)
            queue.hold(true)
            #expect(queue.send(Array("GET / HTTP/1.0\r\n".utf8)))
            #expect(queue.send(Array("\r\n".utf8)))
            // Nothing reached the server, so it has nothing to answer.
            await #expect(throws: AzureIoTError(.timedOut, "")) {
                _ = try await connection.read(timeout: .milliseconds(300))
            }
            if finishing { await queue.finish() } else { queue.hold(false) }
            var response: [UInt8] = []
            while true {
                let chunk = try await connection.read(timeout: .seconds(10))
                if chunk.isEmpty { break }
                response += chunk
            }
            #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.0 200 ok"))
        }
    }
}
