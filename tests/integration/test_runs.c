/*
 * Integration: the v1 run routes and the video webhook with the real binary, the real SQLite
 * file and (for whole runs) the in-process provider fakes over loopback. Errors of api.md §3,
 * §4 and §6 are provoked one by one; whole motivational runs end in a playable MP4.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/webhook.h"
#include "media/media.h"
#include "support/harness.h"
#include "support/runapi.h"

#define KEY "X-API-Key: dev-api-key\r\n"
#define JSON_KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* ---- start validation ---------------------------------------------------------------------- */

Test(runs, start_validates_every_field, .timeout = 60) {
    struct server s;
    ra_start(&s, NULL);
    int st;
    struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "brief"},
        {"{\"brief\":\"   \"}", "brief"},
        {"{\"brief\":5}", "brief"},
        {"{\"brief\":\"x\",\"workflow\":\"Bad-Name\"}", "workflow"},
        {"{\"brief\":\"x\",\"project\":\"a b\"}", "project"},
        {"{\"brief\":\"x\",\"user_id\":7}", "user_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY, bad[i].body, &st);
        json_t *f = json_array_get(json_object_get(j, "fields"), 0);
        cr_assert_str_eq(ra_str(f, "field"), bad[i].field, "%s", bad[i].body);
        ra_expect_error(j, st, 422, "validation_error", NULL);
    }
    char *big = malloc(10100);
    memset(big, 'a', 10050);
    memcpy(big, "{\"brief\":\"", 10);
    strcpy(big + 10040, "\"}");
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY, big, 422, "validation_error", NULL);
    free(big);
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY, "{\"brief\":\"x\",\"workflow\":\"nope\"}",
           404, "not_found", "Workflow 'nope' not found");
    RA_ERR(s.port, "POST", "/v1/runs/start", "Content-Type: application/json\r\n",
           "{\"brief\":\"x\"}", 401, "unauthorized", "Missing API key");
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY, "{\"brief\":", 400, "invalid_json", NULL);
    RA_ERR(s.port, "POST", "/v1/runs/start", KEY "Content-Type: text/plain\r\n", "x", 415,
           "unsupported_media_type", NULL);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 0, "refused requests created a run");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, safety_blocks_whole_words_only, .timeout = 60) {
    struct server s;
    ra_start(&s, NULL);
    int st;
    json_t *j = ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY,
                        "{\"project\":\"motivational\",\"brief\":\"stop killing time\"}", &st);
    cr_assert_str_eq(ra_str(j, "reason"), "matched_keyword:kill");
    ra_expect_error(j, st, 400, "content_blocked", NULL);
    j = ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY,
                "{\"project\":\"motivational\",\"brief\":\"a photoshoot to build a skill\"}", &st);
    cr_assert_eq(st, 200, "whole words only: skill and photoshoot pass");
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, budget_and_idempotency_keys, .timeout = 60) {
    struct server s;
    const char *env[] = {"MAX_RUNS_LAST_24H=2", NULL};
    ra_start(&s, env);
    int st;
    const char *body = "{\"project\":\"motivational\",\"brief\":\"first\"}";
    struct resp r1, r2;
    cr_assert(h_request(s.port, "POST", "/v1/runs/start", JSON_KEY "Idempotency-Key: k-1\r\n", body,
                        &r1));
    cr_assert_eq(r1.status, 200);
    cr_assert(h_request(s.port, "POST", "/v1/runs/start", JSON_KEY "Idempotency-Key: k-1\r\n", body,
                        &r2));
    cr_assert_eq(r2.status, 200);
    char v[16];
    cr_assert(resp_header(&r2, "Idempotent-Replayed", v, sizeof v));
    cr_assert_str_eq(v, "true");
    cr_assert_str_eq(r1.body, r2.body, "the replay is the first answer");
    cr_assert_not(resp_header(&r1, "Idempotent-Replayed", v, sizeof v));
    resp_free(&r1);
    resp_free(&r2);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 1, "a replay creates nothing");
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY "Idempotency-Key: k-1\r\n",
           "{\"project\":\"motivational\",\"brief\":\"other\"}", 422, "idempotency_key_reused",
           NULL);
    /* keys are per API key: the same key from another API key is a new request */
    json_decref(
        ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY "Idempotency-Key: k-2\r\n", body, &st));
    cr_assert_eq(st, 200);
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY, body, 429, "budget_exceeded",
           "Run budget exceeded (max_runs_last_24h). Please retry later.");
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 2);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, cost_budget, .timeout = 60) {
    struct server s;
    const char *env[] = {"DAILY_COST_BUDGET_USD=1", "ESTIMATED_COST_PER_RUN_USD=0.6", NULL};
    ra_start(&s, env);
    int st;
    json_decref(ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY,
                        "{\"project\":\"motivational\",\"brief\":\"x\"}", &st));
    cr_assert_eq(st, 200, "0.6 of 1 USD");
    RA_ERR(s.port, "POST", "/v1/runs/start", JSON_KEY,
           "{\"project\":\"motivational\",\"brief\":\"y\"}", 429, "budget_exceeded",
           "Daily cost budget exceeded; try again tomorrow.");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- reading, cancel, feedback ----------------------------------------------------------------
 */

