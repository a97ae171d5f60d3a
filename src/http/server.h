/*
 * server: HTTP/1.1 on libuv + llhttp (api.md §1). Keep-alive and pipelining: one request per
 * connection is handled at a time and the parser is paused behind it, so answers leave in
 * request order and a client that pipelines cannot make the server buffer more than one
 * request head and body. Limits are enforced while reading: a head over 16 KiB is a 431, a
 * declared body over the route's cap a 413 before any of it is read, an incomplete request a
 * 408 after HTTP_REQUEST_TIMEOUT_MS; idle connections close after HTTP_IDLE_TIMEOUT_MS; a
 * client that does not read its answers stops being read from (write high-water mark).
 *
 * Dispatch order for a complete request: route (404/405), auth (401), JSON (415/400), rate
 * limit (429), handler. The handler answers with one of the http_respond* functions, at once
 * or later from the loop (asynchronous handlers); after answering it must not touch req.
 *
 * Everything here runs on the loop thread.
 */
#ifndef MYLOWARE_HTTP_SERVER_H
#define MYLOWARE_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/ratelimit.h"
#include "http/router.h"

#define HTTP_MAX_HEAD_BYTES 16384
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_KEYS 16
#define HTTP_MAX_RATE_CLASSES 8
#define HTTP_REQUEST_ID_MAX 128

typedef struct http_server http_server_t;
struct http_conn;

struct http_header {
    const char *name, *value;
    size_t nlen, vlen;
};

typedef struct http_req {
    http_server_t *server;
    struct http_conn *conn; /* NULL once the client has gone away */
    void *app;              /* http_server_opts.app */
    const char *method;
    int http_minor;
    const char *path; /* raw path, no query; NUL-terminated */
    size_t path_len;
    const char *query; /* after '?', or "" */
    struct http_header headers[HTTP_MAX_HEADERS];
    int nheaders;
    buf_t head; /* storage of the strings above */
    buf_t body;
    json_t *json; /* R_JSON routes: the parsed object */
    struct route_match match;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    int api_key_index; /* which key authenticated (R_AUTH routes), else -1 */
    uint64_t start_ns;
    bool head_only; /* HEAD: headers without the body */
    bool keep_alive;
} http_req_t;

typedef struct http_server_opts {
    const char *host;
    int port;
    const struct route *routes;
    size_t nroutes;
    void *app;
    size_t max_body, max_webhook_body;
    uint64_t idle_timeout_ms, request_timeout_ms;
    int max_connections;
    const char *keys[HTTP_MAX_KEYS]; /* accepted API keys */
    size_t key_lens[HTTP_MAX_KEYS];
    int nkeys;
    ratelimit_t *limiters[HTTP_MAX_RATE_CLASSES]; /* by route rate_class; owned by the caller */
    bool access_log;
} http_server_opts_t;

/* Creates the server and binds/listens. Returns 0 or a negative ERR_* (message logged). */
int http_server_new(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **out);
/* The loop the server runs on. */
uv_loop_t *http_server_loop(const http_server_t *s);
/* The bound port (useful with port 0). */
int http_server_port(const http_server_t *s);
/* Open connections. */
int http_server_connections(const http_server_t *s);
/*
 * Stops accepting, closes idle connections, lets in-flight requests finish (their answers
 * carry Connection: close), then calls cb. Connections still open after grace_ms are closed.
 */
void http_server_drain(http_server_t *s, uint64_t grace_ms, void (*cb)(http_server_t *, void *),
                       void *ud);
/* Closes every handle at once; frees the server in the last close callback. */
void http_server_close(http_server_t *s);
/* Adopts an already connected stream (tests, fuzzing): the server owns it from now on. */
int http_server_adopt_pipe(http_server_t *s, uv_file fd);

