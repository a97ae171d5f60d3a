/*
 * store_sqlite: the SQLite backend. WAL, busy_timeout, foreign keys, synchronous from DB_SYNC,
 * BEGIN IMMEDIATE for the group transactions. Only the database thread (db/store.c) uses the
 * connection, so it is opened without SQLite's own mutex. Hot statements are prepared once
 * and kept (keyed by their SQL text's address).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "db/store.h"
#include "db/store_sqlite.h"

#define MAX_MIGRATIONS 256
#define CACHE_MAX 96

/* The checkpointer (see "the checkpointer" below). mu guards everything but tid and db. */
struct ckpt {
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the checkpointer waits here */
    pthread_cond_t done_cv; /* a writer past hard_frames waits here for a pass to end */
    sqlite3 *db;            /* the checkpointer's own connection */
    bool stop, want, in_pass, tail_done, tail_partial, idle_done;
    int wal_frames; /* frames in the WAL after the writer's last commit */
    int backfilled; /* of those, copied into the database file (as last known) */
    int64_t last_commit_ms;
    struct sqlite_wal_stats stats;
};

struct sqlite_store {
    store_t base;
    sqlite3 *db;
    char *path;
    bool reader; /* sq_open_reader: read-only work beside the writer (its transactions defer) */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[CACHE_MAX];
    int ncache;
    struct ckpt ck;
};

#define S(st) ((struct sqlite_store *)(st))
#define TXDB(tx) (S((tx)->s))

/* ---- helpers ----------------------------------------------------------------------------------
 */

static int make_parent_dirs(const char *path, buf_t *err) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0750) != 0 && errno != EEXIST)
                rc = ERR_IO;
            *p = '/';
        }
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            rc = ERR_IO;
        if (rc)
            buf_printf(err, "cannot create directory '%s': %s", dir, strerror(errno));
    }
    free(dir);
    return rc;
}

static int exec(sqlite3 *db, const char *sql, buf_t *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err)
            buf_printf(err, "%s", msg ? msg : sqlite3_errmsg(db));
        else
            log_error("db", "statement failed", LF_S("error", msg ? msg : sqlite3_errmsg(db)));
        sqlite3_free(msg);
        return ERR_DB;
    }
    return 0;
}

/* A prepared statement for a static SQL text, reset and ready to bind. */
static sqlite3_stmt *prep(struct sqlite_store *s, const char *sql) {
    for (int i = 0; i < s->ncache; i++)
        if (s->cache[i].sql == sql)
            return s->cache[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("db", "cannot prepare a statement", LF_S("error", sqlite3_errmsg(s->db)));
        return NULL;
    }
    if (s->ncache < CACHE_MAX) {
        s->cache[s->ncache].sql = sql;
        s->cache[s->ncache].st = st;
        s->ncache++;
    }
    return st;
}

static void done_stmt(struct sqlite_store *s, sqlite3_stmt *st) {
    bool cached = false;
    for (int i = 0; i < s->ncache; i++)
        cached |= s->cache[i].st == st;
    if (cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
}

static int step_done(struct sqlite_store *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("db", "statement failed", LF_S("error", sqlite3_errmsg(s->db)));
        done_stmt(s, st);
        return rc == SQLITE_CONSTRAINT ? ERR_CONFLICT : ERR_DB;
    }
    done_stmt(s, st);
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_ms_or_null(sqlite3_stmt *st, int i, int64_t v) {
    if (v)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

#define JOB_COLS                                                                                   \
    "id, type, run_id, payload, state, priority, attempts, max_attempts, run_at, lease_owner, "    \
    "lease_token, lease_expires_at, progress, last_error, result_url, idempotency_key, "           \
    "created_at, updated_at, finished_at, resolved_at"

static void read_job(sqlite3_stmt *st, job_t *j) {
    memset(j, 0, sizeof *j);
    col_copy(st, 0, j->id, sizeof j->id);
    col_copy(st, 1, j->type, sizeof j->type);
    col_copy(st, 2, j->run_id, sizeof j->run_id);
    j->payload = col_dup(st, 3);
    if (!j->payload)
        j->payload = xstrdup("{}");
    int state = job_state_parse((const char *)sqlite3_column_text(st, 4));
    j->state = state < 0 ? JOB_DEAD : (enum job_state)state;
    j->priority = sqlite3_column_int(st, 5);
    j->attempts = sqlite3_column_int(st, 6);
    j->max_attempts = sqlite3_column_int(st, 7);
    j->run_at = sqlite3_column_int64(st, 8);
    col_copy(st, 9, j->lease_owner, sizeof j->lease_owner);
    col_copy(st, 10, j->lease_token, sizeof j->lease_token);
    j->lease_expires_at = sqlite3_column_int64(st, 11);
    j->progress = sqlite3_column_type(st, 12) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 12);
    j->last_error = col_dup(st, 13);
    j->result_url = col_dup(st, 14);
    j->idempotency_key = col_dup(st, 15);
    j->created_at = sqlite3_column_int64(st, 16);
    j->updated_at = sqlite3_column_int64(st, 17);
    j->finished_at = sqlite3_column_int64(st, 18);
    j->resolved_at = sqlite3_column_int64(st, 19);
}

/* ---- transactions -----------------------------------------------------------------------------
 */

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_SAVEPOINT[] = "SAVEPOINT unit";
static const char SQL_RELEASE[] = "RELEASE unit";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO unit";

static int run_cached(store_t *st, const char *sql) {
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q = prep(s, sql);
    if (!q)
        return ERR_DB;
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        log_error("db", "transaction control failed", LF_S("sql", sql),
                  LF_S("error", sqlite3_errmsg(s->db)));
    }
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : (rc == SQLITE_BUSY ? ERR_BUSY : ERR_DB);
}

static int sq_begin(store_t *s) { return run_cached(s, S(s)->reader ? "BEGIN" : SQL_BEGIN); }
static int sq_commit(store_t *s) { return run_cached(s, SQL_COMMIT); }
static void sq_rollback(store_t *s) {
    if (!sqlite3_get_autocommit(S(s)->db))
        sqlite3_exec(S(s)->db, "ROLLBACK", NULL, NULL, NULL);
}
static int sq_savepoint(store_t *s) { return run_cached(s, SQL_SAVEPOINT); }
static void sq_release(store_t *s) { run_cached(s, SQL_RELEASE); }
static void sq_rollback_to(store_t *s) { run_cached(s, SQL_ROLLBACK_TO); }

/* ---- schema -----------------------------------------------------------------------------------
 */

static int current_version(sqlite3 *db, int *out) {
    sqlite3_stmt *st = NULL;
    int rc = ERR_DB, v = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    int exists = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (exists) {
        if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                               NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
            goto out;
        v = sqlite3_column_int(st, 0);
    }
    *out = v;
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

static int sq_schema_version(store_tx_t *tx, int *out) {
    return current_version(TXDB(tx)->db, out);
}

/* Runs inside the group transaction (one transaction for every pending migration). */
static int sq_migrate(store_t *st, int *from, int *to, buf_t *err) {
    struct sqlite_store *s = S(st);
    static struct migration ms[MAX_MIGRATIONS];
    int n = store_migrations(ms, MAX_MIGRATIONS);
    int latest = n ? ms[n - 1].version : 0;
    int cur = 0;
    if (current_version(s->db, &cur) != 0) {
        buf_printf(err, "cannot read the schema version: %s", sqlite3_errmsg(s->db));
        return ERR_DB;
    }
    if (cur > latest) {
        buf_printf(err,
                   "database schema version %d is newer than this binary's (%d): upgrade myloware",
                   cur, latest);
        return ERR_SCHEMA;
    }
    for (int i = 0; i < n; i++) {
        if (ms[i].version <= cur)
            continue;
        char *sql = xstrndup(ms[i].sql, ms[i].len);
        int rc = exec(s->db, sql, err);
        free(sql);
        if (rc) {
            buf_printf(err, " (migration %d)", ms[i].version);
            return rc;
        }
        sqlite3_stmt *ins = NULL;
        char ts[CLOCK_ISO_LEN];
        clock_iso8601(clock_now_ms(), ts);
        if (sqlite3_prepare_v2(
                s->db,
                "INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)", -1,
                &ins, NULL) != SQLITE_OK) {
            buf_printf(err, "%s", sqlite3_errmsg(s->db));
            return ERR_DB;
        }
        sqlite3_bind_int(ins, 1, ms[i].version);
        sqlite3_bind_text(ins, 2, ms[i].description, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 3, ts, -1, SQLITE_TRANSIENT);
        int step = sqlite3_step(ins);
        sqlite3_finalize(ins);
        if (step != SQLITE_DONE) {
            buf_printf(err, "%s", sqlite3_errmsg(s->db));
            return ERR_DB;
        }
    }
    *from = cur;
    *to = cur > latest ? cur : latest;
    return 0;
}

static const char SQL_PROBE[] =
    "INSERT INTO health_probe(id, at, pid) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET at = excluded.at, pid = excluded.pid";

static int sq_probe_write(store_tx_t *tx) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_PROBE);
    if (!q)
        return ERR_DB;
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), ts);
    sqlite3_bind_text(q, 1, ts, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, (int)getpid());
    return step_done(s, q);
}