Test(runs, get_list_cancel_feedback, .timeout = 60) {
    struct server s;
    ra_start(&s, NULL);
    int st;
    RA_ERR(s.port, "GET", "/v1/runs/not-a-uuid", KEY, NULL, 404, "not_found", "Run not found");
    RA_ERR(s.port, "GET", "/v1/runs/00000000-0000-4000-8000-000000000000", KEY, NULL, 404,
           "not_found", "Run not found");
    char *a = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"one\"}");
    char *b = ra_start_run(s.port, "{\"project\":\"aismr\",\"brief\":\"two\"}");
    json_t *l = ra_call(s.port, "GET", "/v1/runs?limit=1", KEY, NULL, &st);
    cr_assert_eq(st, 200);
    json_t *runs = json_object_get(l, "runs");
    cr_assert_eq(json_array_size(runs), 1);
    cr_assert_str_eq(ra_str(json_array_get(runs, 0), "run_id"), b, "newest first");
    cr_assert_null(json_object_get(json_array_get(runs, 0), "artifacts"),
                   "the listing has no artifacts");
    char path[256];
    snprintf(path, sizeof path, "/v1/runs?limit=1&cursor=%s", ra_str(l, "next_cursor"));
    json_decref(l);
    l = ra_call(s.port, "GET", path, KEY, NULL, &st);
    cr_assert_str_eq(ra_str(json_array_get(json_object_get(l, "runs"), 0), "run_id"), a);
    json_decref(l);
    l = ra_call(s.port, "GET", "/v1/runs?workflow=aismr", KEY, NULL, &st);
    cr_assert_eq(json_array_size(json_object_get(l, "runs")), 1);
    json_decref(l);
    RA_ERR(s.port, "GET", "/v1/runs?limit=0", KEY, NULL, 422, "validation_error", NULL);
    RA_ERR(s.port, "GET", "/v1/runs?status=bogus", KEY, NULL, 422, "validation_error", NULL);
    RA_ERR(s.port, "GET", "/v1/runs?cursor=zzz", KEY, NULL, 422, "validation_error", NULL);

    /* approve a gate the run is not waiting at */
    snprintf(path, sizeof path, "/v1/runs/%s/approve", a);
    char msg[200];
    snprintf(msg, sizeof msg, "Run %s is not awaiting publish approval", a);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"gate\":\"publish\"}", 409, "conflict", msg);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"gate\":\"nope\"}", 422, "validation_error", NULL);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{}", 422, "validation_error", NULL);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"gate\":\"ideation\",\"approved\":\"yes\"}", 422,
           "validation_error", NULL);

    /* cancel, then cancel again */
    snprintf(path, sizeof path, "/v1/runs/%s/cancel", a);
    json_t *c = ra_call(s.port, "POST", path, JSON_KEY, "{\"reason\":\"changed my mind\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(c, "status"), "cancelled");
    json_decref(c);
    snprintf(msg, sizeof msg, "Run %s is already cancelled", a);
    RA_ERR(s.port, "POST", path, JSON_KEY, NULL, 409, "conflict", msg);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM audit_log WHERE action = 'run.cancelled'"),
                 1);
    cr_assert_eq(ra_db_count(&s,
                             "SELECT count(*) FROM jobs j JOIN runs r ON r.id = j.run_id "
                             "WHERE r.status = 'cancelled' AND j.state IN ('queued', 'running')"),
                 0, "a cancelled run's jobs are cancelled");

    /* feedback */
    snprintf(path, sizeof path, "/v1/runs/%s/feedback", a);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"rating\":3}", 422, "validation_error", NULL);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"rating\":5,\"artifact_id\":\"x\"}", 422,
           "validation_error", NULL);
    json_t *f =
        ra_call(s.port, "POST", path, JSON_KEY, "{\"rating\":5,\"comment\":\"great\"}", &st);
    cr_assert_eq(st, 201);
    cr_assert_eq(json_integer_value(json_object_get(f, "rating")), 5);
    cr_assert_str_eq(ra_str(f, "run_id"), a);
    cr_assert(json_is_null(json_object_get(f, "artifact_id")));
    json_decref(f);
    json_decref(ra_call(s.port, "POST", path, JSON_KEY, "{\"rating\":1}", &st));
    f = ra_call(s.port, "GET", path, KEY, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_eq(json_integer_value(json_object_get(f, "count")), 2);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(f, "feedback"), 0), "rating")),
                 1, "newest first");
    json_decref(f);
    RA_ERR(s.port, "POST", "/v1/runs/00000000-0000-4000-8000-000000000000/feedback", JSON_KEY,
           "{\"rating\":5}", 404, "not_found", "Run not found");
    snprintf(path, sizeof path, "/v1/runs/%s/artifacts", b);
    json_t *arts = ra_call(s.port, "GET", path, KEY, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert(json_is_array(json_object_get(arts, "artifacts")));
    json_decref(arts);
    free(a);
    free(b);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the video webhook ---------------------------------------------------------------------- */

static int deliver(int port, const char *secret, const char *id, long long ts, const char *body,
                   json_t **out) {
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(secret, id, ts, body, strlen(body), sig), 0);
    char headers[600];
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\r\nwebhook-id: %s\r\nwebhook-timestamp: "
             "%lld\r\nwebhook-signature: v1,AAAA "
             "%s\r\n",
             id, ts, sig);
    int st;
    json_t *j = ra_call(port, "POST", "/v1/webhooks/sora", headers, body, &st);
    if (out)
        *out = j;
    else
        json_decref(j);
    return st;
}

static void expect_ack_keys(json_t *j) {
    const char *keys[] = {"status", "run_id", "task_id", "video_index", "video_url", "error"};
    cr_assert_eq(json_object_size(j), 6);
    for (size_t i = 0; i < 6; i++)
        cr_assert_not_null(json_object_get(j, keys[i]), "missing %s", keys[i]);
}

Test(runs, webhook_signatures_and_unknown_tasks, .timeout = 60) {
    struct server s;
    ra_start(&s, NULL);
    long long now = (long long)time(NULL);
    const char *body =
        "{\"id\":\"evt_1\",\"object\":\"event\",\"created_at\":1,\"type\":\"video.completed\","
        "\"data\":{\"id\":\"video_unknown\"}}";
    json_t *j;
    cr_assert_eq(deliver(s.port, "whsec_d3Jvbmcgc2VjcmV0IGtleSBoZXJl", "msg_1", now, body, &j),
                 401);
    ra_expect_error(j, 401, 401, "invalid_signature", "Invalid webhook signature");
    cr_assert_eq(deliver(s.port, SECRET, "msg_1", now - 301, body, &j), 401, "stale");
    json_decref(j);
    /* 310, not 301: the server reads its clock up to a second later than `now` was taken */
    cr_assert_eq(deliver(s.port, SECRET, "msg_1", now + 310, body, &j), 401, "future");
    json_decref(j);
    int st;
    j = ra_call(s.port, "POST", "/v1/webhooks/sora", "Content-Type: application/json\r\n", body,
                &st);
    ra_expect_error(j, st, 401, "invalid_signature", "Invalid webhook signature");
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 0,
                 "refused deliveries are not stored");

    cr_assert_eq(deliver(s.port, SECRET, "msg_1", now, body, &j), 200);
    expect_ack_keys(j);
    cr_assert_str_eq(ra_str(j, "status"), "ignored");
    cr_assert_str_eq(ra_str(j, "task_id"), "video_unknown");
    cr_assert_str_eq(ra_str(j, "error"), "Unknown task_id (no run mapping)");
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'early'"), 1,
                 "kept for later");
    cr_assert_eq(deliver(s.port, SECRET, "msg_1", now, body, &j), 200);
    cr_assert_str_eq(ra_str(j, "status"), "duplicate");
    expect_ack_keys(j);
    json_decref(j);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox"), 1);

    cr_assert_eq(deliver(s.port, SECRET, "msg_2", now,
                         "{\"object\":\"event\",\"type\":\"video.completed\",\"data\":{}}", &j),
                 400);
    ra_expect_error(j, 400, 400, "bad_request", "Missing data.id");
    cr_assert_eq(deliver(s.port, SECRET, "msg_3", now,
                         "{\"object\":\"event\",\"type\":\"batch.done\",\"data\":{}}", &j),
                 200);
    cr_assert_str_eq(ra_str(j, "status"), "ignored");
    expect_ack_keys(j);
    json_decref(j);
    cr_assert_eq(deliver(s.port, SECRET, "msg_4", now, "not json", &j), 400);
    ra_expect_error(j, 400, 400, "invalid_json", "Invalid JSON");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- whole runs with the fakes
 * ------------------------------------------------------------------- */

static const char *small_media[] = {"RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1",
                                    "FAKE_CLIP_SIZE=96x160", "FAKE_VIDEO_DELAY_MS=30", NULL};

static json_t *approve(int port, const char *id, const char *gate, bool approved, int *status) {
    char path[128], body[128];
    snprintf(path, sizeof path, "/v1/runs/%s/approve", id);
    snprintf(body, sizeof body, "{\"gate\":\"%s\",\"approved\":%s,\"comment\":\"looks good\"}",
             gate, approved ? "true" : "false");
    return ra_call(port, "POST", path, JSON_KEY, body, status);
}

