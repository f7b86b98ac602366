#include "CAzureIoTShims.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

int azi_ssl_ctx_set_min_proto_version(void *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version((SSL_CTX *)ctx, version);
}

int azi_ssl_ctx_set_max_proto_version(void *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version((SSL_CTX *)ctx, version);
}

int azi_ssl_set_tlsext_host_name(void *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name((SSL *)ssl, name);
}

int azi_ssl_ctx_add1_chain_cert(void *ctx, void *x509) {
    return (int)SSL_CTX_add1_chain_cert((SSL_CTX *)ctx, (X509 *)x509);
}

int azi_err_get_lib(unsigned long error) { return ERR_GET_LIB(error); }

int azi_err_get_reason(unsigned long error) { return ERR_GET_REASON(error); }

long azi_bio_get_mem_data(void *bio, char **data) { return BIO_get_mem_data((BIO *)bio, data); }

void azi_ssl_ctx_set_nonblocking_modes(void *ctx) {
    SSL_CTX_set_mode((SSL_CTX *)ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

void azi_ssl_ctx_set_read_ahead(void *ctx) { SSL_CTX_set_read_ahead((SSL_CTX *)ctx, 1); }

int azi_ssl_ctx_add_trusted_cert(void *ctx, void *x509) {
    return X509_STORE_add_cert(SSL_CTX_get_cert_store((SSL_CTX *)ctx), (X509 *)x509);
}

void azi_ssl_ignore_unexpected_eof(void *ssl) { SSL_set_options((SSL *)ssl, SSL_OP_IGNORE_UNEXPECTED_EOF); }

unsigned long azi_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }

int azi_tls1_2_version(void) { return TLS1_2_VERSION; }

int azi_tls1_3_version(void) { return TLS1_3_VERSION; }

void azi_ssl_ctx_disable_renegotiation(void *ctx) { SSL_CTX_set_options((SSL_CTX *)ctx, SSL_OP_NO_RENEGOTIATION); }

#if defined(__GLIBC__)
#include <malloc.h>
int azi_malloc_trim(void) { return malloc_trim(0); }
#else
int azi_malloc_trim(void) { return 0; }
#endif
