private import CAzureIoTOpenSSL
private import CAzureIoTShims
import Foundation

/// One X.509 certificate held by OpenSSL.
///
/// Immutable after loading: nothing mutates the `X509` object it owns, and OpenSSL's reference counting makes
/// sharing it between threads safe, hence `@unchecked Sendable`.
public final class X509Certificate: @unchecked Sendable {
    /// The OpenSSL `X509 *`.
    package let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) { self.pointer = pointer }

    deinit { X509_free(self.pointer) }

    /// Reads every certificate in PEM text, in order. Throws ``AzureIoTError/Code/invalidCertificate`` if there is
    /// none or one is corrupt.
    public static func certificates(fromPEM pem: String) throws(AzureIoTError) -> [X509Certificate] {
        OpenSSLErrorQueue.clear()
        guard let bio = copyIntoMemoryBIO(pem) else {
            throw AzureIoTError(
                .cryptoFailure,
                "OpenSSL could not allocate a buffer",
                details: OpenSSLErrorQueue.drainText()
            )
        }
        defer { BIO_free(bio) }
        var certificates: [X509Certificate] = []
        while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) {
            certificates.append(X509Certificate(taking: certificate))
        }
        // Reaching the end of the text leaves a "no start line" entry; anything else means corrupt PEM.
        let errors = OpenSSLErrorQueue.drain().filter { !$0.text.contains("no start line") }
        guard errors.isEmpty else {
            throw AzureIoTError(
                .invalidCertificate,
                "a certificate in the PEM text is corrupt",
                details: errors.map(\.text)
            )
        }
        guard !certificates.isEmpty else {
            throw AzureIoTError(.invalidCertificate, "no '-----BEGIN CERTIFICATE-----' block was found")
        }
        return certificates
    }

    /// Reads every certificate in a PEM file. Throws ``AzureIoTError/Code/fileNotReadable`` or
    /// ``AzureIoTError/Code/invalidCertificate``.
    public static func certificates(fromPEMFile path: String) throws(AzureIoTError) -> [X509Certificate] {
        try certificates(fromPEM: try readTextFile(path, what: "certificate file"))
    }

    /// The subject's common name (CN), if it has one.
    public var commonName: String? { Self.commonName(of: X509_get_subject_name(self.pointer)) }

    /// The issuer's common name (CN), if it has one.
    public var issuerCommonName: String? { Self.commonName(of: X509_get_issuer_name(self.pointer)) }

    /// The subject as one line (`CN=dev1, O=…`).
    public var subject: String { Self.oneLine(X509_get_subject_name(self.pointer)) }

    /// The issuer as one line.
    public var issuer: String { Self.oneLine(X509_get_issuer_name(self.pointer)) }

    /// The SHA-1 thumbprint in upper-case hex, as the Azure portal shows it.
    public var sha1Thumbprint: String { self.thumbprint(EVP_sha1()) }

    /// The SHA-256 thumbprint in upper-case hex.
    public var sha256Thumbprint: String { self.thumbprint(EVP_sha256()) }

    /// The DER encoding.
    public var derBytes: [UInt8] {
        var buffer: UnsafeMutablePointer<UInt8>?
        let length = i2d_X509(self.pointer, &buffer)
        guard length > 0, let buffer else { return [] }
        defer { CRYPTO_free(buffer, #fileID, #line) }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(length)))
    }

    private func thumbprint(_ digest: OpaquePointer?) -> String {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(self.pointer, digest, &output, &length) == 1 else { return "" }
        return output.prefix(Int(length)).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    private static func commonName(of name: OpaquePointer?) -> String? {
        guard let name else { return nil }
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index), let data = X509_NAME_ENTRY_get_data(entry)
        else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { CRYPTO_free(utf8, #fileID, #line) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    private static func oneLine(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, name, 0, azi_xn_flag_rfc2253())
        var data: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data)
        guard length > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }
}

extension X509Certificate: CustomStringConvertible {
    /// A readable summary that never contains secrets.
    public var description: String { "X509Certificate(subject: \(self.subject), issuer: \(self.issuer))" }
}

/// Reads a whole text file, throwing ``AzureIoTError/Code/fileNotReadable`` with the path (never the content).
func readTextFile(_ path: String, what: String) throws(AzureIoTError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw AzureIoTError(.fileNotReadable, "cannot read the \(what) at '\(path)'")
    }
    return String(decoding: data, as: UTF8.self)
}

/// A memory BIO holding its own copy of `text` (so no Swift buffer has to outlive a closure); `nil` on failure.
func copyIntoMemoryBIO(_ text: String) -> OpaquePointer? {
    guard let bio = BIO_new(BIO_s_mem()) else { return nil }
    let written = text.withUTF8Bytes { bytes in
        bytes.isEmpty ? 0 : BIO_write(bio, bytes.baseAddress, Int32(bytes.count))
    }
    guard written == Int32(text.utf8.count) else {
        BIO_free(bio)
        return nil
    }
    return bio
}

extension X509Certificate {
    /// Whether subject and issuer are the same name (a root).
    public var isSelfSigned: Bool {
        X509_NAME_cmp(X509_get_subject_name(self.pointer), X509_get_issuer_name(self.pointer)) == 0
    }

    /// The certificate in PEM.
    public var pem: String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509(bio, self.pointer) == 1 else { return "" }
        var data: UnsafeMutablePointer<CChar>?
        let length = azi_bio_get_mem_data(UnsafeMutableRawPointer(bio), &data)
        guard length > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }

    /// Verifies that this certificate chains, through `intermediates`, to one of `anchors` (an anchor may be an
    /// intermediate CA, as DPS enrollment groups allow) and is within its validity period. Throws
    /// ``AzureIoTError/Code/certificateUntrusted`` or ``AzureIoTError/Code/certificateExpired`` with OpenSSL's reason.
    public func verify(intermediates: [X509Certificate] = [], anchors: [X509Certificate]) throws(AzureIoTError) {
        let untrusted = intermediates.map { UnsafeMutableRawPointer($0.pointer) as UnsafeMutableRawPointer? }
        let trusted = anchors.map { UnsafeMutableRawPointer($0.pointer) as UnsafeMutableRawPointer? }
        let result = untrusted.withUnsafeBufferPointer { untrustedBuffer in
            trusted.withUnsafeBufferPointer { trustedBuffer in
                azi_verify_chain(
                    UnsafeMutableRawPointer(self.pointer),
                    untrustedBuffer.baseAddress,
                    Int32(untrustedBuffer.count),
                    trustedBuffer.baseAddress,
                    Int32(trustedBuffer.count)
                )
            }
        }
        guard result != 0 else { return }
        let reason = String(cString: azi_verify_error_text(result))
        let expired = result == X509_V_ERR_CERT_HAS_EXPIRED || result == X509_V_ERR_CERT_NOT_YET_VALID
        throw AzureIoTError(
            expired ? .certificateExpired : .certificateUntrusted,
            "the certificate '\(self.subject)' does not verify: \(reason)"
        )
    }
}
