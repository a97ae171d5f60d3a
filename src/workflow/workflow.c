/*
 * workflow: the engine's core: projects, the run read-modify-write helpers, the decisions the
 * API makes (start, gates, cancel, deliveries), the run object, and the dead-letter and replay
 * hooks. The steps themselves are in steps.c.
 */
#include "workflow/workflow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "media/media.h"
#include "providers/providers.h"
#include "queue/dispatcher.h"
#include "workflow/engine.h"

workflow_t *wf_global;

/* ---- lifecycle ----------------------------------------------------------------------------------
 */

int workflow_new(struct app *app, workflow_t **out, buf_t *err) {
    workflow_t *w = xcalloc(1, sizeof *w);
    w->app = app;
    w->cfg = app->cfg;
    int rc = projects_load(config_str(app->cfg, S_PROJECTS_DIR), &w->projects, err);
    if (rc) {
        free(w);
        return rc;
    }
    queue_policy_from_config(&w->pol, app->cfg);
    snprintf(w->tmp_dir, sizeof w->tmp_dir, "%s/.tmp", config_str(app->cfg, S_MEDIA_DIR));
    if (mkdir(w->tmp_dir, 0750) != 0 && errno != EEXIST)
        log_warn("workflow", "cannot create the download directory", LF_S("dir", w->tmp_dir),
                 LF_S("error", strerror(errno)));
    wf_global = w;
    *out = w;
    return 0;
}

void workflow_free(workflow_t *w) {
    if (!w)
        return;
    if (wf_global == w)
        wf_global = NULL;
    projects_free(w->projects);
    free(w);
}

const projects_t *workflow_projects(const workflow_t *w) { return w->projects; }
const project_t *workflow_project(const workflow_t *w, const char *name) {
    return projects_find(w->projects, name);
}

void workflow_kick(workflow_t *w) {
    if (w && w->app->dispatcher)
        dispatcher_kick(w->app->dispatcher);
}

/* ---- the run read-modify-write ------------------------------------------------------------------
 */

static json_t *parse_obj(const char *text) {
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    return j;
}

int rtx_load(store_tx_t *tx, const char *run_id, struct rtx *x) {
    memset(x, 0, sizeof *x);
    x->tx = tx;
    int rc = tx->s->ops->run_get(tx, run_id, true, &x->r);
    if (rc)
        return rc;
    x->loaded = true;
    x->art = parse_obj(x->r.artifacts);
    x->ctx = parse_obj(x->r.context);
    int s = run_status_parse(x->r.status), st = run_step_parse(x->r.step);
    x->status = x->read_status = s < 0 ? RS_FAILED : (enum run_status)s;
    x->step = x->read_step = st < 0 ? RSTEP_NONE : (enum run_step)st;
    return 0;
}

void rtx_release(struct rtx *x) {
    if (x->loaded)
        run_release(&x->r);
    json_decref(x->art);
    json_decref(x->ctx);
    x->art = x->ctx = NULL;
    x->loaded = false;
}

void rtx_move(struct rtx *x, enum run_status s, enum run_step step) {
    x->status = s;
    x->step = step;
}

const project_t *rtx_project(const struct rtx *x) {
    return wf_global ? projects_find(wf_global->projects, x->r.workflow) : NULL;
}

static const char *default_message(enum run_status s, enum run_step step) {
    switch (s) {
    case RS_PENDING: return "Run created";
    case RS_RUNNING:
        return step == RSTEP_IDEATION     ? "Ideation started"
               : step == RSTEP_PRODUCTION ? "Production started"
               : step == RSTEP_PUBLISHING ? "Publishing started"
                                          : "Running";
    case RS_AWAIT_IDEATION: return "Ideas ready for review";
    case RS_AWAIT_VIDEOS: return "Waiting for video generation";
    case RS_AWAIT_RENDER:
        return step == RSTEP_WAIT_RENDER ? "Waiting for the render" : "All clips ready; editing";
    case RS_AWAIT_PUBLISH_APPROVAL: return "Video ready for publish review";
    case RS_AWAIT_PUBLISH: return "Waiting for the publisher";
    case RS_COMPLETED: return "Run completed";
    case RS_FAILED: return "Run failed";
    case RS_REJECTED: return "Run rejected";
    case RS_CANCELLED: return "Run cancelled";
    default: return "";
    }
}

static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    return s ? s : xstrdup("{}");
}

static char *dump_pack(json_t *j) {
    char *s = dump(j);
    json_decref(j);
    return s;
}

/* TELEGRAM_BOT_TOKEN and a telegram_chat_id: a message at each gate and at the end, as a job of
 * its own (no run id: a notification that cannot be sent never fails the run). */
