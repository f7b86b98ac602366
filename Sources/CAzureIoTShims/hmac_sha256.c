// HMAC-SHA256 (RFC 2104) over OpenSSL's SHA-256 with the inner and outer states precomputed once per key.
//
// OpenSSL 3's EVP_MAC re-initialisation duplicates digest contexts on the heap for every MAC; SAS minting signs
// ~60-byte messages millions of times with one key, where those allocations cost more than the hashing. The
// precomputed SHA256_CTX states are plain values: computing a MAC copies them, so one prepared key serves many
// threads without a lock. The low-level SHA-256 API is deprecated in OpenSSL 3 but still backed by the same
// assembly; the deprecation warning is silenced for this file only.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "CAzureIoTShims.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

typedef struct {
    SHA256_CTX inner;
    SHA256_CTX outer;
} azi_hmac_state;

size_t azi_hmac_sha256_state_size(void) { return sizeof(azi_hmac_state); }

int azi_hmac_sha256_prepare(void *state, const uint8_t *key, size_t key_length) {
    azi_hmac_state *s = (azi_hmac_state *)state;
    unsigned char block[SHA256_CBLOCK];
    unsigned char pad[SHA256_CBLOCK];
    memset(block, 0, sizeof(block));
    if (key_length > SHA256_CBLOCK) {
        if (SHA256(key, key_length, block) == NULL) return 0;
    } else if (key_length > 0) {
        memcpy(block, key, key_length);
    }
    for (size_t i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    int ok = SHA256_Init(&s->inner) && SHA256_Update(&s->inner, pad, SHA256_CBLOCK);
    for (size_t i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    ok = ok && SHA256_Init(&s->outer) && SHA256_Update(&s->outer, pad, SHA256_CBLOCK);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok ? 1 : 0;
}

int azi_hmac_sha256_compute(const void *state, const uint8_t *message, size_t length, uint8_t *output) {
    const azi_hmac_state *s = (const azi_hmac_state *)state;
    SHA256_CTX context = s->inner;
    unsigned char inner_digest[SHA256_DIGEST_LENGTH];
    int ok = SHA256_Update(&context, message, length) && SHA256_Final(inner_digest, &context);
    context = s->outer;
    ok = ok && SHA256_Update(&context, inner_digest, sizeof(inner_digest)) && SHA256_Final(output, &context);
    OPENSSL_cleanse(&context, sizeof(context));
    OPENSSL_cleanse(inner_digest, sizeof(inner_digest));
    return ok ? 1 : 0;
}

void azi_hmac_sha256_clear(void *state) { OPENSSL_cleanse(state, sizeof(azi_hmac_state)); }
