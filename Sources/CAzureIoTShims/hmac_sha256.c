// HMAC-SHA256 (RFC 2104), two ways.
//
// The default goes through EVP_MAC, OpenSSL 3's provider-aware API: the algorithm comes from whatever providers the
// configuration loads, so a FIPS configuration gets the FIPS provider's HMAC and a configuration without HMAC fails
// loudly instead of being bypassed.
//
// The opt-in fast path computes HMAC over the low-level SHA256_* calls with the key's inner and outer states
// precomputed once. It bypasses providers (no FIPS), which is why it is never the default: EVP_MAC's restart copies
// digest contexts on the heap for every MAC, and a SAS-minting service that signs ~60-byte messages millions of
// times with one key may prefer the plain states. The low-level SHA-256 API is deprecated in OpenSSL 3; the warning
// is silenced for this file only.
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

// MARK: - HMAC-SHA256 through the provider-aware EVP_MAC API (the default)

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

void *azi_hmac_provider_new(const uint8_t *key, size_t key_length) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context keeps its own reference
    if (context == NULL) return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    static const uint8_t empty = 0;
    if (EVP_MAC_init(context, key_length > 0 ? key : &empty, key_length, params) != 1) {
        EVP_MAC_CTX_free(context);
        return NULL;
    }
    return context;
}

void *azi_hmac_provider_dup(const void *context) { return EVP_MAC_CTX_dup((const EVP_MAC_CTX *)context); }

int azi_hmac_provider_compute(void *context, const uint8_t *message, size_t length, uint8_t *output) {
    EVP_MAC_CTX *c = (EVP_MAC_CTX *)context;
    size_t written = 0;
    static const uint8_t empty = 0;
    // A NULL key starts a new MAC with the key the context already holds.
    int ok = EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, length > 0 ? message : &empty, length) == 1
             && EVP_MAC_final(c, output, &written, 32) == 1 && written == 32;
    return ok ? 1 : 0;
}

void azi_hmac_provider_free(void *context) { EVP_MAC_CTX_free((EVP_MAC_CTX *)context); }