static int notify(struct rtx *x) {
    if (!x->r.telegram_chat_id || !*x->r.telegram_chat_id ||
        !*config_str(wf_global->cfg, S_TELEGRAM_BOT_TOKEN))
        return 0;
    char text[600];
    switch (x->status) {
    case RS_AWAIT_IDEATION:
        snprintf(text, sizeof text,
                 "Run %s: the ideas are ready for review (approve the ideation gate).", x->r.id);
        break;
    case RS_AWAIT_PUBLISH_APPROVAL:
        snprintf(text, sizeof text,
                 "Run %s: the video is rendered and waits for your publish approval.", x->r.id);
        break;
    case RS_COMPLETED:
    case RS_FAILED:
    case RS_REJECTED:
    case RS_CANCELLED:
        snprintf(text, sizeof text, "Run %s %s%s%s", x->r.id, run_status_name(x->status),
                 x->r.error ? ": " : ".", x->r.error ? x->r.error : "");
        break;
    default: return 0;
    }
    char *p = dump_pack(
        json_pack("{s:s,s:s,s:s}", "chat_id", x->r.telegram_chat_id, "text", text, "run", x->r.id));
    struct queue_new n = {.type = "notify.send", .payload = p};
    job_t j;
    bool existed;
    int rc = queue_enqueue(x->tx, &wf_global->pol, &n, &j, &existed);
    if (rc == 0)
        job_release(&j);
    free(p);
    return rc;
}

int rtx_save(struct rtx *x, const char *message) {
    store_tx_t *tx = x->tx;
    char expect[RUN_STATUS_MAX];
    snprintf(expect, sizeof expect, "%s", x->r.status);
    snprintf(x->r.status, sizeof x->r.status, "%s", run_status_name(x->status));
    snprintf(x->r.step, sizeof x->r.step, "%s", run_step_name(x->step));
    free(x->r.artifacts);
    free(x->r.context);
    x->r.artifacts = dump(x->art);
    x->r.context = dump(x->ctx);
    x->r.updated_at = clock_now_ms();
    int rc = tx->s->ops->run_update(tx, &x->r, expect);
    if (rc)
        return rc;
    if (x->status != x->read_status || x->step != x->read_step) {
        run_event_t e;
        memset(&e, 0, sizeof e);
        memcpy(e.run_id, x->r.id, sizeof e.run_id);
        snprintf(e.kind, sizeof e.kind, "run");
        snprintf(e.status, sizeof e.status, "%s", x->r.status);
        snprintf(e.step, sizeof e.step, "%s", x->r.step);
        e.message = (char *)(message ? message : default_message(x->status, x->step));
        json_t *d = json_pack("{s:s,s:s,s:s?,s:s,s:s?}", "run_id", x->r.id, "status", x->r.status,
                              "current_step", *x->r.step ? x->r.step : NULL, "message", e.message,
                              "error", x->r.error);
        e.data = dump(d);
        json_decref(d);
        e.at = x->r.updated_at;
        rc = tx->s->ops->run_event_add(tx, &e);
        free(e.data);
        if (rc)
            return rc;
        rc = notify(x);
        if (rc)
            return rc;
        if (run_status_terminal(x->status) && !run_status_terminal(x->read_status)) {
            buf_t lb;
            buf_init(&lb, 256);
            metrics_label(&lb, "workflow", x->r.workflow);
            metrics_label(&lb, "status", x->r.status);
            metrics_add(M_RUNS, lb.data, 1);
            buf_release(&lb);
            log_info("workflow", "run finished", LF_S("run_id", x->r.id),
                     LF_S("status", x->r.status), LF_S("error", x->r.error));
        }
    }
    x->read_status = x->status;
    x->read_step = x->step;
    return 0;
}

void rtx_fail(struct rtx *x, const char *error, const char *job_type) {
    if (run_status_terminal(x->status))
        return;
    json_object_set_new(x->ctx, "failed",
                        json_pack("{s:s,s:s,s:s?}", "status", run_status_name(x->status), "step",
                                  run_step_name(x->step), "job_type", job_type));
    free(x->r.error);
    const char *e = error ? error : "failed";
    x->r.error = xstrndup(e, strnlen(e, 2000));
    rtx_move(x, RS_FAILED, x->step);
}

int rtx_artifact(struct rtx *x, const char *type, const char *persona, const char *content,
                 const char *uri, json_t *metadata, const char *dedupe, bool *existed) {
    store_tx_t *tx = x->tx;
    artifact_t a;
    memset(&a, 0, sizeof a);
    crypto_uuid4(a.id);
    memcpy(a.run_id, x->r.id, sizeof a.run_id);
    snprintf(a.type, sizeof a.type, "%s", type);
    snprintf(a.persona, sizeof a.persona, "%s", persona ? persona : "");
    a.content = (char *)content;
    a.uri = (char *)uri;
    a.metadata = metadata ? dump(metadata) : NULL;
    a.dedupe = (char *)dedupe;
    a.created_at = clock_now_ms();
    bool ex = false;
    int rc = tx->s->ops->artifact_add(tx, &a, &ex);
    if (existed)
        *existed = ex;
    if (rc == 0 && !ex) {
        run_event_t e;
        memset(&e, 0, sizeof e);
        memcpy(e.run_id, x->r.id, sizeof e.run_id);
        snprintf(e.kind, sizeof e.kind, "artifact");
        snprintf(e.status, sizeof e.status, "%s", run_status_name(x->status));
        snprintf(e.step, sizeof e.step, "%s", run_step_name(x->step));
        e.message = (char *)type;
        json_t *d = json_pack("{s:s,s:s,s:s,s:s?,s:s?}", "id", a.id, "run_id", a.run_id, "type",
                              type, "persona", persona, "uri", uri);
        e.data = dump(d);
        json_decref(d);
        e.at = a.created_at;
        rc = tx->s->ops->run_event_add(tx, &e);
        free(e.data);
    }
    free(a.metadata);
    json_decref(metadata);
    return rc;
}

