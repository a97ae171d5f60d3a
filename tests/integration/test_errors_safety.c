/*
 * Integration: the refusals of api.md §3 that depend on state or on another service, over real
 * HTTP: content_blocked (400, "reason") on every checked field, safety_unavailable (503) when
 * the moderation API refuses the connection or does not answer within SAFETY_TIMEOUT_MS, and
 * the Idempotency-Key answers (409 while the first request is in flight, 422 for another body,
 * replays with Idempotent-Replayed, keys scoped per API key). The slow services are a loopback
 * socket that listens but never answers. tests/integration/ERRORS.md maps every error to its test.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/apierr.h"

/* A loopback socket that accepts connections (the kernel does) but never reads or answers. */
static int black_hole(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t n = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A loopback port nobody listens on (bound, then closed). */
static int closed_port(void) {
    int p;
    close(black_hole(&p));
    return p;
}

static void blocked(int port, const char *method, const char *path, const char *body,
                    const char *reason) {
    json_t *j = ae_error(port, method, path, AE_JSON_KEY, body, 400, "content_blocked", NULL, NULL);
    cr_assert_str_eq(ae_str(j, "reason"), reason, "%s %s", path, body);
    json_decref(j);
}

Test(errors_safety, every_checked_field_is_blocked_and_nothing_changes, .timeout = 60) {
    struct server s;
    ae_start(&s, NULL);
    blocked(s.port, "POST", "/v1/runs/start",
            "{\"project\":\"motivational\",\"brief\":\"Suicide squad\"}",
            "matched_keyword:suicide");
    blocked(s.port, "POST", "/v2/runs/start",
            "{\"project\":\"motivational\",\"brief\":\"two bombs\"}", "matched_keyword:bomb");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0);
    char *id = ae_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"a calm sea\"}");
    json_decref(ae_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    char p[160];
    snprintf(p, sizeof p, "/v1/runs/%s/approve", id);
    blocked(s.port, "POST", p, "{\"gate\":\"ideation\",\"comment\":\"what a Murder\"}",
            "matched_keyword:murder");
    /* validation (422) comes before the safety check */
    AE_ERR(s.port, "POST", p, AE_JSON_KEY, "{\"comment\":\"a bomb\"}", 422, "validation_error",
           NULL);
    snprintf(p, sizeof p, "/v2/runs/%s/approve", id);
    blocked(s.port, "POST", p, "{\"approved\":true,\"content_override\":\"terrorist plot\"}",
            "matched_keyword:terrorist");
    blocked(s.port, "POST", p,
            "{\"approved\":true,\"data\":{\"n\":1,\"note\":\"no hate speech here\"}}",
            "matched_keyword:hate speech");
    blocked(s.port, "POST", p, "{\"approved\":true,\"comment\":\"shooting stars\"}",
            "matched_keyword:shoot");
    snprintf(p, sizeof p, "/v2/runs/%s/reject", id);
    blocked(s.port, "POST", p, "{\"comment\":\"killers\"}", "matched_keyword:kill");
    snprintf(p, sizeof p, "/v1/runs/%s/feedback", id);
    blocked(s.port, "POST", p, "{\"rating\":1,\"comment\":\"a racial slur\"}",
            "matched_keyword:racial slur");
    json_t *r = ae_wait_status(s.port, id, "awaiting_ideation_approval", 1000);
    json_decref(r);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log WHERE target = '%s'", id);
    cr_assert_eq(ae_db_count(&s, sql), 0, "no blocked decision was taken");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM feedback"), 0);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 1);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* Real moderation (SAFETY_PROVIDER=openai) at base; every other provider stays fake. */
static void start_moderated(struct server *s, const char *base) {
    static char url[100];
    snprintf(url, sizeof url, "OPENAI_BASE_URL=%s", base);
    const char *env[] = {"PROVIDERS=real",
                         "LLM_PROVIDER=fake",
                         "SORA_PROVIDER=fake",
                         "PUBLISH_PROVIDER=fake",
                         "SAFETY_PROVIDER=openai",
                         "SAFETY_TIMEOUT_MS=300",
                         "OPENAI_API_KEY=sk-test-only",
                         url,
                         NULL};
    ae_start(s, env);
}

static void unavailable(int port, const char *path, const char *body) {
    int64_t t0 = h_now_ms();
    AE_ERR(port, "POST", path, AE_JSON_KEY, body, 503, "safety_unavailable", NULL);
    int64_t took = h_now_ms() - t0;
    cr_assert(took < 10000, "fail-closed within the deadline, took %lld ms", (long long)took);
}

Test(errors_safety, moderation_that_fails_or_is_too_slow_is_503_and_nothing_runs, .timeout = 60) {
    struct server s;
    char base[80];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port());
    start_moderated(&s, base);
    unavailable(s.port, "/v1/runs/start",
                "{\"project\":\"motivational\",\"brief\":\"refused connection\"}");
    unavailable(s.port, "/v2/runs/start",
                "{\"project\":\"motivational\",\"brief\":\"refused connection\"}");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    int hole_port, hole = black_hole(&hole_port);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", hole_port);
    start_moderated(&s, base);
    int64_t t0 = h_now_ms();
    unavailable(s.port, "/v1/runs/start",
                "{\"project\":\"motivational\",\"brief\":\"nobody answers\"}");
    cr_assert(h_now_ms() - t0 >= 250, "the answer waited for SAFETY_TIMEOUT_MS (300)");
    /* a text-free request needs no moderation; the comment of a decision does */
    int st;
    json_t *j = ae_call(s.port, "POST", "/v1/runs/start", AE_JSON_KEY,
                        "{\"project\":\"motivational\",\"brief\":\"\"}", &st);
    cr_assert_eq(st, 422);
    json_decref(j);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0,
                 "fail-closed: nothing was created");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    close(hole);
}

