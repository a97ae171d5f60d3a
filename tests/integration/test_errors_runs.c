/*
 * Integration: the error answers of the run, job and admin routes (api.md §1-§5) over real
 * HTTP, one by one: 404 for ids that are not UUIDs or name nothing, 405 with Allow, 401 on
 * every protected prefix, the processing order, 422 per field, the Idempotency-Key refusals
 * (reused, in flight, scoped per API key), content_blocked on every checked field, 503 when
 * the moderation API fails or is too slow. Every refusal is checked to change nothing.
 * tests/integration/ERRORS.md maps every error of api.md to its test.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/apierr.h"

static struct server srv;

static void stop(void) {
    if (srv.pid > 0)
        server_stop(&srv, SIGKILL, 5000);
    srv.pid = 0;
}

static void start_plain(void) { ae_start(&srv, NULL); }

TestSuite(errors_runs, .init = start_plain, .fini = stop, .timeout = 60);

/* The first field error of a 422 answer. */
static void expect_field(int port, const char *method, const char *path, const char *headers,
                         const char *body, const char *field, const char *message) {
    json_t *j = ae_error(port, method, path, headers, body, 422, "validation_error",
                         "Request validation failed", NULL);
    json_t *f = json_array_get(json_object_get(j, "fields"), 0);
    cr_assert_str_eq(ae_str(f, "field"), field, "%s %s %s", method, path, body ? body : "");
    if (message)
        cr_assert_str_eq(ae_str(f, "message"), message, "%s %s", method, path);
    json_decref(j);
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(errors_runs, every_run_route_answers_404_for_a_bad_or_unknown_id) {
    static const struct {
        const char *method, *prefix, *suffix, *body;
    } routes[] = {
        {"GET", "/v1/runs/", "", NULL},
        {"GET", "/v1/runs/", "/artifacts", NULL},
        {"GET", "/v1/runs/", "/events", NULL},
        {"POST", "/v1/runs/", "/approve", "{\"gate\":\"ideation\"}"},
        {"POST", "/v1/runs/", "/cancel", "{}"},
        {"POST", "/v1/runs/", "/feedback", "{\"rating\":5}"},
        {"GET", "/v1/runs/", "/feedback", NULL},
        {"GET", "/v2/runs/", "", NULL},
        {"POST", "/v2/runs/", "/approve", "{\"approved\":true}"},
        {"POST", "/v2/runs/", "/approve/hitl", "{\"approved\":true}"},
        {"POST", "/v2/runs/", "/reject", "{}"},
        {"POST", "/v2/runs/", "/resume", "{\"action\":\"auto\"}"},
        {"GET", "/v2/runs/", "/state", NULL},
        {"GET", "/v2/runs/", "/history", NULL},
    };
    const char *ids[] = {"not-a-uuid", "00000000-0000-4000-8000-00000000000", AE_NO_RUN, "%2e%2e"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
            char path[200];
            snprintf(path, sizeof path, "%s%s%s", routes[i].prefix, ids[k], routes[i].suffix);
            AE_ERR(srv.port, routes[i].method, path, AE_JSON_KEY, routes[i].body, 404, "not_found",
                   "Run not found");
        }
    }
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM audit_log"), 0);
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM feedback"), 0);
}

Test(errors_runs, jobs_and_dead_letters_that_do_not_exist_are_404) {
    AE_ERR(srv.port, "GET", "/v1/jobs/nope", AE_KEY, NULL, 404, "not_found", "Job not found");
    AE_ERR(srv.port, "GET", "/v1/jobs/" AE_NO_RUN, AE_KEY, NULL, 404, "not_found", "Job not found");
    AE_ERR(srv.port, "GET", "/admin/dlq/" AE_NO_RUN, AE_KEY, NULL, 404, "not_found",
           "Dead letter " AE_NO_RUN " not found");
    AE_ERR(srv.port, "POST", "/admin/dlq/" AE_NO_RUN "/replay", AE_KEY, NULL, 404, "not_found",
           "Dead letter " AE_NO_RUN " not found");
    AE_ERR(srv.port, "POST", "/admin/dlq/" AE_NO_RUN "/resolve", AE_KEY, NULL, 404, "not_found",
           "Dead letter " AE_NO_RUN " not found");
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM audit_log"), 0);
}