int rtx_enqueue_at(struct rtx *x, const char *type, json_t *payload, const char *idem_key,
                   int64_t run_at, bool *existed) {
    if (!payload)
        payload = json_object();
    json_object_set_new(payload, "run_id", json_string(x->r.id));
    char *p = dump(payload);
    json_decref(payload);
    struct queue_new n = {.type = type,
                          .run_id = x->r.id,
                          .payload = p,
                          .idempotency_key = idem_key,
                          .run_at = run_at};
    job_t j;
    bool had = false;
    int rc = queue_enqueue(x->tx, &wf_global->pol, &n, &j, &had);
    if (rc == 0)
        job_release(&j);
    if (existed)
        *existed = rc == 0 && had;
    free(p);
    return rc;
}

int rtx_enqueue(struct rtx *x, const char *type, json_t *payload, const char *idem_key) {
    return rtx_enqueue_at(x, type, payload, idem_key, 0, NULL);
}

int rtx_audit(struct rtx *x, const char *actor, const char *action, json_t *detail) {
    char *d = detail ? dump(detail) : NULL;
    json_decref(detail);
    int rc = x->tx->s->ops->audit(x->tx, actor ? actor : "system", action, x->r.id, d);
    free(d);
    return rc;
}

int rtx_publish_gate(struct rtx *x) {
    const project_t *p = rtx_project(x);
    if (!p || p->gate_publish) {
        rtx_move(x, RS_AWAIT_PUBLISH_APPROVAL, RSTEP_PUBLISH_APPROVAL);
        return 0;
    }
    int rc = rtx_audit(x, "system", "gate.auto_approved", json_pack("{s:s}", "gate", "publish"));
    json_object_set_new(x->ctx, "publish_approved", json_true());
    rtx_move(x, RS_RUNNING, RSTEP_PUBLISHING);
    return rc ? rc : rtx_enqueue(x, "run.publish", NULL, NULL);
}

#define EARLY_MAX 16

int rtx_register_tasks(struct rtx *x, json_t *tasks) {
    store_tx_t *tx = x->tx;
    int rc = 0;
    int64_t since = clock_now_ms() - config_int(wf_global->cfg, S_WEBHOOK_EARLY_TTL_S) * 1000;
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        const char *id = json_string_value(json_object_get(t, "task_id"));
        int k = (int)json_integer_value(json_object_get(t, "video_index"));
        if (!id || rc)
            continue;
        rc = tx->s->ops->task_add(tx, "sora", id, x->r.id, k);
        if (rc == ERR_CONFLICT) { /* the same task again (an idempotent resubmission) */
            char other[RUN_ID_LEN];
            int oi;
            rc = tx->s->ops->task_find(tx, "sora", id, other, &oi) == 0 &&
                         strcmp(other, x->r.id) == 0
                     ? 0
                     : ERR_CONFLICT;
        }
        /* deliveries that came before the task was known */
        inbox_item_t early[EARLY_MAX];
        int n = EARLY_MAX;
        if (rc == 0)
            rc = tx->s->ops->inbox_early(tx, "sora", id, since, early, &n);
        else
            n = 0;
        for (int e = 0; e < n; e++) {
            if (rc == 0)
                rc = tx->s->ops->inbox_set(tx, early[e].id, "applied", x->r.id);
            char key[300];
            snprintf(key, sizeof key, "sora:%s", early[e].delivery_id);
            if (rc == 0)
                rc = rtx_enqueue(x, "webhook.sora",
                                 json_pack("{s:I,s:s,s:i,s:b}", "inbox_id", (json_int_t)early[e].id,
                                           "task_id", id, "video_index", k, "failed",
                                           strcmp(early[e].event_type, "video.failed") == 0),
                                 key);
            if (rc == 0)
                log_info("workflow", "early webhook applied", LF_S("run_id", x->r.id),
                         LF_S("task_id", id));
            inbox_item_release(&early[e]);
        }
    }
    return rc;
}

/* ---- the run object
 * ------------------------------------------------------------------------------ */

static json_t *iso(int64_t ms) {
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(ms, ts);
    return json_string(ts);
}

json_t *wf_run_json(const run_t *r, bool with_artifacts) {
    json_t *o = json_object();
    json_object_set_new(o, "run_id", json_string(r->id));
    json_object_set_new(o, "workflow_name", json_string(r->workflow));
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "current_step", *r->step ? json_string(r->step) : json_null());
    json_object_set_new(o, "brief", json_string(r->brief ? r->brief : ""));
    if (with_artifacts)
        json_object_set_new(o, "artifacts", parse_obj(r->artifacts));
    json_object_set_new(o, "error", r->error ? json_string(r->error) : json_null());
    const char *gate = strcmp(r->status, "awaiting_ideation_approval") == 0  ? "ideation"
                       : strcmp(r->status, "awaiting_publish_approval") == 0 ? "publish"
                                                                             : NULL;
    json_object_set_new(o, "pending_gate", gate ? json_string(gate) : json_null());
    int expected = r->clips_expected;
    if (expected == 0 && wf_global) {
        const project_t *p = projects_find(wf_global->projects, r->workflow);
        expected = p ? p->video_count : 0;
    }
    int pct = strcmp(r->status, "completed") == 0 ? 100
              : expected > 0                      ? r->clips_ready * 100 / expected
                                                  : 0;
    json_object_set_new(o, "progress",
                        json_pack("{s:i,s:i,s:i}", "clips_expected", expected, "clips_ready",
                                  r->clips_ready, "percent", pct));
    json_object_set_new(o, "created_at", iso(r->created_at));
    json_object_set_new(o, "updated_at", iso(r->updated_at));
    return o;
}

