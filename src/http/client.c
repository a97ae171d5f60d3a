/*
 * client: libcurl-multi on the libuv loop (see client.h). Loop thread only.
 *
 * curl tells us which sockets to watch (socket callback: one uv_poll each) and when to call it
 * back (timer callback: one uv_timer); both feed curl_multi_socket_action, after which finished
 * transfers are collected with curl_multi_info_read. curl's own callbacks (write, header,
 * opensocket) only record; completion callbacks run from the collection step, never inside a
 * curl callback, so they may start or cancel requests freely.
 *
 * Downloads never write on the loop: received data gathers in a buffer that is written with
 * uv_fs_write on the pool; while a write is in flight and the buffer is full, the transfer is
 * paused (CURL_WRITEFUNC_PAUSE) and resumed when the write completes. The file is opened,
 * closed and renamed the same way.
 */
#include "http/client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#define MAX_REDIRECTS 5
#define DL_CHUNK (256u << 10)      /* write to disk in pieces of this size */
#define DL_PAUSE_AT (1u << 20)     /* pause the transfer when this much waits for the disk */
#define ERROR_BODY_CAP (64u << 10) /* error answers of downloads kept in memory */

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    http_client_t *c;
    struct sock_ctx *prev, *next;
    bool closing;
};

enum dl_stage { DL_NONE, DL_OPENING, DL_TRANSFER, DL_FINISHING };

struct http_call {
    http_client_t *c;
    CURL *easy;
    struct curl_slist *hdrs;
    curl_mime *mime;
    http_done_cb cb;
    void *ud;
    char *method, *url, *shown_url, *provider;
    char origin[300]; /* scheme://host:port of the first URL (guarded redirects) */
    int redirects;
    bool guard, guard_refused, in_multi, cancelled, done;
    char refused[160];
    /* the answer */
    buf_t body;
    size_t max_body;
    bool too_big;
    char content_type[128];
    int retry_after_s;
    /* downloads */
    char *path, *part;
    enum dl_stage stage;
    uv_file fd;
    uv_fs_t fs;
    bool fs_busy, paused, disk_error, renamed, unlinked;
    uint64_t cap_hit; /* the cap an answer went over */
    buf_t pending, writing;
    int64_t offset;
    uint64_t received, max_download;
    CURLcode result; /* saved when the transfer ends before the file is closed */
    struct http_call *prev, *next;
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    bool allow_private, closing;
    char **domains;
    size_t ndomains;
    char **trusted;
    size_t ntrusted;
    uint64_t max_download;
    char *user_agent;
    struct http_call *calls;
    struct sock_ctx *socks;
    int inflight;
    int busy; /* closes pending, calls still waiting for the disk */
    void (*close_cb)(void *);
    void *close_ud;
};

static void check_done(http_client_t *c);
static void on_timer(uv_timer_t *t);
static void call_free(struct http_call *call);
static void client_maybe_free(http_client_t *c);
static int client_multi(http_client_t *c);

/* ---- small pure helpers -----------------------------------------------------------------------
 */

enum http_outcome http_status_outcome(int status) {
    if (status >= 200 && status < 300)
        return HC_OK;
    if (status == 408 || status == 429 || status >= 500)
        return HC_RETRY;
    return HC_PERMANENT;
}

int http_parse_retry_after(const char *v, int64_t now_s) {
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return -1;
    int64_t secs;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long long n = strtoll(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || n < 0)
            return -1;
        secs = n;
    } else {
        time_t t = curl_getdate(v, NULL);
        if (t == -1)
            return -1;
        secs = (int64_t)t - now_s;
        if (secs < 0)
            secs = 0;
    }
    return secs > 86400 ? 86400 : (int)secs;
}

static bool v4_private(uint32_t a) { /* host order */
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
           (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 22) == (0x6440 >> 6) ||
           (a >> 28) >= 0xe; /* 100.64/10; 224/4 multicast and 240/4 reserved */
}

bool http_addr_is_private(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_private(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t zero[10];
        if (memcmp(b, zero, 10) == 0 &&
            ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0))) {
            /* ::ffff:a.b.c.d, ::a.b.c.d, :: and ::1 */
            uint32_t a =
                (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
            if (b[10] == 0 && a <= 1)
                return true;
            return v4_private(a);
        }
        return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff;
    }
    return true; /* unknown families are refused */
}

