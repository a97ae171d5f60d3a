/*
 * test_client: the HTTP client (libcurl-multi on libuv) against a small scripted HTTP server on
 * 127.0.0.1 (a thread with raw sockets), for the faults the fakes never make: timeouts, 429
 * with Retry-After, 500 then success, 400, oversized and malformed answers, a download cut
 * short, redirects, the private-address and domain guards, cancel and close. Every test ends
 * with uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/metrics.h"
#include "http/client.h"

/* ---- the scripted server -------------------------------------------------------------------- */

static int lfd = -1, port;
static pthread_t acceptor;
static atomic_int requests, flaky_count;
static atomic_bool stopping;
static char last_body[70000];
static pthread_mutex_t body_mu = PTHREAD_MUTEX_INITIALIZER;

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w, n -= (size_t)w;
    }
}

static void sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(int fd, const char *fmt, ...) {
    char b[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    send_all(fd, b, (size_t)n);
}

/* Waits (at most ms) for the peer to close: the "slow" answers never answer. */
static void wait_peer_close(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    char b[256];
    while (poll(&p, 1, ms) > 0 && recv(fd, b, sizeof b, 0) > 0) {
    }
}

static void fill_pattern(char *p, size_t n, size_t off) {
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (off + i) % 26);
}

static void *conn_thread(void *arg) {
    int fd = (int)(intptr_t)arg;
    char req[70000];
    size_t len = 0;
    char *eoh = NULL;
    while (!eoh && len < sizeof req - 1) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            goto out;
        len += (size_t)r;
        req[len] = '\0';
        eoh = strstr(req, "\r\n\r\n");
    }
    if (!eoh)
        goto out;
    size_t clen = 0;
    const char *cl = strcasestr(req, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    size_t have = len - (size_t)(eoh + 4 - req);
    while (have < clen && len < sizeof req - 1) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        have += (size_t)r;
    }
    req[len] = '\0';
    atomic_fetch_add(&requests, 1);
    pthread_mutex_lock(&body_mu);
    snprintf(last_body, sizeof last_body, "%s", req);
    pthread_mutex_unlock(&body_mu);
    char path[256] = "";
    sscanf(req, "%*s %255s", path);
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';

    if (strcmp(path, "/ok") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                  "Connection: close\r\n\r\n{\"ok\":true}");
    } else if (strcmp(path, "/echo") == 0) {
        sendf(fd,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: "
              "close\r\n\r\n",
              strlen(req));
        send_all(fd, req, strlen(req));
    } else if (strcmp(path, "/slow") == 0) {
        wait_peer_close(fd, 10000);
    } else if (strcmp(path, "/429") == 0) {
        sendf(fd, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n"
                  "Connection: close\r\n\r\nslow");
    } else if (strcmp(path, "/503date") == 0) {
        char date[64];
        time_t t = time(NULL) + 120;
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
        sendf(fd,
              "HTTP/1.1 503 Unavailable\r\nRetry-After: %s\r\nContent-Length: 0\r\nConnection: "
              "close\r\n\r\n",
              date);
    } else if (strcmp(path, "/flaky") == 0) {
        if (atomic_fetch_add(&flaky_count, 1) == 0)
            sendf(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: "
                      "close\r\n\r\noops!");
        else
            sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    } else if (strcmp(path, "/400") == 0) {
        sendf(fd,
              "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 27\r\n"
              "Connection: close\r\n\r\n{\"error\":{\"message\":\"bad\"}}");
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 2u << 20;
        sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
        char chunk[65536];
        for (size_t off = 0; off < n; off += sizeof chunk) {
            fill_pattern(chunk, sizeof chunk, off);
            send_all(fd, chunk, sizeof chunk);
        }
    } else if (strcmp(path, "/bigerror") == 0) {
        size_t n = 200000;
        sendf(fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
              n);
        char *b = malloc(n);
        fill_pattern(b, n, 0);
        send_all(fd, b, n);
        free(b);
    } else if (strcmp(path, "/malformed") == 0) {
        sendf(fd, "this is not HTTP at all\r\n\r\n");
    } else if (strcmp(path, "/download") == 0 || strcmp(path, "/cut") == 0) {
        size_t n = 3u << 20, sent = 0;
        bool cut = strcmp(path, "/cut") == 0;
        sendf(fd,
              "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %zu\r\nConnection: "
              "close\r\n\r\n",
              n);
        char chunk[65536];
        for (size_t off = 0; off < n; off += sizeof chunk) {
            if (cut && off >= n / 3)
                break;
            fill_pattern(chunk, sizeof chunk, off);
            send_all(fd, chunk, sizeof chunk);
            sent += sizeof chunk;
        }
        (void)sent;
    } else if (strcmp(path, "/redirect-same") == 0) {
        sendf(fd, "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\nConnection: "
                  "close\r\n\r\n");
    } else if (strcmp(path, "/redirect-other") == 0) {
        sendf(fd,
              "HTTP/1.1 302 Found\r\nLocation: http://localhost:%d/ok\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n",
              port);
    } else {
        sendf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
out:
    shutdown(fd, SHUT_WR);
    wait_peer_close(fd, 2000);
    close(fd);
    return NULL;
}