json_t *wf_interrupts(const run_t *r) {
    json_t *art = parse_obj(r->artifacts);
    json_t *v = NULL;
    const char *id = NULL;
    if (strcmp(r->status, "awaiting_ideation_approval") == 0) {
        id = "gate:ideation";
        v = json_pack("{s:s,s:s,s:s,s:s,s:O?,s:O?}", "task", "Review and approve video ideas",
                      "run_id", r->id, "gate", "ideation", "waiting_for", "hitl_ideation", "ideas",
                      json_object_get(art, "ideas"), "ideas_structured",
                      json_object_get(art, "ideas_structured"));
    } else if (strcmp(r->status, "awaiting_video_generation") == 0) {
        id = "wait:videos";
        v = json_pack("{s:s,s:s,s:s}", "task", "Waiting for video generation", "run_id", r->id,
                      "waiting_for", "sora_webhook");
    } else if (strcmp(r->status, "awaiting_render") == 0) {
        id = "wait:render";
        v = json_pack("{s:s,s:s,s:s}", "task", "Waiting for video render", "run_id", r->id,
                      "waiting_for", "remotion_webhook");
    } else if (strcmp(r->status, "awaiting_publish_approval") == 0) {
        id = "gate:publish";
        v = json_pack("{s:s,s:s,s:s,s:s,s:O?}", "task", "Review and approve video for publishing",
                      "run_id", r->id, "gate", "publish", "waiting_for", "hitl_publish",
                      "video_url", json_object_get(art, "video_url"));
    }
    json_decref(art);
    if (!id)
        return NULL;
    return json_pack("[{s:s,s:o}]", "id", id, "value", v);
}

/* ---- decisions
 * ----------------------------------------------------------------------------------- */

int wf_budget(store_tx_t *tx, char *detail, size_t cap) {
    const config_t *cfg = wf_global->cfg;
    int64_t now = clock_now_ms();
    int64_t max = config_int(cfg, S_MAX_RUNS_LAST_24H), count = 0;
    double cost = config_num(cfg, S_ESTIMATED_COST_PER_RUN_USD);
    if (max == 0 && cost <= 0)
        return 0; /* both budgets off: nothing to count (the count grows with the runs of the day)
                   */
    int rc = tx->s->ops->run_count_since(tx, now - 24LL * 3600 * 1000, &count);
    if (rc)
        return rc;
    if (max > 0 && count >= max) {
        snprintf(detail, cap, "Run budget exceeded (max_runs_last_24h). Please retry later.");
        return ERR_BUDGET;
    }
    if ((double)(count + 1) * config_num(cfg, S_ESTIMATED_COST_PER_RUN_USD) >
        config_num(cfg, S_DAILY_COST_BUDGET_USD)) {
        snprintf(detail, cap, "Daily cost budget exceeded; try again tomorrow.");
        return ERR_BUDGET;
    }
    return 0;
}

int wf_start(store_tx_t *tx, const struct wf_start_req *q, run_t *out) {
    int64_t now = clock_now_ms();
    run_t r;
    memset(&r, 0, sizeof r);
    crypto_uuid7(r.id,
                 now); /* time-ordered: the indexes keyed by run id grow at their right edge */
    snprintf(r.workflow, sizeof r.workflow, "%s", q->project->name);
    snprintf(r.status, sizeof r.status, "pending");
    r.brief = (char *)q->brief;
    r.user_id = (char *)q->user_id;
    r.telegram_chat_id = (char *)q->telegram_chat_id;
    r.public_token = (char *)q->public_token;
    r.public_expires_at = q->public_expires_at;
    r.clips_expected = q->project->video_count;
    r.created_at = r.updated_at = now;
    int rc = tx->s->ops->run_insert(tx, &r);
    if (rc)
        return rc;
    /* the run as inserted (no read back: this is the hot path of POST /v1/runs/start) */
    struct rtx x;
    memset(&x, 0, sizeof x);
    x.tx = tx;
    x.r = r;
    x.r.brief = xstrdup(q->brief ? q->brief : "");
    x.r.user_id = q->user_id ? xstrdup(q->user_id) : NULL;
    x.r.telegram_chat_id = q->telegram_chat_id ? xstrdup(q->telegram_chat_id) : NULL;
    x.r.public_token = q->public_token ? xstrdup(q->public_token) : NULL;
    x.r.artifacts = xstrdup("{}");
    x.r.context = xstrdup("{}");
    x.loaded = true;
    x.status = x.read_status = RS_PENDING;
    run_event_t e;
    memset(&e, 0, sizeof e);
    memcpy(e.run_id, r.id, sizeof e.run_id);
    snprintf(e.kind, sizeof e.kind, "run");
    snprintf(e.status, sizeof e.status, "pending");
    e.message = "Run created";
    char data[200];
    snprintf(data, sizeof data,
             "{\"run_id\":\"%s\",\"status\":\"pending\",\"current_step\":null,\"message\":\"Run "
             "created\",\"error\":null}",
             r.id);
    e.data = xstrdup(data);
    e.at = now;
    rc = tx->s->ops->run_event_add(tx, &e);
    free(e.data);
    if (rc == 0)
        rc = rtx_enqueue(&x, "run.ideate", NULL, NULL);
    if (rc == 0 && out) {
        *out = x.r;
        x.loaded = false; /* ownership moves to out */
    }
    rtx_release(&x);
    return rc;
}

