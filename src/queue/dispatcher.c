/* dispatcher: claiming, running, finishing, renewing, rescuing, draining. Loop thread. */
#include "queue/dispatcher.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/cpuprio.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/winlimit.h"

#define MAX_TYPES 32
#define MAX_PROVIDERS 16
#define MAX_GROUPS 16
#define CLAIM_BATCH 256 /* per type and pass */
#define RESCUE_EVERY_MS 5000
#define PURGE_EVERY 120 /* rescue ticks: 10 minutes */

enum outcome_label {
    OL_SUCCEEDED,
    OL_RESCHEDULED,
    OL_RETRIED,
    OL_DEAD,
    OL_LEASE_LOST,
    OL_STORE_ERROR,
    OL__COUNT
};
static const char *const outcome_names[OL__COUNT] = {"succeeded", "rescheduled", "retried",
                                                     "dead",      "lease_lost",  "store_error"};

struct type_slot {
    const struct job_type *t;
    int running, cap;
    int prov, group; /* slot indexes; -1: none */
    job_t *claimed;  /* claim buffer, min(cap, CLAIM_BATCH) entries, allocated on first use and
                        reused (one claim is in flight at a time) */
    /* Worth claiming: false only after a claim found fewer ready jobs than it asked for and
     * nothing was enqueued since (kicks unchanged). Every poll, rescue and wake sets it again,
     * so jobs of other processes and retries are found as before; it only saves the claim
     * statements of idle types on every in-process enqueue. */
    bool dirty;
    unsigned kicks;
    struct series *m_duration, *m_outcome[OL__COUNT]; /* metric series, made on first use */
};

/* What the types naming one provider share. */
struct prov_slot {
    const char *name; /* the first registered type's string (static storage) */
    int running, cap;
    breaker_t br;
    winlimit_t *lim; /* NULL: QUEUE_LIMITER_MAX is 0 */
    int gauge;       /* last value given to myloware_provider_circuit_open */
};

struct group_slot {
    char *name;       /* owned */
    int running, cap; /* cap 0: none set */
    int prio;         /* enum cpuprio of the group's pool jobs */
};

struct dispatcher {
    uv_loop_t *loop;
    store_t *store;
    const config_t *cfg;
    void *app;
    int workers;
    struct queue_policy pol;
    struct type_slot types[MAX_TYPES];
    int ntypes;
    struct prov_slot provs[MAX_PROVIDERS];
    int nprovs;
    struct group_slot groups[MAX_GROUPS];
    int ngroups;
    unsigned rr; /* the type a claim pass starts with (round robin over shared budgets) */
    uv_timer_t poll_timer, renew_timer, rescue_timer, drain_timer, wake_timer;
    uv_check_t fin_check;                /* records the results of one loop turn in one unit */
    struct job_ctx *fin_head, *fin_tail; /* results not yet submitted */
    int64_t wake_at;                     /* when wake_timer fires (0: not armed) */
    int open_handles;
    bool started, once, claiming, claim_again, draining, drained, closing;
    int rescue_ticks;
    struct job_ctx *running;
    int nrunning;
    uint64_t completed;
    void (*idle_cb)(dispatcher_t *, void *);
    void *idle_ud;
    void (*drain_cb)(dispatcher_t *, void *);
    void *drain_ud;
};

static void claim(dispatcher_t *d);

/* ---- results ------------------------------------------------------------------------------------
 */

void job_set_error(struct job_ctx *ctx, enum job_outcome o, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(ctx->error);
    ctx->error = xstrdup(msg);
    ctx->outcome = o;
}

static void ctx_free(struct job_ctx *ctx) {
    if (ctx->type->release)
        ctx->type->release(ctx);
    job_release(&ctx->job);
    free(ctx->error);
    free(ctx->result_url);
    free(ctx);
}

static void unlink_ctx(dispatcher_t *d, struct job_ctx *ctx) {
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        d->running = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    d->nrunning--;
    struct type_slot *ts = &d->types[ctx->slot];
    ts->running--;
    if (ts->prov >= 0)
        d->provs[ts->prov].running--;
    if (ts->group >= 0)
        d->groups[ts->group].running--;
}

static int64_t mono_ms(void) { return (int64_t)(clock_mono_ns() / 1000000u); }

