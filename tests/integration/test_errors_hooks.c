/*
 * Integration: the error answers of the webhooks (api.md §6), the public demo (§8), the
 * production refusals (§2, runtime.md §6) and the `myloware runs reject` command against a
 * live server, over real HTTP. Refused deliveries are checked to store nothing.
 * tests/integration/ERRORS.md maps every error of api.md to its test.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/webhook.h"
#include "support/apierr.h"

#define EVENT                                                                                      \
    "{\"id\":\"evt_1\",\"object\":\"event\",\"created_at\":1,\"type\":\"video.completed\","        \
    "\"data\":{\"id\":\"video_x\"}}"

/* A Standard Webhooks delivery with the given header lines (NULL: leave the header out). */
static json_t *deliver(int port, const char *query, const char *id, const char *ts, const char *sig,
                       const char *body, int *status) {
    char h[1200], path[200];
    int n = snprintf(h, sizeof h, AE_JSON);
    if (id)
        n += snprintf(h + n, sizeof h - (size_t)n, "webhook-id: %s\r\n", id);
    if (ts)
        n += snprintf(h + n, sizeof h - (size_t)n, "webhook-timestamp: %s\r\n", ts);
    if (sig)
        snprintf(h + n, sizeof h - (size_t)n, "webhook-signature: %s\r\n", sig);
    snprintf(path, sizeof path, "/v1/webhooks/sora%s", query);
    return ae_call(port, "POST", path, h, body, status);
}

static void sign(const char *id, long long ts, const char *body, char *out, size_t cap) {
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(AE_SECRET, id, ts, body, strlen(body), sig), 0);
    snprintf(out, cap, "%s", sig);
}

static void expect_err_json(json_t *j, int st, int want, const char *code, const char *detail) {
    char *d = j ? json_dumps(j, 0) : strdup("(not JSON)");
    cr_assert_eq(st, want, "status %d, want %d: %s", st, want, d);
    cr_assert_str_eq(ae_str(j, "error"), code, "%s", d);
    if (detail)
        cr_assert_str_eq(ae_str(j, "detail"), detail, "%s", d);
    cr_assert_not_null(ae_str(j, "request_id"), "%s", d);
    free(d);
    json_decref(j);
}

/* deliver() with the arguments in parentheses, then expect_err_json(want, code, detail). */
#define DELIVER_ERR(args, want, code, detail)                                                      \
    do {                                                                                           \
        int st_;                                                                                   \
        json_t *j_ = deliver_st(&st_, DEL_UNPACK args);                                            \
        expect_err_json(j_, st_, want, code, detail);                                              \
    } while (0)
#define DEL_UNPACK(...) __VA_ARGS__

static json_t *deliver_st(int *status, int port, const char *query, const char *id, const char *ts,
                          const char *sig, const char *body) {
    return deliver(port, query, id, ts, sig, body, status);
}

