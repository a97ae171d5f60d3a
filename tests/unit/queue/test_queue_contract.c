/*
 * The store/queue contract: every transition of queue/queue.h against a real database. Any
 * backend must pass this file: it uses MYLOWARE_TEST_DATABASE_URL when set (the Postgres build
 * runs it against a server), else a fresh SQLite file.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "queue/queue.h"
#include "support/pgtest.h"

static config_t cfg;
static store_t *st;
static struct queue_policy pol;
static char dir[64];

static void setup(void) {
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    const char *url = getenv("MYLOWARE_TEST_DATABASE_URL");
    char local[1200];
    if (url && *url) {
        pgtest_isolate(url, local, sizeof local); /* a fresh schema: an empty database per test */
        url = local;
    } else {
        snprintf(dir, sizeof dir, "/tmp/myloware-queue-XXXXXX");
        cr_assert(mkdtemp(dir));
        snprintf(local, sizeof local, "sqlite:%s/db.sqlite", dir);
        url = local;
    }
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.data);
    cr_assert_str_eq(store_backend(st), pgtest_is_pg(url) ? "postgres" : "sqlite");
    int from, to;
    cr_assert_eq(store_migrate(st, &from, &to, &err), 0, "%s", err.data);
    buf_release(&err);
    queue_policy_from_config(&pol, &cfg);
}

static void teardown(void) {
    store_close(st);
    config_release(&cfg);
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 30);

/* ---- units: each runs on the database thread through store_call ---- */

struct op {
    struct queue_new n;
    job_t job;      /* in/out */
    job_t jobs[16]; /* claim / rescue out */
    int count;
    const char *type;
    bool flag; /* existed / dead / permanent */
    int retry_after;
    int64_t when;
    const char *id;
    double progress;
};

static int u_enqueue(store_tx_t *tx, void *a) {
    struct op *o = a;
    return queue_enqueue(tx, &pol, &o->n, &o->job, &o->flag);
}
static int u_claim(store_tx_t *tx, void *a) {
    struct op *o = a;
    return queue_claim(tx, &pol, o->type, o->count, o->jobs, &o->count);
}
static int u_complete(store_tx_t *tx, void *a) {
    return queue_complete(tx, &((struct op *)a)->job, "file://x");
}
static int u_fail(store_tx_t *tx, void *a) {
    struct op *o = a;
    bool permanent = o->flag;
    return queue_fail(tx, &pol, &o->job, "boom", permanent, o->retry_after, &o->flag);
}
static int u_resched(store_tx_t *tx, void *a) {
    struct op *o = a;
    return queue_reschedule(tx, &o->job, o->when);
}
static int u_handback(store_tx_t *tx, void *a) {
    return queue_hand_back(tx, &((struct op *)a)->job);
}
static int u_renew(store_tx_t *tx, void *a) {
    struct op *o = a;
    return queue_renew(tx, &pol, &o->job, o->progress);
}
static int u_get(store_tx_t *tx, void *a) {
    struct op *o = a;
    return tx->s->ops->job_get(tx, o->id, &o->job);
}
static int u_cancel(store_tx_t *tx, void *a) { return queue_cancel(tx, ((struct op *)a)->id); }
static int u_replay(store_tx_t *tx, void *a) { return queue_replay(tx, ((struct op *)a)->id); }
static int u_resolve(store_tx_t *tx, void *a) {
    struct op *o = a;
    return queue_resolve(tx, o->id, &o->when);
}
static int u_rescue(store_tx_t *tx, void *a) {
    struct op *o = a;
    o->count = 16;
    return queue_rescue(tx, o->jobs, &o->count);
}
static int u_purge(store_tx_t *tx, void *a) {
    return queue_purge(tx, &pol, &((struct op *)a)->count);
}
static int u_counts(store_tx_t *tx, void *a) {
    return tx->s->ops->job_counts(tx, clock_now_ms(), (struct queue_counts *)a);
}

static job_t enqueue(const char *type, int priority, const char *key) {
    struct op o = {
        .n = {.type = type, .priority = priority, .idempotency_key = key, .payload = "{\"a\":1}"}};
    cr_assert_eq(store_call(st, u_enqueue, &o), 0);
    return o.job;
}

