/*
 * store: the database behind one opaque interface; only the backend files (store_sqlite.c,
 * store_pg.c in WITH_POSTGRES=1 builds) contain SQL. A backend is an ops table chosen from
 * DATABASE_URL; adding one is one file and one line in store.c.
 *
 * Threads. Every store has one database thread that owns the write connection. Work reaches it
 * as store_fn units: store_submit() from the loop (the answer comes back on the loop through a
 * uv_async), or store_call() from any other thread (blocking). The database thread runs every
 * waiting unit in ONE write transaction (group commit: one commit, one fsync with DB_SYNC=full,
 * for many units), each unit inside its own savepoint, so a failing unit rolls back only its
 * own writes. The loop never waits on SQLite.
 */
#ifndef MYLOWARE_DB_STORE_H
#define MYLOWARE_DB_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"

typedef struct store store_t;
typedef struct store_tx store_tx_t;

/* A unit of work. Runs on the database thread inside the group's transaction. Returns 0 or an
 * ERR_* code (its savepoint is then rolled back). */
typedef int (*store_fn)(store_tx_t *tx, void *arg);
/* Completion of store_submit(), on the loop thread: rc is the unit's result, or ERR_DB when the
 * group's commit failed (then nothing of the unit was kept). */
typedef void (*store_done)(void *arg, int rc);

/* ---- jobs (see queue/queue.h for the states and what each transition means) ---- */

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_DEAD, JOB_CANCELLED, JOB__STATES };

#define JOB_ID_LEN 37
#define JOB_TYPE_MAX 64
#define JOB_TOKEN_LEN 33

typedef struct job {
    char id[JOB_ID_LEN];
    char type[JOB_TYPE_MAX];
    char run_id[JOB_ID_LEN]; /* "" when none */
    char *payload;           /* JSON text, owned */
    enum job_state state;
    int priority; /* higher runs first */
    int attempts, max_attempts;
    int64_t run_at, lease_expires_at, created_at, updated_at, finished_at,
        resolved_at; /* ms; 0 none */
    char lease_token[JOB_TOKEN_LEN];
    char lease_owner[128];
    double progress;       /* 0..1, or -1 when unknown */
    char *last_error;      /* owned, may be NULL */
    char *result_url;      /* owned, may be NULL */
    char *idempotency_key; /* owned, may be NULL */
} job_t;

/* Frees the owned strings (not the struct). */
void job_release(job_t *j);
const char *job_state_name(enum job_state s);
int job_state_parse(const char *s); /* -1 when unknown */

/* Filters for job listings; zero values mean "any". */
struct job_filter {
    int state; /* -1: any */
    const char *type, *run_id;
    bool dead_unresolved_only; /* with state JOB_DEAD */
    bool dead_letters;         /* dead, or once dead and since replayed/resolved */
    int limit;
};

struct queue_counts {
    int64_t ready, scheduled, running, dead;
    double oldest_ready_age_s;
};

/* ---- runs, run events, artifacts, tasks, webhook inbox, idempotency keys, feedback ----
 * (statuses and steps, and what each transition means: workflow/run.h). Times are ms. */

#define RUN_ID_LEN 37
#define RUN_WORKFLOW_MAX 65
#define RUN_STATUS_MAX 32
#define RUN_STEP_MAX 24

typedef struct run {
    char id[RUN_ID_LEN];
    char workflow[RUN_WORKFLOW_MAX];
    char status[RUN_STATUS_MAX];
    char step[RUN_STEP_MAX];          /* "" when none */
    char *brief;                      /* owned */
    char *user_id, *telegram_chat_id; /* owned, may be NULL */
    char *artifacts; /* owned JSON object text: the run's artifacts view (api.md §4) */
    char *context;   /* owned JSON object text: the engine's private state (never shown) */
    char *error;     /* owned, may be NULL */
    int clips_expected, clips_ready;
    char *public_token; /* owned, may be NULL */
    int64_t public_expires_at, created_at, updated_at;
} run_t;

/* Frees the owned strings (not the struct). */
void run_release(run_t *r);

struct run_filter {
    const char *status, *workflow; /* NULL: any */
    int64_t before_created; /* cursor: runs strictly older than (before_created, before_id) */
    const char *before_id;  /* NULL: no cursor */
    int limit;
};

