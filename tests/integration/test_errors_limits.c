/*
 * Integration: the 429 answers of api.md §3 over real HTTP. The rate limits (RUN_RATE_LIMIT on
 * both start routes, APPROVE_RATE_LIMIT on approve, reject, resume and cancel,
 * PUBLIC_DEMO_RATE_LIMIT per client IP) with their body fields and Retry-After header, the
 * keying by API key, requests refused by auth or validation consuming nothing, and the run
 * budget on the v2 start route. tests/integration/ERRORS.md maps every error to its test.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/apierr.h"

#define KEY_A "X-API-Key: key-a\r\n" AE_JSON
#define KEY_B "X-API-Key: key-b\r\n" AE_JSON

/* A 429 rate_limited answer: fields and header agree, the wait is within the period. */
static void expect_limited(int port, const char *method, const char *path, const char *headers,
                           const char *body, const char *limit, int period_s) {
    struct resp r;
    json_t *j =
        ae_error(port, method, path, headers, body, 429, "rate_limited", "Rate limit exceeded", &r);
    json_t *ra = json_object_get(j, "retry_after_seconds");
    cr_assert(json_is_integer(ra), "retry_after_seconds is an integer: %s", r.body);
    cr_assert(json_integer_value(ra) >= 1 && json_integer_value(ra) <= period_s, "%s", r.body);
    cr_assert_str_eq(ae_str(j, "limit"), limit);
    char v[32];
    cr_assert(resp_header(&r, "Retry-After", v, sizeof v), "a Retry-After header");
    cr_assert_eq(atoll(v), json_integer_value(ra), "the header and the body agree: %s / %s", v,
                 r.body);
    json_decref(j);
    resp_free(&r);
}

static int status_of(int port, const char *method, const char *path, const char *headers,
                     const char *body) {
    int st;
    json_decref(ae_call(port, method, path, headers, body, &st));
    return st;
}