static job_t get(const char *id) {
    struct op o = {.id = id};
    cr_assert_eq(store_call(st, u_get, &o), 0, "job %s not found", id);
    return o.job;
}

static job_t claim_one(const char *type) {
    struct op o = {.type = type, .count = 1};
    cr_assert_eq(store_call(st, u_claim, &o), 0);
    cr_assert_eq(o.count, 1, "nothing to claim");
    return o.jobs[0];
}

static int claim_count(const char *type, int limit) {
    struct op o = {.type = type, .count = limit};
    cr_assert_eq(store_call(st, u_claim, &o), 0);
    for (int i = 0; i < o.count; i++)
        job_release(&o.jobs[i]);
    return o.count;
}

/* ---- tests ---- */

Test(queue, enqueue_then_get) {
    job_t j = enqueue("test.noop", 0, NULL);
    job_t g = get(j.id);
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_eq(g.attempts, 0);
    cr_assert_eq(g.max_attempts, pol.max_attempts);
    cr_assert_str_eq(g.payload, "{\"a\":1}");
    cr_assert_str_eq(g.type, "test.noop");
    cr_assert(g.run_at > 0 && g.run_at <= clock_now_ms());
    job_release(&j);
    job_release(&g);
}

Test(queue, bad_type_is_refused_and_nothing_is_written) {
    struct op o = {.n = {.type = "Bad Type"}};
    cr_assert_eq(store_call(st, u_enqueue, &o), ERR_INVAL);
    struct queue_counts c = {0};
    cr_assert_eq(store_call(st, u_counts, &c), 0);
    cr_assert_eq(c.ready, 0);
}

Test(queue, claim_by_priority_then_age) {
    job_t a = enqueue("test.noop", 0, NULL);
    job_t b = enqueue("test.noop", 5, NULL);
    job_t c = enqueue("test.noop", 0, NULL);
    job_t x = claim_one("test.noop"), y = claim_one("test.noop"), z = claim_one("test.noop");
    cr_assert_str_eq(x.id, b.id);
    cr_assert_str_eq(y.id, a.id);
    cr_assert_str_eq(z.id, c.id);
    cr_assert_eq(claim_count("test.noop", 10), 0);
    job_t js[] = {a, b, c, x, y, z};
    for (size_t i = 0; i < 6; i++)
        job_release(&js[i]);
}

Test(queue, claim_sets_a_fresh_lease_per_job) {
    for (int i = 0; i < 3; i++) {
        job_t j = enqueue("test.noop", 0, NULL);
        job_release(&j);
    }
    struct op o = {.type = "test.noop", .count = 3};
    int64_t t0 = clock_now_ms();
    cr_assert_eq(store_call(st, u_claim, &o), 0);
    cr_assert_eq(o.count, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(o.jobs[i].state, JOB_RUNNING);
        cr_assert_eq(o.jobs[i].attempts, 1);
        cr_assert_eq(strlen(o.jobs[i].lease_token), 32);
        cr_assert_str_eq(o.jobs[i].lease_owner, queue_owner_id());
        cr_assert(o.jobs[i].lease_expires_at >= t0 + pol.lease_s * 1000);
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(o.jobs[i].lease_token, o.jobs[k].lease_token);
    }
    for (int i = 0; i < 3; i++)
        job_release(&o.jobs[i]);
}

Test(queue, types_are_claimed_separately_and_future_jobs_wait) {
    job_t a = enqueue("test.a", 0, NULL);
    struct op later = {.n = {.type = "test.a", .run_at = clock_now_ms() + 60000}};
    cr_assert_eq(store_call(st, u_enqueue, &later), 0);
    cr_assert_eq(claim_count("test.b", 10), 0);
    cr_assert_eq(claim_count("test.a", 10), 1);
    struct queue_counts c = {0};
    cr_assert_eq(store_call(st, u_counts, &c), 0);
    cr_assert_eq(c.scheduled, 1);
    cr_assert_eq(c.running, 1);
    cr_assert_eq(c.ready, 0);
    job_release(&a);
    job_release(&later.job);
}

