/*
 * client: outgoing HTTP on libcurl-multi driven by the libuv loop (one uv_poll per socket that
 * curl asks us to watch, one uv_timer for curl's timeouts: CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION). No thread per request, no blocking call: every transfer runs on the
 * loop and ends in one completion callback on the loop.
 *
 * Every request has a connect timeout and a total timeout, a cap on the answer kept in memory,
 * or streams the answer to a file (capped at max_download, MAX_DOWNLOAD_BYTES by default; the
 * file is written under "<path>.part" and renamed on success, removed on any failure).
 *
 * Outcomes (runtime.md §1): HC_OK for a 2xx answer; HC_RETRY for timeouts, connection errors
 * (refused, reset, DNS failure, an answer cut short), 408, 429 and 5xx; HC_PERMANENT for other
 * statuses (4xx, and 3xx that were not followed), an answer over its cap, a malformed answer,
 * a refused URL. retry_after_s carries a Retry-After header (delta seconds or HTTP-date).
 *
 * URL guard (req.guard, for URLs that came from outside: legacy webhook resultUrls, a Remotion
 * output_url): http and https only; the host must be in ALLOWED_MEDIA_DOMAINS (exact or a
 * subdomain) when that list is set; unless ALLOW_PRIVATE_URLS=true, every address the transfer
 * connects to (checked at connect time, in CURLOPT_OPENSOCKETFUNCTION, so DNS rebinding cannot
 * get past it) must not be loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
 * fe80::/10), unspecified, CGNAT (100.64/10) or multicast; redirects are followed only to the
 * same scheme, host and port. URLs under a trusted origin (http_client_trust_origin: the fakes'
 * own base URL) skip the guard. Unguarded requests follow up to 5 redirects (http/https only).
 *
 * Errors never carry secrets: the text names the method, the URL without its query string and
 * userinfo, and the reason; request headers (Authorization) are never logged.
 *
 * Loop thread only: every function here, and every callback.
 */
#ifndef MYLOWARE_HTTP_CLIENT_H
#define MYLOWARE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_client http_client_t;
typedef struct http_call http_call_t; /* one request in flight (opaque) */

#define HTTP_CLIENT_DEFAULT_CONNECT_MS 10000
#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 60000
#define HTTP_CLIENT_DEFAULT_MAX_BODY (4u << 20) /* 4 MiB */
#define HTTP_CLIENT_ERROR_LEN 320

enum http_outcome { HC_OK, HC_RETRY, HC_PERMANENT, HC_CANCELLED };

struct http_client_opts {
    bool allow_private;          /* ALLOW_PRIVATE_URLS */
    const char *allowed_domains; /* ALLOWED_MEDIA_DOMAINS (comma list; "" or NULL: any) */
    uint64_t max_download;       /* MAX_DOWNLOAD_BYTES; 0: 1 GiB */
    const char *user_agent;      /* NULL: "myloware/<version>" */
};

/* One multipart/form-data field: a plain value (Upload-Post sends URLs, not files). A name may
 * repeat ("tags[]"). */
struct http_form_field {
    const char *name, *value;
};

struct http_request {
    const char *method;         /* "GET" (NULL), "POST", "PUT", "DELETE", "HEAD" */
    const char *url;            /* absolute http(s) URL */
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL (copied) */
    const void *body;           /* request body (copied), or NULL */
    size_t body_len;
    const struct http_form_field *form; /* multipart form instead of body (copied), or NULL */
    size_t nform;
    int64_t connect_timeout_ms; /* 0: HTTP_CLIENT_DEFAULT_CONNECT_MS */
    int64_t timeout_ms;         /* whole transfer; 0: HTTP_CLIENT_DEFAULT_TIMEOUT_MS */
    size_t max_body;            /* in-memory answer cap; 0: HTTP_CLIENT_DEFAULT_MAX_BODY */
    const char *download_path;  /* stream a 2xx body to this file instead (see above) */
    uint64_t max_download;      /* download cap; 0: the client's max_download */
    bool guard;                 /* the URL came from outside: apply the URL guard */
    const char *provider;       /* label for logs and myloware_provider_requests_total, or NULL */
    const char *log_url;        /* shown in errors and logs instead of url (a secret in the
                                   path, e.g. Telegram's bot token), or NULL */
};

/* Valid only during the completion callback. */
struct http_response {
    enum http_outcome outcome;
    int err;                  /* 0 on HC_OK, else an ERR_* (ERR_TIMEOUT, ERR_UNAVAIL, ERR_TOOBIG,
                                 ERR_FORBIDDEN for a refused URL, ERR_INVAL for a 4xx, ...) */
    int status;               /* HTTP status, 0 when no answer came */
    int retry_after_s;        /* Retry-After in seconds, -1 when absent */
    const char *content_type; /* Content-Type of the answer, or NULL */
    const char *body;         /* in-memory answer (NUL-terminated, "" when none); for a download,
                                 the error answer's first bytes when the status was not 2xx */
    size_t body_len;
    uint64_t downloaded; /* bytes written to download_path (HC_OK: the file's size) */
    const char *error;   /* "" on HC_OK, else one sentence without secrets */
    double total_s;      /* transfer time */
};

typedef void (*http_done_cb)(const struct http_response *r, void *ud);

/* Creates a client on loop. curl_global_init and the multi handle wait for the first request
 * (an idle server does not initialise OpenSSL). Returns 0 or ERR_INTERNAL. */
int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts, http_client_t **out);

/* URLs starting with origin ("http://127.0.0.1:8123", scheme://host[:port]) skip the URL guard
 * (the fakes' own base URL). Several origins may be trusted. */
void http_client_trust_origin(http_client_t *c, const char *origin);

/*
 * Starts a request. Returns 0 and, when out is not NULL, the call handle (valid until cb
 * returns or http_call_cancel); cb runs exactly once, later, on the loop (never from inside
 * this function). Returns ERR_INVAL (no URL, not http/https, both body and form),
 * ERR_FORBIDDEN (guard: scheme or domain refused), ERR_UNAVAIL (closing) or ERR_INTERNAL (libcurl
 * cannot be initialised, on the first request) without calling cb.
 */
int http_client_send(http_client_t *c, const struct http_request *req, http_done_cb cb, void *ud,
                     http_call_t **out);

/* Aborts a request; its callback is never called, a partial download is removed. Safe from any
 * callback (even another call's). The handle is invalid afterwards. */
void http_call_cancel(http_call_t *call);

/* Requests in flight. */
int http_client_inflight(const http_client_t *c);

/*
 * Closes the client: every request still in flight completes at once, inside this call, with
 * HC_CANCELLED (err ERR_UNAVAIL), so their owners can finish; http_client_send returns
 * ERR_UNAVAIL from then on. The libuv handles are closed; once the last close callback has run,
 * cb (may be NULL) runs and the memory is freed.
 */
void http_client_close(http_client_t *c, void (*cb)(void *ud), void *ud);

/* HC_OK for 2xx, HC_RETRY for 408, 429, 5xx; HC_PERMANENT for the rest. Pure. */
enum http_outcome http_status_outcome(int status);
/* Parses a Retry-After value (delta seconds or an HTTP-date, relative to now_s); -1 when
 * invalid. Capped at one day. Pure. */
int http_parse_retry_after(const char *v, int64_t now_s);
/* True when the IPv4/IPv6 address (struct sockaddr) is loopback, private, link-local, CGNAT,
 * unspecified or multicast. Pure. */
struct sockaddr;
bool http_addr_is_private(const struct sockaddr *sa);

#endif