Test(errors_runs, wrong_methods_are_405_with_allow_before_auth) {
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/v1/runs/" AE_NO_RUN, "GET, HEAD"},
        {"PUT", "/v1/runs/start", "GET, HEAD, POST"}, /* POST start and GET {id} */
        {"GET", "/v1/runs/" AE_NO_RUN "/approve", "POST"},
        {"DELETE", "/v1/runs/" AE_NO_RUN "/feedback", "GET, HEAD, POST"},
        {"PUT", "/v2/runs/" AE_NO_RUN "/approve/hitl", "POST"},
        {"DELETE", "/v2/runs/start", "GET, HEAD, POST"},
        {"GET", "/v1/webhooks/sora", "POST"},
        {"GET", "/health/cleanup-stuck-runs", "POST"},
        {"POST", "/admin/dlq", "GET, HEAD"},
        {"PATCH", "/v1/public/demo/start", "OPTIONS, POST"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resp r;
        /* no API key: routing (405) comes before auth (401) */
        json_decref(ae_error(srv.port, cases[i].method, cases[i].path, NULL, NULL, 405,
                             "method_not_allowed", NULL, &r));
        char allow[100];
        cr_assert(resp_header(&r, "Allow", allow, sizeof allow), "%s %s", cases[i].method,
                  cases[i].path);
        /* the order of the methods is not part of the contract: compare as sets */
        char want[100], *save = NULL;
        snprintf(want, sizeof want, "%s", cases[i].allow);
        int n_want = 0, n_got = 1;
        for (char *m = strtok_r(want, ", ", &save); m; m = strtok_r(NULL, ", ", &save), n_want++)
            cr_assert(strstr(allow, m), "%s %s: Allow %s lacks %s", cases[i].method, cases[i].path,
                      allow, m);
        for (const char *p = allow; *p; p++)
            n_got += *p == ',';
        cr_assert_eq(n_got, n_want, "%s %s: Allow %s, want %s", cases[i].method, cases[i].path,
                     allow, cases[i].allow);
        resp_free(&r);
    }
    /* unknown paths are 404 before auth too, even under a protected prefix */
    AE_ERR(srv.port, "GET", "/v1/runs/" AE_NO_RUN "/nothing", NULL, NULL, 404, "not_found", NULL);
    AE_ERR(srv.port, "GET", "/admin/nothing", NULL, NULL, 404, "not_found", NULL);
}

