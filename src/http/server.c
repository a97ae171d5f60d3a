/* server: connections, parsing, limits, dispatch and answers. Loop thread only. */
#include "http/server.h"

#include <llhttp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#define READ_BUF_SIZE 65536
#define WRITE_HIGH_WATER (1u << 20) /* stop reading requests while this much is unsent */
#define SMALL_BODY 4096 /* answers' bodies up to this size are copied after their head */
#define HEAD_CAP (HTTP_MAX_HEAD_BYTES + 2 * HTTP_MAX_HEADERS + 8)
#define STREAM_HIGH_WATER (256u << 10) /* a streaming answer waits while this much is unsent */

enum conn_state { C_IDLE, C_READING, C_HANDLING, C_CLOSING };

struct http_conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    uv_timer_t timer;
    llhttp_t parser;
    http_server_t *srv;
    http_req_t *req; /* being read or handled */
    buf_t pending;   /* received, not yet parsed (at most one read) */
    enum conn_state state;
    int early_err;  /* a limit hit inside a parser callback */
    bool in_field;  /* header name being received */
    bool head_done; /* head parsed: later header callbacks are chunked trailers, dropped */
    size_t trailer_bytes;
    bool reading, in_drive, blocked, eof, close_after_write;
    int nwrites, open_handles;
    uint16_t hoff[HTTP_MAX_HEADERS][2]; /* name and value offsets into req->head */
    uint64_t deadline_ms;               /* when the timer should act; 0: no deadline (handling) */
    uint64_t fires_ms;                  /* when the running libuv timer fires */
    /* a streaming answer in progress (http_stream_*) */
    http_stream_cb stream_cb;
    void *stream_ud;
    bool streaming, stream_wait;
    bool stream_chunked; /* HTTP_STREAM_CHUNKED: each write is one chunk */
    struct http_conn *prev, *next;
};

#define SERIES_CACHE 256

/* Metric series per (route, method, status): built once, then one pointer lookup per answer. */
struct series_slot {
    const struct route *route;
    const char *method; /* llhttp's static names: compared by address */
    int status;
    struct series *count, *duration;
};

struct http_server {
    struct series_slot series[SERIES_CACHE];
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t drain_timer;
    http_server_opts_t o;
    llhttp_settings_t settings;
    uint8_t key_digest[HTTP_MAX_KEYS][32];
    struct http_conn *conns;
    int nconns, port, open_handles;
    bool listening, draining, closing;
    void (*drain_cb)(http_server_t *, void *);
    void *drain_ud;
    uint64_t now_ns;   /* monotonic time read once per read callback; 0 outside of one */
    http_req_t *spare; /* finished requests for reuse, linked through their conn field */
    int nspare;
    buf_t out; /* an answer's head is built here (kept from one answer to the next) */
    char readbuf[READ_BUF_SIZE];
};

struct wreq {
    uv_write_t w;
    struct http_conn *conn;
    char *data;
};

static void conn_continue(struct http_conn *c);
static void conn_close(struct http_conn *c);
static void maybe_drained(http_server_t *s);
static void timer_arm(struct http_conn *c);
static void timer_disarm(struct http_conn *c);
static void timer_cb(uv_timer_t *t);
static uint64_t mono_ns(const http_server_t *s);
static uint64_t now_ms(const http_server_t *s) { return mono_ns(s) / 1000000u; }
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* ---- small helpers ------------------------------------------------------------------------ */

/* The monotonic clock (clock_mono_ns's and uv_hrtime's), read once per read callback: the
 * request timers and the request start times of one read share it. */
static uint64_t mono_ns(const http_server_t *s) { return s->now_ns ? s->now_ns : uv_hrtime(); }

bool http_request_id_valid(const char *id, size_t n) {
    if (n < 1 || n > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

const char *http_header(const http_req_t *req, const char *name, size_t *vlen) {
    size_t n = strlen(name);
    for (int i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->nlen == n && strncasecmp(h->name, name, n) == 0) {
            if (vlen)
                *vlen = h->vlen;
            return h->value;
        }
    }
    return NULL;
}

int http_param(const http_req_t *req, int i, char *out, size_t cap) {
    if (i < 0 || i >= req->match.nparams || req->match.params[i].n >= cap)
        return -1;
    memcpy(out, req->match.params[i].s, req->match.params[i].n);
    out[req->match.params[i].n] = '\0';
    return (int)req->match.params[i].n;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int http_query(const http_req_t *req, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    for (const char *p = req->query; *p;) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t k = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                char ch = *v;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    ch = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                }
                if (k + 1 >= cap)
                    return -1;
                out[k++] = ch;
            }
            out[k] = '\0';
            return (int)k;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -1;
}

void http_client_ip(const http_req_t *req, char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    if (!req->conn || req->conn->h.handle.type != UV_TCP)
        return;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&req->conn->h.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
}

void http_api_key_id(const http_req_t *req, char *out, size_t cap) {
    if (req->api_key_index < 0) {
        snprintf(out, cap, "anonymous");
        return;
    }
    char hex[13];
    crypto_hex(req->server->key_digest[req->api_key_index], 6, hex);
    snprintf(out, cap, "key:%s", hex);
}

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Finished requests are kept for the next ones (up to REQ_SPARE): no allocation and no clearing
 * of the header array per request. */
