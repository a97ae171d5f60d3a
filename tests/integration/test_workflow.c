/*
 * Integration: the workflow rules of workflow.md and api.md §3 that whole runs alone do not
 * reach, with the real binary, the real SQLite file and the provider fakes over loopback:
 * polling a real video provider that never sends its webhook (sora.poll, against a separate
 * `myloware fakes serve` with FAKE_VIDEO_WEBHOOKS=false), Upload-Post status polling
 * (publish.poll), an agent that answers without its tool call, the run budget before the
 * moderation call, the public demo brief moderated, an expired early delivery, v2
 * idempotency keys and a whole aismr run through v2.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/webhook.h"
#include "support/harness.h"
#include "support/runapi.h"

#define KEY "X-API-Key: dev-api-key\r\n"
#define JSON_KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SMALL "RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1", "FAKE_CLIP_SIZE=96x160"

void fake_hash_id(const char *prefix, const char *text, size_t n, char *out, size_t cap);

/* Sum of the samples of a metric whose line starts with prefix (e.g. `name{provider="safety"`). */
static double metric_sum(int port, const char *prefix) {
    struct resp r;
    cr_assert(h_request(port, "GET", "/metrics", "", NULL, &r));
    cr_assert_eq(r.status, 200);
    double sum = 0;
    size_t n = strlen(prefix);
    for (char *line = r.body; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, prefix, n) == 0) {
            char *sp = strrchr(line, ' ');
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
        line = nl ? nl + 1 : NULL;
    }
    resp_free(&r);
    return sum;
}

static int deliver(int port, const char *id, const char *body, json_t **out) {
    long long ts = (long long)time(NULL);
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(SECRET, id, ts, body, strlen(body), sig), 0);
    char headers[600];
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\r\nwebhook-id: %s\r\nwebhook-timestamp: "
             "%lld\r\nwebhook-signature: %s\r\n",
             id, ts, sig);
    int st;
    json_t *j = ra_call(port, "POST", "/v1/webhooks/sora", headers, body, &st);
    if (out)
        *out = j;
    else
        json_decref(j);
    return st;
}

/* The fake video id of a run's clip (the fake hashes the Idempotency-Key "<run_id>:<index>"). */
static void task_of(const char *run_id, int index, char *out, size_t cap) {
    char key[80];
    snprintf(key, sizeof key, "%s:%d", run_id, index);
    fake_hash_id("video_", key, 32, out, cap);
}

/* ---- sora.poll: a real video provider that never sends its webhook ------------------------------
 */

/* A server whose video provider is real (SORA_PROVIDER=openai) and is a separate fakes process
 * that sends no webhooks: only the status polls can find the clips. */
static void start_polling_pair(struct server *fk, struct server *s, const char *fail_index) {
    const char *fenv[] = {"FAKE_VIDEO_WEBHOOKS=false", SMALL, fail_index, NULL};
    fakes_start_in(fk, NULL, fenv);
    static char base[120];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=http://127.0.0.1:%d/_fake/openai", fk->port);
    const char *env[] = {"SORA_PROVIDER=openai", base,  "OPENAI_API_KEY=sk-test-poll",
                         "SORA_POLL_MS=250",     SMALL, NULL};
    ra_start(s, env);
}

Test(workflow, sora_poll_finds_the_clips_when_no_webhook_comes, .timeout = 120) {
    struct server fk, s;
    start_polling_pair(&fk, &s, "FAKE_VIDEO_FAIL_INDEX=-1");
    char *id =
        ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"nobody calls back\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    json_decref(ra_approve(s.port, id, "ideation"));
    json_t *r = ra_wait_status(s.port, id, "awaiting_publish_approval", 60000);
    json_t *clips = json_object_get(json_object_get(r, "artifacts"), "clips");
    cr_assert_eq(json_array_size(clips), 2, "both clips found by polling");
    json_decref(r);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0, "no webhook came");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'sora.poll'", id);
    cr_assert_geq(ra_db_count(&s, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'video_clip' "
             "AND json_extract(metadata, '$.task_id') LIKE 'video_%%'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 2, "one clip per task, counted once");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'run.edit'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "the last clip moved the run exactly once");
    json_decref(ra_approve(s.port, id, "publish"));
    json_decref(ra_wait_status(s.port, id, "completed", 30000));
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&fk, SIGTERM, 20000), 0);
}

