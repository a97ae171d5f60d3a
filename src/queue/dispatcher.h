/*
 * dispatcher: runs jobs in `serve` and `worker run`. It claims ready jobs for the types it
 * handles, at most each type's concurrency at once, and runs them: pool types on libuv's thread
 * pool (CPU work: FFmpeg), loop types on the loop (I/O: provider calls through libcurl-multi).
 * Results go back to the store as units (group-committed with everything else). It renews the
 * leases of its running jobs every JOB_LEASE_S/3, rescues expired leases every few seconds,
 * purges old finished jobs, and is woken at once by in-process enqueues (other processes are
 * seen by polling every QUEUE_POLL_MS).
 *
 * Providers and cap groups (runtime.md §2). A type may name a provider: all the types naming the
 * same provider share at most PROVIDER_MAX_INFLIGHT running jobs, a limiter of QUEUE_LIMITER_MAX
 * job starts in any window of QUEUE_LIMITER_DURATION_MS (0: no limit), and one circuit breaker
 * (core/breaker.h: opens after CIRCUIT_BREAKER_FAILURE_THRESHOLD consecutive failures, half-open
 * after CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S, one trial job while half-open). Outcomes feed the
 * breaker: JO_OK is a success; JO_RETRY a failure; JO_PERMANENT a success (the provider answered:
 * the fault is the request's, and waiting would not fix it, so it must not hold back the other
 * jobs); JO_RESCHEDULE, a lost lease or a hand-back decide nothing. While a circuit is open its
 * jobs are not claimed (they stay queued, attempts untouched); jobs claimed just as it opened are
 * handed back without using their attempt. A type may also name a cap group: the types of one
 * group share the cap set with dispatcher_set_group_cap (media work: "media",
 * TRANSCODE_MAX_CONCURRENCY). Each type's own concurrency still applies; the tightest cap wins.
 *
 * Drain (SIGTERM): stop claiming; running jobs get SHUTDOWN_GRACE_S to finish; the rest are
 * handed back (re-queued without using the attempt) and their late results are refused by the
 * lease guard.
 *
 * Loop thread, except job_type.run_pool (a pool thread).
 */
#ifndef MYLOWARE_QUEUE_DISPATCHER_H
#define MYLOWARE_QUEUE_DISPATCHER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "core/breaker.h"
#include "core/config.h"
#include "db/store.h"
#include "queue/queue.h"

typedef struct dispatcher dispatcher_t;
struct job_ctx;

enum job_kind { JK_LOOP, JK_POOL };
enum job_outcome { JO_OK, JO_RETRY, JO_PERMANENT, JO_RESCHEDULE };

struct job_type {
    const char *name;
    enum job_kind kind;
    int concurrency; /* 0: the worker count for pool types, 64 for loop types */
    /* JK_POOL: runs on a pool thread and fills ctx's result fields. */
    void (*run_pool)(struct job_ctx *ctx);
    /* JK_LOOP: starts the work on the loop and calls job_finish(ctx) when it is done. */
    void (*run_loop)(struct job_ctx *ctx);
    /* Optional: extra writes committed atomically with a successful completion (a side effect
     * that must happen exactly once). Database thread. */
    int (*on_complete)(store_tx_t *tx, struct job_ctx *ctx);
    /* Jobs of types with the same provider ("llm", "sora", "render", "publish", "safety",
     * "notify") share PROVIDER_MAX_INFLIGHT, the QUEUE_LIMITER_* limit and one circuit breaker
     * (see above). NULL: none of these. */
    const char *provider;
    /* Types with the same group share the cap set by dispatcher_set_group_cap ("media").
     * NULL, or a group without a cap: only the type's own concurrency. */
    const char *cap_group;
    /* Optional: frees ctx->data, whatever the outcome (after on_complete). Loop thread. */
    void (*release)(struct job_ctx *ctx);
};