static bool has_type(json_t *arts, const char *type, int *count) {
    size_t i;
    json_t *a;
    int n = 0;
    json_array_foreach(arts, i, a) n += strcmp(ra_str(a, "type"), type) == 0;
    if (count)
        *count = n;
    return n > 0;
}

Test(runs, whole_motivational_run_through_v1, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    char *id = ra_start_run(
        s.port, "{\"project\":\"motivational\",\"brief\":\"Keep going when it rains\"}");
    json_t *r = ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000);
    cr_assert_str_eq(ra_str(r, "current_step"), "ideation");
    cr_assert_str_eq(ra_str(r, "pending_gate"), "ideation");
    json_t *art = json_object_get(r, "artifacts");
    cr_assert(strstr(ra_str(art, "ideas"), "## Topic"), "ideas markdown");
    cr_assert_eq(
        json_array_size(json_object_get(json_object_get(art, "ideas_structured"), "ideas")), 2);
    cr_assert_eq(json_array_size(json_object_get(art, "overlays")), 2);
    json_decref(r);
    int st;
    r = approve(s.port, id, "ideation", true, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "status"), "running");
    cr_assert_str_eq(ra_str(r, "current_step"), "production");
    json_decref(r);
    r = ra_wait_status(s.port, id, "awaiting_publish_approval", 60000);
    art = json_object_get(r, "artifacts");
    json_t *clips = json_object_get(art, "clips");
    cr_assert_eq(json_array_size(clips), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(clips, 0), "video_index")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(clips, 1), "video_index")), 1);
    cr_assert(strstr(ra_str(art, "video_url"), "/v1/media/video/"));
    cr_assert_not_null(ra_str(art, "thumbnail_url"));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "progress"), "clips_ready")),
                 2);
    json_decref(r);
    r = approve(s.port, id, "publish", true, &st);
    cr_assert_eq(st, 200);
    json_decref(r);
    r = ra_wait_status(s.port, id, "completed", 30000);
    cr_assert_str_eq(ra_str(r, "current_step"), "completed");
    cr_assert(json_is_null(json_object_get(r, "error")));
    const char *pub = ra_str(json_object_get(r, "artifacts"), "published_url");
    cr_assert(pub && strncmp(pub, "https://www.tiktok.com/@", 24) == 0, "published_url %s", pub);
    json_decref(r);

    /* the final video is a playable H.264/AAC MP4 of the project's aspect ratio */
    char path[600];
    snprintf(path, sizeof path, "%s/media/renders/%s.mp4", s.dir, id);
    struct media_info info;
    buf_t err;
    buf_init(&err, 1024);
    cr_assert_eq(media_probe(path, &info, &err), 0, "%s: %s", path, err.data);
    buf_release(&err);
    cr_assert_str_eq(info.video_codec, "h264");
    cr_assert_str_eq(info.audio_codec, "aac");
    cr_assert_eq(info.width * 16, info.height * 9, "9:16, got %dx%d", info.width, info.height);
    cr_assert(info.duration > 1.5, "two clips, %.2f s", info.duration);

    snprintf(path, sizeof path, "/v1/runs/%s/artifacts", id);
    json_t *a = ra_call(s.port, "GET", path, KEY, NULL, &st);
    json_t *arts = json_object_get(a, "artifacts");
    const char *types[] = {
        "ideas",         "ideas_structured", "producer_output",  "clip_manifest",
        "editor_output", "rendered_video",   "publisher_output", "published_url"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        cr_assert(has_type(arts, types[i], NULL), "artifact %s", types[i]);
    int nclips;
    cr_assert(has_type(arts, "video_clip", &nclips));
    cr_assert_eq(nclips, 2);
    json_decref(a);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'run.edit'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1, "the last clip moved the run exactly once");
    /* the render burns the ideas' overlay lines, one per clip, in order */
    char osql[800];
    snprintf(osql, sizeof osql,
             "SELECT count(*) FROM jobs j, artifacts a WHERE j.run_id = '%s' AND j.type = "
             "'render.local' "
             "AND a.run_id = j.run_id AND a.type = 'overlays' AND json_array_length(j.payload, "
             "'$.texts') = 2 "
             "AND json_extract(j.payload, '$.texts[0]') = json_extract(a.content, '$[0].text') "
             "AND json_extract(j.payload, '$.texts[1]') = json_extract(a.content, '$[1].text') "
             "AND json_extract(a.content, '$[0].text') <> ''",
             id);
    cr_assert_eq(ra_db_count(&s, osql), 1, "overlay texts reach the render");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE target = '%s' AND action = 'gate.approved'", id);
    cr_assert_eq(ra_db_count(&s, sql), 2, "both decisions audited");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM run_events WHERE run_id = '%s' AND kind = 'run' AND status = "
             "'awaiting_render'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 1);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, reject_at_each_gate, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    char *a = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"reject the ideas\"}");
    char *b = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"reject the video\"}");
    json_decref(ra_wait_status(s.port, a, "awaiting_ideation_approval", 30000));
    int st;
    json_t *r = approve(s.port, a, "ideation", false, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "status"), "rejected");
    json_decref(r);
    char msg[200];
    snprintf(msg, sizeof msg, "Run %s is not awaiting ideation approval", a);
    r = approve(s.port, a, "ideation", true, &st);
    ra_expect_error(r, st, 409, "conflict", msg);

    json_decref(ra_wait_status(s.port, b, "awaiting_ideation_approval", 30000));
    json_decref(approve(s.port, b, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, b, "awaiting_publish_approval", 60000));
    r = approve(s.port, b, "publish", false, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "status"), "rejected");
    json_decref(r);
    json_t *g = ra_get_run(s.port, b);
    cr_assert_str_eq(ra_str(g, "status"), "rejected");
    cr_assert_null(json_object_get(json_object_get(g, "artifacts"), "published_url"),
                   "nothing published");
    json_decref(g);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM audit_log WHERE action = 'gate.rejected'"),
                 2);
    free(a);
    free(b);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

struct racer {
    int port;
    const char *id;
    int status;
};

static void *race(void *arg) {
    struct racer *r = arg;
    char path[128];
    snprintf(path, sizeof path, "/v1/runs/%s/approve", r->id);
    struct resp resp;
    if (h_request(r->port, "POST", path, JSON_KEY, "{\"gate\":\"ideation\"}", &resp)) {
        r->status = resp.status;
        resp_free(&resp);
    }
    return NULL;
}