Test(workflow, sora_poll_fails_the_run_on_a_failed_video, .timeout = 120) {
    struct server fk, s;
    start_polling_pair(&fk, &s, "FAKE_VIDEO_FAIL_INDEX=1");
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"one clip breaks\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    json_decref(ra_approve(s.port, id, "ideation"));
    json_t *r = ra_wait_status(s.port, id, "failed", 60000);
    cr_assert_str_eq(
        ra_str(r, "error"),
        "OpenAI Sora error: Video generation failed for clip 1 (FAKE_VIDEO_FAIL_INDEX)");
    json_decref(r);
    /* resume retries the clips (the failed step was the poll): the missing ones are submitted again
     */
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/resume", id);
    int st;
    r = ra_call(s.port, "POST", path, JSON_KEY, "{\"action\":\"retry\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "action"), "videos");
    cr_assert_str_eq(ra_str(r, "message"), "Videos re-submitted (2)",
                     "the failure stopped the run before any clip");
    json_decref(r);
    /* the fake fails that index again: the poll of the resubmitted task fails the run again */
    r = ra_wait_status(s.port, id, "failed", 60000);
    cr_assert_str_eq(
        ra_str(r, "error"),
        "OpenAI Sora error: Video generation failed for clip 1 (FAKE_VIDEO_FAIL_INDEX)");
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'sora.poll'", id);
    cr_assert_geq(ra_db_count(&s, sql), 2, "the resubmitted task is polled too");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&fk, SIGTERM, 20000), 0);
}

/* In fake mode the fake's webhooks bring the clips: no poll is scheduled. */
Test(workflow, no_sora_poll_with_the_fake_video_provider, .timeout = 120) {
    struct server s;
    const char *env[] = {"SORA_POLL_MS=250", "FAKE_VIDEO_DELAY_MS=30", SMALL, NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"webhooks only\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    json_decref(ra_approve(s.port, id, "ideation"));
    json_decref(ra_wait_status(s.port, id, "awaiting_publish_approval", 60000));
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM jobs WHERE type = 'sora.poll'"), 0);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'accepted'"),
                 2);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- publish.poll
 * ---------------------------------------------------------------------------------- */

Test(workflow, publish_poll_waits_for_the_upload_then_completes, .timeout = 120) {
    struct server s;
    const char *env[] = {"FAKE_PUBLISH_PENDING_POLLS=2", "PUBLISH_POLL_MS=100",
                         "FAKE_VIDEO_DELAY_MS=30", SMALL, NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"slow uploads\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    json_decref(ra_approve(s.port, id, "ideation"));
    json_decref(ra_wait_status(s.port, id, "awaiting_publish_approval", 60000));
    json_decref(ra_approve(s.port, id, "publish"));
    json_t *r = ra_wait_status(s.port, id, "completed", 30000);
    const char *pub = ra_str(json_object_get(r, "artifacts"), "published_url");
    cr_assert(pub && strncmp(pub, "https://www.tiktok.com/@", 24) == 0, "published_url %s", pub);
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM run_events WHERE run_id = '%s' AND kind = 'run' AND status = "
             "'awaiting_publish'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "the run waited for the publisher");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'publish.poll' AND state = "
             "'succeeded' "
             "AND attempts <= 1",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "one poll job, its reschedules used no attempt");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'published_url'", id);
    cr_assert_eq(ra_db_count(&s, sql), 1);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- a missing tool call ------------------------------------------------------------------------
 */

Test(workflow, an_agent_without_its_tool_call_fails_the_run, .timeout = 180) {
    static const struct {
        const char *agent, *error;
        bool past_publish_gate;
    } cases[] = {
        {"producer", "Producer did not execute sora_generate tool.", false},
        {"editor", "Editor did not execute remotion_render tool.", false},
        {"publisher", "Publisher did not execute upload_post tool.", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char knob[64];
        snprintf(knob, sizeof knob, "FAKE_LLM_NO_TOOL=%s", cases[i].agent);
        const char *env[] = {knob, "FAKE_VIDEO_DELAY_MS=30", SMALL, NULL};
        struct server s;
        ra_start(&s, env);
        char *id = ra_start_run(
            s.port, "{\"project\":\"motivational\",\"brief\":\"tools are optional, right?\"}");
        json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
        json_decref(ra_approve(s.port, id, "ideation"));
        if (cases[i].past_publish_gate) {
            json_decref(ra_wait_status(s.port, id, "awaiting_publish_approval", 60000));
            json_decref(ra_approve(s.port, id, "publish"));
        }
        json_t *r = ra_wait_status(s.port, id, "failed", 60000);
        cr_assert_str_eq(ra_str(r, "error"), cases[i].error);
        json_decref(r);
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM jobs WHERE run_id = '%s' AND state IN ('queued', 'running')",
                 id);
        cr_assert_eq(ra_db_count(&s, sql), 0, "nothing else runs");
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = '%s'", id,
                 i == 0   ? "clip_manifest"
                 : i == 1 ? "rendered_video"
                          : "published_url");
        cr_assert_eq(ra_db_count(&s, sql), 0, "the step's effects are not committed");
        free(id);
        cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    }
}