/* ---- jobs -------------------------------------------------------------------------------------
 */

static const char SQL_JOB_BY_KEY[] =
    "SELECT " JOB_COLS " FROM jobs WHERE type = ? AND idempotency_key = ? "
    "AND state IN ('queued', 'running')";
static const char SQL_JOB_INSERT[] =
    "INSERT INTO jobs (id, type, run_id, payload, state, priority, attempts, max_attempts, run_at, "
    "idempotency_key, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?)";

static int sq_job_insert(store_tx_t *tx, job_t *j, bool *existed) {
    struct sqlite_store *s = TXDB(tx);
    *existed = false;
    if (j->idempotency_key) {
        sqlite3_stmt *q = prep(s, SQL_JOB_BY_KEY);
        if (!q)
            return ERR_DB;
        sqlite3_bind_text(q, 1, j->type, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, j->idempotency_key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(q) == SQLITE_ROW) {
            job_t found;
            read_job(q, &found);
            done_stmt(s, q);
            job_release(j);
            *j = found;
            *existed = true;
            return 0;
        }
        done_stmt(s, q);
    }
    sqlite3_stmt *q = prep(s, SQL_JOB_INSERT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, j->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, j->type, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 3, j->run_id);
    sqlite3_bind_text(q, 4, j->payload ? j->payload : "{}", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 5, j->priority);
    sqlite3_bind_int(q, 6, j->max_attempts);
    sqlite3_bind_int64(q, 7, j->run_at);
    bind_text_or_null(q, 8, j->idempotency_key);
    sqlite3_bind_int64(q, 9, j->created_at);
    sqlite3_bind_int64(q, 10, j->updated_at);
    return step_done(s, q);
}

/* Ties broken by rowid: insertion order (ids are random), and the tail of every index, so the
 * ready index gives the order without a sort. */
static const char SQL_JOB_CLAIM[] =
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, "
    "lease_token = lower(hex(randomblob(16))), lease_owner = ?1, lease_expires_at = ?2, updated_at "
    "= ?3 "
    "WHERE rowid IN (SELECT rowid FROM jobs WHERE state = 'queued' AND type = ?4 AND run_at <= ?3 "
    "ORDER BY priority DESC, run_at, rowid LIMIT ?5) RETURNING " JOB_COLS;

static int sq_job_claim(store_tx_t *tx, const char *type, int limit, int64_t now,
                        int64_t lease_until, const char *owner, job_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_CLAIM);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, lease_until);
    sqlite3_bind_int64(q, 3, now);
    sqlite3_bind_text(q, 4, type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 5, limit);
    int k = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && k < limit)
        read_job(q, &out[k++]);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("db", "claim failed", LF_S("error", sqlite3_errmsg(s->db)));
        done_stmt(s, q);
        for (int i = 0; i < k; i++)
            job_release(&out[i]);
        return ERR_DB;
    }
    done_stmt(s, q);
    *n = k;
    return 0;
}

static const char SQL_JOB_FINISH[] =
    "UPDATE jobs SET state = ?1, attempts = ?2, run_at = ?3, last_error = coalesce(?4, "
    "last_error), "
    "result_url = coalesce(?5, result_url), finished_at = ?6, updated_at = ?7, "
    "progress = coalesce(?8, progress), lease_token = NULL, lease_owner = NULL, lease_expires_at = "
    "NULL, "
    "resolved_at = CASE WHEN ?1 = 'dead' THEN NULL ELSE resolved_at END WHERE id = ?9 AND state = "
    "'running' AND lease_token = ?10";

static int sq_job_finish(store_tx_t *tx, const job_t *j) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_FINISH);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, job_state_name(j->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, j->attempts);
    sqlite3_bind_int64(q, 3, j->run_at);
    bind_text_or_null(q, 4, j->last_error);
    bind_text_or_null(q, 5, j->result_url);
    bind_ms_or_null(q, 6, j->finished_at);
    sqlite3_bind_int64(q, 7, j->updated_at);
    if (j->progress >= 0)
        sqlite3_bind_double(q, 8, j->progress);
    else
        sqlite3_bind_null(q, 8);
    sqlite3_bind_text(q, 9, j->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 10, j->lease_token, -1, SQLITE_TRANSIENT);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : ERR_CONFLICT;
}

static const char SQL_JOB_RENEW[] =
    "UPDATE jobs SET lease_expires_at = ?1, progress = CASE WHEN ?2 >= 0 THEN ?2 ELSE progress "
    "END, "
    "updated_at = ?3 WHERE id = ?4 AND state = 'running' AND lease_token = ?5";

static int sq_job_renew(store_tx_t *tx, const char *id, const char *token, int64_t until,
                        double progress) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_RENEW);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, until);
    sqlite3_bind_double(q, 2, progress);
    sqlite3_bind_int64(q, 3, clock_now_ms());
    sqlite3_bind_text(q, 4, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, token, -1, SQLITE_TRANSIENT);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : ERR_CONFLICT;
}

static const char SQL_JOB_GET[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?";

static int sq_job_get(store_tx_t *tx, const char *id, job_t *out) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_GET);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_job(q, out);
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

static int sq_job_list(store_tx_t *tx, const struct job_filter *f, job_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    buf_t sql;
    buf_init(&sql, 4096);
    buf_puts(&sql, "SELECT " JOB_COLS " FROM jobs WHERE 1");
    if (f->dead_letters)
        buf_puts(&sql, f->dead_unresolved_only
                           ? " AND state = 'dead' AND resolved_at IS NULL"
                           : " AND (state = 'dead' OR resolved_at IS NOT NULL)");
    else if (f->state >= 0)
        buf_puts(&sql, " AND state = ?1");
    if (f->type)
        buf_puts(&sql,
                 f->dead_letters ? " AND (type = ?2 OR type LIKE ?2 || '.%')" : " AND type = ?2");
    if (f->run_id)
        buf_puts(&sql, " AND run_id = ?3");
    buf_puts(&sql, f->dead_letters
                       ? " ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT ?4"
                       : " ORDER BY created_at DESC, id DESC LIMIT ?4");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL) != SQLITE_OK) {
        log_error("db", "cannot prepare a listing", LF_S("error", sqlite3_errmsg(s->db)));
        buf_release(&sql);
        return ERR_DB;
    }
    buf_release(&sql);
    if (!f->dead_letters && f->state >= 0)
        sqlite3_bind_text(q, 1, job_state_name((enum job_state)f->state), -1, SQLITE_STATIC);
    if (f->type)
        sqlite3_bind_text(q, 2, f->type, -1, SQLITE_TRANSIENT);
    if (f->run_id)
        sqlite3_bind_text(q, 3, f->run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 4, f->limit);
    int k = 0, rc;
    while (k < f->limit && (rc = sqlite3_step(q)) == SQLITE_ROW)
        read_job(q, &out[k++]);
    sqlite3_finalize(q);
    *n = k;
    return 0;
}

static const char SQL_JOB_CANCEL[] =
    "UPDATE jobs SET state = 'cancelled', finished_at = ?1, updated_at = ?1, "
    "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = ?2 AND state IN ('queued', 'running')";
static const char SQL_JOB_EXISTS[] = "SELECT state, resolved_at FROM jobs WHERE id = ?";