static void take_run(struct rtx *x, run_t *out) {
    if (out) {
        *out = x->r;
        x->loaded = false;
    }
}

int wf_gate(store_tx_t *tx, const char *run_id, const char *gate, bool approved,
            const char *comment, const char *actor, run_t *out) {
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc)
        return rc;
    bool ideation = strcmp(gate, "ideation") == 0;
    enum run_status want = ideation ? RS_AWAIT_IDEATION : RS_AWAIT_PUBLISH_APPROVAL;
    if (x.status != want) {
        rtx_release(&x);
        return ERR_CONFLICT;
    }
    const char *message;
    if (!approved) {
        rtx_move(&x, RS_REJECTED, x.step);
        message = ideation ? "Ideation rejected" : "Publish rejected";
    } else if (ideation) {
        json_object_set_new(x.ctx, "ideas_approved", json_true());
        rtx_move(&x, RS_RUNNING, RSTEP_PRODUCTION);
        rc = rtx_enqueue(&x, "run.produce", NULL, NULL);
        message = "Ideation approved";
    } else {
        json_object_set_new(x.ctx, "publish_approved", json_true());
        rtx_move(&x, RS_RUNNING, RSTEP_PUBLISHING);
        rc = rtx_enqueue(&x, "run.publish", NULL, NULL);
        message = "Publish approved";
    }
    if (comment)
        json_object_set_new(x.ctx, "approval_comment", json_string(comment));
    if (rc == 0)
        rc = rtx_audit(&x, actor, approved ? "gate.approved" : "gate.rejected",
                       json_pack("{s:s,s:s?}", "gate", gate, "comment", comment));
    if (rc == 0)
        rc = rtx_save(&x, message);
    if (rc == 0)
        take_run(&x, out);
    rtx_release(&x);
    return rc;
}

int wf_cancel(store_tx_t *tx, const char *run_id, const char *reason, const char *actor,
              run_t *out) {
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc)
        return rc;
    if (run_status_terminal(x.status)) {
        rtx_release(&x);
        return ERR_CONFLICT;
    }
    /* the run's unfinished jobs: a running one loses its lease and its result is discarded */
    struct job_filter f = {.state = -1, .run_id = run_id, .limit = 64};
    job_t jobs[64];
    int n = 0;
    rc = tx->s->ops->job_list(tx, &f, jobs, &n);
    for (int i = 0; i < n; i++) {
        if (rc == 0 && (jobs[i].state == JOB_QUEUED || jobs[i].state == JOB_RUNNING))
            rc = queue_cancel(tx, jobs[i].id);
        job_release(&jobs[i]);
    }
    if (reason)
        json_object_set_new(x.ctx, "cancel_reason", json_string(reason));
    rtx_move(&x, RS_CANCELLED, x.step);
    if (rc == 0)
        rc = rtx_audit(&x, actor, "run.cancelled", json_pack("{s:s?}", "reason", reason));
    if (rc == 0)
        rc = rtx_save(&x, "Run cancelled");
    if (rc == 0)
        take_run(&x, out);
    rtx_release(&x);
    return rc;
}

int wf_sora_delivery(store_tx_t *tx, inbox_item_t *w, bool failed, const char *result_url,
                     const char *for_run, enum wf_ack *ack, int *video_index, char *run_status,
                     size_t cap) {
    const struct store_ops *ops = tx->s->ops;
    char run_id[RUN_ID_LEN] = "";
    int index = -1;
    int rc = ops->task_find(tx, "sora", w->task_id, run_id, &index);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    struct rtx x;
    bool known = rc == 0 && (!for_run || strcmp(for_run, run_id) == 0), live = false;
    if (known) {
        rc = rtx_load(tx, run_id, &x);
        if (rc == ERR_NOTFOUND)
            known = false;
        else if (rc)
            return rc;
        else {
            live = !run_status_terminal(x.status);
            snprintf(run_status, cap, "%s", x.r.status);
        }
    }
    snprintf(w->status, sizeof w->status, "%s", !known ? "early" : live ? "accepted" : "ignored");
    if (known)
        snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
    bool dup = false;
    rc = ops->inbox_add(tx, w, &dup);
    if (rc == 0 && dup)
        *ack = WF_DUPLICATE;
    else if (rc == 0 && !known)
        *ack = WF_IGNORED_UNKNOWN;
    else if (rc == 0 && !live)
        *ack = WF_IGNORED_TERMINAL;
    else if (rc == 0) {
        *ack = WF_ACCEPTED;
        char key[300];
        snprintf(key, sizeof key, "sora:%s", w->delivery_id);
        rc = rtx_enqueue(&x, "webhook.sora",
                         json_pack("{s:I,s:s,s:i,s:b,s:s?}", "inbox_id", (json_int_t)w->id,
                                   "task_id", w->task_id, "video_index", index, "failed", failed,
                                   "result_url", result_url),
                         key);
    }
    if (video_index)
        *video_index = index;
    if (known)
        rtx_release(&x);
    return rc;
}