/* ---- the run budget comes before the moderation call (api.md §1 processing order)
 * -------------------- */

#define SAFETY_CALLS "myloware_provider_requests_total{provider=\"safety\""

Test(workflow, a_budget_refusal_makes_no_moderation_call, .timeout = 60) {
    struct server s;
    /* the LLM never answers, so the run makes no agent output to moderate meanwhile */
    const char *env[] = {"SAFETY_PROVIDER=openai", "MAX_RUNS_LAST_24H=1",
                         "LLM_PROVIDER=openai",    "LLM_BASE_URL=http://127.0.0.1:1/v1",
                         "LLM_API_KEY=sk-x",       "JOB_RETRY_BASE_S=600",
                         "JOB_RETRY_MAX_S=600",    NULL};
    ra_start(&s, env);
    int st;
    json_decref(ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY,
                        "{\"project\":\"motivational\",\"brief\":\"one\"}", &st));
    cr_assert_eq(st, 200);
    double calls = metric_sum(s.port, SAFETY_CALLS);
    cr_assert_eq(calls, 1, "the first start was moderated");
    /* a brief the moderation would flag: the budget answers first */
    const char *paths[] = {"/v1/runs/start", "/v2/runs/start"};
    for (size_t i = 0; i < 2; i++) {
        json_t *j =
            ra_call(s.port, "POST", paths[i], JSON_KEY,
                    "{\"project\":\"motivational\",\"brief\":\"forbidden-test-phrase\"}", &st);
        ra_expect_error(j, st, 429, "budget_exceeded",
                        "Run budget exceeded (max_runs_last_24h). Please retry later.");
    }
    cr_assert_eq(metric_sum(s.port, SAFETY_CALLS), calls, "no moderation call for refused starts");
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the public demo brief goes through the moderation API too ----------------------------------
 */