/* Keeps myloware_provider_circuit_open in step: 1 while the circuit is not closed. */
static void circuit_gauge(struct prov_slot *p, int64_t now) {
    int v = breaker_state(&p->br, now) != BREAKER_CLOSED;
    if (v != p->gauge) {
        p->gauge = v;
        buf_t lb;
        buf_init(&lb, 128);
        metrics_label(&lb, "provider", p->name);
        metrics_set(M_PROVIDER_CIRCUIT, lb.data, v);
        buf_release(&lb);
    }
}

/* The job's verdict for its provider's breaker (see dispatcher.h). */
static void feed_breaker(dispatcher_t *d, struct job_ctx *ctx, enum breaker_verdict v) {
    struct type_slot *ts = &d->types[ctx->slot];
    if (ts->prov < 0 || ctx->ticket == BT_DENIED)
        return;
    struct prov_slot *p = &d->provs[ts->prov];
    int64_t now = mono_ms();
    if (breaker_release(&p->br, ctx->ticket, ctx->ticket_gen, v, now)) {
        enum breaker_state st = breaker_state(&p->br, now);
        if (st == BREAKER_OPEN)
            log_warn("queue", "provider circuit open: its jobs wait", LF_S("provider", p->name),
                     LF_S("job_id", ctx->job.id),
                     LF_I("recovery_s", (long long)(p->br.recovery_ms / 1000)));
        else
            log_info("queue", "provider circuit closed", LF_S("provider", p->name),
                     LF_S("job_id", ctx->job.id));
    }
    ctx->ticket = BT_DENIED;
    circuit_gauge(p, now);
}

static void check_drained(dispatcher_t *d) {
    if (d->draining && !d->drained && d->nrunning == 0) {
        d->drained = true;
        uv_timer_stop(&d->drain_timer);
        if (d->drain_cb)
            d->drain_cb(d, d->drain_ud);
    }
}

/* Database thread: the transition for the outcome, with the type's side effect on success. */
static int finish_one(store_tx_t *tx, void *arg) {
    struct job_ctx *ctx = arg;
    dispatcher_t *d = ctx->d;
    bool dead;
    switch (ctx->outcome) {
    case JO_OK: {
        int rc = ctx->type->on_complete ? ctx->type->on_complete(tx, ctx) : 0;
        return rc ? rc : queue_complete(tx, &ctx->job, ctx->result_url);
    }
    case JO_RESCHEDULE: return queue_reschedule(tx, &ctx->job, ctx->reschedule_at);
    case JO_RETRY:
    case JO_PERMANENT:
        return queue_fail(tx, &d->pol, &ctx->job, ctx->error, ctx->outcome == JO_PERMANENT,
                          ctx->retry_after_s, &dead);
    }
    return ERR_INTERNAL;
}

/* Database thread: every result of a batch. A plain completion or reschedule is one guarded
 * UPDATE (atomic alone, nothing to undo when its lease was lost); the others may write more
 * rows (the type's side effect, the dead-letter hook), so each gets its own savepoint and a
 * failure undoes only its own writes. */
static int finish_unit(store_tx_t *tx, void *arg) {
    for (struct job_ctx *c = arg; c; c = c->fin_next) {
        bool single = (c->outcome == JO_OK && !c->type->on_complete) || c->outcome == JO_RESCHEDULE;
        c->rc = single ? finish_one(tx, c) : store_nested(tx, finish_one, c);
    }
    return 0;
}

/* The outcome label of myloware_jobs_total. */
static enum outcome_label outcome_of(const struct job_ctx *ctx, int rc) {
    if (rc == ERR_CONFLICT)
        return OL_LEASE_LOST;
    if (rc)
        return OL_STORE_ERROR;
    switch (ctx->outcome) {
    case JO_OK: return OL_SUCCEEDED;
    case JO_RESCHEDULE: return OL_RESCHEDULED;
    case JO_RETRY: return ctx->job.state == JOB_DEAD ? OL_DEAD : OL_RETRIED;
    case JO_PERMANENT: return OL_DEAD;
    }
    return OL_STORE_ERROR;
}

