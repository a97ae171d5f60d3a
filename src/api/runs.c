/*
 * runs: the v1 run routes (api.md §4): start, list, get, artifacts, approve, cancel, feedback.
 * Handlers validate (422), take a rate-limit token (429), then run one unit on the database
 * thread that checks the Idempotency-Key (§3), the run budget and the safety filter, makes the
 * decision through workflow.h and stores the idempotent answer, all in one transaction; the
 * answer is sent from the unit's completion. A refused request changes nothing (the unit's
 * savepoint is rolled back).
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
#include "providers/providers.h"
#include "queue/queue.h"
#include "workflow/safety.h"
#include "workflow/workflow.h"

#define LIST_MAX 200
#define ARTIFACTS_MAX 1000
#define FEEDBACK_MAX 500
#define V2_PENDING_RUN "v2_pending_run" /* the provisional record of a keyed v2 request */

enum op {
    OP_START,
    OP_LIST,
    OP_GET,
    OP_ARTIFACTS,
    OP_APPROVE,
    OP_CANCEL,
    OP_FEEDBACK_ADD,
    OP_FEEDBACK_LIST,
    OP_V2_GATE, /* v2 approve / reject: the pending gate */
    OP_V2_RESUME,
    OP_V2_STATE,
    OP_V2_HISTORY,
};

struct call {
    http_req_t *req;
    enum op op;
    char id[RUN_ID_LEN];
    char actor[32];
    /* idempotency */
    char *idem_key;
    char idem_hash[API_IDEM_HASH_LEN];
    struct idem_result idem;
    /* inputs */
    const project_t *project;
    json_t *in; /* the request body (borrowed from req until the answer) */
    char gate[16];
    bool approved;
    struct run_filter f;
    char status_f[RUN_STATUS_MAX], workflow_f[RUN_WORKFLOW_MAX], cursor_id[RUN_ID_LEN];
    /* outputs */
    int http_status;
    json_t *out; /* the answer body */
    char detail[300];
    char reason[160];
    /* v2 */
    bool v2; /* answer after the run reaches a wait or ends */
    char interrupt_id[64];
    char action[16];
    bool approve_publish, force;
    char chosen[16], message[200];
    uv_timer_t *timer;
    int64_t deadline_ms;
};

static void call_free(struct call *c) {
    free(c->idem_key);
    free(c->idem.body);
    json_decref(c->out);
    free(c);
}

/* Answers 422 for one field and drops the call (nothing was submitted). Loop thread. */
static void refuse(http_req_t *req, struct call *c, const char *field, const char *message) {
    api_field_error(req, field, message);
    call_free(c);
}

static const char *jstr(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}
static const char *sget_out(const struct call *c, const char *k) {
    const char *v = jstr(c->out, k);
    return v ? v : "";
}

/* {"state", "next", "interrupts"} of the v2 routes. */
static json_t *state_answer(const run_t *r) {
    json_t *in = wf_interrupts(r);
    return json_pack("{s:o,s:o,s:o}", "state", wf_state_json(r), "next", wf_next(r), "interrupts",
                     in ? in : json_null());
}

/* ---- the database side -------------------------------------------------------------------------
 */

static bool blocked(struct call *c, const char *text) {
    app_t *app = c->req->app;
    char entry[128];
    if (text &&
        safety_blocked(config_str(app->cfg, S_SAFETY_BLOCKLIST), text, entry, sizeof entry)) {
        safety_reason(entry, c->reason, sizeof c->reason);
        return true;
    }
    return false;
}

/* 0 when the run exists, else ERR_NOTFOUND (or the store's error). */
static int run_exists(store_tx_t *tx, const char *id) {
    run_t r;
    memset(&r, 0, sizeof r);
    int rc = tx->s->ops->run_get(tx, id, false, &r);
    if (rc == 0)
        run_release(&r);
    return rc;
}

/* A feedback row as the API shows it. */
static json_t *feedback_json(const feedback_t *f) {
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(f->created_at, ts);
    return json_pack("{s:s,s:s,s:s?,s:i,s:s?,s:s}", "id", f->id, "run_id", f->run_id, "artifact_id",
                     *f->artifact_id ? f->artifact_id : NULL, "rating", f->rating, "comment",
                     f->comment, "created_at", ts);
}

