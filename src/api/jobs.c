/*
 * jobs: GET /v1/jobs/{id}, GET /admin/jobs, the dead letters (GET /admin/dlq, GET
 * /admin/dlq/{id}, POST .../replay, POST .../resolve), and POST /_test/jobs (ENVIRONMENT=test
 * only: enqueues test jobs for the crash, concurrency and benchmark tests). Every database
 * access is a unit on the database thread; the answer is given in its completion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/mem.h"
#include "queue/dispatcher.h"
#include "queue/queue.h"

#define LIST_MAX 200

enum op { OP_GET, OP_LIST, OP_DLQ_LIST, OP_DLQ_GET, OP_REPLAY, OP_RESOLVE };

struct call {
    http_req_t *req;
    enum op op;
    char id[JOB_ID_LEN];
    char actor[32];
    struct job_filter f;
    char type[JOB_TYPE_MAX], run_id[JOB_ID_LEN];
    job_t job;
    job_t *list;
    int n;
    int64_t resolved_at;
};

static json_t *iso_or_null(int64_t ms) {
    if (!ms)
        return json_null();
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(ms, ts);
    return json_string(ts);
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

static json_t *job_json(const job_t *j) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "type", json_string(j->type));
    json_object_set_new(o, "run_id", str_or_null(j->run_id));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    json_object_set_new(o, "run_at", iso_or_null(j->run_at));
    json_object_set_new(o, "progress", j->progress >= 0 ? json_real(j->progress) : json_null());
    json_object_set_new(o, "last_error", str_or_null(j->last_error));
    json_object_set_new(o, "result_url", str_or_null(j->result_url));
    json_object_set_new(o, "created_at", iso_or_null(j->created_at));
    json_object_set_new(o, "updated_at", iso_or_null(j->updated_at));
    return o;
}

static json_t *dead_letter_json(const job_t *j, bool with_payload) {
    char source[JOB_TYPE_MAX];
    snprintf(source, sizeof source, "%s", j->type);
    char *dot = strchr(source, '.');
    if (dot)
        *dot = '\0';
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "job_type", json_string(j->type));
    json_object_set_new(o, "run_id", str_or_null(j->run_id));
    json_object_set_new(o, "error", str_or_null(j->last_error));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "created_at", iso_or_null(j->created_at));
    json_object_set_new(o, "last_attempt_at",
                        iso_or_null(j->finished_at ? j->finished_at : j->updated_at));
    json_object_set_new(o, "resolved_at", iso_or_null(j->resolved_at));
    if (with_payload) {
        json_t *p = json_loads(j->payload ? j->payload : "{}", 0, NULL);
        json_object_set_new(o, "payload", p ? p : json_string(j->payload ? j->payload : ""));
    }
    return o;
}

/* Database thread. */
static int call_unit(store_tx_t *tx, void *arg) {
    struct call *c = arg;
    const struct store_ops *ops = tx->s->ops;
    int rc;
    switch (c->op) {
    case OP_GET: return ops->job_get(tx, c->id, &c->job);
    case OP_DLQ_GET:
        rc = ops->job_get(tx, c->id, &c->job);
        if (rc == 0 && c->job.state != JOB_DEAD && !c->job.resolved_at) {
            job_release(&c->job);
            return ERR_NOTFOUND;
        }
        return rc;
    case OP_LIST:
    case OP_DLQ_LIST:
        c->list = xcalloc((size_t)c->f.limit, sizeof(job_t));
        return ops->job_list(tx, &c->f, c->list, &c->n);
    case OP_REPLAY:
        rc = queue_replay(tx, c->id);
        return rc ? rc : ops->audit(tx, c->actor, "dlq.replay", c->id, NULL);
    case OP_RESOLVE:
        rc = queue_resolve(tx, c->id, &c->resolved_at);
        return rc ? rc : ops->audit(tx, c->actor, "dlq.resolve", c->id, NULL);
    }
    return ERR_INTERNAL;
}

