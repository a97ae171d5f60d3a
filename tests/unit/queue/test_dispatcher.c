/*
 * test_dispatcher: the dispatcher's shared caps, against a real SQLite file and a real loop.
 * The job types are defined here (they exist only in this test binary) and record what they
 * see: how many of them run at once, when each started. Proves that a provider's in-flight cap
 * and a cap group hold across types, that the limiter never lets more than QUEUE_LIMITER_MAX
 * jobs start in any window, and that an open circuit makes jobs wait (no attempt used) until
 * its half-open trial succeeds.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/cpuprio.h"
#include "core/err.h"
#include "core/metrics.h"
#include "queue/dispatcher.h"

static config_t cfg;
static store_t *st;
static uv_loop_t loop;
static dispatcher_t *disp;
static struct queue_policy pol;
static char dir[64];

static _Atomic int inflight, max_inflight, started, finished_ok;
static atomic_bool failing;
#define MAX_STARTS 512
static int64_t start_ms[MAX_STARTS];
static int hold_ms = 20;

static int64_t mono_ms(void) { return (int64_t)(clock_mono_ns() / 1000000u); }

static void note_start(void) {
    int now = atomic_fetch_add(&inflight, 1) + 1;
    int m = atomic_load(&max_inflight);
    while (now > m && !atomic_compare_exchange_weak(&max_inflight, &m, now))
        ;
    int i = atomic_fetch_add(&started, 1);
    if (i < MAX_STARTS)
        start_ms[i] = mono_ms();
}

/* ---- job types ----------------------------------------------------------------------------------
 */

struct hold {
    uv_timer_t t;
    struct job_ctx *ctx;
};

static void hold_closed(uv_handle_t *h) { free(h->data); }

static void hold_fire(uv_timer_t *t) {
    struct hold *h = t->data;
    atomic_fetch_sub(&inflight, 1);
    if (atomic_load(&failing) && strcmp(h->ctx->type->name, "t.flaky") == 0)
        job_set_error(h->ctx, JO_RETRY, "provider down");
    else
        atomic_fetch_add(&finished_ok, 1);
    job_finish(h->ctx);
    uv_close((uv_handle_t *)t, hold_closed);
}

/* Loop: holds hold_ms on a timer (an I/O call in flight), then finishes. */
static void run_hold(struct job_ctx *ctx) {
    note_start();
    struct hold *h = calloc(1, sizeof *h);
    h->ctx = ctx;
    uv_timer_init(ctx->loop, &h->t);
    h->t.data = h;
    uv_timer_start(&h->t, hold_fire, (uint64_t)hold_ms, 0);
}

/* Pool: CPU work of hold_ms. */
static void run_media(struct job_ctx *ctx) {
    note_start();
    struct timespec ts = {0, (long)hold_ms * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&inflight, 1);
    atomic_fetch_add(&finished_ok, 1);
}

/* Records its effect, then fails for every third job: that job's effect and completion must
 * roll back without touching the others recorded in the same unit. */
static _Atomic int effects_tried;
static void run_now(struct job_ctx *ctx) {
    note_start();
    atomic_fetch_sub(&inflight, 1);
    job_finish(ctx);
}
static int effect_then_fail(store_tx_t *tx, struct job_ctx *ctx) {
    int rc = tx->s->ops->test_effect(tx, ctx->job.id, 1);
    if (rc)
        return rc;
    return atomic_fetch_add(&effects_tried, 1) % 3 == 2 ? ERR_INVAL : 0;
}

static const struct job_type t_effect = {.name = "t.effect",
                                         .kind = JK_LOOP,
                                         .concurrency = 64,
                                         .run_loop = run_now,
                                         .on_complete = effect_then_fail};
static const struct job_type t_hold_a = {
    .name = "t.hold-a", .kind = JK_LOOP, .concurrency = 50, .run_loop = run_hold, .provider = "tp"};
static const struct job_type t_hold_b = {
    .name = "t.hold-b", .kind = JK_LOOP, .concurrency = 50, .run_loop = run_hold, .provider = "tp"};
static const struct job_type t_media_a = {.name = "t.media-a",
                                          .kind = JK_POOL,
                                          .concurrency = 4,
                                          .run_pool = run_media,
                                          .cap_group = "g"};
static const struct job_type t_media_b = {.name = "t.media-b",
                                          .kind = JK_POOL,
                                          .concurrency = 4,
                                          .run_pool = run_media,
                                          .cap_group = "g"};