#define REQ_SPARE 64
#define REQ_KEEP_BYTES 4096 /* head and body memory kept with a spare request */

static http_req_t *req_new(struct http_conn *c) {
    http_server_t *s = c->srv;
    http_req_t *r = s->spare;
    if (r) {
        s->spare = r->conn ? (http_req_t *)r->conn : NULL; /* the list is linked through conn */
        s->nspare--;
        buf_t head = r->head, body = r->body;
        /* everything but the header array (only the first nheaders entries are ever read) */
        memset(r, 0, offsetof(http_req_t, headers));
        memset(&r->nheaders, 0, sizeof *r - offsetof(http_req_t, nheaders));
        r->head = head;
        r->body = body;
        buf_reset(&r->head);
        buf_reset(&r->body);
        r->body.max = 0;
    } else {
        r = xmalloc(sizeof *r);
        memset(r, 0, offsetof(http_req_t, headers));
        memset(&r->nheaders, 0, sizeof *r - offsetof(http_req_t, nheaders));
        buf_init(&r->head, HEAD_CAP);
        buf_init(&r->body, 0);
    }
    r->server = s;
    r->conn = c;
    r->app = s->o.app;
    r->method = "GET";
    r->path = "/";
    r->query = "";
    r->api_key_index = -1;
    r->keep_alive = false;
    return r;
}

static void req_free(http_req_t *r) {
    http_server_t *s = r->server;
    if (r->json) {
        json_decref(r->json);
        r->json = NULL;
    }
    if (s->nspare >= REQ_SPARE || s->closing) {
        buf_release(&r->head);
        buf_release(&r->body);
        free(r);
        return;
    }
    if (r->head.alloc > REQ_KEEP_BYTES)
        buf_release(&r->head);
    if (r->body.alloc > REQ_KEEP_BYTES)
        buf_release(&r->body);
    r->conn = (struct http_conn *)s->spare;
    s->spare = r;
    s->nspare++;
}

static void spare_free_all(http_server_t *s) {
    while (s->spare) {
        http_req_t *r = s->spare;
        s->spare = (http_req_t *)r->conn;
        buf_release(&r->head);
        buf_release(&r->body);
        free(r);
    }
    s->nspare = 0;
}

/* Decimal digits of v into out (no NUL); returns the count. */
static size_t fmt_u64(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* Finds (creating) the request counter and duration histogram for these labels. */
static void series_lookup(struct series_slot *sl, const char *method, const char *route,
                          int status) {
    buf_t lb;
    buf_init(&lb, 1024);
    metrics_label(&lb, "method", method);
    metrics_label(&lb, "route", route);
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    metrics_label(&lb, "status", st);
    sl->count = metrics_series(M_HTTP_REQUESTS, lb.data);
    buf_reset(&lb);
    metrics_label(&lb, "route", route);
    sl->duration = metrics_series(M_HTTP_DURATION, lb.data);
    buf_release(&lb);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void write_cb(uv_write_t *w, int status) {
    struct wreq *wr = (struct wreq *)w;
    struct http_conn *c = wr->conn;
    free(wr->data);
    free(wr);
    c->nwrites--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == C_CLOSING)
        return;
    size_t queued = uv_stream_get_write_queue_size(&c->h.stream);
    if (c->close_after_write && c->nwrites == 0) {
        conn_close(c);
        return;
    }
    if (c->blocked && queued < WRITE_HIGH_WATER / 2) {
        c->blocked = false;
        conn_continue(c);
    }
    if (c->stream_wait && queued < STREAM_HIGH_WATER / 2) { /* a streaming answer may go on */
        c->stream_wait = false;
        c->stream_cb(c->req, 0, c->stream_ud);
    }
}

/* Queues a copy of the unsent part of head + body (from byte off on). */
static void conn_queue_copy(struct http_conn *c, const char *head, size_t hlen, const char *body,
                            size_t blen, size_t off) {
    size_t total = hlen + blen - off;
    char *data = xmalloc(total ? total : 1), *p = data;
    if (off < hlen) {
        memcpy(p, head + off, hlen - off);
        p += hlen - off;
        off = 0;
    } else {
        off -= hlen;
    }
    if (blen > off)
        memcpy(p, body + off, blen - off);
    struct wreq *wr = xmalloc(sizeof *wr);
    wr->conn = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)total);
    c->nwrites++;
    if (uv_write(&wr->w, &c->h.stream, &b, 1, write_cb) != 0) {
        c->nwrites--;
        free(data);
        free(wr);
        conn_close(c);
    }
}

/* Sends head then body (neither taken). When nothing is queued they are written at once with
 * one writev; only what the socket did not take is copied and queued. */
static void conn_send(struct http_conn *c, const char *head, size_t hlen, const char *body,
                      size_t blen) {
    size_t off = 0;
    if (c->nwrites == 0 && uv_stream_get_write_queue_size(&c->h.stream) == 0) {
        uv_buf_t b[2] = {uv_buf_init((char *)head, (unsigned)hlen),
                         uv_buf_init((char *)body, (unsigned)blen)};
        int n = uv_try_write(&c->h.stream, b, blen ? 2 : 1);
        if (n > 0)
            off = (size_t)n;
        if (off == hlen + blen)
            return;
    }
    conn_queue_copy(c, head, hlen, body, blen, off);
}

