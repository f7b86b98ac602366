private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// How a ``SymmetricKey`` computes HMAC-SHA256.
public enum HMACImplementation: Sendable, Hashable {
    /// OpenSSL's provider-aware `EVP_MAC` API (the default): the algorithm comes from the providers the OpenSSL
    /// configuration loads, so a FIPS configuration uses the FIPS provider, and a configuration that offers no
    /// HMAC-SHA256 makes key creation fail with ``AzureIoTError/Code/cryptoFailure`` instead of being bypassed.
    case provider
    /// An explicit opt-in for services that mint tokens at very high rates: the key's inner and outer SHA-256 states
    /// are computed once with OpenSSL's low-level SHA-256 calls, and each MAC starts from copies of them with no
    /// allocation. It **bypasses OpenSSL providers** (no FIPS); `make bench-sas` prints both rates.
    case precomputedSHA256
}

/// HMAC-SHA256 with one key, on the system OpenSSL.
///
/// With ``HMACImplementation/provider`` the keyed `EVP_MAC_CTX` is duplicated per concurrent caller and kept in a
/// small pool, so signing needs no per-MAC key set-up; with ``HMACImplementation/precomputedSHA256`` the prepared
/// states are never written after `init`. Either way sharing one instance between threads is safe: hence
/// `@unchecked Sendable`.
final class HMACSHA256: @unchecked Sendable {
    /// The output size in bytes.
    static let byteCount = 32
    /// At most this many idle provider contexts are kept per key; more concurrent callers duplicate and free.
    private static let poolLimit = 8

    /// An `EVP_MAC_CTX` that may move between threads while no thread uses it.
    private struct Context: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    private enum Storage {
        /// The keyed template, never used for a MAC itself, and idle duplicates ready for use.
        case provider(template: Context, idle: AdaptiveLock<[Context]>)
        /// The prepared inner and outer states; immutable after `init`, wiped in `deinit`.
        case precomputed(UnsafeMutableRawPointer)
    }

    private let storage: Storage
    /// How this key computes its MACs.
    let implementation: HMACImplementation

    /// Prepares `key`. Throws ``AzureIoTError/Code/cryptoFailure`` if OpenSSL cannot (with ``provider``: when no
    /// loaded provider offers HMAC-SHA256, or the provider refuses the key).
    init(key: [UInt8], implementation: HMACImplementation = .provider) throws(AzureIoTError) {
        self.implementation = implementation
        switch implementation {
        case .provider:
            guard let template = key.withUnsafeBufferPointer({ azi_hmac_provider_new($0.baseAddress, $0.count) }) else {
                throw AzureIoTError(
                    .cryptoFailure,
                    "no OpenSSL provider offers HMAC-SHA256 for this key",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
            self.storage = .provider(template: Context(pointer: template), idle: AdaptiveLock([]))
        case .precomputedSHA256:
            let size = azi_hmac_sha256_state_size()
            let state = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            let ok = key.withUnsafeBufferPointer { azi_hmac_sha256_prepare(state, $0.baseAddress, $0.count) }
            guard ok == 1 else {
                azi_hmac_sha256_clear(state)
                state.deallocate()
                throw AzureIoTError(
                    .cryptoFailure,
                    "OpenSSL could not key HMAC-SHA256",
                    details: OpenSSLErrorQueue.drainText()
                )
            }
            self.storage = .precomputed(state)
        }
    }

    deinit {
        switch self.storage {
        case .provider(let template, let idle):
            idle.withLock { contexts in
                for context in contexts { azi_hmac_provider_free(context.pointer) }
                contexts.removeAll()
            }
            azi_hmac_provider_free(template.pointer)
        case .precomputed(let state):
            azi_hmac_sha256_clear(state)
            state.deallocate()
        }
    }

    /// Computes the MAC of `message` into `output`, which must hold 32 bytes.
    func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= Self.byteCount)
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok: Int32
        switch self.storage {
        case .precomputed(let state):
            ok = azi_hmac_sha256_compute(state, bytes, message.count, out)
        case .provider(let template, let idle):
            let reused = idle.withLock { $0.popLast() }
            // A keyed context that computed a MAC before cannot fail to restart short of memory exhaustion inside
            // OpenSSL, which this process could not survive anyway.
            guard let context = reused ?? azi_hmac_provider_dup(template.pointer).map(Context.init(pointer:)) else {
                preconditionFailure("OpenSSL could not duplicate an HMAC context (out of memory)")
            }
            ok = azi_hmac_provider_compute(context.pointer, bytes, message.count, out)
            let kept = idle.withLock { contexts in
                guard contexts.count < Self.poolLimit else { return false }
                contexts.append(context)
                return true
            }
            if !kept { azi_hmac_provider_free(context.pointer) }
        }
        // The key was accepted at `init`; a MAC over memory we own fails only if OpenSSL itself is broken.
        precondition(ok == 1, "OpenSSL HMAC-SHA256 failed")
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
    return lhs.withUnsafeBytes { l in
        rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
    }
}
