#ifndef C_AZURE_IOT_SHIMS_H
#define C_AZURE_IOT_SHIMS_H

/// Thin wrappers for what Swift cannot call directly: OpenSSL macros, epoll, HMAC and certificate issuance.
/// libcurl has its own shim (`CAzureIoTCurlShims`), so nothing that imports this module links libcurl.
/// Handles are passed as `void *` so this header does not need the library headers.

#include <stddef.h>
#include <stdint.h>

// MARK: - OpenSSL macros

/// `SSL_CTX_set_min_proto_version`.
int azi_ssl_ctx_set_min_proto_version(void *ctx, int version);
/// `SSL_CTX_set_max_proto_version`.
int azi_ssl_ctx_set_max_proto_version(void *ctx, int version);
/// `SSL_set_tlsext_host_name` (SNI).
int azi_ssl_set_tlsext_host_name(void *ssl, const char *name);
/// `SSL_CTX_add1_chain_cert`.
int azi_ssl_ctx_add1_chain_cert(void *ctx, void *x509);
/// `ERR_GET_LIB`.
int azi_err_get_lib(unsigned long error);
/// `ERR_GET_REASON`.
int azi_err_get_reason(unsigned long error);
/// `BIO_get_mem_data`; returns the length and stores the data pointer.
long azi_bio_get_mem_data(void *bio, char **data);
/// Protocol version constants, which are macros.
int azi_tls1_2_version(void);
int azi_tls1_3_version(void);
/// `SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)`.
void azi_ssl_ctx_set_nonblocking_modes(void *ctx);
/// `SSL_CTX_set_read_ahead(ctx, 1)`: one read(2) takes every record the socket holds, not a header and then a body.
/// Only for contexts whose connections are read by code that waits for the socket only after `SSL_ERROR_WANT_READ`
/// (libcurl checks the socket while records sit in OpenSSL's buffer).
void azi_ssl_ctx_set_read_ahead(void *ctx);
/// `X509_STORE_add_cert` on the context's store; returns 1 on success.
int azi_ssl_ctx_add_trusted_cert(void *ctx, void *x509);
/// `SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF)`: a peer that closes without close_notify reads as EOF.
void azi_ssl_ignore_unexpected_eof(void *ssl);
/// `XN_FLAG_RFC2253`, a composite macro.
unsigned long azi_xn_flag_rfc2253(void);
/// `SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION)`.
void azi_ssl_ctx_disable_renegotiation(void *ctx);

// MARK: - HMAC-SHA256 through EVP_MAC, the provider-aware default (see hmac_sha256.c)

/// An `EVP_MAC_CTX` for HMAC-SHA256 keyed with `key`, fetched from the default library context (so FIPS and other
/// configured providers apply); NULL when no provider offers it.
void *azi_hmac_provider_new(const uint8_t *key, size_t key_length);
/// `EVP_MAC_CTX_dup`: a second context with the same key, for another thread.
void *azi_hmac_provider_dup(const void *context);
/// Writes the 32-byte MAC of `message` to `output`, restarting `context` with its key. Returns 1 on success.
int azi_hmac_provider_compute(void *context, const uint8_t *message, size_t length, uint8_t *output);
/// `EVP_MAC_CTX_free`.
void azi_hmac_provider_free(void *context);

// MARK: - HMAC-SHA256 with precomputed key states, an explicit opt-in that bypasses providers (see hmac_sha256.c)

/// Bytes needed for one prepared key.
size_t azi_hmac_sha256_state_size(void);
/// Prepares `state` for `key`; returns 1 on success.
int azi_hmac_sha256_prepare(void *state, const uint8_t *key, size_t key_length);
/// Writes the 32-byte MAC of `message` to `output`; `state` is only read. Returns 1 on success.
int azi_hmac_sha256_compute(const void *state, const uint8_t *message, size_t length, uint8_t *output);
/// Wipes a prepared state.
void azi_hmac_sha256_clear(void *state);

// MARK: - epoll (packed structs and macros)

/// Readiness bits used by the wrappers below.
enum { AZI_READABLE = 1, AZI_WRITABLE = 2, AZI_FAILED = 4 };
/// `epoll_create1(EPOLL_CLOEXEC)`.
int azi_epoll_create(void);
/// Arms `fd` one-shot for `interest` (AZI_READABLE | AZI_WRITABLE): MOD, or ADD when not in the set. 0 on success.
int azi_epoll_arm(int epfd, int fd, int interest, int in_set);
/// Removes `fd`.
int azi_epoll_remove(int epfd, int fd);
/// Waits; fills `fds` and `readiness` (AZI_* bits) for up to `capacity` events; returns the count or -1.
int azi_epoll_wait(int epfd, int *fds, int *readiness, int capacity, int timeout_ms);

// MARK: - Certificates (certificates.c)

/// Issues an EC P-256 certificate and key for `common_name`, signed by `issuer_certificate`/`issuer_key` or
/// self-signed when they are NULL. `subject_alt_names` uses OpenSSL's syntax (`DNS:localhost,IP:127.0.0.1`) or is
/// NULL. On success returns 1 and two PEM strings to release with `azi_free`.
int azi_issue_certificate(const char *common_name, int is_ca, const char *subject_alt_names, int days,
                          void *issuer_certificate, void *issuer_key, char **certificate_pem, char **key_pem);
/// Wipes and frees a string returned by this shim.
void azi_free(char *pointer);

/// A P-256 key pair and a PKCS #10 request for `common_name` signed with it (SHA-256). On success returns 1 and two
/// PEM strings (the request, the PKCS #8 key) to release with `azi_free`.
int azi_make_csr(const char *common_name, char **csr_pem, char **key_pem);

/// Checks a DER PKCS #10 request (its signature by the key it carries) and issues a client certificate for its
/// subject and key, signed by the issuer. On success returns 1, the request's CN and the certificate's PEM (release
/// both with `azi_free`).
int azi_sign_csr(const unsigned char *der, long length, void *issuer_certificate, void *issuer_key, int days,
                 char **common_name, char **certificate_pem);
/// Verifies `leaf` with the `untrusted` intermediates against `anchors` (an anchor may be an intermediate CA).
/// Returns 0 (X509_V_OK) or an X509_V_ERR_* code.
int azi_verify_chain(void *leaf, void *const *untrusted, int untrusted_count, void *const *anchors, int anchor_count);
/// Copies up to `capacity` certificates the peer sent (each with its own reference); returns the count.
int azi_ssl_peer_chain(void *ssl, void **certificates, int capacity);
/// Asks clients for a certificate and accepts any at the handshake; the application verifies it afterwards.
void azi_ssl_ctx_request_any_client_certificate(void *ctx);
/// `X509_verify_cert_error_string`.
const char *azi_verify_error_text(int code);

/// glibc's `malloc_trim(0)`: returns freed heap to the system; 0 where the C library has no such call.
int azi_malloc_trim(void);

#endif