Test(runs, ten_concurrent_approvals_one_wins, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"race the gate\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    struct racer rs[10];
    pthread_t ts[10];
    for (int i = 0; i < 10; i++) {
        rs[i] = (struct racer){s.port, id, 0};
        cr_assert_eq(pthread_create(&ts[i], NULL, race, &rs[i]), 0);
    }
    int ok = 0, conflict = 0;
    for (int i = 0; i < 10; i++) {
        pthread_join(ts[i], NULL);
        ok += rs[i].status == 200;
        conflict += rs[i].status == 409;
    }
    cr_assert_eq(ok, 1, "exactly one approval wins (%d)", ok);
    cr_assert_eq(conflict, 9, "the others get 409 (%d)", conflict);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'run.produce'", id);
    cr_assert_eq(ra_db_count(&s, sql), 1);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, a_failing_clip_fails_the_run, .timeout = 120) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1",        "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",   "FAKE_VIDEO_DELAY_MS=30",
                         "FAKE_VIDEO_FAIL_INDEX=1", NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"one clip fails\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_t *r = ra_wait_status(s.port, id, "failed", 60000);
    cr_assert(strstr(ra_str(r, "error"), "video.failed"), "error: %s", ra_str(r, "error"));
    json_decref(r);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE run_id = '%s' AND type = 'run.edit'",
             id);
    cr_assert_eq(ra_db_count(&s, sql), 0, "nothing else runs");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, webhooks_for_a_finished_run_are_stored_and_ignored, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    char *id = ra_start_run(
        s.port, "{\"project\":\"motivational\",\"brief\":\"cancel while clips render\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "awaiting_video_generation", 30000));
    /* a task of this run, delivered again with a new delivery id after the run is cancelled */
    char sql[300], task[128];
    snprintf(sql, sizeof sql, "/v1/runs/%s/cancel", id);
    json_decref(ra_call(s.port, "POST", sql, JSON_KEY, "{}", &st));
    cr_assert_eq(st, 200);
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    snprintf(sql, sizeof sql, "SELECT task_id FROM run_tasks WHERE run_id = '%s' LIMIT 1", id);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(task, sizeof task, "%s", sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    char body[300];
    snprintf(body, sizeof body,
             "{\"id\":\"evt_x\",\"object\":\"event\",\"created_at\":1,\"type\":\"video.completed\","
             "\"data\":{\"id\":\"%s\"}}",
             task);
    json_t *j;
    cr_assert_eq(deliver(s.port, SECRET, "msg_after_cancel", (long long)time(NULL), body, &j), 200);
    expect_ack_keys(j);
    cr_assert_str_eq(ra_str(j, "status"), "ignored");
    cr_assert_str_eq(ra_str(j, "run_id"), id);
    json_decref(j);
    cr_assert_eq(
        ra_db_count(&s,
                    "SELECT count(*) FROM webhook_inbox WHERE delivery_id = 'msg_after_cancel' AND "
                    "status = 'ignored'"),
        1);
    json_t *r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "status"), "cancelled");
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- v2 -----------------------------------------------------------------------------------------
 */

static json_t *v2_state_until(int port, const char *id, const char *want, int ms) {
    json_decref(ra_wait_status(port, id, want, ms));
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/state", id);
    int st;
    json_t *j = ra_call(port, "GET", path, KEY, NULL, &st);
    cr_assert_eq(st, 200);
    return j;
}

static json_t *resume(int port, const char *id, const char *body, int *st) {
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/resume", id);
    return ra_call(port, "POST", path, JSON_KEY, body, st);
}