struct job_ctx {
    dispatcher_t *d;
    const struct job_type *type;
    job_t job;
    uv_loop_t *loop;
    void *app;
    /* the result, set by the handler */
    enum job_outcome outcome;
    char *error;      /* owned */
    char *result_url; /* owned */
    int retry_after_s;
    int64_t reschedule_at;
    _Atomic double progress; /* 0..1, written by the handler; -1 unknown */
    void *data; /* the handler's own state, read by on_complete, freed by type->release */
    /* internal */
    uv_work_t work;
    uint64_t started_ns;
    int slot;                   /* index of the type's slot */
    int prio;                   /* enum cpuprio the pool job runs at */
    enum breaker_ticket ticket; /* provider types: the breaker's permission */
    uint32_t ticket_gen;
    bool finished, handed_back;
    int rc; /* the store's answer to the result */
    struct job_ctx *prev, *next;
    struct job_ctx *fin_next; /* results waiting to be recorded together */
};

/* Sets the result (error copied). Any thread. */
void job_set_error(struct job_ctx *ctx, enum job_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A loop job is done (its outcome set, JO_OK by default). Loop thread. */
void job_finish(struct job_ctx *ctx);

/* workers: the pool's thread count, the default cap of pool types. */
dispatcher_t *dispatcher_new(uv_loop_t *loop, store_t *store, const config_t *cfg, int workers,
                             void *app);
/* Registers a type (static storage). Before dispatcher_start. */
void dispatcher_register(dispatcher_t *d, const struct job_type *t);
/* At most cap running jobs (cap >= 1) over all the types whose cap_group is group (copied).
 * Before dispatcher_start; setting it again replaces the cap. */
void dispatcher_set_group_cap(dispatcher_t *d, const char *group, int cap);
/* The pool jobs of the group's types run at CPU priority prio (an enum cpuprio, core/cpuprio.h;
 * media work: TRANSCODE_PRIORITY), each on a thread of its own that ends with the job; the
 * threads the job creates (codec threads) inherit it. Loop types are not affected. Before
 * dispatcher_start. */
void dispatcher_set_group_priority(dispatcher_t *d, const char *group, int prio);
/* Starts claiming (rescues this host's dead workers first). once: stop when nothing is ready. */
void dispatcher_start(dispatcher_t *d, bool once, void (*idle_cb)(dispatcher_t *, void *),
                      void *ud);
/* Claim now: called after an in-process enqueue commits (d may be NULL: no dispatcher here). */
void dispatcher_kick(dispatcher_t *d);
/* The same when only jobs of one type were enqueued: claims that type only (cheaper). */
void dispatcher_kick_type(dispatcher_t *d, const char *type);
/* Stops claiming and drains (see above); cb runs when nothing is running any more. */
void dispatcher_drain(dispatcher_t *d, uint64_t grace_ms, void (*cb)(dispatcher_t *, void *),
                      void *ud);
/* Closes the handles; frees in the close callbacks. After the drain. */
void dispatcher_close(dispatcher_t *d);
int dispatcher_running(const dispatcher_t *d);
/* Jobs finished by this dispatcher (for `worker run --once` and tests). */
uint64_t dispatcher_completed(const dispatcher_t *d);
/* The circuit state of a provider's breaker (BREAKER_CLOSED for a provider no registered type
 * names, and when d is NULL: `serve --role api` has no dispatcher). For /health and metrics. */
enum breaker_state dispatcher_circuit(const dispatcher_t *d, const char *provider);
/* The providers the registered types name, in registration order: up to max names (static
 * storage) into names; returns how many there are. */
int dispatcher_providers(const dispatcher_t *d, const char **names, int max);
/* Running jobs of a provider, of a cap group (0 when unknown). For tests and metrics. */
int dispatcher_provider_running(const dispatcher_t *d, const char *provider);
int dispatcher_group_running(const dispatcher_t *d, const char *group);

#endif