static void *accept_thread(void *arg) {
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (atomic_load(&stopping))
                return NULL;
            continue;
        }
        pthread_t t;
        pthread_create(&t, NULL, conn_thread, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static uv_loop_t loop;
static http_client_t *client;
static char dir[128];

static void setup(void) {
    metrics_init();
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    listen(lfd, 64);
    pthread_create(&acceptor, NULL, accept_thread, NULL);
    uv_loop_init(&loop);
    struct http_client_opts o = {.allow_private = false};
    cr_assert_eq(http_client_new(&loop, &o, &client), 0);
    snprintf(dir, sizeof dir, "/tmp/myloware-client-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static bool closed_cb_ran;
static void on_closed(void *ud) { closed_cb_ran = true; }

static void teardown(void) {
    if (client) {
        closed_cb_ran = false;
        http_client_close(client, on_closed, NULL);
        client = NULL;
        uv_run(&loop, UV_RUN_DEFAULT);
        cr_assert(closed_cb_ran, "the close callback ran");
    }
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
    atomic_store(&stopping, true);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(acceptor, NULL);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    metrics_release();
}

/* ---- helpers -------------------------------------------------------------------------------- */

struct got {
    int calls;
    enum http_outcome outcome;
    int err, status, retry_after;
    char body[4096];
    size_t body_len;
    char content_type[128];
    char error[HTTP_CLIENT_ERROR_LEN];
    uint64_t downloaded;
};

static void on_done(const struct http_response *r, void *ud) {
    struct got *g = ud;
    g->calls++;
    g->outcome = r->outcome;
    g->err = r->err;
    g->status = r->status;
    g->retry_after = r->retry_after_s;
    g->body_len = r->body_len;
    snprintf(g->body, sizeof g->body, "%s", r->body);
    snprintf(g->content_type, sizeof g->content_type, "%s", r->content_type ? r->content_type : "");
    snprintf(g->error, sizeof g->error, "%s", r->error);
    g->downloaded = r->downloaded;
}

/* A completion may run in the timer phase of uv_run(UV_RUN_ONCE), after which that call would
 * still block in poll: a 10 ms tick makes every turn come back so the flag is seen. */
struct deadline {
    bool expired;
    uint64_t until;
};

static void on_tick(uv_timer_t *t) {
    struct deadline *d = t->data;
    if (uv_now(t->loop) >= d->until)
        d->expired = true;
}

/* Runs the loop until g->calls > 0 or ms pass. */
static bool run_until(struct got *g, int ms) {
    uv_timer_t t;
    uv_update_time(&loop);
    struct deadline d = {false, uv_now(&loop) + (uint64_t)ms};
    uv_timer_init(&loop, &t);
    t.data = &d;
    uv_timer_start(&t, on_tick, 10, 10);
    while (g->calls == 0 && !d.expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return g->calls > 0;
}

static void url(char *out, size_t cap, const char *path) {
    snprintf(out, cap, "http://127.0.0.1:%d%s", port, path);
}

static struct got fetch(const char *path, struct http_request *base) {
    char u[256];
    url(u, sizeof u, path);
    struct http_request r = base ? *base : (struct http_request){0};
    r.url = u;
    struct got g = {0};
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), 0);
    cr_assert_eq(g.calls, 0, "never called back inside send");
    cr_assert(run_until(&g, 20000), "answer for %s within 20 s", path);
    cr_assert_eq(g.calls, 1);
    return g;
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

/* ---- tests ---------------------------------------------------------------------------------- */

Test(client, ok_answer_with_body_and_content_type) {
    struct got g = fetch("/ok", NULL);
    cr_assert_eq(g.outcome, HC_OK);
    cr_assert_eq(g.status, 200);
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.body, "{\"ok\":true}");
    cr_assert_str_eq(g.content_type, "application/json");
    cr_assert_str_eq(g.error, "");
    cr_assert_eq(g.retry_after, -1);
}

Test(client, post_body_and_headers_arrive) {
    const char *hdrs[] = {"Authorization: Bearer sk-test", "Content-Type: application/json", NULL};
    struct http_request r = {.method = "POST", .headers = hdrs, .body = "{\"a\":1}", .body_len = 7};
    struct got g = fetch("/echo", &r);
    cr_assert_eq(g.outcome, HC_OK);
    cr_assert(strstr(g.body, "POST /echo HTTP/1.1"), "%s", g.body);
    cr_assert(strstr(g.body, "Authorization: Bearer sk-test"));
    cr_assert(strstr(g.body, "\r\n\r\n{\"a\":1}"));
    cr_assert_null(strstr(g.body, "Expect:"), "no 100-continue dance");
}

Test(client, multipart_form_fields) {
    struct http_form_field f[] = {{"video", "https://x.test/v.mp4"},
                                  {"title", "Hello"},
                                  {"platform[]", "tiktok"},
                                  {"tags[]", "a"},
                                  {"tags[]", "b"}};
    struct http_request r = {.method = "POST", .form = f, .nform = 5};
    struct got g = fetch("/echo", &r);
    cr_assert_eq(g.outcome, HC_OK);
    cr_assert(strstr(g.body, "Content-Type: multipart/form-data; boundary="), "%s", g.body);
    cr_assert(strstr(g.body, "name=\"video\"\r\n\r\nhttps://x.test/v.mp4\r\n"));
    cr_assert(strstr(g.body, "name=\"platform[]\"\r\n\r\ntiktok\r\n"));
    const char *t = strstr(g.body, "name=\"tags[]\"\r\n\r\na\r\n");
    cr_assert(t && strstr(t, "name=\"tags[]\"\r\n\r\nb\r\n"), "both tags, in order");
}

Test(client, total_timeout_is_retryable) {
    struct http_request r = {.timeout_ms = 300};
    struct got g = fetch("/slow", &r);
    cr_assert_eq(g.outcome, HC_RETRY);
    cr_assert_eq(g.err, ERR_TIMEOUT);
    cr_assert_eq(g.status, 0);
    cr_assert(strstr(g.error, "GET http://127.0.0.1:"), "%s", g.error);
}

Test(client, rate_limited_429_with_retry_after) {
    struct got g = fetch("/429", NULL);
    cr_assert_eq(g.outcome, HC_RETRY);
    cr_assert_eq(g.status, 429);
    cr_assert_eq(g.retry_after, 7);
    cr_assert_str_eq(g.body, "slow", "the error answer's body is kept");
    cr_assert(strstr(g.error, "HTTP 429"), "%s", g.error);
}

Test(client, retry_after_as_http_date) {
    struct got g = fetch("/503date", NULL);
    cr_assert_eq(g.outcome, HC_RETRY);
    cr_assert_eq(g.status, 503);
    cr_assert(g.retry_after >= 115 && g.retry_after <= 121, "retry after %d", g.retry_after);
}

Test(client, server_error_then_success) {
    struct got a = fetch("/flaky", NULL);
    cr_assert_eq(a.outcome, HC_RETRY);
    cr_assert_eq(a.status, 500);
    cr_assert_eq(a.err, ERR_UNAVAIL);
    struct got b = fetch("/flaky", NULL);
    cr_assert_eq(b.outcome, HC_OK);
    cr_assert_str_eq(b.body, "ok");
}

Test(client, bad_request_is_permanent) {
    struct got g = fetch("/400", NULL);
    cr_assert_eq(g.outcome, HC_PERMANENT);
    cr_assert_eq(g.status, 400);
    cr_assert_eq(g.err, ERR_INVAL);
    cr_assert(strstr(g.body, "\"bad\""));
}

Test(client, oversized_answer_is_permanent) {
    struct http_request r = {.max_body = 1u << 20};
    struct got g = fetch("/big", &r);
    cr_assert_eq(g.outcome, HC_PERMANENT);
    cr_assert_eq(g.err, ERR_TOOBIG);
    cr_assert(strstr(g.error, "larger than 1048576 bytes"), "%s", g.error);
}

Test(client, oversized_error_answer_keeps_its_status) {
    struct http_request r = {.max_body = 1000};
    struct got g = fetch("/bigerror", &r);
    cr_assert_eq(g.outcome, HC_RETRY, "a 502 stays retryable however long its body");
    cr_assert_eq(g.status, 502);
    cr_assert_eq(g.body_len, 1000);
}

Test(client, malformed_answer_is_permanent) {
    struct got g = fetch("/malformed", NULL);
    cr_assert_eq(g.outcome, HC_PERMANENT, "%s", g.error);
    cr_assert_eq(g.err, ERR_INVAL);
}

Test(client, connection_refused_is_retryable) {
    /* a port nothing listens on: bind one, close it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", ntohs(a.sin_port));
    struct http_request r = {.url = u};
    struct got g = {0};
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), 0);
    cr_assert(run_until(&g, 10000));
    cr_assert_eq(g.outcome, HC_RETRY);
    cr_assert_eq(g.err, ERR_UNAVAIL);
}

static bool file_is_pattern(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char *b = malloc(n + 1), *want = malloc(n);
    size_t got = fread(b, 1, n + 1, f);
    fclose(f);
    fill_pattern(want, n, 0);
    bool ok = got == n && memcmp(b, want, n) == 0;
    free(b);
    free(want);
    return ok;
}

Test(client, download_streams_to_the_file) {
    char path[200], part[210];
    snprintf(path, sizeof path, "%s/clip.mp4", dir);
    snprintf(part, sizeof part, "%s.part", path);
    struct http_request r = {.download_path = path};
    struct got g = fetch("/download", &r);
    cr_assert_eq(g.outcome, HC_OK, "%s", g.error);
    cr_assert_eq(g.downloaded, 3u << 20);
    cr_assert_str_eq(g.content_type, "video/mp4");
    cr_assert(file_is_pattern(path, 3u << 20), "the file holds exactly the answer");
    struct stat st;
    cr_assert_neq(stat(part, &st), 0, "no temp file left");
}

Test(client, download_cut_short_leaves_nothing) {
    char path[200], part[210];
    snprintf(path, sizeof path, "%s/cut.mp4", dir);
    snprintf(part, sizeof part, "%s.part", path);
    struct http_request r = {.download_path = path};
    struct got g = fetch("/cut", &r);
    cr_assert_eq(g.outcome, HC_RETRY, "%s", g.error);
    cr_assert_eq(g.err, ERR_UNAVAIL);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "no file for a cut download");
    cr_assert_neq(stat(part, &st), 0, "the partial file is removed");
}

Test(client, download_over_the_cap_is_permanent) {
    char path[200], part[210];
    snprintf(path, sizeof path, "%s/big.mp4", dir);
    snprintf(part, sizeof part, "%s.part", path);
    struct http_request r = {.download_path = path, .max_download = 1u << 20};
    struct got g = fetch("/download", &r);
    cr_assert_eq(g.outcome, HC_PERMANENT, "%s", g.error);
    cr_assert_eq(g.err, ERR_TOOBIG);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0);
    cr_assert_neq(stat(part, &st), 0);
}

Test(client, download_error_status_is_not_written) {
    char path[200];
    snprintf(path, sizeof path, "%s/missing.mp4", dir);
    struct http_request r = {.download_path = path};
    struct got g = fetch("/400", &r);
    cr_assert_eq(g.outcome, HC_PERMANENT);
    cr_assert_eq(g.status, 400);
    cr_assert(strstr(g.body, "\"bad\""), "the error answer is in memory");
    struct stat st;
    cr_assert_neq(stat(path, &st), 0);
}

Test(client, guard_refuses_loopback_at_connect_time) {
    int before = atomic_load(&requests);
    struct http_request r = {.guard = true};
    struct got g = fetch("/ok", &r);
    cr_assert_eq(g.outcome, HC_PERMANENT);
    cr_assert_eq(g.err, ERR_FORBIDDEN);
    cr_assert(strstr(g.error, "refused address 127.0.0.1"), "%s", g.error);
    cr_assert_eq(atomic_load(&requests), before, "the server never saw the request");
}

Test(client, guard_allows_the_trusted_origin_and_same_origin_redirects) {
    char origin[64];
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", port);
    http_client_trust_origin(client, origin);
    struct http_request r = {.guard = true};
    struct got g = fetch("/ok", &r);
    cr_assert_eq(g.outcome, HC_OK, "%s", g.error);
    struct got h = fetch("/redirect-same", &r);
    cr_assert_eq(h.outcome, HC_OK, "%s", h.error);
    cr_assert_str_eq(h.body, "{\"ok\":true}");
}

Test(client, guard_refuses_redirects_to_other_hosts) {
    http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    struct http_client_opts o = {.allow_private = true}; /* addresses allowed: only the host rule */
    cr_assert_eq(http_client_new(&loop, &o, &client), 0);
    struct http_request r = {.guard = true};
    struct got g = fetch("/redirect-same", &r);
    cr_assert_eq(g.outcome, HC_OK, "%s", g.error);
    struct got h = fetch("/redirect-other", &r);
    cr_assert_eq(h.outcome, HC_PERMANENT);
    cr_assert_eq(h.err, ERR_FORBIDDEN);
    cr_assert(strstr(h.error, "redirect to another host refused"), "%s", h.error);
    /* unguarded requests follow it */
    struct got u = fetch("/redirect-other", NULL);
    cr_assert_eq(u.outcome, HC_OK, "%s", u.error);
}

Test(client, guard_allowed_domains) {
    http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    struct http_client_opts o = {.allow_private = true,
                                 .allowed_domains = "cdn.example.com, .media.test"};
    cr_assert_eq(http_client_new(&loop, &o, &client), 0);
    struct got g = {0};
    struct http_request r = {.url = "http://127.0.0.1:1/x", .guard = true};
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_FORBIDDEN);
    r.url = "https://evil.com/cdn.example.com";
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_FORBIDDEN);
    r.url = "https://notcdn.example.com/x";
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_FORBIDDEN);
    r.url = "ftp://cdn.example.com/x";
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_INVAL);
    cr_assert_eq(g.calls, 0, "refused synchronously, no callback");
    cr_assert_eq(http_client_inflight(client), 0);
}