int wf_render_callback(store_tx_t *tx, const char *run_id, const char *job_id, bool ok,
                       const char *output_url, const char *error, const char *body,
                       struct wf_render_ack *ack) {
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc)
        return rc;
    snprintf(ack->status, sizeof ack->status, "%s", x.r.status);
    const char *mine = json_string_value(json_object_get(x.ctx, "render_job_id"));
    if (!mine || strcmp(mine, job_id) != 0) {
        rtx_release(&x);
        return ERR_INVAL;
    }
    const char *stored = json_string_value(json_object_get(x.ctx, "render_output_url"));
    bool past = x.status == RS_AWAIT_PUBLISH_APPROVAL || x.status == RS_AWAIT_PUBLISH ||
                x.status == RS_COMPLETED || (x.status == RS_RUNNING && x.step == RSTEP_PUBLISHING);
    if (stored || past) { /* a repeat: idempotent */
        ack->repeat = true;
        snprintf(ack->output_url, sizeof ack->output_url, "%s", stored ? stored : "");
        rtx_release(&x);
        return 0;
    }
    bool over = x.status == RS_CANCELLED || x.status == RS_REJECTED || x.status == RS_FAILED;
    if (x.status != RS_AWAIT_RENDER && !over) {
        rtx_release(&x);
        return ERR_CONFLICT;
    }
    inbox_item_t w;
    memset(&w, 0, sizeof w);
    snprintf(w.provider, sizeof w.provider, "remotion");
    snprintf(w.delivery_id, sizeof w.delivery_id, "%s:%s", job_id, ok ? "done" : "error");
    snprintf(w.event_type, sizeof w.event_type, "%s", ok ? "render.done" : "render.error");
    snprintf(w.task_id, sizeof w.task_id, "%s", job_id);
    snprintf(w.run_id, sizeof w.run_id, "%s", run_id);
    snprintf(w.status, sizeof w.status, "%s", over ? "ignored" : "accepted");
    w.payload = (char *)body;
    w.received_at = clock_now_ms();
    bool dup = false;
    rc = tx->s->ops->inbox_add(tx, &w, &dup);
    if (over) { /* workflow.md §2: stored, answered "ignored", changes nothing */
        ack->ignored = true;
    } else if (rc == 0 && ok) {
        json_object_set_new(x.ctx, "render_output_url", json_string(output_url ? output_url : ""));
        snprintf(ack->output_url, sizeof ack->output_url, "%s", output_url ? output_url : "");
        char key[200];
        snprintf(key, sizeof key, "remotion:%s", job_id);
        rc = rtx_enqueue(&x, "webhook.remotion",
                         json_pack("{s:s,s:s?}", "job_id", job_id, "output_url", output_url), key);
        if (rc == 0)
            rc = rtx_save(&x, NULL);
    } else if (rc == 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "Render failed: %s",
                 error && *error ? error : "the render service reported an error");
        rtx_fail(&x, msg, "webhook.remotion");
        rc = rtx_save(&x, msg);
    }
    rtx_release(&x);
    return rc;
}

int wf_fail_run(store_tx_t *tx, const char *run_id, const char *error) {
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc)
        return rc;
    if (run_status_terminal(x.status)) {
        rtx_release(&x);
        return ERR_CONFLICT;
    }
    rtx_fail(&x, error, NULL);
    rc = rtx_save(&x, error);
    rtx_release(&x);
    return rc;
}

/* ---- v2 state and resume
 * ------------------------------------------------------------------------- */

json_t *wf_state_json(const run_t *r) {
    json_t *art = parse_obj(r->artifacts), *ctx = parse_obj(r->context);
    json_t *clips = json_array(), *published = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(art, "clips"), i, c)
        json_array_append(clips, json_object_get(c, "url"));
    const char *pub = json_string_value(json_object_get(art, "published_url"));
    if (pub && *pub)
        json_array_append_new(published, json_string(pub));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:o,s:O?,s:O?,s:O?,s:b,s:o,s:O?,s:b,s:o,s:o}", "run_id", r->id, "project",
        r->workflow, "brief", r->brief ? r->brief : "", "status", r->status, "current_step",
        *r->step ? json_string(r->step) : json_null(), "ideas", json_object_get(art, "ideas"),
        "ideas_structured", json_object_get(art, "ideas_structured"), "overlays",
        json_object_get(art, "overlays"), "ideas_approved",
        json_is_true(json_object_get(ctx, "ideas_approved")), "video_clips", clips,
        "final_video_url", json_object_get(art, "video_url"), "publish_approved",
        json_is_true(json_object_get(ctx, "publish_approved")), "published_urls", published,
        "error", r->error ? json_string(r->error) : json_null());
    json_decref(art);
    json_decref(ctx);
    return o;
}

json_t *wf_next(const run_t *r) {
    int s = run_status_parse(r->status);
    const char *n = NULL;
    switch (s) {
    case RS_PENDING: n = "ideation"; break;
    case RS_RUNNING: n = *r->step ? r->step : "ideation"; break;
    case RS_AWAIT_IDEATION: n = "ideation_approval"; break;
    case RS_AWAIT_VIDEOS: n = "wait_for_videos"; break;
    case RS_AWAIT_RENDER:
        n = strcmp(r->step, "wait_for_render") == 0 ? "wait_for_render" : "editing";
        break;
    case RS_AWAIT_PUBLISH_APPROVAL: n = "publish_approval"; break;
    case RS_AWAIT_PUBLISH: n = "publishing"; break;
    default: return json_null();
    }
    return json_pack("[s]", n);
}