/* Queues data (taken: freed after the write, never copied). Writes at once when nothing is
 * queued. */
static void conn_write(struct http_conn *c, char *data, size_t len) {
    if (c->nwrites == 0 && uv_stream_get_write_queue_size(&c->h.stream) == 0) {
        uv_buf_t b0 = uv_buf_init(data, (unsigned)len);
        int n = uv_try_write(&c->h.stream, &b0, 1);
        if (n == (int)len) {
            free(data);
            return;
        }
        if (n > 0) { /* keep the rest */
            memmove(data, data + n, len - (size_t)n);
            len -= (size_t)n;
        }
    }
    struct wreq *wr = xmalloc(sizeof *wr);
    wr->conn = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    c->nwrites++;
    if (uv_write(&wr->w, &c->h.stream, &b, 1, write_cb) != 0) {
        c->nwrites--;
        free(data);
        free(wr);
        conn_close(c);
    }
}

/* Called after a request's answer is queued: next request, or close. */
static void conn_request_done(struct http_conn *c, bool close) {
    c->req = NULL;
    if (c->state == C_CLOSING)
        return;
    if (close) {
        c->close_after_write = true;
        c->state = C_HANDLING; /* read nothing more */
        if (c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        timer_arm(c); /* bounds the wait for a client that does not read the answer */
        if (c->nwrites == 0)
            conn_close(c);
        return;
    }
    c->state = C_IDLE;
    llhttp_resume(&c->parser);
    conn_continue(c);
}

void http_respond(http_req_t *req, int status, const char *content_type, const void *body,
                  size_t len, const char *extra_headers) {
    struct http_conn *c = req->conn;
    http_server_t *s = req->server;
    double ms = (double)(clock_mono_ns() - req->start_ns) / 1e6;
    const char *route = req->match.route ? req->match.route->pattern : "unmatched";

    /* metrics and the access log: the route pattern, never the raw path */
    const struct route *rt = req->match.route;
    size_t key = ((uintptr_t)rt >> 4) * 31u + ((uintptr_t)req->method >> 3) * 7u + (unsigned)status;
    struct series_slot *slot = NULL, tmp;
    for (size_t i = 0; i < 8 && !slot; i++) {
        struct series_slot *sl = &s->series[(key + i) % SERIES_CACHE];
        if (!sl->count || (sl->route == rt && sl->method == req->method && sl->status == status))
            slot = sl;
    }
    if (!slot)
        slot = &tmp; /* the cache is full around this key: look the series up this once */
    if (slot == &tmp || !slot->count) {
        series_lookup(slot, req->method, route, status);
        slot->route = rt;
        slot->method = req->method;
        slot->status = status;
    }
    metrics_series_add(slot->count, 1);
    metrics_series_observe(M_HTTP_DURATION, slot->duration, ms / 1000.0);
    if (s->o.access_log)
        log_http_request(req->request_id, req->method, route, status, (long long)len, ms);

    if (c && c->state != C_CLOSING) {
        bool close = !req->keep_alive || s->draining;
        bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
        /* the head, written straight into s->out with room for the worst case reserved once */
        const char *why = reason(status);
        size_t why_n = strlen(why), ct_n = content_type && !no_body ? strlen(content_type) : 0;
        size_t id_n = strlen(req->request_id), extra_n = extra_headers ? strlen(extra_headers) : 0;
        buf_t *h = &s->out;
        buf_reset(h);
        char *p0 = buf_room(h, 200 + why_n + ct_n + id_n + extra_n), *p = p0;
        if (!p) { /* extra headers over 64 KiB: a handler bug; answer without them */
            extra_n = 0;
            p0 = p = buf_room(h, 200 + why_n + ct_n + id_n);
        }
#define PUT(str, n) (memcpy(p, (str), (n)), p += (n))
#define PUTS(lit) PUT(lit, sizeof lit - 1)
        PUTS("HTTP/1.1 ");
        p += fmt_u64(p, (uint64_t)status);
        *p++ = ' ';
        PUT(why, why_n);
        PUTS("\r\n");
        if (ct_n) {
            PUTS("Content-Type: ");
            PUT(content_type, ct_n);
            PUTS("\r\n");
        }
        if (!no_body) {
            PUTS("Content-Length: ");
            p += fmt_u64(p, len);
            PUTS("\r\n");
        }
        PUTS("X-Request-ID: ");
        PUT(req->request_id, id_n);
        PUTS("\r\nX-Response-Time-ms: ");
        uint64_t centi = (uint64_t)(ms * 100.0 + 0.5); /* %.2f without printf */
        p += fmt_u64(p, centi / 100);
        p[0] = '.';
        p[1] = (char)('0' + centi / 10 % 10);
        p[2] = (char)('0' + centi % 10);
        p += 3;
        PUTS("\r\n");
        if (close)
            PUTS("Connection: close\r\n");
        else if (req->http_minor == 0)
            PUTS("Connection: keep-alive\r\n");
        if (extra_n)
            PUT(extra_headers, extra_n);
        PUTS("\r\n");
#undef PUTS
#undef PUT
        buf_commit(h, (size_t)(p - p0));
        bool send_body = !no_body && !req->head_only && len > 0;
        /* one write per answer: a small body is copied after the head, a large one is sent
         * from where it is, with the head, by one writev */
        if (send_body && len <= SMALL_BODY && buf_append(h, body, len) == 0)
            send_body = false;
        conn_send(c, h->data, h->len, send_body ? body : NULL, send_body ? len : 0);
        if (h->alloc > 8192) /* an unusually long head: do not keep its memory */
            buf_release(h);
        req_free(req);
        conn_request_done(c, close);
        return;
    }
    if (c)
        c->req = NULL;
    req_free(req);
}

void http_respond_json(http_req_t *req, int status, json_t *json) {
    char *s = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!s) {
        http_respond_error(req, 500, "internal_error", "Internal server error", NULL, NULL);
        return;
    }
    http_respond(req, status, "application/json", s, strlen(s), NULL);
    free(s);
}

