#include "CAzureIoTCurlShims.h"

#include <curl/curl.h>

int azi_curl_setopt_long(void *curl, int option, long value) {
    return (int)curl_easy_setopt((CURL *)curl, (CURLoption)option, value);
}

int azi_curl_setopt_string(void *curl, int option, const char *value) {
    return (int)curl_easy_setopt((CURL *)curl, (CURLoption)option, value);
}

int azi_curl_setopt_pointer(void *curl, int option, void *value) {
    return (int)curl_easy_setopt((CURL *)curl, (CURLoption)option, value);
}

int azi_curl_setopt_blob(void *curl, int option, const void *data, size_t length) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = length;
    blob.flags = CURL_BLOB_COPY;
    return (int)curl_easy_setopt((CURL *)curl, (CURLoption)option, &blob);
}

int azi_curl_global_init(void) { return (int)curl_global_init(CURL_GLOBAL_DEFAULT); }

int azi_curl_multi_setopt_long(void *multi, int option, long value) {
    return (int)curl_multi_setopt((CURLM *)multi, (CURLMoption)option, value);
}

int azi_curl_getinfo_long(void *curl, int info, long *value) {
    return (int)curl_easy_getinfo((CURL *)curl, (CURLINFO)info, value);
}

int azi_curl_getinfo_double(void *curl, int info, double *value) {
    return (int)curl_easy_getinfo((CURL *)curl, (CURLINFO)info, value);
}

int azi_curl_getinfo_pointer(void *curl, int info, void **value) {
    char *pointer = NULL;
    int result = (int)curl_easy_getinfo((CURL *)curl, (CURLINFO)info, &pointer);
    *value = pointer;
    return result;
}

int azi_curl_getinfo_socket(void *curl, int info, int *value) {
    curl_socket_t socket = CURL_SOCKET_BAD;
    int result = (int)curl_easy_getinfo((CURL *)curl, (CURLINFO)info, &socket);
    *value = socket == CURL_SOCKET_BAD ? -1 : (int)socket;
    return result;
}

long azi_curl_auth_any(void) { return (long)CURLAUTH_ANY; }