/* Missing clip indexes of the run (no clip in the view), into idx; returns the count. */
static int missing_clips(struct rtx *x, int *idx, int cap) {
    bool have[64] = {false};
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(x->art, "clips"), i, c) {
        json_int_t k = json_integer_value(json_object_get(c, "video_index"));
        if (k >= 0 && k < 64)
            have[k] = true;
    }
    int n = 0;
    for (int k = 0; k < x->r.clips_expected && k < 64 && n < cap; k++)
        if (!have[k])
            idx[n++] = k;
    return n;
}

static void clear_failure(struct rtx *x) {
    free(x->r.error);
    x->r.error = NULL;
    json_object_del(x->ctx, "failed");
}

int wf_resume(store_tx_t *tx, const char *run_id, const char *action, bool approve_publish,
              bool force, const char *actor, run_t *out, char *chosen, size_t ccap, char *message,
              size_t mcap) {
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc)
        return rc;
    chosen[0] = '\0';
    json_t *failed = json_object_get(x.ctx, "failed");
    const char *ftype = json_string_value(json_object_get(failed, "job_type"));
    const char *fstatus = json_string_value(json_object_get(failed, "status"));
    const char *fstep = json_string_value(json_object_get(failed, "step"));
    char act[16];
    snprintf(act, sizeof act, "%s", action);
    if (strcmp(act, "auto") == 0) {
        const char *pick = x.status == RS_FAILED                   ? "retry"
                           : x.status == RS_AWAIT_VIDEOS           ? "videos"
                           : x.status == RS_AWAIT_RENDER           ? "render"
                           : x.status == RS_AWAIT_PUBLISH_APPROVAL ? "publish"
                                                                   : NULL;
        if (!pick)
            goto not_resumable;
        snprintf(act, sizeof act, "%s", pick);
    }
    if (strcmp(act, "retry") == 0 && (x.status == RS_FAILED || force)) {
        /* the step that failed, from its last committed state; clip and render jobs re-run as
         * the videos and render actions */
        if (ftype && (strcmp(ftype, "webhook.sora") == 0 || strcmp(ftype, "clip.transcode") == 0 ||
                      strcmp(ftype, "run.resubmit") == 0 || strcmp(ftype, "sora.poll") == 0))
            snprintf(act, sizeof act, "videos");
        else if (ftype &&
                 (strcmp(ftype, "render.local") == 0 || strcmp(ftype, "webhook.remotion") == 0 ||
                  strcmp(ftype, "render.fetch") == 0))
            snprintf(act, sizeof act, "render");
        else if (!ftype && fstatus && strcmp(fstatus, "awaiting_video_generation") == 0)
            snprintf(act, sizeof act, "videos");
        else if (!ftype && fstatus && strcmp(fstatus, "awaiting_render") == 0)
            snprintf(act, sizeof act, "render");
        else {
            static const struct {
                const char *type;
                enum run_status st;
                enum run_step step;
            } steps[] = {{"run.ideate", RS_RUNNING, RSTEP_IDEATION},
                         {"run.produce", RS_RUNNING, RSTEP_PRODUCTION},
                         {"run.edit", RS_AWAIT_RENDER, RSTEP_EDITING},
                         {"run.publish", RS_RUNNING, RSTEP_PUBLISHING},
                         {"publish.poll", RS_AWAIT_PUBLISH, RSTEP_PUBLISHING}};
            int k = -1;
            for (int i = 0; i < 5; i++)
                if (ftype && strcmp(ftype, steps[i].type) == 0)
                    k = i;
            if (k < 0) {
                snprintf(chosen, ccap, "retry");
                snprintf(message, mcap, "No failed step to retry");
                goto answer;
            }
            snprintf(chosen, ccap, "retry");
            snprintf(message, mcap, "Retrying %s",
                     fstep && *fstep ? fstep : run_step_name(steps[k].step));
            clear_failure(&x);
            rtx_move(&x, steps[k].st, steps[k].step);
            /* publish.poll: the same upload is polled again (its request id is in the context) */
            json_t *payload = k == 4 ? json_pack("{s:O?}", "request_id",
                                                 json_object_get(x.ctx, "publish_request_id"))
                                     : NULL;
            rc = rtx_enqueue(&x, steps[k].type, payload, NULL);
            if (rc == 0)
                rc = rtx_audit(&x, actor, "run.resume", json_pack("{s:s}", "action", "retry"));
            if (rc == 0)
                rc = rtx_save(&x, message);
            goto answer;
        }
    }
    if (strcmp(act, "videos") == 0 &&
        (x.status == RS_AWAIT_VIDEOS || x.status == RS_FAILED || force)) {
        int idx[64], n = missing_clips(&x, idx, 64);
        snprintf(chosen, ccap, "videos");
        snprintf(message, mcap, "Videos re-submitted (%d)", n);
        clear_failure(&x);
        if (n == 0) { /* every clip is in: on to editing */
            rtx_move(&x, RS_AWAIT_RENDER, RSTEP_EDITING);
            char key[80];
            snprintf(key, sizeof key, "edit:%s", x.r.id);
            rc = rtx_enqueue(&x, "run.edit", NULL, key);
        } else {
            json_t *ix = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(ix, json_integer(idx[i]));
            rtx_move(&x, RS_AWAIT_VIDEOS, RSTEP_WAIT_VIDEOS);
            rc = rtx_enqueue(&x, "run.resubmit", json_pack("{s:o}", "indexes", ix), NULL);
        }
        if (rc == 0)
            rc = rtx_audit(&x, actor, "run.resume",
                           json_pack("{s:s,s:i}", "action", "videos", "clips", n));
        if (rc == 0)
            rc = rtx_save(&x, message);
        goto answer;
    }
    if (strcmp(act, "render") == 0 &&
        (x.status == RS_AWAIT_RENDER || x.status == RS_FAILED || force)) {
        snprintf(chosen, ccap, "render");
        snprintf(message, mcap, "Render re-submitted");
        clear_failure(&x);
        rtx_move(&x, RS_AWAIT_RENDER, RSTEP_EDITING);
        json_t *texts = json_object_get(x.ctx, "render_texts");
        const project_t *p = rtx_project(&x);
        /* no render yet, or a Remotion render: the editor submits it again */
        if (!json_object_get(x.ctx, "render_job_id") || !p ||
            (wf_global->app->providers &&
             providers_render_mode(wf_global->app->providers) == RENDER_REMOTION)) {
            char key[80];
            snprintf(key, sizeof key, "edit:%s", x.r.id);
            rc = rtx_enqueue(&x, "run.edit", NULL, key);
        } else {
            int w = 0, h = 0;
            media_scaled_size(p->width, p->height, config_num(wf_global->cfg, S_RENDER_SCALE), &w,
                              &h);
            rc = rtx_enqueue(&x, "render.local",
                             json_pack("{s:i,s:O,s:i,s:i,s:i}", "clips", x.r.clips_expected,
                                       "texts", texts ? texts : json_array(), "width", w, "height",
                                       h, "fps", p->fps),
                             NULL);
        }
        if (rc == 0)
            rc = rtx_audit(&x, actor, "run.resume", json_pack("{s:s}", "action", "render"));
        if (rc == 0)
            rc = rtx_save(&x, message);
        goto answer;
    }
    if (strcmp(act, "publish") == 0 && (x.status == RS_AWAIT_PUBLISH_APPROVAL || force)) {
        snprintf(chosen, ccap, "publish");
        if (!approve_publish) {
            snprintf(message, mcap, "Publish gate awaiting approval (set approve_publish=true)");
            goto answer;
        }
        rtx_release(&x);
        rc = wf_gate(tx, run_id, "publish", true, NULL, actor, out);
        snprintf(message, mcap,
                 rc == 0 ? "Publish approved" : "Run is not awaiting publish approval");
        return rc;
    }
