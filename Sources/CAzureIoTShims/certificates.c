#include "CAzureIoTShims.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

/// Copies a memory BIO's contents into a fresh NUL-terminated buffer (caller frees with `azi_free`).
static char *bio_to_string(BIO *bio) {
    char *data = NULL;
    long length = BIO_get_mem_data(bio, &data);
    if (length <= 0) return NULL;
    char *copy = OPENSSL_malloc((size_t)length + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, data, (size_t)length);
    copy[length] = 0;
    return copy;
}

static int add_extension(X509 *certificate, X509 *issuer, int nid, const char *value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, certificate, NULL, NULL, 0);
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, &context, nid, value);
    if (extension == NULL) return 0;
    int ok = X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
    return ok;
}

/// A random positive 127-bit serial, version 3, and validity from an hour ago for `days` days.
static int set_serial_and_validity(X509 *certificate, int days) {
    unsigned char serial_bytes[16];
    if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return 0;
    serial_bytes[0] &= 0x7F;
    BIGNUM *serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, NULL);
    if (serial == NULL) return 0;
    ASN1_INTEGER *converted = BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate));
    BN_free(serial);
    if (converted == NULL) return 0;
    X509_set_version(certificate, 2);
    X509_gmtime_adj(X509_getm_notBefore(certificate), -3600);
    X509_gmtime_adj(X509_getm_notAfter(certificate), (long)days * 24 * 3600);
    return 1;
}

int azi_issue_certificate(const char *common_name, int is_ca, const char *subject_alt_names, int days,
                          void *issuer_certificate, void *issuer_key, char **certificate_pem, char **key_pem) {
    *certificate_pem = NULL;
    *key_pem = NULL;
    int ok = 0;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *certificate = X509_new();
    BIO *certificate_bio = BIO_new(BIO_s_mem());
    BIO *key_bio = BIO_new(BIO_s_mem());
    if (key == NULL || certificate == NULL || certificate_bio == NULL || key_bio == NULL) goto done;

    if (!set_serial_and_validity(certificate, days)) goto done;
    X509_set_pubkey(certificate, key);
    X509_NAME *name = X509_get_subject_name(certificate);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0)) goto done;

    X509 *issuer = issuer_certificate != NULL ? (X509 *)issuer_certificate : certificate;
    EVP_PKEY *signer = issuer_key != NULL ? (EVP_PKEY *)issuer_key : key;
    X509_set_issuer_name(certificate, X509_get_subject_name(issuer));

    if (!add_extension(certificate, issuer, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE")) goto done;
    if (!add_extension(certificate, issuer, NID_key_usage,
                       is_ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature,keyEncipherment")) goto done;
    if (!is_ca && !add_extension(certificate, issuer, NID_ext_key_usage, "serverAuth,clientAuth")) goto done;
    if (!add_extension(certificate, issuer, NID_subject_key_identifier, "hash")) goto done;
    if (issuer != certificate && !add_extension(certificate, issuer, NID_authority_key_identifier, "keyid:always")) goto done;
    if (subject_alt_names != NULL && subject_alt_names[0] != 0 &&
        !add_extension(certificate, issuer, NID_subject_alt_name, subject_alt_names)) goto done;

    if (X509_sign(certificate, signer, EVP_sha256()) <= 0) goto done;
    if (PEM_write_bio_X509(certificate_bio, certificate) != 1) goto done;
    if (PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) != 1) goto done;
    *certificate_pem = bio_to_string(certificate_bio);
    *key_pem = bio_to_string(key_bio);
    ok = *certificate_pem != NULL && *key_pem != NULL;

done:
    if (!ok) {
        azi_free(*certificate_pem);
        azi_free(*key_pem);
        *certificate_pem = NULL;
        *key_pem = NULL;
    }
    BIO_free(certificate_bio);
    BIO_free(key_bio);
    X509_free(certificate);
    EVP_PKEY_free(key);
    return ok;
}

void azi_free(char *pointer) {
    if (pointer == NULL) return;
    OPENSSL_cleanse(pointer, strlen(pointer));
    OPENSSL_free(pointer);
}

int azi_verify_chain(void *leaf, void *const *untrusted, int untrusted_count, void *const *anchors, int anchor_count) {
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_STORE_CTX *context = X509_STORE_CTX_new();
    int result = -1;
    if (store == NULL || chain == NULL || context == NULL) goto done;
    for (int index = 0; index < anchor_count; index++) {
        if (X509_STORE_add_cert(store, (X509 *)anchors[index]) != 1) goto done;
    }
    for (int index = 0; index < untrusted_count; index++) {
        if (!sk_X509_push(chain, (X509 *)untrusted[index])) goto done;
    }
    /// An intermediate CA may be the enrollment's anchor, as DPS allows.
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_STORE_CTX_init(context, store, (X509 *)leaf, chain) != 1) goto done;
    result = X509_verify_cert(context) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(context);
    if (result == -1) result = X509_V_ERR_UNSPECIFIED;
done:
    X509_STORE_CTX_free(context);
    sk_X509_free(chain);
    X509_STORE_free(store);
    return result;
}

int azi_ssl_peer_chain(void *ssl, void **certificates, int capacity) {
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain((SSL *)ssl);
    if (chain == NULL) return 0;
    int count = sk_X509_num(chain);
    int written = 0;
    for (int index = 0; index < count && written < capacity; index++) {
        X509 *certificate = sk_X509_value(chain, index);
        if (X509_up_ref(certificate) == 1) certificates[written++] = certificate;
    }
    return written;
}

static int accept_any(int preverified, X509_STORE_CTX *context) {
    (void)preverified;
    (void)context;
    return 1;
}

void azi_ssl_ctx_request_any_client_certificate(void *ctx) {
    SSL_CTX_set_verify((SSL_CTX *)ctx, SSL_VERIFY_PEER, accept_any);
}

const char *azi_verify_error_text(int code) { return X509_verify_cert_error_string(code); }

int azi_make_csr(const char *common_name, char **csr_pem, char **key_pem) {
    *csr_pem = NULL;
    *key_pem = NULL;
    int ok = 0;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509_REQ *request = X509_REQ_new();
    BIO *request_bio = BIO_new(BIO_s_mem());
    BIO *key_bio = BIO_new(BIO_s_mem());
    if (key == NULL || request == NULL || request_bio == NULL || key_bio == NULL) goto done;
    if (X509_REQ_set_version(request, 0) != 1) goto done;
    X509_NAME *name = X509_REQ_get_subject_name(request);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0)) goto done;
    if (X509_REQ_set_pubkey(request, key) != 1) goto done;
    if (X509_REQ_sign(request, key, EVP_sha256()) <= 0) goto done;
    if (PEM_write_bio_X509_REQ(request_bio, request) != 1) goto done;
    if (PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) != 1) goto done;
    *csr_pem = bio_to_string(request_bio);
    *key_pem = bio_to_string(key_bio);
    ok = *csr_pem != NULL && *key_pem != NULL;