Test(runs, whole_run_through_v2_with_interrupts_and_resume_publish, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    int st;
    json_t *r = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY,
                        "{\"workflow\":\"motivational\",\"brief\":\"the v2 way\"}", &st);
    cr_assert_eq(st, 200);
    char id[64];
    snprintf(id, sizeof id, "%s", ra_str(r, "run_id"));
    cr_assert_str_eq(ra_str(r, "thread_id"), id);
    json_t *state = json_object_get(r, "state");
    cr_assert_str_eq(ra_str(state, "status"), "awaiting_ideation_approval",
                     "v2 start waits for the gate");
    json_t *in = json_object_get(r, "interrupt");
    cr_assert_str_eq(ra_str(in, "id"), "gate:ideation");
    cr_assert(json_is_true(json_object_get(in, "resumable")));
    json_t *v = json_object_get(in, "value");
    cr_assert_str_eq(ra_str(v, "gate"), "ideation");
    cr_assert_str_eq(ra_str(v, "waiting_for"), "hitl_ideation");
    cr_assert_str_eq(ra_str(v, "task"), "Review and approve video ideas");
    cr_assert_not_null(ra_str(v, "ideas"));
    json_decref(r);

    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/approve", id);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"approved\":true,\"interrupt_id\":\"gate:publish\"}",
           400, "bad_request", "Unknown interrupt_id: gate:publish");
    RA_ERR(s.port, "POST", path, JSON_KEY, "{}", 422, "validation_error", NULL);
    r = ra_call(s.port, "POST", path, JSON_KEY,
                "{\"approved\":true,\"interrupt_id\":\"gate:ideation\"}", &st);
    cr_assert_eq(st, 200);
    const char *after = ra_str(json_object_get(r, "state"), "status");
    cr_assert(strcmp(after, "running") != 0 && strcmp(after, "pending") != 0,
              "approve waits for the next wait: %s", after);
    cr_assert(json_is_array(json_object_get(r, "interrupts")));
    json_decref(r);

    r = v2_state_until(s.port, id, "awaiting_publish_approval", 60000);
    cr_assert_str_eq(ra_str(json_array_get(json_object_get(r, "interrupts"), 0), "id"),
                     "gate:publish");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "next"), 0)),
                     "publish_approval");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "state"), "video_clips")), 2);
    cr_assert_not_null(ra_str(json_object_get(r, "state"), "final_video_url"));
    json_decref(r);
    r = resume(s.port, id, "{\"action\":\"publish\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "action"), "publish");
    cr_assert_str_eq(ra_str(r, "message"),
                     "Publish gate awaiting approval (set approve_publish=true)");
    json_decref(r);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"approved\":1}", 422, "validation_error", NULL);
    char rpath[128];
    snprintf(rpath, sizeof rpath, "/v2/runs/%s/resume", id);
    RA_ERR(s.port, "POST", rpath, JSON_KEY, "{\"action\":\"nope\"}", 400, "bad_request",
           "Unknown resume action: nope");
    r = resume(s.port, id, "{\"action\":\"publish\",\"approve_publish\":true}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "message"), "Publish approved");
    json_decref(r);
    r = v2_state_until(s.port, id, "completed", 30000);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "state"), "published_urls")),
                 1);
    cr_assert(json_is_null(json_object_get(r, "next")));
    cr_assert(json_is_null(json_object_get(r, "interrupts")));
    json_decref(r);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{\"approved\":true}", 409, "conflict",
           "No pending interrupts for this run");
    r = resume(s.port, id, "{\"action\":\"auto\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert(json_is_null(json_object_get(r, "action")));
    cr_assert_str_eq(ra_str(r, "message"), "Run status 'completed' is not resumable");
    json_decref(r);
    snprintf(path, sizeof path, "/v2/runs/%s/history", id);
    r = ra_call(s.port, "GET", path, KEY, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert(json_array_size(r) >= 8, "every transition is an event");
    cr_assert_str_eq(ra_str(json_array_get(r, 0), "status"), "completed", "newest first");
    json_decref(r);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, v2_reject_ends_the_run, .timeout = 60) {
    struct server s;
    ra_start(&s, small_media);
    int st;
    json_t *r = ra_call(s.port, "POST", "/v2/runs/start", JSON_KEY,
                        "{\"workflow\":\"motivational\",\"brief\":\"no thanks\"}", &st);
    cr_assert_eq(st, 200);
    char path[128];
    snprintf(path, sizeof path, "/v2/runs/%s/reject", ra_str(r, "run_id"));
    json_decref(r);
    r = ra_call(s.port, "POST", path, JSON_KEY, "{\"comment\":\"not today\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(json_object_get(r, "state"), "status"), "rejected");
    cr_assert(json_is_null(json_object_get(r, "next")));
    cr_assert(json_is_null(json_object_get(r, "interrupts")));
    json_decref(r);
    RA_ERR(s.port, "POST", path, JSON_KEY, "{}", 409, "conflict",
           "No pending interrupts for this run");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, resume_after_a_failed_clip_resubmits_it, .timeout = 120) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1",        "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",   "FAKE_VIDEO_DELAY_MS=30",
                         "FAKE_VIDEO_FAIL_INDEX=1", NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"try again\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "failed", 60000));
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'video_clip'", id);
    long long have = ra_db_count(&s, sql); /* clip 0 may have come in before clip 1 failed */
    cr_assert(have == 0 || have == 1);
    json_t *r = resume(s.port, id, "{\"action\":\"auto\"}", &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(r, "action"), "videos", "a failed clip is re-submitted");
    char want[64];
    snprintf(want, sizeof want, "Videos re-submitted (%lld)", 2 - have);
    cr_assert_str_eq(ra_str(r, "message"), want);
    cr_assert_str_eq(ra_str(r, "status"), "awaiting_video_generation");
    cr_assert(json_is_null(json_object_get(r, "error")));
    json_decref(r);
    /* the fake fails that index again: a new task for clip 1 only, and the run fails again */
    r = ra_wait_status(s.port, id, "failed", 60000);
    cr_assert(strstr(ra_str(r, "error"), "video.failed"));
    json_decref(r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM run_tasks WHERE run_id = '%s' AND video_index = 1", id);
    cr_assert_eq(ra_db_count(&s, sql), 2);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM run_tasks WHERE run_id = '%s' AND video_index = 0", id);
    cr_assert_eq(ra_db_count(&s, sql), have ? 1 : 2, "a clip that came in is not asked again");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the render callback ----------------------------------------------------------------------
 */

#define REMOTION_SECRET "remotion-test-secret"

static int callback(int port, const char *query, const char *sig_header, const char *body,
                    json_t **out) {
    char headers[600];
    snprintf(headers, sizeof headers, "Content-Type: application/json\r\n%s",
             sig_header ? sig_header : "");
    char path[200];
    snprintf(path, sizeof path, "/v1/webhooks/remotion%s", query);
    int st;
    json_t *j = ra_call(port, "POST", path, headers, body, &st);
    *out = j;
    return st;
}

static void signed_header(const char *body, char *out, size_t cap) {
    char sig[WEBHOOK_REMOTION_SIG_LEN];
    cr_assert_eq(webhook_sign_remotion(REMOTION_SECRET, body, strlen(body), sig), 0);
    snprintf(out, cap, "X-Remotion-Signature: %s\r\n", sig);
}

Test(runs, whole_run_with_the_remotion_renderer_and_its_callback, .timeout = 120) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1",
                         "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=30",
                         "RENDER_PROVIDER=remotion",
                         "REMOTION_WEBHOOK_SECRET=" REMOTION_SECRET,
                         NULL};
    ra_start(&s, env);
    char *id =
        ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"render it remotely\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_t *r = ra_wait_status(s.port, id, "awaiting_publish_approval", 60000);
    cr_assert(strstr(ra_str(json_object_get(r, "artifacts"), "video_url"), "/v1/media/video/"));
    json_decref(r);
    char path[600];
    snprintf(path, sizeof path, "%s/media/renders/%s.mp4", s.dir, id);
    struct media_info info;
    cr_assert_eq(media_probe(path, &info, NULL), 0,
                 "the service's output is stored as the final render");
    cr_assert_str_eq(info.video_codec, "h264");

    /* the render job id, from the editor's artifact */
    snprintf(path, sizeof path, "/v1/runs/%s/artifacts", id);
    json_t *a = ra_call(s.port, "GET", path, KEY, NULL, &st);
    const char *job = NULL;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(a, "artifacts"), i,
                       x) if (strcmp(ra_str(x, "type"), "editor_output") == 0) job =
        ra_str(json_object_get(x, "metadata"), "render_job_id");
    cr_assert_not_null(job);
    char body[400], hdr[300], q[100];
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"status\":\"done\",\"output_url\":\"http://elsewhere/x.mp4\"}",
             job);
    json_decref(a);
    snprintf(q, sizeof q, "?run_id=%s", id);
    signed_header(body, hdr, sizeof hdr);
    json_t *j;
    cr_assert_eq(callback(s.port, q, hdr, body, &j), 200, "a repeat is idempotent");
    cr_assert_eq(json_object_size(j), 4);
    cr_assert_str_eq(ra_str(j, "status"), "accepted");
    cr_assert(strstr(ra_str(j, "output_url"), "/_fake/remotion/output/"),
              "the stored URL, not the new one: %s", ra_str(j, "output_url"));
    json_decref(j);

    /* refusals */
    cr_assert_eq(callback(s.port, q, NULL, body, &j), 401);
    ra_expect_error(j, 401, 401, "invalid_signature", "Missing webhook signature");
    cr_assert_eq(callback(s.port, q, "X-Remotion-Signature: sha512=00\r\n", body, &j), 401);
    ra_expect_error(j, 401, 401, "invalid_signature", "Invalid webhook signature");
    cr_assert_eq(callback(s.port, "", hdr, body, &j), 400);
    ra_expect_error(j, 400, 400, "bad_request", "Missing run_id query parameter");
    cr_assert_eq(callback(s.port, "?run_id=00000000-0000-4000-8000-000000000000", hdr, body, &j),
                 404);
    ra_expect_error(j, 404, 404, "not_found", "Run not found");
    const char *other =
        "{\"job_id\":\"nope\",\"status\":\"done\",\"output_url\":\"http://x/y.mp4\"}";
    signed_header(other, hdr, sizeof hdr);
    cr_assert_eq(callback(s.port, q, hdr, other, &j), 400);
    ra_expect_error(j, 400, 400, "bad_request", "Unknown job_id: nope");
    json_decref(approve(s.port, id, "publish", true, &st));
    json_decref(ra_wait_status(s.port, id, "completed", 30000));
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- stuck runs
 * ---------------------------------------------------------------------------------- */

Test(runs, stuck_runs_are_listed_and_cleaned_up, .timeout = 120) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1", "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=600000", NULL}; /* the clips never come in time */
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"waiting forever\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "awaiting_video_generation", 30000));
    json_t *j = ra_call(s.port, "GET", "/health/stuck-runs?timeout_minutes=60", "", NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 0, "not stuck for an hour");
    json_decref(j);
    j = ra_call(s.port, "GET", "/health/stuck-runs?timeout_minutes=0", "", NULL, &st);
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 1);
    cr_assert_str_eq(ra_str(json_array_get(json_object_get(j, "stuck_runs"), 0), "id"), id);
    json_decref(j);
    RA_ERR(s.port, "POST", "/health/cleanup-stuck-runs?timeout_minutes=0", "", NULL, 401,
           "unauthorized", "Missing API key");
    RA_ERR(s.port, "GET", "/health/stuck-runs?timeout_minutes=-1", "", NULL, 422,
           "validation_error", NULL);
    j = ra_call(s.port, "POST", "/health/cleanup-stuck-runs?timeout_minutes=0", KEY, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert(json_is_true(json_object_get(j, "dry_run")));
    cr_assert_eq(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    json_t *r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "status"), "awaiting_video_generation", "a dry run changes nothing");
    json_decref(r);
    j = ra_call(s.port, "POST", "/health/cleanup-stuck-runs?timeout_minutes=0&dry_run=false", KEY,
                NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "timed_out_run_ids"), 0)),
                     id);
    json_decref(j);
    r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "status"), "failed");
    cr_assert(strstr(ra_str(r, "error"),
                     "Run timed out after 0 minutes waiting in awaiting_video_generation"));
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- server-sent events -------------------------------------------------------------------------
 */