not_resumable:
    snprintf(message, mcap, "Run status '%s' is not resumable", x.r.status);
answer:
    if (rc == 0 && out) {
        *out = x.r;
        x.loaded = false;
    }
    rtx_release(&x);
    return rc;
}

/* ---- queue hooks
 * ------------------------------------------------------------------------------------- */

/* A step job out of attempts (or failed for good): its run fails with the job's last error. */
static int dead_hook(store_tx_t *tx, const job_t *j) {
    if (!j->run_id[0] || !wf_global)
        return 0;
    struct rtx x;
    int rc = rtx_load(tx, j->run_id, &x);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    if (!run_status_terminal(x.status)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s failed after %d attempts: %s", j->type, j->attempts,
                 j->last_error ? j->last_error : "unknown error");
        rtx_fail(&x, msg, j->type);
        json_object_set_new(json_object_get(x.ctx, "failed"), "job_id", json_string(j->id));
        rc = rtx_save(&x, msg);
    }
    rtx_release(&x);
    return rc;
}

/* A dead letter replayed: its run goes back to the status it failed in. */
static int replay_hook(store_tx_t *tx, const job_t *j) {
    if (!j->run_id[0] || !wf_global)
        return 0;
    struct rtx x;
    int rc = rtx_load(tx, j->run_id, &x);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    json_t *failed = json_object_get(x.ctx, "failed");
    const char *job_id = json_string_value(json_object_get(failed, "job_id"));
    if (x.status == RS_FAILED && job_id && strcmp(job_id, j->id) == 0) {
        int s = run_status_parse(json_string_value(json_object_get(failed, "status")));
        int st = run_step_parse(json_string_value(json_object_get(failed, "step")));
        rtx_move(&x, s < 0 ? RS_RUNNING : (enum run_status)s,
                 st < 0 ? RSTEP_NONE : (enum run_step)st);
        free(x.r.error);
        x.r.error = NULL;
        json_object_del(x.ctx, "failed");
        char msg[160];
        snprintf(msg, sizeof msg, "Replayed %s", j->type);
        rc = rtx_save(&x, msg);
    }
    rtx_release(&x);
    return rc;
}

void workflow_register(workflow_t *w, struct dispatcher *d) {
    dispatcher_set_group_cap(d, "media", (int)config_int(w->cfg, S_TRANSCODE_MAX_CONCURRENCY));
    steps_register(w, d);
    queue_set_dead_hook(dead_hook);
    queue_set_replay_hook(replay_hook);
}
