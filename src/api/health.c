/*
 * health: /health and /health/db. The database probe (a real write in a transaction, as a unit
 * on the database thread), the storage check and the queue counts run at most once a second.
 * A request that finds the last result older than that starts a new probe but is answered
 * from the last result at once while it is younger than PROBE_EVERY_MS + PROBE_DEADLINE_MS (so
 * that no /health request waits behind a busy database thread, which cost the p99 under queue
 * load); only without such a result (the first request, or a probe stuck past its deadline and
 * reported down) does a request wait for the probe. The
 * rendered /health body is cached too, per probe and per uptime second, so a busy health checker
 * costs almost nothing: no database work and no JSON per request. The probe also refreshes the
 * queue gauges of /metrics (myloware_queue_jobs, myloware_queue_oldest_ready_age_seconds), and
 * /metrics waits for it the same way (health_then).
 *
 * The queue counts scan every unfinished job (130 ms at a million queued runs): they run on a
 * reader store of their own (store_open_reader, at the first probe: its own connection and
 * thread, SQLite's WAL lets it read beside the writer) once the write is done, so that no
 * request waits behind them on the database thread; the probe does not wait for them either (/health shows the last
 * counts meanwhile, and a count still running is not started again). Without a reader
 * (Postgres, an in-memory database) they run in the probe's transaction.
 *
 * Circuits (checks.providers.*.circuit) are the dispatcher's of this process, read when the
 * body is rendered; `serve --role api` runs no jobs, so its circuits are always closed. An open
 * or half-open circuit makes the status "degraded" (200), like storage trouble.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "queue/dispatcher.h"

#define PROBE_EVERY_MS 1000
#define PROBE_DEADLINE_MS 2000 /* a database that cannot take a write by then is down */

struct waiter {
    http_req_t *req;
    void (*fn)(http_req_t *req);
};

struct health {
    app_t *app;
    store_t *reader;   /* the queue counts' store; NULL: they go to the main store */
    bool reader_tried; /* opened at the first probe (a worker never probes) */
    bool counting;     /* the reader's counts are running */
    uv_timer_t deadline;
    bool running, timer_open;
    int64_t probed_ms;
    /* last results (loop thread) */
    int db_rc, schema_version;
    bool storage_ok;
    struct queue_counts counts;
    /* written by the database thread, read in probe_done on the loop */
    int w_schema;
    bool w_storage_ok;
    struct queue_counts w_counts; /* by the reader's thread instead when there is a reader */
    struct waiter *waiting;
    size_t nwaiting, cap;
    char *body; /* cached /health body */
    int body_status;
    int64_t body_probe_ms, body_uptime_s;
};

struct health *health_new(app_t *app) {
    struct health *h = xcalloc(1, sizeof *h);
    h->app = app;
    h->probed_ms = INT64_MIN / 2;
    uv_timer_init(&app->loop, &h->deadline);
    h->deadline.data = h;
    h->timer_open = true;
    return h;
}

/* Opens the reader store, once (loop thread, before the first probe is submitted). */
static void open_reader(struct health *h) {
    h->reader_tried = true;
    buf_t err;
    buf_init(&err, 256);
    int rc = store_open_reader(h->app->cfg, &h->reader, &err);
    if (rc == 0 && store_attach_loop(h->reader, &h->app->loop) != 0) {
        store_close(h->reader);
        h->reader = NULL;
        buf_puts(&err, "cannot attach it to the loop");
        rc = ERR_IO;
    }
    if (rc && rc != ERR_NOTSUP)
        log_warn("health", "no reader connection: the queue counts run on the database thread",
                 LF_S("error", err.data ? err.data : ""));
    buf_release(&err);
}

static void free_after_close(uv_handle_t *t) {
    struct health *h = t->data;
    store_close(h->reader); /* waits for a count still running; its answer is dropped */
    free(h->waiting);
    free(h->body);
    free(h);
}

void health_close(struct health *h) {
    if (h && h->timer_open) {
        h->timer_open = false;
        if (h->reader)
            store_detach_loop(h->reader); /* now: before the app closes every handle left */
        uv_close((uv_handle_t *)&h->deadline, free_after_close);
    }
}