/* The type's series, looked up once (the label text is built only then). */
static void job_metrics(struct type_slot *ts, enum outcome_label o, double secs) {
    if (!ts->m_duration) {
        buf_t lb;
        buf_init(&lb, 256);
        metrics_label(&lb, "type", ts->t->name);
        ts->m_duration = metrics_series(M_JOB_DURATION, lb.data);
        buf_release(&lb);
    }
    if (!ts->m_outcome[o]) {
        buf_t lb;
        buf_init(&lb, 256);
        metrics_label(&lb, "type", ts->t->name);
        metrics_label(&lb, "outcome", outcome_names[o]);
        ts->m_outcome[o] = metrics_series(M_JOBS, lb.data);
        buf_release(&lb);
    }
    metrics_series_observe(M_JOB_DURATION, ts->m_duration, secs);
    metrics_series_add(ts->m_outcome[o], 1);
}

static void finish_done_one(struct job_ctx *ctx, int rc) {
    dispatcher_t *d = ctx->d;
    double secs = (double)(clock_mono_ns() - ctx->started_ns) / 1e9;
    job_metrics(&d->types[ctx->slot], outcome_of(ctx, rc), secs);
    if (rc == ERR_CONFLICT)
        log_warn("queue", "result discarded: the job's lease was lost", LF_S("job_id", ctx->job.id),
                 LF_S("type", ctx->type->name));
    else if (rc)
        log_error("queue", "cannot record a job's result", LF_S("job_id", ctx->job.id),
                  LF_S("error", err_name(rc)));
    else if (ctx->outcome != JO_OK && ctx->outcome != JO_RESCHEDULE)
        log_warn("queue", ctx->job.state == JOB_DEAD ? "job dead" : "job failed, will retry",
                 LF_S("job_id", ctx->job.id), LF_S("type", ctx->type->name),
                 LF_I("attempts", ctx->job.attempts), LF_S("error", ctx->error ? ctx->error : ""));
    if (rc == 0)
        d->completed++;
    unlink_ctx(d, ctx);
    ctx_free(ctx);
}

static void finish_done(void *arg, int rc) {
    struct job_ctx *c = arg;
    dispatcher_t *d = c->d;
    for (struct job_ctx *next; c; c = next) {
        next = c->fin_next;
        finish_done_one(c, rc ? rc : c->rc); /* rc: the group's commit failed */
    }
    check_drained(d);
    if (!d->draining)
        claim(d);
}

static void fin_check_cb(uv_check_t *h) {
    dispatcher_t *d = h->data;
    uv_check_stop(h);
    struct job_ctx *list = d->fin_head;
    d->fin_head = d->fin_tail = NULL;
    if (list)
        store_submit(d->store, finish_unit, list, finish_done);
}

void job_finish(struct job_ctx *ctx) {
    ctx->finished = true;
    dispatcher_t *fd = ctx->d;
    if (ctx->handed_back) {
        feed_breaker(fd, ctx, BV_NEUTRAL);
    } else {
        /* A permanent error is a success for the breaker: the provider answered. */
        enum breaker_verdict v = ctx->outcome == JO_RETRY        ? BV_FAILURE
                                 : ctx->outcome == JO_RESCHEDULE ? BV_NEUTRAL
                                                                 : BV_SUCCESS;
        feed_breaker(fd, ctx, v);
    }
    if (ctx->handed_back) { /* drained away: the job is someone else's now */
        dispatcher_t *d = ctx->d;
        unlink_ctx(d, ctx);
        ctx_free(ctx);
        check_drained(d);
        return;
    }
    /* recorded with the other results of this loop turn, after it (one unit for all) */
    dispatcher_t *d = ctx->d;
    ctx->fin_next = NULL;
    if (d->fin_tail)
        d->fin_tail->fin_next = ctx;
    else
        d->fin_head = ctx;
    d->fin_tail = ctx;
    if (!uv_is_active((uv_handle_t *)&d->fin_check))
        uv_check_start(&d->fin_check, fin_check_cb);
}

static void run_pool_job(void *arg) {
    struct job_ctx *ctx = arg;
    ctx->type->run_pool(ctx);
}

/* Pool thread. A job of a group with a lower priority runs on a thread of its own at that
 * priority (cpuprio_run), which ends with the job: the pool thread keeps its own priority for
 * the work it runs next (file sends, storage calls), and the loop keeps the CPU it needs. */
static void pool_run(uv_work_t *w) {
    struct job_ctx *ctx = w->data;
    cpuprio_run((enum cpuprio)ctx->prio, run_pool_job, ctx);
}