/* 0 when absent; else 1, with the state and resolved_at. */
static int job_exists(struct sqlite_store *s, const char *id, char *state, size_t cap,
                      int64_t *resolved_at) {
    sqlite3_stmt *q = prep(s, SQL_JOB_EXISTS);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(q) == SQLITE_ROW;
    if (found) {
        col_copy(q, 0, state, cap);
        *resolved_at = sqlite3_column_int64(q, 1);
    }
    done_stmt(s, q);
    return found;
}

/* Runs an UPDATE bound as (?1 now, ?2 id); *changed gets the rows it changed. */
static int update_now_id(struct sqlite_store *s, const char *sql, int64_t now, const char *id,
                         int *changed) {
    sqlite3_stmt *q = prep(s, sql);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_TRANSIENT);
    int rc = step_done(s, q);
    *changed = rc ? 0 : sqlite3_changes(s->db);
    return rc;
}

static int sq_job_cancel(store_tx_t *tx, const char *id, int64_t now) {
    struct sqlite_store *s = TXDB(tx);
    int changed, rc = update_now_id(s, SQL_JOB_CANCEL, now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1)
        return 0;
    char st[16];
    int64_t r;
    return job_exists(s, id, st, sizeof st, &r) == 1 ? ERR_CONFLICT : ERR_NOTFOUND;
}

static const char SQL_JOB_REPLAY[] =
    "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?1, resolved_at = ?1, finished_at = "
    "NULL, "
    "updated_at = ?1 WHERE id = ?2 AND state = 'dead' AND resolved_at IS NULL";

static int sq_job_replay(store_tx_t *tx, const char *id, int64_t now) {
    struct sqlite_store *s = TXDB(tx);
    int changed, rc = update_now_id(s, SQL_JOB_REPLAY, now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1)
        return 0;
    char st[16];
    int64_t resolved = 0;
    int found = job_exists(s, id, st, sizeof st, &resolved);
    return found == 1 && resolved ? ERR_CONFLICT : ERR_NOTFOUND;
}

static const char SQL_JOB_RESOLVE[] = "UPDATE jobs SET resolved_at = ?1, updated_at = ?1 WHERE id "
                                      "= ?2 AND state = 'dead' AND resolved_at IS NULL";

static int sq_job_resolve(store_tx_t *tx, const char *id, int64_t now, int64_t *resolved_at) {
    struct sqlite_store *s = TXDB(tx);
    int changed, rc = update_now_id(s, SQL_JOB_RESOLVE, now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1) {
        *resolved_at = now;
        return 0;
    }
    char st[16];
    int64_t resolved = 0;
    int found = job_exists(s, id, st, sizeof st, &resolved);
    if (found == 1 && resolved) {
        *resolved_at = resolved;
        return ERR_CONFLICT; /* already resolved */
    }
    return ERR_NOTFOUND;
}

static const char SQL_JOB_RESCUE_EXPIRED[] =
    "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, "
    "run_at = ?1, last_error = 'lease expired: the worker was lost', lease_token = NULL, "
    "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1, "
    "finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END, resolved_at = NULL "
    "WHERE state = 'running' AND lease_expires_at < ?1 RETURNING " JOB_COLS;
static const char SQL_JOB_RESCUE_OWNER[] =
    "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, "
    "run_at = ?1, last_error = 'the worker process died', lease_token = NULL, "
    "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1, "
    "finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END, resolved_at = NULL "
    "WHERE state = 'running' AND lease_owner = ?2 RETURNING " JOB_COLS;
static const char SQL_JOB_OWNERS[] = "SELECT DISTINCT lease_owner FROM jobs WHERE state = "
                                     "'running' AND substr(lease_owner, 1, length(?1)) = ?1";

static int collect(struct sqlite_store *s, sqlite3_stmt *q, job_t *out, int *k, int max) {
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*k < max)
            read_job(q, &out[(*k)++]);
    }
    done_stmt(s, q);
    return rc == SQLITE_DONE ? 0 : ERR_DB;
}

static int sq_job_rescue(store_tx_t *tx, int64_t now, const char *owner_prefix,
                         bool (*dead_owner)(const char *), job_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    int max = *n, k = 0, rc = 0;
    if (owner_prefix && dead_owner) {
        sqlite3_stmt *q = prep(s, SQL_JOB_OWNERS);
        if (!q)
            return ERR_DB;
        sqlite3_bind_text(q, 1, owner_prefix, -1, SQLITE_TRANSIENT);
        char owners[32][128];
        int no = 0;
        while (sqlite3_step(q) == SQLITE_ROW && no < 32)
            col_copy(q, 0, owners[no++], sizeof owners[0]);
        done_stmt(s, q);
        for (int i = 0; i < no && rc == 0; i++) {
            if (!dead_owner(owners[i]))
                continue;
            sqlite3_stmt *u = prep(s, SQL_JOB_RESCUE_OWNER);
            if (!u)
                return ERR_DB;
            sqlite3_bind_int64(u, 1, now);
            sqlite3_bind_text(u, 2, owners[i], -1, SQLITE_TRANSIENT);
            rc = collect(s, u, out, &k, max);
        }
    }
    sqlite3_stmt *q = prep(s, SQL_JOB_RESCUE_EXPIRED);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, now);
    if (rc == 0)
        rc = collect(s, q, out, &k, max);
    else
        done_stmt(s, q);
    *n = k;
    return rc;
}

static const char SQL_JOB_PURGE[] =
    "DELETE FROM jobs WHERE (state IN ('succeeded', 'cancelled') AND finished_at < ?1) "
    "OR (state = 'dead' AND resolved_at IS NOT NULL AND resolved_at < ?1)";

static int sq_job_purge(store_tx_t *tx, int64_t before, int *deleted) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_PURGE);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, before);
    int rc = step_done(s, q);
    *deleted = rc ? 0 : sqlite3_changes(s->db);
    return rc;
}

static const char SQL_JOB_COUNTS[] =
    "SELECT coalesce(sum(state = 'queued' AND run_at <= ?1), 0), coalesce(sum(state = 'queued' AND "
    "run_at > ?1), 0), "
    "coalesce(sum(state = 'running'), 0), coalesce(sum(state = 'dead' AND resolved_at IS NULL), "
    "0), "
    "min(CASE WHEN state = 'queued' AND run_at <= ?1 THEN run_at END) "
    "FROM jobs WHERE state IN ('queued', 'running', 'dead')";

static int sq_job_counts(store_tx_t *tx, int64_t now, struct queue_counts *c) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_JOB_COUNTS);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, now);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        c->ready = sqlite3_column_int64(q, 0);
        c->scheduled = sqlite3_column_int64(q, 1);
        c->running = sqlite3_column_int64(q, 2);
        c->dead = sqlite3_column_int64(q, 3);
        c->oldest_ready_age_s = sqlite3_column_type(q, 4) == SQLITE_NULL
                                    ? 0
                                    : (double)(now - sqlite3_column_int64(q, 4)) / 1000.0;
    }
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : ERR_DB;
}

static const char SQL_TEST_EFFECT[] = "INSERT INTO test_effects (job_id, at) VALUES (?, ?)";

static int sq_test_effect(store_tx_t *tx, const char *job_id, int64_t now) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_TEST_EFFECT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, job_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, now);
    return step_done(s, q);
}

static const char SQL_AUDIT[] =
    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)";

static int sq_audit(store_tx_t *tx, const char *actor, const char *action, const char *target,
                    const char *detail) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_AUDIT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, clock_now_ms());
    sqlite3_bind_text(q, 2, actor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, action, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, target, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 5, detail);
    return step_done(s, q);
}

/* ---- runs ---------------------------------------------------------------------------------------
 */

#define RUN_COLS                                                                                   \
    "id, workflow, status, current_step, brief, user_id, telegram_chat_id, artifacts, context, "   \
    "error, "                                                                                      \
    "clips_expected, clips_ready, public_token, public_expires_at, created_at, updated_at"