Test(errors_hooks, sora_webhook_signature_refusals_store_nothing, .timeout = 60) {
    struct server s;
    ae_start(&s, NULL);
    long long now = (long long)time(NULL);
    char ts[32], sig[200], two[420];
    snprintf(ts, sizeof ts, "%lld", now);
    sign("msg_a", now, EVENT, sig, sizeof sig);
    const char *bad = "Invalid webhook signature";
    DELIVER_ERR((s.port, "", NULL, ts, sig, EVENT), 401, "invalid_signature", bad);
    DELIVER_ERR((s.port, "", "msg_a", NULL, sig, EVENT), 401, "invalid_signature", bad);
    DELIVER_ERR((s.port, "", "msg_a", ts, NULL, EVENT), 401, "invalid_signature", bad);
    DELIVER_ERR((s.port, "", "msg_a", "12abc", sig, EVENT), 401, "invalid_signature", bad);
    DELIVER_ERR((s.port, "", "msg_b", ts, sig, EVENT), 401, "invalid_signature", bad);
    /* the body changed after signing */
    DELIVER_ERR((s.port, "", "msg_a", ts, sig, EVENT " "), 401, "invalid_signature", bad);
    /* only other versions: skipped, so nothing matches */
    snprintf(two, sizeof two, "v2,%s v1a,%s", sig + 3, sig + 3);
    DELIVER_ERR((s.port, "", "msg_a", ts, two, EVENT), 401, "invalid_signature", bad);
    /* the signature is checked before the body is parsed */
    sign("msg_c", now, "not json", sig, sizeof sig);
    DELIVER_ERR((s.port, "", "msg_c", ts, "v1,AAAA", "not json"), 401, "invalid_signature", bad);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0,
                 "no refused delivery was stored");
    /* after the signature: the body and the legacy envelope's query */
    DELIVER_ERR((s.port, "", "msg_c", ts, sig, "not json"), 400, "invalid_json", "Invalid JSON");
    const char *legacy =
        "{\"code\":200,\"msg\":\"ok\",\"data\":{\"taskId\":\"t1\",\"state\":\"success\"}}";
    sign("msg_d", now, legacy, sig, sizeof sig);
    DELIVER_ERR((s.port, "?run_id=abc", "msg_d", ts, sig, legacy), 400, "bad_request",
                "Invalid run_id");
    const char *no_task = "{\"code\":200,\"data\":{}}";
    sign("msg_e", now, no_task, sig, sizeof sig);
    DELIVER_ERR((s.port, "?run_id=" AE_NO_RUN, "msg_e", ts, sig, no_task), 400, "bad_request",
                "Missing data.taskId");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(errors_hooks, webhooks_without_a_secret_are_500_and_bodies_over_256k_are_413, .timeout = 60) {
    struct server s;
    const char *env[] = {"OPENAI_WEBHOOK_SECRET=", NULL}; /* set to "": stays unset */
    ae_start(&s, env);
    long long now = (long long)time(NULL);
    char ts[32], sig[200];
    snprintf(ts, sizeof ts, "%lld", now);
    sign("msg_a", now, EVENT, sig, sizeof sig);
    DELIVER_ERR((s.port, "", "msg_a", ts, sig, EVENT), 500, "internal_error",
                "OPENAI_WEBHOOK_SECRET is not configured");
    AE_ERR(s.port, "POST", "/v1/webhooks/remotion?run_id=" AE_NO_RUN,
           AE_JSON "X-Remotion-Signature: sha512=00\r\n", "{}", 500, "internal_error",
           "REMOTION_WEBHOOK_SECRET is not configured");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0,
                 "never accept unsigned deliveries");
    /* WEBHOOK_MAX_BODY_BYTES (256 KiB) on both webhooks, answered before the body is read */
    const char *paths[] = {"/v1/webhooks/sora", "/v1/webhooks/remotion?run_id=" AE_NO_RUN};
    for (int i = 0; i < 2; i++) {
        int fd = h_connect(s.port);
        cr_assert(fd >= 0);
        cr_assert(h_sendf(fd,
                          "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: "
                          "application/json\r\nContent-Length: 262145\r\n\r\n",
                          paths[i]));
        struct resp r;
        cr_assert(h_read(fd, &r, 10000), "413 before the body");
        json_decref(ae_check_error(&r, 413, "payload_too_large", NULL));
        char v[32];
        cr_assert(resp_header(&r, "Connection", v, sizeof v));
        cr_assert_str_eq(v, "close");
        resp_free(&r);
        close(fd);
    }
    /* the 1 MiB limit of the other routes is not the webhooks' one */
    char *big = malloc(300 * 1024 + 32);
    int n = sprintf(big, "{\"brief\":\"");
    memset(big + n, 'a', 300 * 1024);
    strcpy(big + n + 300 * 1024, "\"}");
    AE_ERR(s.port, "POST", "/v1/runs/start", AE_JSON_KEY, big, 422, "validation_error", NULL);
    free(big);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

#define RSECRET "remotion-errors-secret"

static void remotion(int port, const char *query, const char *body, bool signed_, int want,
                     const char *code, const char *detail) {
    char h[400] = AE_JSON, path[200];
    if (signed_) {
        char sig[WEBHOOK_REMOTION_SIG_LEN];
        cr_assert_eq(webhook_sign_remotion(RSECRET, body, strlen(body), sig), 0);
        snprintf(h, sizeof h, AE_JSON "webhook-signature: %s\r\n",
                 sig); /* the alternative header */
    }
    snprintf(path, sizeof path, "/v1/webhooks/remotion%s", query);
    AE_ERR(port, "POST", path, h, body, want, code, detail);
}