typedef struct run_event {
    int64_t id; /* set by run_event_add: increasing, the SSE event id */
    char run_id[RUN_ID_LEN];
    char kind[12]; /* "run" or "artifact" */
    char status[RUN_STATUS_MAX], step[RUN_STEP_MAX];
    char *message; /* owned, may be NULL */
    char *data;    /* owned JSON text, may be NULL ("{}") */
    int64_t at;
} run_event_t;
void run_event_release(run_event_t *e);

typedef struct artifact {
    char id[RUN_ID_LEN];
    char run_id[RUN_ID_LEN];
    char type[48];
    char persona[24]; /* "" when none */
    char *content;    /* owned, may be NULL */
    char *uri;        /* owned, may be NULL */
    char *metadata;   /* owned JSON object text, may be NULL ("{}") */
    char *dedupe;     /* owned, may be NULL: one artifact per (run, dedupe) */
    int64_t created_at;
} artifact_t;
void artifact_release(artifact_t *a);

typedef struct inbox_item {
    int64_t id;
    char provider[16];
    char delivery_id[256];
    char event_type[64];
    char task_id[128];
    char run_id[RUN_ID_LEN]; /* "" when unknown */
    char *payload;           /* owned raw body */
    char status[12];         /* accepted, ignored, early, applied */
    int64_t received_at;
} inbox_item_t;
void inbox_item_release(inbox_item_t *w);

enum idem_state { IDEM_NEW, IDEM_REPLAY, IDEM_MISMATCH, IDEM_INFLIGHT };
struct idem_result {
    enum idem_state state;
    int status; /* IDEM_REPLAY */
    char *body; /* IDEM_REPLAY: owned */
};

typedef struct feedback {
    char id[RUN_ID_LEN];
    char run_id[RUN_ID_LEN];
    char artifact_id[RUN_ID_LEN]; /* "" when none */
    int rating;
    char *comment; /* owned, may be NULL */
    int64_t created_at;
} feedback_t;
void feedback_release(feedback_t *f);

/* What store_backup() copied. */
struct store_backup_info {
    int64_t bytes;      /* size of the copy */
    int schema_version; /* the copy's */
};

struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    int (*open)(const config_t *cfg, store_t **out, buf_t *err);
    /* a connection for read-only units beside the writer's (store_open_reader); NULL or
     * ERR_NOTSUP: none, read on the main store */
    int (*open_reader)(const config_t *cfg, store_t **out, buf_t *err);
    int (*migrate)(store_t *s, int *from, int *to, buf_t *err);
    void (*close)(store_t *s);
    /* online copy of the database to a new file (store_backup); NULL: not supported */
    int (*backup)(const config_t *cfg, const char *dest, struct store_backup_info *info,
                  buf_t *err);
    /* transaction control, on the database thread */
    int (*begin)(store_t *s);
    int (*commit)(store_t *s);
    void (*rollback)(store_t *s);
    int (*savepoint)(store_t *s);
    void (*release)(store_t *s);
    void (*rollback_to)(store_t *s);
    /* units' statements; tx is the running transaction */
    int (*schema_version)(store_tx_t *tx, int *out);
    int (*probe_write)(store_tx_t *tx);
    int (*job_insert)(store_tx_t *tx, job_t *j, bool *existed);
    int (*job_claim)(store_tx_t *tx, const char *type, int limit, int64_t now, int64_t lease_until,
                     const char *owner, job_t *out, int *n);
    int (*job_finish)(store_tx_t *tx, const job_t *j); /* guarded transition out of running */
    int (*job_renew)(store_tx_t *tx, const char *id, const char *token, int64_t until,
                     double progress);
    int (*job_get)(store_tx_t *tx, const char *id, job_t *out);
    int (*job_list)(store_tx_t *tx, const struct job_filter *f, job_t *out, int *n);
    int (*job_cancel)(store_tx_t *tx, const char *id, int64_t now);
    int (*job_replay)(store_tx_t *tx, const char *id, int64_t now);
    int (*job_resolve)(store_tx_t *tx, const char *id, int64_t now, int64_t *resolved_at);
    int (*job_rescue)(store_tx_t *tx, int64_t now, const char *owner_prefix,
                      bool (*dead_owner)(const char *), job_t *out, int *n);
    int (*job_purge)(store_tx_t *tx, int64_t finished_before, int *deleted);
    int (*job_counts)(store_tx_t *tx, int64_t now, struct queue_counts *c);
    int (*test_effect)(store_tx_t *tx, const char *job_id, int64_t now);
    int (*audit)(store_tx_t *tx, const char *actor, const char *action, const char *target,
                 const char *detail);
    /* runs. run_get with for_update locks the row for the rest of the transaction (Postgres:
     * SELECT ... FOR UPDATE; SQLite's write transaction already is exclusive): read-modify-
     * write of a run happens under it. ERR_NOTFOUND when absent. */
    int (*run_insert)(store_tx_t *tx, const run_t *r);
    int (*run_get)(store_tx_t *tx, const char *id, bool for_update, run_t *out);
    /* Writes status, step, artifacts, context, error, clips_*, public_* and updated_at, guarded
     * by the status the caller read: ERR_CONFLICT when the run's status is no longer
     * expect_status (someone else moved it), ERR_NOTFOUND when the run is gone. */
    int (*run_update)(store_tx_t *tx, const run_t *r, const char *expect_status);
    /* Newest first (created_at, id); out holds at most *n, *n gets the count. */
    int (*run_list)(store_tx_t *tx, const struct run_filter *f, run_t *out, int *n);
    int (*run_count_since)(store_tx_t *tx, int64_t since, int64_t *count);
    /* Runs in one of the statuses (NULL-terminated) not updated since before; oldest first. */
    int (*run_stale)(store_tx_t *tx, const char *const *statuses, int64_t before, run_t *out,
                     int *n);
    int (*run_by_token)(store_tx_t *tx, const char *token, run_t *out);
    /* run events: e->id is set; listing is by id, after after_id (oldest first) or newest first */
    int (*run_event_add)(store_tx_t *tx, run_event_t *e);
    int (*run_event_list)(store_tx_t *tx, const char *run_id, int64_t after_id, bool newest_first,
                          run_event_t *out, int *n);
    /* artifacts: a->id and created_at set by the caller; *existed (nothing written) when the
     * run already has an artifact with a->dedupe. Listing is oldest first; type NULL: any. */
    int (*artifact_add)(store_tx_t *tx, const artifact_t *a, bool *existed);
    int (*artifact_list)(store_tx_t *tx, const char *run_id, const char *type, artifact_t *out,
                         int *n);
    int (*artifact_count)(store_tx_t *tx, const char *run_id, const char *type, int *count);
    /* provider tasks: ERR_CONFLICT when (provider, task_id) is taken */
    int (*task_add)(store_tx_t *tx, const char *provider, const char *task_id, const char *run_id,
                    int video_index);
    int (*task_find)(store_tx_t *tx, const char *provider, const char *task_id,
                     char run_id[RUN_ID_LEN], int *video_index);
    /* webhook inbox: *duplicate (nothing written) when (provider, delivery_id) was seen before;
     * w->id is set otherwise. inbox_early lists the 'early' deliveries for a task received at or
     * after since, oldest first. inbox_set changes status (and run_id when not NULL). */
    int (*inbox_add)(store_tx_t *tx, inbox_item_t *w, bool *duplicate);
    int (*inbox_early)(store_tx_t *tx, const char *provider, const char *task_id, int64_t since,
                       inbox_item_t *out, int *n);
    int (*inbox_set)(store_tx_t *tx, int64_t id, const char *status, const char *run_id);
    /* Idempotency keys: idem_begin claims (scope, key) for a request with this hash (an expired
     * row counts as absent); IDEM_NEW means the caller must idem_finish (same transaction or a
     * later one) or idem_abort. */
    int (*idem_begin)(store_tx_t *tx, const char *scope, const char *key, const char *hash,
                      int64_t now, int64_t ttl_ms, struct idem_result *out);
    int (*idem_finish)(store_tx_t *tx, const char *scope, const char *key, int status,
                       const char *body);
    int (*idem_abort)(store_tx_t *tx, const char *scope, const char *key);
    /* feedback: listing newest first */
    int (*feedback_add)(store_tx_t *tx, const feedback_t *f);
    int (*feedback_list)(store_tx_t *tx, const char *run_id, feedback_t *out, int *n);
    /* store_watch_jobs / store_unwatch_jobs; NULL: the backend has no notifications */
    int (*watch)(store_t *s, uv_loop_t *loop, void (*cb)(void *ud, const char *type), void *ud);
    void (*unwatch)(store_t *s);
};