static void call_done(void *arg, int rc) {
    struct call *c = arg;
    http_req_t *req = c->req;
    app_t *app = req->app;
    char msg[160];
    json_t *arr;
    switch (c->op) {
    case OP_GET:
        if (rc == ERR_NOTFOUND)
            http_respond_error(req, 404, "not_found", "Job not found", NULL, NULL);
        else if (rc)
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
        else
            http_respond_json(req, 200, job_json(&c->job));
        break;
    case OP_DLQ_GET:
        snprintf(msg, sizeof msg, "Dead letter %s not found", c->id);
        if (rc == ERR_NOTFOUND)
            http_respond_error(req, 404, "not_found", msg, NULL, NULL);
        else if (rc)
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
        else
            http_respond_json(req, 200, dead_letter_json(&c->job, true));
        break;
    case OP_LIST:
    case OP_DLQ_LIST:
        if (rc) {
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
            break;
        }
        arr = json_array();
        for (int i = 0; i < c->n; i++)
            json_array_append_new(arr, c->op == OP_LIST ? job_json(&c->list[i])
                                                        : dead_letter_json(&c->list[i], false));
        http_respond_json(
            req, 200,
            json_pack("{s:o,s:i}", c->op == OP_LIST ? "jobs" : "dead_letters", arr, "count", c->n));
        break;
    case OP_REPLAY:
        if (rc == ERR_NOTFOUND) {
            snprintf(msg, sizeof msg, "Dead letter %s not found", c->id);
            http_respond_error(req, 404, "not_found", msg, NULL, NULL);
        } else if (rc == ERR_CONFLICT) {
            snprintf(msg, sizeof msg, "Dead letter %s is already resolved", c->id);
            http_respond_error(req, 409, "conflict", msg, NULL, NULL);
        } else if (rc) {
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
        } else {
            dispatcher_kick(app->dispatcher);
            http_respond_json(req, 200,
                              json_pack("{s:s,s:s,s:s}", "status", "replayed", "dead_letter_id",
                                        c->id, "job_id", c->id));
        }
        break;
    case OP_RESOLVE:
        if (rc == ERR_NOTFOUND) {
            snprintf(msg, sizeof msg, "Dead letter %s not found", c->id);
            http_respond_error(req, 404, "not_found", msg, NULL, NULL);
        } else if (rc == ERR_CONFLICT) {
            http_respond_json(req, 200,
                              json_pack("{s:s,s:s,s:o}", "status", "already_resolved",
                                        "dead_letter_id", c->id, "resolved_at",
                                        iso_or_null(c->resolved_at)));
        } else if (rc) {
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
        } else {
            http_respond_json(
                req, 200, json_pack("{s:s,s:s}", "status", "resolved", "dead_letter_id", c->id));
        }
        break;
    }
    job_release(&c->job);
    for (int i = 0; i < c->n; i++)
        job_release(&c->list[i]);
    free(c->list);
    free(c);
}

static struct call *call_new(http_req_t *req, enum op op) {
    struct call *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->op = op;
    http_api_key_id(req, c->actor, sizeof c->actor);
    return c;
}

/* Takes the {id} parameter; answers 404 when it is not a UUID. */
static bool take_id(http_req_t *req, struct call *c, bool dead_letter) {
    int n = http_param(req, 0, c->id, sizeof c->id);
    if (n > 0 && crypto_is_uuid(c->id, (size_t)n))
        return true;
    char msg[200];
    if (dead_letter)
        snprintf(msg, sizeof msg, "Dead letter %s not found", n > 0 ? c->id : "");
    else
        snprintf(msg, sizeof msg, "Job not found");
    http_respond_error(req, 404, "not_found", msg, NULL, NULL);
    free(c);
    return false;
}

static void submit(http_req_t *req, struct call *c) {
    app_t *app = req->app;
    store_submit(app->store, call_unit, c, call_done);
}

void api_job_get(http_req_t *req) {
    struct call *c = call_new(req, OP_GET);
    if (take_id(req, c, false))
        submit(req, c);
}

static bool query_limit(http_req_t *req, int *limit) {
    char v[16];
    *limit = 50;
    if (http_query(req, "limit", v, sizeof v) < 0)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < 1 || n > LIST_MAX) {
        api_field_error(req, "limit", "must be an integer from 1 to 200");
        return false;
    }
    *limit = (int)n;
    return true;
}

void api_jobs_list(http_req_t *req) {
    struct call *c = call_new(req, OP_LIST);
    char state[16];
    c->f.state = -1;
    if (http_query(req, "state", state, sizeof state) >= 0 &&
        (c->f.state = job_state_parse(state)) < 0) {
        free(c);
        api_field_error(req, "state", "must be one of queued, running, succeeded, dead, cancelled");
        return;
    }
    if (http_query(req, "type", c->type, sizeof c->type) > 0)
        c->f.type = c->type;
    if (http_query(req, "run_id", c->run_id, sizeof c->run_id) > 0)
        c->f.run_id = c->run_id;
    if (!query_limit(req, &c->f.limit)) {
        free(c);
        return;
    }
    submit(req, c);
}