Test(workflow, the_public_demo_brief_is_moderated, .timeout = 60) {
    struct server s;
    const char *env[] = {"SAFETY_PROVIDER=openai", "PUBLIC_DEMO_ENABLED=true", NULL};
    ra_start(&s, env);
    int st;
    json_t *j =
        ra_call(s.port, "POST", "/v1/public/demo/start", "Content-Type: application/json\r\n",
                "{\"brief\":\"please say forbidden-test-phrase\"}", &st);
    cr_assert_str_eq(ra_str(j, "reason"), "moderation:violence");
    ra_expect_error(j, st, 400, "content_blocked", NULL);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 0, "a blocked brief makes no run");
    cr_assert_eq(metric_sum(s.port, SAFETY_CALLS), 1);
    j = ra_call(s.port, "POST", "/v1/public/demo/start", "Content-Type: application/json\r\n",
                "{\"brief\":\"a calm sunrise\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_eq(strlen(ra_str(j, "public_token")), 32);
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    /* fail-closed: a moderation API that does not answer is 503 */
    const char *down[] = {"SAFETY_PROVIDER=openai",
                          "PUBLIC_DEMO_ENABLED=true",
                          "PROVIDERS=real",
                          "LLM_PROVIDER=fake",
                          "SORA_PROVIDER=fake",
                          "PUBLISH_PROVIDER=fake",
                          "OPENAI_BASE_URL=http://127.0.0.1:1",
                          "OPENAI_API_KEY=sk-x",
                          "SAFETY_TIMEOUT_MS=2000",
                          NULL};
    ra_start(&s, down);
    j = ra_call(s.port, "POST", "/v1/public/demo/start", "Content-Type: application/json\r\n",
                "{\"brief\":\"a calm sunrise\"}", &st);
    ra_expect_error(j, st, 503, "safety_unavailable", NULL);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- an early delivery older than WEBHOOK_EARLY_TTL_S is not applied
 * ------------------------------ */

Test(workflow, an_expired_early_delivery_is_not_applied, .timeout = 120) {
    struct server s;
    /* TTL 0: every early delivery has expired by the time its task appears; the fake's own
     * deliveries come far too late, the test delivers the clips itself */
    const char *env[] = {"WEBHOOK_EARLY_TTL_S=0", "FAKE_VIDEO_DELAY_MS=60000",
                         "JOB_RETRY_BASE_S=0.2", SMALL, NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"late news\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    char task[2][80], body[400];
    task_of(id, 0, task[0], sizeof task[0]);
    task_of(id, 1, task[1], sizeof task[1]);
    /* an early video.failed for clip 0: applied, it would fail the run */
    snprintf(body, sizeof body,
             "{\"id\":\"evt_old\",\"object\":\"event\",\"created_at\":1,\"type\":\"video.failed\","
             "\"data\":{\"id\":\"%s\"}}",
             task[0]);
    json_t *j;
    cr_assert_eq(deliver(s.port, "msg_expired", body, &j), 200);
    cr_assert_str_eq(ra_str(j, "status"), "ignored");
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'early'"), 1);
    json_decref(ra_approve(s.port, id, "ideation"));
    json_decref(ra_wait_status(s.port, id, "awaiting_video_generation", 30000));
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'webhook.sora'", id);
    cr_assert_eq(ra_db_count(&s, sql), 0, "the expired delivery made no job");
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'early'"), 1,
                 "kept, not applied");
    for (int i = 0; i < 2; i++) {
        char msg[40];
        snprintf(body, sizeof body,
                 "{\"id\":\"evt_new_%d\",\"object\":\"event\",\"created_at\":1,\"type\":\"video."
                 "completed\","
                 "\"data\":{\"id\":\"%s\"}}",
                 i, task[i]);
        snprintf(msg, sizeof msg, "msg_fresh_%d", i);
        cr_assert_eq(deliver(s.port, msg, body, &j), 200);
        cr_assert_str_eq(ra_str(j, "status"), "accepted");
        json_decref(j);
    }
    json_t *r = ra_wait_status(s.port, id, "awaiting_publish_approval", 60000);
    cr_assert(json_is_null(json_object_get(r, "error")));
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "artifacts"), "clips")), 2);
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- v2 idempotency keys (api.md §3) ------------------------------------------------------------
 */

Test(workflow, v2_idempotency_keys_replay_refuse_and_conflict, .timeout = 60) {
    struct server s;
    const char *env[] = {SMALL, NULL};
    ra_start(&s, env);
    const char *body = "{\"workflow\":\"motivational\",\"brief\":\"once only\"}";
    struct resp r1, r2;
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-a\r\n",
                        body, &r1));
    cr_assert_eq(r1.status, 200);
    /* retried right after the answer: the stored answer, not 409 */
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-a\r\n",
                        body, &r2));
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    char v[16];
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    cr_assert_str_eq(v, "true");
    cr_assert_not(resp_header(&r1, "Idempotent-Replayed", v, sizeof v));
    cr_assert_str_eq(r1.body, r2.body, "the replay is the first answer");
    json_t *first = json_loads(r1.body, 0, NULL);
    cr_assert_str_eq(ra_str(json_object_get(first, "interrupt"), "id"), "gate:ideation");
    char id[64];
    snprintf(id, sizeof id, "%s", ra_str(first, "run_id"));
    json_decref(first);
    resp_free(&r1);
    resp_free(&r2);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1, "a replay creates nothing");
    int st;
    json_t *j = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-a\r\n",
                        "{\"workflow\":\"motivational\",\"brief\":\"something else\"}", &st);
    ra_expect_error(j, st, 422, "idempotency_key_reused", NULL);

    /* a v2 approve with a key: replayed after its wait, refused with another body */
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/approve", id);
    cr_assert(h_request(s.port, "POST", path, JSON_KEY "Idempotency-Key: v2-b\r\n",
                        "{\"approved\":true}", &r1));
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert(h_request(s.port, "POST", path, JSON_KEY "Idempotency-Key: v2-b\r\n",
                        "{\"approved\":true}", &r2));
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    cr_assert_str_eq(r1.body, r2.body);
    resp_free(&r1);
    resp_free(&r2);
    j = ra_call(s.port, "POST", path, JSON_KEY "Idempotency-Key: v2-b\r\n", "{\"approved\":false}",
                &st);
    ra_expect_error(j, st, 422, "idempotency_key_reused", NULL);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE target = '%s' AND action = 'gate.approved'", id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "one decision");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* A server whose LLM never answers (connection refused, a long retry delay), so that a v2 start
 * waits its whole V2_WAIT_MS (wait_env: "V2_WAIT_MS=<ms>") with its run in `running`; env_out
 * keeps the LLM settings for a restart. Sends a v2 start of brief with Idempotency-Key key on a
 * connection of its own and returns that connection once the run exists. */
