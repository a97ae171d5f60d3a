/*
 * queue: the job states and their transitions (runtime.md §1). Every step of every run is a
 * job; the promises are: nothing lost (a job is a row from the enqueue's commit on), nothing
 * done twice by mistake (every way out of `running` is guarded by the lease token), nothing
 * stuck (leases expire, the rescuer re-queues, dead jobs stay visible and replayable).
 *
 *                 queue_enqueue (joins the caller's transaction; an idempotency key held by an
 *                      |         unfinished job of the same type returns that job instead)
 *                      v
 *   +----------->  queued  ---- queue_cancel ------------------------------+
 *   |                  |                                                  |
 *   |             queue_claim (run_at <= now, by priority then age;        |
 *   |                  |      attempts + 1, fresh random lease_token,      |
 *   |                  v      lease_expires_at = now + JOB_LEASE_S)        v
 *   |  +-------->  running  --- queue_cancel --------------------------> cancelled
 *   |  |  renew       | | | |
 *   |  +-------------+ | | +-- queue_complete --------------------------> succeeded
 *   |                  | |
 *   +-- queue_fail ----+ +---- queue_fail (permanent, or no attempt left) --> dead
 *   |   (backoff; Retry-After when longer)                                   |
 *   +-- queue_reschedule / queue_hand_back (the attempt is given back)       |
 *   +-- queue_rescue (lease expired or owner process gone; attempt counts;   |
 *   |                 none left: dead)                                       |
 *   +-- queue_replay (attempts reset; the dead letter becomes resolved) -----+
 *                                                    queue_resolve: dead, resolved
 *
 * Guarantees per state: queued jobs are claimable once run_at has passed; a running job has
 * exactly one valid lease token, and only its holder can complete, fail, renew, reschedule or
 * hand it back (others get ERR_CONFLICT and must discard their result); succeeded and
 * cancelled jobs are deleted after JOB_RETENTION_HOURS; dead jobs are kept until resolved or
 * replayed. The SQL CHECK constraints in schema.sql use the same state names.
 *
 * Every queue_* function that takes a store_tx_t runs on the database thread inside a unit
 * (see db/store.h); the pure helpers run anywhere.
 */
#ifndef MYLOWARE_QUEUE_QUEUE_H
#define MYLOWARE_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "db/store.h"

struct queue_policy {
    int lease_s;
    double retry_base_s, retry_max_s;
    int max_attempts;
    int64_t retention_ms;
};

/* From JOB_LEASE_S, JOB_RETRY_BASE_S, JOB_RETRY_MAX_S, JOB_MAX_ATTEMPTS, JOB_RETENTION_HOURS. */
void queue_policy_from_config(struct queue_policy *p, const config_t *cfg);

struct queue_new {
    const char *type;    /* required, 1..63 chars of [a-z0-9._-] */
    const char *run_id;  /* may be NULL */
    const char *payload; /* JSON text; NULL: "{}" */
    int priority;
    int max_attempts;            /* 0: the policy's */
    int64_t run_at;              /* 0: now */
    const char *idempotency_key; /* may be NULL */
};

/* True when type is a valid job type name. Pure. */
bool queue_type_valid(const char *type);
/* The retry delay after the given attempt (1-based): min(max, base * 2^(attempt-1)) * factor,
 * factor = 0.5 + rand01 / 2 (rand01 in [0, 1]). Milliseconds. Pure. */
int64_t queue_backoff_ms(int attempt, double base_s, double max_s, double rand01);
/* This process as a lease owner: "host:pid:start-ticks". */
const char *queue_owner_id(void);
/* True when owner names a process on this host that is no longer running. */
bool queue_owner_dead(const char *owner);
/* "host:" of this host, for queue_rescue. */
const char *queue_host_prefix(void);

/* Inserts a queued job (out gets the row; *existed when an idempotency key matched). */
int queue_enqueue(store_tx_t *tx, const struct queue_policy *p, const struct queue_new *n,
                  job_t *out, bool *existed);
/* Claims up to limit ready jobs of type for this process; *n gets the count. */
int queue_claim(store_tx_t *tx, const struct queue_policy *p, const char *type, int limit,
                job_t *out, int *n);
/* running -> succeeded. ERR_CONFLICT when the lease was lost (the result must be discarded). */
int queue_complete(store_tx_t *tx, job_t *j, const char *result_url);
/*
 * running -> queued (retry after backoff, or Retry-After when longer) or dead (permanent, or
 * the last attempt). *dead tells which. ERR_CONFLICT when the lease was lost.
 */
int queue_fail(store_tx_t *tx, const struct queue_policy *p, job_t *j, const char *error,
               bool permanent, int retry_after_s, bool *dead);
/* running -> queued at run_at without using the attempt (a poller that found nothing new). */
int queue_reschedule(store_tx_t *tx, job_t *j, int64_t run_at);
/* running -> queued now, attempt not counted (drain on SIGTERM). */
int queue_hand_back(store_tx_t *tx, job_t *j);
/* Extends the lease (and records progress when >= 0). ERR_CONFLICT when lost. */
int queue_renew(store_tx_t *tx, const struct queue_policy *p, job_t *j, double progress);
/* queued|running -> cancelled. ERR_NOTFOUND, or ERR_CONFLICT when already finished. */
int queue_cancel(store_tx_t *tx, const char *id);
/* dead -> queued with attempts reset. ERR_NOTFOUND, or ERR_CONFLICT when already resolved. */
int queue_replay(store_tx_t *tx, const char *id);
/* Marks a dead letter resolved. ERR_CONFLICT (with *resolved_at) when it already was. */
int queue_resolve(store_tx_t *tx, const char *id, int64_t *resolved_at);
/* Re-queues (or kills, with no attempt left) running jobs whose lease expired or whose owner
 * on this host is gone. out (max *n entries) gets the jobs moved; *n the count. */
int queue_rescue(store_tx_t *tx, job_t *out, int *n);
/* Deletes finished jobs older than the retention. */
int queue_purge(store_tx_t *tx, const struct queue_policy *p, int *deleted);

/* Dead-letter hook: called inside the transaction that made a job dead (the workflow marks its
 * run failed there). NULL: none. */
typedef int (*queue_dead_hook)(store_tx_t *tx, const job_t *j);
void queue_set_dead_hook(queue_dead_hook fn);
/* Replay hook: called inside the transaction of queue_replay with the replayed job (the workflow
 * restores its run to the status it waited in). NULL: none. */
typedef int (*queue_replay_hook)(store_tx_t *tx, const job_t *j);
void queue_set_replay_hook(queue_replay_hook fn);

#endif
