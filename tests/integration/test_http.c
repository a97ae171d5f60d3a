/* Integration: the real binary over real sockets, rule by rule (api.md §1, §2, §9). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "support/harness.h"

static struct server srv;

static void start_default(void) { server_start(&srv, NULL); }
static void stop(void) {
    if (srv.pid > 0)
        server_stop(&srv, SIGKILL, 5000);
    srv.pid = 0;
}

static json_t *body_json(const struct resp *r) {
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert(j, "body is not JSON: %s", r->body);
    return j;
}

static void assert_error(const struct resp *r, int status, const char *code, const char *detail) {
    cr_assert_eq(r->status, status, "status %d, want %d: %s", r->status, status, r->body);
    json_t *j = body_json(r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), code);
    if (detail)
        cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), detail);
    char rid[200];
    cr_assert(resp_header(r, "X-Request-ID", rid, sizeof rid));
    cr_assert_str_eq(json_string_value(json_object_get(j, "request_id")), rid);
    json_decref(j);
}

TestSuite(http, .init = start_default, .fini = stop, .timeout = 60);

Test(http, health_answers_with_a_real_probe_and_the_common_headers) {
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/health", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "healthy");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "checks"), "database")),
                     "up");
    cr_assert(json_is_true(json_object_get(j, "degraded_mode")), "fakes are the default");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "provider_modes"), "sora")), "fake");
    json_decref(j);
    char v[200];
    cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
    cr_assert_eq(strlen(v), 36, "a new UUIDv4: %s", v);
    cr_assert(resp_header(&r, "X-Response-Time-ms", v, sizeof v));
    char *dot = strchr(v, '.');
    cr_assert(dot && strlen(dot) == 3, "%%.2f format: %s", v);
    cr_assert_not(resp_header(&r, "Server", v, sizeof v), "no Server header");
    cr_assert(resp_header(&r, "Content-Type", v, sizeof v));
    cr_assert_str_eq(v, "application/json");
    resp_free(&r);

    cr_assert(h_request(srv.port, "GET", "/health/db", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "database")), "healthy");
    cr_assert_str_eq(json_string_value(json_object_get(j, "backend")), "sqlite");
    cr_assert_eq(json_integer_value(json_object_get(j, "schema_version")), latest_schema_version());
    json_decref(j);
    resp_free(&r);
}

/* The access line of a request (batched with the loop's other info lines) reaches the log
 * within its flush delay, also when nothing else happens afterwards. */