void http_respond_error(http_req_t *req, int status, const char *code, const char *detail,
                        json_t *extra, const char *extra_headers) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(code));
    json_object_set_new(o, "detail", json_string(detail));
    json_object_set_new(o, "request_id", json_string(req->request_id));
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    http_respond(req, status, "application/json", s, strlen(s), extra_headers);
    free(s);
}

void http_respond_err(http_req_t *req, int err, const char *detail) {
    http_respond_error(req, err_http_status(err), err_code_name(err), detail, NULL, NULL);
}

/* ---- streaming answers -------------------------------------------------------------------- */

/* The metric series and access-log line of a streaming answer (counted when it starts). */
static void stream_record(http_req_t *req, int status, uint64_t len) {
    double ms = (double)(clock_mono_ns() - req->start_ns) / 1e6;
    const char *route = req->match.route ? req->match.route->pattern : "unmatched";
    struct series_slot sl;
    series_lookup(&sl, req->method, route, status);
    metrics_series_add(sl.count, 1);
    metrics_series_observe(M_HTTP_DURATION, sl.duration, ms / 1000.0);
    if (req->server->o.access_log)
        log_info("http", "request", LF_S("request_id", req->request_id),
                 LF_S("method", req->method), LF_S("route", route), LF_I("status", status),
                 LF_I("bytes", (long long)len), LF_D("duration_ms", ms), LF_B("streamed", true));
}

int http_stream_begin(http_req_t *req, int status, const char *content_type,
                      uint64_t content_length, const char *extra_headers, http_stream_cb cb,
                      void *ud) {
    if (req->head_only || !cb)
        return ERR_INVAL;
    struct http_conn *c = req->conn;
    stream_record(req, status, content_length);
    if (!c || c->state == C_CLOSING) {
        if (c)
            c->req = NULL;
        req_free(req);
        return ERR_IO;
    }
    double ms = (double)(clock_mono_ns() - req->start_ns) / 1e6;
    buf_t h;
    buf_init(&h, 64 * 1024);
    buf_printf(&h, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (content_type)
        buf_printf(&h, "Content-Type: %s\r\n", content_type);
    bool chunked = content_length == HTTP_STREAM_CHUNKED && req->http_minor > 0;
    if (content_length != HTTP_STREAM_CHUNKED)
        buf_printf(&h, "Content-Length: %llu\r\n", (unsigned long long)content_length);
    else if (chunked)
        buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    buf_printf(&h, "X-Request-ID: %s\r\nX-Response-Time-ms: %.2f\r\n", req->request_id, ms);
    if (content_length == HTTP_STREAM_CHUNKED && !chunked) /* HTTP/1.0: the end is the close */
        req->keep_alive = false;
    if (!req->keep_alive || req->server->draining)
        buf_puts(&h, "Connection: close\r\n");
    else if (req->http_minor == 0)
        buf_puts(&h, "Connection: keep-alive\r\n");
    if (extra_headers)
        buf_puts(&h, extra_headers);
    buf_puts(&h, "\r\n");
    size_t total;
    char *data = buf_steal(&h, &total);
    c->streaming = true;
    c->stream_chunked = chunked;
    c->stream_wait = false;
    c->stream_cb = cb;
    c->stream_ud = ud;
    conn_write(c, data, total);
    if (c->state != C_CLOSING)
        timer_arm(c); /* bounds how long a client may leave the answer unread */
    return 0;
}

int http_stream_write(http_req_t *req, char *data, size_t len) {
    struct http_conn *c = req->conn;
    if (!c || c->state == C_CLOSING || !c->streaming) {
        free(data);
        return ERR_IO;
    }
    if (c->stream_chunked) {
        if (len == 0) { /* an empty chunk would end the body */
            free(data);
            return 0;
        }
        char *framed = xmalloc(len + 32);
        int n = snprintf(framed, 32, "%zx\r\n", len);
        memcpy(framed + n, data, len);
        memcpy(framed + n + len, "\r\n", 2);
        free(data);
        data = framed;
        len += (size_t)n + 2;
    }
    conn_write(c, data, len);
    if (c->state == C_CLOSING)
        return ERR_IO;
    timer_arm(c); /* progress: the deadline moves on */
    if (uv_stream_get_write_queue_size(&c->h.stream) > STREAM_HIGH_WATER) {
        c->stream_wait = true;
        return HTTP_STREAM_WAIT;
    }
    return 0;
}

void http_stream_end(http_req_t *req, bool complete) {
    struct http_conn *c = req->conn;
    if (!c) {
        req_free(req);
        return;
    }
    if (c->stream_chunked && complete && c->state != C_CLOSING)
        conn_write(c, xstrdup("0\r\n\r\n"), 5);
    c->streaming = c->stream_wait = c->stream_chunked = false;
    if (c->state == C_CLOSING) {
        c->req = NULL;
        req_free(req);
        return;
    }
    /* a body cut short cannot be followed by another answer on this connection */
    bool close = !req->keep_alive || req->server->draining || !complete;
    req_free(req);
    conn_request_done(c, close);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static bool is_json_type(const char *v, size_t n) {
    static const char want[] = "application/json";
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    if (n < sizeof want - 1 || strncasecmp(v, want, sizeof want - 1) != 0)
        return false;
    v += sizeof want - 1;
    n -= sizeof want - 1;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    return n == 0 || *v == ';';
}

static bool check_auth(http_req_t *req) {
    http_server_t *s = req->server;
    size_t n = 0;
    const char *key = http_header(req, "X-API-Key", &n);
    if (!key || n == 0) {
        http_respond_error(req, 401, "unauthorized", "Missing API key", NULL, NULL);
        return false;
    }
    uint8_t d[32];
    crypto_sha256(key, n, d);
    int found = -1;
    for (int i = 0; i < s->o.nkeys; i++) /* every key compared: no early exit */
        if (crypto_ct_equal(d, 32, s->key_digest[i], 32) && found < 0)
            found = i;
    if (found < 0) {
        http_respond_error(req, 401, "unauthorized", "Invalid API key", NULL, NULL);
        return false;
    }
    req->api_key_index = found;
    return true;
}

static bool parse_json_body(http_req_t *req) {
    if (req->body.len == 0) {
        req->json = json_object();
        return true;
    }
    size_t n = 0;
    const char *ct = http_header(req, "Content-Type", &n);
    if (!ct || !is_json_type(ct, n)) {
        http_respond_error(req, 415, "unsupported_media_type",
                           "Content-Type must be application/json", NULL, NULL);
        return false;
    }
    json_error_t e;
    json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        if (j)
            json_decref(j);
        http_respond_error(req, 400, "invalid_json",
                           j ? "Request body must be a JSON object"
                             : "Request body is not valid JSON",
                           NULL, NULL);
        return false;
    }
    req->json = j;
    return true;
}

static void dispatch(struct http_conn *c, int route_err) {
    http_req_t *req = c->req;
    req->start_ns = mono_ns(c->srv);
    if (route_err == ERR_NOTFOUND) {
        http_respond_error(req, 404, "not_found", "Not found", NULL, NULL);
        return;
    }
    if (route_err == ERR_METHOD) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Allow: %s\r\n", req->match.allow);
        http_respond_error(req, 405, "method_not_allowed", "Method not allowed", NULL, hdr);
        return;
    }
    const struct route *r = req->match.route;
    if ((r->flags & R_AUTH) && !check_auth(req))
        return;
    if ((r->flags & R_JSON) && !parse_json_body(req))
        return;
    r->fn(req);
}

