/* retention: the periodic sweep of finished runs' intermediate media (see retention.h). */
#include "workflow/retention.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "workflow/run.h"

struct keep_ctx {
    store_t *store;
    int64_t cutoff_ms;
    int errors;
};

struct run_q {
    const char *id;
    int64_t cutoff_ms;
    bool finished_before; /* out: terminal and last updated before the cutoff */
    bool gone;            /* out: no such run */
};

static int run_unit(store_tx_t *tx, void *arg) {
    struct run_q *q = arg;
    run_t r;
    memset(&r, 0, sizeof r);
    int rc = tx->s->ops->run_get(tx, q->id, false, &r);
    if (rc == ERR_NOTFOUND) {
        q->gone = true;
        return 0;
    }
    if (rc)
        return rc;
    q->finished_before = run_status_name_terminal(r.status) && r.updated_at < q->cutoff_ms;
    run_release(&r);
    return 0;
}

/* storage_cleanup's keep: true unless the object's run finished before the cutoff or is gone. */
static bool keep(const char *key, void *ud) {
    struct keep_ctx *k = ud;
    char id[37];
    if (storage_key_run_id(key, id) != 0)
        return true; /* not an intermediate object of a run */
    struct run_q q = {.id = id, .cutoff_ms = k->cutoff_ms};
    if (store_call(k->store, run_unit, &q) != 0) {
        k->errors++;
        return true; /* in doubt, keep */
    }
    return !(q.finished_before || q.gone);
}

int retention_sweep(storage_t *st, store_t *store, int64_t cutoff, int *removed) {
    struct keep_ctx k = {.store = store, .cutoff_ms = cutoff * 1000};
    static const char *const prefixes[] = {"transcoded", "thumbnails"};
    int total = 0, first = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        int n = 0;
        int rc = storage_cleanup(st, prefixes[i], cutoff, keep, &k, &n);
        total += n;
        if (rc && !first)
            first = rc;
    }
    if (k.errors)
        log_warn("retention", "could not read some runs; their media was kept",
                 LF_I("errors", k.errors));
    if (removed)
        *removed = total;
    return first;
}

static struct {
    uv_timer_t timer;
    uv_work_t work;
    app_t *app;
    bool busy;
    int rc, removed;
} sweeper;

static void sweep_work(uv_work_t *w) {
    app_t *app = sweeper.app;
    int64_t cutoff = storage_retention_cutoff(app->storage, clock_now_ms() / 1000);
    sweeper.removed = 0;
    sweeper.rc =
        cutoff > 0 ? retention_sweep(app->storage, app->store, cutoff, &sweeper.removed) : 0;
}

static void sweep_done(uv_work_t *w, int status) {
    sweeper.busy = false;
    if (status == 0 && sweeper.rc)
        log_warn("retention", "media sweep incomplete", LF_S("error", err_name(sweeper.rc)));
    else if (status == 0 && sweeper.removed)
        log_info("retention", "media sweep done", LF_I("removed", sweeper.removed));
}

static void sweep_tick(uv_timer_t *t) {
    if (sweeper.busy || sweeper.app->stopping)
        return;
    if (uv_queue_work(t->loop, &sweeper.work, sweep_work, sweep_done) == 0)
        sweeper.busy = true;
}

void retention_start(struct app *app) {
    if (!app->storage || config_int(app->cfg, S_MEDIA_RETENTION_HOURS) <= 0)
        return;
    sweeper.app = app;
    uv_timer_init(&app->loop, &sweeper.timer);
    /* ENVIRONMENT=test: a sweep every second, so tests see one without waiting a minute */
    bool test = strcmp(config_str(app->cfg, S_ENVIRONMENT), "test") == 0;
    uv_timer_start(&sweeper.timer, sweep_tick, test ? 1000 : RETENTION_FIRST_S * 1000,
                   test ? 1000 : RETENTION_EVERY_S * 1000);
    uv_unref((uv_handle_t *)&sweeper.timer); /* shutdown does not wait for it */
}