done:
    if (!ok) {
        azi_free(*csr_pem);
        azi_free(*key_pem);
        *csr_pem = NULL;
        *key_pem = NULL;
    }
    BIO_free(request_bio);
    BIO_free(key_bio);
    X509_REQ_free(request);
    EVP_PKEY_free(key);
    return ok;
}

int azi_sign_csr(const unsigned char *der, long length, void *issuer_certificate, void *issuer_key, int days,
                 char **common_name, char **certificate_pem) {
    *common_name = NULL;
    *certificate_pem = NULL;
    int ok = 0;
    const unsigned char *cursor = der;
    X509_REQ *request = length > 0 ? d2i_X509_REQ(NULL, &cursor, length) : NULL;
    X509 *certificate = X509_new();
    BIO *certificate_bio = BIO_new(BIO_s_mem());
    EVP_PKEY *public_key = NULL;
    if (request == NULL || cursor != der + length || certificate == NULL || certificate_bio == NULL) goto done;
    public_key = X509_REQ_get_pubkey(request);
    // Proof of possession: the request is signed by the key it carries.
    if (public_key == NULL || X509_REQ_verify(request, public_key) != 1) goto done;
    X509_NAME *subject = X509_REQ_get_subject_name(request);
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) goto done;
    ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char *utf8 = NULL;
    int utf8_length = ASN1_STRING_to_UTF8(&utf8, value);
    if (utf8_length <= 0) goto done;
    *common_name = OPENSSL_malloc((size_t)utf8_length + 1);
    if (*common_name == NULL) {
        OPENSSL_free(utf8);
        goto done;
    }
    memcpy(*common_name, utf8, (size_t)utf8_length);
    (*common_name)[utf8_length] = 0;
    OPENSSL_free(utf8);

    if (!set_serial_and_validity(certificate, days)) goto done;
    if (X509_set_pubkey(certificate, public_key) != 1) goto done;
    if (X509_set_subject_name(certificate, subject) != 1) goto done;
    X509 *issuer = (X509 *)issuer_certificate;
    X509_set_issuer_name(certificate, X509_get_subject_name(issuer));
    if (!add_extension(certificate, issuer, NID_basic_constraints, "critical,CA:FALSE")) goto done;
    if (!add_extension(certificate, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment")) goto done;
    if (!add_extension(certificate, issuer, NID_ext_key_usage, "clientAuth")) goto done;
    if (!add_extension(certificate, issuer, NID_subject_key_identifier, "hash")) goto done;
    if (!add_extension(certificate, issuer, NID_authority_key_identifier, "keyid:always")) goto done;
    if (X509_sign(certificate, (EVP_PKEY *)issuer_key, EVP_sha256()) <= 0) goto done;
    if (PEM_write_bio_X509(certificate_bio, certificate) != 1) goto done;
    *certificate_pem = bio_to_string(certificate_bio);
    ok = *certificate_pem != NULL;
done:
    if (!ok) {
        azi_free(*common_name);
        azi_free(*certificate_pem);
        *common_name = NULL;
        *certificate_pem = NULL;
    }
    EVP_PKEY_free(public_key);
    BIO_free(certificate_bio);
    X509_free(certificate);
    X509_REQ_free(request);
    return ok;
}