/* scheme://host:port of url into out (lowercase host, default ports filled). 0 or -1. */
static int url_origin(const char *url, char *out, size_t cap, char *host, size_t hcap) {
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL, *port = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    for (char *p = h; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (char *p = scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        goto out;
    if ((size_t)snprintf(out, cap, "%s://%s:%s", scheme, h, port) >= cap)
        goto out;
    if (host && (size_t)snprintf(host, hcap, "%s", h) >= hcap)
        goto out;
    rc = 0;
out:
    curl_free(scheme);
    curl_free(h);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* The URL as shown in errors: no userinfo, no query, no fragment. */
static char *shown(const char *url) {
    CURLU *u = curl_url();
    char *out = NULL, *res = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        if (curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
            res = xstrdup(out);
    }
    curl_free(out);
    curl_url_cleanup(u);
    return res ? res : xstrdup("(invalid URL)");
}

static bool domain_allowed(const http_client_t *c, const char *host) {
    if (c->ndomains == 0)
        return true;
    size_t hl = strlen(host);
    for (size_t i = 0; i < c->ndomains; i++) {
        size_t dl = strlen(c->domains[i]);
        if (hl == dl && strcasecmp(host, c->domains[i]) == 0)
            return true;
        if (hl > dl && host[hl - dl - 1] == '.' && strcasecmp(host + hl - dl, c->domains[i]) == 0)
            return true;
    }
    return false;
}

static bool origin_trusted(const http_client_t *c, const char *origin) {
    for (size_t i = 0; i < c->ntrusted; i++)
        if (strcmp(c->trusted[i], origin) == 0)
            return true;
    return false;
}

/* ---- curl -> libuv ----------------------------------------------------------------------------
 */

static void on_sock_closed(uv_handle_t *h) {
    struct sock_ctx *s = h->data;
    http_client_t *c = s->c;
    free(s);
    c->busy--;
    client_maybe_free(c);
}

static void sock_close(struct sock_ctx *s) {
    if (s->closing)
        return;
    s->closing = true;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->c->busy++;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/*
 * After curl ran: collect finished transfers, then make sure curl is called again when it
 * wants. curl calls the timer callback only when its next timeout changes, so a transfer that
 * completed inside socket_action and needs one more call "now" (its timeout 0 again) would
 * otherwise wait for an unrelated event: ask curl_multi_timeout and arm the timer ourselves.
 */
static void after_action(http_client_t *c) {
    check_done(c);
    if (!c->multi || uv_is_active((uv_handle_t *)&c->timer))
        return;
    long ms = -1;
    if (curl_multi_timeout(c->multi, &ms) == CURLM_OK && ms >= 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

static void on_poll(uv_poll_t *p, int status, int events) {
    struct sock_ctx *s = p->data;
    http_client_t *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    after_action(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    http_client_t *c = userp;
    struct sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t) {
    http_client_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    after_action(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    http_client_t *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- curl's per-transfer callbacks (record only) ----------------------------------------------
 */

static void dl_write_next(struct http_call *call);

static long response_code(struct http_call *call) {
    long code = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    struct http_call *call = ud;
    size_t len = size * n;
    long code = response_code(call);
    bool ok_status = code >= 200 && code < 300;
    if (!(call->path && ok_status)) {
        if (call->body.len + len > call->body.max) {
            if (!ok_status) { /* an error answer: its first bytes are enough */
                buf_append(&call->body, data, call->body.max - call->body.len);
                return len;
            }
            call->too_big = true;
            call->cap_hit = call->body.max;
            return 0; /* aborts: CURLE_WRITE_ERROR */
        }
        buf_append(&call->body, data, len);
        return len;
    }
    if (call->disk_error)
        return 0;
    if (call->pending.len >= DL_PAUSE_AT && call->fs_busy) {
        call->paused = true;
        return CURL_WRITEFUNC_PAUSE; /* the same data comes again after the unpause */
    }
    if (call->received + len > call->max_download) {
        call->too_big = true;
        call->cap_hit = call->max_download;
        return 0;
    }
    if (buf_append(&call->pending, data, len) != 0) {
        call->disk_error = true;
        return 0;
    }
    call->received += len;
    if (!call->fs_busy && call->pending.len >= DL_CHUNK)
        dl_write_next(call);
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    struct http_call *call = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new answer (redirect, 100) */
        call->content_type[0] = '\0';
        call->retry_after_s = -1;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    char val[128];
    if (vl >= sizeof val)
        vl = sizeof val - 1;
    memcpy(val, v, vl);
    val[vl] = '\0';
    if (nl == 12 && strncasecmp(data, "Content-Type", 12) == 0)
        memcpy(call->content_type, val, vl + 1);
    else if (nl == 11 && strncasecmp(data, "Retry-After", 11) == 0)
        call->retry_after_s = http_parse_retry_after(val, (int64_t)time(NULL));
    return len;
}

static curl_socket_t on_opensocket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
    struct http_call *call = ud;
    if (call->guard && !call->c->allow_private && http_addr_is_private(&a->addr)) {
        char ip[INET6_ADDRSTRLEN] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, ip, sizeof ip);
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, ip, sizeof ip);
        call->guard_refused = true;
        snprintf(
            call->refused, sizeof call->refused,
            "refused address %s (private, loopback or link-local; ALLOW_PRIVATE_URLS is false)",
            ip);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- completion -------------------------------------------------------------------------------
 */

static void list_remove(struct http_call *call) {
    http_client_t *c = call->c;
    if (call->prev)
        call->prev->next = call->next;
    else if (c->calls == call)
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void count(struct http_call *call, enum http_outcome o) {
    if (!call->provider)
        return;
    static const char *names[] = {"ok", "retry", "permanent", "cancelled"};
    char labels[160];
    snprintf(labels, sizeof labels, "provider=\"%s\",outcome=\"%s\"", call->provider, names[o]);
    metrics_add(M_PROVIDER_REQUESTS, labels, 1);
}

/* Runs the user's callback once and frees the call. */
static void deliver(struct http_call *call, enum http_outcome o, int err, int status,
                    const char *reason) {
    http_client_t *c = call->c;
    char error[HTTP_CLIENT_ERROR_LEN] = "";
    if (o != HC_OK)
        snprintf(error, sizeof error, "%s %s: %s", call->method, call->shown_url, reason);
    double total = 0;
    if (call->easy)
        curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME, &total);
    struct http_response r = {
        .outcome = o,
        .err = o == HC_OK ? 0 : err,
        .status = status,
        .retry_after_s = call->retry_after_s,
        .content_type = call->content_type[0] ? call->content_type : NULL,
        .body = call->body.data ? call->body.data : "",
        .body_len = call->body.len,
        .downloaded = o == HC_OK ? call->received : 0,
        .error = error,
        .total_s = total,
    };
    count(call, o);
    if (o != HC_OK && o != HC_CANCELLED)
        log_info("http", "request failed", LF_S("provider", call->provider), LF_S("error", error),
                 LF_I("status", status));
    call->done = true;
    list_remove(call);
    c->inflight--;
    c->busy++; /* the callback may close the client: keep it until the call is freed */
    if (call->cb)
        call->cb(&r, call->ud);
    call_free(call);
    c->busy--;
    client_maybe_free(c);
}

static void classify_curl(struct http_call *call, CURLcode rc, enum http_outcome *o, int *err,
                          char *reason, size_t cap) {
    if (call->guard_refused) {
        *o = HC_PERMANENT, *err = ERR_FORBIDDEN;
        snprintf(reason, cap, "%s", call->refused);
        return;
    }
    if (call->too_big) {
        *o = HC_PERMANENT, *err = ERR_TOOBIG;
        snprintf(reason, cap, "answer larger than %llu bytes", (unsigned long long)call->cap_hit);
        return;
    }
    if (call->disk_error) {
        *o = HC_RETRY, *err = ERR_IO;
        snprintf(reason, cap, "cannot write the download");
        return;
    }
    const char *what = curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: *o = HC_RETRY, *err = ERR_TIMEOUT; break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: *o = HC_RETRY, *err = ERR_UNAVAIL; break;
    case CURLE_FILESIZE_EXCEEDED:
        *o = HC_PERMANENT, *err = ERR_TOOBIG;
        what = "answer larger than the download cap";
        break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_TOO_MANY_REDIRECTS: *o = HC_PERMANENT, *err = ERR_INVAL; break;
    default: *o = HC_RETRY, *err = ERR_UNAVAIL; break;
    }
    snprintf(reason, cap, "%s", what);
}

static void finish_download(struct http_call *call);

/* A transfer ended (curl's message). */
static void transfer_done(struct http_call *call, CURLcode rc) {
    http_client_t *c = call->c;
    curl_multi_remove_handle(c->multi, call->easy);
    call->in_multi = false;
    int status = (int)response_code(call);
    if (rc == CURLE_OK && call->guard && status >= 300 && status < 400 && status != 304) {
        char *loc = NULL;
        curl_easy_getinfo(call->easy, CURLINFO_REDIRECT_URL, &loc);
        char origin[300];
        if (!loc) {
            deliver(call, HC_PERMANENT, ERR_INVAL, status, "redirect without a Location");
            return;
        }
        if (url_origin(loc, origin, sizeof origin, NULL, 0) != 0 ||
            strcmp(origin, call->origin) != 0) {
            deliver(call, HC_PERMANENT, ERR_FORBIDDEN, status, "redirect to another host refused");
            return;
        }
        if (++call->redirects > MAX_REDIRECTS) {
            deliver(call, HC_PERMANENT, ERR_INVAL, status, "too many redirects");
            return;
        }
        char *next = xstrdup(loc);
        free(call->url);
        call->url = next;
        curl_easy_setopt(call->easy, CURLOPT_URL, call->url);
        buf_reset(&call->body);
        if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
            deliver(call, HC_RETRY, ERR_INTERNAL, 0, "cannot restart the transfer");
            return;
        }
        call->in_multi = true;
        return;
    }
    if (call->path) {
        call->result = rc;
        call->stage = DL_FINISHING;
        finish_download(call);
        return;
    }
    if (rc != CURLE_OK) {
        enum http_outcome o;
        int err;
        char reason[200];
        classify_curl(call, rc, &o, &err, reason, sizeof reason);
        deliver(call, o, err, status, reason);
        return;
    }
    enum http_outcome o = http_status_outcome(status);
    char reason[40];
    snprintf(reason, sizeof reason, "HTTP %d", status);
    deliver(call, o, o == HC_OK ? 0 : o == HC_RETRY ? ERR_UNAVAIL : ERR_INVAL, status, reason);
}

static void check_done(http_client_t *c) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct http_call *call = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode rc = m->data.result;
        if (call)
            transfer_done(call, rc);
    }
}

/* ---- downloads: the file side, on the pool through uv_fs ------------------------------------- */

static void on_fs_step(uv_fs_t *req);

static void fs_start(struct http_call *call) {
    call->fs_busy = true;
    call->c->busy++;
}

static void dl_write_next(struct http_call *call) {
    if (call->pending.len == 0 || call->fs_busy)
        return;
    buf_t t = call->writing;
    call->writing = call->pending;
    call->pending = t;
    buf_reset(&call->pending);
    uv_buf_t b = uv_buf_init(call->writing.data, (unsigned)call->writing.len);
    fs_start(call);
    uv_fs_write(call->c->loop, &call->fs, call->fd, &b, 1, call->offset, on_fs_step);
}

/* The transfer is over (or cancelled): write what is left, close, rename or unlink, deliver. */
static void finish_download(struct http_call *call) {
    if (call->fs_busy)
        return; /* on_fs_step comes back here */
    bool ok = !call->cancelled && call->result == CURLE_OK && !call->disk_error &&
              http_status_outcome((int)response_code(call)) == HC_OK;
    if (ok && call->pending.len > 0) {
        dl_write_next(call);
        return;
    }
    if (call->fd >= 0) {
        uv_file fd = call->fd;
        call->fd = -1;
        fs_start(call);
        uv_fs_close(call->c->loop, &call->fs, fd, on_fs_step);
        return;
    }
    if (ok && !call->renamed) {
        call->renamed = true;
        fs_start(call);
        uv_fs_rename(call->c->loop, &call->fs, call->part, call->path, on_fs_step);
        return;
    }
    if (!ok && call->part && !call->unlinked) {
        call->unlinked = true;
        fs_start(call);
        uv_fs_unlink(call->c->loop, &call->fs, call->part, on_fs_step);
        return;
    }
    if (call->cancelled) {
        http_client_t *c = call->c;
        list_remove(call);
        call_free(call);
        client_maybe_free(c);
        return;
    }
    int status = (int)response_code(call);
    if (ok) {
        deliver(call, HC_OK, 0, status, "");
        return;
    }
    if (call->result != CURLE_OK || call->disk_error) {
        enum http_outcome o;
        int err;
        char reason[200];
        classify_curl(call, call->result, &o, &err, reason, sizeof reason);
        deliver(call, o, err, status, reason);
        return;
    }
    enum http_outcome o = http_status_outcome(status);
    char reason[40];
    snprintf(reason, sizeof reason, "HTTP %d", status);
    deliver(call, o, o == HC_RETRY ? ERR_UNAVAIL : ERR_INVAL, status, reason);
}

static void on_fs_step(uv_fs_t *req) {
    struct http_call *call = req->data;
    uv_fs_type type = req->fs_type;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    call->fs_busy = false;
    call->c->busy--;
    switch (type) {
    case UV_FS_OPEN:
        if (res < 0) {
            call->disk_error = true;
            call->stage = DL_FINISHING;
            call->result = CURLE_WRITE_ERROR;
            log_warn("http", "cannot create the download", LF_S("path", call->part),
                     LF_S("error", uv_strerror((int)res)));
            free(call->part); /* nothing to unlink */
            call->part = NULL;
            finish_download(call);
            return;
        }
        call->fd = (uv_file)res;
        if (call->cancelled) {
            finish_download(call);
            return;
        }
        call->stage = DL_TRANSFER;
        if (curl_multi_add_handle(call->c->multi, call->easy) != CURLM_OK) {
            call->result = CURLE_FAILED_INIT;
            call->stage = DL_FINISHING;
            finish_download(call);
            return;
        }
        call->in_multi = true;
        return;
    case UV_FS_WRITE:
        if (res < 0 || (size_t)res != call->writing.len) {
            call->disk_error = true; /* short writes to a local file mean trouble */
        } else {
            call->offset += res;
        }
        buf_reset(&call->writing);
        if (call->stage == DL_TRANSFER && !call->cancelled) {
            if (call->disk_error) {
                if (call->paused)
                    curl_easy_pause(call->easy, CURLPAUSE_CONT); /* the write callback refuses */
                return;
            }
            if (call->pending.len >= DL_CHUNK)
                dl_write_next(call);
            if (call->paused) {
                call->paused = false;
                curl_easy_pause(call->easy, CURLPAUSE_CONT);
                check_done(call->c);
            }
            return;
        }
        finish_download(call);
        return;
    case UV_FS_RENAME:
        if (res < 0)
            call->disk_error = true;
        finish_download(call);
        return;
    default: /* close, unlink */ finish_download(call); return;
    }
}

/* ---- requests ---------------------------------------------------------------------------------
 */

static void call_free(struct http_call *call) {
    if (call->easy) {
        if (call->in_multi)
            curl_multi_remove_handle(call->c->multi, call->easy);
        curl_easy_cleanup(call->easy);
    }
    curl_slist_free_all(call->hdrs);
    curl_mime_free(call->mime);
    buf_release(&call->body);
    buf_release(&call->pending);
    buf_release(&call->writing);
    free(call->method);
    free(call->url);
    free(call->shown_url);
    free(call->provider);
    free(call->path);
    free(call->part);
    free(call);
}

int http_client_send(http_client_t *c, const struct http_request *req, http_done_cb cb, void *ud,
                     http_call_t **out) {
    if (c->closing)
        return ERR_UNAVAIL;
    if (!req->url || (req->body && req->form))
        return ERR_INVAL;
    char origin[300], host[256];
    if (url_origin(req->url, origin, sizeof origin, host, sizeof host) != 0)
        return ERR_INVAL;
    bool trusted = origin_trusted(c, origin);
    bool guard = req->guard && !trusted;
    if (guard && !domain_allowed(c, host)) {
        log_warn("http", "refused a URL outside ALLOWED_MEDIA_DOMAINS", LF_S("host", host));
        return ERR_FORBIDDEN;
    }
    struct http_call *call = xcalloc(1, sizeof *call);
    call->c = c;
    call->cb = cb;
    call->ud = ud;
    call->fd = -1;
    call->method = xstrdup(req->method ? req->method : "GET");
    call->url = xstrdup(req->url);
    call->shown_url = req->log_url ? xstrdup(req->log_url) : shown(req->url);
    call->provider = req->provider ? xstrdup(req->provider) : NULL;
    snprintf(call->origin, sizeof call->origin, "%s", origin);
    call->guard = guard;
    call->retry_after_s = -1;
    call->max_body = req->max_body ? req->max_body : HTTP_CLIENT_DEFAULT_MAX_BODY;
    buf_init(&call->body, req->download_path ? ERROR_BODY_CAP : call->max_body);
    buf_init(&call->pending, DL_PAUSE_AT * 8); /* pauses keep it near DL_PAUSE_AT */
    buf_init(&call->writing, DL_PAUSE_AT * 8);
    call->max_download = req->max_download ? req->max_download : c->max_download;

    int mrc = client_multi(c);
    CURL *e = mrc ? NULL : curl_easy_init();
    if (!e) {
        call_free(call);
        return mrc ? mrc : ERR_INTERNAL;
    }
    call->easy = e;
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_URL, call->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                        : HTTP_CLIENT_DEFAULT_CONNECT_MS));
    curl_easy_setopt(
        e, CURLOPT_TIMEOUT_MS,
        (long)(req->timeout_ms > 0 ? req->timeout_ms : HTTP_CLIENT_DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, call);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
    if (guard) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* same-origin redirects by hand */
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");       /* a proxy would hide the address */
    } else {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    }
    if (req->download_path)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_download);

    call->hdrs = curl_slist_append(call->hdrs, "Expect:");
    for (const char *const *h = req->headers; h && *h; h++)
        call->hdrs = curl_slist_append(call->hdrs, *h);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->hdrs);

    const char *m = call->method;
    if (req->form) {
        call->mime = curl_mime_init(e);
        for (size_t i = 0; i < req->nform; i++) {
            curl_mimepart *part = curl_mime_addpart(call->mime);
            curl_mime_name(part, req->form[i].name);
            curl_mime_data(part, req->form[i].value ? req->form[i].value : "",
                           CURL_ZERO_TERMINATED);
        }
        curl_easy_setopt(e, CURLOPT_MIMEPOST, call->mime);
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    } else if (req->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? (const char *)req->body : "");
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }

    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->inflight++;
    if (req->download_path) {
        call->path = xstrdup(req->download_path);
        size_t n = strlen(call->path) + 6;
        call->part = xmalloc(n);
        snprintf(call->part, n, "%s.part", call->path);
        call->stage = DL_OPENING;
        call->fs.data = call;
        fs_start(call);
        uv_fs_open(c->loop, &call->fs, call->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640,
                   on_fs_step);
    } else if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        list_remove(call);
        c->inflight--;
        call_free(call);
        return ERR_INTERNAL;
    } else {
        call->in_multi = true;
    }
    call->fs.data = call;
    if (out)
        *out = call;
    return 0;
}