/* Case-insensitive header lookup; returns the value or NULL (len in *vlen if not NULL). */
const char *http_header(const http_req_t *req, const char *name, size_t *vlen);
/* Copies path parameter i (unescaped as is) into out (cap bytes); returns its length or -1. */
int http_param(const http_req_t *req, int i, char *out, size_t cap);
/* Query parameter (raw, percent-decoded) into out; returns its length or -1 when absent. */
int http_query(const http_req_t *req, const char *name, char *out, size_t cap);
/* The client's address (text), for public rate limits. */
void http_client_ip(const http_req_t *req, char *out, size_t cap);
/* The authenticated key's id ("key:" + 12 hex of its SHA-256), never the key; "anonymous". */
void http_api_key_id(const http_req_t *req, char *out, size_t cap);
/* True when id is 1-128 chars of [A-Za-z0-9._:-]. */
bool http_request_id_valid(const char *id, size_t n);

/*
 * Takes a token from the route's rate limiter (keyed by API key, else client IP). Handlers
 * call it after validating (api.md §1 order). Returns true when allowed; otherwise it has
 * answered 429 (Retry-After, retry_after_seconds, limit) and req is gone.
 */
bool http_rate_check(http_req_t *req);
/* Same, with extra header lines ("A: b\r\n", may be NULL) on the 429 (the public demo's CORS). */
bool http_rate_check_hdr(http_req_t *req, const char *extra_headers);

/* Answers. extra_headers: NULL or full "Name: value\r\n" lines. Takes nothing from the caller. */
void http_respond(http_req_t *req, int status, const char *content_type, const void *body,
                  size_t len, const char *extra_headers);
/* Answers with json (dumped compact); steals the reference. */
void http_respond_json(http_req_t *req, int status, json_t *json);
/* The API error body {"error","detail","request_id"} plus extra's fields (stolen; may be NULL). */
void http_respond_error(http_req_t *req, int status, const char *code, const char *detail,
                        json_t *extra, const char *extra_headers);
/* Same, with the status and code from an ERR_* value. */
void http_respond_err(http_req_t *req, int err, const char *detail);

/*
 * Streaming answers, for bodies too large to hold in memory (files, http/file.c). The handler
 * starts the answer with its status, headers and Content-Length, then writes the body in
 * chunks, then ends it; answers to pipelined requests behind it wait until it has ended.
 *
 *   http_stream_begin: sends the head (not for HEAD requests: answer those with http_respond
 *     and a NULL body). Returns 0, or ERR_IO when the client has gone (req is then freed and
 *     cb is never called), ERR_INVAL for a HEAD request or no cb (req untouched).
 *   http_stream_write: queues data (malloc'd, taken). Returns 0: write more now;
 *     HTTP_STREAM_WAIT: more than the stream high-water mark is unsent, write again only once
 *     cb(req, 0, ud) has been called (the socket drained below half the mark); ERR_IO: the
 *     connection is going away (do not write again; cb(req, ERR_IO, ud) follows).
 *   cb(req, ERR_IO, ud): the client went away or stopped reading for HTTP_IDLE_TIMEOUT_MS; req
 *     is freed when cb returns: the streamer must drop it and never call http_stream_* again.
 *   http_stream_end: the answer is complete (complete=true) or cut short (false: the
 *     connection closes after what was queued). req is gone afterwards; cb is not called again.
 * All on the loop thread.
 */
#define HTTP_STREAM_WAIT 1
/* content_length of an answer whose length is not known in advance (server-sent events):
 * Transfer-Encoding: chunked (HTTP/1.0: no length, the connection closes at the end). */
#define HTTP_STREAM_CHUNKED UINT64_MAX
typedef void (*http_stream_cb)(http_req_t *req, int status, void *ud);
int http_stream_begin(http_req_t *req, int status, const char *content_type,
                      uint64_t content_length, const char *extra_headers, http_stream_cb cb,
                      void *ud);
int http_stream_write(http_req_t *req, char *data, size_t len);
void http_stream_end(http_req_t *req, bool complete);

#endif
