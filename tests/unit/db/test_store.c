/*
 * store: the database thread's group commit as the loop feeds it, against a real SQLite file
 * and a real loop. Units submitted during one loop iteration go to the thread together and run
 * in one transaction (one commit for a burst of requests, not one for the first of them and
 * another for the rest); a unit submitted just before the loop is detached still runs; every
 * completion comes back on the loop.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/metrics.h"
#include "db/store.h"

static config_t cfg;
static store_t *st;
static uv_loop_t loop;
static char dir[64];

static void setup(void) {
    metrics_init();
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    snprintf(dir, sizeof dir, "/tmp/myloware-store-XXXXXX");
    cr_assert(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/db.sqlite", dir);
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.data);
    int from, to;
    cr_assert_eq(store_migrate(st, &from, &to, &err), 0, "%s", err.data);
    buf_release(&err);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(store_attach_loop(st, &loop), 0);
}

static void teardown(void) {
    store_detach_loop(st);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
    store_close(st);
    config_release(&cfg);
    metrics_release();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 30);

#define BURST 50

static int ran, done_ok, done_on_loop;
static uv_thread_t loop_thread;

static int probe_unit(store_tx_t *tx, void *arg) {
    (void)arg;
    ran++; /* database thread; read after a store_call or the completions (happens-after) */
    return tx->s->ops->probe_write(tx);
}

static void probe_done(void *arg, int rc) {
    (void)arg;
    if (rc == 0)
        done_ok++;
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &loop_thread))
        done_on_loop++;
    if (done_ok == BURST)
        uv_stop(&loop);
}

static void burst(uv_timer_t *t) {
    (void)t;
    for (int i = 0; i < BURST; i++) { /* as the read callbacks of one loop iteration would */
        store_submit(st, probe_unit, NULL, probe_done);
        struct timespec ts = {0, 500 * 1000}; /* time enough for a woken thread to take it alone */
        nanosleep(&ts, NULL);
    }
}

Test(store, a_burst_submitted_in_one_loop_iteration_is_one_transaction) {
    loop_thread = uv_thread_self();
    double before = metrics_get(M_DB_TRANSACTIONS, "");
    static uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, burst, 0, 0);
    int64_t deadline = clock_now_ms() + 20000;
    while (done_ok < BURST && clock_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(done_ok, BURST, "%d of %d units completed", done_ok, BURST);
    cr_assert_eq(done_on_loop, BURST, "completions ran on the loop thread");
    cr_assert_eq(ran, BURST);
    cr_assert_eq(metrics_get(M_DB_TRANSACTIONS, "") - before, 1, "the burst took %.0f transactions",
                 metrics_get(M_DB_TRANSACTIONS, "") - before);
    cr_assert_eq(store_pending(st), 0);
    uv_close((uv_handle_t *)&t, NULL);
}

Test(store, a_unit_submitted_just_before_the_loop_is_detached_still_runs) {
    store_submit(st, probe_unit, NULL, NULL); /* no loop iteration in between: not flushed yet */
    store_detach_loop(st);
    cr_assert_eq(store_schema_version(st, &(int){0}), 0); /* runs after it on the same thread */
    cr_assert_eq(ran, 1, "the unit never reached the database thread");
}
