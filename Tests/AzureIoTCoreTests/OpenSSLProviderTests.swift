import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import Testing

/// HMAC through OpenSSL's providers (the default) and the opt-in precomputed path, and private keys loaded through
/// an `OSSL_STORE` URI. The provider configuration itself is exercised in a child process by the CLI tests
/// (`OpenSSLConfigurationTests`): OpenSSL reads its configuration once per process.
@Suite("OpenSSL providers")
struct OpenSSLProviderTests {
    @Test(
        "both HMAC implementations reproduce every SAS and derived-key vector",
        arguments: [
            HMACImplementation.provider, .precomputedSHA256,
        ]
    )
    func vectors(implementation: HMACImplementation) throws {
        var count = 0
        for file in try VectorFile.all() {
            for vector in file.sas {
                let key = try SymmetricKey(base64: vector.key, implementation: implementation)
                #expect(key.implementation == implementation)
                #expect(key.signature(of: vector.stringToSign) == vector.signature)
                let resource = SASResource(uri: vector.resourceURI)
                #expect(
                    SASToken.string(for: resource, key: key, expiry: vector.expiry, keyName: vector.policyName)
                        == vector.token
                )
                count += 1
            }
            for vector in file.derivedKeys {
                let derived = try SymmetricKey(base64: vector.groupKey, implementation: implementation)
                    .derivedKey(forRegistrationId: vector.registrationId)
                #expect(derived.base64EncodedSecret == vector.derivedKey)
                #expect(derived.implementation == implementation)
                count += 1
            }
        }
        #expect(count >= 8)
        #expect(try SymmetricKey(base64: "MDEy").implementation == .provider)
    }

    @Test("one provider-backed key signs from many tasks at once and every signature is right")
    func concurrentSigning() async throws {
        let key = try SymmetricKey(base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        let reference = try SymmetricKey(base64: key.base64EncodedSecret, implementation: .precomputedSHA256)
        // More tasks than the pool keeps, so contexts are duplicated, returned and freed while others sign.
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for task in 0..<32 {
                group.addTask {
                    var wrong = 0
                    for index in 0..<500 {
                        let message = "hub.example/devices/d\(task)\n\(index)"
                        if key.signature(of: message) != reference.signature(of: message) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    @Test("a client key loaded through a file: store URI signs the TLS handshake s_server verifies")
    func storeURIKey() async throws {
        let pki = try await TestPKI.shared()
        let server = try await OpenSSLServer.start(
            pki: pki,
            extra: ["-Verify", "4", "-CAfile", pki.path("ca.pem"), "-verify_return_error"]
        )
        defer { server.stop() }
        let key = try PrivateKey(storeURI: "file:" + pki.path("dev2.key"))
        let certificates = try X509Certificate.certificates(fromPEMFile: pki.path("dev2-chain.pem"))
        let identity = try X509Identity(leaf: certificates[0], chain: Array(certificates.dropFirst()), privateKey: key)
        let configuration = TLSConfiguration(trustRoots: .pemFile(pki.path("ca.pem")), clientIdentity: identity)
        let connection = try await TLSConnection.connect(
            host: "localhost",
            port: server.port,
            configuration: configuration
        )
        let page = try await TLSConnectionTests.fetchStatusPage(connection)
        #expect(page.hasPrefix("HTTP/1.0 200 ok"))
        #expect(page.contains("Subject: CN=dev2"))
    }

    @Test("a store URI that opens nothing is a typed error that never repeats the URI (it may carry a PIN)")
    func storeURIErrors() async throws {
        let pki = try await TestPKI.shared()
        let cases = [
            "file:/nonexistent/secret-pin-4711.pem",
            "nosuchscheme:token=x;pin-value=4711",
            "file:" + pki.path("ca.pem"),  // a certificate, no private key
        ]
        for uri in cases {
            do {
                _ = try PrivateKey(storeURI: uri)
                Issue.record("\(uri) loaded a key")
            } catch {
                #expect(error.code == .invalidPrivateKey, "\(error)")
                #expect(!"\(error)".contains("4711"), "\(error)")
                #expect(!String(reflecting: error).contains("4711"))
            }
        }
    }
}