static void pool_after(uv_work_t *w, int status) {
    struct job_ctx *ctx = w->data;
    if (status == UV_ECANCELED)
        job_set_error(ctx, JO_RETRY, "cancelled before it ran");
    job_finish(ctx);
}

static void start_job(dispatcher_t *d, struct type_slot *slot, job_t *job,
                      enum breaker_ticket ticket, uint32_t gen) {
    struct job_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->d = d;
    ctx->type = slot->t;
    ctx->slot = (int)(slot - d->types);
    ctx->ticket = ticket;
    ctx->ticket_gen = gen;
    ctx->job = *job;
    ctx->loop = d->loop;
    ctx->app = d->app;
    ctx->outcome = JO_OK;
    ctx->progress = -1;
    ctx->started_ns = clock_mono_ns();
    ctx->next = d->running;
    if (d->running)
        d->running->prev = ctx;
    d->running = ctx;
    d->nrunning++;
    slot->running++;
    if (slot->prov >= 0)
        d->provs[slot->prov].running++;
    if (slot->group >= 0)
        d->groups[slot->group].running++;
    ctx->prio = slot->group >= 0 ? d->groups[slot->group].prio : CPUPRIO_NORMAL;
    if (slot->t->kind == JK_POOL) {
        ctx->work.data = ctx;
        if (uv_queue_work(d->loop, &ctx->work, pool_run, pool_after) != 0) {
            job_set_error(ctx, JO_RETRY, "cannot queue work on the thread pool");
            job_finish(ctx);
        }
    } else {
        slot->t->run_loop(ctx);
    }
}

/* ---- claiming -----------------------------------------------------------------------------------
 */

struct claim_req {
    dispatcher_t *d;
    int n;
    struct {
        int slot, limit, got;
        unsigned kicks;
        job_t *jobs;
    } per[MAX_TYPES];
};

static int claim_unit(store_tx_t *tx, void *arg) {
    struct claim_req *r = arg;
    for (int i = 0; i < r->n; i++) {
        int rc = queue_claim(tx, &r->d->pol, r->d->types[r->per[i].slot].t->name, r->per[i].limit,
                             r->per[i].jobs, &r->per[i].got);
        if (rc)
            return rc;
    }
    return 0;
}

/* Jobs claimed just as their provider's circuit opened (or its limiter filled, or the drain began):
 * back to queued without using the attempt. */
struct refuse_req {
    int n;
    job_t *jobs;
};

static int refuse_unit(store_tx_t *tx, void *arg) {
    struct refuse_req *r = arg;
    for (int i = 0; i < r->n; i++) {
        int rc = queue_hand_back(tx, &r->jobs[i]);
        if (rc && rc != ERR_CONFLICT)
            return rc;
    }
    return 0;
}

static void refuse_done(void *arg, int rc) {
    struct refuse_req *r = arg;
    if (rc)
        log_error("queue",
                  "cannot give back jobs held by an open circuit; their leases will expire",
                  LF_S("error", err_name(rc)), LF_I("count", r->n));
    for (int i = 0; i < r->n; i++)
        job_release(&r->jobs[i]);
    free(r->jobs);
    free(r);
}

/* Every type is worth claiming again (see type_slot.dirty). */
static void claim_all(dispatcher_t *d) {
    for (int i = 0; i < d->ntypes; i++) {
        d->types[i].dirty = true;
        d->types[i].kicks++;
    }
    claim(d);
}

static void wake_cb(uv_timer_t *t) {
    dispatcher_t *d = t->data;
    d->wake_at = 0;
    claim_all(d);
}

/* Claims again at now + ms (the earliest time a limiter or an open circuit lets a job go). */
static void wake_in(dispatcher_t *d, int64_t now, int64_t ms) {
    if (ms < 1)
        ms = 1;
    if (d->wake_at && d->wake_at <= now + ms)
        return;
    d->wake_at = now + ms;
    uv_timer_start(&d->wake_timer, wake_cb, (uint64_t)ms, 0);
}

/* May a claimed job of this slot start now? Takes its breaker ticket and limiter slot. */
static bool admit(dispatcher_t *d, struct type_slot *ts, int64_t now, enum breaker_ticket *ticket,
                  uint32_t *gen) {
    *ticket = BT_DENIED;
    *gen = 0;
    if (ts->prov < 0)
        return true;
    struct prov_slot *p = &d->provs[ts->prov];
    if (p->lim && winlimit_available(p->lim, now) <= 0)
        return false;
    *ticket = breaker_acquire(&p->br, now, gen);
    circuit_gauge(p, now);
    if (*ticket == BT_DENIED)
        return false;
    if (p->lim)
        winlimit_take(p->lim, now);
    return true;
}

