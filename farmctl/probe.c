/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/probe.h"

#include <curl/curl.h>
#include <stdio.h>

#include "common/str.h"

#define PROBE_CONNECT_MS 3000L
#define PROBE_TOTAL_MS 5000L

static size_t s_discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* One HEAD of SCHEME://host/v2/: the curl result, *code the HTTP status (0 if none). */
static CURLcode s_head(const char *scheme, const char *host, long *code)
{
    char url[512];
    CURL *c;
    CURLcode cc;

    *code = 0;
    if (farm_str_fmt(url, sizeof url, "the registry URL", "%s://%s/v2/", scheme, host) < 0 ||
        !(c = curl_easy_init()))
        return CURLE_FAILED_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, PROBE_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, PROBE_TOTAL_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* whether it speaks TLS at all, not whom it is: a private CA is the push's business */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_easy_cleanup(c);
    return cc;
}

int farmctl_probe_plain_http(const char *registry_host)
{
    long code;

    /* a plain HTTP server answers a TLS ClientHello with text: OpenSSL's "wrong version
     * number", a connect error to curl */
    if (s_head("https", registry_host, &code) != CURLE_SSL_CONNECT_ERROR)
        return 0;
    return s_head("http", registry_host, &code) == CURLE_OK && code > 0;
}