Test(http, the_access_line_reaches_the_log_while_the_server_idles) {
    struct resp r;
    cr_assert(
        h_request(srv.port, "GET", "/health", "X-Request-ID: access-line-idle-1\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    char *log = server_log_wait(&srv, "\"request_id\":\"access-line-idle-1\"", 5000);
    char *line = strstr(log, "\"request_id\":\"access-line-idle-1\"");
    cr_assert(line, "no access line for the request in:\n%s", log);
    char *start = line;
    while (start > log && start[-1] != '\n')
        start--;
    char *end = strchr(line, '\n');
    cr_assert(end, "the access line is not whole");
    *end = '\0';
    cr_assert(strstr(start, "\"msg\":\"request\""), "%s", start);
    cr_assert(strstr(start, "\"method\":\"GET\""), "%s", start);
    cr_assert(strstr(start, "\"route\":\"/health\""), "%s", start);
    cr_assert(strstr(start, "\"status\":200"), "%s", start);
    cr_assert(strstr(start, "\"duration_ms\":"), "%s", start);
    free(log);
}

Test(http, request_id_is_echoed_only_when_valid) {
    struct resp r;
    char v[300];
    cr_assert(h_request(srv.port, "GET", "/health", "X-Request-ID: abc.DEF_1:2-3\r\n", NULL, &r));
    cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
    cr_assert_str_eq(v, "abc.DEF_1:2-3");
    resp_free(&r);

    char hdr[400], id[130];
    memset(id, 'a', 129);
    id[129] = '\0';
    snprintf(hdr, sizeof hdr, "X-Request-ID: %s\r\n", id);
    cr_assert(h_request(srv.port, "GET", "/nope", hdr, NULL, &r));
    cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
    cr_assert_str_neq(v, id);
    cr_assert_eq(strlen(v), 36);
    assert_error(&r, 404, "not_found", NULL);
    resp_free(&r);

    cr_assert(h_request(srv.port, "GET", "/health", "X-Request-ID: has space/slash\r\n", NULL, &r));
    cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
    cr_assert_eq(strlen(v), 36);
    resp_free(&r);
}

Test(http, unknown_path_is_404_and_wrong_method_405_with_allow) {
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/v9/nothing", NULL, NULL, &r));
    assert_error(&r, 404, "not_found", NULL);
    resp_free(&r);
    cr_assert(h_request(srv.port, "DELETE", "/health", NULL, NULL, &r));
    assert_error(&r, 405, "method_not_allowed", NULL);
    char allow[100];
    cr_assert(resp_header(&r, "Allow", allow, sizeof allow));
    cr_assert_str_eq(allow, "GET, HEAD");
    resp_free(&r);
    cr_assert(h_request(srv.port, "DELETE", "/admin/log-level", NULL, NULL, &r));
    cr_assert(resp_header(&r, "Allow", allow, sizeof allow));
    cr_assert_str_eq(allow, "GET, HEAD, PUT");
    resp_free(&r);
}

Test(http, head_has_the_length_but_no_body) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(
        fd, "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health/db HTTP/1.1\r\nHost: t\r\n\r\n"));
    char buf[4096];
    cr_assert(h_recv_until(fd, buf, sizeof buf, "\"backend\"", 5000), "%s", buf);
    /* the HEAD answer is followed directly by the next response's status line */
    char *second = strstr(buf + 1, "HTTP/1.1 200");
    cr_assert(second, "two answers: %s", buf);
    cr_assert(strstr(buf, "Content-Length: ") < second);
    cr_assert(!memmem(buf, (size_t)(second - buf), "{\"status\"", 9), "HEAD sent a body");
    close(fd);
}