static int op_unit(store_tx_t *tx, struct call *c) {
    const struct store_ops *ops = tx->s->ops;
    int rc;
    run_t r;
    memset(&r, 0, sizeof r);
    switch (c->op) {
    case OP_START: {
        if ((rc = wf_budget(tx, c->detail, sizeof c->detail)) != 0)
            return rc;
        if (blocked(c, jstr(c->in, "brief")))
            return ERR_BLOCKED;
        struct wf_start_req q = {.project = c->project,
                                 .brief = jstr(c->in, "brief"),
                                 .user_id = jstr(c->in, "user_id"),
                                 .telegram_chat_id = jstr(c->in, "telegram_chat_id")};
        rc = wf_start(tx, &q, &r);
        if (rc)
            return rc;
        c->http_status = 200;
        c->out = json_pack("{s:s,s:s}", "run_id", r.id, "status", r.status);
        run_release(&r);
        return 0;
    }
    case OP_GET:
        rc = ops->run_get(tx, c->id, false, &r);
        if (rc)
            return rc;
        c->out = wf_run_json(&r, true);
        run_release(&r);
        return 0;
    case OP_LIST: {
        run_t *runs = xcalloc((size_t)c->f.limit, sizeof *runs);
        int n = c->f.limit;
        rc = ops->run_list(tx, &c->f, runs, &n);
        if (rc == 0) {
            json_t *arr = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(arr, wf_run_json(&runs[i], false));
            json_t *next = json_null();
            if (n == c->f.limit && n > 0) {
                char cur[80];
                snprintf(cur, sizeof cur, "%lld.%s", (long long)runs[n - 1].created_at,
                         runs[n - 1].id);
                next = json_string(cur);
            }
            c->out = json_pack("{s:o,s:o}", "runs", arr, "next_cursor", next);
        }
        for (int i = 0; i < n; i++)
            run_release(&runs[i]);
        free(runs);
        return rc;
    }
    case OP_ARTIFACTS: {
        if ((rc = run_exists(tx, c->id)) != 0)
            return rc;
        artifact_t *as = xcalloc(ARTIFACTS_MAX, sizeof *as);
        int n = ARTIFACTS_MAX;
        rc = ops->artifact_list(tx, c->id, NULL, as, &n);
        if (rc == 0) {
            json_t *arr = json_array();
            for (int i = 0; i < n; i++) {
                char ts[CLOCK_ISO_LEN];
                clock_iso8601(as[i].created_at, ts);
                json_t *meta = as[i].metadata ? json_loads(as[i].metadata, 0, NULL) : NULL;
                json_array_append_new(
                    arr, json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:o,s:s}", "id", as[i].id, "type",
                                   as[i].type, "persona", *as[i].persona ? as[i].persona : NULL,
                                   "content", as[i].content, "uri", as[i].uri, "metadata",
                                   meta ? meta : json_object(), "created_at", ts));
            }
            c->out = json_pack("{s:o,s:i}", "artifacts", arr, "count", n);
        }
        for (int i = 0; i < n; i++)
            artifact_release(&as[i]);
        free(as);
        return rc;
    }
    case OP_APPROVE:
        if (blocked(c, jstr(c->in, "comment")))
            return ERR_BLOCKED;
        rc = wf_gate(tx, c->id, c->gate, c->approved, jstr(c->in, "comment"), c->actor, &r);
        if (rc == ERR_CONFLICT)
            snprintf(c->detail, sizeof c->detail, "Run %s is not awaiting %s approval", c->id,
                     c->gate);
        if (rc)
            return rc;
        c->http_status = 200;
        c->out = wf_run_json(&r, true);
        run_release(&r);
        return 0;
    case OP_CANCEL:
        if (blocked(c, jstr(c->in, "reason")))
            return ERR_BLOCKED;
        rc = wf_cancel(tx, c->id, jstr(c->in, "reason"), c->actor, &r);
        if (rc == ERR_CONFLICT) {
            run_t cur;
            memset(&cur, 0, sizeof cur);
            if (ops->run_get(tx, c->id, false, &cur) == 0) {
                snprintf(c->detail, sizeof c->detail, "Run %s is already %s", c->id, cur.status);
                run_release(&cur);
            }
        }
        if (rc)
            return rc;
        c->http_status = 200;
        c->out = wf_run_json(&r, true);
        run_release(&r);
        return 0;
    case OP_FEEDBACK_ADD: {
        if (blocked(c, jstr(c->in, "comment")))
            return ERR_BLOCKED;
        if ((rc = run_exists(tx, c->id)) != 0)
            return rc;
        feedback_t f;
        memset(&f, 0, sizeof f);
        crypto_uuid4(f.id);
        memcpy(f.run_id, c->id, sizeof f.run_id);
        snprintf(f.artifact_id, sizeof f.artifact_id, "%s",
                 jstr(c->in, "artifact_id") ? jstr(c->in, "artifact_id") : "");
        f.rating = (int)json_integer_value(json_object_get(c->in, "rating"));
        f.comment = (char *)jstr(c->in, "comment");
        f.created_at = clock_now_ms();
        rc = ops->feedback_add(tx, &f);
        if (rc)
            return rc;
        c->http_status = 201;
        c->out = feedback_json(&f);
        return 0;
    }
    case OP_V2_GATE: {
        rc = ops->run_get(tx, c->id, false, &r);
        if (rc)
            return rc;
        const char *gate = strcmp(r.status, "awaiting_ideation_approval") == 0  ? "ideation"
                           : strcmp(r.status, "awaiting_publish_approval") == 0 ? "publish"
                                                                                : NULL;
        run_release(&r);
        if (!gate) {
            snprintf(c->detail, sizeof c->detail, "No pending interrupts for this run");
            return ERR_CONFLICT;
        }
        char want[32];
        snprintf(want, sizeof want, "gate:%s", gate);
        if (c->interrupt_id[0] && strcmp(c->interrupt_id, want) != 0) {
            snprintf(c->detail, sizeof c->detail, "Unknown interrupt_id: %s", c->interrupt_id);
            return ERR_INVAL;
        }
        const char *comment = jstr(c->in, "comment");
        if (blocked(c, comment) || blocked(c, jstr(c->in, "content_override")))
            return ERR_BLOCKED;
        json_t *data = json_object_get(c->in, "data");
        const char *k;
        json_t *v;
        json_object_foreach(data, k, v) if (json_is_string(v) &&
                                            blocked(c, json_string_value(v))) return ERR_BLOCKED;
        snprintf(c->gate, sizeof c->gate, "%s", gate);
        rc = wf_gate(tx, c->id, gate, c->approved,
                     comment       ? comment
                     : c->approved ? NULL
                                   : "Rejected by user",
                     c->actor, &r);
        if (rc == ERR_CONFLICT)
            snprintf(c->detail, sizeof c->detail, "No pending interrupts for this run");
        if (rc)
            return rc;
        c->http_status = 200;
        run_release(&r);
        return 0;
    }
    case OP_V2_RESUME:
        rc = wf_resume(tx, c->id, c->action, c->approve_publish, c->force, c->actor, &r, c->chosen,
                       sizeof c->chosen, c->message, sizeof c->message);
        if (rc)
            return rc;
        c->http_status = 200;
        c->out = wf_run_json(&r, true);
        json_object_set_new(c->out, "action", c->chosen[0] ? json_string(c->chosen) : json_null());
        json_object_set_new(c->out, "message", json_string(c->message));
        run_release(&r);
        return 0;
    case OP_V2_STATE:
        rc = ops->run_get(tx, c->id, false, &r);
        if (rc)
            return rc;
        c->out = state_answer(&r);
        run_release(&r);
        return 0;
    case OP_V2_HISTORY: {
        if ((rc = run_exists(tx, c->id)) != 0)
            return rc;
        run_event_t *es = xcalloc(500, sizeof *es);
        int n = 500;
        rc = ops->run_event_list(tx, c->id, 0, true, es, &n);
        if (rc == 0) {
            c->out = json_array();
            for (int i = 0; i < n; i++) {
                if (strcmp(es[i].kind, "run") != 0)
                    continue;
                char ts[CLOCK_ISO_LEN];
                clock_iso8601(es[i].at, ts);
                json_array_append_new(c->out,
                                      json_pack("{s:I,s:s,s:o,s:s,s:s?}", "id",
                                                (json_int_t)es[i].id, "at", ts, "step",
                                                *es[i].step ? json_string(es[i].step) : json_null(),
                                                "status", es[i].status, "message", es[i].message));
            }
        }
        for (int i = 0; i < n; i++)
            run_event_release(&es[i]);
        free(es);
        return rc;
    }
    case OP_FEEDBACK_LIST: {
        if ((rc = run_exists(tx, c->id)) != 0)
            return rc;
        feedback_t *fs = xcalloc(FEEDBACK_MAX, sizeof *fs);
        int n = FEEDBACK_MAX;
        rc = ops->feedback_list(tx, c->id, fs, &n);
        if (rc == 0) {
            json_t *arr = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(arr, feedback_json(&fs[i]));
            c->out = json_pack("{s:o,s:i}", "feedback", arr, "count", n);
        }
        for (int i = 0; i < n; i++)
            feedback_release(&fs[i]);
        free(fs);
        return rc;
    }
    }
    return ERR_INTERNAL;
}