Test(client, cancel_never_calls_back) {
    struct got g = {0};
    char u[128];
    url(u, sizeof u, "/slow");
    struct http_request r = {.url = u};
    http_call_t *call = NULL;
    cr_assert_eq(http_client_send(client, &r, on_done, &g, &call), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(http_client_inflight(client), 1);
    http_call_cancel(call);
    cr_assert_eq(http_client_inflight(client), 0);
    struct got other = fetch("/ok", NULL); /* the loop keeps going */
    cr_assert_eq(other.outcome, HC_OK);
    cr_assert_eq(g.calls, 0);
}

Test(client, cancel_a_download_removes_the_partial_file) {
    char path[200], part[210];
    snprintf(path, sizeof path, "%s/cancel.mp4", dir);
    snprintf(part, sizeof part, "%s.part", path);
    char u[128];
    url(u, sizeof u, "/slow");
    struct http_request r = {.url = u, .download_path = path};
    struct got g = {0};
    http_call_t *call;
    cr_assert_eq(http_client_send(client, &r, on_done, &g, &call), 0);
    struct stat st;
    int64_t until = (int64_t)uv_now(&loop) + 5000;
    while (stat(part, &st) != 0 && (int64_t)uv_now(&loop) < until) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_update_time(&loop);
    }
    cr_assert_eq(stat(part, &st), 0, "the temp file was created");
    http_call_cancel(call);
    uv_run(&loop, UV_RUN_NOWAIT);
    until = (int64_t)uv_now(&loop) + 5000;
    while (stat(part, &st) == 0 && (int64_t)uv_now(&loop) < until) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_update_time(&loop);
    }
    cr_assert_neq(stat(part, &st), 0, "removed after cancel");
    cr_assert_eq(g.calls, 0);
}