static void claim_done(void *arg, int rc) {
    struct claim_req *r = arg;
    dispatcher_t *d = r->d;
    d->claiming = false;
    int total = 0;
    bool full = false;
    int64_t now = mono_ms();
    struct refuse_req *refused = NULL;
    for (int i = 0; i < r->n; i++) {
        if (rc == 0) {
            struct type_slot *ts = &d->types[r->per[i].slot];
            for (int k = 0; k < r->per[i].got; k++) {
                enum breaker_ticket ticket;
                uint32_t gen;
                /* claimed while the drain began, or its provider cannot take it now: give it back
                 * without using the attempt */
                if (d->draining || !admit(d, ts, now, &ticket, &gen)) {
                    if (!refused) {
                        refused = xcalloc(1, sizeof *refused);
                        refused->jobs = xcalloc((size_t)r->per[i].got, sizeof(job_t));
                    } else {
                        refused->jobs = xrealloc(
                            refused->jobs, (size_t)(refused->n + r->per[i].got) * sizeof(job_t));
                    }
                    refused->jobs[refused->n++] = r->per[i].jobs[k];
                    continue;
                }
                start_job(d, ts, &r->per[i].jobs[k], ticket, gen);
            }
            total += r->per[i].got;
            full |= r->per[i].got == r->per[i].limit;
            if (r->per[i].got < r->per[i].limit && ts->kicks == r->per[i].kicks)
                ts->dirty = false; /* its ready jobs are all claimed */
        }
    }
    free(r);
    if (refused) {
        log_info("queue",
                 d->draining ? "claimed jobs given back: draining"
                             : "claimed jobs given back: their provider cannot take them now",
                 LF_I("count", refused->n));
        store_submit(d->store, refuse_unit, refused, refuse_done);
        for (int i = 0; i < d->ntypes; i++) /* given back: their types have ready jobs again */
            d->types[i].dirty = true;
        d->claim_again =
            true; /* the budgets changed under the claim: the next pass recomputes them */
    }
    if (rc)
        log_error("queue", "claim failed", LF_S("error", err_name(rc)));
    if (d->draining)
        return;
    if (full || d->claim_again) {
        d->claim_again = false;
        claim(d);
    } else if (d->once && total == 0 && d->nrunning == 0 && d->idle_cb) {
        d->idle_cb(d, d->idle_ud);
    }
}

static int imin(int a, int b) { return a < b ? a : b; }

static void claim(dispatcher_t *d) {
    if (!d->started || d->draining)
        return;
    if (d->claiming) {
        d->claim_again = true;
        return;
    }
    int64_t now = mono_ms();
    /* What each provider and group can still take in this pass. */
    int pfree[MAX_PROVIDERS], gfree[MAX_GROUPS];
    for (int i = 0; i < d->nprovs; i++) {
        struct prov_slot *p = &d->provs[i];
        circuit_gauge(p, now);
        pfree[i] = p->cap - p->running;
        switch (breaker_state(&p->br, now)) {
        case BREAKER_CLOSED: break;
        case BREAKER_OPEN:
            pfree[i] = 0;
            wake_in(d, now, breaker_wait_ms(&p->br, now));
            break;
        case BREAKER_HALF_OPEN: /* one trial at a time */
            pfree[i] = p->br.state == BREAKER_HALF_OPEN && p->br.trial_out ? 0 : imin(pfree[i], 1);
            break;
        }
        if (p->lim && pfree[i] > 0) {
            int avail = winlimit_available(p->lim, now);
            if (avail <= 0)
                wake_in(d, now, winlimit_wait_ms(p->lim, now));
            pfree[i] = imin(pfree[i], avail);
        }
    }
    for (int i = 0; i < d->ngroups; i++)
        gfree[i] = d->groups[i].cap > 0 ? d->groups[i].cap - d->groups[i].running : CLAIM_BATCH;
    struct claim_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    unsigned first = d->ntypes ? d->rr++ % (unsigned)d->ntypes : 0;
    for (int j = 0; j < d->ntypes; j++) {
        int i = (int)((first + (unsigned)j) % (unsigned)d->ntypes);
        struct type_slot *ts = &d->types[i];
        if (!ts->dirty)
            continue;
        int limit = imin(ts->cap - ts->running, CLAIM_BATCH);
        if (ts->prov >= 0)
            limit = imin(limit, pfree[ts->prov]);
        if (ts->group >= 0)
            limit = imin(limit, gfree[ts->group]);
        if (limit <= 0)
            continue;
        if (ts->prov >= 0)
            pfree[ts->prov] -= limit;
        if (ts->group >= 0)
            gfree[ts->group] -= limit;
        r->per[r->n].slot = i;
        r->per[r->n].limit = limit;
        r->per[r->n].kicks = ts->kicks;
        if (!ts->claimed) /* not zeroed: the store fills each entry it returns */
            ts->claimed = xmalloc((size_t)imin(ts->cap, CLAIM_BATCH) * sizeof(job_t));
        r->per[r->n].jobs = ts->claimed;
        r->n++;
    }
    if (r->n == 0) {
        free(r);
        return;
    }
    d->claiming = true;
    d->claim_again = false;
    store_submit(d->store, claim_unit, r, claim_done);
}

