/*
 * fuzz_http: libFuzzer target for the whole request path of the HTTP server: llhttp parsing,
 * limits (413/431), routing (404/405), auth (401), JSON bodies (415/400), the handlers and the
 * answers, keep-alive, pipelining, Expect: 100-continue, half-close. Built and run by
 * scripts/fuzz.sh.
 *
 * One-time setup (LLVMFuzzerInitialize): a config with small limits (MAX_BODY_BYTES and
 * WEBHOOK_MAX_BODY_BYTES at their minimum, 1024), a real SQLite store on a temporary file
 * (migrated, attached to the loop), an app_t with health, limiters and the loop, and a server
 * without a listener (opts.host NULL) over the real route table, API key "dev-api-key".
 *
 * Per input: a socketpair; one end is adopted by the server, the other is a uv_pipe_t on the
 * same loop that writes the whole input, shuts down its write side and reads (and discards)
 * every answer until the server closes. The loop runs until the client has closed, the
 * server's connection is gone and a barrier unit has gone through the store, so no
 * connection, request or database unit outlives the input. A connection that never closes is
 * a libFuzzer timeout.
 *
 * Oracle on the answers: the bytes the client reads are parsed as HTTP/1.1 responses (llhttp,
 * HTTP_RESPONSE), aligned with the requests llhttp finds in the input (for HEAD). The target
 * aborts when the answers are malformed; when a final answer has no (or an empty)
 * X-Request-ID; when there are more final answers than requests; when the server closed in the
 * middle of an answer (truncated); or when it closed without answering a complete request
 * although its last answer did not say Connection: close (answers dropped).
 *
 * Environment: FUZZ_HTTP_LOG_LEVEL (debug|info|warn|error, default error) sets the server's log
 * threshold, restored before every input (PUT /admin/log-level changes it at run time).
 * FUZZ_HTTP_REQUEST_TIMEOUT_MS (100) and FUZZ_HTTP_IDLE_TIMEOUT_MS (60000, the default) set
 * the server's timeouts; no input should wait for the idle timer, so one that does shows up as
 * a libFuzzer timeout (fuzz.sh: 30 s).
 * FUZZ_HTTP_VERBOSE=1 prints the answer bytes and a summary of every input (for reproducers).
 * The target's own messages go to a copy of stderr taken at start-up, so they survive
 * -close_fd_mask=2 (which fuzz.sh uses to silence the server's log lines).
 */
#include <errno.h>
#include <llhttp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "app.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "db/store.h"
#include "http/server.h"
#include "storage/storage.h"

#define FUZZ_API_KEY "dev-api-key"
#define FUZZ_METRICS_TOKEN "fuzz-metrics-token"
#define CLIENT_READ_BUF 65536
#define MAX_MESSAGES 65536 /* more than the requests of a 64 KiB input */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static app_t app;
static config_t cfg;
static char tmpdir[512], dbpath[600], mediadir[600];
static enum log_level base_level = LOG_ERROR;
static bool verbose;
static int out_fd = 2; /* our messages: a copy of stderr taken before libFuzzer may close it */

struct client {
    uv_pipe_t pipe;
    uv_write_t w;
    uv_shutdown_t sh;
    bool open, eof;
    int write_status, shutdown_status;
    size_t received;
    char buf[CLIENT_READ_BUF];
};

static struct client cl;