Test(runs, events_stream_replays_after_last_event_id_and_ends_with_the_run, .timeout = 60) {
    struct server s;
    ra_start(&s, small_media);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"watch it\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int fd = h_connect(s.port);
    cr_assert(fd >= 0);
    cr_assert(h_sendf(
        fd, "GET /v1/runs/%s/events HTTP/1.1\r\nHost: x\r\n" KEY "Last-Event-ID: 1\r\n\r\n", id));
    static char buf[65536];
    cr_assert(h_recv_until(fd, buf, sizeof buf, "awaiting_ideation_approval", 10000), "%s", buf);
    cr_assert(strstr(buf, "Content-Type: text/event-stream"));
    cr_assert(strstr(buf, "Transfer-Encoding: chunked"));
    cr_assert_null(strstr(buf, "id: 1\n"), "event 1 is before Last-Event-ID");
    cr_assert(strstr(buf, "id: 2\nevent: run\n"), "%s", buf);
    cr_assert(strstr(buf, "event: artifact\n"));
    /* a new event arrives on the open stream; the terminal one ends it */
    char path[128];
    snprintf(path, sizeof path, "/v1/runs/%s/cancel", id);
    int st;
    json_decref(ra_call(s.port, "POST", path, JSON_KEY, "{}", &st));
    cr_assert_eq(st, 200);
    cr_assert(h_recv_until(fd, buf, sizeof buf, "\r\n0\r\n\r\n", 10000),
              "the stream ends after a terminal status");
    cr_assert(strstr(buf, "\"status\":\"cancelled\""));
    close(fd);
    RA_ERR(s.port, "GET", "/v1/runs/00000000-0000-4000-8000-000000000000/events", KEY, NULL, 404,
           "not_found", "Run not found");
    RA_ERR(s.port, "GET", "/v1/runs/nope/events", KEY, NULL, 404, "not_found", "Run not found");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the runs client commands -------------------------------------------------------------------
 */

Test(runs, runs_commands_drive_a_whole_run, .timeout = 120) {
    struct server s;
    ra_start(&s, small_media);
    char url[80], out[65536];
    snprintf(url, sizeof url, "MYLOWARE_URL=http://127.0.0.1:%d", s.port);
    const char *env[] = {url, "MYLOWARE_API_KEY=dev-api-key", "LOG_LEVEL=error", NULL};
    const char *start_args[] = {"runs", "start", "cli driven", "--project", "motivational", NULL};
    cr_assert_eq(run_cmd(start_args, env, out, sizeof out), 0, "%s", out);
    char id[64];
    cr_assert_eq(sscanf(out, "%63s", id), 1);
    cr_assert_eq(strlen(id), 36, "the run id: %s", out);
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    const char *approve_args[] = {"runs", "approve", id, NULL};
    cr_assert_eq(run_cmd(approve_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "ideation approved"), "%s", out);
    cr_assert_eq(run_cmd(approve_args, env, out, sizeof out), 1, "no gate pending now: %s", out);
    json_decref(ra_wait_status(s.port, id, "awaiting_publish_approval", 60000));
    cr_assert_eq(run_cmd(approve_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "publish approved"), "%s", out);
    const char *watch_args[] = {"runs", "watch", id, NULL};
    cr_assert_eq(run_cmd(watch_args, env, out, sizeof out), 0,
                 "watch ends with the completed run: %s", out);
    cr_assert(strstr(out, "completed / completed"), "%s", out);
    cr_assert(strstr(out, "artifact video_clip"), "%s", out);
    const char *list_args[] = {"runs", "list", NULL};
    cr_assert_eq(run_cmd(list_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, id) && strstr(out, "completed"), "%s", out);
    const char *arts_args[] = {"runs", "artifacts", id, NULL};
    cr_assert_eq(run_cmd(arts_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "published_url"), "%s", out);
    const char *get_args[] = {"runs", "get", id, NULL};
    cr_assert_eq(run_cmd(get_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"status\": \"completed\""), "%s", out);
    const char *cancel_args[] = {"runs", "cancel", id, NULL};
    cr_assert_eq(run_cmd(cancel_args, env, out, sizeof out), 1,
                 "a completed run cannot be cancelled: %s", out);
    cr_assert(strstr(out, "already completed"), "%s", out);
    const char *resume_args[] = {"runs", "resume", id, NULL};
    cr_assert_eq(run_cmd(resume_args, env, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "is not resumable"), "%s", out);
    const char *bad_args[] = {"runs", "get", "../x", NULL};
    cr_assert_eq(run_cmd(bad_args, env, out, sizeof out), 2, "%s", out);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- durability, the aismr project, early deliveries --------------------------------------------
 */

Test(runs, kill_9_in_the_middle_of_a_run_loses_nothing, .timeout = 180) {
    struct server s;
    ra_start(&s, small_media);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"survive a crash\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "awaiting_video_generation", 30000));
    kill(s.pid, SIGKILL); /* clips are being made, downloaded, transcoded */
    int status;
    waitpid(s.pid, &status, 0);
    s.pid = 0;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", s.dir);
    const char *env[32];
    ra_env(env, 32, small_media);
    server_start_in(&s, dir, env);
    json_t *r = ra_wait_status(s.port, id, "awaiting_publish_approval", 90000);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "artifacts"), "clips")), 2);
    json_decref(r);
    json_decref(approve(s.port, id, "publish", true, &st));
    json_decref(ra_wait_status(s.port, id, "completed", 60000));
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'video_clip'", id);
    cr_assert_eq(ra_db_count(&s, sql), 2, "each clip exactly once");
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, whole_aismr_run_has_twelve_zodiac_clips, .timeout = 180) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.05", "FAKE_CLIP_SECONDS=0.5", "FAKE_CLIP_SIZE=64x112",
                         "FAKE_VIDEO_DELAY_MS=10", NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"aismr\",\"brief\":\"glass objects\"}");
    json_t *r = ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000);
    json_t *ideas = json_object_get(
        json_object_get(json_object_get(r, "artifacts"), "ideas_structured"), "ideas");
    cr_assert_eq(json_array_size(ideas), 12);
    cr_assert_str_eq(ra_str(json_array_get(ideas, 0), "title"), "Aries");
    cr_assert_str_eq(ra_str(json_array_get(ideas, 11), "title"), "Pisces");
    json_decref(r);
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    r = ra_wait_status(s.port, id, "awaiting_publish_approval", 150000);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "artifacts"), "clips")), 12);
    json_decref(r);
    json_decref(approve(s.port, id, "publish", true, &st));
    json_decref(ra_wait_status(s.port, id, "completed", 60000));
    char path[600];
    snprintf(path, sizeof path, "%s/media/renders/%s.mp4", s.dir, id);
    struct media_info info;
    cr_assert_eq(media_probe(path, &info, NULL), 0);
    cr_assert_eq(info.width * 16, info.height * 9);
    cr_assert(info.duration > 5.0, "twelve clips: %.2f s", info.duration);
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof path, "%s/media/thumbnails/thumb_%s_%d.jpg", s.dir, id, i);
        cr_assert_eq(access(path, R_OK), 0, "thumbnail %d", i);
    }
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* The fake names a video after its Idempotency-Key ("<run_id>:<index>"). */
void fake_hash_id(const char *prefix, const char *text, size_t n, char *out, size_t cap);