/* Sends a request on a new connection without reading the answer; returns the socket. */
static int send_only(int port, const char *path, const char *headers, const char *body) {
    int fd = h_connect(port);
    cr_assert(fd >= 0);
    cr_assert(h_sendf(fd, "POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s", path,
                      headers, strlen(body), body));
    return fd;
}

Test(errors_safety, idempotency_keys_in_flight_reused_replayed_and_scoped_per_api_key,
     .timeout = 90) {
    /* the LLM never answers, so a v2 start waits its whole V2_WAIT_MS with its key in flight */
    int hole_port, hole = black_hole(&hole_port);
    char llm[100];
    snprintf(llm, sizeof llm, "LLM_BASE_URL=http://127.0.0.1:%d/v1", hole_port);
    const char *env[] = {"LLM_PROVIDER=openai",
                         "LLM_API_KEY=sk-test-only",
                         llm,
                         "V2_WAIT_MS=4000",
                         "API_KEYS=dev-api-key,key-b",
                         "SHUTDOWN_GRACE_S=1",
                         NULL}; /* the blocked ideation calls are handed back */
    struct server s;
    ae_start(&s, env);
    const char *body = "{\"project\":\"motivational\",\"brief\":\"once only\"}";
    const char *hdr = AE_JSON_KEY "Idempotency-Key: flight-1\r\n";
    int first = send_only(s.port, "/v2/runs/start", hdr, body);
    int64_t deadline = h_now_ms() + 10000;
    while (ae_db_count(&s, "SELECT count(*) FROM idempotency_keys WHERE key = 'flight-1'") < 1) {
        cr_assert(h_now_ms() < deadline, "the first request never took its key");
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    AE_ERR(s.port, "POST", "/v2/runs/start", hdr, body, 409, "conflict",
           "A request with this Idempotency-Key is still in progress");
    AE_ERR(s.port, "POST", "/v2/runs/start", hdr,
           "{\"project\":\"motivational\",\"brief\":\"another\"}", 422, "idempotency_key_reused",
           NULL);
    /* the same key on another route is another request body: reused */
    AE_ERR(s.port, "POST", "/v1/runs/start", hdr, body, 422, "idempotency_key_reused", NULL);
    struct resp r1;
    cr_assert(h_read(first, &r1, 30000), "the first answer");
    close(first);
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    json_t *j = json_loads(r1.body, 0, NULL);
    cr_assert(json_is_null(json_object_get(j, "interrupt")), "no gate was reached: %s", r1.body);
    char run[64];
    snprintf(run, sizeof run, "%s", ae_str(j, "run_id"));
    json_decref(j);
    struct resp r2;
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", hdr, body, &r2));
    cr_assert_eq(r2.status, 200);
    char v[16];
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v),
              "a replay after the first finished");
    cr_assert_str_eq(v, "true");
    cr_assert_str_eq(r2.body, r1.body);
    resp_free(&r1);
    resp_free(&r2);
    /* keys are scoped per API key: key-b's flight-1 is a new request */
    int st;
    j = ae_call(s.port, "POST", "/v1/runs/start",
                "X-API-Key: key-b\r\n" AE_JSON "Idempotency-Key: flight-1\r\n", body, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_neq(ae_str(j, "run_id"), run);
    json_decref(j);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 2);

    /* decisions: a replay gives the first answer again, not a 409 */
    char p[160];
    snprintf(p, sizeof p, "/v1/runs/%s/cancel", run);
    const char *ck = AE_JSON_KEY "Idempotency-Key: cancel-1\r\n";
    j = ae_call(s.port, "POST", p, ck, "{\"reason\":\"enough\"}", &st);
    cr_assert_eq(st, 200, "%s", json_dumps(j, 0));
    cr_assert_str_eq(ae_str(j, "status"), "cancelled");
    json_decref(j);
    cr_assert(h_request(s.port, "POST", p, ck, "{\"reason\":\"enough\"}", &r2));
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    resp_free(&r2);
    AE_ERR(s.port, "POST", p, ck, "{\"reason\":\"other\"}", 422, "idempotency_key_reused", NULL);
    snprintf(p, sizeof p, "/v1/runs/%s/feedback", run);
    const char *fk = AE_JSON_KEY "Idempotency-Key: fb-1\r\n";
    j = ae_call(s.port, "POST", p, fk, "{\"rating\":5}", &st);
    cr_assert_eq(st, 201);
    json_decref(j);
    cr_assert(h_request(s.port, "POST", p, fk, "{\"rating\":5}", &r2));
    cr_assert_eq(r2.status, 201);
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    resp_free(&r2);
    AE_ERR(s.port, "POST", p, fk, "{\"rating\":1}", 422, "idempotency_key_reused", NULL);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM feedback"), 1, "a replay stores nothing");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM audit_log WHERE action = 'run.cancelled'"),
                 1);
    int rc = server_stop(&s, SIGTERM, 20000);
    char *log = server_log(&s);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, strstr(log, "signal") ? strstr(log, "signal") : log);
    free(log);
    close(hole);
}