static void die(const char *what, const char *detail) {
    dprintf(out_fd, "fuzz_http: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void cleanup(void) {
    char p[700];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", dbpath, suffixes[i]);
        unlink(p);
    }
    static const char *const media_files[] = {"/transcoded/f.mp4", "/thumbnails/t.jpg",
                                              "/transcoded", "/thumbnails"};
    for (size_t i = 0; i < sizeof media_files / sizeof media_files[0]; i++) {
        snprintf(p, sizeof p, "%s%s", mediadir, media_files[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    rmdir(mediadir);
    rmdir(tmpdir);
}

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static void set(const char *name, const char *value) {
    buf_t err;
    buf_init(&err, 4096);
    if (config_set(&cfg, name, value, CS_FLAG, &err) != 0)
        die("config_set", err.data ? err.data : name);
    buf_release(&err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    int fd = dup(2);
    if (fd >= 0)
        out_fd = fd;
    verbose = getenv("FUZZ_HTTP_VERBOSE") && strcmp(getenv("FUZZ_HTTP_VERBOSE"), "0") != 0;
    const char *lv = getenv("FUZZ_HTTP_LOG_LEVEL");
    if (lv && log_level_parse(lv) >= 0)
        base_level = (enum log_level)log_level_parse(lv);
    log_setup(base_level, true);

    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/myloware-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
        die("mkdtemp", strerror(errno));
    snprintf(dbpath, sizeof dbpath, "%s/fuzz.db", tmpdir);
    snprintf(mediadir, sizeof mediadir, "%s/media", tmpdir);
    if (mkdir(mediadir, 0750) != 0)
        die("mkdir", strerror(errno));
    atexit(cleanup);

    char url[700];
    snprintf(url, sizeof url, "sqlite:%s", dbpath);
    config_init(&cfg);
    /* development, not test: POST /_test/jobs could enqueue up to a million jobs per input and
     * grow the database without bound */
    set("ENVIRONMENT", "development");
    set("DATABASE_URL", url);
    set("MEDIA_DIR", mediadir);
    set("API_KEY", FUZZ_API_KEY);
    set("METRICS_TOKEN", FUZZ_METRICS_TOKEN);
    set("MAX_BODY_BYTES", "1024"); /* the settings' minimum: 413 within reach of small inputs */
    set("WEBHOOK_MAX_BODY_BYTES", "1024");
    /* The client half-closes after its input, so no iteration waits for a timer: on EOF the
     * server answers what is complete and closes (or closes at once in the middle of a
     * request). The request timeout stays at its minimum. The idle timeout does not: armed
     * after a long synchronous burst of pipelined requests it counts from the loop's cached
     * time, so a short one fires at the next iteration and closes the connection with its
     * answers unsent, which would make the oracle below flaky (FUZZ_HTTP_IDLE_TIMEOUT_MS=100
     * shows it). */
    set("HTTP_REQUEST_TIMEOUT_MS", env_or("FUZZ_HTTP_REQUEST_TIMEOUT_MS", "100"));
    set("HTTP_IDLE_TIMEOUT_MS", env_or("FUZZ_HTTP_IDLE_TIMEOUT_MS", "60000"));
    set("LOG_LEVEL", "error");
    buf_t err;
    buf_init(&err, 4096);
    if (config_finish(&cfg, &err) != 0)
        die("config_finish", err.data);

    memset(&app, 0, sizeof app);
    app.cfg = &cfg;
    app.started_ms = clock_now_ms();
    metrics_init(); /* once: the server caches series pointers */
    int from = 0, to = 0;
    buf_reset(&err);
    if (store_open(&cfg, &app.store, &err) != 0)
        die("store_open", err.data);
    if (store_migrate(app.store, &from, &to, &err) != 0)
        die("store_migrate", err.data);
    buf_release(&err);
    if (uv_loop_init(&app.loop) != 0)
        die("uv_loop_init", NULL);
    app.health = health_new(&app);
    if (store_attach_loop(app.store, &app.loop) != 0) /* the health probe's completions */
        die("store_attach_loop", NULL);

    /* the same server options as app_serve, except: no listener, no signals */
    static const enum setting_id rate_setting[RL__COUNT] = {
        0, S_RUN_RATE_LIMIT, S_APPROVE_RATE_LIMIT, S_PUBLIC_DEMO_RATE_LIMIT};
    http_server_opts_t o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < RL__COUNT; i++) {
        int64_t n;
        double per;
        config_rate(&cfg, rate_setting[i], &n, &per);
        app.limiters[i] = ratelimit_new(n, per, 100000);
        o.limiters[i] = app.limiters[i];
    }
    o.host = NULL;
    o.routes = api_routes;
    o.nroutes = api_nroutes;
    o.app = &app;
    o.max_body = (size_t)config_int(&cfg, S_MAX_BODY_BYTES);
    o.max_webhook_body = (size_t)config_int(&cfg, S_WEBHOOK_MAX_BODY_BYTES);
    o.idle_timeout_ms = (uint64_t)config_int(&cfg, S_HTTP_IDLE_TIMEOUT_MS);
    o.request_timeout_ms = (uint64_t)config_int(&cfg, S_HTTP_REQUEST_TIMEOUT_MS);
    o.max_connections = (int)config_int(&cfg, S_HTTP_MAX_CONNECTIONS);
    o.nkeys = config_api_keys(&cfg, o.keys, o.key_lens, HTTP_MAX_KEYS);
    o.access_log = true; /* written only when the level allows info */
    if (o.nkeys < 1)
        die("no API key", NULL);
    if (http_server_new(&app.loop, &o, &app.http) != 0)
        die("http_server_new", NULL);
    /* the media routes serve real files: a 150 KiB clip (three 64 KiB reads) and a thumbnail */
    buf_init(&err, 4096);
    if (storage_open(&cfg, &app.storage, &err) != 0)
        die("storage_open", err.data);
    buf_release(&err);
    static const struct {
        const char *name;
        size_t size;
    } media_files[] = {{"/transcoded/f.mp4", 150 * 1024}, {"/thumbnails/t.jpg", 100}};
    for (size_t i = 0; i < sizeof media_files / sizeof media_files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s%s", mediadir, media_files[i].name);
        *strrchr(p, '/') = '\0';
        mkdir(p, 0750);
        snprintf(p, sizeof p, "%s%s", mediadir, media_files[i].name);
        FILE *f = fopen(p, "wb");
        if (!f)
            die("fopen", p);
        for (size_t k = 0; k < media_files[i].size; k++)
            fputc((int)(k * 31 % 251), f);
        fclose(f);
    }
    return 0;
}

/* ---- the oracle: requests in the input, answers on the wire ---------------------------------- */

struct msg {
    bool head;         /* a HEAD request */
    bool headers_done; /* llhttp got through its head */
};

static struct msg msgs[MAX_MESSAGES];
static size_t nmsgs;     /* requests begun in the input */
static size_t ncomplete; /* requests complete in the input */
static llhttp_settings_t req_settings, resp_settings;
static llhttp_t resp;
static size_t nanswers; /* final (non-1xx) answers seen */
static bool resp_in_msg, resp_off, last_keep_alive;
static char resp_field[16]; /* the header name being read (enough for X-Request-ID) */
static size_t resp_field_len, resp_rid_len;
static bool resp_in_rid, resp_has_rid;

static int req_begin(llhttp_t *p) {
    if (nmsgs < MAX_MESSAGES)
        msgs[nmsgs] = (struct msg){false, false};
    nmsgs++;
    return 0;
}

static int req_url(llhttp_t *p, const char *at, size_t n) {
    if (nmsgs - 1 < MAX_MESSAGES) /* the method is known once the target starts */
        msgs[nmsgs - 1].head = p->method == HTTP_HEAD;
    return 0;
}

static int req_headers_done(llhttp_t *p) {
    if (nmsgs - 1 < MAX_MESSAGES)
        msgs[nmsgs - 1].headers_done = true;
    return 0;
}

static int req_done(llhttp_t *p) {
    ncomplete++;
    return 0;
}

/* Finds the requests of the input as the server's parser sees them (same llhttp, same mode). */
static void scan_requests(const uint8_t *data, size_t size) {
    llhttp_t p;
    nmsgs = ncomplete = 0;
    llhttp_init(&p, HTTP_REQUEST, &req_settings);
    llhttp_execute(&p, (const char *)data, size); /* stops at an error or an upgrade */
}

static int resp_begin(llhttp_t *p) {
    resp_in_msg = true;
    resp_has_rid = false;
    return 0;
}

static int resp_field_span(llhttp_t *p, const char *at, size_t n) {
    for (size_t i = 0; i < n; i++, resp_field_len++)
        if (resp_field_len < sizeof resp_field)
            resp_field[resp_field_len] = at[i];
    return 0;
}

static int resp_field_done(llhttp_t *p) {
    resp_in_rid = resp_field_len == 12 && strncasecmp(resp_field, "X-Request-ID", 12) == 0;
    resp_field_len = resp_rid_len = 0;
    return 0;
}

static int resp_value_span(llhttp_t *p, const char *at, size_t n) {
    if (resp_in_rid)
        resp_rid_len += n;
    return 0;
}

static int resp_value_done(llhttp_t *p) {
    if (resp_in_rid && resp_rid_len > 0)
        resp_has_rid = true;
    resp_in_rid = false;
    return 0;
}

static int resp_headers_done(llhttp_t *p) {
    if (p->status_code >= 100 && p->status_code < 200)
        return 0; /* interim (100 Continue): no request of its own, no body */
    size_t i = nanswers++;
    if (!resp_has_rid) {
        char d[64];
        snprintf(d, sizeof d, "answer %zu (status %d)", nanswers, p->status_code);
        die("an answer without an X-Request-ID", d);
    }
    if (nanswers > nmsgs) {
        char d[96];
        snprintf(d, sizeof d, "%zu final answers to %zu requests", nanswers, nmsgs);
        die("more answers than requests", d);
    }
    if (i >= MAX_MESSAGES || !msgs[i].head)
        return 0;
    /* A HEAD answer has Content-Length but no body, when the server got through the request's
     * head (it sets head_only there); 431 is always given before. A 408 may come either way:
     * the rest is not checked. */
    if (p->status_code == 408) {
        resp_off = true;
        return HPE_PAUSED;
    }
    return msgs[i].headers_done && p->status_code != 431 ? 1 : 0;
}

static int resp_done(llhttp_t *p) {
    resp_in_msg = false;
    if (p->status_code >= 200)
        last_keep_alive = llhttp_should_keep_alive(p);
    return 0;
}

static void answers_feed(const char *data, size_t n) {
    if (resp_off)
        return;
    enum llhttp_errno e = llhttp_execute(&resp, data, n);
    if (e == HPE_OK || (e == HPE_PAUSED && resp_off))
        return;
    char d[256];
    snprintf(d, sizeof d, "%s (%s) after %zu answers", llhttp_errno_name(e),
             llhttp_get_error_reason(&resp), nanswers);
    die("malformed answer", d);
}

/* ---- the client end ------------------------------------------------------------------------ */

static void client_close_cb(uv_handle_t *h) {
    struct client *c = h->data;
    c->open = false;
}

static void client_close(struct client *c) {
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, client_close_cb);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    struct client *c = h->data;
    (void)suggested;
    b->base = c->buf;
    b->len = sizeof c->buf;
}

static void client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    struct client *c = st->data;
    if (n > 0) {
        if (verbose && write(out_fd, b->base, (size_t)n) < 0)
            verbose = false;
        c->received += (size_t)n;
        answers_feed(b->base, (size_t)n);
        return;
    }
    if (n < 0) { /* EOF, or a reset when the server closed with our bytes unread */
        if (verbose && n != UV_EOF)
            dprintf(out_fd, "[fuzz_http] client read: %s\n", uv_err_name((int)n));
        c->eof = true;
        uv_read_stop(st);
        client_close(c);
    }
}

static void client_written(uv_write_t *w, int status) { cl.write_status = status; }

/* The store barrier: units run and complete in order, so once this one is done no unit of an
 * earlier request is still in flight (their completions ran on the loop before it). */
static bool barrier_done;

static int barrier_unit(store_tx_t *tx, void *arg) { return 0; }

static void barrier_cb(void *arg, int rc) { barrier_done = true; }

static void client_shut(uv_shutdown_t *sh, int status) { cl.shutdown_status = status; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool settings_ready;
    if (!settings_ready) {
        llhttp_settings_init(&req_settings);
        req_settings.on_message_begin = req_begin;
        req_settings.on_url = req_url;
        req_settings.on_headers_complete = req_headers_done;
        req_settings.on_message_complete = req_done;
        llhttp_settings_init(&resp_settings);
        resp_settings.on_message_begin = resp_begin;
        resp_settings.on_header_field = resp_field_span;
        resp_settings.on_header_field_complete = resp_field_done;
        resp_settings.on_header_value = resp_value_span;
        resp_settings.on_header_value_complete = resp_value_done;
        resp_settings.on_headers_complete = resp_headers_done;
        resp_settings.on_message_complete = resp_done;
        settings_ready = true;
    }
    scan_requests(data, size);
    llhttp_init(&resp, HTTP_RESPONSE, &resp_settings);
    nanswers = 0;
    resp_in_msg = resp_off = last_keep_alive = resp_in_rid = false;
    resp_field_len = resp_rid_len = 0;

    log_set_level(base_level); /* PUT /admin/log-level of the previous input */
    /* The loop has not run since the previous input (or since uv_loop_init): its cached time is
     * stale, and the connection timer armed by http_server_adopt_pipe (outside uv_run) would
     * otherwise expire at once and close the connection before it reads anything. */
    uv_update_time(&app.loop);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair", strerror(errno));
    memset(&cl, 0, offsetof(struct client, buf));
    if (uv_pipe_init(&app.loop, &cl.pipe, 0) != 0 || uv_pipe_open(&cl.pipe, sv[1]) != 0)
        die("client pipe", NULL);
    cl.pipe.data = &cl;
    cl.open = true;
    if (http_server_adopt_pipe(app.http, sv[0]) != 0)
        die("http_server_adopt_pipe", NULL);

    if (size > 0) {
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)size); /* not modified */
        if (uv_write(&cl.w, (uv_stream_t *)&cl.pipe, &b, 1, client_written) != 0)
            die("uv_write", NULL);
    }
    /* queued behind the write: the server sees EOF once it has read everything */
    if (uv_shutdown(&cl.sh, (uv_stream_t *)&cl.pipe, client_shut) != 0)
        die("uv_shutdown", NULL);
    if (uv_read_start((uv_stream_t *)&cl.pipe, client_alloc, client_read) != 0)
        die("uv_read_start", NULL);

    /* The store's uv_async keeps the loop alive, so it runs until this input is over: the
     * client closed (it read the server's EOF), the server's connection is gone (its close
     * callbacks ran) and no health probe is in flight; then a barrier unit makes sure no
     * database unit of this input is still in flight (its completion would run during the
     * next input).
     * A connection that never closes blocks here: libFuzzer reports it as a timeout. */
    uint64_t t0 = uv_hrtime();
    do {
        while (cl.open || http_server_connections(app.http) > 0 || health_busy(app.health))
            uv_run(&app.loop, UV_RUN_ONCE);
        barrier_done = false;
        store_submit(app.store, barrier_unit, NULL, barrier_cb);
        while (!barrier_done)
            uv_run(&app.loop, UV_RUN_ONCE);
    } while (cl.open || http_server_connections(app.http) > 0 || health_busy(app.health));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;

    if (verbose)
        dprintf(out_fd,
                "\n[fuzz_http] %zu bytes in (%zu requests), %zu bytes out (%zu answers), %llu ms "
                "(write %s, shutdown %s)\n",
                size, nmsgs, cl.received, nanswers, (unsigned long long)ms,
                cl.write_status ? uv_err_name(cl.write_status) : "ok",
                cl.shutdown_status ? uv_err_name(cl.shutdown_status) : "ok");
    if (!cl.eof)
        die("the client end closed without reading the server's EOF", NULL);
    if (resp_in_msg && !resp_off) {
        char d[96];
        snprintf(d, sizeof d, "the server closed in the middle of answer %zu", nanswers + 1);
        die("truncated answer", d);
    }
    /* Without Connection: close on its last answer, the server owed an answer to every complete
     * request (it closes without one only on a request cut by the EOF). */
    if (!resp_off && nanswers < ncomplete && (nanswers == 0 || last_keep_alive)) {
        char d[128];
        snprintf(d, sizeof d,
                 "%zu answers to %zu complete requests, the last without Connection: close",
                 nanswers, ncomplete);
        die("answers missing", d);
    }
    return 0;
}