Test(client, close_completes_calls_in_flight) {
    struct got a = {0}, b = {0};
    char u[128];
    url(u, sizeof u, "/slow");
    struct http_request r = {.url = u};
    cr_assert_eq(http_client_send(client, &r, on_done, &a, NULL), 0);
    cr_assert_eq(http_client_send(client, &r, on_done, &b, NULL), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    closed_cb_ran = false;
    http_client_close(client, on_closed, NULL);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(a.outcome, HC_CANCELLED);
    cr_assert_eq(a.err, ERR_UNAVAIL);
    client = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed_cb_ran);
}

Test(client, invalid_requests_are_refused) {
    struct got g = {0};
    struct http_request r = {0};
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_INVAL);
    r.url = "not a url";
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_INVAL);
    r.url = "file:///etc/passwd";
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_INVAL);
    struct http_form_field f = {"a", "b"};
    r.url = "http://127.0.0.1:1/";
    r.body = "x";
    r.body_len = 1;
    r.form = &f;
    r.nform = 1;
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), ERR_INVAL);
    cr_assert_eq(g.calls, 0);
}

Test(client, errors_hide_query_and_userinfo) {
    char u[200];
    snprintf(u, sizeof u, "http://user:secretpw@127.0.0.1:%d/400?key=sk-secret", port);
    struct http_request r = {.url = u};
    struct got g = {0};
    cr_assert_eq(http_client_send(client, &r, on_done, &g, NULL), 0);
    cr_assert(run_until(&g, 10000));
    cr_assert_eq(g.status, 400);
    cr_assert_null(strstr(g.error, "secret"), "%s", g.error);
    cr_assert(strstr(g.error, "/400"), "%s", g.error);
}

