private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// HMAC-SHA256 with one key, on the system OpenSSL's SHA-256.
///
/// The key's inner and outer hash states are computed once; each MAC starts from copies of them, so signing many
/// tokens with one key allocates nothing and needs no lock. The prepared state is never written after `init`,
/// so sharing it between threads is safe: hence `@unchecked Sendable`.
final class HMACSHA256: @unchecked Sendable {
    /// The output size in bytes.
    static let byteCount = 32

    /// The prepared states; immutable after `init`, wiped in `deinit`.
    private let state: UnsafeMutableRawPointer

    /// Prepares `key`. Throws ``AzureIoTError/Code/cryptoFailure`` if OpenSSL cannot.
    init(key: [UInt8]) throws(AzureIoTError) {
        let size = azi_hmac_sha256_state_size()
        let state = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        let ok = key.withUnsafeBufferPointer { azi_hmac_sha256_prepare(state, $0.baseAddress, $0.count) }
        guard ok == 1 else {
            azi_hmac_sha256_clear(state)
            state.deallocate()
            throw AzureIoTError(.cryptoFailure, "OpenSSL could not key HMAC-SHA256", details: OpenSSLErrorQueue.drainText())
        }
        self.state = state
    }

    deinit {
        azi_hmac_sha256_clear(self.state)
        self.state.deallocate()
    }

    /// Computes the MAC of `message` into `output`, which must hold 32 bytes.
    func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= Self.byteCount)
        let ok = azi_hmac_sha256_compute(
            self.state,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self),
            message.count,
            output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        )
        // SHA-256 over memory we own cannot fail unless OpenSSL itself is broken.
        precondition(ok == 1, "OpenSSL SHA-256 failed")
    }

    /// Computes the MAC of `message`.
    func authenticate(_ message: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.byteCount) { buffer, count in
            message.withUnsafeBytes { self.authenticate($0, into: UnsafeMutableRawBufferPointer(buffer)) }
            count = Self.byteCount
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths (OpenSSL's `CRYPTO_memcmp`).
func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    if lhs.isEmpty { return true }
    return lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 } }
}