void dispatcher_kick(dispatcher_t *d) {
    if (d)
        claim_all(d);
}

void dispatcher_kick_type(dispatcher_t *d, const char *type) {
    if (!d)
        return;
    for (int i = 0; i < d->ntypes; i++) {
        if (strcmp(d->types[i].t->name, type) == 0) {
            d->types[i].dirty = true;
            d->types[i].kicks++;
            claim(d);
            return;
        }
    }
}

static void poll_cb(uv_timer_t *t) { claim_all(t->data); }

/* ---- leases, rescue, retention ------------------------------------------------------------------
 */

struct renew_req {
    dispatcher_t *d;
    int n;
    job_t *jobs; /* shallow copies: id, token */
    double *progress;
};

static int renew_unit(store_tx_t *tx, void *arg) {
    struct renew_req *r = arg;
    for (int i = 0; i < r->n; i++) {
        int rc = queue_renew(tx, &r->d->pol, &r->jobs[i], r->progress[i]);
        if (rc == ERR_CONFLICT)
            log_warn("queue", "lease lost while running", LF_S("job_id", r->jobs[i].id));
        else if (rc)
            return rc;
    }
    return 0;
}

static void renew_done(void *arg, int rc) {
    struct renew_req *r = arg;
    if (rc)
        log_error("queue", "cannot renew leases", LF_S("error", err_name(rc)));
    free(r->jobs);
    free(r->progress);
    free(r);
}

static void renew_cb(uv_timer_t *t) {
    dispatcher_t *d = t->data;
    if (d->nrunning == 0)
        return;
    struct renew_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    r->jobs = xcalloc((size_t)d->nrunning, sizeof(job_t));
    r->progress = xcalloc((size_t)d->nrunning, sizeof(double));
    for (struct job_ctx *c = d->running; c; c = c->next) {
        if (c->finished || c->handed_back)
            continue;
        memcpy(r->jobs[r->n].id, c->job.id, sizeof c->job.id);
        memcpy(r->jobs[r->n].lease_token, c->job.lease_token, sizeof c->job.lease_token);
        r->progress[r->n] = c->progress;
        r->n++;
    }
    store_submit(d->store, renew_unit, r, renew_done);
}

struct rescue_req {
    dispatcher_t *d;
    bool purge;
    int rescued, purged;
};

static int rescue_unit(store_tx_t *tx, void *arg) {
    struct rescue_req *r = arg;
    job_t moved[64];
    int n = 64;
    int rc = queue_rescue(tx, moved, &n);
    for (int i = 0; i < n; i++)
        job_release(&moved[i]);
    r->rescued = n;
    if (rc == 0 && r->purge)
        rc = queue_purge(tx, &r->d->pol, &r->purged);
    return rc;
}

static void rescue_done(void *arg, int rc) {
    struct rescue_req *r = arg;
    dispatcher_t *d = r->d;
    if (rc)
        log_error("queue", "rescue failed", LF_S("error", err_name(rc)));
    if (r->purged)
        log_info("queue", "old finished jobs deleted", LF_I("count", r->purged));
    if (r->rescued)
        claim_all(d);
    free(r);
}