static void read_run(sqlite3_stmt *st, run_t *r) {
    memset(r, 0, sizeof *r);
    col_copy(st, 0, r->id, sizeof r->id);
    col_copy(st, 1, r->workflow, sizeof r->workflow);
    col_copy(st, 2, r->status, sizeof r->status);
    col_copy(st, 3, r->step, sizeof r->step);
    r->brief = col_dup(st, 4);
    if (!r->brief)
        r->brief = xstrdup("");
    r->user_id = col_dup(st, 5);
    r->telegram_chat_id = col_dup(st, 6);
    r->artifacts = col_dup(st, 7);
    r->context = col_dup(st, 8);
    r->error = col_dup(st, 9);
    r->clips_expected = sqlite3_column_int(st, 10);
    r->clips_ready = sqlite3_column_int(st, 11);
    r->public_token = col_dup(st, 12);
    r->public_expires_at = sqlite3_column_int64(st, 13);
    r->created_at = sqlite3_column_int64(st, 14);
    r->updated_at = sqlite3_column_int64(st, 15);
}

static const char SQL_RUN_INSERT[] =
    "INSERT INTO runs (" RUN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
    "coalesce(?8, '{}'), coalesce(?9, '{}'), ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

static int sq_run_insert(store_tx_t *tx, const run_t *r) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_RUN_INSERT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, r->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, r->workflow, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, r->status, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 4, r->step);
    sqlite3_bind_text(q, 5, r->brief ? r->brief : "", -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 6, r->user_id);
    bind_text_or_null(q, 7, r->telegram_chat_id);
    bind_text_or_null(q, 8, r->artifacts);
    bind_text_or_null(q, 9, r->context);
    bind_text_or_null(q, 10, r->error);
    sqlite3_bind_int(q, 11, r->clips_expected);
    sqlite3_bind_int(q, 12, r->clips_ready);
    bind_text_or_null(q, 13, r->public_token);
    bind_ms_or_null(q, 14, r->public_expires_at);
    sqlite3_bind_int64(q, 15, r->created_at);
    sqlite3_bind_int64(q, 16, r->updated_at);
    return step_done(s, q);
}

static const char SQL_RUN_GET[] = "SELECT " RUN_COLS " FROM runs WHERE id = ?";

static int one_run(struct sqlite_store *s, sqlite3_stmt *q, run_t *out) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_run(q, out);
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

static int sq_run_get(store_tx_t *tx, const char *id, bool for_update, run_t *out) {
    /* for_update: the group's BEGIN IMMEDIATE already holds SQLite's write lock */
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_RUN_GET);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    return one_run(s, q, out);
}

static const char SQL_RUN_BY_TOKEN[] = "SELECT " RUN_COLS " FROM runs WHERE public_token = ?";

static int sq_run_by_token(store_tx_t *tx, const char *token, run_t *out) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_RUN_BY_TOKEN);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, token, -1, SQLITE_TRANSIENT);
    return one_run(s, q, out);
}

static const char SQL_RUN_UPDATE[] = "UPDATE runs SET status = ?1, current_step = ?2, artifacts = "
                                     "coalesce(?3, '{}'), context = coalesce(?4, '{}'), "
                                     "error = ?5, clips_expected = ?6, clips_ready = ?7, "
                                     "public_token = ?8, public_expires_at = ?9, updated_at = ?10 "
                                     "WHERE id = ?11 AND status = ?12";
static const char SQL_RUN_EXISTS[] = "SELECT 1 FROM runs WHERE id = ?";

static int sq_run_update(store_tx_t *tx, const run_t *r, const char *expect_status) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_RUN_UPDATE);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, r->status, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 2, r->step);
    bind_text_or_null(q, 3, r->artifacts);
    bind_text_or_null(q, 4, r->context);
    bind_text_or_null(q, 5, r->error);
    sqlite3_bind_int(q, 6, r->clips_expected);
    sqlite3_bind_int(q, 7, r->clips_ready);
    bind_text_or_null(q, 8, r->public_token);
    bind_ms_or_null(q, 9, r->public_expires_at);
    sqlite3_bind_int64(q, 10, r->updated_at);
    sqlite3_bind_text(q, 11, r->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 12, expect_status, -1, SQLITE_TRANSIENT);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    if (sqlite3_changes(s->db) == 1)
        return 0;
    sqlite3_stmt *e = prep(s, SQL_RUN_EXISTS);
    if (!e)
        return ERR_DB;
    sqlite3_bind_text(e, 1, r->id, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(e) == SQLITE_ROW;
    done_stmt(s, e);
    return found ? ERR_CONFLICT : ERR_NOTFOUND;
}

static int sq_run_list(store_tx_t *tx, const struct run_filter *f, run_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    buf_t sql;
    buf_init(&sql, 2048);
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE 1");
    if (f->status)
        buf_puts(&sql, " AND status = ?1");
    if (f->workflow)
        buf_puts(&sql, " AND workflow = ?2");
    if (f->before_id)
        buf_puts(&sql, " AND (created_at < ?3 OR (created_at = ?3 AND id < ?4))");
    buf_puts(&sql, " ORDER BY created_at DESC, id DESC LIMIT ?5");
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL);
    buf_release(&sql);
    if (rc != SQLITE_OK) {
        log_error("db", "cannot prepare a listing", LF_S("error", sqlite3_errmsg(s->db)));
        return ERR_DB;
    }
    if (f->status)
        sqlite3_bind_text(q, 1, f->status, -1, SQLITE_TRANSIENT);
    if (f->workflow)
        sqlite3_bind_text(q, 2, f->workflow, -1, SQLITE_TRANSIENT);
    if (f->before_id) {
        sqlite3_bind_int64(q, 3, f->before_created);
        sqlite3_bind_text(q, 4, f->before_id, -1, SQLITE_TRANSIENT);
    }
    int max = f->limit < *n ? f->limit : *n;
    sqlite3_bind_int(q, 5, max);
    int k = 0;
    while (k < max && (rc = sqlite3_step(q)) == SQLITE_ROW)
        read_run(q, &out[k++]);
    sqlite3_finalize(q);
    *n = k;
    return 0;
}

/* The run budget's count on every start, so not count(*), which steps through every index entry
 * of the last 24 h (a scan growing with the day's runs): runs are never deleted and get their
 * rowids in created_at order (created_at is read inside the inserting write transaction), so
 * the runs since are the rowids from the first of them (the lowest of its millisecond) to the
 * last: index lookups, whatever the count. */
static const char SQL_RUN_COUNT_SINCE[] =
    "SELECT coalesce((SELECT max(rowid) FROM runs) - (SELECT min(rowid) FROM runs WHERE created_at "
    "= "
    "(SELECT min(created_at) FROM runs WHERE created_at >= ?1)) + 1, 0)";

static int sq_run_count_since(store_tx_t *tx, int64_t since, int64_t *count) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_RUN_COUNT_SINCE);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, since);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int64(q, 0);
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : ERR_DB;
}

static int sq_run_stale(store_tx_t *tx, const char *const *statuses, int64_t before, run_t *out,
                        int *n) {
    struct sqlite_store *s = TXDB(tx);
    buf_t sql;
    buf_init(&sql, 2048);
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE updated_at < ?1 AND status IN (");
    int ns = 0;
    for (; statuses[ns]; ns++)
        buf_printf(&sql, "%s?%d", ns ? ", " : "", ns + 2);
    buf_puts(&sql, ns ? ") ORDER BY updated_at, id" : "NULL) ORDER BY updated_at, id");
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL);
    buf_release(&sql);
    if (rc != SQLITE_OK)
        return ERR_DB;
    sqlite3_bind_int64(q, 1, before);
    for (int i = 0; i < ns; i++)
        sqlite3_bind_text(q, i + 2, statuses[i], -1, SQLITE_TRANSIENT);
    int k = 0;
    while (k < *n && (rc = sqlite3_step(q)) == SQLITE_ROW)
        read_run(q, &out[k++]);
    sqlite3_finalize(q);
    *n = k;
    return 0;
}

/* ---- run events ---------------------------------------------------------------------------------
 */

static const char SQL_EVENT_ADD[] = "INSERT INTO run_events (run_id, kind, status, step, message, "
                                    "data, at) VALUES (?, ?, ?, ?, ?, coalesce(?, '{}'), ?)";

static int sq_run_event_add(store_tx_t *tx, run_event_t *e) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_EVENT_ADD);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, e->run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, e->kind, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 3, e->status);
    bind_text_or_null(q, 4, e->step);
    bind_text_or_null(q, 5, e->message);
    bind_text_or_null(q, 6, e->data);
    sqlite3_bind_int64(q, 7, e->at);
    int rc = step_done(s, q);
    if (rc == 0)
        e->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static const char SQL_EVENTS_ASC[] =
    "SELECT id, run_id, kind, status, step, message, data, at FROM run_events "
    "WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