void api_dlq_list(http_req_t *req) {
    struct call *c = call_new(req, OP_DLQ_LIST);
    c->f.state = JOB_DEAD;
    c->f.dead_letters = true;
    c->f.dead_unresolved_only = true;
    char v[16];
    if (http_query(req, "unresolved_only", v, sizeof v) >= 0) {
        if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            c->f.dead_unresolved_only = false;
        else if (strcmp(v, "true") != 0 && strcmp(v, "1") != 0) {
            free(c);
            api_field_error(req, "unresolved_only", "must be true or false");
            return;
        }
    }
    if (http_query(req, "source", c->type, sizeof c->type) > 0)
        c->f.type = c->type;
    if (!query_limit(req, &c->f.limit)) {
        free(c);
        return;
    }
    submit(req, c);
}

void api_dlq_get(http_req_t *req) {
    struct call *c = call_new(req, OP_DLQ_GET);
    if (take_id(req, c, true))
        submit(req, c);
}

void api_dlq_replay(http_req_t *req) {
    struct call *c = call_new(req, OP_REPLAY);
    if (take_id(req, c, true))
        submit(req, c);
}

void api_dlq_resolve(http_req_t *req) {
    struct call *c = call_new(req, OP_RESOLVE);
    if (take_id(req, c, true))
        submit(req, c);
}

/* ---- POST /_test/jobs ------------------------------------------------------------------------ */

struct test_enqueue {
    http_req_t *req;
    struct queue_policy pol;
    char type[JOB_TYPE_MAX];
    char *payload;
    int per_unit, units_left, enqueued, failed;
    char first_id[JOB_ID_LEN];
};

struct test_unit {
    struct test_enqueue *t;
    int count;
    char first_id[JOB_ID_LEN];
};

static int test_unit_fn(store_tx_t *tx, void *arg) {
    struct test_unit *u = arg;
    struct queue_new n = {.type = u->t->type, .payload = u->t->payload};
    for (int i = 0; i < u->count; i++) {
        job_t j;
        bool existed;
        int rc = queue_enqueue(tx, &u->t->pol, &n, &j, &existed);
        if (rc)
            return rc;
        if (i == 0)
            memcpy(u->first_id, j.id, sizeof j.id);
        job_release(&j);
    }
    return 0;
}

static void test_unit_done(void *arg, int rc) {
    struct test_unit *u = arg;
    struct test_enqueue *t = u->t;
    if (rc)
        t->failed++;
    else
        t->enqueued += u->count;
    if (!t->first_id[0] && u->first_id[0])
        memcpy(t->first_id, u->first_id, sizeof t->first_id);
    free(u);
    app_t *app = t->req->app;
    dispatcher_kick_type(app->dispatcher, t->type);
    if (--t->units_left > 0)
        return;
    if (t->failed)
        http_respond_err(t->req, ERR_INTERNAL, "Some jobs could not be enqueued");
    else
        http_respond_json(t->req, 200,
                          json_pack("{s:i,s:s}", "enqueued", t->enqueued, "first_id", t->first_id));
    free(t->payload);
    free(t);
}

void api_test_jobs(http_req_t *req) {
    app_t *app = req->app;
    if (strcmp(config_str(app->cfg, S_ENVIRONMENT), "test") != 0) {
        http_respond_error(req, 404, "not_found", "Not found", NULL, NULL);
        return;
    }
    const char *type = json_string_value(json_object_get(req->json, "type"));
    if (!type || !queue_type_valid(type) || strncmp(type, "test.", 5) != 0) {
        api_field_error(req, "type", "must be a test job type (test.*)");
        return;
    }
    json_t *jc = json_object_get(req->json, "count"), *jp = json_object_get(req->json, "per_unit");
    json_int_t count = jc ? (json_is_integer(jc) ? json_integer_value(jc) : -1) : 1;
    json_int_t per = jp ? (json_is_integer(jp) ? json_integer_value(jp) : -1) : 1;
    if (count < 1 || count > 1000000) {
        api_field_error(req, "count", "must be an integer from 1 to 1000000");
        return;
    }
    if (per < 1 || per > 10000) {
        api_field_error(req, "per_unit", "must be an integer from 1 to 10000");
        return;
    }
    struct test_enqueue *t = xcalloc(1, sizeof *t);
    t->req = req;
    queue_policy_from_config(&t->pol, app->cfg);
    snprintf(t->type, sizeof t->type, "%s", type);
    json_t *payload = json_object_get(req->json, "payload");
    t->payload = payload ? json_dumps(payload, JSON_COMPACT) : xstrdup("{}");
    t->per_unit = (int)per;
    t->units_left = (int)((count + per - 1) / per);
    for (json_int_t left = count; left > 0; left -= per) {
        struct test_unit *u = xcalloc(1, sizeof *u);
        u->t = t;
        u->count = (int)(left < per ? left : per);
        store_submit(app->store, test_unit_fn, u, test_unit_done);
    }
}
