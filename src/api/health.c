/*
 * health: /health and /health/db. The database probe (a real write in a transaction, as a unit
 * on the database thread) and the storage check run at most once a second; requests that
 * arrive while a probe runs wait for it, the others get the cached answer. The rendered /health body is
 * cached too, per probe and per uptime second, so a busy health checker costs almost nothing.
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

#define PROBE_EVERY_MS 1000
#define PROBE_DEADLINE_MS 2000 /* a database that cannot take a write by then is down */

enum kind { K_HEALTH, K_DB };

struct waiter {
    http_req_t *req;
    enum kind kind;
};

struct health {
    app_t *app;
    uv_timer_t deadline;
    bool running, timer_open;
    int64_t probed_ms;
    /* last results (loop thread) */
    int db_rc, schema_version;
    bool storage_ok;
    /* written by the database thread, read in probe_done on the loop */
    int w_schema;
    bool w_storage_ok;
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

static void free_after_close(uv_handle_t *t) {
    struct health *h = t->data;
    free(h->waiting);
    free(h->body);
    free(h);
}

void health_close(struct health *h) {
    if (h && h->timer_open) {
        h->timer_open = false;
        uv_close((uv_handle_t *)&h->deadline, free_after_close);
    }
}

/* Database thread: the write, the schema version, and the media directory. */
static int probe_unit(store_tx_t *tx, void *arg) {
    struct health *h = arg;
    h->w_storage_ok = access(config_str(h->app->cfg, S_MEDIA_DIR), W_OK) == 0;
    int rc = tx->s->ops->probe_write(tx);
    if (rc == 0)
        rc = tx->s->ops->schema_version(tx, &h->w_schema);
    return rc;
}

static void answer(struct health *h, http_req_t *req, enum kind kind);

static void answer_waiters(struct health *h) {
    size_t n = h->nwaiting;
    h->nwaiting = 0;
    for (size_t i = 0; i < n; i++)
        answer(h, h->waiting[i].req, h->waiting[i].kind);
}

/* The probe is still on the database thread (a lock held elsewhere): answer "down" now. */
static void deadline_cb(uv_timer_t *t) {
    struct health *h = t->data;
    log_error("health", "database probe timed out", LF_I("after_ms", PROBE_DEADLINE_MS));
    h->db_rc = ERR_BUSY;
    h->probed_ms = clock_now_ms();
    answer_waiters(h);
}

static void probe_done(void *arg, int rc) {
    struct health *h = arg;
    h->running = false;
    uv_timer_stop(&h->deadline);
    h->probed_ms = clock_now_ms();
    if (rc)
        log_error("health", "database probe failed", LF_S("error", err_name(rc)));
    h->db_rc = rc;
    h->schema_version = h->w_schema;
    h->storage_ok = h->w_storage_ok;
    answer_waiters(h);
    app_health_idle(h->app);
}

bool health_busy(const struct health *h) { return h && h->running; }

static void render_health(struct health *h, int64_t uptime_s) {
    const config_t *c = h->app->cfg;
    const char *llm = config_str(c, S_LLM_PROVIDER), *sora = config_str(c, S_SORA_PROVIDER);
    const char *render = config_str(c, S_RENDER_PROVIDER), *pub = config_str(c, S_PUBLISH_PROVIDER);
    bool degraded_mode = strcmp(llm, "fake") == 0 || strcmp(sora, "fake") == 0 || strcmp(pub, "fake") == 0;
    bool db_up = h->db_rc == 0;
    const char *status = !db_up ? "down" : h->storage_ok ? "healthy" : "degraded";
    json_t *o = json_pack("{s:s,s:s,s:I,s:b,s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:{s:{s:s},s:{s:s},s:{s:s},s:{s:s}}}}",
                          "status", status, "version", MYLOWARE_VERSION, "uptime_s", (json_int_t)uptime_s,
                          "degraded_mode", degraded_mode, "provider_modes", "llm", llm, "sora", sora,
                          "render", render, "publish", pub, "checks", "database", db_up ? "up" : "down",
                          "storage", h->storage_ok ? "up" : "down", "providers", "llm", "mode", llm, "sora",
                          "mode", sora, "render", "mode", render, "publish", "mode", pub);
    free(h->body);
    h->body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    h->body_status = db_up ? 200 : 503;
    h->body_probe_ms = h->probed_ms;
    h->body_uptime_s = uptime_s;
}

static void answer(struct health *h, http_req_t *req, enum kind kind) {
    if (kind == K_DB) {
        bool ok = h->db_rc == 0;
        http_respond_json(req, ok ? 200 : 503,
                          json_pack("{s:s,s:s,s:i}", "database", ok ? "healthy" : "unhealthy", "backend",
                                    store_backend(h->app->store), "schema_version", h->schema_version));
        return;
    }
    int64_t uptime_s = (clock_now_ms() - h->app->started_ms) / 1000;
    if (!h->body || h->body_probe_ms != h->probed_ms || h->body_uptime_s != uptime_s)
        render_health(h, uptime_s);
    http_respond(req, h->body_status, "application/json", h->body, strlen(h->body), NULL);
}

static void ask(http_req_t *req, enum kind kind) {
    app_t *app = req->app;
    struct health *h = app->health;
    bool overdue = h->running && !uv_is_active((uv_handle_t *)&h->deadline);
    if (overdue || (!h->running && clock_now_ms() - h->probed_ms < PROBE_EVERY_MS)) {
        answer(h, req, kind);
        return;
    }
    if (h->nwaiting == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->waiting = xrealloc(h->waiting, h->cap * sizeof *h->waiting);
    }
    h->waiting[h->nwaiting++] = (struct waiter){req, kind};
    if (!h->running) {
        h->running = true;
        uv_timer_start(&h->deadline, deadline_cb, PROBE_DEADLINE_MS, 0);
        store_submit(app->store, probe_unit, h, probe_done);
    }
}

void api_health(http_req_t *req) { ask(req, K_HEALTH); }
void api_health_db(http_req_t *req) { ask(req, K_DB); }