Test(queue, complete_needs_the_lease_token) {
    job_t e = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop")};
    struct op thief = o;
    strcpy(thief.job.lease_token, "00000000000000000000000000000000");
    cr_assert_eq(store_call(st, u_complete, &thief), ERR_CONFLICT);
    job_t g = get(e.id);
    cr_assert_eq(g.state, JOB_RUNNING);
    job_release(&g);
    cr_assert_eq(store_call(st, u_complete, &o), 0);
    g = get(e.id);
    cr_assert_eq(g.state, JOB_SUCCEEDED);
    cr_assert(g.finished_at > 0);
    cr_assert_str_eq(g.result_url, "file://x");
    cr_assert_str_eq(g.lease_token, "");
    cr_assert_eq(store_call(st, u_complete, &o), ERR_CONFLICT, "completed twice");
    job_release(&g);
    job_release(&e);
    job_release(&o.job);
}

Test(queue, a_lease_taken_over_cannot_complete_fail_renew_or_reschedule) {
    pol.lease_s = -1; /* the lease is already expired */
    job_t e = enqueue("test.noop", 0, NULL);
    struct op old = {.job = claim_one("test.noop")};
    pol.lease_s = 30;
    struct op r = {0};
    cr_assert_eq(store_call(st, u_rescue, &r), 0);
    cr_assert_eq(r.count, 1);
    cr_assert_eq(r.jobs[0].state, JOB_QUEUED);
    job_release(&r.jobs[0]);
    struct op now = {.job = claim_one("test.noop")};
    cr_assert_str_eq(now.job.id, e.id);
    cr_assert_eq(now.job.attempts, 2, "the lost attempt counts");
    cr_assert_str_neq(now.job.lease_token, old.job.lease_token);
    cr_assert_eq(store_call(st, u_complete, &old), ERR_CONFLICT);
    cr_assert_eq(store_call(st, u_fail, &old), ERR_CONFLICT);
    cr_assert_eq(store_call(st, u_renew, &old), ERR_CONFLICT);
    old.when = clock_now_ms();
    cr_assert_eq(store_call(st, u_resched, &old), ERR_CONFLICT);
    cr_assert_eq(store_call(st, u_handback, &old), ERR_CONFLICT);
    job_t g = get(e.id);
    cr_assert_eq(g.state, JOB_RUNNING);
    cr_assert_str_eq(g.lease_token, now.job.lease_token);
    cr_assert_eq(store_call(st, u_renew, &now), 0);
    cr_assert_eq(store_call(st, u_complete, &now), 0);
    job_release(&g);
    job_release(&e);
    job_release(&old.job);
    job_release(&now.job);
}

static void fail_and_check_delay(job_t *e, int want_attempt, int64_t lo, int64_t hi) {
    struct op o = {.job = claim_one("test.noop")};
    cr_assert_eq(o.job.attempts, want_attempt);
    int64_t t0 = clock_now_ms();
    cr_assert_eq(store_call(st, u_fail, &o), 0);
    cr_assert_not(o.flag, "dead too early");
    job_t g = get(e->id);
    int64_t t1 = clock_now_ms();
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_str_eq(g.last_error, "boom");
    cr_assert(g.run_at >= t0 + lo && g.run_at <= t1 + hi, "attempt %d: delay %lld ms", want_attempt,
              (long long)(g.run_at - t0));
    cr_assert_eq(claim_count("test.noop", 1), 0, "claimed before its run_at");
    job_release(&g);
    job_release(&o.job);
}

Test(queue, retryable_failure_backs_off_with_jitter_within_bounds) {
    pol.retry_base_s = 2;
    pol.retry_max_s = 300;
    job_t e = enqueue("test.noop", 0, NULL);
    fail_and_check_delay(&e, 1, 1000, 2000); /* 2 s x [0.5, 1] */

    /* two lost attempts (expired leases, rescued) make the next failure the third attempt */
    job_t f = enqueue("test.third", 0, NULL);
    for (int i = 0; i < 2; i++) {
        pol.lease_s = -1;
        job_t c = claim_one("test.third");
        pol.lease_s = 30;
        struct op r = {0};
        cr_assert_eq(store_call(st, u_rescue, &r), 0);
        cr_assert_eq(r.count, 1);
        job_release(&r.jobs[0]);
        job_release(&c);
    }
    struct op o = {.job = claim_one("test.third")};
    cr_assert_eq(o.job.attempts, 3);
    int64_t t0 = clock_now_ms();
    cr_assert_eq(store_call(st, u_fail, &o), 0);
    job_t g = get(f.id);
    cr_assert(g.run_at >= t0 + 4000 && g.run_at <= clock_now_ms() + 8000,
              "attempt 3: 8 s x [0.5, 1], got %lld", (long long)(g.run_at - t0));
    job_release(&g);
    job_release(&o.job);
    job_release(&f);
    job_release(&e);
}