#define NO_LLM_ENV                                                                                 \
    "LLM_PROVIDER=openai", "LLM_BASE_URL=http://127.0.0.1:1/v1", "LLM_API_KEY=sk-x",               \
        "JOB_RETRY_BASE_S=600", "JOB_RETRY_MAX_S=600"
static int keyed_v2_start_that_waits(struct server *s, const char *wait_env, const char *key,
                                     const char *body) {
    const char *env[] = {NO_LLM_ENV, wait_env, NULL};
    ra_start(s, env);
    int fd = h_connect(s->port);
    cr_assert_geq(fd, 0);
    cr_assert(h_sendf(fd,
                      "POST /v2/runs/start HTTP/1.1\r\nHost: x\r\n" JSON_KEY
                      "Idempotency-Key: %s\r\nContent-Length: %zu\r\n\r\n%s",
                      key, strlen(body), body));
    int64_t deadline = h_now_ms() + 10000;
    while (ra_db_count(s, "SELECT count(*) FROM runs") < 1 && h_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return fd;
}

/* A retry while the first request still waits: 409. The LLM never answers (connection refused,
 * long retry delay), so the v2 start waits its whole V2_WAIT_MS with the run in `running`. */
Test(workflow, v2_retry_while_the_first_waits_is_a_conflict, .timeout = 60) {
    struct server s;
    const char *body = "{\"workflow\":\"motivational\",\"brief\":\"patience\"}";
    int fd = keyed_v2_start_that_waits(&s, "V2_WAIT_MS=3000", "v2-wait", body);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1, "the first request made its run");
    int st;
    json_t *j = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-wait\r\n",
                        body, &st);
    ra_expect_error(j, st, 409, "conflict", NULL);
    struct resp r1;
    cr_assert(h_read(fd, &r1, 15000), "the first answer comes after V2_WAIT_MS");
    close(fd);
    cr_assert_eq(r1.status, 200);
    json_t *first = json_loads(r1.body, 0, NULL);
    cr_assert_str_eq(ra_str(json_object_get(first, "state"), "status"), "running");
    json_decref(first);
    struct resp r2;
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-wait\r\n",
                        body, &r2));
    cr_assert_eq(r2.status, 200);
    cr_assert_str_eq(r1.body, r2.body, "after the wait: the stored first answer");
    resp_free(&r1);
    resp_free(&r2);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- a whole aismr run through v2
 * ---------------------------------------------------------------- */