static int call_unit(store_tx_t *tx, void *arg) {
    struct call *c = arg;
    const struct store_ops *ops = tx->s->ops;
    c->http_status = 200;
    if (c->idem_key) {
        int rc = ops->idem_begin(tx, c->actor, c->idem_key, c->idem_hash, clock_now_ms(),
                                 API_IDEM_TTL_MS, &c->idem);
        if (rc)
            return rc;
        if (c->idem.state != IDEM_NEW)
            return 0; /* answered from the record, nothing written */
    }
    int rc = op_unit(tx, c);
    if (rc == 0 && c->idem_key && c->v2) {
        /* v2: the answer is recorded once the wait is over; until then a provisional record
         * (status 0) names the run and this process, so a retry after a crash takes over */
        const char *run = c->op == OP_START ? sget_out(c, "run_id") : c->id;
        json_t *mark = json_pack("{s:s,s:s}", V2_PENDING_RUN, run, "owner", queue_owner_id());
        char *body = json_dumps(mark, JSON_COMPACT);
        json_decref(mark);
        rc = ops->idem_finish(tx, c->actor, c->idem_key, 0, body);
        free(body);
    } else if (rc == 0 && c->idem_key) {
        char *body = json_dumps(c->out, JSON_COMPACT);
        rc = ops->idem_finish(tx, c->actor, c->idem_key, c->http_status, body);
        free(body);
    }
    return rc;
}