Test(errors_hooks, remotion_callback_refusals, .timeout = 60) {
    struct server s;
    const char *env[] = {"REMOTION_WEBHOOK_SECRET=" RSECRET, NULL};
    ae_start(&s, env);
    const char *ok = "{\"job_id\":\"j1\",\"status\":\"done\",\"output_url\":\"http://x/y.mp4\"}";
    remotion(s.port, "?run_id=" AE_NO_RUN, ok, false, 401, "invalid_signature",
             "Missing webhook signature");
    AE_ERR(s.port, "POST", "/v1/webhooks/remotion?run_id=" AE_NO_RUN,
           AE_JSON "X-Remotion-Signature: sha512=zz\r\n", ok, 401, "invalid_signature",
           "Invalid webhook signature");
    remotion(s.port, "", ok, true, 400, "bad_request", "Missing run_id query parameter");
    remotion(s.port, "?run_id=nope", ok, true, 400, "bad_request", "Invalid run_id");
    remotion(s.port, "?run_id=" AE_NO_RUN, "{\"job_id\":", true, 400, "invalid_json",
             "Invalid JSON");
    remotion(s.port, "?run_id=" AE_NO_RUN, "{\"status\":\"done\"}", true, 400, "bad_request",
             "Missing job_id");
    remotion(s.port, "?run_id=" AE_NO_RUN, "{\"job_id\":\"j1\",\"status\":\"odd\"}", true, 400,
             "bad_request", "Unknown status");
    remotion(s.port, "?run_id=" AE_NO_RUN, ok, true, 404, "not_found", "Run not found");
    char *id = ae_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"no render yet\"}");
    char q[100];
    snprintf(q, sizeof q, "?run_id=%s", id);
    remotion(s.port, q, ok, true, 400, "bad_request", "Unknown job_id: j1");
    /* an over-long job_id is no job of the run's: its first 200 characters are echoed */
    char longid[251], body[2400], want[300];
    memset(longid, 'k', 250);
    longid[250] = '\0';
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"status\":\"done\",\"output_url\":\"http://x/y.mp4\"}", longid);
    snprintf(want, sizeof want, "Unknown job_id: %.200s", longid);
    remotion(s.port, q, body, true, 400, "bad_request", want);
    remotion(s.port, "?run_id=" AE_NO_RUN, body, true, 404, "not_found", "Run not found");
    /* an over-long output_url is there but invalid */
    char longurl[2101];
    memcpy(longurl, "http://x/", 9);
    memset(longurl + 9, 'u', sizeof longurl - 10);
    longurl[sizeof longurl - 1] = '\0';
    snprintf(body, sizeof body, "{\"job_id\":\"j1\",\"status\":\"done\",\"output_url\":\"%s\"}",
             longurl);
    remotion(s.port, q, body, true, 400, "bad_request", "Invalid output_url");
    remotion(s.port, q, "{\"job_id\":\"j1\",\"status\":\"done\"}", true, 400, "bad_request",
             "Missing output_url");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the public demo ----------------------------------------------------------------------------
 */