Test(workflow, whole_aismr_run_through_v2, .timeout = 240) {
    struct server s;
    const char *env[] = {"FAKE_VIDEO_DELAY_MS=20", "RENDER_SCALE=0.05", "FAKE_CLIP_SECONDS=0.5",
                         "FAKE_CLIP_SIZE=64x112", NULL};
    ra_start(&s, env);
    int st;
    json_t *r = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY,
                        "{\"workflow\":\"aismr\",\"brief\":\"stars at night\"}", &st);
    cr_assert_eq(st, 200);
    char id[64];
    snprintf(id, sizeof id, "%s", ra_str(r, "run_id"));
    json_t *state = json_object_get(r, "state");
    cr_assert_str_eq(ra_str(state, "project"), "aismr");
    cr_assert_str_eq(ra_str(state, "status"), "awaiting_ideation_approval");
    json_t *ideas = json_object_get(json_object_get(state, "ideas_structured"), "ideas");
    cr_assert_eq(json_array_size(ideas), 12);
    cr_assert_str_eq(ra_str(json_array_get(ideas, 0), "title"), "Aries");
    cr_assert_str_eq(ra_str(json_array_get(ideas, 11), "title"), "Pisces");
    cr_assert_str_eq(ra_str(json_object_get(r, "interrupt"), "id"), "gate:ideation");
    json_decref(r);
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/approve", id);
    r = ra_call(s.port, "POST", path, JSON_KEY,
                "{\"approved\":true,\"interrupt_id\":\"gate:ideation\"}", &st);
    cr_assert_eq(st, 200);
    json_decref(r);
    /* the v2 approve answers at the next wait; the clips and the render follow */
    int64_t deadline = h_now_ms() + 180000;
    snprintf(path, sizeof path, "/v2/runs/%s/state", id);
    for (;;) {
        r = ra_call(s.port, "GET", path, KEY, NULL, &st);
        cr_assert_eq(st, 200);
        const char *status = ra_str(json_object_get(r, "state"), "status");
        if (strcmp(status, "awaiting_publish_approval") == 0)
            break;
        cr_assert(strcmp(status, "failed") != 0 && h_now_ms() < deadline, "run is %s", status);
        json_decref(r);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "state"), "video_clips")), 12);
    cr_assert_str_eq(ra_str(json_array_get(json_object_get(r, "interrupts"), 0), "id"),
                     "gate:publish");
    json_decref(r);
    snprintf(path, sizeof path, "/v2/runs/%s/approve", id);
    r = ra_call(s.port, "POST", path, JSON_KEY,
                "{\"approved\":true,\"interrupt_id\":\"gate:publish\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(json_object_get(r, "state"), "status"), "completed",
                     "v2 approve waits for the end");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "state"), "published_urls")),
                 1);
    cr_assert(json_is_null(json_object_get(r, "interrupts")));
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'video_clip'", id);
    cr_assert_eq(ra_db_count(&s, sql), 12);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'run.edit'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- a render callback for a cancelled run: stored, answered "ignored", changes nothing
 * ------------ */

Test(workflow, a_render_callback_for_a_cancelled_run_is_ignored, .timeout = 120) {
    /* a separate Remotion fake whose URL guard refuses our loopback media and callback URLs: the
     * render never calls back by itself, the run waits in wait_for_render */
    struct server fk, s;
    const char *fenv[] = {"REMOTION_WEBHOOK_SECRET=rsecret", SMALL, NULL};
    fakes_start_in(&fk, NULL, fenv);
    char svc[120];
    snprintf(svc, sizeof svc, "REMOTION_SERVICE_URL=http://127.0.0.1:%d/_fake/remotion", fk.port);
    const char *env[] = {"PROVIDERS=real",
                         "LLM_PROVIDER=fake",
                         "SORA_PROVIDER=fake",
                         "PUBLISH_PROVIDER=fake",
                         "RENDER_PROVIDER=remotion",
                         svc,
                         "REMOTION_WEBHOOK_SECRET=rsecret",
                         "FAKE_VIDEO_DELAY_MS=30",
                         SMALL,
                         NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"render me later\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    json_decref(ra_approve(s.port, id, "ideation"));
    int64_t deadline = h_now_ms() + 60000;
    json_t *r = NULL;
    for (;;) {
        json_decref(r);
        r = ra_get_run(s.port, id);
        if (ra_str(r, "current_step") && strcmp(ra_str(r, "current_step"), "wait_for_render") == 0)
            break;
        cr_assert(h_now_ms() < deadline && strcmp(ra_str(r, "status"), "failed") != 0,
                  "run is %s/%s", ra_str(r, "status"), ra_str(r, "current_step"));
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT json_extract(metadata, '$.render_job_id') FROM artifacts WHERE run_id = '%s' "
             "AND type = 'editor_output'",
             id);
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    char job[128];
    snprintf(job, sizeof job, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);

    snprintf(path, sizeof path, "/v1/runs/%s/cancel", id);
    int st;
    json_decref(ra_call(s.port, "POST", path, JSON_KEY, "{\"reason\":\"changed my mind\"}", &st));
    cr_assert_eq(st, 200);
    char body[400], sig[WEBHOOK_REMOTION_SIG_LEN], headers[400];
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"status\":\"done\",\"output_url\":\"http://127.0.0.1:1/x.mp4\"}",
             job);
    cr_assert_eq(webhook_sign_remotion("rsecret", body, strlen(body), sig), 0);
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\r\nX-Remotion-Signature: %s\r\n", sig);
    snprintf(path, sizeof path, "/v1/webhooks/remotion?run_id=%s", id);
    json_t *j = ra_call(s.port, "POST", path, headers, body, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(j, "status"), "ignored");
    cr_assert_eq(json_object_size(j), 4, "status, run_id, error, output_url");
    json_decref(j);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM webhook_inbox WHERE provider = 'remotion' AND run_id = '%s' AND "
             "status = 'ignored'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "stored");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'webhook.remotion'", id);
    cr_assert_eq(ra_db_count(&s, sql), 0, "no work");
    r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "status"), "cancelled");
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&fk, SIGTERM, 20000), 0);
}