static const char SQL_EVENTS_DESC[] =
    "SELECT id, run_id, kind, status, step, message, data, at FROM run_events "
    "WHERE run_id = ?1 AND id > ?2 ORDER BY id DESC LIMIT ?3";

static int sq_run_event_list(store_tx_t *tx, const char *run_id, int64_t after_id,
                             bool newest_first, run_event_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, newest_first ? SQL_EVENTS_DESC : SQL_EVENTS_ASC);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, after_id);
    sqlite3_bind_int(q, 3, *n);
    int k = 0, rc;
    while (k < *n && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        run_event_t *e = &out[k++];
        memset(e, 0, sizeof *e);
        e->id = sqlite3_column_int64(q, 0);
        col_copy(q, 1, e->run_id, sizeof e->run_id);
        col_copy(q, 2, e->kind, sizeof e->kind);
        col_copy(q, 3, e->status, sizeof e->status);
        col_copy(q, 4, e->step, sizeof e->step);
        e->message = col_dup(q, 5);
        e->data = col_dup(q, 6);
        e->at = sqlite3_column_int64(q, 7);
    }
    done_stmt(s, q);
    *n = k;
    return 0;
}

/* ---- artifacts ----------------------------------------------------------------------------------
 */

static const char SQL_ARTIFACT_BY_DEDUPE[] =
    "SELECT 1 FROM artifacts WHERE run_id = ? AND dedupe = ?";
static const char SQL_ARTIFACT_ADD[] =
    "INSERT INTO artifacts (id, run_id, type, persona, content, uri, metadata, dedupe, seq, "
    "created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, '{}'), ?8, "
    "(SELECT coalesce(max(seq), 0) + 1 FROM artifacts WHERE run_id = ?2), ?9)";

static int sq_artifact_add(store_tx_t *tx, const artifact_t *a, bool *existed) {
    struct sqlite_store *s = TXDB(tx);
    *existed = false;
    if (a->dedupe) {
        sqlite3_stmt *q = prep(s, SQL_ARTIFACT_BY_DEDUPE);
        if (!q)
            return ERR_DB;
        sqlite3_bind_text(q, 1, a->run_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, a->dedupe, -1, SQLITE_TRANSIENT);
        *existed = sqlite3_step(q) == SQLITE_ROW;
        done_stmt(s, q);
        if (*existed)
            return 0;
    }
    sqlite3_stmt *q = prep(s, SQL_ARTIFACT_ADD);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, a->run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, a->type, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 4, a->persona);
    bind_text_or_null(q, 5, a->content);
    bind_text_or_null(q, 6, a->uri);
    bind_text_or_null(q, 7, a->metadata);
    bind_text_or_null(q, 8, a->dedupe);
    sqlite3_bind_int64(q, 9, a->created_at);
    return step_done(s, q);
}

static const char SQL_ARTIFACTS_ALL[] =
    "SELECT id, run_id, type, persona, content, uri, metadata, dedupe, created_at "
    "FROM artifacts WHERE run_id = ?1 ORDER BY seq LIMIT ?3";
static const char SQL_ARTIFACTS_TYPE[] =
    "SELECT id, run_id, type, persona, content, uri, metadata, dedupe, created_at "
    "FROM artifacts WHERE run_id = ?1 AND type = ?2 ORDER BY seq LIMIT ?3";

static int sq_artifact_list(store_tx_t *tx, const char *run_id, const char *type, artifact_t *out,
                            int *n) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, type ? SQL_ARTIFACTS_TYPE : SQL_ARTIFACTS_ALL);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_TRANSIENT);
    if (type)
        sqlite3_bind_text(q, 2, type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 3, *n);
    int k = 0, rc;
    while (k < *n && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        artifact_t *a = &out[k++];
        memset(a, 0, sizeof *a);
        col_copy(q, 0, a->id, sizeof a->id);
        col_copy(q, 1, a->run_id, sizeof a->run_id);
        col_copy(q, 2, a->type, sizeof a->type);
        col_copy(q, 3, a->persona, sizeof a->persona);
        a->content = col_dup(q, 4);
        a->uri = col_dup(q, 5);
        a->metadata = col_dup(q, 6);
        a->dedupe = col_dup(q, 7);
        a->created_at = sqlite3_column_int64(q, 8);
    }
    done_stmt(s, q);
    *n = k;
    return 0;
}

static const char SQL_ARTIFACT_COUNT[] =
    "SELECT count(*) FROM artifacts WHERE run_id = ?1 AND (?2 IS NULL OR type = ?2)";

static int sq_artifact_count(store_tx_t *tx, const char *run_id, const char *type, int *count) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_ARTIFACT_COUNT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 2, type);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int(q, 0);
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : ERR_DB;
}

/* ---- provider tasks -----------------------------------------------------------------------------
 */

static const char SQL_TASK_ADD[] = "INSERT INTO run_tasks (provider, task_id, run_id, video_index, "
                                   "created_at) VALUES (?, ?, ?, ?, ?)";

static int sq_task_add(store_tx_t *tx, const char *provider, const char *task_id,
                       const char *run_id, int index) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_TASK_ADD);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, provider, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, task_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 4, index);
    sqlite3_bind_int64(q, 5, clock_now_ms());
    return step_done(s, q);
}

static const char SQL_TASK_FIND[] =
    "SELECT run_id, video_index FROM run_tasks WHERE provider = ? AND task_id = ?";

static int sq_task_find(store_tx_t *tx, const char *provider, const char *task_id,
                        char run_id[RUN_ID_LEN], int *index) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_TASK_FIND);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, provider, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, task_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        col_copy(q, 0, run_id, RUN_ID_LEN);
        *index = sqlite3_column_int(q, 1);
    }
    done_stmt(s, q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

/* ---- webhook inbox ------------------------------------------------------------------------------
 */

static const char SQL_INBOX_ADD[] =
    "INSERT INTO webhook_inbox (provider, delivery_id, event_type, task_id, run_id, payload, "
    "status, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, delivery_id) DO NOTHING";

static int sq_inbox_add(store_tx_t *tx, inbox_item_t *w, bool *duplicate) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_INBOX_ADD);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, w->provider, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, w->delivery_id, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 3, w->event_type);
    bind_text_or_null(q, 4, w->task_id);
    bind_text_or_null(q, 5, w->run_id);
    sqlite3_bind_text(q, 6, w->payload ? w->payload : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, w->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 8, w->received_at);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    *duplicate = sqlite3_changes(s->db) == 0;
    if (!*duplicate)
        w->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static const char SQL_INBOX_EARLY[] = "SELECT id, provider, delivery_id, event_type, task_id, "
                                      "run_id, payload, status, received_at FROM webhook_inbox "
                                      "WHERE provider = ?1 AND task_id = ?2 AND status = 'early' "
                                      "AND received_at >= ?3 ORDER BY received_at, id LIMIT ?4";

static int sq_inbox_early(store_tx_t *tx, const char *provider, const char *task_id, int64_t since,
                          inbox_item_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_INBOX_EARLY);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, provider, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, task_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, since);
    sqlite3_bind_int(q, 4, *n);
    int k = 0, rc;
    while (k < *n && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        inbox_item_t *w = &out[k++];
        memset(w, 0, sizeof *w);
        w->id = sqlite3_column_int64(q, 0);
        col_copy(q, 1, w->provider, sizeof w->provider);
        col_copy(q, 2, w->delivery_id, sizeof w->delivery_id);
        col_copy(q, 3, w->event_type, sizeof w->event_type);
        col_copy(q, 4, w->task_id, sizeof w->task_id);
        col_copy(q, 5, w->run_id, sizeof w->run_id);
        w->payload = col_dup(q, 6);
        col_copy(q, 7, w->status, sizeof w->status);
        w->received_at = sqlite3_column_int64(q, 8);
    }
    done_stmt(s, q);
    *n = k;
    return 0;
}

static const char SQL_INBOX_SET[] =
    "UPDATE webhook_inbox SET status = ?1, run_id = coalesce(?2, run_id), "
    "applied_at = CASE WHEN ?1 = 'applied' THEN ?3 ELSE applied_at END WHERE id = ?4";