void http_call_cancel(http_call_t *call) {
    if (!call || call->done || call->cancelled)
        return;
    http_client_t *c = call->c;
    call->cancelled = true;
    call->cb = NULL;
    c->inflight--;
    count(call, HC_CANCELLED);
    if (call->in_multi) {
        curl_multi_remove_handle(c->multi, call->easy);
        call->in_multi = false;
    }
    if (call->path && (call->fs_busy || call->fd >= 0)) {
        call->done = true; /* the file side finishes, unlinks and frees */
        call->stage = DL_FINISHING;
        finish_download(call);
        return;
    }
    call->done = true;
    list_remove(call);
    call_free(call);
}

int http_client_inflight(const http_client_t *c) { return c->inflight; }

/* ---- lifecycle --------------------------------------------------------------------------------
 */

/*
 * libcurl's global state and the multi handle are made on the first request rather than at
 * start: curl_global_init initialises OpenSSL, which alone keeps ~2 MiB resident in a server that
 * may never call out (issue 2, idle RSS). Once per client, under a millisecond.
 */
static int client_multi(http_client_t *c) {
    static bool global;
    if (c->multi)
        return 0;
    if (c->closing)
        return ERR_UNAVAIL;
    if (!global) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return ERR_INTERNAL;
        global = true;
    }
    c->multi = curl_multi_init();
    if (!c->multi)
        return ERR_INTERNAL;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return 0;
}

