#ifndef C_AZURE_IOT_CURL_H
#define C_AZURE_IOT_CURL_H

#include <curl/curl.h>

#endif