/* ---- v2: waiting, without blocking anything, until the run reaches a wait or ends --------------
 */

/* The keyed v2 requests waiting in this process (loop thread): a retry of one is 409. */
struct v2_key {
    char *scope, *key;
    struct v2_key *next;
};
static struct v2_key *v2_waiting;

static struct v2_key **v2_key_find(const char *scope, const char *key) {
    struct v2_key **p = &v2_waiting;
    while (*p && (strcmp((*p)->scope, scope) != 0 || strcmp((*p)->key, key) != 0))
        p = &(*p)->next;
    return p;
}

static void v2_key_add(const struct call *c) {
    struct v2_key *k = xcalloc(1, sizeof *k);
    k->scope = xstrdup(c->actor);
    k->key = xstrdup(c->idem_key);
    k->next = v2_waiting;
    v2_waiting = k;
}

static void v2_key_del(const struct call *c) {
    if (!c->idem_key)
        return;
    struct v2_key **p = v2_key_find(c->actor, c->idem_key), *k = *p;
    if (k) {
        *p = k->next;
        free(k->scope);
        free(k->key);
        free(k);
    }
}

static void call_done(void *arg, int rc);

struct idem_done {
    char *scope, *key, *body;
    int status;
};

static int idem_done_unit(store_tx_t *tx, void *arg) {
    struct idem_done *d = arg;
    return tx->s->ops->idem_finish(tx, d->scope, d->key, d->status, d->body);
}

static void idem_done_free(void *arg, int rc) {
    struct idem_done *d = arg;
    free(d->scope);
    free(d->key);
    free(d->body);
    free(d);
}

static void timer_closed(uv_handle_t *h) { free(h); }

struct v2_read {
    struct call *c;
    run_t r;
    bool got;
};

static int v2_read_unit(store_tx_t *tx, void *arg) {
    struct v2_read *v = arg;
    int rc = tx->s->ops->run_get(tx, v->c->id, false, &v->r);
    v->got = rc == 0;
    return rc;
}

static void v2_tick(uv_timer_t *t);

static bool settled(const run_t *r) {
    return strcmp(r->status, "pending") != 0 && strcmp(r->status, "running") != 0;
}

static void v2_answer(struct call *c, const run_t *r) {
    http_req_t *req = c->req;
    app_t *app = req->app;
    json_t *body;
    if (c->op == OP_START) {
        json_t *in = wf_interrupts(r), *first = json_null();
        if (in) {
            first = json_incref(json_array_get(in, 0));
            json_object_set_new(first, "resumable", json_true());
            json_decref(in);
        }
        body = json_pack("{s:s,s:s,s:o,s:o}", "run_id", r->id, "thread_id", r->id, "state",
                         wf_state_json(r), "interrupt", first);
    } else {
        body = state_answer(r);
    }
    v2_key_del(c);
    if (c->idem_key) {
        struct idem_done *d = xcalloc(1, sizeof *d);
        d->scope = xstrdup(c->actor);
        d->key = xstrdup(c->idem_key);
        d->body = json_dumps(body, JSON_COMPACT);
        d->status = 200;
        store_submit(app->store, idem_done_unit, d, idem_done_free);
    }
    http_respond_json(req, 200, body);
    if (c->timer) {
        uv_close((uv_handle_t *)c->timer, timer_closed);
        c->timer = NULL;
    }
    call_free(c);
}

static void v2_read_done(void *arg, int rc) {
    struct v2_read *v = arg;
    struct call *c = v->c;
    app_t *app = c->req->app;
    if (rc) {
        if (c->timer) {
            uv_close((uv_handle_t *)c->timer, timer_closed);
            c->timer = NULL;
        }
        v2_key_del(c); /* its provisional record stays: a retry takes over */
        http_respond_err(c->req, ERR_INTERNAL, "Internal server error");
        call_free(c);
    } else if (settled(&v->r) || clock_now_ms() >= c->deadline_ms || app->stopping) {
        v2_answer(c, &v->r);
    } else {
        uv_timer_start(c->timer, v2_tick, 50, 0);
    }
    if (v->got)
        run_release(&v->r);
    free(v);
}