int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts, http_client_t **out) {
    http_client_t *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->allow_private = opts && opts->allow_private;
    c->max_download = opts && opts->max_download ? opts->max_download : (1ull << 30);
    char ua[64];
    snprintf(ua, sizeof ua, "myloware/%s", MYLOWARE_VERSION);
    c->user_agent = xstrdup(opts && opts->user_agent ? opts->user_agent : ua);
    for (const char *p = opts && opts->allowed_domains ? opts->allowed_domains : ""; *p;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '.'))
            s++;
        const char *t = e;
        while (t > s && t[-1] == ' ')
            t--;
        if (t > s) {
            c->domains = xrealloc(c->domains, (c->ndomains + 1) * sizeof *c->domains);
            c->domains[c->ndomains++] = xstrndup(s, (size_t)(t - s));
        }
        p = comma ? comma + 1 : e;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    *out = c;
    return 0;
}

void http_client_trust_origin(http_client_t *c, const char *origin) {
    char norm[300];
    if (url_origin(origin, norm, sizeof norm, NULL, 0) != 0)
        return;
    c->trusted = xrealloc(c->trusted, (c->ntrusted + 1) * sizeof *c->trusted);
    c->trusted[c->ntrusted++] = xstrdup(norm);
}

static void on_timer_closed(uv_handle_t *h) {
    http_client_t *c = h->data;
    c->busy--;
    client_maybe_free(c);
}