/* Database thread: the write, the schema version, the media directory; and the queue counts
 * when there is no reader store. */
static int probe_unit(store_tx_t *tx, void *arg) {
    struct health *h = arg;
    h->w_storage_ok = access(config_str(h->app->cfg, S_MEDIA_DIR), W_OK) == 0;
    int rc = tx->s->ops->probe_write(tx);
    if (rc == 0)
        rc = tx->s->ops->schema_version(tx, &h->w_schema);
    if (rc == 0 && !h->reader)
        rc = tx->s->ops->job_counts(tx, clock_now_ms(), &h->w_counts);
    return rc;
}

/* The reader store's thread. */
static int counts_unit(store_tx_t *tx, void *arg) {
    struct health *h = arg;
    return tx->s->ops->job_counts(tx, clock_now_ms(), &h->w_counts);
}

static void answer_waiters(struct health *h) {
    size_t n = h->nwaiting;
    h->nwaiting = 0;
    for (size_t i = 0; i < n; i++)
        h->waiting[i].fn(h->waiting[i].req);
}

static void set_queue_gauges(const struct queue_counts *c) {
    metrics_set(M_QUEUE_JOBS, "state=\"ready\"", (double)c->ready);
    metrics_set(M_QUEUE_JOBS, "state=\"scheduled\"", (double)c->scheduled);
    metrics_set(M_QUEUE_JOBS, "state=\"running\"", (double)c->running);
    metrics_set(M_QUEUE_JOBS, "state=\"dead\"", (double)c->dead);
    metrics_set(M_QUEUE_OLDEST, "", c->oldest_ready_age_s);
}

/* Loop thread: w_counts holds new counts. */
static void take_counts(struct health *h) {
    h->counts = h->w_counts;
    set_queue_gauges(&h->counts);
}

/* The probe is still on the database thread (a lock held elsewhere): answer "down" now. */
static void deadline_cb(uv_timer_t *t) {
    struct health *h = t->data;
    log_error("health", "database probe timed out", LF_I("after_ms", PROBE_DEADLINE_MS));
    h->db_rc = ERR_BUSY;
    h->probed_ms = clock_now_ms();
    answer_waiters(h);
}

/* Loop thread: the reader's counts are in (they do not hold the probe up: /health answers from
 * the write's result meanwhile, with the last counts). */
static void counts_done(void *arg, int rc) {
    struct health *h = arg;
    h->counting = false;
    if (rc) {
        log_warn("health", "queue counts failed", LF_S("error", err_name(rc)));
        return;
    }
    take_counts(h);
    free(h->body); /* the cached /health body shows the counts */
    h->body = NULL;
}

static void probe_done(void *arg, int rc) {
    struct health *h = arg;
    /* the counts on the reader: one at a time, never while the app stops */
    if (rc == 0 && h->reader && !h->counting && !h->app->stopping) {
        h->counting = true;
        store_submit(h->reader, counts_unit, h, counts_done);
    }
    h->running = false;
    uv_timer_stop(&h->deadline);
    h->probed_ms = clock_now_ms();
    if (rc)
        log_error("health", "database probe failed", LF_S("error", err_name(rc)));
    h->db_rc = rc;
    h->schema_version = h->w_schema;
    h->storage_ok = h->w_storage_ok;
    if (rc == 0 && !h->reader) /* counted in the probe */
        take_counts(h);
    answer_waiters(h);
    app_health_idle(h->app);
}

bool health_busy(const struct health *h) { return h && h->running; }

/* The spec's providers and the settings that give their modes; then any other provider the
 * dispatcher knows (mode "real": no fake exists for it). */
static const struct {
    const char *name;
    enum setting_id mode;
} spec_providers[] = {{"llm", S_LLM_PROVIDER},
                      {"sora", S_SORA_PROVIDER},
                      {"render", S_RENDER_PROVIDER},
                      {"publish", S_PUBLISH_PROVIDER}};
#define NSPEC (sizeof spec_providers / sizeof spec_providers[0])

