private import CAzureIoTOpenSSL
import Synchronization

/// HMAC-SHA256 with one key, computed by the system OpenSSL.
///
/// The keyed context is prepared once and re-initialised for each message, so signing many tokens with the same key
/// does not fetch the algorithm or hash the key again.
final class HMACSHA256: Sendable {
    /// The output size in bytes.
    static let byteCount = 32

    private let context: Mutex<ContextBox>

    /// Wraps the OpenSSL context pointer; it is only ever used under `context`'s lock.
    private struct ContextBox: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// The fetched algorithm, shared by every key (fetching is the expensive part of OpenSSL 3's one-shot HMAC).
    /// OpenSSL documents a fetched `EVP_MAC` as safe to share between threads once fetched.
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)

    /// Prepares a context keyed with `key`. Throws ``AzureIoTError/Code/cryptoFailure`` if OpenSSL cannot.
    init(key: [UInt8]) throws(AzureIoTError) {
        guard let algorithm = Self.algorithm, let pointer = EVP_MAC_CTX_new(algorithm) else {
            throw AzureIoTError(.cryptoFailure, "OpenSSL has no HMAC implementation", details: OpenSSLErrorQueue.drainText())
        }
        let initialised = "SHA256".withCString { digest -> Int32 in
            var params = [
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, UnsafeMutablePointer(mutating: digest), 0),
                OSSL_PARAM_construct_end(),
            ]
            // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
            let keyBytes = key.isEmpty ? [0] : key
            return keyBytes.withUnsafeBufferPointer { EVP_MAC_init(pointer, $0.baseAddress, key.count, &params) }
        }
        guard initialised == 1 else {
            EVP_MAC_CTX_free(pointer)
            throw AzureIoTError(.cryptoFailure, "OpenSSL could not key HMAC-SHA256", details: OpenSSLErrorQueue.drainText())
        }
        self.context = Mutex(ContextBox(pointer: pointer))
    }

    deinit {
        self.context.withLock { EVP_MAC_CTX_free($0.pointer) }
    }

    /// Computes the MAC of `message` into `output`, which must hold 32 bytes.
    func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= Self.byteCount)
        self.context.withLock { box in
            var length = 0
            let ok =
                EVP_MAC_init(box.pointer, nil, 0, nil) == 1
                && EVP_MAC_update(box.pointer, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
                && EVP_MAC_final(box.pointer, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, output.count) == 1
            // Failure here means OpenSSL itself is broken (allocation failure inside a keyed context).
            precondition(ok && length == Self.byteCount, "OpenSSL HMAC-SHA256 failed")
        }
    }

    /// Computes the MAC of `message`.
    func authenticate(_ message: some ContiguousBytes) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.byteCount) { buffer, count in
            message.withUnsafeBytes { self.authenticate($0, into: UnsafeMutableRawBufferPointer(buffer)) }
            count = Self.byteCount
        }
    }
}

/// Byte containers that expose contiguous storage (`[UInt8]`, `ArraySlice<UInt8>`, `String.UTF8View` via Array).
protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}

/// Compares two byte strings in time that depends only on their lengths (OpenSSL's `CRYPTO_memcmp`).
func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    if lhs.isEmpty { return true }
    return lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 } }
}