Test(runs, a_webhook_before_its_task_is_known_is_kept_and_applied, .timeout = 120) {
    struct server s;
    const char *env[] = {
        "RENDER_SCALE=0.1",      "FAKE_CLIP_SECONDS=1",
        "FAKE_CLIP_SIZE=96x160", "FAKE_VIDEO_DELAY_MS=30000",
        "JOB_RETRY_BASE_S=0.2",  NULL}; /* the fake's own deliveries come far too late */
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"early birds\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    long long now = (long long)time(NULL);
    for (int i = 0; i < 2; i++) {
        char key[80], task[80], body[300], msg[40];
        snprintf(key, sizeof key, "%s:%d", id, i);
        fake_hash_id("video_", key, 32, task, sizeof task);
        snprintf(
            body, sizeof body,
            "{\"id\":\"evt_%d\",\"object\":\"event\",\"created_at\":1,\"type\":\"video.completed\","
            "\"data\":{\"id\":\"%s\"}}",
            i, task);
        snprintf(msg, sizeof msg, "msg_early_%d", i);
        json_t *j;
        cr_assert_eq(deliver(s.port, SECRET, msg, now, body, &j), 200);
        cr_assert_str_eq(ra_str(j, "status"), "ignored");
        cr_assert_str_eq(ra_str(j, "error"), "Unknown task_id (no run mapping)");
        json_decref(j);
    }
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'early'"), 2);
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_t *r = ra_wait_status(s.port, id, "awaiting_publish_approval", 60000);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "artifacts"), "clips")), 2,
                 "both clips came from the early deliveries");
    json_decref(r);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM webhook_inbox WHERE status = 'applied'"), 2);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- the public demo
 * ----------------------------------------------------------------------------- */

static json_t *demo_view_until(int port, const char *token, const char *want, int ms) {
    char path[160];
    snprintf(path, sizeof path, "/v1/public/demo/runs/%s", token);
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        int st;
        json_t *j = ra_call(port, "GET", path, "", NULL, &st);
        cr_assert_eq(st, 200);
        if (strcmp(ra_str(j, "status"), want) == 0)
            return j;
        cr_assert(h_now_ms() < deadline, "demo run is %s, waited for %s", ra_str(j, "status"),
                  want);
        json_decref(j);
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

Test(runs, public_demo_disabled_then_a_whole_run, .timeout = 120) {
    struct server s;
    ra_start(&s, NULL);
    RA_ERR(s.port, "POST", "/v1/public/demo/start", "Content-Type: application/json\r\n",
           "{\"brief\":\"x\"}", 404, "not_found", "Public demo is disabled");
    RA_ERR(s.port, "GET", "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz012345", "", NULL, 404,
           "not_found", "Public demo is disabled");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    const char *env[] = {"RENDER_SCALE=0.1",
                         "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=30",
                         "PUBLIC_DEMO_ENABLED=true",
                         "PUBLIC_DEMO_CORS_ORIGINS=https://demo.example",
                         NULL};
    ra_start(&s, env);
    const char *cj = "Content-Type: application/json\r\nOrigin: https://demo.example\r\n";
    struct resp r;
    cr_assert(h_request(s.port, "POST", "/v1/public/demo/start", cj,
                        "{\"brief\":\"a public one\",\"name\":\"Ann\"}", &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    char v[128];
    cr_assert(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    cr_assert_str_eq(v, "https://demo.example");
    json_t *j = json_loads(r.body, 0, NULL);
    resp_free(&r);
    char token[64];
    snprintf(token, sizeof token, "%s", ra_str(j, "public_token"));
    cr_assert_eq(strlen(token), 32);
    cr_assert_str_eq(ra_str(j, "status"), "pending");
    json_decref(j);
    RA_ERR(s.port, "POST", "/v1/public/demo/start", "Content-Type: application/json\r\n", "{}", 422,
           "validation_error", NULL);
    RA_ERR(s.port, "GET", "/v1/public/demo/runs/abcdefghijklmnopqrstuvwxyz012345", "", NULL, 404,
           "not_found", "Run not found");
    cr_assert(h_request(s.port, "OPTIONS", "/v1/public/demo/start",
                        "Origin: https://demo.example\r\n", NULL, &r));
    cr_assert_eq(r.status, 204);
    cr_assert(resp_header(&r, "Access-Control-Allow-Methods", v, sizeof v));
    resp_free(&r);
    cr_assert(h_request(s.port, "OPTIONS", "/v1/public/demo/start",
                        "Origin: https://evil.example\r\n", NULL, &r));
    cr_assert_not(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v),
                  "only the listed origins");
    resp_free(&r);

    char path[200];
    snprintf(path, sizeof path, "/v1/public/demo/runs/%s/approve", token);
    j = demo_view_until(s.port, token, "awaiting_ideation_approval", 30000);
    cr_assert_str_eq(ra_str(j, "gate"), "ideation");
    cr_assert_not_null(ra_str(j, "ideas_markdown"));
    json_t *act = json_object_get(j, "activity");
    cr_assert_str_eq(ra_str(json_array_get(act, json_array_size(act) - 1), "type"), "run");
    json_decref(j);
    int st;
    json_decref(ra_call(s.port, "POST", path, "Content-Type: application/json\r\n", "{}", &st));
    cr_assert_eq(st, 200);
    j = demo_view_until(s.port, token, "awaiting_publish_approval", 60000);
    cr_assert_eq(json_integer_value(json_object_get(j, "clip_count")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "expected_clip_count")), 2);
    char video[200];
    snprintf(video, sizeof video, "%s", ra_str(j, "rendered_video_url"));
    json_decref(j);
    cr_assert(h_request(s.port, "GET", video, "Range: bytes=0-99\r\n", NULL, &r));
    cr_assert_eq(r.status, 206);
    cr_assert_eq(r.body_len, 100);
    resp_free(&r);
    json_decref(ra_call(s.port, "POST", path, "Content-Type: application/json\r\n",
                        "{\"comment\":\"ship it\"}", &st));
    cr_assert_eq(st, 200);
    j = demo_view_until(s.port, token, "completed", 30000);
    cr_assert(strncmp(ra_str(j, "published_url"), "https://www.tiktok.com/", 23) == 0);
    json_decref(j);
    RA_ERR(s.port, "POST", path, "Content-Type: application/json\r\n", "{}", 400, "bad_request",
           "Run is not awaiting approval");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* ---- moderation (SAFETY_PROVIDER=openai, the fake flags forbidden-test-phrase)
 * -------------------- */

Test(runs, moderation_blocks_inputs_and_agent_outputs, .timeout = 120) {
    struct server s;
    const char *env[] = {"SAFETY_PROVIDER=openai", "RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160", NULL};
    ra_start(&s, env);
    int st;
    json_t *j =
        ra_call(s.port, "POST", "/v1/runs/start", JSON_KEY,
                "{\"project\":\"motivational\",\"brief\":\"say forbidden-test-phrase now\"}", &st);
    const char *reason = ra_str(j, "reason");
    cr_assert(reason && strncmp(reason, "moderation:", 11) == 0, "reason %s", reason);
    ra_expect_error(j, st, 400, "content_blocked", NULL);
    cr_assert_eq(ra_db_count(&s, "SELECT count(*) FROM runs"), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, a_safety_hit_on_an_agent_output_fails_the_run, .timeout = 120) {
    /* a project whose caption template makes the publisher write a blocked word */
    char dir[] = "/tmp/myloware-projects-XXXXXX";
    cr_assert(mkdtemp(dir));
    char src[400], dst[400];
    snprintf(src, sizeof src, "%s/projects/motivational.json", MYLOWARE_SRCDIR);
    snprintf(dst, sizeof dst, "%s/motivational.json", dir);
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    cr_assert(in && out);
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        if (strstr(line, "\"caption_template\""))
            fputs("  \"caption_template\": \"{topic} - kill it\",\n", out);
        else
            fputs(line, out);
    }
    fclose(in);
    fclose(out);
    char pd[500];
    snprintf(pd, sizeof pd, "PROJECTS_DIR=%s", dir);
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1",
                         "FAKE_CLIP_SECONDS=1",
                         "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=30",
                         pd,
                         NULL};
    ra_start(&s, env);
    char *id =
        ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"a careful caption\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "awaiting_publish_approval", 60000));
    json_decref(approve(s.port, id, "publish", true, &st));
    json_t *r = ra_wait_status(s.port, id, "failed", 30000);
    cr_assert_str_eq(ra_str(r, "error"), "Safety check failed at publishing: matched_keyword:kill");
    cr_assert_null(json_object_get(json_object_get(r, "artifacts"), "published_url"),
                   "nothing published");
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    unlink(dst);
    rmdir(dir);
}

Test(runs, a_bad_project_file_stops_start_up_with_its_path, .timeout = 30) {
    char dir[] = "/tmp/myloware-projects-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"name\": \"broken\", \"video_count\": 0}", f);
    fclose(f);
    char pd[400], db[400], out[8192];
    snprintf(pd, sizeof pd, "PROJECTS_DIR=%s", dir);
    snprintf(db, sizeof db, "--database-url=sqlite:%s/db.sqlite", dir);
    const char *args[] = {"serve", "--port=0", db, NULL};
    const char *env[] = {pd, NULL};
    cr_assert_eq(run_cmd(args, env, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, path), "the path is named: %s", out);
    cr_assert(strstr(out, "is required") || strstr(out, "must be"), "the reason is given: %s", out);
    unlink(path);
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    unlink(path);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
    rmdir(dir);
}

static int deliver_q(int port, const char *query, const char *id, const char *body, json_t **out) {
    long long ts = (long long)time(NULL);
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(SECRET, id, ts, body, strlen(body), sig), 0);
    char headers[600], path[200];
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\r\nwebhook-id: %s\r\nwebhook-timestamp: "
             "%lld\r\nwebhook-signature: %s\r\n",
             id, ts, sig);
    snprintf(path, sizeof path, "/v1/webhooks/sora%s", query);
    int st;
    *out = ra_call(port, "POST", path, headers, body, &st);
    return st;
}

