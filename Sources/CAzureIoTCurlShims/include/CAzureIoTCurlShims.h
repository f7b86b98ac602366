#ifndef C_AZURE_IOT_CURL_SHIMS_H
#define C_AZURE_IOT_CURL_SHIMS_H

/// Wrappers for libcurl's variadic calls, which Swift cannot call directly. Only `DPSClient` (and whatever else
/// speaks HTTP) imports this module, so the MQTT and AMQP clients do not link libcurl.
/// Handles are passed as `void *` so this header does not need curl's headers.

#include <stddef.h>

// MARK: - libcurl variadic setopt

/// `curl_easy_setopt` with a `long` argument.
int azi_curl_setopt_long(void *curl, int option, long value);
/// `curl_easy_setopt` with a string argument (copied by libcurl).
int azi_curl_setopt_string(void *curl, int option, const char *value);
/// `curl_easy_setopt` with a pointer argument (lists, user data, callbacks).
int azi_curl_setopt_pointer(void *curl, int option, void *value);
/// `curl_easy_setopt` with a binary blob (`struct curl_blob`, copied by libcurl).
int azi_curl_setopt_blob(void *curl, int option, const void *data, size_t length);
/// `curl_global_init(CURL_GLOBAL_DEFAULT)`.
int azi_curl_global_init(void);
/// `curl_multi_setopt` with a `long` argument.
int azi_curl_multi_setopt_long(void *multi, int option, long value);
/// `curl_easy_getinfo` for a `long`.
int azi_curl_getinfo_long(void *curl, int info, long *value);
/// `curl_easy_getinfo` for a pointer (`CURLINFO_PRIVATE`).
int azi_curl_getinfo_pointer(void *curl, int info, void **value);
/// `curl_easy_getinfo` for a socket (`CURLINFO_ACTIVESOCKET`); -1 when there is none.
int azi_curl_getinfo_socket(void *curl, int info, int *value);
/// `CURLAUTH_ANY` (a macro with `~`, which Swift does not import).
long azi_curl_auth_any(void);
/// `curl_easy_getinfo` for a `double`.
int azi_curl_getinfo_double(void *curl, int info, double *value);

#endif