Test(http, auth_missing_and_invalid_keys_are_401) {
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/admin/log-level", NULL, NULL, &r));
    assert_error(&r, 401, "unauthorized", "Missing API key");
    resp_free(&r);
    cr_assert(
        h_request(srv.port, "GET", "/admin/log-level", "X-API-Key: dev-api-kez\r\n", NULL, &r));
    assert_error(&r, 401, "unauthorized", "Invalid API key");
    resp_free(&r);
    cr_assert(
        h_request(srv.port, "GET", "/admin/log-level", "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

Test(http, json_routes_check_type_then_syntax_then_fields) {
    struct resp r;
    const char *key = "X-API-Key: dev-api-key\r\n";
    cr_assert(h_request(srv.port, "PUT", "/admin/log-level",
                        "X-API-Key: dev-api-key\r\nContent-Type: text/plain\r\n",
                        "{\"level\":\"debug\"}", &r));
    assert_error(&r, 415, "unsupported_media_type", NULL);
    resp_free(&r);
    char h[200];
    snprintf(h, sizeof h, "%sContent-Type: application/json; charset=utf-8\r\n", key);
    cr_assert(h_request(srv.port, "PUT", "/admin/log-level", h, "{\"level\":", &r));
    assert_error(&r, 400, "invalid_json", NULL);
    resp_free(&r);
    cr_assert(h_request(srv.port, "PUT", "/admin/log-level", h, "[1,2]", &r));
    assert_error(&r, 400, "invalid_json", NULL);
    resp_free(&r);
    cr_assert(
        h_request(srv.port, "PUT", "/admin/log-level", h, "{\"level\":\"loud\",\"x\":1}", &r));
    assert_error(&r, 422, "validation_error", NULL);
    json_t *j = body_json(&r);
    json_t *f = json_array_get(json_object_get(j, "fields"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(f, "field")), "level");
    json_decref(j);
    resp_free(&r);
    /* auth comes before JSON: a bad body without a key is a 401 */
    cr_assert(h_request(srv.port, "PUT", "/admin/log-level", "Content-Type: application/json\r\n",
                        "{", &r));
    assert_error(&r, 401, "unauthorized", NULL);
    resp_free(&r);
    /* and a valid one is applied; unknown fields are ignored */
    cr_assert(h_request(srv.port, "PUT", "/admin/log-level", h,
                        "{\"level\":\"warn\",\"extra\":true}", &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/admin/log-level", key, NULL, &r));
    cr_assert(strstr(r.body, "\"warn\""), "%s", r.body);
    resp_free(&r);
}

Test(http, oversize_body_is_413_before_it_is_read) {
    int fd = h_connect(srv.port);
    /* declare 10 MiB, send none of it: the answer must come anyway */
    cr_assert(h_sendf(fd, "PUT /admin/log-level HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-api-key\r\n"
                          "Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000), "no answer before the body");
    assert_error(&r, 413, "payload_too_large", NULL);
    char v[64];
    cr_assert(resp_header(&r, "Connection", v, sizeof v));
    cr_assert_str_eq(v, "close");
    cr_assert(h_closed(fd, 5000));
    resp_free(&r);
    close(fd);
}

Test(http, chunked_body_over_the_cap_is_413) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(fd, "PUT /admin/log-level HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-api-key\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
    static char chunk[70000];
    memset(chunk, ' ', sizeof chunk);
    int n = snprintf(chunk, 16, "%x\r\n", 65536);
    chunk[n] = ' ';
    memcpy(chunk + n + 65536, "\r\n", 2);
    struct resp r;
    bool answered = false;
    for (int i = 0; i < 20 && !answered; i++) { /* 20 x 64 KiB > 1 MiB */
        if (!h_send(fd, chunk, (size_t)n + 65536 + 2))
            break;
    }
    answered = h_read(fd, &r, 5000);
    cr_assert(answered);
    assert_error(&r, 413, "payload_too_large", NULL);
    resp_free(&r);
    close(fd);
}

Test(http, head_over_16k_is_431) {
    int fd = h_connect(srv.port);
    static char big[17000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    assert_error(&r, 431, "headers_too_large", NULL);
    resp_free(&r);
    cr_assert(h_closed(fd, 5000));
    close(fd);
}

Test(http, pipelined_requests_are_answered_in_order) {
    int fd = h_connect(srv.port);
    char all[8192];
    size_t n = 0;
    const char *paths[] = {"/health", "/nope", "/health/db", "/openapi.json", "/health"};
    for (int i = 0; i < 5; i++)
        n += (size_t)snprintf(all + n, sizeof all - n,
                              "GET %s HTTP/1.1\r\nHost: t\r\nX-Request-ID: req-%d\r\n\r\n",
                              paths[i], i);
    cr_assert(h_send(fd, all, n), "one write with five requests");
    for (int i = 0; i < 5; i++) {
        struct resp r;
        cr_assert(h_read(fd, &r, 5000), "answer %d", i);
        char v[64], want[16];
        snprintf(want, sizeof want, "req-%d", i);
        cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
        cr_assert_str_eq(v, want);
        cr_assert_eq(r.status, i == 1 ? 404 : 200);
        resp_free(&r);
    }
    close(fd);
}

Test(http, http10_without_keepalive_is_closed_after_the_answer) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(fd, "GET /health HTTP/1.0\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    cr_assert(h_closed(fd, 5000));
    resp_free(&r);
    close(fd);
}

Test(http, malformed_request_is_400_and_closed) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nBad Header\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    assert_error(&r, 400, "bad_request", NULL);
    cr_assert(h_closed(fd, 5000));
    resp_free(&r);
    close(fd);
}

Test(http, metrics_use_route_patterns_and_openapi_is_the_repository_file) {
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/no/such/secret-path", NULL, NULL, &r));
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/health", NULL, NULL, &r));
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/metrics", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    cr_assert(
        strstr(r.body,
               "myloware_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"),
        "%s", r.body);
    cr_assert(strstr(r.body, "route=\"unmatched\",status=\"404\"} 1"));
    cr_assert_null(strstr(r.body, "secret-path"), "raw paths never become labels");
    cr_assert(strstr(r.body, "# TYPE myloware_http_request_duration_seconds histogram"));
    cr_assert(strstr(r.body, "process_resident_memory_bytes "));
    cr_assert(strstr(r.body, "process_open_fds "));
    /* the exposition passes Prometheus' own checker */
    char path[] = "/tmp/myloware-metrics-XXXXXX";
    int mfd = mkstemp(path);
    cr_assert(mfd >= 0);
    cr_assert_eq(write(mfd, r.body, r.body_len), (ssize_t)r.body_len);
    close(mfd);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path, path);
    int rc = system(cmd);
    char outp[200];
    snprintf(outp, sizeof outp, "%s.out", path);
    FILE *of = fopen(outp, "r");
    char msg[2048] = "";
    if (of) {
        size_t k = fread(msg, 1, sizeof msg - 1, of);
        msg[k] = '\0';
        fclose(of);
    }
    unlink(path);
    unlink(outp);
    cr_assert_eq(rc, 0, "promtool check metrics: %s", msg);
    resp_free(&r);

    cr_assert(h_request(srv.port, "GET", "/openapi.json", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    FILE *f = fopen(MYLOWARE_SRCDIR "/openapi.json", "r");
    cr_assert(f);
    static char file[1 << 20];
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    cr_assert_eq(r.body_len, n);
    cr_assert(memcmp(r.body, file, n) == 0);
    resp_free(&r);
}

Test(http, slow_request_gets_408, .init = NULL) {
    const char *env[] = {"HTTP_REQUEST_TIMEOUT_MS=300", NULL};
    stop(); /* Criterion ran the suite's .init too: that server would be left running */
    server_start(&srv, env);
    int fd = h_connect(srv.port);
    int64_t t0 = h_now_ms();
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nHost: t\r\n")); /* never finished */
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    int64_t waited = h_now_ms() - t0;
    assert_error(&r, 408, "request_timeout", NULL);
    cr_assert(waited >= 250 && waited < 3000, "timed out after %lld ms", (long long)waited);
    cr_assert(h_closed(fd, 5000));
    resp_free(&r);
    close(fd);
}

Test(http, idle_keepalive_connection_is_closed, .init = NULL) {
    const char *env[] = {"HTTP_IDLE_TIMEOUT_MS=300", NULL};
    stop(); /* Criterion ran the suite's .init too: that server would be left running */
    server_start(&srv, env);
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    int64_t t0 = h_now_ms();
    cr_assert(h_closed(fd, 5000), "idle connection not closed");
    cr_assert(h_now_ms() - t0 >= 250);
    close(fd);
}

Test(http, thousand_idle_keepalive_connections_are_held, .timeout = 120) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    cr_assert(rl.rlim_cur > 1100, "fd limit %lu too low", (unsigned long)rl.rlim_cur);
    enum { N = 1000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = h_connect(srv.port);
        cr_assert(fds[i] >= 0, "connect %d", i);
        cr_assert(h_sendf(fds[i], "GET /health/db HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    for (int i = 0; i < N; i++) {
        struct resp r;
        cr_assert(h_read(fds[i], &r, 10000), "answer %d", i);
        cr_assert_eq(r.status, 200);
        resp_free(&r);
    }
    /* all still open: the server counts them, and each answers a second request */
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/metrics", NULL, NULL, &r));
    char *g = strstr(r.body, "\nmyloware_http_connections ");
    cr_assert(g);
    cr_assert_geq(atoi(g + strlen("\nmyloware_http_connections ")), N, "%s", g);
    resp_free(&r);
    for (int i = 0; i < N; i++) {
        cr_assert(h_sendf(fds[i], "GET /health/db HTTP/1.1\r\nHost: t\r\n\r\n"));
        cr_assert(h_read(fds[i], &r, 10000), "second answer %d", i);
        resp_free(&r);
        close(fds[i]);
    }
}

Test(http, sigterm_finishes_the_request_in_flight_then_exits_0) {
    int fd = h_connect(srv.port);
    const char *body = "{\"level\":\"info\"}";
    cr_assert(h_sendf(fd,
                      "PUT /admin/log-level HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-api-key\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n{\"level\"",
                      strlen(body)));
    /* an idle keep-alive connection is closed by the drain */
    int idle = h_connect(srv.port);
    cr_assert(h_sendf(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(idle, &r, 5000));
    resp_free(&r);
    /* the server logs the signal; wait for that line, not for a guessed delay */
    kill(srv.pid, SIGTERM);
    int64_t deadline = h_now_ms() + 5000;
    char *log = NULL;
    for (;;) {
        free(log);
        log = server_log(&srv);
        if (strstr(log, "shutting down") || h_now_ms() > deadline)
            break;
    }
    cr_assert(strstr(log, "shutting down"), "%s", log);
    free(log);
    cr_assert(h_closed(idle, 5000), "idle connection kept open during drain");
    close(idle);
    cr_assert(server_alive(&srv), "exited with a request in flight");
    cr_assert_lt(h_connect(srv.port), 0, "still accepting after SIGTERM");
    cr_assert(h_send(fd, body + 8, strlen(body) - 8)); /* the rest after {"level" */
    cr_assert(h_read(fd, &r, 5000), "the in-flight request was not answered");
    cr_assert_eq(r.status, 200, "%s", r.body);
    char v[32];
    cr_assert(resp_header(&r, "Connection", v, sizeof v));
    cr_assert_str_eq(v, "close");
    resp_free(&r);
    close(fd);
    cr_assert_eq(server_wait(&srv, 10000), 0);
}

Test(http, second_signal_exits_at_once) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nHost: t\r\n")); /* in flight forever */
    kill(srv.pid, SIGTERM);
    int64_t deadline = h_now_ms() + 5000;
    char *log = NULL;
    do {
        free(log);
        log = server_log(&srv);
    } while (!strstr(log, "shutting down") && h_now_ms() < deadline);
    free(log);
    int64_t t0 = h_now_ms();
    int code = server_stop(&srv, SIGTERM, 5000);
    cr_assert_neq(code, -1);
    cr_assert_lt(h_now_ms() - t0, 2000);
    close(fd);
}

static long server_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

Test(http, a_client_that_never_reads_cannot_grow_server_memory, .timeout = 120) {
    long before = server_rss_kb(srv.pid);
    int fd = h_connect(srv.port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* ask for ~40 MiB of answers (5000 x openapi.json) and read none of them */
    static char reqs[5000 * 48];
    size_t n = 0;
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(reqs + n, sizeof reqs - n,
                              "GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n");
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < n) { /* the server stops reading us: our send blocks and times out */
        ssize_t w = send(fd, reqs + sent, n - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    /* the server still serves others, and its memory stayed bounded */
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/health", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    long after = server_rss_kb(srv.pid);
    cr_assert_lt(after - before, 16 * 1024, "server grew by %ld KiB for one slow reader",
                 after - before);
    close(fd);
}

/* ---- regressions found by the fuzzer (tests/fuzz/regress) ---- */

Test(http, chunked_trailers_do_not_disturb_the_parsed_head) {
    int fd = h_connect(srv.port);
    cr_assert(
        h_sendf(fd, "GET /admin/log-level HTTP/1.1\r\nX-API-Key: dev-api-key\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n"
                    "0\r\nX-Trailer-One: "
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nX-Trailer-Two: b\r\n\r\n"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    close(fd);
}

Test(http, an_error_before_the_head_is_complete_still_has_a_request_id) {
    const char *reqs[] = {"GET /health HTTP/1.1\r\nX@: y\r\n\r\n", "\x01\xff GARBAGE\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        int fd = h_connect(srv.port);
        cr_assert(h_send(fd, reqs[i], strlen(reqs[i])));
        struct resp r;
        cr_assert(h_read(fd, &r, 5000));
        assert_error(&r, 400, "bad_request", NULL);
        char v[200];
        cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
        cr_assert_eq(strlen(v), 36, "'%s'", v);
        resp_free(&r);
        close(fd);
    }
}

Test(http, upgrade_requests_get_a_plain_answer_then_the_connection_ends) {
    int fd = h_connect(srv.port);
    cr_assert(h_sendf(
        fd,
        "GET /health HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nrest of bytes"));
    struct resp r;
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert(h_closed(fd, 5000));
    close(fd);
    /* and the server is still fine */
    cr_assert(h_request(srv.port, "GET", "/health/db", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

Test(http, eof_in_the_middle_of_a_request_still_delivers_the_earlier_answers) {
    int fd = h_connect(srv.port);
    int small = 4096; /* keep the answers queued on the server side for a while */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "GET /openapi.json HTTP/1.1\r\nHo");
    cr_assert(h_send(fd, buf, n));
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 3; i++) {
        struct resp r;
        cr_assert(h_read(fd, &r, 5000), "answer %d lost", i);
        cr_assert_eq(r.status, 200);
        resp_free(&r);
    }
    cr_assert(h_closed(fd, 5000));
    close(fd);
}

/* Request objects are reused from one request to the next: nothing of one may reach another. */
Test(http, requests_on_one_connection_share_nothing) {
    int fd = h_connect(srv.port);
    struct resp r;
    char v[200];
    const char *body = "{\"level\":\"info\"}";
    cr_assert(h_sendf(
        fd,
        "PUT /admin/log-level HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-api-key\r\n"
        "X-Request-ID: first-1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        strlen(body), body));
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    /* an empty body is {}: the previous body is gone (level missing), and so is the request id */
    cr_assert(h_sendf(fd, "PUT /admin/log-level HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-api-key\r\n"
                          "Content-Length: 0\r\n\r\n"));
    cr_assert(h_read(fd, &r, 5000));
    assert_error(&r, 422, "validation_error", NULL);
    cr_assert(resp_header(&r, "X-Request-ID", v, sizeof v));
    cr_assert_str_neq(v, "first-1");
    cr_assert_eq(strlen(v), 36, "a fresh uuid: %s", v);
    resp_free(&r);
    /* the key is not remembered either */
    cr_assert(h_sendf(fd, "GET /admin/log-level HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert(h_read(fd, &r, 5000));
    assert_error(&r, 401, "unauthorized", "Missing API key");
    resp_free(&r);
    /* a long head, then a short one; then a HEAD, then a GET with its body again */
    char pad[12000];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    cr_assert(h_sendf(fd, "GET /nope?x=1 HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad));
    cr_assert(h_read(fd, &r, 5000));
    assert_error(&r, 404, "not_found", NULL);
    resp_free(&r);
    cr_assert(h_sendf(fd, "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    char hb[2048];
    cr_assert(h_recv_until(fd, hb, sizeof hb, "\r\n\r\n", 5000), "HEAD answer");
    cr_assert(strstr(hb, "Content-Length: ") && !strstr(hb, "\"status\""), "%s", hb);
    cr_assert(h_sendf(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert(h_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    cr_assert(r.body_len > 0 && strstr(r.body, "\"status\""), "the GET has its body: %s", r.body);
    resp_free(&r);
    close(fd);
}