bool http_rate_check(http_req_t *req) { return http_rate_check_hdr(req, NULL); }

bool http_rate_check_hdr(http_req_t *req, const char *extra_headers) {
    const struct route *r = req->match.route;
    ratelimit_t *rl = r && r->rate_class > 0 && r->rate_class < HTTP_MAX_RATE_CLASSES
                          ? req->server->o.limiters[r->rate_class]
                          : NULL;
    if (!rl)
        return true;
    char key[64];
    if (req->api_key_index >= 0) {
        char hex[17];
        crypto_hex(req->server->key_digest[req->api_key_index], 8, hex);
        snprintf(key, sizeof key, "k:%s", hex);
    } else {
        char ip[48];
        http_client_ip(req, ip, sizeof ip);
        snprintf(key, sizeof key, "ip:%s", ip);
    }
    int retry = 1;
    if (ratelimit_take(rl, key, strlen(key), clock_now_ms(), &retry) == 0)
        return true;
    char limit[64], hdr[1024];
    ratelimit_describe(rl, limit, sizeof limit);
    snprintf(hdr, sizeof hdr, "Retry-After: %d\r\n%.900s", retry,
             extra_headers ? extra_headers : "");
    json_t *extra = json_pack("{s:i,s:s}", "retry_after_seconds", retry, "limit", limit);
    http_respond_error(req, 429, "rate_limited", "Rate limit exceeded", extra, hdr);
    return false;
}

/* ---- parsing ------------------------------------------------------------------------------ */

#define CONN(p) ((struct http_conn *)(p)->data)

static int on_message_begin(llhttp_t *p) {
    struct http_conn *c = CONN(p);
    c->req = req_new(c);
    c->state = C_READING;
    c->in_field = false;
    c->head_done = false;
    c->trailer_bytes = 0;
    c->early_err = 0;
    return 0;
}