static void v2_tick(uv_timer_t *t) {
    struct call *c = t->data;
    app_t *app = c->req->app;
    struct v2_read *v = xcalloc(1, sizeof *v);
    v->c = c;
    store_submit(app->store, v2_read_unit, v, v2_read_done);
}

static void v2_wait(struct call *c) {
    app_t *app = c->req->app;
    c->timer = xcalloc(1, sizeof *c->timer);
    uv_timer_init(&app->loop, c->timer);
    c->timer->data = c;
    c->deadline_ms = clock_now_ms() + config_int(app->cfg, S_V2_WAIT_MS);
    v2_tick(c->timer);
}

/* ---- the answers -------------------------------------------------------------------------------
 */

/* A provisional v2 record (status 0): the first request still waits here or in another live
 * process (true: 409), or it died with its process, or ended without its answer (false: this
 * request waits on the record's run and records the answer). */
static bool v2_first_waits(struct call *c) {
    json_t *p = json_loads(c->idem.body ? c->idem.body : "", 0, NULL);
    const char *run = json_string_value(json_object_get(p, V2_PENDING_RUN));
    const char *owner = json_string_value(json_object_get(p, "owner"));
    bool waits = !run || !crypto_is_uuid(run, strlen(run)) || *v2_key_find(c->actor, c->idem_key) ||
                 (owner && strcmp(owner, queue_owner_id()) != 0 && !queue_owner_dead(owner));
    if (!waits)
        snprintf(c->id, sizeof c->id, "%s", run);
    json_decref(p);
    return waits;
}

static void call_done(void *arg, int rc) {
    struct call *c = arg;
    http_req_t *req = c->req;
    app_t *app = req->app;
    if (rc == 0 && c->idem_key && c->v2 && c->idem.state == IDEM_REPLAY && c->idem.status == 0 &&
        !v2_first_waits(c)) {
        v2_key_add(c);
        v2_wait(c);
        return;
    }
    if (rc == 0 && c->idem_key && api_idem_answer(req, &c->idem, NULL)) { /* a key seen before */
        call_free(c);
        return;
    }
    switch (rc) {
    case 0:
        if (c->op == OP_START || c->op == OP_APPROVE || c->op == OP_CANCEL || c->op == OP_V2_GATE ||
            c->op == OP_V2_RESUME)
            workflow_kick(app->workflow);
        if (c->v2) {
            if (c->op == OP_START)
                snprintf(c->id, sizeof c->id, "%s", sget_out(c, "run_id"));
            if (c->idem_key)
                v2_key_add(c);
            v2_wait(c);
            return;
        }
        http_respond_json(req, c->http_status, json_incref(c->out));
        break;
    case ERR_INVAL:
        http_respond_error(req, 400, "bad_request", c->detail[0] ? c->detail : "Bad request", NULL,
                           NULL);
        break;
    case ERR_NOTFOUND:
        http_respond_error(req, 404, "not_found", "Run not found", NULL, NULL);
        break;
    case ERR_CONFLICT:
        http_respond_error(req, 409, "conflict", c->detail[0] ? c->detail : "Conflict", NULL, NULL);
        break;
    case ERR_BUDGET: http_respond_error(req, 429, "budget_exceeded", c->detail, NULL, NULL); break;
    case ERR_BLOCKED:
        http_respond_error(req, 400, "content_blocked", "Content blocked by the safety filter",
                           json_pack("{s:s}", "reason", c->reason), NULL);
        break;
    default:
        log_error("api", "run request failed", LF_S("request_id", req->request_id),
                  LF_S("error", err_name(rc)));
        http_respond_err(req, ERR_INTERNAL, "Internal server error");
        break;
    }
    call_free(c);
}

/* ---- the handlers ------------------------------------------------------------------------------
 */

static struct call *call_new(http_req_t *req, enum op op) {
    struct call *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->op = op;
    c->in = req->json;
    http_api_key_id(req, c->actor, sizeof c->actor);
    return c;
}