Test(queue, backoff_bounds) {
    for (int a = 1; a <= 12; a++) {
        double full = a > 60 ? 300 : (2.0 * (1 << (a - 1)) < 300 ? 2.0 * (1 << (a - 1)) : 300);
        cr_assert_eq(queue_backoff_ms(a, 2, 300, 0), (int64_t)(full * 500), "attempt %d low", a);
        cr_assert_eq(queue_backoff_ms(a, 2, 300, 1), (int64_t)(full * 1000), "attempt %d high", a);
    }
    cr_assert_eq(queue_backoff_ms(100, 2, 300, 1), 300000);
    cr_assert_eq(queue_backoff_ms(0, 2, 300, 1), 2000);
}

Test(queue, retry_after_wins_when_longer) {
    job_t e = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop"), .retry_after = 120};
    int64_t t0 = clock_now_ms();
    cr_assert_eq(store_call(st, u_fail, &o), 0);
    job_t g = get(e.id);
    cr_assert(g.run_at >= t0 + 120000 && g.run_at <= clock_now_ms() + 120000);
    job_release(&g);
    job_release(&e);
    job_release(&o.job);
}

static int hook_calls;
static char hook_id[JOB_ID_LEN];
static int count_hook(store_tx_t *tx, const job_t *j) {
    hook_calls++;
    snprintf(hook_id, sizeof hook_id, "%s", j->id);
    return 0;
}

Test(queue, permanent_errors_and_the_last_attempt_go_dead) {
    queue_set_dead_hook(count_hook);
    job_t e = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop"), .flag = true /* permanent */};
    cr_assert_eq(store_call(st, u_fail, &o), 0);
    cr_assert(o.flag);
    job_t g = get(e.id);
    cr_assert_eq(g.state, JOB_DEAD);
    cr_assert_eq(g.attempts, 1);
    cr_assert_eq(hook_calls, 1);
    cr_assert_str_eq(hook_id, e.id);
    job_release(&g);

    struct op n = {.n = {.type = "test.noop", .max_attempts = 1}};
    cr_assert_eq(store_call(st, u_enqueue, &n), 0);
    struct op last = {.job = claim_one("test.noop")};
    cr_assert_eq(store_call(st, u_fail, &last), 0);
    cr_assert(last.flag, "no attempt left: dead");
    cr_assert_eq(hook_calls, 2);
    queue_set_dead_hook(NULL);
    job_release(&e);
    job_release(&o.job);
    job_release(&n.job);
    job_release(&last.job);
}

Test(queue, reschedule_and_hand_back_do_not_use_an_attempt) {
    job_t e = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop"), .when = clock_now_ms() + 60000};
    cr_assert_eq(store_call(st, u_resched, &o), 0);
    job_t g = get(e.id);
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_eq(g.attempts, 0);
    cr_assert_eq(g.run_at, o.when);
    job_release(&g);
    cr_assert_eq(claim_count("test.noop", 1), 0);

    job_t f = enqueue("test.other", 0, NULL);
    struct op h = {.job = claim_one("test.other")};
    cr_assert_eq(store_call(st, u_handback, &h), 0);
    g = get(f.id);
    cr_assert_eq(g.attempts, 0);
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_eq(claim_count("test.other", 1), 1, "handed back jobs are ready at once");
    job_release(&g);
    job_release(&e);
    job_release(&f);
    job_release(&o.job);
    job_release(&h.job);
}

Test(queue, renew_extends_the_lease_and_records_progress) {
    job_t e = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop"), .progress = 0.25};
    int64_t before = o.job.lease_expires_at;
    cr_assert_eq(store_call(st, u_renew, &o), 0);
    job_t g = get(e.id);
    cr_assert(g.lease_expires_at >= before);
    cr_assert_float_eq(g.progress, 0.25, 1e-9);
    job_release(&g);
    job_release(&e);
    job_release(&o.job);
}

