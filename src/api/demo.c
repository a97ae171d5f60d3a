/*
 * demo: the public demo (api.md §8), no API key: POST /v1/public/demo/start (a motivational run
 * owned by a random 32-char token that expires after PUBLIC_DEMO_TOKEN_TTL_HOURS), GET
 * /v1/public/demo/runs/{token} (the run view of reference/original-api.md §3.11), POST
 * .../approve|reject (the pending gate), GET .../rendered_video (the final MP4, Range
 * supported). Everything is 404 "Public demo is disabled" unless PUBLIC_DEMO_ENABLED. Writes are
 * rate limited per client IP (PUBLIC_DEMO_RATE_LIMIT) and take an Idempotency-Key (api.md §3;
 * scoped per client IP, as there is no API key). CORS for the exact origins of
 * PUBLIC_DEMO_CORS_ORIGINS, preflights answered (OPTIONS).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/idem.h"
#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/file.h"
#include "providers/providers.h"
#include "storage/storage.h"
#include "workflow/safety.h"
#include "workflow/workflow.h"

#define TOKEN_LEN 32
#define IDEAS_MAX 18000
#define ACTIVITY_MAX 11

/* "Access-Control-Allow-Origin: <origin>\r\nVary: Origin\r\n" when the Origin is allowed. */
static void cors(http_req_t *req, char *out, size_t cap) {
    app_t *app = req->app;
    out[0] = '\0';
    size_t n = 0;
    const char *origin = http_header(req, "Origin", &n);
    const char *list = config_str(app->cfg, S_PUBLIC_DEMO_CORS_ORIGINS);
    if (!origin || !n || n > 512 || !*list)
        return;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && memcmp(p, origin, n) == 0) {
            snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)n,
                     origin);
            return;
        }
        if (!e)
            break;
        p = e + 1;
    }
}

static void err(http_req_t *req, int status, const char *code, const char *detail) {
    char h[700];
    cors(req, h, sizeof h);
    http_respond_error(req, status, code, detail, NULL, *h ? h : NULL);
}

static void ok_json(http_req_t *req, int status, json_t *j) {
    char h[700];
    cors(req, h, sizeof h);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    http_respond(req, status, "application/json", s, strlen(s), *h ? h : NULL);
    free(s);
}

static bool enabled(http_req_t *req) {
    app_t *app = req->app;
    if (config_bool(app->cfg, S_PUBLIC_DEMO_ENABLED))
        return true;
    err(req, 404, "not_found", "Public demo is disabled");
    return false;
}