static void rescue_cb(uv_timer_t *t) {
    dispatcher_t *d = t->data;
    struct rescue_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    r->purge = d->rescue_ticks++ % PURGE_EVERY == 0;
    store_submit(d->store, rescue_unit, r, rescue_done);
}

/* ---- life cycle ---------------------------------------------------------------------------------
 */

dispatcher_t *dispatcher_new(uv_loop_t *loop, store_t *store, const config_t *cfg, int workers,
                             void *app) {
    dispatcher_t *d = xcalloc(1, sizeof *d);
    d->workers = workers;
    d->loop = loop;
    d->store = store;
    d->cfg = cfg;
    d->app = app;
    queue_policy_from_config(&d->pol, cfg);
    uv_timer_t *timers[] = {&d->poll_timer, &d->renew_timer, &d->rescue_timer, &d->drain_timer,
                            &d->wake_timer};
    for (int i = 0; i < 5; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = d;
    }
    uv_check_init(loop, &d->fin_check);
    d->fin_check.data = d;
    d->open_handles = 6;
    return d;
}

static int find_group(dispatcher_t *d, const char *name) {
    for (int i = 0; i < d->ngroups; i++)
        if (strcmp(d->groups[i].name, name) == 0)
            return i;
    if (d->ngroups >= MAX_GROUPS) {
        log_error("queue", "too many cap groups; ignored", LF_S("group", name));
        return -1;
    }
    d->groups[d->ngroups] = (struct group_slot){xstrdup(name), 0, 0, CPUPRIO_NORMAL};
    return d->ngroups++;
}

static int find_provider(const dispatcher_t *d, const char *name) {
    for (int i = 0; name && i < d->nprovs; i++)
        if (strcmp(d->provs[i].name, name) == 0)
            return i;
    return -1;
}

static int add_provider(dispatcher_t *d, const char *name) {
    int i = find_provider(d, name);
    if (i >= 0)
        return i;
    if (d->nprovs >= MAX_PROVIDERS) {
        log_error("queue", "too many providers; their caps are not applied",
                  LF_S("provider", name));
        return -1;
    }
    struct prov_slot *p = &d->provs[d->nprovs];
    *p = (struct prov_slot){
        .name = name, .cap = (int)config_int(d->cfg, S_PROVIDER_MAX_INFLIGHT), .gauge = -1};
    breaker_init(&p->br, (int)config_int(d->cfg, S_CIRCUIT_BREAKER_FAILURE_THRESHOLD),
                 config_int(d->cfg, S_CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S) * 1000);
    int64_t max = config_int(d->cfg, S_QUEUE_LIMITER_MAX);
    if (max > 0)
        p->lim = winlimit_new((int)max, config_int(d->cfg, S_QUEUE_LIMITER_DURATION_MS));
    circuit_gauge(p, mono_ms());
    return d->nprovs++;
}

void dispatcher_register(dispatcher_t *d, const struct job_type *t) {
    if (d->ntypes >= MAX_TYPES) {
        log_error("queue", "too many job types; ignored", LF_S("type", t->name));
        return;
    }
    int cap = t->concurrency > 0 ? t->concurrency : (t->kind == JK_POOL ? d->workers : 64);
    int prov = t->provider ? add_provider(d, t->provider) : -1;
    int group = t->cap_group ? find_group(d, t->cap_group) : -1;
    d->types[d->ntypes++] =
        (struct type_slot){.t = t, .cap = cap, .prov = prov, .group = group, .dirty = true};
}

void dispatcher_set_group_cap(dispatcher_t *d, const char *group, int cap) {
    int i = find_group(d, group);
    if (i >= 0)
        d->groups[i].cap = cap > 0 ? cap : 1;
}

void dispatcher_set_group_priority(dispatcher_t *d, const char *group, int prio) {
    int i = find_group(d, group);
    if (i >= 0)
        d->groups[i].prio = prio;
}

void dispatcher_start(dispatcher_t *d, bool once, void (*idle_cb)(dispatcher_t *, void *),
                      void *ud) {
    d->started = true;
    d->once = once;
    d->idle_cb = idle_cb;
    d->idle_ud = ud;
    uint64_t poll = (uint64_t)config_int(d->cfg, S_QUEUE_POLL_MS);
    uint64_t renew = (uint64_t)d->pol.lease_s * 1000 / 3;
    uv_timer_start(&d->poll_timer, poll_cb, poll, poll);
    uv_timer_start(&d->renew_timer, renew_cb, renew, renew);
    uv_timer_start(&d->rescue_timer, rescue_cb, 0,
                   RESCUE_EVERY_MS); /* at once: dead workers' jobs */
    claim(d);
}