Test(runs, legacy_envelope_needs_its_run_and_fails_the_clip, .timeout = 120) {
    struct server s;
    const char *env[] = {"RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1", "FAKE_CLIP_SIZE=96x160",
                         "FAKE_VIDEO_DELAY_MS=600000", NULL};
    ra_start(&s, env);
    char *id = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"old style\"}");
    char *other = ra_start_run(s.port, "{\"project\":\"motivational\",\"brief\":\"someone else\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int st;
    json_decref(approve(s.port, id, "ideation", true, &st));
    json_decref(ra_wait_status(s.port, id, "awaiting_video_generation", 30000));
    char path[400], sql[300], task[128];
    snprintf(path, sizeof path, "%s/db.sqlite", s.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    snprintf(sql, sizeof sql,
             "SELECT task_id FROM run_tasks WHERE run_id = '%s' AND video_index = 0", id);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(task, sizeof task, "%s", sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    char body[400], query[100];
    snprintf(body, sizeof body,
             "{\"code\":200,\"msg\":\"failed\",\"data\":{\"taskId\":\"%s\",\"state\":\"fail\"}}",
             task);
    json_t *j;
    cr_assert_eq(deliver_q(s.port, "", "msg_l1", body, &j), 400);
    ra_expect_error(j, 400, 400, "bad_request", "Missing run_id query parameter");
    snprintf(query, sizeof query, "?run_id=%s", other);
    cr_assert_eq(deliver_q(s.port, query, "msg_l2", body, &j), 200);
    cr_assert_str_eq(ra_str(j, "status"), "ignored", "the task is not that run's");
    json_decref(j);
    snprintf(query, sizeof query, "?run_id=%s", id);
    cr_assert_eq(deliver_q(s.port, query, "msg_l3", body, &j), 200);
    expect_ack_keys(j);
    cr_assert_str_eq(ra_str(j, "status"), "accepted");
    cr_assert_str_eq(ra_str(j, "run_id"), id);
    cr_assert_eq(json_integer_value(json_object_get(j, "video_index")), 0);
    json_decref(j);
    json_t *r = ra_wait_status(s.port, id, "failed", 30000);
    cr_assert_str_eq(ra_str(r, "error"), "OpenAI Sora error: video.failed");
    json_decref(r);
    free(id);
    free(other);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(runs, telegram_messages_at_the_gates, .timeout = 60) {
    struct server s;
    const char *env[] = {"TELEGRAM_BOT_TOKEN=123:test-token", NULL};
    ra_start(&s, env);
    char *id = ra_start_run(
        s.port,
        "{\"project\":\"motivational\",\"brief\":\"tell me\",\"telegram_chat_id\":\"4242\"}");
    json_decref(ra_wait_status(s.port, id, "awaiting_ideation_approval", 30000));
    int64_t deadline = h_now_ms() + 20000;
    long long sent = 0;
    while (
        h_now_ms() < deadline &&
        (sent = ra_db_count(
             &s, "SELECT count(*) FROM jobs WHERE type = 'notify.send' AND state = 'succeeded' AND "
                 "payload LIKE '%ideas are ready for review%' AND payload LIKE '%4242%'")) < 1) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(sent, 1, "one message for the ideation gate");
    /* the client's info line is batched (written within 10 ms): wait for it */
    char *log = server_log_wait(&s, "sendMessage\",\"status\":200", 5000);
    cr_assert(strstr(log, "sendMessage\",\"status\":200"),
              "the message reached the (fake) Bot API");
    cr_assert_null(strstr(log, "123:test-token"), "the bot token is never logged");
    free(log);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