static void render_health(struct health *h, int64_t uptime_s) {
    const config_t *c = h->app->cfg;
    const struct dispatcher *d = h->app->dispatcher;
    json_t *modes = json_object(), *providers = json_object();
    bool degraded_mode = false, circuit_open = false;
    for (size_t i = 0; i < NSPEC; i++) {
        const char *mode = config_str(c, spec_providers[i].mode);
        degraded_mode |= strcmp(mode, "fake") == 0;
        json_object_set_new(modes, spec_providers[i].name, json_string(mode));
    }
    const char *names[32];
    int n = dispatcher_providers(d, names, 32);
    for (int i = -(int)NSPEC; i < n && i < 32; i++) {
        const char *name = i < 0 ? spec_providers[i + (int)NSPEC].name : names[i];
        if (i >= 0 && json_object_get(providers, name))
            continue; /* a spec provider, done above */
        enum breaker_state st = dispatcher_circuit(d, name);
        circuit_open |= st != BREAKER_CLOSED;
        json_t *mode = i < 0 ? json_string(config_str(c, spec_providers[i + (int)NSPEC].mode))
                             : json_string("real");
        json_object_set_new(
            providers, name,
            json_pack("{s:o,s:s}", "mode", mode, "circuit", breaker_state_name(st)));
    }
    bool db_up = h->db_rc == 0;
    const char *status = !db_up ? "down" : h->storage_ok && !circuit_open ? "healthy" : "degraded";
    const struct queue_counts *q = &h->counts;
    json_t *o = json_pack("{s:s,s:s,s:I,s:b,s:o,s:{s:s,s:{s:I,s:I,s:I,s:I,s:f},s:s,s:o}}", "status",
                          status, "version", MYLOWARE_VERSION, "uptime_s", (json_int_t)uptime_s,
                          "degraded_mode", degraded_mode, "provider_modes", modes, "checks",
                          "database", db_up ? "up" : "down", "queue", "ready", (json_int_t)q->ready,
                          "running", (json_int_t)q->running, "scheduled", (json_int_t)q->scheduled,
                          "dead", (json_int_t)q->dead, "oldest_ready_age_s", q->oldest_ready_age_s,
                          "storage", h->storage_ok ? "up" : "down", "providers", providers);
    free(h->body);
    h->body = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    h->body_status = db_up ? 200 : 503;
    h->body_probe_ms = h->probed_ms;
    h->body_uptime_s = uptime_s;
}

static void answer_db(http_req_t *req) {
    struct health *h = ((app_t *)req->app)->health;
    bool ok = h->db_rc == 0;
    http_respond_json(req, ok ? 200 : 503,
                      json_pack("{s:s,s:s,s:i}", "database", ok ? "healthy" : "unhealthy",
                                "backend", store_backend(h->app->store), "schema_version",
                                h->schema_version));
}

static void answer_health(http_req_t *req) {
    struct health *h = ((app_t *)req->app)->health;
    int64_t uptime_s = (clock_now_ms() - h->app->started_ms) / 1000;
    if (!h->body || h->body_probe_ms != h->probed_ms || h->body_uptime_s != uptime_s)
        render_health(h, uptime_s);
    http_respond(req, h->body_status, "application/json", h->body, strlen(h->body), NULL);
}

void health_then(http_req_t *req, void (*fn)(http_req_t *req)) {
    app_t *app = req->app;
    struct health *h = app->health;
    int64_t age = clock_now_ms() - h->probed_ms;
    bool overdue = h->running && !uv_is_active((uv_handle_t *)&h->deadline);
    if (!h->running && age >= PROBE_EVERY_MS) {
        if (!h->reader_tried)
            open_reader(h);
        h->running = true;
        uv_timer_start(&h->deadline, deadline_cb, PROBE_DEADLINE_MS, 0);
        store_submit(app->store, probe_unit, h, probe_done);
    }
    if (overdue || age < PROBE_EVERY_MS + PROBE_DEADLINE_MS) {
        fn(req);
        return;
    }
    if (h->nwaiting == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->waiting = xrealloc(h->waiting, h->cap * sizeof *h->waiting);
    }
    h->waiting[h->nwaiting++] = (struct waiter){req, fn};
}

void api_health(http_req_t *req) { health_then(req, answer_health); }
void api_health_db(http_req_t *req) { health_then(req, answer_db); }