Test(queue, idempotency_key_is_unique_only_among_unfinished_jobs) {
    job_t a = enqueue("test.noop", 0, "key-1");
    job_t b = enqueue("test.noop", 0, "key-1");
    cr_assert_str_eq(a.id, b.id);
    job_t other = enqueue("test.other", 0, "key-1");
    cr_assert_str_neq(other.id, a.id, "keys are per type");
    struct op o = {.job = claim_one("test.noop")};
    job_t c = enqueue("test.noop", 0, "key-1");
    cr_assert_str_eq(c.id, a.id, "a running job still holds its key");
    cr_assert_eq(store_call(st, u_complete, &o), 0);
    job_t d = enqueue("test.noop", 0, "key-1");
    cr_assert_str_neq(d.id, a.id, "a finished job frees its key");
    job_t js[] = {a, b, other, c, d, o.job};
    for (size_t i = 0; i < 6; i++)
        job_release(&js[i]);
}

Test(queue, cancel) {
    job_t a = enqueue("test.noop", 0, NULL);
    struct op c = {.id = a.id};
    cr_assert_eq(store_call(st, u_cancel, &c), 0);
    job_t g = get(a.id);
    cr_assert_eq(g.state, JOB_CANCELLED);
    job_release(&g);
    cr_assert_eq(store_call(st, u_cancel, &c), ERR_CONFLICT);
    struct op unknown = {.id = "00000000-0000-4000-8000-000000000000"};
    cr_assert_eq(store_call(st, u_cancel, &unknown), ERR_NOTFOUND);
    /* a running job cancelled under its worker: the worker's result is refused */
    job_t b = enqueue("test.noop", 0, NULL);
    struct op run = {.job = claim_one("test.noop")};
    struct op cb = {.id = b.id};
    cr_assert_eq(store_call(st, u_cancel, &cb), 0);
    cr_assert_eq(store_call(st, u_complete, &run), ERR_CONFLICT);
    job_release(&a);
    job_release(&b);
    job_release(&run.job);
}

Test(queue, dead_letters_replay_and_resolve) {
    job_t a = enqueue("test.noop", 0, NULL);
    struct op o = {.job = claim_one("test.noop"), .flag = true};
    cr_assert_eq(store_call(st, u_fail, &o), 0);
    struct op r = {.id = a.id};
    cr_assert_eq(store_call(st, u_replay, &r), 0);
    job_t g = get(a.id);
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_eq(g.attempts, 0);
    cr_assert(g.resolved_at > 0);
    job_release(&g);
    cr_assert_eq(store_call(st, u_replay, &r), ERR_CONFLICT, "already resolved");
    struct op unknown = {.id = "00000000-0000-4000-8000-000000000000"};
    cr_assert_eq(store_call(st, u_replay, &unknown), ERR_NOTFOUND);
    cr_assert_eq(store_call(st, u_resolve, &unknown), ERR_NOTFOUND);

    /* it dies again: unresolved again; resolve twice */
    struct op o2 = {.job = claim_one("test.noop"), .flag = true};
    cr_assert_eq(store_call(st, u_fail, &o2), 0);
    g = get(a.id);
    cr_assert_eq(g.resolved_at, 0);
    job_release(&g);
    struct op res = {.id = a.id};
    cr_assert_eq(store_call(st, u_resolve, &res), 0);
    int64_t first = res.when;
    cr_assert(first > 0);
    cr_assert_eq(store_call(st, u_resolve, &res), ERR_CONFLICT);
    cr_assert_eq(res.when, first, "reports when it was resolved");
    job_release(&a);
    job_release(&o.job);
    job_release(&o2.job);
}

Test(queue, retention_deletes_old_finished_jobs_but_keeps_unresolved_dead_ones) {
    job_t a = enqueue("test.noop", 0, NULL);
    struct op done = {.job = claim_one("test.noop")};
    cr_assert_eq(store_call(st, u_complete, &done), 0);
    job_t b = enqueue("test.noop", 0, NULL);
    struct op dead = {.job = claim_one("test.noop"), .flag = true};
    cr_assert_eq(store_call(st, u_fail, &dead), 0);
    job_t c = enqueue("test.noop", 0, NULL);
    pol.retention_ms = 3600 * 1000;
    struct op p = {0};
    cr_assert_eq(store_call(st, u_purge, &p), 0);
    cr_assert_eq(p.count, 0, "nothing is old yet");
    pol.retention_ms = -1000; /* everything finished is older than that */
    cr_assert_eq(store_call(st, u_purge, &p), 0);
    cr_assert_eq(p.count, 1);
    struct op ga = {.id = a.id}, gb = {.id = b.id}, gc = {.id = c.id};
    cr_assert_eq(store_call(st, u_get, &ga), ERR_NOTFOUND);
    cr_assert_eq(store_call(st, u_get, &gb), 0, "unresolved dead letters are kept");
    cr_assert_eq(store_call(st, u_get, &gc), 0, "queued jobs are kept");
    job_t js[] = {a, b, c, done.job, dead.job, gb.job, gc.job};
    for (size_t i = 0; i < 7; i++)
        job_release(&js[i]);
}