static int sq_inbox_set(store_tx_t *tx, int64_t id, const char *status, const char *run_id) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_INBOX_SET);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, status, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 2, run_id);
    sqlite3_bind_int64(q, 3, clock_now_ms());
    sqlite3_bind_int64(q, 4, id);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : ERR_NOTFOUND;
}

/* ---- idempotency keys ---------------------------------------------------------------------------
 */

static const char SQL_IDEM_GET[] = "SELECT request_hash, status, body, expires_at FROM "
                                   "idempotency_keys WHERE scope = ? AND key = ?";
static const char SQL_IDEM_PUT[] =
    "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at, expires_at) "
    "VALUES (?1, ?2, ?3, NULL, NULL, ?4, ?5) ON CONFLICT (scope, key) DO UPDATE SET request_hash = "
    "?3, "
    "status = NULL, body = NULL, created_at = ?4, expires_at = ?5";

static int sq_idem_begin(store_tx_t *tx, const char *scope, const char *key, const char *hash,
                         int64_t now, int64_t ttl_ms, struct idem_result *out) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_IDEM_GET);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, scope, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_int64(q, 3) > now) {
        const char *h = (const char *)sqlite3_column_text(q, 0);
        if (!h || strcmp(h, hash) != 0)
            out->state = IDEM_MISMATCH;
        else if (sqlite3_column_type(q, 1) == SQLITE_NULL)
            out->state = IDEM_INFLIGHT;
        else {
            out->state = IDEM_REPLAY;
            out->status = sqlite3_column_int(q, 1);
            out->body = col_dup(q, 2);
        }
        done_stmt(s, q);
        return 0;
    }
    done_stmt(s, q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return ERR_DB;
    q = prep(s, SQL_IDEM_PUT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, scope, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, now);
    sqlite3_bind_int64(q, 5, now + ttl_ms);
    rc = step_done(s, q);
    if (rc == 0)
        out->state = IDEM_NEW;
    return rc;
}

static const char SQL_IDEM_FINISH[] =
    "UPDATE idempotency_keys SET status = ?, body = ? WHERE scope = ? AND key = ?";

static int sq_idem_finish(store_tx_t *tx, const char *scope, const char *key, int status,
                          const char *body) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_IDEM_FINISH);
    if (!q)
        return ERR_DB;
    sqlite3_bind_int(q, 1, status);
    sqlite3_bind_text(q, 2, body ? body : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, scope, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, key, -1, SQLITE_TRANSIENT);
    int rc = step_done(s, q);
    if (rc)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : ERR_NOTFOUND;
}

static const char SQL_IDEM_ABORT[] =
    "DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND status IS NULL";

static int sq_idem_abort(store_tx_t *tx, const char *scope, const char *key) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_IDEM_ABORT);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, scope, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_TRANSIENT);
    return step_done(s, q);
}

/* ---- feedback -----------------------------------------------------------------------------------
 */

static const char SQL_FEEDBACK_ADD[] = "INSERT INTO feedback (id, run_id, artifact_id, rating, "
                                       "comment, created_at) VALUES (?, ?, ?, ?, ?, ?)";

static int sq_feedback_add(store_tx_t *tx, const feedback_t *f) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_FEEDBACK_ADD);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, f->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, f->run_id, -1, SQLITE_TRANSIENT);
    bind_text_or_null(q, 3, f->artifact_id);
    sqlite3_bind_int(q, 4, f->rating);
    bind_text_or_null(q, 5, f->comment);
    sqlite3_bind_int64(q, 6, f->created_at);
    return step_done(s, q);
}

static const char SQL_FEEDBACK_LIST[] =
    "SELECT id, run_id, artifact_id, rating, comment, created_at FROM feedback "
    "WHERE run_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?";

static int sq_feedback_list(store_tx_t *tx, const char *run_id, feedback_t *out, int *n) {
    struct sqlite_store *s = TXDB(tx);
    sqlite3_stmt *q = prep(s, SQL_FEEDBACK_LIST);
    if (!q)
        return ERR_DB;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, *n);
    int k = 0, rc;
    while (k < *n && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        feedback_t *f = &out[k++];
        memset(f, 0, sizeof *f);
        col_copy(q, 0, f->id, sizeof f->id);
        col_copy(q, 1, f->run_id, sizeof f->run_id);
        col_copy(q, 2, f->artifact_id, sizeof f->artifact_id);
        f->rating = sqlite3_column_int(q, 3);
        f->comment = col_dup(q, 4);
        f->created_at = sqlite3_column_int64(q, 5);
    }
    done_stmt(s, q);
    *n = k;
    return 0;
}

/* ---- the checkpointer ---------------------------------------------------------------------------
 * SQLite's automatic checkpoint runs on the committing connection: every 1000 WAL frames the
 * database thread stopped to copy them into the database file and sync it, a stall of tens of
 * milliseconds that every request waiting behind it felt (the p99 of run starts). Here the
 * writer's WAL hook (the database thread, after each commit) wakes a checkpointer thread with
 * a connection of its own, which copies the frames with PASSIVE checkpoints: they never take
 * the write lock, the writer goes on appending meanwhile.
 *
 * The WAL starts over from its beginning only when a write transaction begins with every frame
 * copied, which steady writes never allow by themselves. So once the WAL is restart_frames
 * long, the checkpointer's passes follow each other until fewer than tail_frames are left, and
 * the writer copies those few itself (a short PASSIVE of its own, once per WAL): its next
 * transaction restarts the WAL. Bounds: past hard_frames (the checkpointer cannot keep up, or
 * a reader holds an old snapshot) the writer waits for the pass and checkpoints itself, like
 * SQLite would; after idle_ms without a commit the WAL file is truncated to zero. Durability is
 * unchanged: both connections have the same synchronous setting, and every checkpoint syncs the WAL
 * before and the database file after copying, whoever runs it.
 */

extern const struct store_ops store_sqlite_ops;

/* Process-wide; store_sqlite_wal_tune() changes them for tests. */
static struct sqlite_wal_tuning tuning = {
    .ckpt_frames = 1000,     /* frames not copied yet that start a pass */
    .restart_frames = 16000, /* a WAL this long (~62 MiB) is to start over: the writer's tail copy
                              * syncs (two device flushes, ~5 ms on a virtual disk), so the rarer
                              * the better; at 4000 it came 5 times a second under signed-webhook
                              * load and was the p99 of scripts/bench/api.sh */
    .tail_frames = 128,      /* what the writer copies itself before the restart */
    .hard_frames = 64000,    /* ~250 MiB of WAL: the writer checkpoints, whatever it costs */
    .idle_ms = 1000,         /* no commit for this long: truncate the WAL */
};

void store_sqlite_wal_tune(const struct sqlite_wal_tuning *t) { tuning = *t; }

int store_sqlite_wal_stats(store_t *st, struct sqlite_wal_stats *out) {
    memset(out, 0, sizeof *out);
    if (st->ops != &store_sqlite_ops || !S(st)->ck.started)
        return ERR_INVAL;
    struct ckpt *k = &S(st)->ck;
    pthread_mutex_lock(&k->mu);
    *out = k->stats;
    out->wal_frames = k->wal_frames;
    out->backfilled = k->backfilled;
    pthread_mutex_unlock(&k->mu);
    return 0;
}

/* A checkpoint of mode on db; *frames and *copied get the WAL's length and how much of it is
 * in the database file (-1 when unknown). */
static int checkpoint(sqlite3 *db, int mode, int *frames, int *copied) {
    int log = -1, done = -1;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, mode, &log, &done);
    *frames = log;
    *copied = done;
    return rc;
}