/* The {id} parameter; 404 when it is not a UUID. */
static bool take_id(http_req_t *req, struct call *c) {
    int n = http_param(req, 0, c->id, sizeof c->id);
    if (n > 0 && crypto_is_uuid(c->id, (size_t)n)) {
        for (char *p = c->id; *p; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
        return true;
    }
    http_respond_error(req, 404, "not_found", "Run not found", NULL, NULL);
    call_free(c);
    return false;
}

/* Idempotency-Key (api/idem.h). false: answered 422. */
static bool take_idem(http_req_t *req, struct call *c) {
    if (!api_idem_take(req, &c->idem_key, c->idem_hash, NULL)) {
        call_free(c);
        return false;
    }
    return true;
}

static void submit(struct call *c) {
    app_t *app = c->req->app;
    store_submit(app->store, call_unit, c, call_done);
}

/* SAFETY_PROVIDER=openai: the moderation API sees the text first (fail-closed: no answer in
 * SAFETY_TIMEOUT_MS, or an error, is 503). The blocklist runs in the unit either way. */
static void moderated(const struct safety_result *r, void *ud) {
    struct call *c = ud;
    if (r->st.outcome != PROV_OK) {
        http_respond_error(c->req, 503, "safety_unavailable", "Safety check unavailable", NULL,
                           NULL);
        call_free(c);
    } else if (r->flagged) {
        char reason[160];
        snprintf(reason, sizeof reason, "moderation:%s", r->category ? r->category : "flagged");
        http_respond_error(c->req, 400, "content_blocked", "Content blocked by the safety filter",
                           json_pack("{s:s}", "reason", reason), NULL);
        call_free(c);
    } else {
        submit(c);
    }
}

static void submit_moderated(struct call *c, const char *text) {
    app_t *app = c->req->app;
    if (!text || !*text || !app->providers || !providers_safety_enabled(app->providers)) {
        submit(c);
        return;
    }
    if (provider_safety_check(app->providers, text, moderated, c, NULL) != 0) {
        http_respond_error(c->req, 503, "safety_unavailable", "Safety check unavailable", NULL,
                           NULL);
        call_free(c);
    }
}

/* Start with SAFETY_PROVIDER=openai: the run budget (429) comes before the safety check (api.md §1
 * processing order), so a refused start makes no moderation call. The unit re-checks the budget
 * in the transaction that creates the run. */
static int budget_unit(store_tx_t *tx, void *arg) {
    struct call *c = arg;
    return wf_budget(tx, c->detail, sizeof c->detail);
}

static void budget_done(void *arg, int rc) {
    struct call *c = arg;
    if (rc == ERR_BUDGET) {
        http_respond_error(c->req, 429, "budget_exceeded", c->detail, NULL, NULL);
        call_free(c);
    } else if (rc) {
        log_error("api", "run budget check failed", LF_S("request_id", c->req->request_id),
                  LF_S("error", err_name(rc)));
        http_respond_err(c->req, ERR_INTERNAL, "Internal server error");
        call_free(c);
    } else {
        submit_moderated(c, jstr(c->in, "brief"));
    }
}

/* A string field: optional (absent/null ok) with a maximum length. false: answered 422. */
static bool opt_string(http_req_t *req, struct call *c, const char *field, size_t max) {
    json_t *v = json_object_get(req->json, field);
    if (!v || json_is_null(v))
        return true;
    char msg[80];
    if (!json_is_string(v)) {
        api_field_error(req, field, "must be a string");
    } else if (json_string_length(v) > max) {
        snprintf(msg, sizeof msg, "must be at most %zu characters", max);
        api_field_error(req, field, msg);
    } else {
        return true;
    }
    call_free(c);
    return false;
}

static bool name_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static void run_start(http_req_t *req, bool v2) {
    app_t *app = req->app;
    struct call *c = call_new(req, OP_START);
    c->v2 = v2;
    json_t *wf = json_object_get(req->json, "workflow");
    if (!wf || json_is_null(wf))
        wf = json_object_get(req->json, "project");
    const char *name = "aismr";
    if (wf && !json_is_null(wf)) {
        if (!json_is_string(wf) || !name_valid(json_string_value(wf))) {
            refuse(req, c, json_object_get(req->json, "workflow") ? "workflow" : "project",
                   "must match ^[a-z0-9_]{1,64}$");
            return;
        }
        name = json_string_value(wf);
    }
    json_t *brief = json_object_get(req->json, "brief");
    const char *why = NULL;
    if (!brief || json_is_null(brief))
        why = "is required";
    else if (!json_is_string(brief))
        why = "must be a string";
    else if (json_string_length(brief) > 10000)
        why = "must be at most 10000 characters";
    else {
        const char *p = json_string_value(brief);
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            why = "must not be blank";
    }
    if (why) {
        refuse(req, c, "brief", why);
        return;
    }
    if (!opt_string(req, c, "user_id", 128) || !opt_string(req, c, "telegram_chat_id", 64))
        return;
    c->project = workflow_project(app->workflow, name);
    if (!c->project) {
        char msg[120];
        snprintf(msg, sizeof msg, "Workflow '%s' not found", name);
        http_respond_error(req, 404, "not_found", msg, NULL, NULL);
        call_free(c);
        return;
    }
    if (!take_idem(req, c))
        return;
    if (!http_rate_check(req)) {
        call_free(c);
        return;
    }
    if (app->providers && providers_safety_enabled(app->providers)) {
        store_submit(app->store, budget_unit, c, budget_done);
        return;
    }
    submit_moderated(c, json_string_value(brief));
}

void api_run_start(http_req_t *req) { run_start(req, false); }

void api_run_get(http_req_t *req) {
    struct call *c = call_new(req, OP_GET);
    if (take_id(req, c))
        submit(c);
}

void api_run_artifacts(http_req_t *req) {
    struct call *c = call_new(req, OP_ARTIFACTS);
    if (take_id(req, c))
        submit(c);
}

void api_runs_list(http_req_t *req) {
    struct call *c = call_new(req, OP_LIST);
    c->f.limit = 50;
    char v[128];
    if (http_query(req, "limit", v, sizeof v) >= 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > LIST_MAX) {
            refuse(req, c, "limit", "must be an integer from 1 to 200");
            return;
        }
        c->f.limit = (int)n;
    }
    if (http_query(req, "status", c->status_f, sizeof c->status_f) >= 0) {
        if (run_status_parse(c->status_f) < 0) {
            refuse(req, c, "status", "must be a run status");
            return;
        }
        c->f.status = c->status_f;
    }
    if (http_query(req, "workflow", c->workflow_f, sizeof c->workflow_f) >= 0) {
        if (!name_valid(c->workflow_f)) {
            refuse(req, c, "workflow", "must match ^[a-z0-9_]{1,64}$");
            return;
        }
        c->f.workflow = c->workflow_f;
    }
    if (http_query(req, "cursor", v, sizeof v) >= 0) {
        char *dot = strchr(v, '.');
        char *end = NULL;
        long long at = dot ? strtoll(v, &end, 10) : -1;
        if (!dot || end != dot || at < 0 || !crypto_is_uuid(dot + 1, strlen(dot + 1))) {
            refuse(req, c, "cursor", "is not a cursor this server gave");
            return;
        }
        snprintf(c->cursor_id, sizeof c->cursor_id, "%s", dot + 1);
        c->f.before_id = c->cursor_id;
        c->f.before_created = at;
    }
    submit(c);
}