Test(queue, jobs_of_a_dead_process_on_this_host_are_rescued_at_once) {
    job_t a = enqueue("test.noop", 0, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* a second process claims the job and dies without finishing it */
        store_t *s2;
        buf_t err;
        buf_init(&err, 256);
        if (store_open(&cfg, &s2, &err) != 0)
            _exit(2);
        st = s2;
        struct op o = {.type = "test.noop", .count = 1};
        int rc = store_call(st, u_claim, &o);
        _exit(rc == 0 && o.count == 1 ? 0 : 3);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child could not claim");
    job_t g = get(a.id);
    cr_assert_eq(g.state, JOB_RUNNING);
    cr_assert_str_neq(g.lease_owner, queue_owner_id());
    cr_assert(queue_owner_dead(g.lease_owner));
    cr_assert_not(queue_owner_dead(queue_owner_id()));
    job_release(&g);
    struct op r = {0};
    cr_assert_eq(store_call(st, u_rescue, &r), 0);
    cr_assert_eq(r.count, 1, "the lease has not expired, but its owner is gone");
    g = get(a.id);
    cr_assert_eq(g.state, JOB_QUEUED);
    cr_assert_eq(g.attempts, 1, "the lost attempt counts");
    job_release(&g);
    job_release(&r.jobs[0]);
    job_release(&a);
}

static int u_insert_then_fail(store_tx_t *tx, void *a) {
    struct op *o = a;
    int rc = queue_enqueue(tx, &pol, &o->n, &o->job, &o->flag);
    cr_assert_eq(rc, 0);
    return ERR_INVAL; /* the unit fails after writing: its savepoint is rolled back */
}

Test(queue, a_failing_unit_leaves_nothing_behind) {
    struct op o = {.n = {.type = "test.noop"}};
    cr_assert_eq(store_call(st, u_insert_then_fail, &o), ERR_INVAL);
    struct op g = {.id = o.job.id};
    cr_assert_eq(store_call(st, u_get, &g), ERR_NOTFOUND);
    job_release(&o.job);
}

/* store_nested: a failing item of a batched unit undoes its own writes only. */
static int nested_enqueue(store_tx_t *tx, void *a) {
    struct op *o = a;
    job_t j;
    bool existed;
    int rc = queue_enqueue(tx, &pol, &o->n, &j, &existed);
    if (rc == 0)
        job_release(&j);
    return rc ? rc : o->retry_after; /* retry_after: the result to return after the write */
}

static int u_nested_pair(store_tx_t *tx, void *a) {
    struct op *o = a;
    struct op ok = {.n = {.type = "test.noop"}, .retry_after = 0};
    struct op bad = {.n = {.type = "test.noop"}, .retry_after = ERR_CONFLICT};
    int rc1 = store_nested(tx, nested_enqueue, &ok);
    int rc2 = store_nested(tx, nested_enqueue, &bad);
    int rc3 = store_nested(tx, nested_enqueue, &ok);
    o->count = (rc1 == 0) + (rc2 == ERR_CONFLICT) * 10 + (rc3 == 0) * 100;
    return 0;
}

Test(queue, nested_savepoint_rolls_back_only_the_failing_item) {
    struct op o = {0};
    cr_assert_eq(store_call(st, u_nested_pair, &o), 0);
    cr_assert_eq(o.count, 111, "results of the three items: %d", o.count);
    struct queue_counts c = {0};
    cr_assert_eq(store_call(st, u_counts, &c), 0);
    cr_assert_eq(c.ready, 2, "the failing item's job was rolled back, the others kept");
}