static int handback_unit(store_tx_t *tx, void *arg) {
    dispatcher_t *d = arg;
    for (struct job_ctx *c = d->running; c; c = c->next) {
        if (c->finished || c->handed_back)
            continue;
        int rc = queue_hand_back(tx, &c->job);
        if (rc && rc != ERR_CONFLICT)
            return rc;
    }
    return 0;
}

static void handback_done(void *arg, int rc) {
    dispatcher_t *d = arg;
    int n = 0;
    for (struct job_ctx *c = d->running; c; c = c->next) {
        if (!c->finished) {
            c->handed_back = true;
            n++;
        }
    }
    log_warn("queue",
             rc ? "cannot hand back running jobs; their leases will expire"
                : "running jobs handed back",
             LF_I("count", n));
    /* what is left runs on pool threads or waits on I/O that the exit abandons */
    d->drained = true;
    if (d->drain_cb)
        d->drain_cb(d, d->drain_ud);
}

static void drain_timeout(uv_timer_t *t) {
    dispatcher_t *d = t->data;
    if (d->drained)
        return;
    store_submit(d->store, handback_unit, d, handback_done);
}

void dispatcher_drain(dispatcher_t *d, uint64_t grace_ms, void (*cb)(dispatcher_t *, void *),
                      void *ud) {
    d->draining = true;
    d->drain_cb = cb;
    d->drain_ud = ud;
    uv_timer_stop(&d->poll_timer);
    uv_timer_stop(&d->wake_timer);
    log_info("queue", "draining", LF_I("running", d->nrunning),
             LF_I("grace_ms", (long long)grace_ms));
    if (d->nrunning == 0) {
        check_drained(d);
        return;
    }
    uv_timer_start(&d->drain_timer, drain_timeout, grace_ms, 0);
}

static void close_cb(uv_handle_t *h) {
    dispatcher_t *d = h->data;
    if (--d->open_handles == 0) {
        /* contexts still here were handed back; pool work that is still running keeps its ctx */
        for (struct job_ctx *c = d->running, *n; c; c = n) {
            n = c->next;
            if (c->type->kind == JK_LOOP)
                ctx_free(c);
        }
        for (int i = 0; i < d->nprovs; i++)
            winlimit_free(d->provs[i].lim);
        for (int i = 0; i < d->ngroups; i++)
            free(d->groups[i].name);
        for (int i = 0; i < d->ntypes; i++)
            free(d->types[i].claimed);
        free(d);
    }
}

void dispatcher_close(dispatcher_t *d) {
    d->closing = true;
    uv_timer_t *timers[] = {&d->poll_timer, &d->renew_timer, &d->rescue_timer, &d->drain_timer,
                            &d->wake_timer};
    for (int i = 0; i < 5; i++)
        uv_close((uv_handle_t *)timers[i], close_cb);
    uv_close((uv_handle_t *)&d->fin_check, close_cb);
}

int dispatcher_running(const dispatcher_t *d) { return d->nrunning; }
uint64_t dispatcher_completed(const dispatcher_t *d) { return d->completed; }

enum breaker_state dispatcher_circuit(const dispatcher_t *d, const char *provider) {
    int i = d ? find_provider(d, provider) : -1;
    return i < 0 ? BREAKER_CLOSED : breaker_state(&d->provs[i].br, mono_ms());
}

int dispatcher_provider_running(const dispatcher_t *d, const char *provider) {
    int i = d ? find_provider(d, provider) : -1;
    return i < 0 ? 0 : d->provs[i].running;
}

int dispatcher_group_running(const dispatcher_t *d, const char *group) {
    for (int i = 0; d && i < d->ngroups; i++)
        if (strcmp(d->groups[i].name, group) == 0)
            return d->groups[i].running;
    return 0;
}

int dispatcher_providers(const dispatcher_t *d, const char **names, int max) {
    if (!d)
        return 0;
    for (int i = 0; i < d->nprovs && i < max; i++)
        names[i] = d->provs[i].name;
    return d->nprovs;
}