/* ---- v2 approve: content_override and data strings go to the moderation API too (api.md §3)
 * -------- */

Test(workflow, v2_approve_moderates_content_override_and_data, .timeout = 60) {
    struct server s;
    const char *env[] = {"SAFETY_PROVIDER=openai", NULL};
    ra_start(&s, env);
    int st;
    json_t *r = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY,
                        "{\"workflow\":\"motivational\",\"brief\":\"calm\"}", &st);
    cr_assert_eq(st, 200);
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", ra_str(r, "run_id"));
    cr_assert_str_eq(ra_str(json_object_get(r, "state"), "status"), "awaiting_ideation_approval");
    json_decref(r);
    snprintf(path, sizeof path, "/v2/runs/%s/approve", id);
    const char *bodies[] = {
        "{\"approved\":true,\"content_override\":\"use forbidden-test-phrase instead\"}",
        "{\"approved\":true,\"data\":{\"note\":\"fine\",\"extra\":\"a forbidden-test-phrase "
        "here\"}}",
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *j = ra_call(s.port, "POST", path, JSON_KEY, bodies[i], &st);
        cr_assert_str_eq(ra_str(j, "reason"), "moderation:violence", "%s", bodies[i]);
        ra_expect_error(j, st, 400, "content_blocked", NULL);
    }
    r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "status"), "awaiting_ideation_approval",
                     "refused approvals change nothing");
    json_decref(r);
    r = ra_call(s.port, "POST", path, JSON_KEY,
                "{\"approved\":true,\"data\":{\"note\":\"all good\"}}", &st);
    cr_assert_eq(st, 200);
    json_decref(r);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* kill -9 while a keyed v2 start waits: the retry after the restart is not refused for 24 h (the
 * first request is gone with its process); it waits on the same run and records its answer. */
Test(workflow, v2_keyed_start_survives_kill_9_during_its_wait, .timeout = 90) {
    struct server s;
    const char *body = "{\"workflow\":\"motivational\",\"brief\":\"crash in the middle\"}";
    int fd = keyed_v2_start_that_waits(&s, "V2_WAIT_MS=20000", "v2-crash", body);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1);
    kill(s.pid, SIGKILL);
    int status;
    waitpid(s.pid, &status, 0);
    s.pid = 0;
    close(fd);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", s.dir);
    const char *more[] = {NO_LLM_ENV, "V2_WAIT_MS=300", NULL}, *env2[40];
    ra_env(env2, 40, more);
    server_start_in(&s, dir, env2);
    struct resp r1, r2;
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-crash\r\n",
                        body, &r1));
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    json_t *j = json_loads(r1.body, 0, NULL);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id = '%s'", ra_str(j, "run_id"));
    cr_assert_eq(ra_db_count(&s, sql), 1, "the run the first request made");
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1, "no second run");
    cr_assert(h_request(s.port, "POST", "/v2/runs/start", JSON_KEY "Idempotency-Key: v2-crash\r\n",
                        body, &r2));
    cr_assert_eq(r2.status, 200);
    char v[16];
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v), "now the answer is stored");
    cr_assert_str_eq(r1.body, r2.body);
    resp_free(&r1);
    resp_free(&r2);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