Test(errors_runs, every_protected_prefix_needs_a_valid_key_before_anything_else) {
    static const struct {
        const char *method, *path;
    } routes[] = {
        {"GET", "/v1/runs"},
        {"POST", "/v1/runs/start"},
        {"GET", "/v1/runs/" AE_NO_RUN},
        {"POST", "/v1/runs/" AE_NO_RUN "/approve"},
        {"POST", "/v1/runs/" AE_NO_RUN "/cancel"},
        {"POST", "/v1/runs/" AE_NO_RUN "/feedback"},
        {"GET", "/v1/runs/" AE_NO_RUN "/events"},
        {"POST", "/v2/runs/start"},
        {"GET", "/v2/runs/" AE_NO_RUN "/state"},
        {"POST", "/v2/runs/" AE_NO_RUN "/reject"},
        {"POST", "/v2/runs/" AE_NO_RUN "/resume"},
        {"GET", "/v1/jobs/" AE_NO_RUN},
        {"GET", "/admin/jobs"},
        {"GET", "/admin/dlq"},
        {"POST", "/admin/dlq/" AE_NO_RUN "/replay"},
        {"POST", "/health/cleanup-stuck-runs"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        /* a bad body and a bad Content-Type too: auth (401) comes before 415 and 400 */
        AE_ERR(srv.port, routes[i].method, routes[i].path, "Content-Type: text/plain\r\n", "{", 401,
               "unauthorized", "Missing API key");
        AE_ERR(srv.port, routes[i].method, routes[i].path, "X-API-Key: \r\n", NULL, 401,
               "unauthorized", "Missing API key");
        AE_ERR(srv.port, routes[i].method, routes[i].path, "X-API-Key: dev-api-keyX\r\n" AE_JSON,
               "{", 401, "unauthorized", "Invalid API key");
        AE_ERR(srv.port, routes[i].method, routes[i].path, "X-API-Key: dev-api-ke\r\n", NULL, 401,
               "unauthorized", "Invalid API key");
    }
    /* the public routes need none */
    int st;
    json_decref(ae_call(srv.port, "GET", "/health/stuck-runs", NULL, NULL, &st));
    cr_assert_eq(st, 200);
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM runs"), 0);
}

Test(errors_runs, json_bodies_are_checked_for_type_then_syntax_then_fields) {
    const char *paths[] = {"/v1/runs/start", "/v2/runs/start", "/v1/runs/" AE_NO_RUN "/approve",
                           "/v2/runs/" AE_NO_RUN "/approve", "/v1/runs/" AE_NO_RUN "/feedback"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        AE_ERR(srv.port, "POST", paths[i], AE_KEY "Content-Type: text/plain\r\n",
               "{\"brief\":\"x\"}", 415, "unsupported_media_type", NULL);
        AE_ERR(srv.port, "POST", paths[i], AE_KEY, "{\"brief\":\"x\"}", 415,
               "unsupported_media_type", NULL);
        AE_ERR(srv.port, "POST", paths[i], AE_JSON_KEY, "{\"brief\":", 400, "invalid_json", NULL);
        AE_ERR(srv.port, "POST", paths[i], AE_JSON_KEY, "[\"brief\"]", 400, "invalid_json", NULL);
        AE_ERR(srv.port, "POST", paths[i], AE_JSON_KEY, "\"brief\"", 400, "invalid_json", NULL);
        AE_ERR(srv.port, "POST", paths[i],
               AE_KEY "Content-Type: application/json; charset=utf-8\r\n", "{\"a\":", 400,
               "invalid_json", NULL);
    }
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM runs"), 0);
}

Test(errors_runs, every_field_rule_is_a_422_naming_the_field) {
    char *b10001 = repeat('b', 10001), *c2001 = repeat('c', 2001), *u129 = repeat('u', 129),
         *t65 = repeat('7', 65), *w65 = repeat('w', 65), *k256 = repeat('k', 256);
    char body[12000], hdr[400];
    snprintf(body, sizeof body, "{\"brief\":\"%s\"}", b10001);
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, body, "brief",
                 "must be at most 10000 characters");
    expect_field(srv.port, "POST", "/v2/runs/start", AE_JSON_KEY, body, "brief",
                 "must be at most 10000 characters");
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, "{\"brief\":\"\"}", "brief",
                 "must not be blank");
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, "{\"brief\":null}", "brief",
                 "is required");
    expect_field(srv.port, "POST", "/v2/runs/start", AE_JSON_KEY, "{}", "brief", "is required");
    snprintf(body, sizeof body, "{\"brief\":\"x\",\"user_id\":\"%s\"}", u129);
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, body, "user_id",
                 "must be at most 128 characters");
    snprintf(body, sizeof body, "{\"brief\":\"x\",\"telegram_chat_id\":\"%s\"}", t65);
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, body, "telegram_chat_id",
                 "must be at most 64 characters");
    snprintf(body, sizeof body, "{\"brief\":\"x\",\"workflow\":\"%s\"}", w65);
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY, body, "workflow", NULL);
    expect_field(srv.port, "POST", "/v2/runs/start", AE_JSON_KEY, "{\"brief\":\"x\",\"project\":7}",
                 "project", NULL);
    /* a well-formed name that is no project */
    AE_ERR(srv.port, "POST", "/v2/runs/start", AE_JSON_KEY,
           "{\"brief\":\"x\",\"project\":\"ghost\"}", 404, "not_found",
           "Workflow 'ghost' not found");
    /* Idempotency-Key: 1-255 printable characters */
    snprintf(hdr, sizeof hdr, AE_JSON_KEY "Idempotency-Key: %s\r\n", k256);
    expect_field(srv.port, "POST", "/v1/runs/start", hdr, "{\"brief\":\"x\"}", "Idempotency-Key",
                 NULL);
    expect_field(srv.port, "POST", "/v1/runs/start", AE_JSON_KEY "Idempotency-Key: a b\r\n",
                 "{\"brief\":\"x\"}", "Idempotency-Key", NULL);
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM runs"), 0,
                 "no refused start created a run");

    char *id = ae_start_run(srv.port, "{\"project\":\"motivational\",\"brief\":\"fields\"}");
    char p[128];
    snprintf(p, sizeof p, "/v1/runs/%s/approve", id);
    snprintf(body, sizeof body, "{\"gate\":\"ideation\",\"comment\":\"%s\"}", c2001);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, body, "comment",
                 "must be at most 2000 characters");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"gate\":7}", "gate",
                 "must be ideation or publish");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{}", "gate", "is required");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"gate\":\"publish\",\"approved\":0}",
                 "approved", "must be a boolean");
    snprintf(p, sizeof p, "/v1/runs/%s/cancel", id);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"reason\":5}", "reason", "must be a string");
    snprintf(p, sizeof p, "/v1/runs/%s/feedback", id);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{}", "rating", "is required");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"rating\":\"5\"}", "rating",
                 "must be 1 or 5");
    snprintf(body, sizeof body, "{\"rating\":1,\"comment\":\"%s\"}", c2001);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, body, "comment",
                 "must be at most 2000 characters");
    snprintf(p, sizeof p, "/v2/runs/%s/approve", id);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"approved\":true,\"data\":[1]}", "data",
                 "must be an object");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"approved\":true,\"interrupt_id\":5}",
                 "interrupt_id", NULL);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"approved\":\"true\"}", "approved",
                 "must be a boolean");
    snprintf(p, sizeof p, "/v2/runs/%s/reject", id);
    snprintf(body, sizeof body, "{\"comment\":\"%s\"}", c2001);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, body, "comment",
                 "must be at most 2000 characters");
    snprintf(p, sizeof p, "/v2/runs/%s/resume", id);
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"approve_publish\":\"yes\"}",
                 "approve_publish", "must be a boolean");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"force\":1}", "force", "must be a boolean");
    expect_field(srv.port, "POST", p, AE_JSON_KEY, "{\"action\":1}", "action", "must be a string");
    AE_ERR(srv.port, "POST", p, AE_JSON_KEY, "{\"action\":\"rewind\"}", 400, "bad_request",
           "Unknown resume action: rewind");
    snprintf(p, sizeof p, "/v1/runs/%s/events", id);
    expect_field(srv.port, "GET", p, AE_KEY "Last-Event-ID: abc\r\n", NULL, "Last-Event-ID", NULL);
    /* query parameters */
    expect_field(srv.port, "GET", "/v1/runs?limit=201", AE_KEY, NULL, "limit", NULL);
    expect_field(srv.port, "GET", "/v1/runs?limit=x", AE_KEY, NULL, "limit", NULL);
    expect_field(srv.port, "GET", "/v1/runs?workflow=Bad", AE_KEY, NULL, "workflow", NULL);
    expect_field(srv.port, "GET", "/admin/jobs?state=bogus", AE_KEY, NULL, "state", NULL);
    expect_field(srv.port, "GET", "/admin/jobs?limit=0", AE_KEY, NULL, "limit", NULL);
    expect_field(srv.port, "GET", "/admin/dlq?unresolved_only=maybe", AE_KEY, NULL,
                 "unresolved_only", NULL);
    expect_field(srv.port, "GET", "/health/stuck-runs?timeout_minutes=abc", NULL, NULL,
                 "timeout_minutes", NULL);
    expect_field(srv.port, "POST", "/health/cleanup-stuck-runs?dry_run=maybe", AE_KEY, NULL,
                 "dry_run", "must be true or false");
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runs WHERE id = '%s' AND status IN ('rejected','cancelled')",
             id);
    cr_assert_eq(ae_db_count(&srv, sql), 0, "no refused decision changed the run");
    cr_assert_eq(ae_db_count(&srv, "SELECT count(*) FROM feedback"), 0);
    free(id);
    free(b10001);
    free(c2001);
    free(u129);
    free(t65);
    free(w65);
    free(k256);
}