struct store_thread;

struct store {
    const struct store_ops *ops;
    struct store_thread *th;
};

struct store_tx {
    store_t *s;
};

/* Opens the database named by DATABASE_URL (does not migrate) and starts its thread. */
int store_open(const config_t *cfg, store_t **out, buf_t *err);
/* A second store on the same database for read-only units (their own thread and connection),
 * so that a long read never holds the writer's thread up. ERR_NOTSUP when the backend has none
 * (Postgres, an in-memory SQLite database): use the main store. Writes through it fail. */
int store_open_reader(const config_t *cfg, store_t **out, buf_t *err);
/* Applies every pending migration in one transaction; *from and *to get the versions. */
int store_migrate(store_t *s, int *from, int *to, buf_t *err);
const char *store_backend(const store_t *s);
/* Stops the database thread after the units already given to it, then closes. */
void store_close(store_t *s);

/* Routes store_submit() completions to loop (uv_async). Loop thread; once, before submitting. */
int store_attach_loop(store_t *s, uv_loop_t *loop);
/* Closes the async handle; call on the loop thread when no submission is pending. */
void store_detach_loop(store_t *s);
/* Queues fn(tx, arg); done(arg, rc) runs on the attached loop after the commit. Loop thread. */
void store_submit(store_t *s, store_fn fn, void *arg, store_done done);
/* Submitted units whose completion has not run yet. Loop thread. */
int store_pending(const store_t *s);
/* Calls cb(ud) on the loop once store_pending() drops to 0 (once). Loop thread. */
void store_when_idle(store_t *s, void (*cb)(void *), void *ud);
/* Runs fn(tx, arg) on the database thread and waits. Any thread but the loop's. */
int store_call(store_t *s, store_fn fn, void *arg);

/* Calls cb(ud, type) on the loop when jobs of type were enqueued (or made ready again) by any
 * process, this one included, on backends that notify (Postgres: LISTEN/NOTIFY on a second
 * connection driven by the loop without blocking; it reconnects by itself). Other processes'
 * dispatchers start at once instead of at their next poll. type NULL: any type (the watcher
 * (re)started listening; what was enqueued before is not notified). Returns 0, or ERR_INVAL when
 * the backend does not notify (SQLite: polling). Loop thread. */
int store_watch_jobs(store_t *s, uv_loop_t *loop, void (*cb)(void *ud, const char *type), void *ud);
/* Stops the notifications and closes their handles (the loop can end). Loop thread. */
void store_unwatch_jobs(store_t *s);

/* Runs fn(tx, arg) inside a unit, in a nested savepoint: when it fails, its writes alone are
 * rolled back and the unit goes on (batched units that hold many independent items). Returns
 * fn's result, or ERR_DB when the savepoint could not be taken. Database thread. */
int store_nested(store_tx_t *tx, store_fn fn, void *arg);

/*
 * Writes a consistent copy of the database named by DATABASE_URL to dest, which must not exist,
 * while other processes (a running server) keep reading and writing it: SQLite's online backup
 * API copies one snapshot. The copy is written to a temporary name next to dest, checked
 * (integrity_check), made durable and renamed into place: dest is either whole or absent.
 * Needs no open store and starts no thread. Returns 0 (info filled) or ERR_INVAL (no backup for
 * this backend), ERR_CONFLICT (dest exists), ERR_DB or ERR_IO, with the reason in err.
 */
int store_backup(const config_t *cfg, const char *dest, struct store_backup_info *info, buf_t *err);

/* Convenience unit (blocking) used by commands. */
int store_schema_version(store_t *s, int *out);

/* The migrations in schema.sql. Pure. */
struct migration {
    int version;
    char description[128];
    const char *sql; /* points into the embedded schema */
    size_t len;
};
int store_migrations(struct migration *out, int max);
/* The same for another backend's schema text (schema_pg.sql). Pure. */
int store_migrations_in(const char *schema, struct migration *out, int max);

#endif