static bool allowed_workflow(const config_t *cfg, const char *name) {
    const char *list = config_str(cfg, S_PUBLIC_DEMO_ALLOWED_WORKFLOWS);
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

/* ---- the run view
 * --------------------------------------------------------------------------------- */

static const char *activity_message(const artifact_t *a, char *buf, size_t cap) {
    json_t *m = a->metadata ? json_loads(a->metadata, 0, NULL) : NULL;
    const char *t = a->type;
    if (strcmp(t, "ideas") == 0)
        snprintf(buf, cap, "Ideation draft generated");
    else if (strcmp(t, "producer_output") == 0)
        snprintf(buf, cap, "Producer prepared Sora prompts");
    else if (strcmp(t, "publisher_output") == 0)
        snprintf(buf, cap, "Publisher prepared TikTok upload");
    else if (strcmp(t, "clip_manifest") == 0)
        snprintf(buf, cap, "Submitted clip requests (%lld tasks)",
                 (long long)json_integer_value(json_object_get(m, "task_count")));
    else if (strcmp(t, "video_clip") == 0)
        snprintf(buf, cap, "Clip ready (#%lld)",
                 (long long)json_integer_value(json_object_get(m, "video_index")) + 1);
    else if (strcmp(t, "editor_output") == 0)
        snprintf(buf, cap, "Render started (job %s)",
                 json_string_value(json_object_get(m, "render_job_id"))
                     ? json_string_value(json_object_get(m, "render_job_id"))
                     : "?");
    else if (strcmp(t, "rendered_video") == 0)
        snprintf(buf, cap, "Render complete");
    else if (strcmp(t, "published_url") == 0)
        snprintf(buf, cap, "Published to TikTok");
    else
        snprintf(buf, cap, "%s", t);
    json_decref(m);
    return buf;
}

static json_t *iso(int64_t ms) {
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(ms, ts);
    return json_string(ts);
}

/* Database thread: the view of run r with its artifacts. */
static json_t *view(store_tx_t *tx, const run_t *r) {
    json_t *art = json_loads(r->artifacts ? r->artifacts : "{}", 0, NULL);
    json_t *ctx = json_loads(r->context ? r->context : "{}", 0, NULL);
    const char *gate = strcmp(r->status, "awaiting_ideation_approval") == 0  ? "ideation"
                       : strcmp(r->status, "awaiting_publish_approval") == 0 ? "publish"
                                                                             : NULL;
    const char *ideas = json_string_value(json_object_get(art, "ideas"));
    json_t *ideas_j = json_null();
    if (ideas) {
        size_t n = strlen(ideas);
        if (n > IDEAS_MAX) {
            char *t = xmalloc(IDEAS_MAX + 32);
            memcpy(t, ideas, IDEAS_MAX);
            strcpy(t + IDEAS_MAX, "\n\n…(truncated)…");
            ideas_j = json_string(t);
            free(t);
        } else {
            ideas_j = json_string(ideas);
        }
    }
    char rendered[160];
    snprintf(rendered, sizeof rendered, "/v1/public/demo/runs/%s/rendered_video", r->public_token);
    json_t *rp = json_object_get(art, "render_progress");
    json_t *sp = json_object_get(art, "sora_progress");
    int clips = (int)json_array_size(json_object_get(art, "clips"));
    json_t *o = json_pack(
        "{s:s,s:o,s:o,s:s,s:o,s:o,s:O?,s:o,s:O?,s:O?,s:O?,s:o,s:i,s:i,s:O?,s:o}", "status",
        r->status, "current_step", *r->step ? json_string(r->step) : json_null(), "gate",
        gate ? json_string(gate) : json_null(), "brief", r->brief ? r->brief : "", "created_at",
        iso(r->created_at), "updated_at", iso(r->updated_at), "published_url",
        json_object_get(art, "published_url"), "rendered_video_url",
        json_object_get(art, "video_url") ? json_string(rendered) : json_null(), "render_job_id",
        json_object_get(ctx, "render_job_id"), "render_status", json_object_get(rp, "status"),
        "render_progress_percent", json_object_get(rp, "progress_percent"), "ideas_markdown",
        ideas_j, "clip_count", clips, "expected_clip_count", r->clips_expected,
        "video_progress_percent", json_object_get(sp, "progress_percent"), "error",
        r->error ? json_string(r->error) : json_null());
    /* activity: the newest artifacts, newest first, then the run's creation */
    artifact_t *as = xcalloc(256, sizeof *as);
    int n = 256;
    json_t *act = json_array();
    if (tx->s->ops->artifact_list(tx, r->id, NULL, as, &n) == 0) {
        for (int i = n - 1; i >= 0 && (int)json_array_size(act) < ACTIVITY_MAX; i--) {
            char msg[160];
            json_array_append_new(act, json_pack("{s:o,s:s,s:s}", "at", iso(as[i].created_at),
                                                 "type", as[i].type, "message",
                                                 activity_message(&as[i], msg, sizeof msg)));
        }
    }
    for (int i = 0; i < n; i++)
        artifact_release(&as[i]);
    free(as);
    json_array_append_new(act, json_pack("{s:o,s:s,s:s}", "at", iso(r->created_at), "type", "run",
                                         "message", "Run created"));
    json_object_set_new(o, "activity", act);
    json_decref(art);
    json_decref(ctx);
    return o;
}

/* ---- units
 * ----------------------------------------------------------------------------------------- */

enum dop { D_START, D_GET, D_APPROVE, D_REJECT, D_VIDEO };

struct dcall {
    http_req_t *req;
    enum dop op;
    char token[TOKEN_LEN + 1];
    const project_t *project;
    char *brief, *comment;
    char reason[160];
    json_t *out;
    char video_key[128];
    bool not_awaiting;
    /* Idempotency-Key of the writes (api.md §3), scoped per client IP */
    char *idem_key;
    char idem_hash[API_IDEM_HASH_LEN], idem_scope[64];
    struct idem_result idem;
};

static int find_token(store_tx_t *tx, const char *token, run_t *r) {
    int rc = tx->s->ops->run_by_token(tx, token, r);
    if (rc)
        return rc;
    if (r->public_expires_at && r->public_expires_at < clock_now_ms()) {
        run_release(r);
        return ERR_NOTFOUND;
    }
    return 0;
}

static int demo_op_unit(store_tx_t *tx, void *arg) {
    struct dcall *d = arg;
    app_t *app = d->req->app;
    run_t r;
    memset(&r, 0, sizeof r);
    int rc;
    switch (d->op) {
    case D_START: {
        uint8_t raw[24];
        crypto_random(raw, sizeof raw);
        char b64[40];
        crypto_base64(raw, sizeof raw, b64);
        for (char *p = b64; *p; p++) /* URL-safe alphabet */
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        snprintf(d->token, sizeof d->token, "%.32s", b64);
        struct wf_start_req q = {.project = d->project,
                                 .brief = d->brief,
                                 .public_token = d->token,
                                 .public_expires_at =
                                     clock_now_ms() +
                                     config_int(app->cfg, S_PUBLIC_DEMO_TOKEN_TTL_HOURS) * 3600000};
        rc = wf_start(tx, &q, &r);
        if (rc)
            return rc;
        run_release(&r);
        d->out = json_pack("{s:s,s:s,s:s}", "public_token", d->token, "status", "pending",
                           "message", "Got it — we’re generating your motivational video now.");
        return 0;
    }
    case D_GET:
        if ((rc = find_token(tx, d->token, &r)) != 0)
            return rc;
        d->out = view(tx, &r);
        run_release(&r);
        return 0;
    case D_VIDEO: {
        if ((rc = find_token(tx, d->token, &r)) != 0)
            return rc;
        json_t *ctx = json_loads(r.context ? r.context : "{}", 0, NULL);
        const char *key = json_string_value(json_object_get(ctx, "video_key"));
        snprintf(d->video_key, sizeof d->video_key, "%s", key ? key : "");
        json_decref(ctx);
        run_release(&r);
        return 0;
    }
    case D_APPROVE:
    case D_REJECT: {
        if ((rc = find_token(tx, d->token, &r)) != 0)
            return rc;
        const char *gate = strcmp(r.status, "awaiting_ideation_approval") == 0  ? "ideation"
                           : strcmp(r.status, "awaiting_publish_approval") == 0 ? "publish"
                                                                                : NULL;
        char id[RUN_ID_LEN];
        memcpy(id, r.id, sizeof id);
        run_release(&r);
        if (!gate) {
            d->not_awaiting = true;
            return ERR_CONFLICT;
        }
        rc = wf_gate(tx, id, gate, d->op == D_APPROVE, d->comment, "public-demo", &r);
        if (rc == ERR_CONFLICT)
            d->not_awaiting = true;
        if (rc)
            return rc;
        d->out = view(tx, &r);
        run_release(&r);
        return 0;
    }
    }
    return ERR_INTERNAL;
}

/* demo_op_unit behind the Idempotency-Key: a known key answers from its record, a new one
 * records the answer in the same transaction. Database thread. */
static int demo_unit(store_tx_t *tx, void *arg) {
    struct dcall *d = arg;
    const struct store_ops *ops = tx->s->ops;
    if (d->idem_key) {
        int rc = ops->idem_begin(tx, d->idem_scope, d->idem_key, d->idem_hash, clock_now_ms(),
                                 API_IDEM_TTL_MS, &d->idem);
        if (rc || d->idem.state != IDEM_NEW)
            return rc;
    }
    int rc = demo_op_unit(tx, d);
    if (rc == 0 && d->idem_key) {
        char *body = json_dumps(d->out, JSON_COMPACT);
        rc = ops->idem_finish(tx, d->idem_scope, d->idem_key, 200, body);
        free(body);
    }
    return rc;
}

static void dcall_free(struct dcall *d) {
    free(d->idem_key);
    free(d->idem.body);
    free(d->brief);
    free(d->comment);
    json_decref(d->out);
    free(d);
}

static void demo_done(void *arg, int rc) {
    struct dcall *d = arg;
    http_req_t *req = d->req;
    app_t *app = req->app;
    if (rc == 0 && d->idem_key && d->idem.state != IDEM_NEW) { /* a key seen before */
        char h[700];
        cors(req, h, sizeof h);
        api_idem_answer(req, &d->idem, *h ? h : NULL);
        dcall_free(d);
        return;
    }
    if (rc == ERR_NOTFOUND) {
        err(req, 404, "not_found", "Run not found");
    } else if (rc == ERR_CONFLICT && d->not_awaiting) {
        err(req, 400, "bad_request", "Run is not awaiting approval");
    } else if (rc) {
        log_error("api", "public demo request failed", LF_S("request_id", req->request_id),
                  LF_S("error", err_name(rc)));
        err(req, 500, "internal_error", "Internal server error");
    } else if (d->op == D_VIDEO) {
        char path[4096];
        if (!d->video_key[0] ||
            storage_local_path(app->storage, d->video_key, path, sizeof path) != 0) {
            err(req, 404, "not_found", "Video not found");
        } else {
            char h[700];
            cors(req, h, sizeof h);
            struct http_file_opts o = {.content_type = "video/mp4",
                                       .cache_control = "private, max-age=0",
                                       .extra_headers = *h ? h : NULL,
                                       .not_found_detail = "Video not found"};
            http_file_send(req, path, &o);
        }
    } else {
        if (d->op != D_GET)
            workflow_kick(app->workflow);
        ok_json(req, 200, json_incref(d->out));
    }
    dcall_free(d);
}

/* ---- handlers
 * --------------------------------------------------------------------------------------- */

static bool take_token(http_req_t *req, struct dcall *d) {
    int n = http_param(req, 0, d->token, sizeof d->token);
    bool ok = n == TOKEN_LEN;
    for (int i = 0; ok && i < n; i++) {
        char c = d->token[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    }
    if (!ok) {
        err(req, 404, "not_found", "Run not found");
        dcall_free(d);
    }
    return ok;
}

/* A call; the writes take their Idempotency-Key (api/idem.h). NULL: answered 422. */
static struct dcall *dcall_new(http_req_t *req, enum dop op) {
    char *key = NULL, hash[API_IDEM_HASH_LEN] = "";
    if (op == D_START || op == D_APPROVE || op == D_REJECT) {
        char h[700];
        cors(req, h, sizeof h);
        if (!api_idem_take(req, &key, hash, *h ? h : NULL))
            return NULL;
    }
    struct dcall *d = xcalloc(1, sizeof *d);
    d->req = req;
    d->op = op;
    if (key) {
        d->idem_key = key;
        memcpy(d->idem_hash, hash, sizeof hash);
        char ip[48];
        http_client_ip(req, ip, sizeof ip);
        snprintf(d->idem_scope, sizeof d->idem_scope, "public:%s", ip);
    }
    return d;
}

static void field_error(http_req_t *req, const char *field, const char *message) {
    char h[700];
    cors(req, h, sizeof h);
    json_t *extra = json_pack("{s:[{s:s,s:s}]}", "fields", "field", field, "message", message);
    http_respond_error(req, 422, "validation_error", "Request validation failed", extra,
                       *h ? h : NULL);
}

/* SAFETY_PROVIDER=openai: the brief is moderated before the run is made (fail-closed: 503). */
static void demo_moderated(const struct safety_result *r, void *ud) {
    struct dcall *d = ud;
    http_req_t *req = d->req;
    if (r->st.outcome != PROV_OK) {
        err(req, 503, "safety_unavailable", "Safety check unavailable");
    } else if (r->flagged) {
        char h[700], reason[160];
        cors(req, h, sizeof h);
        snprintf(reason, sizeof reason, "moderation:%s", r->category ? r->category : "flagged");
        http_respond_error(req, 400, "content_blocked", "Content blocked by the safety filter",
                           json_pack("{s:s}", "reason", reason), *h ? h : NULL);
    } else {
        store_submit(((app_t *)req->app)->store, demo_unit, d, demo_done);
        return;
    }
    dcall_free(d);
}

void api_demo_start(http_req_t *req) {
    app_t *app = req->app;
    if (!enabled(req))
        return;
    json_t *b = json_object_get(req->json, "brief"), *name = json_object_get(req->json, "name");
    if (!json_is_string(b) || json_string_length(b) == 0 || json_string_length(b) > 4000) {
        field_error(req, "brief", !b ? "is required" : "must be a string of 1 to 4000 characters");
        return;
    }
    if (name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 80)) {
        field_error(req, "name", "must be a string of at most 80 characters");
        return;
    }
    if (!allowed_workflow(app->cfg, "motivational") ||
        !workflow_project(app->workflow, "motivational")) {
        err(req, 403, "forbidden", "Workflow not available for public demo");
        return;
    }
    struct dcall *d =
        dcall_new(req, D_START); /* validates the Idempotency-Key: before the rate limit */
    if (!d)
        return;
    char rl_cors[700];
    cors(req, rl_cors, sizeof rl_cors);
    if (!http_rate_check_hdr(req, rl_cors)) {
        dcall_free(d);
        return;
    }
    char entry[128];
    if (safety_blocked(config_str(app->cfg, S_SAFETY_BLOCKLIST), json_string_value(b), entry,
                       sizeof entry)) {
        char h[700], reason[160];
        cors(req, h, sizeof h);
        safety_reason(entry, reason, sizeof reason);
        http_respond_error(req, 400, "content_blocked", "Content blocked by the safety filter",
                           json_pack("{s:s}", "reason", reason), *h ? h : NULL);
        dcall_free(d);
        return;
    }
    d->project = workflow_project(app->workflow, "motivational");
    d->brief = xstrdup(json_string_value(b));
    if (app->providers &&
        providers_safety_enabled(app->providers)) { /* api.md §3: the moderation API too */
        if (provider_safety_check(app->providers, d->brief, demo_moderated, d, NULL) != 0) {
            err(req, 503, "safety_unavailable", "Safety check unavailable");
            dcall_free(d);
        }
        return;
    }
    store_submit(app->store, demo_unit, d, demo_done);
}

void api_demo_get(http_req_t *req) {
    app_t *app = req->app;
    if (!enabled(req))
        return;
    struct dcall *d = dcall_new(req, D_GET);
    if (take_token(req, d))
        store_submit(app->store, demo_unit, d, demo_done);
}

static void decide(http_req_t *req, enum dop op) {
    app_t *app = req->app;
    if (!enabled(req))
        return;
    struct dcall *d = dcall_new(req, op);
    if (!d || !take_token(req, d))
        return;
    json_t *c = json_object_get(req->json, "comment");
    if (c && !json_is_null(c) && (!json_is_string(c) || json_string_length(c) > 240)) {
        dcall_free(d);
        field_error(req, "comment", "must be a string of at most 240 characters");
        return;
    }
    char rl_cors[700];
    cors(req, rl_cors, sizeof rl_cors);
    if (!http_rate_check_hdr(req, rl_cors)) {
        dcall_free(d);
        return;
    }
    char entry[128];
    if (json_is_string(c) && safety_blocked(config_str(app->cfg, S_SAFETY_BLOCKLIST),
                                            json_string_value(c), entry, sizeof entry)) {
        char h[700], reason[160];
        cors(req, h, sizeof h);
        safety_reason(entry, reason, sizeof reason);
        http_respond_error(req, 400, "content_blocked", "Content blocked by the safety filter",
                           json_pack("{s:s}", "reason", reason), *h ? h : NULL);
        dcall_free(d);
        return;
    }
    d->comment = json_is_string(c) ? xstrdup(json_string_value(c)) : NULL;
    store_submit(app->store, demo_unit, d, demo_done);
}

void api_demo_approve(http_req_t *req) { decide(req, D_APPROVE); }
void api_demo_reject(http_req_t *req) { decide(req, D_REJECT); }

void api_demo_video(http_req_t *req) {
    app_t *app = req->app;
    if (!enabled(req))
        return;
    struct dcall *d = dcall_new(req, D_VIDEO);
    if (take_token(req, d))
        store_submit(app->store, demo_unit, d, demo_done);
}

/* CORS preflight. */
void api_demo_options(http_req_t *req) {
    if (!enabled(req))
        return;
    char h[1024], c[700];
    cors(req, c, sizeof c);
    snprintf(h, sizeof h,
             "%sAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\nAccess-Control-Allow-Headers: "
             "Content-Type, "
             "Idempotency-Key, Range\r\nAccess-Control-Max-Age: 600\r\n",
             c);
    http_respond(req, 204, NULL, NULL, 0, h);
}