Test(errors_limits, run_rate_limit_covers_both_start_routes_per_api_key, .timeout = 60) {
    struct server s;
    const char *env[] = {"API_KEYS=key-a,key-b", "RUN_RATE_LIMIT=2/hour", "V2_WAIT_MS=0", NULL};
    ae_start(&s, env);
    const char *body = "{\"project\":\"motivational\",\"brief\":\"rate me\"}";
    /* refused by auth or validation: no token taken */
    for (int i = 0; i < 3; i++) {
        AE_ERR(s.port, "POST", "/v1/runs/start", AE_JSON, body, 401, "unauthorized",
               "Missing API key");
        AE_ERR(s.port, "POST", "/v1/runs/start", KEY_A, "{}", 422, "validation_error", NULL);
        AE_ERR(s.port, "POST", "/v2/runs/start", KEY_A, "{\"brief\":7}", 422, "validation_error",
               NULL);
    }
    cr_assert_eq(status_of(s.port, "POST", "/v1/runs/start", KEY_A, body), 200);
    cr_assert_eq(status_of(s.port, "POST", "/v2/runs/start", KEY_A, body), 200,
                 "v2 takes from the same bucket");
    expect_limited(s.port, "POST", "/v1/runs/start", KEY_A, body, "2 per 1 hour", 3600);
    expect_limited(s.port, "POST", "/v2/runs/start", KEY_A, body, "2 per 1 hour", 3600);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 2,
                 "a limited start creates nothing");
    /* another API key has its own bucket */
    cr_assert_eq(status_of(s.port, "POST", "/v1/runs/start", KEY_B, body), 200);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 3);
    /* other routes are not limited by it */
    cr_assert_eq(status_of(s.port, "GET", "/v1/runs", KEY_A, NULL), 200);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(errors_limits, approve_rate_limit_covers_approve_reject_resume_and_cancel, .timeout = 60) {
    struct server s;
    const char *env[] = {"API_KEYS=key-a,key-b", "APPROVE_RATE_LIMIT=4/hour", "V2_WAIT_MS=0", NULL};
    ae_start(&s, env);
    int st;
    json_t *j = ae_call(s.port, "POST", "/v1/runs/start", KEY_A,
                        "{\"project\":\"motivational\",\"brief\":\"gate\"}", &st);
    cr_assert_eq(st, 200);
    char id[64], p_approve[128], p_cancel[128], p_v2a[128], p_hitl[128], p_reject[128],
        p_resume[128];
    snprintf(id, sizeof id, "%s", ae_str(j, "run_id"));
    json_decref(j);
    snprintf(p_approve, sizeof p_approve, "/v1/runs/%s/approve", id);
    snprintf(p_cancel, sizeof p_cancel, "/v1/runs/%s/cancel", id);
    snprintf(p_v2a, sizeof p_v2a, "/v2/runs/%s/approve", id);
    snprintf(p_hitl, sizeof p_hitl, "/v2/runs/%s/approve/hitl", id);
    snprintf(p_reject, sizeof p_reject, "/v2/runs/%s/reject", id);
    snprintf(p_resume, sizeof p_resume, "/v2/runs/%s/resume", id);
    /* validation and auth refusals take nothing */
    for (int i = 0; i < 5; i++) {
        AE_ERR(s.port, "POST", p_approve, KEY_A, "{}", 422, "validation_error", NULL);
        AE_ERR(s.port, "POST", p_v2a, KEY_A, "{}", 422, "validation_error", NULL);
        AE_ERR(s.port, "POST", p_resume, KEY_A, "{\"force\":\"yes\"}", 422, "validation_error",
               NULL);
        AE_ERR(s.port, "POST", p_cancel, "X-API-Key: wrong\r\n" AE_JSON, "{}", 401, "unauthorized",
               "Invalid API key");
    }
    /* four decisions of any kind take the four tokens (a 409 or 400 answer is a decision too) */
    cr_assert_eq(status_of(s.port, "POST", p_approve, KEY_A, "{\"gate\":\"publish\"}"), 409);
    cr_assert_eq(status_of(s.port, "POST", p_resume, KEY_A, "{\"action\":\"auto\"}"), 200);
    int a = status_of(s.port, "POST", p_v2a, KEY_A,
                      "{\"approved\":true,\"interrupt_id\":\"gate:nope\"}");
    cr_assert(a == 400 || a == 409, "v2 approve of an unknown interrupt: %d", a);
    a = status_of(s.port, "POST", p_hitl, KEY_A,
                  "{\"approved\":true,\"interrupt_id\":\"gate:nope\"}");
    cr_assert(a == 400 || a == 409, "hitl alias: %d", a);
    /* the fifth, whatever the route, is refused and changes nothing */
    expect_limited(s.port, "POST", p_reject, KEY_A, "{\"comment\":\"no\"}", "4 per 1 hour", 3600);
    expect_limited(s.port, "POST", p_cancel, KEY_A, "{}", "4 per 1 hour", 3600);
    expect_limited(s.port, "POST", p_approve, KEY_A, "{\"gate\":\"ideation\"}", "4 per 1 hour",
                   3600);
    expect_limited(s.port, "POST", p_hitl, KEY_A, "{\"approved\":false}", "4 per 1 hour", 3600);
    expect_limited(s.port, "POST", p_resume, KEY_A, "{}", "4 per 1 hour", 3600);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runs WHERE id = '%s' AND status IN ('rejected', 'cancelled')",
             id);
    cr_assert_eq(ae_db_count(&s, sql), 0, "the limited decisions changed nothing");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM audit_log"), 0);
    /* reads are not limited; another API key has its own bucket */
    snprintf(sql, sizeof sql, "/v1/runs/%s", id);
    cr_assert_eq(status_of(s.port, "GET", sql, KEY_A, NULL), 200);
    j = ae_call(s.port, "POST", p_cancel, KEY_B, "{}", &st);
    cr_assert_eq(st, 200, "key-b's bucket is full");
    cr_assert_str_eq(ae_str(j, "status"), "cancelled");
    json_decref(j);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(errors_limits, public_demo_writes_are_limited_per_client_ip, .timeout = 60) {
    struct server s;
    const char *env[] = {"PUBLIC_DEMO_ENABLED=true", "PUBLIC_DEMO_RATE_LIMIT=2/hour",
                         "PUBLIC_DEMO_CORS_ORIGINS=https://demo.example", NULL};
    ae_start(&s, env);
    const char *body = "{\"brief\":\"a demo brief\"}";
    for (int i = 0; i < 3; i++) {
        AE_ERR(s.port, "POST", "/v1/public/demo/start", AE_JSON, "{}", 422, "validation_error",
               NULL);
        /* a bad Idempotency-Key is a validation error too: before the rate limit (api.md §1) */
        AE_ERR(s.port, "POST", "/v1/public/demo/start", AE_JSON "Idempotency-Key: a b\r\n", body,
               422, "validation_error", NULL);
    }
    cr_assert_eq(status_of(s.port, "POST", "/v1/public/demo/start", AE_JSON, body), 200);
    cr_assert_eq(status_of(s.port, "POST", "/v1/public/demo/start", AE_JSON, body), 200);
    expect_limited(s.port, "POST", "/v1/public/demo/start", AE_JSON, body, "2 per 1 hour", 3600);
    /* the browser may read the refusal: CORS on the 429 too */
    struct resp r;
    json_decref(ae_error(s.port, "POST", "/v1/public/demo/start",
                         AE_JSON "Origin: https://demo.example\r\n", body, 429, "rate_limited",
                         "Rate limit exceeded", &r));
    char v[100];
    cr_assert(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v), "%s", r.head);
    cr_assert_str_eq(v, "https://demo.example");
    cr_assert(resp_header(&r, "Retry-After", v, sizeof v));
    resp_free(&r);
    /* keyed by the client's address: an API key on a public route does not open a new bucket */
    expect_limited(s.port, "POST", "/v1/public/demo/start", AE_JSON_KEY, body, "2 per 1 hour",
                   3600);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 2);
    /* the public limit is not the API's: authenticated starts still pass */
    cr_assert_eq(status_of(s.port, "POST", "/v1/runs/start", AE_JSON_KEY,
                           "{\"project\":\"motivational\",\"brief\":\"x\"}"),
                 200);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(errors_limits, run_budget_refuses_v2_starts_too_before_the_safety_check, .timeout = 60) {
    struct server s;
    const char *env[] = {"MAX_RUNS_LAST_24H=1", "V2_WAIT_MS=0", NULL};
    ae_start(&s, env);
    const char *body = "{\"workflow\":\"motivational\",\"brief\":\"budget\"}";
    cr_assert_eq(status_of(s.port, "POST", "/v2/runs/start", AE_JSON_KEY, body), 200);
    const char *runs = "Run budget exceeded (max_runs_last_24h). Please retry later.";
    AE_ERR(s.port, "POST", "/v2/runs/start", AE_JSON_KEY, body, 429, "budget_exceeded", runs);
    AE_ERR(s.port, "POST", "/v1/runs/start", AE_JSON_KEY, body, 429, "budget_exceeded", runs);
    /* processing order (api.md §1): the budget (429) before the safety check (400) */
    AE_ERR(s.port, "POST", "/v2/runs/start", AE_JSON_KEY,
           "{\"workflow\":\"motivational\",\"brief\":\"a bomb\"}", 429, "budget_exceeded", runs);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    const char *cost_env[] = {"MAX_RUNS_LAST_24H=0", "DAILY_COST_BUDGET_USD=1",
                              "ESTIMATED_COST_PER_RUN_USD=0.5", "V2_WAIT_MS=0", NULL};
    ae_start(&s, cost_env);
    cr_assert_eq(status_of(s.port, "POST", "/v2/runs/start", AE_JSON_KEY, body), 200,
                 "0.5 of 1 USD");
    cr_assert_eq(status_of(s.port, "POST", "/v1/runs/start", AE_JSON_KEY, body), 200,
                 "1.0 of 1 USD is not over");
    AE_ERR(s.port, "POST", "/v2/runs/start", AE_JSON_KEY, body, 429, "budget_exceeded",
           "Daily cost budget exceeded; try again tomorrow.");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 2,
                 "MAX_RUNS_LAST_24H=0 disables the count check only");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