void api_run_approve(http_req_t *req) {
    struct call *c = call_new(req, OP_APPROVE);
    if (!take_id(req, c))
        return;
    json_t *g = json_object_get(req->json, "gate");
    if (!g || json_is_null(g)) {
        refuse(req, c, "gate", "is required");
        return;
    }
    if (!json_is_string(g) ||
        (strcmp(json_string_value(g), "ideation") && strcmp(json_string_value(g), "publish"))) {
        refuse(req, c, "gate", "must be ideation or publish");
        return;
    }
    snprintf(c->gate, sizeof c->gate, "%s", json_string_value(g));
    json_t *a = json_object_get(req->json, "approved");
    if (a && !json_is_null(a) && !json_is_boolean(a)) {
        refuse(req, c, "approved", "must be a boolean");
        return;
    }
    c->approved = !a || json_is_null(a) || json_is_true(a);
    if (!opt_string(req, c, "comment", 2000) || !take_idem(req, c))
        return;
    if (!http_rate_check(req)) {
        call_free(c);
        return;
    }
    submit_moderated(c, jstr(req->json, "comment"));
}

void api_run_cancel(http_req_t *req) {
    struct call *c = call_new(req, OP_CANCEL);
    if (!take_id(req, c) || !opt_string(req, c, "reason", 2000) || !take_idem(req, c))
        return;
    if (!http_rate_check(req)) {
        call_free(c);
        return;
    }
    submit(c);
}

void api_run_feedback_add(http_req_t *req) {
    struct call *c = call_new(req, OP_FEEDBACK_ADD);
    if (!take_id(req, c))
        return;
    json_t *r = json_object_get(req->json, "rating");
    if (!r || json_is_null(r)) {
        refuse(req, c, "rating", "is required");
        return;
    }
    if (!json_is_integer(r) || (json_integer_value(r) != 1 && json_integer_value(r) != 5)) {
        refuse(req, c, "rating", "must be 1 or 5");
        return;
    }
    json_t *aid = json_object_get(req->json, "artifact_id");
    if (aid && !json_is_null(aid) &&
        (!json_is_string(aid) ||
         !crypto_is_uuid(json_string_value(aid), json_string_length(aid)))) {
        refuse(req, c, "artifact_id", "must be a UUID");
        return;
    }
    if (!opt_string(req, c, "comment", 2000) || !take_idem(req, c))
        return;
    submit_moderated(c, jstr(req->json, "comment"));
}

void api_run_feedback_list(http_req_t *req) {
    struct call *c = call_new(req, OP_FEEDBACK_LIST);
    if (take_id(req, c))
        submit(c);
}

