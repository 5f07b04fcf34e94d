#ifndef NFLDB_CCURL_SHIM_H
#define NFLDB_CCURL_SHIM_H
// Debian 12's libcurl4-openssl-dev (7.88). Only NFLDBHTTP imports this module (the ETL source, webhooks, AWS):
// its write callback can hold back (a full buffer) or abort (the reader stopped) a transfer, which
// URLSession on Linux cannot. curl_easy_setopt is a C variadic Swift cannot call: these
// typed wrappers can be.
#include <curl/curl.h>

typedef size_t (*nfldb_curl_data_callback)(char *, size_t, size_t, void *);
typedef int (*nfldb_curl_xferinfo_callback)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

static inline CURLcode nfldb_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nfldb_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nfldb_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nfldb_curl_setopt_data_callback(CURL *handle, CURLoption option, nfldb_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nfldb_curl_setopt_xferinfo_callback(CURL *handle, nfldb_curl_xferinfo_callback value) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, value);
}
#endif