static void client_maybe_free(http_client_t *c) {
    if (!c->closing || c->busy > 0 || c->calls || c->multi)
        return;
    void (*cb)(void *) = c->close_cb;
    void *ud = c->close_ud;
    for (size_t i = 0; i < c->ndomains; i++)
        free(c->domains[i]);
    free(c->domains);
    for (size_t i = 0; i < c->ntrusted; i++)
        free(c->trusted[i]);
    free(c->trusted);
    free(c->user_agent);
    free(c);
    if (cb)
        cb(ud);
}

void http_client_close(http_client_t *c, void (*cb)(void *ud), void *ud) {
    if (c->closing)
        return;
    c->closing = true;
    c->close_cb = cb;
    c->close_ud = ud;
    c->busy++; /* held until the end of this function */
    /* complete every request still in flight; a callback may cancel others, so look again
     * from the head each time */
    for (;;) {
        struct http_call *call = c->calls;
        while (call && (call->done || call->cancelled))
            call = call->next;
        if (!call)
            break;
        if (call->path && (call->fs_busy || call->fd >= 0)) {
            /* the disk side still runs: deliver now, let it clean up after itself */
            http_done_cb ucb = call->cb;
            void *uud = call->ud;
            http_call_cancel(call);
            struct http_response r = {.outcome = HC_CANCELLED,
                                      .err = ERR_UNAVAIL,
                                      .retry_after_s = -1,
                                      .body = "",
                                      .error = "client closed"};
            if (ucb)
                ucb(&r, uud);
        } else {
            if (call->in_multi) {
                curl_multi_remove_handle(c->multi, call->easy);
                call->in_multi = false;
            }
            deliver(call, HC_CANCELLED, ERR_UNAVAIL, 0, "client closed");
        }
    }
    if (c->multi)
        curl_multi_cleanup(c->multi); /* may report sockets to remove */
    c->multi = NULL;
    while (c->socks)
        sock_close(c->socks);
    c->busy++;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    c->busy--;
    client_maybe_free(c);
}