/* The writer's WAL hook: database thread, after every commit. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
    (void)name;
    struct ckpt *k = &S(ud)->ck;
    bool writer = false;
    pthread_mutex_lock(&k->mu);
    if (frames < k->wal_frames) { /* the WAL started over */
        k->backfilled = 0;
        k->tail_done = k->tail_partial = false;
        k->stats.restarts++;
    }
    if (frames > k->stats.max_frames)
        k->stats.max_frames = frames;
    if (k->idle_done || k->wal_frames == 0)
        pthread_cond_signal(
            &k->cv); /* the checkpointer sleeps without a deadline: arm the idle one */
    k->wal_frames = frames;
    k->last_commit_ms = clock_now_ms();
    k->idle_done = false;
    int left = frames - k->backfilled;
    if (frames >= tuning.hard_frames) {
        while (k->in_pass || k->want)
            pthread_cond_wait(&k->done_cv, &k->mu);
        writer = true;
    } else if (!k->in_pass && !k->want) {
        if (frames >= tuning.restart_frames && left <= tuning.tail_frames && !k->tail_done) {
            writer = k->tail_done = true;
        } else if (left >= tuning.ckpt_frames ||
                   (frames >= tuning.restart_frames && left > tuning.tail_frames)) {
            k->want = true;
            pthread_cond_signal(&k->cv);
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (writer) {
        int log, done;
        int rc = checkpoint(db, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        metrics_add(M_DB_CHECKPOINTS, "by=\"writer\"", 1);
        pthread_mutex_lock(&k->mu);
        k->stats.writer_checkpoints++;
        if (rc == SQLITE_OK && done >= 0)
            k->backfilled = done;
        /* a reader's snapshot stopped the copy short (the health counts on their own
         * connection): the WAL cannot start over yet; try again after the next pass */
        k->tail_partial = !(rc == SQLITE_OK && done >= 0 && done >= log);
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

/* Syncs the database file through db's own handle (fdatasync, as SQLite's NORMAL would). A
 * PASSIVE checkpoint syncs the database file only when it copied the whole WAL, which steady
 * writes never let the checkpointer do: without this, every page its passes copied stayed
 * dirty until the writer's tail copy, whose sync then wrote them all out (80 ms and more with
 * a 250 MiB WAL, every request waiting behind it). */
static void sync_db_file(sqlite3 *db) {
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f &&
        f->pMethods)
        (void)f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
}

static void *ckpt_main(void *arg) {
    struct ckpt *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        if (k->want) {
            k->want = false;
            k->in_pass = true;
            int before = k->backfilled;
            pthread_mutex_unlock(&k->mu);
            int log, done;
            int rc = checkpoint(k->db, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            bool copied = rc == SQLITE_OK && done > before;
            if (copied) /* synchronous is NORMAL or FULL, never OFF */
                sync_db_file(k->db);
            metrics_add(M_DB_CHECKPOINTS, "by=\"checkpointer\"", 1);
            pthread_mutex_lock(&k->mu);
            k->in_pass = false;
            k->stats.passes++;
            k->stats.synced_passes += copied;
            if (k->tail_partial) /* the writer may copy the tail again */
                k->tail_done = k->tail_partial = false;
            if (rc == SQLITE_OK && done >= 0 &&
                k->wal_frames >= log) /* the same WAL as when it began */
                k->backfilled = done;
            pthread_cond_broadcast(&k->done_cv);
            continue;
        }
        int64_t idle_at = k->last_commit_ms + tuning.idle_ms;
        if (!k->idle_done && k->wal_frames > 0 && clock_now_ms() >= idle_at) {
            k->idle_done = true;
            pthread_mutex_unlock(&k->mu);
            int log, done;
            /* no busy handler on this connection: a writer that began meanwhile wins (BUSY) */
            int rc = checkpoint(k->db, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
            if (rc == SQLITE_OK)
                metrics_add(M_DB_CHECKPOINTS, "by=\"idle\"", 1);
            pthread_mutex_lock(&k->mu);
            if (rc == SQLITE_OK && k->idle_done) { /* no commit since */
                k->stats.truncates++;
                k->wal_frames = 0;
                k->backfilled = 0;
                k->tail_done = false;
            }
            continue;
        }
        if (k->idle_done || k->wal_frames == 0) {
            pthread_cond_wait(&k->cv, &k->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait_ms = idle_at - clock_now_ms() + 1;
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&k->cv, &k->mu, &ts);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* Opens the checkpointer's connection and starts it; on failure SQLite's own automatic
 * checkpoint stays on (logged, not fatal). */
static void ckpt_start(struct sqlite_store *s, const char *sync) {
    struct ckpt *k = &s->ck;
    char pragmas[96];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous = %s; SELECT count(*) FROM sqlite_master;", sync);
    if (sqlite3_open_v2(s->path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        exec(k->db, pragmas, NULL) != 0)
        goto fail;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    pthread_cond_init(&k->done_cv, NULL);
    k->last_commit_ms = clock_now_ms();
    if (pthread_create(&k->tid, NULL, ckpt_main, k) != 0) {
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        pthread_cond_destroy(&k->done_cv);
        goto fail;
    }
    k->started = true;
    sqlite3_wal_hook(s->db, wal_hook, s); /* replaces SQLite's automatic checkpoint */
    return;
fail:
    log_warn("db", "no checkpointer thread: the writer checkpoints itself",
             LF_S("error", k->db ? sqlite3_errmsg(k->db) : "out of memory"));
    sqlite3_close_v2(k->db);
    k->db = NULL;
}

static void ckpt_stop(struct sqlite_store *s) {
    struct ckpt *k = &s->ck;
    if (!k->started)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->tid, NULL);
    sqlite3_close_v2(k->db);
    k->db = NULL;
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    pthread_cond_destroy(&k->done_cv);
    k->started = false;
}

/* ---- open and close ---------------------------------------------------------------------------
 */

static void sq_close(store_t *st) {
    struct sqlite_store *s = S(st);
    ckpt_stop(s);
    for (int i = 0; i < s->ncache; i++)
        sqlite3_finalize(s->cache[i].st);
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

static int sq_open(const config_t *cfg, store_t **out, buf_t *err);
static int sq_open_reader(const config_t *cfg, store_t **out, buf_t *err);
static int sq_backup(const config_t *cfg, const char *dest, struct store_backup_info *info,
                     buf_t *err);

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .open_reader = sq_open_reader,
    .migrate = sq_migrate,
    .close = sq_close,
    .backup = sq_backup,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .schema_version = sq_schema_version,
    .probe_write = sq_probe_write,
    .job_insert = sq_job_insert,
    .job_claim = sq_job_claim,
    .job_finish = sq_job_finish,
    .job_renew = sq_job_renew,
    .job_get = sq_job_get,
    .job_list = sq_job_list,
    .job_cancel = sq_job_cancel,
    .job_replay = sq_job_replay,
    .job_resolve = sq_job_resolve,
    .job_rescue = sq_job_rescue,
    .job_purge = sq_job_purge,
    .job_counts = sq_job_counts,
    .test_effect = sq_test_effect,
    .audit = sq_audit,
    .run_insert = sq_run_insert,
    .run_get = sq_run_get,
    .run_update = sq_run_update,
    .run_list = sq_run_list,
    .run_count_since = sq_run_count_since,
    .run_stale = sq_run_stale,
    .run_by_token = sq_run_by_token,
    .run_event_add = sq_run_event_add,
    .run_event_list = sq_run_event_list,
    .artifact_add = sq_artifact_add,
    .artifact_list = sq_artifact_list,
    .artifact_count = sq_artifact_count,
    .task_add = sq_task_add,
    .task_find = sq_task_find,
    .inbox_add = sq_inbox_add,
    .inbox_early = sq_inbox_early,
    .inbox_set = sq_inbox_set,
    .idem_begin = sq_idem_begin,
    .idem_finish = sq_idem_finish,
    .idem_abort = sq_idem_abort,
    .feedback_add = sq_feedback_add,
    .feedback_list = sq_feedback_list,
};

/* Other processes' writers: poll every millisecond (SQLite's default backs off to 100 ms
 * sleeps, which loses every race against a busy writer's back-to-back transactions). */
#define BUSY_TIMEOUT_MS 30000
static int busy_wait(void *ud, int count) {
    if (count >= BUSY_TIMEOUT_MS)
        return 0;
    struct timespec ts = {0, count < 10 ? 100 * 1000 : 1000 * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

/* The file DATABASE_URL names: what follows "sqlite:" (or "sqlite://", for sqlite:///abs/path). */
static const char *db_path(const config_t *cfg) {
    const char *path = config_str(cfg, S_DATABASE_URL) + 7;
    return strncmp(path, "//", 2) == 0 ? path + 2 : path;
}

static bool in_wal_mode(sqlite3 *db) {
    sqlite3_stmt *jm = NULL;
    bool wal = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &jm, NULL) == SQLITE_OK &&
               sqlite3_step(jm) == SQLITE_ROW && sqlite3_column_text(jm, 0) &&
               strcmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0;
    sqlite3_finalize(jm);
    return wal;
}

/* A second connection to the same file for read-only work that would hold the writer up: the
 * queue counts of the health probe scan every unfinished job (130 ms at a million queued runs,
 * every request behind it waiting on the database thread). In WAL mode a reader never blocks
 * the writer nor waits for it. query_only: nothing can write through it; no checkpointer; its
 * transactions are deferred (BEGIN), so they take no write lock. ERR_NOTSUP for an in-memory
 * database (a second connection would be another database). */
static int sq_open_reader(const config_t *cfg, store_t **out, buf_t *err) {
    const char *path = db_path(cfg);
    if (!*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
        return ERR_NOTSUP; /* "" and ":memory:" are private databases, a second one would differ */
    struct sqlite_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &store_sqlite_ops;
    s->path = xstrdup(path);
    s->reader = true;
    int rc = 0;
    /* read-write without create: a WAL reader needs the shared-memory file */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        buf_printf(err, "cannot open database '%s' for reading: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = ERR_DB;
    }
    if (rc == 0) {
        sqlite3_busy_handler(s->db, busy_wait, NULL);
        rc = exec(s->db, "PRAGMA query_only = 1; PRAGMA temp_store = MEMORY;", err);
    }
    /* only in WAL mode does a long read leave the writer alone (a rollback journal's SHARED
     * lock would hold its commits up) */
    if (rc == 0 && !in_wal_mode(s->db))
        rc = ERR_NOTSUP;
    if (rc) {
        sq_close(&s->base); /* no checkpointer was started */
        return rc;
    }
    *out = &s->base;
    return 0;
}

static int sq_open(const config_t *cfg, store_t **out, buf_t *err) {
    const char *path = db_path(cfg);
    /* No memory statistics (nobody reads them): without them SQLite's allocator takes no global
     * mutex per malloc and free. Only possible before SQLite's first use (else SQLITE_MISUSE,
     * harmless). */
    static bool configured;
    if (!configured) {
        configured = true;
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    struct sqlite_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &store_sqlite_ops;
    s->path = xstrdup(path);
    int rc = strcmp(path, ":memory:") == 0 ? 0 : make_parent_dirs(path, err);
    if (rc)
        goto fail;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        buf_printf(err, "cannot open database '%s': %s", path,
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = ERR_DB;
        goto fail;
    }
    sqlite3_busy_handler(s->db, busy_wait, NULL);
    /* cache_size: the queue's indexes (random-UUID primary key included) stay in memory at
     * 100,000s of jobs instead of being re-read from the OS cache (32 MiB at most; pages are
     * only allocated as used). temp_store: every unit runs in a savepoint, whose statement
     * journal (the pages it touched, as they were) spills to a new temporary file past 64 KiB:
     * an open, an unlink and ~30 pwrites per run start; in memory it is a memcpy. */
    char pragmas[256];
    const char *sync = strcmp(config_str(cfg, S_DB_SYNC), "full") == 0 ? "FULL" : "NORMAL";
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = %s; "
             "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;",
             sync);
    if ((rc = exec(s->db, pragmas, err)) != 0)
        goto fail;
    if (in_wal_mode(s->db))
        ckpt_start(s, sync);
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}

/* ---- online backup (store_backup) ----------------------------------------------------------- */

#define BACKUP_BUSY_MS 30000 /* how long a locked source may hold the copy back */

/* fsync of a file or directory by name. */
static int sync_path(const char *path, bool dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int sq_backup(const config_t *cfg, const char *dest, struct store_backup_info *info,
                     buf_t *err) {
    const char *path = db_path(cfg);
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *b = NULL;
    sqlite3_stmt *st = NULL;
    size_t tlen = strlen(dest) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp-%ld", dest, (long)getpid());
    bool tmp_made = false;
    int rc = 0;
    struct stat sb;
    if (strcmp(path, ":memory:") == 0 || !*path) {
        buf_puts(err, "DATABASE_URL: an in-memory database cannot be backed up");
        rc = ERR_INVAL;
        goto out;
    }
    if (!*dest) {
        buf_puts(err, "the backup path is empty");
        rc = ERR_INVAL;
        goto out;
    }
    if (stat(dest, &sb) == 0) {
        buf_printf(err, "cannot back up to '%s': File exists", dest);
        rc = ERR_CONFLICT;
        goto out;
    }
    if (errno != ENOENT) {
        buf_printf(err, "cannot back up to '%s': %s", dest, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    if (stat(path, &sb) != 0) {
        buf_printf(err, "cannot open database '%s': %s", path, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    /* read-write without create: WAL readers need the shared-memory file, and a missing
     * database must not be created empty */
    if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        buf_printf(err, "cannot open database '%s': %s", path,
                   src ? sqlite3_errmsg(src) : "out of memory");
        rc = ERR_DB;
        goto out;
    }
    sqlite3_busy_handler(src, busy_wait, NULL);
    int version = 0;
    if (current_version(src, &version) != 0 || version == 0) {
        buf_printf(err, "'%s' is not a MyloWare database (no schema version)", path);
        rc = ERR_DB;
        goto out;
    }
    unlink(tmp); /* a leftover of an earlier attempt by a process with our pid */
    tmp_made = true;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        buf_printf(err, "cannot create '%s': %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
        rc = ERR_IO;
        goto out;
    }
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        buf_printf(err, "cannot start the backup: %s", sqlite3_errmsg(dst));
        rc = ERR_DB;
        goto out;
    }
    /* One step copies every page under one read transaction: one snapshot, consistent. In WAL
     * mode it does not block the server's writers; a step that finds the source locked (a
     * checkpoint, a rollback-journal writer) is retried. */
    int64_t deadline = clock_now_ms() + BACKUP_BUSY_MS;
    int r;
    while ((r = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || r == SQLITE_LOCKED ||
           r == SQLITE_OK) {
        if (clock_now_ms() > deadline)
            break;
        if (r != SQLITE_OK) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int r2 = sqlite3_backup_finish(b);
    b = NULL;
    if (r != SQLITE_DONE || r2 != SQLITE_OK) {
        buf_printf(err, "backup failed: %s",
                   r == SQLITE_DONE ? sqlite3_errmsg(dst) : sqlite3_errstr(r));
        rc = ERR_DB;
        goto out;
    }
    /* one self-contained file (no -wal beside it); the server turns WAL on again when it opens
     * the copy */
    if ((rc = exec(dst, "PRAGMA journal_mode = DELETE;", err)) != 0)
        goto out;
    if (sqlite3_prepare_v2(dst, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        buf_printf(err, "the copy failed its integrity check: %s",
                   st && sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0)
                                                    : sqlite3_errmsg(dst));
        rc = ERR_DB;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    int copy_version = 0;
    if (current_version(dst, &copy_version) != 0 || copy_version != version) {
        buf_printf(err, "the copy has schema version %d, the database %d", copy_version, version);
        rc = ERR_DB;
        goto out;
    }
    if (sqlite3_close(dst) != SQLITE_OK) {
        buf_printf(err, "cannot close '%s': %s", tmp, sqlite3_errmsg(dst));
        rc = ERR_IO;
        goto out;
    }
    dst = NULL;
    /* durable, then visible under its name (a crash leaves either nothing or the whole copy) */
    if (sync_path(tmp, false) != 0 || stat(tmp, &sb) != 0) {
        buf_printf(err, "cannot sync '%s': %s", tmp, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    if (link(tmp, dest) != 0) { /* unlike rename, never replaces a file that appeared meanwhile */
        buf_printf(err, "cannot back up to '%s': %s", dest, strerror(errno));
        rc = errno == EEXIST ? ERR_CONFLICT : ERR_IO;
        goto out;
    }
    char *dir = xstrdup(dest), *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    sync_path(slash ? dir : ".", true);
    free(dir);
    info->bytes = (int64_t)sb.st_size;
    info->schema_version = copy_version;
out:
    if (st)
        sqlite3_finalize(st);
    if (b)
        sqlite3_backup_finish(b);
    if (dst)
        sqlite3_close(dst);
    if (src)
        sqlite3_close(src);
    if (tmp_made) {
        unlink(tmp);
        size_t n = strlen(tmp) + 8;
        char *side = xmalloc(n);
        snprintf(side, n, "%s-journal", tmp);
        unlink(side);
        free(side);
    }
    free(tmp);
    return rc;
}