/* ---- v2 -----------------------------------------------------------------------------------------
 */

/* the same checks as v1; the answer waits for the first wait (V2_WAIT_MS at most) */
void api_v2_run_start(http_req_t *req) { run_start(req, true); }

static struct call *v2_gate_call(http_req_t *req, bool approved) {
    struct call *c = call_new(req, OP_V2_GATE);
    c->v2 = true;
    if (!take_id(req, c))
        return NULL;
    if (approved) {
        json_t *a = json_object_get(req->json, "approved");
        if (!a || json_is_null(a)) {
            api_field_error(req, "approved", "is required");
            call_free(c);
            return NULL;
        }
        if (!json_is_boolean(a)) {
            api_field_error(req, "approved", "must be a boolean");
            call_free(c);
            return NULL;
        }
        c->approved = json_is_true(a);
        json_t *data = json_object_get(req->json, "data");
        if (data && !json_is_null(data) && !json_is_object(data)) {
            api_field_error(req, "data", "must be an object");
            call_free(c);
            return NULL;
        }
        if (json_is_boolean(json_object_get(data, "approved")))
            c->approved = json_is_true(json_object_get(data, "approved"));
    }
    json_t *iid = json_object_get(req->json, "interrupt_id");
    if (iid && !json_is_null(iid)) {
        if (!json_is_string(iid) || json_string_length(iid) >= sizeof c->interrupt_id) {
            api_field_error(req, "interrupt_id", "must be a string of at most 63 characters");
            call_free(c);
            return NULL;
        }
        snprintf(c->interrupt_id, sizeof c->interrupt_id, "%s", json_string_value(iid));
    }
    if (!opt_string(req, c, "comment", 2000) || !opt_string(req, c, "content_override", 10000) ||
        !take_idem(req, c))
        return NULL;
    if (!http_rate_check(req)) {
        call_free(c);
        return NULL;
    }
    return c;
}

void api_v2_run_approve(http_req_t *req) {
    struct call *c = v2_gate_call(req, true);
    if (!c)
        return;
    /* api.md §3: comment, content_override and the string values of data are all checked */
    buf_t text;
    buf_init(&text, 1u << 21);
    const char *parts[] = {jstr(req->json, "comment"), jstr(req->json, "content_override")};
    for (size_t i = 0; i < 2; i++)
        if (parts[i] && *parts[i])
            buf_printf(&text, "%s%s", text.len ? "\n" : "", parts[i]);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(req->json, "data"), k,
                        v) if (json_is_string(v) && json_string_length(v))
        buf_printf(&text, "%s%s", text.len ? "\n" : "", json_string_value(v));
    submit_moderated(c, text.data);
    buf_release(&text);
}

void api_v2_run_reject(http_req_t *req) {
    struct call *c = v2_gate_call(req, false);
    if (c) {
        c->approved = false;
        submit(c);
    }
}

void api_v2_run_resume(http_req_t *req) {
    struct call *c = call_new(req, OP_V2_RESUME);
    if (!take_id(req, c))
        return;
    json_t *a = json_object_get(req->json, "action");
    const char *action = "auto";
    if (a && !json_is_null(a)) {
        if (!json_is_string(a)) {
            refuse(req, c, "action", "must be a string");
            return;
        }
        action = json_string_value(a);
    }
    static const char *const actions[] = {"auto", "retry", "videos", "render", "publish"};
    bool known = false;
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        known |= strcmp(actions[i], action) == 0;
    if (!known) {
        char msg[120];
        snprintf(msg, sizeof msg, "Unknown resume action: %.64s", action);
        http_respond_error(req, 400, "bad_request", msg, NULL, NULL);
        call_free(c);
        return;
    }
    snprintf(c->action, sizeof c->action, "%s", action);
    json_t *ap = json_object_get(req->json, "approve_publish"),
           *f = json_object_get(req->json, "force");
    if ((ap && !json_is_null(ap) && !json_is_boolean(ap)) ||
        (f && !json_is_null(f) && !json_is_boolean(f))) {
        refuse(req, c,
               ap && !json_is_boolean(ap) && !json_is_null(ap) ? "approve_publish" : "force",
               "must be a boolean");
        return;
    }
    c->approve_publish = json_is_true(ap);
    c->force = json_is_true(f);
    if (!take_idem(req, c))
        return;
    if (!http_rate_check(req)) {
        call_free(c);
        return;
    }
    submit(c);
}

void api_v2_run_state(http_req_t *req) {
    struct call *c = call_new(req, OP_V2_STATE);
    if (take_id(req, c))
        submit(c);
}

void api_v2_run_history(http_req_t *req) {
    struct call *c = call_new(req, OP_V2_HISTORY);
    if (take_id(req, c))
        submit(c);
}