static int head_add(struct http_conn *c, const char *at, size_t n) {
    if (buf_append(&c->req->head, at, n) != 0) {
        c->early_err = ERR_HEADERS;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) { return head_add(CONN(p), at, n); }

static int on_url_complete(llhttp_t *p) { return head_add(CONN(p), "", 1); }

/* Trailers are not stored (req->head must not move after the head), but count against the
 * same limit as the head. */
static int trailer_add(struct http_conn *c, size_t n) {
    c->trailer_bytes += n;
    if (c->trailer_bytes > HTTP_MAX_HEAD_BYTES) {
        c->early_err = ERR_HEADERS;
        return -1;
    }
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
    struct http_conn *c = CONN(p);
    http_req_t *r = c->req;
    if (c->head_done)
        return trailer_add(c, n);
    if (!c->in_field) {
        if (r->nheaders >= HTTP_MAX_HEADERS) {
            c->early_err = ERR_HEADERS;
            return -1;
        }
        c->hoff[r->nheaders][0] = (uint16_t)r->head.len;
        r->nheaders++;
        c->in_field = true;
    }
    return head_add(c, at, n);
}

static int on_header_field_complete(llhttp_t *p) {
    struct http_conn *c = CONN(p);
    if (c->head_done)
        return 0;
    c->in_field = false;
    if (head_add(c, "", 1))
        return -1;
    c->hoff[c->req->nheaders - 1][1] = (uint16_t)c->req->head.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
    return CONN(p)->head_done ? trailer_add(CONN(p), n) : head_add(CONN(p), at, n);
}

static int on_header_value_complete(llhttp_t *p) {
    return CONN(p)->head_done ? 0 : head_add(CONN(p), "", 1);
}

static int on_headers_complete(llhttp_t *p) {
    struct http_conn *c = CONN(p);
    http_server_t *s = c->srv;
    http_req_t *r = c->req;
    c->head_done = true; /* the pointers below must not move: no more appends to r->head */
    const char *base = r->head.data ? r->head.data : "";
    for (int i = 0; i < r->nheaders; i++) {
        struct http_header *h = &r->headers[i];
        h->name = base + c->hoff[i][0];
        h->nlen = strlen(h->name);
        h->value = base + c->hoff[i][1];
        h->vlen = strlen(h->value);
    }
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    r->head_only = p->method == HTTP_HEAD;
    r->http_minor = p->http_minor;
    /* the target: origin-form only */
    char *url = r->head.data;
    if (!url || url[0] != '/') {
        c->early_err = ERR_INVAL;
        return -1;
    }
    char *q = strchr(url, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    r->path = url;
    r->path_len = strlen(url);
    size_t idn = 0;
    const char *id = http_header(r, "X-Request-ID", &idn);
    if (id && http_request_id_valid(id, idn))
        memcpy(r->request_id, id, idn + 1);
    else
        crypto_uuid4(r->request_id);

    int rc = router_match(s->o.routes, s->o.nroutes, r->method, r->path, r->path_len, &r->match);
    c->early_err = rc; /* remembered until dispatch; limits below take precedence */
    size_t cap =
        (!rc && (r->match.route->flags & R_WEBHOOK)) ? s->o.max_webhook_body : s->o.max_body;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cap) {
        c->early_err = ERR_TOOBIG;
        return -1;
    }
    r->body.max = cap;
    size_t en = 0;
    const char *expect = http_header(r, "Expect", &en);
    if (expect && en == 12 && strncasecmp(expect, "100-continue", 12) == 0)
        conn_write(c, xstrdup("HTTP/1.1 100 Continue\r\n\r\n"), 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
    struct http_conn *c = CONN(p);
    if (buf_append(&c->req->body, at, n) != 0) {
        c->early_err = ERR_TOOBIG;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    struct http_conn *c = CONN(p);
    c->state = C_HANDLING;
    /* no protocol switch: after an Upgrade request the parser is in upgrade mode, so the
     * connection ends with the answer */
    c->req->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && !c->srv->draining;
    timer_disarm(c);
    return HPE_PAUSED;
}

/* Answers a request that broke a limit or could not be parsed, then closes. */
static void fail_request(struct http_conn *c, int err) {
    if (!c->req) {
        c->req = req_new(c);
        crypto_uuid4(c->req->request_id);
    }
    http_req_t *r = c->req;
    if (!r->request_id[0]) /* failed before its head was complete */
        crypto_uuid4(r->request_id);
    r->start_ns = mono_ns(c->srv);
    r->keep_alive = false;
    r->match.route = NULL;
    c->state = C_HANDLING;
    timer_disarm(c);
    static const struct {
        int err;
        const char *detail;
    } msgs[] = {
        {ERR_TOOBIG, "Request body too large"},
        {ERR_HEADERS, "Request headers too large"},
        {ERR_TIMEOUT, "Request timed out"},
        {ERR_INVAL, "Malformed HTTP request"},
    };
    const char *detail = "Malformed HTTP request";
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
        if (msgs[i].err == err)
            detail = msgs[i].detail;
    http_respond_err(r, err, detail);
}

/* Parses what is pending; dispatches a complete request. */
static void parse_pending(struct http_conn *c) {
    enum llhttp_errno e = llhttp_execute(&c->parser, c->pending.data, c->pending.len);
    if (e == HPE_OK) {
        buf_reset(&c->pending);
        return;
    }
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && !c->req) { /* nothing more to parse */
        buf_reset(&c->pending);
        c->eof = true;
        return;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        buf_consume(&c->pending, (size_t)(pos - c->pending.data));
        if (e == HPE_PAUSED_UPGRADE)
            c->req->keep_alive = false; /* no protocol switch: answer, then close */
        dispatch(c, c->early_err);
        /* Stop reading only when the answer comes later: a synchronous answer keeps the fd in
         * epoll (no EPOLL_CTL churn per request). */
        if (c->state == C_HANDLING && c->reading && !c->close_after_write) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        return;
    }
    buf_reset(&c->pending);
    int err = c->early_err;
    if (err != ERR_TOOBIG && err != ERR_HEADERS && err != ERR_INVAL)
        err = ERR_INVAL;
    fail_request(c, err);
}

/* Runs the connection forward: parse what is pending, then read more or wait. Reentrant
 * calls (an answer given synchronously while parsing) only ask the running call to go on. */
static void conn_continue(struct http_conn *c) {
    if (c->in_drive)
        return;
    c->in_drive = true;
    for (;;) {
        if (c->state == C_HANDLING || c->state == C_CLOSING)
            break;
        if (uv_stream_get_write_queue_size(&c->h.stream) > WRITE_HIGH_WATER) {
            c->blocked = true; /* a client that does not read: stop reading it */
            if (c->reading) {
                uv_read_stop(&c->h.stream);
                c->reading = false;
            }
            if (c->state == C_IDLE)
                timer_arm(c); /* bounds how long it may leave its answers unread */
            break;
        }
        if (c->pending.len) {
            parse_pending(c);
            continue;
        }
        if (c->eof) {
            if (c->nwrites == 0)
                conn_close(c);
            else
                c->close_after_write = true;
            break;
        }
        if (c->state == C_IDLE) {
            if (c->srv->draining && c->nwrites == 0) {
                conn_close(c);
                break;
            }
            timer_arm(c);
        }
        if (!c->reading)
            c->reading = uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0;
        break;
    }
    c->in_drive = false;
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_close_cb(uv_handle_t *h) {
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    http_server_t *s = c->srv;
    if (c->streaming) { /* gone in the middle of a streaming answer: tell the streamer, end it */
        http_req_t *r = c->req;
        c->streaming = c->stream_wait = false;
        c->req = NULL;
        r->conn = NULL;
        c->stream_cb(r, ERR_IO, c->stream_ud);
        req_free(r);
    }
    if (c->req)
        c->req->conn = NULL; /* an asynchronous handler still owns it */
    buf_release(&c->pending);
    free(c);
    s->nconns--;
    metrics_set(M_HTTP_CONNECTIONS, "", s->nconns);
    maybe_drained(s);
}

static void conn_close(struct http_conn *c) {
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    if (c->req && c->req->start_ns == 0) { /* never dispatched: nobody else owns it */
        req_free(c->req);
        c->req = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->open_handles = 2;
    uv_close(&c->h.handle, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    struct http_conn *c = h->data;
    b->base = c->srv->readbuf; /* read_cb consumes it before the next read */
    b->len = READ_BUF_SIZE;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    struct http_conn *c = st->data;
    if (n == 0)
        return;
    if (n < 0) {
        if (c->reading) {
            uv_read_stop(st);
            c->reading = false;
        }
        if (n != UV_EOF) {
            conn_close(c); /* reset */
            return;
        }
        if (c->state == C_READING) { /* gone in the middle of a request: send what is owed, close */
            c->state = C_HANDLING;
            if (c->nwrites == 0) {
                conn_close(c);
            } else {
                c->close_after_write = true;
                timer_arm(c);
            }
            return;
        }
        c->eof = true; /* half-closed: answer what was sent, then close */
        conn_continue(c);
        return;
    }
    buf_append(&c->pending, b->base, (size_t)n);
    http_server_t *s = c->srv; /* c may be closing after conn_continue (freed later) */
    s->now_ns = uv_hrtime();
    conn_continue(c);
    s->now_ns = 0;
}

static void timer_cb(uv_timer_t *t) {
    struct http_conn *c = t->data;
    if (c->deadline_ms == 0)
        return; /* handling: no deadline */
    uint64_t now = now_ms(c->srv);
    if (now < c->deadline_ms) { /* the deadline moved on since this timer was started */
        uv_timer_start(&c->timer, timer_cb, c->deadline_ms - now, 0);
        c->fires_ms = c->deadline_ms;
        return;
    }
    c->deadline_ms = 0;
    if (c->state == C_READING) {
        fail_request(c, ERR_TIMEOUT);
    } else if (c->state == C_IDLE && c->nwrites == 0) {
        conn_close(c);
    } else if (c->state == C_IDLE) {
        /* answers still queued (or unread): read nothing more, close once they are out, or at
         * the next expiry if the client does not take them */
        c->close_after_write = true;
        c->state = C_HANDLING;
        if (c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        timer_arm(c);
    } else if (c->close_after_write || c->streaming)
        conn_close(
            c); /* the final (or a streaming) answer is stuck on a client that does not read */
}

/* One timer per connection, re-armed lazily: requests only move c->deadline_ms, and the libuv
 * timer (a heap operation) is started only when it is not running; when it fires early it
 * sleeps again until the current deadline. */
static void timer_arm(struct http_conn *c) {
    http_server_t *s = c->srv;
    uint64_t ms = c->state == C_READING ? s->o.request_timeout_ms : s->o.idle_timeout_ms;
    c->deadline_ms = now_ms(s) + ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->deadline_ms < c->fires_ms) {
        uv_update_time(s->loop); /* from now, not from the start of this loop turn */
        uv_timer_start(&c->timer, timer_cb, ms, 0);
        c->fires_ms = c->deadline_ms;
    }
}

/* No deadline while a handler works (it answers, or the connection goes). */
static void timer_disarm(struct http_conn *c) { c->deadline_ms = 0; }

static struct http_conn *conn_new(http_server_t *s) {
    struct http_conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->state = C_IDLE;
    buf_init(&c->pending, READ_BUF_SIZE * 2);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->h.handle.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    return c;
}

static void conn_start(http_server_t *s, struct http_conn *c) {
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    metrics_set(M_HTTP_CONNECTIONS, "", s->nconns);
    if (s->nconns > s->o.max_connections || s->draining) {
        conn_close(c);
        return;
    }
    conn_continue(c);
}

static void on_connection(uv_stream_t *l, int status) {
    http_server_t *s = l->data;
    if (status < 0)
        return;
    struct http_conn *c = conn_new(s);
    uv_tcp_init(s->loop, &c->h.tcp);
    if (uv_accept(l, &c->h.stream) != 0) {
        c->open_handles = 2;
        c->state = C_CLOSING;
        s->nconns++;
        uv_close(&c->h.handle, conn_close_cb);
        uv_close((uv_handle_t *)&c->timer, conn_close_cb);
        return;
    }
    uv_tcp_nodelay(&c->h.tcp, 1);
    conn_start(s, c);
}

int http_server_adopt_pipe(http_server_t *s, uv_file fd) {
    struct http_conn *c = conn_new(s);
    uv_pipe_init(s->loop, &c->h.pipe, 0);
    if (uv_pipe_open(&c->h.pipe, fd) != 0) {
        c->open_handles = 2;
        c->state = C_CLOSING;
        s->nconns++;
        uv_close(&c->h.handle, conn_close_cb);
        uv_close((uv_handle_t *)&c->timer, conn_close_cb);
        return ERR_IO;
    }
    conn_start(s, c);
    return 0;
}

/* ---- the server --------------------------------------------------------------------------- */

/* llhttp's callbacks re-arm the connection timer through this wrapper. */
static int on_message_begin_timed(llhttp_t *p) {
    int rc = on_message_begin(p);
    timer_arm(CONN(p));
    return rc;
}

int http_server_new(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **out) {
    http_server_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->o = *opts;
    buf_init(&s->out, 64 * 1024);
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin_timed;
    s->settings.on_url = on_url;
    s->settings.on_url_complete = on_url_complete;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    for (int i = 0; i < s->o.nkeys; i++)
        crypto_sha256(s->o.keys[i], s->o.key_lens[i], s->key_digest[i]);
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    s->open_handles = 1;
    if (!opts->host) { /* no listener: adopted streams only (tests, fuzzing) */
        *out = s;
        return 0;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->open_handles = 2;
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(opts->host, opts->port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(opts->host, opts->port, (struct sockaddr_in6 *)&addr);
    if (rc == 0)
        rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection);
    if (rc != 0) {
        log_error("http", "cannot listen", LF_S("host", opts->host), LF_I("port", opts->port),
                  LF_S("error", uv_strerror(rc)));
        http_server_close(s);
        return ERR_IO;
    }
    s->listening = true;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int http_server_port(const http_server_t *s) { return s->port; }
uv_loop_t *http_server_loop(const http_server_t *s) { return s->loop; }
int http_server_connections(const http_server_t *s) { return s->nconns; }

static void server_free(http_server_t *s) {
    spare_free_all(s);
    buf_release(&s->out);
    free(s);
}

static void server_close_cb(uv_handle_t *h) {
    http_server_t *s = h->data;
    if (--s->open_handles == 0 && s->nconns == 0)
        server_free(s);
}

static void maybe_drained(http_server_t *s) {
    if (s->closing) {
        if (s->nconns == 0 && s->open_handles == 0)
            server_free(s);
        return;
    }
    if (s->draining && s->nconns == 0 && s->drain_cb) {
        void (*cb)(http_server_t *, void *) = s->drain_cb;
        s->drain_cb = NULL;
        uv_timer_stop(&s->drain_timer);
        cb(s, s->drain_ud);
    }
}

static void stop_listening(http_server_t *s) {
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, server_close_cb);
    }
}

static void drain_timeout(uv_timer_t *t) {
    http_server_t *s = t->data;
    log_warn("http", "drain grace period over, closing connections", LF_I("open", s->nconns));
    for (struct http_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        conn_close(c);
    }
}

void http_server_drain(http_server_t *s, uint64_t grace_ms, void (*cb)(http_server_t *, void *),
                       void *ud) {
    s->draining = true;
    s->drain_cb = cb;
    s->drain_ud = ud;
    stop_listening(s);
    for (struct http_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->state == C_IDLE && c->pending.len == 0 && c->nwrites == 0)
            conn_close(c);
    }
    uv_timer_start(&s->drain_timer, drain_timeout, grace_ms, 0);
    if (s->nconns == 0) {
        s->drain_cb = NULL;
        uv_timer_stop(&s->drain_timer);
        if (cb)
            cb(s, ud);
    }
}

void http_server_close(http_server_t *s) {
    s->closing = true;
    s->draining = true;
    stop_listening(s);
    for (struct http_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        conn_close(c);
    }
    uv_close((uv_handle_t *)&s->drain_timer, server_close_cb);
}