/* Pool: records the CPU class it ran at, and that of a thread it creates (codec threads). */
static _Atomic int seen_prio = -1, seen_child_prio = -1, seen_plain_prio = -1;
static void *child_main(void *arg) {
    (void)arg;
    atomic_store(&seen_child_prio, (int)cpuprio_self());
    return NULL;
}
static void run_prio(struct job_ctx *ctx) {
    atomic_store(strcmp(ctx->type->name, "t.plain") == 0 ? &seen_plain_prio : &seen_prio,
                 (int)cpuprio_self());
    if (strcmp(ctx->type->name, "t.plain") != 0) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, child_main, NULL), 0);
        pthread_join(t, NULL);
    }
    atomic_fetch_add(&finished_ok, 1);
}
static const struct job_type t_idle = {
    .name = "t.idle", .kind = JK_POOL, .concurrency = 1, .run_pool = run_prio, .cap_group = "bg"};
static const struct job_type t_plain = {
    .name = "t.plain", .kind = JK_POOL, .concurrency = 1, .run_pool = run_prio};
static const struct job_type t_rate = {
    .name = "t.rate", .kind = JK_LOOP, .concurrency = 50, .run_loop = run_hold, .provider = "rp"};
static const struct job_type t_flaky = {
    .name = "t.flaky", .kind = JK_LOOP, .concurrency = 8, .run_loop = run_hold, .provider = "fp"};

/* ---- harness ------------------------------------------------------------------------------------
 */

static void open_all(const char *const *settings) {
    atomic_store(&inflight, 0);
    atomic_store(&max_inflight, 0);
    atomic_store(&started, 0);
    atomic_store(&finished_ok, 0);
    atomic_store(&failing, false);
    hold_ms = 20;
    metrics_init();
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    snprintf(dir, sizeof dir, "/tmp/myloware-disp-XXXXXX");
    cr_assert(mkdtemp(dir));
    char url[200];
    snprintf(url, sizeof url, "sqlite:%s/db.sqlite", dir);
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_set(&cfg, "QUEUE_POLL_MS", "20", CS_FLAG, &err), 0);
    for (int i = 0; settings && settings[i]; i += 2)
        cr_assert_eq(config_set(&cfg, settings[i], settings[i + 1], CS_FLAG, &err), 0, "%s",
                     err.data);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.data);
    int from, to;
    cr_assert_eq(store_migrate(st, &from, &to, &err), 0, "%s", err.data);
    buf_release(&err);
    queue_policy_from_config(&pol, &cfg);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(store_attach_loop(st, &loop), 0);
    disp = dispatcher_new(&loop, st, &cfg, 4, NULL);
}

static bool drained;
static void on_drained(dispatcher_t *d, void *ud) { drained = true; }