/* ---- pure helpers --------------------------------------------------------------------------- */

static bool priv(const char *ip) {
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &a->sin_addr);
    }
    return http_addr_is_private((struct sockaddr *)&ss);
}

Test(client_pure, private_addresses) {
    const char *yes[] = {"127.0.0.1",
                         "127.1.2.3",
                         "10.0.0.1",
                         "172.16.0.1",
                         "172.31.255.255",
                         "192.168.1.1",
                         "169.254.169.254",
                         "100.64.0.1",
                         "0.0.0.0",
                         "224.0.0.1",
                         "::1",
                         "::",
                         "fe80::1",
                         "fd00::1",
                         "fc00::2",
                         "::ffff:127.0.0.1",
                         "::ffff:10.1.2.3",
                         "::ffff:169.254.169.254",
                         "ff02::1"};
    const char *no[] = {"8.8.8.8",         "172.32.0.1",     "172.15.255.255",
                        "192.169.0.1",     "100.128.0.1",    "1.1.1.1",
                        "2606:4700::1111", "::ffff:8.8.8.8", "169.255.0.1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(priv(yes[i]), "%s is private", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert(!priv(no[i]), "%s is public", no[i]);
}

Test(client_pure, status_outcomes_and_retry_after) {
    cr_assert_eq(http_status_outcome(200), HC_OK);
    cr_assert_eq(http_status_outcome(204), HC_OK);
    cr_assert_eq(http_status_outcome(408), HC_RETRY);
    cr_assert_eq(http_status_outcome(429), HC_RETRY);
    cr_assert_eq(http_status_outcome(500), HC_RETRY);
    cr_assert_eq(http_status_outcome(503), HC_RETRY);
    cr_assert_eq(http_status_outcome(400), HC_PERMANENT);
    cr_assert_eq(http_status_outcome(401), HC_PERMANENT);
    cr_assert_eq(http_status_outcome(404), HC_PERMANENT);
    cr_assert_eq(http_status_outcome(302), HC_PERMANENT);
    cr_assert_eq(http_parse_retry_after("7", 0), 7);
    cr_assert_eq(http_parse_retry_after(" 0 ", 0), 0);
    cr_assert_eq(http_parse_retry_after("999999", 0), 86400);
    cr_assert_eq(http_parse_retry_after("-3", 0), -1);
    cr_assert_eq(http_parse_retry_after("soon", 0), -1);
    cr_assert_eq(http_parse_retry_after("", 0), -1);
    cr_assert_eq(http_parse_retry_after(NULL, 0), -1);
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 */
    cr_assert_eq(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30), 30);
    cr_assert_eq(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 30), 0);
}
