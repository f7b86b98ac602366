import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import Testing

@Suite("X.509 identities")
struct X509IdentityTests {
    @Test("loads leaf, chain and key; exposes CN and the thumbprint openssl computes")
    func load() async throws {
        let pki = try await TestPKI.shared()
        let dev1 = try X509Identity(certificateFile: pki.path("dev1.pem"), privateKeyFile: pki.path("dev1.key"))
        #expect(dev1.commonName == "dev1")
        #expect(dev1.chain.isEmpty)
        #expect(dev1.privateKey.algorithm == "RSA")
        let fingerprint = try await PeerProcess.complete(
            "/usr/bin/openssl",
            ["x509", "-in", pki.path("dev1.pem"), "-noout", "-fingerprint", "-sha1"]
        )
        #expect(fingerprint.output.replacingOccurrences(of: ":", with: "").contains(dev1.thumbprint))

        let dev2 = try X509Identity(
            certificatePEM: try pki.text("dev2-chain.pem"),
            privateKeyPEM: try pki.text("dev2.key")
        )
        #expect(dev2.commonName == "dev2")
        #expect(dev2.chain.map(\.commonName) == ["AzureIoT Test Intermediate CA"])
        #expect(dev2.privateKey.algorithm == "EC")
        #expect(dev2.leaf.issuerCommonName == "AzureIoT Test Intermediate CA")

        let separate = try X509Identity(
            certificateFile: pki.path("dev2.pem"),
            privateKeyFile: pki.path("dev2.key"),
            chainFile: pki.path("inter.pem")
        )
        #expect(separate.chain.count == 1)
    }

    @Test("an encrypted key needs the right passphrase")
    func passphrase() async throws {
        let pki = try await TestPKI.shared()
        let identity = try X509Identity(
            certificateFile: pki.path("dev1.pem"),
            privateKeyFile: pki.path("dev3-enc.key"),
            passphrase: "test-passphrase"
        )
        #expect(identity.commonName == "dev1")
        for passphrase in [nil, "not-the-passphrase-7Q"] as [String?] {
            do {
                _ = try X509Identity(
                    certificateFile: pki.path("dev1.pem"),
                    privateKeyFile: pki.path("dev3-enc.key"),
                    passphrase: passphrase
                )
                Issue.record("expected a passphrase error")
            } catch {
                #expect(error.code == .invalidPrivateKey)
                #expect(error.message.contains("passphrase"))
                if let passphrase { #expect(!error.description.contains(passphrase)) }
            }
        }
    }

    @Test("a key of another certificate, corrupt PEM and missing files are refused distinctly")
    func failures() async throws {
        let pki = try await TestPKI.shared()
        #expect(throws: AzureIoTError(.privateKeyMismatch, "")) {
            try X509Identity(certificateFile: pki.path("dev1.pem"), privateKeyFile: pki.path("dev2.key"))
        }
        #expect(throws: AzureIoTError(.invalidCertificate, "")) {
            try X509Identity(certificatePEM: "not a certificate", privateKeyPEM: try pki.text("dev1.key"))
        }
        let corrupt = try pki.text("dev1.pem").replacingOccurrences(of: "A", with: "*")
        #expect(throws: AzureIoTError(.invalidCertificate, "")) {
            try X509Identity(certificatePEM: corrupt, privateKeyPEM: try pki.text("dev1.key"))
        }
        #expect(throws: AzureIoTError(.invalidPrivateKey, "")) {
            try X509Identity(
                certificatePEM: try pki.text("dev1.pem"),
                privateKeyPEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
        }
        #expect(throws: AzureIoTError(.fileNotReadable, "")) {
            try X509Identity(certificateFile: pki.path("missing.pem"), privateKeyFile: pki.path("dev1.key"))
        }
    }

    @Test("description shows subject and thumbprint, never the key")
    func redaction() async throws {
        let pki = try await TestPKI.shared()
        let identity = try X509Identity(certificateFile: pki.path("dev1.pem"), privateKeyFile: pki.path("dev1.key"))
        let keyBody = try pki.text("dev1.key").split(separator: "\n")[1]
        for text in [identity.description, identity.privateKey.description, "\(identity)"] {
            #expect(!text.contains(keyBody))
        }
        #expect(identity.description.contains("CN=dev1"))
    }
}