static void close_all(void) {
    drained = false;
    dispatcher_drain(disp, 2000, on_drained, NULL);
    int64_t deadline = mono_ms() + 10000;
    while ((!drained || store_pending(st) > 0) && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(drained);
    dispatcher_close(disp);
    store_detach_loop(st);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
    store_close(st);
    config_release(&cfg);
    metrics_release();
}

struct enq {
    const char *type;
    int n, max_attempts;
};

static int u_enqueue(store_tx_t *tx, void *arg) {
    struct enq *e = arg;
    for (int i = 0; i < e->n; i++) {
        struct queue_new n = {.type = e->type, .max_attempts = e->max_attempts};
        job_t j;
        bool existed;
        int rc = queue_enqueue(tx, &pol, &n, &j, &existed);
        if (rc)
            return rc;
        job_release(&j);
    }
    return 0;
}

static void enqueue(const char *type, int n, int max_attempts) {
    struct enq e = {type, n, max_attempts};
    cr_assert_eq(store_call(st, u_enqueue, &e), 0);
}

static int u_counts(store_tx_t *tx, void *arg) {
    return tx->s->ops->job_counts(tx, clock_now_ms(), arg);
}

/* Succeeded jobs: none is ready, scheduled, running or dead. */
static struct queue_counts counts(void) {
    struct queue_counts c = {0};
    cr_assert_eq(store_call(st, u_counts, &c), 0);
    return c;
}

/* Runs the loop until finished_ok reaches n (or the deadline). */
static void run_until_ok(int n, int64_t ms) {
    int64_t deadline = mono_ms() + ms;
    while (atomic_load(&finished_ok) < n && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(atomic_load(&finished_ok), n, "%d of %d jobs done in %lld ms",
                 atomic_load(&finished_ok), n, (long long)ms);
}

TestSuite(dispatcher, .timeout = 60);

/* ---- tests --------------------------------------------------------------------------------------
 */

Test(dispatcher, provider_cap_is_shared_by_its_types) {
    const char *s[] = {"PROVIDER_MAX_INFLIGHT", "3", NULL};
    open_all(s);
    dispatcher_register(disp, &t_hold_a);
    dispatcher_register(disp, &t_hold_b);
    enqueue("t.hold-a", 15, 0);
    enqueue("t.hold-b", 15, 0);
    dispatcher_start(disp, false, NULL, NULL);
    run_until_ok(30, 20000);
    cr_assert_eq(atomic_load(&max_inflight), 3,
                 "never more than PROVIDER_MAX_INFLIGHT at once, and it is reached");
    cr_assert_eq(atomic_load(&started), 30, "each job ran once");
    close_all();
}

Test(dispatcher, cap_group_is_shared_by_its_types) {
    open_all(NULL);
    dispatcher_set_group_cap(disp, "g", 2);
    dispatcher_register(disp, &t_media_a);
    dispatcher_register(disp, &t_media_b);
    enqueue("t.media-a", 10, 0);
    enqueue("t.media-b", 10, 0);
    dispatcher_start(disp, false, NULL, NULL);
    run_until_ok(20, 20000);
    cr_assert_eq(atomic_load(&max_inflight), 2, "never more than the group's cap at once");
    /* the pool work ends before its completion reaches the loop: wait for the records */
    int64_t deadline = mono_ms() + 5000;
    while (dispatcher_group_running(disp, "g") > 0 && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(dispatcher_group_running(disp, "g"), 0);
    close_all();
}

Test(dispatcher, a_group_priority_applies_to_its_pool_jobs_and_their_threads_only) {
    /* one pool thread (each test is a process of its own: libuv's pool starts on first use), so
     * the plain job below runs on the very thread that ran the idle one */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    open_all(NULL);
    dispatcher_set_group_priority(disp, "bg", CPUPRIO_IDLE);
    dispatcher_register(disp, &t_idle);
    dispatcher_register(disp, &t_plain);
    enqueue("t.idle", 1, 0);
    dispatcher_start(disp, false, NULL, NULL);
    run_until_ok(1, 20000);
    /* then a job of no group, on the same pool thread */
    enqueue("t.plain", 1, 0);
    dispatcher_kick(disp);
    run_until_ok(2, 20000);
    cr_assert_eq(atomic_load(&seen_prio), CPUPRIO_IDLE, "the group's job ran at SCHED_IDLE");
    cr_assert_eq(atomic_load(&seen_child_prio), CPUPRIO_IDLE, "a thread it created inherited it");
    cr_assert_eq(atomic_load(&seen_plain_prio), CPUPRIO_NORMAL,
                 "the pool thread kept its own priority");
    close_all();
}

Test(dispatcher, limiter_allows_max_starts_per_window) {
    const char *s[] = {"QUEUE_LIMITER_MAX", "5", "QUEUE_LIMITER_DURATION_MS", "200", NULL};
    open_all(s);
    hold_ms = 1;
    dispatcher_register(disp, &t_rate);
    enqueue("t.rate", 20, 0);
    int64_t t0 = mono_ms();
    dispatcher_start(disp, false, NULL, NULL);
    run_until_ok(20, 20000);
    int n = atomic_load(&started);
    cr_assert_eq(n, 20);
    for (int i = 0; i + 5 < n; i++)
        cr_assert_geq(start_ms[i + 5] - start_ms[i], 200, "starts %d and %d are %lld ms apart", i,
                      i + 5, (long long)(start_ms[i + 5] - start_ms[i]));
    /* 20 starts at 5 per 200 ms: the last one no sooner than 600 ms after the first */
    cr_assert_geq(start_ms[19] - t0, 600);
    /* and the limiter wakes the dispatcher, not the 20 ms poll alone: at most ~1 s overall */
    cr_assert_lt(start_ms[19] - start_ms[0], 2000);
    close_all();
}

Test(dispatcher, open_circuit_makes_jobs_wait_then_a_trial_closes_it) {
    const char *s[] = {"CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                       "2",
                       "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S",
                       "1",
                       "PROVIDER_MAX_INFLIGHT",
                       "1",
                       "JOB_RETRY_BASE_S",
                       "0.01",
                       "JOB_RETRY_MAX_S",
                       "0.02",
                       NULL};
    open_all(s);
    hold_ms = 30;
    atomic_store(&failing, true);
    dispatcher_register(disp, &t_flaky);
    enqueue("t.flaky", 6, 10);
    dispatcher_start(disp, false, NULL, NULL);
    cr_assert_eq(dispatcher_circuit(disp, "fp"), BREAKER_CLOSED);
    int64_t deadline = mono_ms() + 10000;
    while (dispatcher_circuit(disp, "fp") != BREAKER_OPEN && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(dispatcher_circuit(disp, "fp"), BREAKER_OPEN);
    int64_t opened = mono_ms();
    int starts_at_open = atomic_load(&started);
    cr_assert_eq(starts_at_open, 2, "two consecutive failures (one at a time) opened it");
    cr_assert_eq(metrics_get(M_PROVIDER_CIRCUIT, "provider=\"fp\""), 1);
    /* open: nothing starts, the jobs stay queued with their attempts */
    while (mono_ms() < opened + 700)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(atomic_load(&started), starts_at_open,
                 "no job started while the circuit was open");
    struct queue_counts c = counts();
    cr_assert_eq(c.ready + c.scheduled, 6, "every job waits in the queue (none dead)");
    cr_assert_eq(c.dead, 0);
    /* the provider is back: after the recovery time one trial runs alone, then the rest */
    atomic_store(&failing, false);
    while (atomic_load(&started) == starts_at_open && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_geq(start_ms[starts_at_open] - opened, 900, "the trial waited for the recovery time");
    cr_assert_eq(dispatcher_circuit(disp, "fp"), BREAKER_HALF_OPEN);
    run_until_ok(6, 10000);
    cr_assert_eq(dispatcher_circuit(disp, "fp"), BREAKER_CLOSED);
    cr_assert_eq(metrics_get(M_PROVIDER_CIRCUIT, "provider=\"fp\""), 0);
    cr_assert_eq(atomic_load(&started), 8, "6 successes + the 2 failures that opened the circuit");
    close_all();
}

/* Half-open lets exactly one trial go even when the provider could take many. */
Test(dispatcher, half_open_runs_one_trial_at_a_time) {
    const char *s[] = {"CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                       "1",
                       "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S",
                       "1",
                       "PROVIDER_MAX_INFLIGHT",
                       "8",
                       "JOB_RETRY_BASE_S",
                       "0.01",
                       "JOB_RETRY_MAX_S",
                       "0.02",
                       NULL};
    open_all(s);
    hold_ms = 100;
    atomic_store(&failing, true);
    dispatcher_register(disp, &t_flaky);
    enqueue("t.flaky", 8, 10);
    dispatcher_start(disp, false, NULL, NULL);
    int64_t deadline = mono_ms() + 10000;
    while (dispatcher_circuit(disp, "fp") != BREAKER_OPEN && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(dispatcher_circuit(disp, "fp"), BREAKER_OPEN);
    /* the first batch (started while closed) ends: wait until nothing runs */
    while (atomic_load(&inflight) > 0 && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    int before = atomic_load(&started);
    atomic_store(&failing, false);
    atomic_store(&max_inflight, 0);
    while (atomic_load(&started) == before && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    /* during the trial's 100 ms, nothing else of the provider starts */
    int64_t trial_end = start_ms[before] + hold_ms;
    while (mono_ms() < trial_end - 10)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(atomic_load(&started), before + 1, "one trial while half-open");
    run_until_ok(8, 10000);
    cr_assert_gt(atomic_load(&max_inflight), 1, "closed again: jobs run side by side");
    close_all();
}

/* Rows of the test_effects table, read with a connection of its own. */
static long long effects_recorded(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM test_effects", -1, &q, NULL),
                 SQLITE_OK);
    long long n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

Test(dispatcher, a_failing_completion_in_a_batch_rolls_back_alone) {
    open_all(NULL);
    dispatcher_register(disp, &t_effect);
    enqueue("t.effect", 30, 0);
    dispatcher_start(disp, false, NULL, NULL);
    int64_t deadline = mono_ms() + 20000;
    while (atomic_load(&effects_tried) < 30 && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    while (store_pending(st) > 0 && mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(atomic_load(&started), 30);
    cr_assert_eq(dispatcher_completed(disp), 20, "two of three completions recorded");
    struct queue_counts c = counts();
    cr_assert_eq(c.running, 10, "the failed ones stay running (their lease will expire)");
    cr_assert_eq(c.ready, 0);
    cr_assert_eq(effects_recorded(), 20,
                 "the failed ones' effects were rolled back, the others kept");
    close_all();
}