Test(errors_hooks, public_demo_disabled_is_404_on_every_route, .timeout = 60) {
    struct server s;
    ae_start(&s, NULL);
    const char *tok = "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz012345";
    char p[200];
    const char *d = "Public demo is disabled";
    AE_ERR(s.port, "POST", "/v1/public/demo/start", AE_JSON, "{\"brief\":\"x\"}", 404, "not_found",
           d);
    AE_ERR(s.port, "OPTIONS", "/v1/public/demo/start", "Origin: https://a.example\r\n", NULL, 404,
           "not_found", d);
    AE_ERR(s.port, "GET", tok, NULL, NULL, 404, "not_found", d);
    snprintf(p, sizeof p, "%s/approve", tok);
    AE_ERR(s.port, "POST", p, AE_JSON, "{}", 404, "not_found", d);
    snprintf(p, sizeof p, "%s/reject", tok);
    AE_ERR(s.port, "POST", p, AE_JSON, "{}", 404, "not_found", d);
    snprintf(p, sizeof p, "%s/rendered_video", tok);
    AE_ERR(s.port, "GET", p, NULL, NULL, 404, "not_found", d);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    const char *env[] = {"PUBLIC_DEMO_ENABLED=true", "PUBLIC_DEMO_ALLOWED_WORKFLOWS=aismr", NULL};
    ae_start(&s, env);
    AE_ERR(s.port, "POST", "/v1/public/demo/start", AE_JSON, "{\"brief\":\"x\"}", 403, "forbidden",
           "Workflow not available for public demo");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

static json_t *demo_until(int port, const char *token, const char *want, int ms) {
    char path[160];
    snprintf(path, sizeof path, "/v1/public/demo/runs/%s", token);
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        int st;
        json_t *j = ae_call(port, "GET", path, NULL, NULL, &st);
        cr_assert_eq(st, 200);
        if (strcmp(ae_str(j, "status"), want) == 0)
            return j;
        cr_assert(h_now_ms() < deadline, "demo run is %s, waited for %s", ae_str(j, "status"),
                  want);
        json_decref(j);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
}

Test(errors_hooks, public_demo_refusals_with_cors_on_the_errors, .timeout = 60) {
    struct server s;
    const char *env[] = {"PUBLIC_DEMO_ENABLED=true",
                         "PUBLIC_DEMO_CORS_ORIGINS=https://demo.example", NULL};
    ae_start(&s, env);
    const char *h = AE_JSON "Origin: https://demo.example\r\n";
    char *b4001 = malloc(4100), *n81 = malloc(200), *c241 = malloc(300), body[4200];
    memset(b4001, 'b', 4001);
    b4001[4001] = '\0';
    memset(n81, 'n', 81);
    n81[81] = '\0';
    memset(c241, 'c', 241);
    c241[241] = '\0';
    struct resp r;
    snprintf(body, sizeof body, "{\"brief\":\"%s\"}", b4001);
    json_t *j = ae_error(s.port, "POST", "/v1/public/demo/start", h, body, 422, "validation_error",
                         NULL, &r);
    cr_assert_str_eq(ae_str(json_array_get(json_object_get(j, "fields"), 0), "field"), "brief");
    char v[100];
    cr_assert(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v),
              "the browser may read the error");
    cr_assert_str_eq(v, "https://demo.example");
    resp_free(&r);
    json_decref(j);
    AE_ERR(s.port, "POST", "/v1/public/demo/start", h, "{}", 422, "validation_error", NULL);
    snprintf(body, sizeof body, "{\"brief\":\"x\",\"name\":\"%s\"}", n81);
    j = ae_error(s.port, "POST", "/v1/public/demo/start", h, body, 422, "validation_error", NULL,
                 NULL);
    cr_assert_str_eq(ae_str(json_array_get(json_object_get(j, "fields"), 0), "field"), "name");
    json_decref(j);
    j = ae_error(s.port, "POST", "/v1/public/demo/start", h, "{\"brief\":\"bombs away\"}", 400,
                 "content_blocked", NULL, NULL);
    cr_assert_str_eq(ae_str(j, "reason"), "matched_keyword:bomb");
    json_decref(j);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 0, "no refused start created a run");

    /* tokens: malformed and unknown */
    AE_ERR(s.port, "GET", "/v1/public/demo/runs/short", NULL, NULL, 404, "not_found",
           "Run not found");
    AE_ERR(s.port, "GET", "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz01234!", NULL, NULL, 404,
           "not_found", "Run not found");
    AE_ERR(s.port, "POST", "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz012345/approve", AE_JSON,
           "{}", 404, "not_found", "Run not found");
    AE_ERR(s.port, "GET", "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz012345/rendered_video",
           NULL, NULL, 404, "not_found", "Run not found");

    int st;
    j = ae_call(s.port, "POST", "/v1/public/demo/start", h, "{\"brief\":\"a quiet morning\"}", &st);
    cr_assert_eq(st, 200);
    char token[64], p[200];
    snprintf(token, sizeof token, "%s", ae_str(j, "public_token"));
    json_decref(j);
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/rendered_video", token);
    AE_ERR(s.port, "GET", p, NULL, NULL, 404, "not_found", "Video not found");
    json_decref(demo_until(s.port, token, "awaiting_ideation_approval", 30000));
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/approve", token);
    snprintf(body, sizeof body, "{\"comment\":\"%s\"}", c241);
    j = ae_error(s.port, "POST", p, h, body, 422, "validation_error", NULL, NULL);
    cr_assert_str_eq(ae_str(json_array_get(json_object_get(j, "fields"), 0), "field"), "comment");
    json_decref(j);
    j = ae_error(s.port, "POST", p, h, "{\"comment\":\"shoot it\"}", 400, "content_blocked", NULL,
                 NULL);
    cr_assert_str_eq(ae_str(j, "reason"), "matched_keyword:shoot");
    json_decref(j);
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/reject", token);
    j = ae_call(s.port, "POST", p, h, "{\"comment\":\"not for me\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ae_str(j, "status"), "rejected");
    json_decref(j);
    AE_ERR(s.port, "POST", p, h, "{}", 400, "bad_request", "Run is not awaiting approval");
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/approve", token);
    AE_ERR(s.port, "POST", p, h, "{}", 400, "bad_request", "Run is not awaiting approval");

    /* an expired token is 404 on every route (the expiry moved into the past) */
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE runs SET public_expires_at = 1 WHERE public_token = '%s' RETURNING 1", token);
    cr_assert_eq(ae_db_count(&s, sql), 1);
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s", token);
    AE_ERR(s.port, "GET", p, NULL, NULL, 404, "not_found", "Run not found");
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/approve", token);
    AE_ERR(s.port, "POST", p, AE_JSON, "{}", 404, "not_found", "Run not found");
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/rendered_video", token);
    AE_ERR(s.port, "GET", p, NULL, NULL, 404, "not_found", "Run not found");
    free(b4001);
    free(n81);
    free(c241);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- production refusals
 * --------------------------------------------------------------------------- */

Test(errors_hooks, production_refuses_to_start_without_a_key_or_a_render_secret) {
    char out[8192];
    const char *serve[] = {"serve", "--host=127.0.0.1", "--port=0",
                           "--database-url=sqlite::memory:", NULL};
    const char *nokey[] = {"ENVIRONMENT=production", "API_KEY=", "API_KEYS=", NULL};
    cr_assert_eq(run_cmd(serve, nokey, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "API_KEY: production needs an API key"), "%s", out);
    const char *check[] = {"config", "check", NULL};
    const char *render[] = {"ENVIRONMENT=production",
                            "API_KEY=s3cret-prod-key",
                            "PROVIDERS=real",
                            "OPENAI_WEBHOOK_SECRET=whsec_abc",
                            "PUBLIC_BASE_URL=https://x.example",
                            "RENDER_PROVIDER=remotion",
                            "REMOTION_SERVICE_URL=https://render.example",
                            NULL};
    cr_assert_eq(run_cmd(check, render, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "REMOTION_WEBHOOK_SECRET"), "%s", out);
    cr_assert_null(strstr(out, "s3cret-prod-key"), "the key leaked: %s", out);
    const char *keys[] = {"ENVIRONMENT=production", "API_KEY=", "API_KEYS=prod-key,dev-api-key",
                          NULL};
    cr_assert_eq(run_cmd(serve, keys, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "dev-api-key"), "the development key is refused in a list too: %s", out);
}

/* ---- myloware runs reject
 * ------------------------------------------------------------------------------ */

Test(errors_hooks, runs_reject_command_against_a_live_server, .timeout = 60) {
    struct server s;
    ae_start(&s, NULL);
    char url[80], out[16384];
    snprintf(url, sizeof url, "MYLOWARE_URL=http://127.0.0.1:%d", s.port);
    const char *env[] = {url, "MYLOWARE_API_KEY=dev-api-key", "LOG_LEVEL=error", NULL};
    char *id = ae_start_run(
        s.port, "{\"project\":\"motivational\",\"brief\":\"reject me from the shell\"}");
    json_decref(ae_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    const char *wrong[] = {url, "MYLOWARE_API_KEY=wrong-key", "LOG_LEVEL=error", NULL};
    const char *rej[] = {"runs", "reject", id, "--comment", "not these ideas", NULL};
    cr_assert_eq(run_cmd(rej, wrong, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "Invalid API key"), "%s", out);
    cr_assert_eq(run_cmd(rej, env, out, sizeof out), 0, "%s", out);
    char want[200];
    snprintf(want, sizeof want, "ideation rejected: run %s is rejected", id);
    cr_assert(strstr(out, want), "%s", out);
    json_t *r = ae_wait_status(s.port, id, "rejected", 1000);
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE target = '%s' AND action = 'gate.rejected' AND "
             "detail LIKE "
             "'%%not these ideas%%'",
             id);
    cr_assert_eq(ae_db_count(&s, sql), 1, "one rejection audited, with its comment");
    /* nothing to reject any more */
    cr_assert_eq(run_cmd(rej, env, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is not waiting at a gate"), "%s", out);
    const char *rej_pub[] = {"runs", "reject", id, "--gate", "publish", NULL};
    cr_assert_eq(run_cmd(rej_pub, env, out, sizeof out), 1, "%s", out);
    snprintf(want, sizeof want, "Run %s is not awaiting publish approval (HTTP 409)", id);
    cr_assert(strstr(out, want), "%s", out);
    const char *unknown[] = {"runs", "reject", AE_NO_RUN, "--gate", "ideation", NULL};
    cr_assert_eq(run_cmd(unknown, env, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "Run not found (HTTP 404)"), "%s", out);
    const char *noid[] = {"runs", "reject", NULL};
    cr_assert_eq(run_cmd(noid, env, out, sizeof out), 2, "%s", out);
    const char *badid[] = {"runs", "reject", "../x", NULL};
    cr_assert_eq(run_cmd(badid, env, out, sizeof out), 2, "%s", out);
    const char *badopt[] = {"runs", "reject", id, "--force", NULL};
    cr_assert_eq(run_cmd(badopt, env, out, sizeof out), 2, "%s", out);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log WHERE target = '%s'", id);
    cr_assert_eq(ae_db_count(&s, sql), 1, "the refused commands changed nothing");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- dead letters and the metrics token
 * ---------------------------------------------------------------- */

Test(errors_hooks, a_resolved_dead_letter_cannot_be_replayed_and_metrics_need_their_token,
     .timeout = 60) {
    struct server s;
    const char *env[] = {"ENVIRONMENT=test", "JOB_MAX_ATTEMPTS=1", "QUEUE_POLL_MS=20",
                         "METRICS_TOKEN=metrics-tok", NULL};
    ae_start(&s, env);
    int st;
    json_decref(ae_call(s.port, "POST", "/_test/jobs", AE_JSON_KEY,
                        "{\"type\":\"test.fail\",\"payload\":{\"fail_times\":9}}", &st));
    cr_assert_eq(st, 200);
    int64_t deadline = h_now_ms() + 20000;
    while (ae_db_count(&s, "SELECT count(*) FROM jobs WHERE state = 'dead'") < 1) {
        cr_assert(h_now_ms() < deadline, "the failing job never died");
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    json_t *l = ae_call(s.port, "GET", "/admin/dlq", AE_KEY, NULL, &st);
    cr_assert_eq(st, 200);
    char id[64], p[200], msg[200];
    snprintf(id, sizeof id, "%s",
             ae_str(json_array_get(json_object_get(l, "dead_letters"), 0), "id"));
    json_decref(l);
    snprintf(p, sizeof p, "/admin/dlq/%s/resolve", id);
    json_decref(ae_call(s.port, "POST", p, AE_KEY, NULL, &st));
    cr_assert_eq(st, 200);
    snprintf(p, sizeof p, "/admin/dlq/%s/replay", id);
    snprintf(msg, sizeof msg, "Dead letter %s is already resolved", id);
    AE_ERR(s.port, "POST", p, AE_KEY, NULL, 409, "conflict", msg);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM jobs WHERE state = 'dead'"), 1,
                 "the refused replay queued nothing");
    /* the test-only job route validates its body too */
    AE_ERR(s.port, "POST", "/_test/jobs", AE_JSON_KEY, "{\"type\":\"run.ideate\"}", 422,
           "validation_error", NULL);
    /* METRICS_TOKEN: Bearer required */
    AE_ERR(s.port, "GET", "/metrics", NULL, NULL, 401, "unauthorized", "Missing metrics token");
    AE_ERR(s.port, "GET", "/metrics", "Authorization: Bearer metrics-to\r\n", NULL, 401,
           "unauthorized", "Invalid metrics token");
    AE_ERR(s.port, "GET", "/metrics", "Authorization: metrics-tok\r\n", NULL, 401, "unauthorized",
           NULL);
    struct resp r;
    cr_assert(
        h_request(s.port, "GET", "/metrics", "Authorization: Bearer metrics-tok\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(errors_hooks, public_demo_writes_take_an_idempotency_key, .timeout = 60) {
    struct server s;
    const char *env[] = {"PUBLIC_DEMO_ENABLED=true",
                         "PUBLIC_DEMO_CORS_ORIGINS=https://demo.example", NULL};
    ae_start(&s, env);
    const char *h = AE_JSON "Origin: https://demo.example\r\nIdempotency-Key: demo-1\r\n";
    const char *body = "{\"brief\":\"one demo only\"}";
    struct resp r1, r2;
    cr_assert(h_request(s.port, "POST", "/v1/public/demo/start", h, body, &r1));
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert(h_request(s.port, "POST", "/v1/public/demo/start", h, body, &r2));
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    char v[100];
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v), "a replay");
    cr_assert_str_eq(v, "true");
    cr_assert(resp_header(&r2, "Access-Control-Allow-Origin", v, sizeof v),
              "the replay keeps CORS");
    cr_assert_str_eq(r2.body, r1.body, "the same token again");
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 1, "a replay creates nothing");
    json_t *j = json_loads(r1.body, 0, NULL);
    char token[64], p[200];
    snprintf(token, sizeof token, "%s", ae_str(j, "public_token"));
    json_decref(j);
    resp_free(&r1);
    resp_free(&r2);
    AE_ERR(s.port, "POST", "/v1/public/demo/start", h, "{\"brief\":\"another demo\"}", 422,
           "idempotency_key_reused", NULL);
    char *k256 = malloc(300), hk[400];
    memset(k256, 'k', 256);
    k256[256] = '\0';
    snprintf(hk, sizeof hk, AE_JSON "Idempotency-Key: %s\r\n", k256);
    free(k256);
    json_t *e = ae_error(s.port, "POST", "/v1/public/demo/start", hk, body, 422, "validation_error",
                         NULL, NULL);
    cr_assert_str_eq(ae_str(json_array_get(json_object_get(e, "fields"), 0), "field"),
                     "Idempotency-Key");
    json_decref(e);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM runs"), 1);
    json_decref(demo_until(s.port, token, "awaiting_ideation_approval", 30000));
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/reject", token);
    const char *rk = AE_JSON "Idempotency-Key: demo-reject-1\r\n";
    int st;
    json_decref(ae_call(s.port, "POST", p, rk, "{\"comment\":\"no\"}", &st));
    cr_assert_eq(st, 200);
    cr_assert(h_request(s.port, "POST", p, rk, "{\"comment\":\"no\"}", &r2));
    cr_assert_eq(r2.status, 200, "a retried rejection is the first answer, not a 400: %s", r2.body);
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    resp_free(&r2);
    /* the same key on another route is another request: reused */
    snprintf(p, sizeof p, "/v1/public/demo/runs/%s/approve", token);
    AE_ERR(s.port, "POST", p, rk, "{\"comment\":\"no\"}", 422, "idempotency_key_reused", NULL);
    cr_assert_eq(ae_db_count(&s, "SELECT count(*) FROM audit_log WHERE action = 'gate.rejected'"),
                 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- a render callback for a run that is no longer waiting for it
 * ------------------------------------ */

Test(errors_hooks, a_render_callback_for_a_cancelled_run, .timeout = 120) {
    /* the render service is a separate fakes process whose callbacks are signed with another
     * secret (our server refuses them), so the run stays in awaiting_render */
    struct server fk, s;
    const char *fenv[] = {"REMOTION_WEBHOOK_SECRET=some-other-secret", "ALLOW_PRIVATE_URLS=true",
                          "RENDER_SCALE=0.1", NULL};
    fakes_start_in(&fk, NULL, fenv);
    char url[120];
    snprintf(url, sizeof url, "REMOTION_SERVICE_URL=http://127.0.0.1:%d/_fake/remotion", fk.port);
    const char *env[] = {"PROVIDERS=real",
                         "LLM_PROVIDER=fake",
                         "SORA_PROVIDER=fake",
                         "PUBLISH_PROVIDER=fake",
                         "RENDER_PROVIDER=remotion",
                         url,
                         "REMOTION_WEBHOOK_SECRET=" RSECRET,
                         "ALLOW_PRIVATE_URLS=true",
                         "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=30",
                         NULL};
    ae_start(&s, env);
    char *id =
        ae_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"render elsewhere\"}");
    json_decref(ae_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    char p[160];
    snprintf(p, sizeof p, "/v1/runs/%s/approve", id);
    int st;
    json_decref(ae_call(s.port, "POST", p, AE_JSON_KEY, "{\"gate\":\"ideation\"}", &st));
    cr_assert_eq(st, 200);
    json_t *r = ae_wait_status(s.port, id, "awaiting_render", 60000);
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT json_extract(context, '$.render_job_id') FROM runs WHERE id = '%s'", id);
    /* awaiting_render comes with the editing step; the job id once the service took the render */
    char job[200] = "";
    int64_t deadline = h_now_ms() + 30000;
    for (ae_db_text(&s, sql, job, sizeof job); !job[0]; ae_db_text(&s, sql, job, sizeof job)) {
        cr_assert(h_now_ms() < deadline, "the render was never submitted");
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    json_decref(ae_wait_status(s.port, id, "awaiting_render", 1000));
    char body[400], q[100];
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"status\":\"done\",\"output_url\":\"http://x.example/y.mp4\"}",
             job);
    snprintf(q, sizeof q, "?run_id=%s", id);
    /* while the run waits, another job's callback is refused */
    remotion(s.port, q,
             "{\"job_id\":\"other\",\"status\":\"done\",\"output_url\":\"http://x/y.mp4\"}", true,
             400, "bad_request", "Unknown job_id: other");
    snprintf(p, sizeof p, "/v1/runs/%s/cancel", id);
    json_decref(ae_call(s.port, "POST", p, AE_JSON_KEY, "{}", &st));
    cr_assert_eq(st, 200);
    /* workflow.md §2: stored and answered 200 ignored; it changes nothing */
    char sig[WEBHOOK_REMOTION_SIG_LEN], h[300], path[200];
    cr_assert_eq(webhook_sign_remotion(RSECRET, body, strlen(body), sig), 0);
    snprintf(h, sizeof h, AE_JSON "X-Remotion-Signature: %s\r\n", sig);
    snprintf(path, sizeof path, "/v1/webhooks/remotion%s", q);
    json_t *j = ae_call(s.port, "POST", path, h, body, &st);
    char *dump = json_dumps(j, 0);
    cr_assert_eq(st, 200, "%s", dump);
    cr_assert_eq(json_object_size(j), 4, "exactly status, run_id, error, output_url: %s", dump);
    cr_assert_str_eq(ae_str(j, "status"), "ignored");
    cr_assert_str_eq(ae_str(j, "run_id"), id);
    cr_assert(json_is_null(json_object_get(j, "error")), "%s", dump);
    cr_assert(json_is_null(json_object_get(j, "output_url")), "%s", dump);
    free(dump);
    json_decref(j);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM webhook_inbox WHERE provider = 'remotion' AND run_id = '%s' AND "
             "status = 'ignored'",
             id);
    cr_assert_eq(ae_db_count(&s, sql), 1, "the callback is stored");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'webhook.remotion'", id);
    cr_assert_eq(ae_db_count(&s, sql), 0, "no work for a cancelled run");
    json_decref(ae_wait_status(s.port, id, "cancelled", 1000));
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    server_stop(&fk, SIGTERM, 20000);
}
