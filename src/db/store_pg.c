/*
 * store_pg: the Postgres backend (WITH_POSTGRES=1 builds), chosen by a DATABASE_URL of
 * postgres:// or postgresql:// (libpq parses the URL: user, password, host, port, dbname and
 * parameters such as sslmode or options=-csearch_path%3Dname). Same semantics as store_sqlite.c
 * for every op; the differences are Postgres's:
 *
 * - Threads: the connection belongs to the database thread (db/store.c); every libpq call here
 *   blocks that thread only, never the loop. Group commit is the same: one transaction (READ
 *   COMMITTED) per group of units, a savepoint per unit.
 * - Many processes on many hosts share the database: claims take rows with FOR UPDATE SKIP
 *   LOCKED (a row another process is claiming is skipped, never claimed twice); run_get
 *   for_update is SELECT ... FOR UPDATE; migrations run under an advisory lock.
 * - A statement error aborts the whole Postgres transaction until the unit's savepoint is
 *   rolled back, so the expected conflicts (duplicate keys, an idempotency key taken, a webhook
 *   seen before) are detected with ON CONFLICT DO NOTHING and the affected row count, never by
 *   provoking an error: the unit can go on after them exactly as with SQLite. An unexpected
 *   error maps SQLSTATE class 23 (integrity) to ERR_CONFLICT, deadlocks and serialization
 *   failures to ERR_BUSY, the rest to ERR_DB.
 * - A lost connection is re-established at the next group (PQreset); that group's units fail
 *   with ERR_DB if the server is still unreachable.
 * - Parameters and results travel as text; the SQL casts wherever the type is not implied.
 * - store_watch_jobs: LISTEN/NOTIFY on a second connection, read on the loop thread,
 *   non-blocking (see "job notifications" below), so that other processes' new jobs start at once.
 * - Every connection is made with client_encoding UTF8 and a connect_timeout of
 *   PG_CONNECT_TIMEOUT_S seconds unless the URL names its own.
 */
#ifdef WITH_POSTGRES

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "db/store.h"

#define MAX_MIGRATIONS 256
#define MAX_PARAMS 24
#define MIGRATE_LOCK "7306514951" /* pg_advisory_xact_lock key for migrations */
#define PG_CONNECT_TIMEOUT_S "10" /* per address tried; a URL's connect_timeout= wins */

/* Connects (blocking: never on the loop thread) to url with the session defaults: a
 * connect_timeout (before the URL's parameters, so that the URL's own wins) and client_encoding
 * UTF8 (after them: the store's text is UTF-8 whatever the URL says). */
static PGconn *pg_connect(const char *url) {
    const char *const keys[] = {"connect_timeout", "dbname", "client_encoding", NULL};
    const char *const vals[] = {PG_CONNECT_TIMEOUT_S, url, "UTF8", NULL};
    return PQconnectdbParams(keys, vals, 1);
}

struct pg_watch;

struct pg_store {
    store_t base;
    PGconn *c;
    char *url;              /* for the watcher's own connection */
    struct pg_watch *watch; /* loop thread only */
};

#define P(st) ((struct pg_store *)(st))
#define TXC(tx) (P((tx)->s))

/* ---- parameters and results -------------------------------------------------------------------
 */

struct params {
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][32];
    int n;
};

static void p_str(struct params *p, const char *v) { p->v[p->n++] = v; } /* NULL: SQL NULL */
static void p_str_or_null(struct params *p, const char *v) { p->v[p->n++] = v && *v ? v : NULL; }
static void p_int(struct params *p, int64_t v) {
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}
static void p_ms_or_null(struct params *p, int64_t v) {
    if (v)
        p_int(p, v);
    else
        p->v[p->n++] = NULL;
}
static void p_double(struct params *p, double v) {
    snprintf(p->num[p->n], sizeof p->num[0], "%.17g", v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static int map_error(const PGresult *r) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return ERR_DB;
    if (strncmp(state, "23", 2) == 0)
        return ERR_CONFLICT;
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "55P03") == 0)
        return ERR_BUSY;
    return ERR_DB;
}

/* Runs sql with the parameters; returns the result (PQclear it) or NULL with *rc set (the error
 * is logged, without the statement's values). */
static PGresult *exec_p(struct pg_store *s, const char *sql, const struct params *p, int *rc) {
    PGresult *r = PQexecParams(s->c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *rc = 0;
        return r;
    }
    *rc = map_error(r);
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(s->c);
    char one[512];
    snprintf(one, sizeof one, "%s", msg ? msg : "");
    one[strcspn(one, "\n")] = '\0';
    if (*rc == ERR_CONFLICT || *rc == ERR_BUSY)
        log_warn("db", "statement refused", LF_S("error", one),
                 LF_S("sqlstate", r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : ""));
    else
        log_error("db", "statement failed", LF_S("error", one));
    PQclear(r);
    return NULL;
}

/* Runs a statement whose rows are not needed; *changed (when not NULL) gets the row count. */
static int exec_cmd(struct pg_store *s, const char *sql, const struct params *p, int *changed) {
    int rc;
    PGresult *r = exec_p(s, sql, p, &rc);
    if (!r) {
        if (changed)
            *changed = 0;
        return rc;
    }
    if (changed)
        *changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

static bool g_null(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col); }
static char *g_dup(const PGresult *r, int row, int col) {
    return g_null(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}
static void g_copy(const PGresult *r, int row, int col, char *out, size_t cap) {
    snprintf(out, cap, "%s", g_null(r, row, col) ? "" : PQgetvalue(r, row, col));
}
static int64_t g_i64(const PGresult *r, int row, int col) {
    return g_null(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static int g_int(const PGresult *r, int row, int col) { return (int)g_i64(r, row, col); }

/* ---- transactions -----------------------------------------------------------------------------
 */

static int simple(struct pg_store *s, const char *sql) { return exec_cmd(s, sql, NULL, NULL); }

static int pg_begin(store_t *st) {
    struct pg_store *s = P(st);
    if (PQstatus(s->c) != CONNECTION_OK) {
        PQreset(s->c);
        if (PQstatus(s->c) != CONNECTION_OK) {
            char one[256];
            snprintf(one, sizeof one, "%s", PQerrorMessage(s->c));
            one[strcspn(one, "\n")] = '\0';
            log_error("db", "the Postgres connection is down", LF_S("error", one));
            return ERR_DB;
        }
        log_warn("db", "reconnected to Postgres");
    }
    int rc = simple(s, "BEGIN");
    if (rc && PQstatus(s->c) == CONNECTION_BAD) { /* it broke since the last group: once more */
        PQreset(s->c);
        if (PQstatus(s->c) == CONNECTION_OK) {
            log_warn("db", "reconnected to Postgres");
            rc = simple(s, "BEGIN");
        }
    }
    return rc;
}
/* A transaction in which a statement failed (and whose unit went on: the unit treated the
 * refusal as an answer) is aborted: Postgres answers its COMMIT with a ROLLBACK, without an
 * error. That is no commit: ERR_DB, so no unit of the group is told its writes are in. */
static int pg_commit(store_t *st) {
    struct pg_store *s = P(st);
    int rc;
    PGresult *r = exec_p(s, "COMMIT", NULL, &rc);
    if (!r)
        return rc;
    bool committed = strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    if (!committed) {
        log_error("db", "the transaction was rolled back: a statement in it failed");
        return ERR_DB;
    }
    return 0;
}
static void pg_rollback(store_t *s) {
    if (PQtransactionStatus(P(s)->c) != PQTRANS_IDLE)
        simple(P(s), "ROLLBACK");
}
static int pg_savepoint(store_t *s) { return simple(P(s), "SAVEPOINT unit"); }
static void pg_release(store_t *s) { simple(P(s), "RELEASE SAVEPOINT unit"); }
static void pg_rollback_to(store_t *s) { simple(P(s), "ROLLBACK TO SAVEPOINT unit"); }

/* ---- schema -----------------------------------------------------------------------------------
 */

static int current_version(struct pg_store *s, int *out) {
    int rc;
    PGresult *r = exec_p(s, "SELECT to_regclass('schema_version') IS NOT NULL", NULL, &rc);
    if (!r)
        return rc;
    bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    int v = 0;
    if (exists) {
        r = exec_p(s, "SELECT coalesce(max(version), 0) FROM schema_version", NULL, &rc);
        if (!r)
            return rc;
        v = g_int(r, 0, 0);
        PQclear(r);
    }
    *out = v;
    return 0;
}

static int pg_schema_version(store_tx_t *tx, int *out) { return current_version(TXC(tx), out); }

/* Runs inside the group transaction (one transaction for every pending migration). */
static int pg_migrate(store_t *st, int *from, int *to, buf_t *err) {
    struct pg_store *s = P(st);
    static struct migration ms[MAX_MIGRATIONS];
    int n = store_migrations_in(embed_schema_pg_sql, ms, MAX_MIGRATIONS);
    int latest = n ? ms[n - 1].version : 0;
    int cur = 0;
    /* processes starting together: the first migrates, the others wait and find nothing to do */
    if (simple(s, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")") != 0 ||
        current_version(s, &cur) != 0) {
        buf_printf(err, "cannot read the schema version: %s", PQerrorMessage(s->c));
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
        PGresult *r = PQexec(s->c, sql); /* several statements: the simple query protocol */
        free(sql);
        ExecStatusType est = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (est != PGRES_COMMAND_OK && est != PGRES_TUPLES_OK && est != PGRES_EMPTY_QUERY) {
            const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(s->c);
            buf_printf(err, "%.*s (migration %d)", (int)strcspn(m, "\n"), m, ms[i].version);
            PQclear(r);
            return ERR_DB;
        }
        PQclear(r);
        char ts[CLOCK_ISO_LEN];
        clock_iso8601(clock_now_ms(), ts);
        struct params p = {0};
        p_int(&p, ms[i].version);
        p_str(&p, ms[i].description);
        p_str(&p, ts);
        if (exec_cmd(
                s,
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                &p, NULL) != 0) {
            buf_printf(err, "cannot record migration %d", ms[i].version);
            return ERR_DB;
        }
    }
    *from = cur;
    *to = cur > latest ? cur : latest;
    return 0;
}

static int pg_probe_write(store_tx_t *tx) {
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), ts);
    struct params p = {0};
    p_str(&p, ts);
    p_int(&p, getpid());
    return exec_cmd(TXC(tx),
                    "INSERT INTO health_probe (id, at, pid) VALUES (1, $1, $2) "
                    "ON CONFLICT (id) DO UPDATE SET at = excluded.at, pid = excluded.pid",
                    &p, NULL);
}

/* ---- jobs -------------------------------------------------------------------------------------
 */

#define JOB_COLS                                                                                   \
    "id, type, run_id, payload, state, priority, attempts, max_attempts, run_at, lease_owner, "    \
    "lease_token, lease_expires_at, progress, last_error, result_url, idempotency_key, "           \
    "created_at, updated_at, finished_at, resolved_at"

static void read_job(const PGresult *r, int row, job_t *j) {
    memset(j, 0, sizeof *j);
    g_copy(r, row, 0, j->id, sizeof j->id);
    g_copy(r, row, 1, j->type, sizeof j->type);
    g_copy(r, row, 2, j->run_id, sizeof j->run_id);
    j->payload = g_dup(r, row, 3);
    if (!j->payload)
        j->payload = xstrdup("{}");
    int state = job_state_parse(PQgetvalue(r, row, 4));
    j->state = state < 0 ? JOB_DEAD : (enum job_state)state;
    j->priority = g_int(r, row, 5);
    j->attempts = g_int(r, row, 6);
    j->max_attempts = g_int(r, row, 7);
    j->run_at = g_i64(r, row, 8);
    g_copy(r, row, 9, j->lease_owner, sizeof j->lease_owner);
    g_copy(r, row, 10, j->lease_token, sizeof j->lease_token);
    j->lease_expires_at = g_i64(r, row, 11);
    j->progress = g_null(r, row, 12) ? -1 : strtod(PQgetvalue(r, row, 12), NULL);
    j->last_error = g_dup(r, row, 13);
    j->result_url = g_dup(r, row, 14);
    j->idempotency_key = g_dup(r, row, 15);
    j->created_at = g_i64(r, row, 16);
    j->updated_at = g_i64(r, row, 17);
    j->finished_at = g_i64(r, row, 18);
    j->resolved_at = g_i64(r, row, 19);
}

/* Reads up to max rows of a JOB_COLS result into out[*k...]. */
static void read_jobs(const PGresult *r, job_t *out, int *k, int max) {
    int rows = PQntuples(r);
    for (int i = 0; i < rows && *k < max; i++)
        read_job(r, i, &out[(*k)++]);
}

static const char SQL_JOB_BY_KEY[] =
    "SELECT " JOB_COLS " FROM jobs WHERE type = $1 AND idempotency_key = $2 "
    "AND state IN ('queued', 'running')";

/* 1 (j replaced by the unfinished job holding the key), 0 (none) or an ERR_* code. */
static int job_by_key(struct pg_store *s, job_t *j) {
    struct params p = {0};
    p_str(&p, j->type);
    p_str(&p, j->idempotency_key);
    int rc;
    PGresult *r = exec_p(s, SQL_JOB_BY_KEY, &p, &rc);
    if (!r)
        return rc;
    int found = PQntuples(r) > 0;
    if (found) {
        job_t existing;
        read_job(r, 0, &existing);
        job_release(j);
        *j = existing;
    }
    PQclear(r);
    return found;
}

static int pg_job_insert(store_tx_t *tx, job_t *j, bool *existed) {
    struct pg_store *s = TXC(tx);
    *existed = false;
    if (j->idempotency_key) {
        int f = job_by_key(s, j);
        if (f < 0)
            return f;
        if (f == 1) {
            *existed = true;
            return 0;
        }
    }
    struct params p = {0};
    p_str(&p, j->id);
    p_str(&p, j->type);
    p_str_or_null(&p, j->run_id);
    p_str(&p, j->payload ? j->payload : "{}");
    p_int(&p, j->priority);
    p_int(&p, j->max_attempts);
    p_int(&p, j->run_at);
    p_str_or_null(&p, j->idempotency_key);
    p_int(&p, j->created_at);
    p_int(&p, j->updated_at);
    int changed;
    int rc = exec_cmd(s,
                      "INSERT INTO jobs (id, type, run_id, payload, state, priority, attempts, "
                      "max_attempts, run_at, "
                      "idempotency_key, created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', "
                      "$5, 0, $6, $7, $8, "
                      "$9, $10) ON CONFLICT DO NOTHING",
                      &p, &changed);
    if (rc || changed == 1)
        return rc;
    /* another process enqueued the same key meanwhile (its commit decided the conflict) */
    if (j->idempotency_key) {
        int f = job_by_key(s, j);
        if (f < 0)
            return f;
        if (f == 1) {
            *existed = true;
            return 0;
        }
    }
    return ERR_CONFLICT; /* the id is taken */
}

/* Ready jobs by priority then age, ties by insertion order; rows another process is claiming
 * are skipped. */
static const char SQL_JOB_CLAIM[] =
    "WITH c AS (SELECT id FROM jobs WHERE state = 'queued' AND type = $4 AND run_at <= $3 "
    "ORDER BY priority DESC, run_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, "
    "lease_token = replace(gen_random_uuid()::text, '-', ''), lease_owner = $1, lease_expires_at = "
    "$2, "
    "updated_at = $3 FROM c WHERE j.id = c.id RETURNING j.*) "
    "SELECT " JOB_COLS " FROM u ORDER BY priority DESC, run_at, seq";

static int pg_job_claim(store_tx_t *tx, const char *type, int limit, int64_t now,
                        int64_t lease_until, const char *owner, job_t *out, int *n) {
    struct params p = {0};
    p_str(&p, owner);
    p_int(&p, lease_until);
    p_int(&p, now);
    p_str(&p, type);
    p_int(&p, limit);
    int rc;
    PGresult *r = exec_p(TXC(tx), SQL_JOB_CLAIM, &p, &rc);
    if (!r)
        return rc;
    int k = 0;
    read_jobs(r, out, &k, limit);
    PQclear(r);
    *n = k;
    return 0;
}

static int pg_job_finish(store_tx_t *tx, const job_t *j) {
    struct params p = {0};
    p_str(&p, job_state_name(j->state));
    p_int(&p, j->attempts);
    p_int(&p, j->run_at);
    p_str_or_null(&p, j->last_error);
    p_str_or_null(&p, j->result_url);
    p_ms_or_null(&p, j->finished_at);
    p_int(&p, j->updated_at);
    if (j->progress >= 0)
        p_double(&p, j->progress);
    else
        p_str(&p, NULL);
    p_str(&p, j->id);
    p_str(&p, j->lease_token);
    int changed;
    int rc = exec_cmd(
        TXC(tx),
        "UPDATE jobs SET state = $1::text, attempts = $2, run_at = $3, "
        "last_error = coalesce($4::text, last_error), result_url = coalesce($5::text, result_url), "
        "finished_at = $6, updated_at = $7, progress = coalesce($8::float8, progress), "
        "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, "
        "resolved_at = CASE WHEN $1::text = 'dead' THEN NULL ELSE resolved_at END "
        "WHERE id = $9 AND state = 'running' AND lease_token = $10",
        &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_CONFLICT;
}

static int pg_job_renew(store_tx_t *tx, const char *id, const char *token, int64_t until,
                        double progress) {
    struct params p = {0};
    p_int(&p, until);
    p_double(&p, progress);
    p_int(&p, clock_now_ms());
    p_str(&p, id);
    p_str(&p, token);
    int changed;
    int rc = exec_cmd(
        TXC(tx),
        "UPDATE jobs SET lease_expires_at = $1, "
        "progress = CASE WHEN $2::float8 >= 0 THEN $2::float8 ELSE progress END, updated_at = $3 "
        "WHERE id = $4 AND state = 'running' AND lease_token = $5",
        &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_CONFLICT;
}

static int pg_job_get(store_tx_t *tx, const char *id, job_t *out) {
    struct params p = {0};
    p_str(&p, id);
    int rc;
    PGresult *r = exec_p(TXC(tx), "SELECT " JOB_COLS " FROM jobs WHERE id = $1", &p, &rc);
    if (!r)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : ERR_NOTFOUND;
    if (rc == 0)
        read_job(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_job_list(store_tx_t *tx, const struct job_filter *f, job_t *out, int *n) {
    buf_t sql;
    buf_init(&sql, 4096);
    struct params p = {0};
    buf_puts(&sql, "SELECT " JOB_COLS " FROM jobs WHERE true");
    if (f->dead_letters)
        buf_puts(&sql, f->dead_unresolved_only
                           ? " AND state = 'dead' AND resolved_at IS NULL"
                           : " AND (state = 'dead' OR resolved_at IS NOT NULL)");
    else if (f->state >= 0) {
        p_str(&p, job_state_name((enum job_state)f->state));
        buf_printf(&sql, " AND state = $%d", p.n);
    }
    if (f->type) {
        p_str(&p, f->type);
        if (f->dead_letters)
            buf_printf(&sql, " AND (type = $%d OR type LIKE $%d || '.%%')", p.n, p.n);
        else
            buf_printf(&sql, " AND type = $%d", p.n);
    }
    if (f->run_id) {
        p_str(&p, f->run_id);
        buf_printf(&sql, " AND run_id = $%d", p.n);
    }
    p_int(&p, f->limit);
    buf_printf(&sql,
               f->dead_letters
                   ? " ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT $%d"
                   : " ORDER BY created_at DESC, id DESC LIMIT $%d",
               p.n);
    int rc;
    PGresult *r = exec_p(TXC(tx), sql.data, &p, &rc);
    buf_release(&sql);
    if (!r)
        return rc;
    int k = 0;
    read_jobs(r, out, &k, f->limit);
    PQclear(r);
    *n = k;
    return 0;
}

/* 0 when absent; else 1, with resolved_at; or an ERR_* code. */
static int job_exists(struct pg_store *s, const char *id, int64_t *resolved_at) {
    struct params p = {0};
    p_str(&p, id);
    int rc;
    PGresult *r = exec_p(s, "SELECT state, resolved_at FROM jobs WHERE id = $1", &p, &rc);
    if (!r)
        return rc;
    int found = PQntuples(r) == 1;
    if (found)
        *resolved_at = g_i64(r, 0, 1);
    PQclear(r);
    return found;
}

/* Runs an UPDATE bound as ($1 now, $2 id); *changed gets the rows it changed. */
static int update_now_id(struct pg_store *s, const char *sql, int64_t now, const char *id,
                         int *changed) {
    struct params p = {0};
    p_int(&p, now);
    p_str(&p, id);
    return exec_cmd(s, sql, &p, changed);
}

static int pg_job_cancel(store_tx_t *tx, const char *id, int64_t now) {
    struct pg_store *s = TXC(tx);
    int changed,
        rc =
            update_now_id(s,
                          "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, "
                          "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL "
                          "WHERE id = $2 AND state IN ('queued', 'running')",
                          now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1)
        return 0;
    int64_t r = 0;
    int found = job_exists(s, id, &r);
    return found < 0 ? found : found == 1 ? ERR_CONFLICT : ERR_NOTFOUND;
}

static int pg_job_replay(store_tx_t *tx, const char *id, int64_t now) {
    struct pg_store *s = TXC(tx);
    int changed,
        rc = update_now_id(
            s,
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, resolved_at = $1, "
            "finished_at = NULL, updated_at = $1 "
            "WHERE id = $2 AND state = 'dead' AND resolved_at IS NULL",
            now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1)
        return 0;
    int64_t resolved = 0;
    int found = job_exists(s, id, &resolved);
    return found < 0 ? found : found == 1 && resolved ? ERR_CONFLICT : ERR_NOTFOUND;
}

static int pg_job_resolve(store_tx_t *tx, const char *id, int64_t now, int64_t *resolved_at) {
    struct pg_store *s = TXC(tx);
    int changed, rc = update_now_id(s,
                                    "UPDATE jobs SET resolved_at = $1, updated_at = $1 "
                                    "WHERE id = $2 AND state = 'dead' AND resolved_at IS NULL",
                                    now, id, &changed);
    if (rc)
        return rc;
    if (changed == 1) {
        *resolved_at = now;
        return 0;
    }
    int64_t resolved = 0;
    int found = job_exists(s, id, &resolved);
    if (found < 0)
        return found;
    if (found == 1 && resolved) {
        *resolved_at = resolved;
        return ERR_CONFLICT; /* already resolved */
    }
    return ERR_NOTFOUND;
}

#define RESCUE_SET                                                                                 \
    "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, "   \
    "run_at = $1, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = "  \
    "$1, "                                                                                         \
    "finished_at = CASE WHEN attempts >= max_attempts THEN $1::bigint ELSE NULL END, resolved_at " \
    "= NULL, "

/* A concurrent rescuer in another process waits for the row and then finds it no longer
 * running: each expired job is re-queued once. */
static const char SQL_JOB_RESCUE_EXPIRED[] =
    RESCUE_SET "last_error = 'lease expired: the worker was lost' "
               "WHERE state = 'running' AND lease_expires_at < $1 "
               "RETURNING " JOB_COLS;
static const char SQL_JOB_RESCUE_OWNER[] =
    RESCUE_SET "last_error = 'the worker process died' "
               "WHERE state = 'running' AND lease_owner = $2 RETURNING " JOB_COLS;

static int pg_job_rescue(store_tx_t *tx, int64_t now, const char *owner_prefix,
                         bool (*dead_owner)(const char *), job_t *out, int *n) {
    struct pg_store *s = TXC(tx);
    int max = *n, k = 0, rc = 0;
    if (owner_prefix && dead_owner) {
        struct params p = {0};
        p_str(&p, owner_prefix);
        PGresult *r = exec_p(s,
                             "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running' "
                             "AND substr(lease_owner, 1, length($1)) = $1 LIMIT 32",
                             &p, &rc);
        if (!r)
            return rc;
        int no = PQntuples(r);
        for (int i = 0; i < no && rc == 0; i++) {
            const char *owner = PQgetvalue(r, i, 0);
            if (!dead_owner(owner))
                continue;
            struct params q = {0};
            p_int(&q, now);
            p_str(&q, owner);
            PGresult *u = exec_p(s, SQL_JOB_RESCUE_OWNER, &q, &rc);
            if (u) {
                read_jobs(u, out, &k, max);
                PQclear(u);
            }
        }
        PQclear(r);
    }
    if (rc == 0) {
        struct params p = {0};
        p_int(&p, now);
        PGresult *u = exec_p(s, SQL_JOB_RESCUE_EXPIRED, &p, &rc);
        if (u) {
            read_jobs(u, out, &k, max);
            PQclear(u);
        }
    }
    *n = k;
    return rc;
}

static int pg_job_purge(store_tx_t *tx, int64_t before, int *deleted) {
    struct params p = {0};
    p_int(&p, before);
    return exec_cmd(
        TXC(tx),
        "DELETE FROM jobs WHERE (state IN ('succeeded', 'cancelled') AND finished_at < $1) "
        "OR (state = 'dead' AND resolved_at IS NOT NULL AND resolved_at < $1)",
        &p, deleted);
}

static int pg_job_counts(store_tx_t *tx, int64_t now, struct queue_counts *c) {
    struct params p = {0};
    p_int(&p, now);
    int rc;
    PGresult *r = exec_p(TXC(tx),
                         "SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= $1), "
                         "count(*) FILTER (WHERE state = 'queued' AND run_at > $1), "
                         "count(*) FILTER (WHERE state = 'running'), "
                         "count(*) FILTER (WHERE state = 'dead' AND resolved_at IS NULL), "
                         "min(run_at) FILTER (WHERE state = 'queued' AND run_at <= $1) "
                         "FROM jobs WHERE state IN ('queued', 'running', 'dead')",
                         &p, &rc);
    if (!r)
        return rc;
    c->ready = g_i64(r, 0, 0);
    c->scheduled = g_i64(r, 0, 1);
    c->running = g_i64(r, 0, 2);
    c->dead = g_i64(r, 0, 3);
    c->oldest_ready_age_s = g_null(r, 0, 4) ? 0 : (double)(now - g_i64(r, 0, 4)) / 1000.0;
    PQclear(r);
    return 0;
}

static int pg_test_effect(store_tx_t *tx, const char *job_id, int64_t now) {
    struct params p = {0};
    p_str(&p, job_id);
    p_int(&p, now);
    int changed;
    int rc = exec_cmd(
        TXC(tx), "INSERT INTO test_effects (job_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING", &p,
        &changed);
    if (rc)
        return rc;
    if (changed != 1)
        log_error("db", "test effect recorded twice", LF_S("job_id", job_id));
    return changed == 1 ? 0 : ERR_CONFLICT;
}

static int pg_audit(store_tx_t *tx, const char *actor, const char *action, const char *target,
                    const char *detail) {
    struct params p = {0};
    p_int(&p, clock_now_ms());
    p_str(&p, actor);
    p_str(&p, action);
    p_str(&p, target);
    p_str_or_null(&p, detail);
    return exec_cmd(
        TXC(tx),
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)", &p,
        NULL);
}

/* ---- runs ---------------------------------------------------------------------------------------
 */

#define RUN_COLS                                                                                   \
    "id, workflow, status, current_step, brief, user_id, telegram_chat_id, artifacts, context, "   \
    "error, "                                                                                      \
    "clips_expected, clips_ready, public_token, public_expires_at, created_at, updated_at"

static void read_run(const PGresult *q, int row, run_t *r) {
    memset(r, 0, sizeof *r);
    g_copy(q, row, 0, r->id, sizeof r->id);
    g_copy(q, row, 1, r->workflow, sizeof r->workflow);
    g_copy(q, row, 2, r->status, sizeof r->status);
    g_copy(q, row, 3, r->step, sizeof r->step);
    r->brief = g_dup(q, row, 4);
    if (!r->brief)
        r->brief = xstrdup("");
    r->user_id = g_dup(q, row, 5);
    r->telegram_chat_id = g_dup(q, row, 6);
    r->artifacts = g_dup(q, row, 7);
    r->context = g_dup(q, row, 8);
    r->error = g_dup(q, row, 9);
    r->clips_expected = g_int(q, row, 10);
    r->clips_ready = g_int(q, row, 11);
    r->public_token = g_dup(q, row, 12);
    r->public_expires_at = g_i64(q, row, 13);
    r->created_at = g_i64(q, row, 14);
    r->updated_at = g_i64(q, row, 15);
}

static void read_runs(const PGresult *q, run_t *out, int *k, int max) {
    int rows = PQntuples(q);
    for (int i = 0; i < rows && *k < max; i++)
        read_run(q, i, &out[(*k)++]);
}

static int pg_run_insert(store_tx_t *tx, const run_t *r) {
    struct params p = {0};
    p_str(&p, r->id);
    p_str(&p, r->workflow);
    p_str(&p, r->status);
    p_str_or_null(&p, r->step);
    p_str(&p, r->brief ? r->brief : "");
    p_str_or_null(&p, r->user_id);
    p_str_or_null(&p, r->telegram_chat_id);
    p_str_or_null(&p, r->artifacts);
    p_str_or_null(&p, r->context);
    p_str_or_null(&p, r->error);
    p_int(&p, r->clips_expected);
    p_int(&p, r->clips_ready);
    p_str_or_null(&p, r->public_token);
    p_ms_or_null(&p, r->public_expires_at);
    p_int(&p, r->created_at);
    p_int(&p, r->updated_at);
    int changed;
    int rc = exec_cmd(
        TXC(tx),
        "INSERT INTO runs (" RUN_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, '{}'), "
        "coalesce($9, '{}'), $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING",
        &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_CONFLICT; /* id or public token taken */
}

/* One run by the SQL (one text parameter): 0, ERR_NOTFOUND or an ERR_* code. */
static int one_run(struct pg_store *s, const char *sql, const char *value, run_t *out) {
    struct params p = {0};
    p_str(&p, value);
    int rc;
    PGresult *r = exec_p(s, sql, &p, &rc);
    if (!r)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : ERR_NOTFOUND;
    if (rc == 0)
        read_run(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_run_get(store_tx_t *tx, const char *id, bool for_update, run_t *out) {
    return one_run(TXC(tx),
                   for_update ? "SELECT " RUN_COLS " FROM runs WHERE id = $1 FOR UPDATE"
                              : "SELECT " RUN_COLS " FROM runs WHERE id = $1",
                   id, out);
}

static int pg_run_by_token(store_tx_t *tx, const char *token, run_t *out) {
    return one_run(TXC(tx), "SELECT " RUN_COLS " FROM runs WHERE public_token = $1", token, out);
}

static int pg_run_update(store_tx_t *tx, const run_t *r, const char *expect_status) {
    struct pg_store *s = TXC(tx);
    struct params p = {0};
    p_str(&p, r->status);
    p_str_or_null(&p, r->step);
    p_str_or_null(&p, r->artifacts);
    p_str_or_null(&p, r->context);
    p_str_or_null(&p, r->error);
    p_int(&p, r->clips_expected);
    p_int(&p, r->clips_ready);
    p_str_or_null(&p, r->public_token);
    p_ms_or_null(&p, r->public_expires_at);
    p_int(&p, r->updated_at);
    p_str(&p, r->id);
    p_str(&p, expect_status);
    int changed;
    int rc =
        exec_cmd(s,
                 "UPDATE runs SET status = $1, current_step = $2, artifacts = coalesce($3, '{}'), "
                 "context = coalesce($4, '{}'), error = $5, clips_expected = $6, clips_ready = $7, "
                 "public_token = $8, public_expires_at = $9, updated_at = $10 WHERE id = $11 AND "
                 "status = $12",
                 &p, &changed);
    if (rc)
        return rc;
    if (changed == 1)
        return 0;
    struct params e = {0};
    p_str(&e, r->id);
    PGresult *q = exec_p(s, "SELECT 1 FROM runs WHERE id = $1", &e, &rc);
    if (!q)
        return rc;
    int found = PQntuples(q) == 1;
    PQclear(q);
    return found ? ERR_CONFLICT : ERR_NOTFOUND;
}

static int pg_run_list(store_tx_t *tx, const struct run_filter *f, run_t *out, int *n) {
    buf_t sql;
    buf_init(&sql, 2048);
    struct params p = {0};
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE true");
    if (f->status) {
        p_str(&p, f->status);
        buf_printf(&sql, " AND status = $%d", p.n);
    }
    if (f->workflow) {
        p_str(&p, f->workflow);
        buf_printf(&sql, " AND workflow = $%d", p.n);
    }
    if (f->before_id) {
        p_int(&p, f->before_created);
        p_str(&p, f->before_id);
        buf_printf(&sql, " AND (created_at < $%d OR (created_at = $%d AND id < $%d))", p.n - 1,
                   p.n - 1, p.n);
    }
    int max = f->limit < *n ? f->limit : *n;
    p_int(&p, max);
    buf_printf(&sql, " ORDER BY created_at DESC, id DESC LIMIT $%d", p.n);
    int rc;
    PGresult *r = exec_p(TXC(tx), sql.data, &p, &rc);
    buf_release(&sql);
    if (!r)
        return rc;
    int k = 0;
    read_runs(r, out, &k, max);
    PQclear(r);
    *n = k;
    return 0;
}

static int pg_run_count_since(store_tx_t *tx, int64_t since, int64_t *count) {
    struct params p = {0};
    p_int(&p, since);
    int rc;
    PGresult *r = exec_p(TXC(tx), "SELECT count(*) FROM runs WHERE created_at >= $1", &p, &rc);
    if (!r)
        return rc;
    *count = g_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_run_stale(store_tx_t *tx, const char *const *statuses, int64_t before, run_t *out,
                        int *n) {
    buf_t sql;
    buf_init(&sql, 2048);
    struct params p = {0};
    p_int(&p, before);
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE updated_at < $1 AND status IN (");
    int ns = 0;
    for (; statuses[ns] && p.n < MAX_PARAMS - 1; ns++) {
        p_str(&p, statuses[ns]);
        buf_printf(&sql, "%s$%d", ns ? ", " : "", p.n);
    }
    buf_puts(&sql, ns ? ") ORDER BY updated_at, id" : "NULL) ORDER BY updated_at, id");
    p_int(&p, *n); /* libpq fetches the whole result: only the rows asked for */
    buf_printf(&sql, " LIMIT $%d", p.n);
    int rc;
    PGresult *r = exec_p(TXC(tx), sql.data, &p, &rc);
    buf_release(&sql);
    if (!r)
        return rc;
    int k = 0;
    read_runs(r, out, &k, *n);
    PQclear(r);
    *n = k;
    return 0;
}

/* ---- run events ---------------------------------------------------------------------------------
 */

static int pg_run_event_add(store_tx_t *tx, run_event_t *e) {
    struct params p = {0};
    p_str(&p, e->run_id);
    p_str(&p, e->kind);
    p_str_or_null(&p, e->status);
    p_str_or_null(&p, e->step);
    p_str_or_null(&p, e->message);
    p_str_or_null(&p, e->data);
    p_int(&p, e->at);
    int rc;
    PGresult *r = exec_p(TXC(tx),
                         "INSERT INTO run_events (run_id, kind, status, step, message, data, at) "
                         "VALUES ($1, $2, $3, $4, $5, coalesce($6, '{}'), $7) RETURNING id",
                         &p, &rc);
    if (!r)
        return rc;
    e->id = g_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_run_event_list(store_tx_t *tx, const char *run_id, int64_t after_id,
                             bool newest_first, run_event_t *out, int *n) {
    struct params p = {0};
    p_str(&p, run_id);
    p_int(&p, after_id);
    p_int(&p, *n);
    int rc;
    PGresult *r = exec_p(
        TXC(tx),
        newest_first ? "SELECT id, run_id, kind, status, step, message, data, at FROM run_events "
                       "WHERE run_id = $1 AND id > $2 ORDER BY id DESC LIMIT $3"
                     : "SELECT id, run_id, kind, status, step, message, data, at FROM run_events "
                       "WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &p, &rc);
    if (!r)
        return rc;
    int k = 0, rows = PQntuples(r);
    for (int i = 0; i < rows && k < *n; i++) {
        run_event_t *e = &out[k++];
        memset(e, 0, sizeof *e);
        e->id = g_i64(r, i, 0);
        g_copy(r, i, 1, e->run_id, sizeof e->run_id);
        g_copy(r, i, 2, e->kind, sizeof e->kind);
        g_copy(r, i, 3, e->status, sizeof e->status);
        g_copy(r, i, 4, e->step, sizeof e->step);
        e->message = g_dup(r, i, 5);
        e->data = g_dup(r, i, 6);
        e->at = g_i64(r, i, 7);
    }
    PQclear(r);
    *n = k;
    return 0;
}

/* ---- artifacts ----------------------------------------------------------------------------------
 */

static int pg_artifact_add(store_tx_t *tx, const artifact_t *a, bool *existed) {
    struct params p = {0};
    p_str(&p, a->id);
    p_str(&p, a->run_id);
    p_str(&p, a->type);
    p_str_or_null(&p, a->persona);
    p_str_or_null(&p, a->content);
    p_str_or_null(&p, a->uri);
    p_str_or_null(&p, a->metadata);
    p_str_or_null(&p, a->dedupe);
    p_int(&p, a->created_at);
    int changed;
    *existed = false;
    int rc = exec_cmd(
        TXC(tx),
        "INSERT INTO artifacts (id, run_id, type, persona, content, uri, metadata, dedupe, "
        "created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{}'), $8, $9) ON CONFLICT DO NOTHING",
        &p, &changed);
    if (rc || changed == 1)
        return rc;
    if (a->dedupe && *a->dedupe) {
        *existed = true; /* the run has an artifact with this dedupe key: nothing written */
        return 0;
    }
    return ERR_CONFLICT; /* the id is taken */
}

#define ART_COLS "id, run_id, type, persona, content, uri, metadata, dedupe, created_at"

static int pg_artifact_list(store_tx_t *tx, const char *run_id, const char *type, artifact_t *out,
                            int *n) {
    struct params p = {0};
    p_str(&p, run_id);
    p_int(&p, *n);
    if (type)
        p_str(&p, type);
    int rc;
    PGresult *r =
        exec_p(TXC(tx),
               type ? "SELECT " ART_COLS
                      " FROM artifacts WHERE run_id = $1 AND type = $3 ORDER BY seq LIMIT $2"
                    : "SELECT " ART_COLS " FROM artifacts WHERE run_id = $1 ORDER BY seq LIMIT $2",
               &p, &rc);
    if (!r)
        return rc;
    int k = 0, rows = PQntuples(r);
    for (int i = 0; i < rows && k < *n; i++) {
        artifact_t *a = &out[k++];
        memset(a, 0, sizeof *a);
        g_copy(r, i, 0, a->id, sizeof a->id);
        g_copy(r, i, 1, a->run_id, sizeof a->run_id);
        g_copy(r, i, 2, a->type, sizeof a->type);
        g_copy(r, i, 3, a->persona, sizeof a->persona);
        a->content = g_dup(r, i, 4);
        a->uri = g_dup(r, i, 5);
        a->metadata = g_dup(r, i, 6);
        a->dedupe = g_dup(r, i, 7);
        a->created_at = g_i64(r, i, 8);
    }
    PQclear(r);
    *n = k;
    return 0;
}

static int pg_artifact_count(store_tx_t *tx, const char *run_id, const char *type, int *count) {
    struct params p = {0};
    p_str(&p, run_id);
    p_str_or_null(&p, type);
    int rc;
    PGresult *r = exec_p(
        TXC(tx),
        "SELECT count(*) FROM artifacts WHERE run_id = $1 AND ($2::text IS NULL OR type = $2)", &p,
        &rc);
    if (!r)
        return rc;
    *count = g_int(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---- provider tasks -----------------------------------------------------------------------------
 */

static int pg_task_add(store_tx_t *tx, const char *provider, const char *task_id,
                       const char *run_id, int index) {
    struct params p = {0};
    p_str(&p, provider);
    p_str(&p, task_id);
    p_str(&p, run_id);
    p_int(&p, index);
    p_int(&p, clock_now_ms());
    int changed;
    int rc = exec_cmd(TXC(tx),
                      "INSERT INTO run_tasks (provider, task_id, run_id, video_index, created_at) "
                      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                      &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_CONFLICT;
}

static int pg_task_find(store_tx_t *tx, const char *provider, const char *task_id,
                        char run_id[RUN_ID_LEN], int *index) {
    struct params p = {0};
    p_str(&p, provider);
    p_str(&p, task_id);
    int rc;
    PGresult *r = exec_p(
        TXC(tx), "SELECT run_id, video_index FROM run_tasks WHERE provider = $1 AND task_id = $2",
        &p, &rc);
    if (!r)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : ERR_NOTFOUND;
    if (rc == 0) {
        g_copy(r, 0, 0, run_id, RUN_ID_LEN);
        *index = g_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

/* ---- webhook inbox ------------------------------------------------------------------------------
 */

static int pg_inbox_add(store_tx_t *tx, inbox_item_t *w, bool *duplicate) {
    struct params p = {0};
    p_str(&p, w->provider);
    p_str(&p, w->delivery_id);
    p_str_or_null(&p, w->event_type);
    p_str_or_null(&p, w->task_id);
    p_str_or_null(&p, w->run_id);
    p_str(&p, w->payload ? w->payload : "");
    p_str(&p, w->status);
    p_int(&p, w->received_at);
    int rc;
    PGresult *r = exec_p(TXC(tx),
                         "INSERT INTO webhook_inbox (provider, delivery_id, event_type, task_id, "
                         "run_id, payload, status, "
                         "received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                         "ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id",
                         &p, &rc);
    if (!r)
        return rc;
    *duplicate = PQntuples(r) == 0;
    if (!*duplicate)
        w->id = g_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_inbox_early(store_tx_t *tx, const char *provider, const char *task_id, int64_t since,
                          inbox_item_t *out, int *n) {
    struct params p = {0};
    p_str(&p, provider);
    p_str(&p, task_id);
    p_int(&p, since);
    p_int(&p, *n);
    int rc;
    PGresult *r =
        exec_p(TXC(tx),
               "SELECT id, provider, delivery_id, event_type, task_id, run_id, payload, status, "
               "received_at "
               "FROM webhook_inbox WHERE provider = $1 AND task_id = $2 AND status = 'early' "
               "AND received_at >= $3 ORDER BY received_at, id LIMIT $4",
               &p, &rc);
    if (!r)
        return rc;
    int k = 0, rows = PQntuples(r);
    for (int i = 0; i < rows && k < *n; i++) {
        inbox_item_t *w = &out[k++];
        memset(w, 0, sizeof *w);
        w->id = g_i64(r, i, 0);
        g_copy(r, i, 1, w->provider, sizeof w->provider);
        g_copy(r, i, 2, w->delivery_id, sizeof w->delivery_id);
        g_copy(r, i, 3, w->event_type, sizeof w->event_type);
        g_copy(r, i, 4, w->task_id, sizeof w->task_id);
        g_copy(r, i, 5, w->run_id, sizeof w->run_id);
        w->payload = g_dup(r, i, 6);
        g_copy(r, i, 7, w->status, sizeof w->status);
        w->received_at = g_i64(r, i, 8);
    }
    PQclear(r);
    *n = k;
    return 0;
}

static int pg_inbox_set(store_tx_t *tx, int64_t id, const char *status, const char *run_id) {
    struct params p = {0};
    p_str(&p, status);
    p_str_or_null(&p, run_id);
    p_int(&p, clock_now_ms());
    p_int(&p, id);
    int changed;
    int rc =
        exec_cmd(TXC(tx),
                 "UPDATE webhook_inbox SET status = $1::text, run_id = coalesce($2::text, run_id), "
                 "applied_at = CASE WHEN $1::text = 'applied' THEN $3::bigint ELSE applied_at END "
                 "WHERE id = $4",
                 &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_NOTFOUND;
}

/* ---- idempotency keys ---------------------------------------------------------------------------
 */

static int pg_idem_begin(store_tx_t *tx, const char *scope, const char *key, const char *hash,
                         int64_t now, int64_t ttl_ms, struct idem_result *out) {
    struct pg_store *s = TXC(tx);
    struct params p = {0};
    p_str(&p, scope);
    p_str(&p, key);
    p_str(&p, hash);
    p_int(&p, now);
    p_int(&p, now + ttl_ms);
    /* the claim itself: a row that another request (any process) holds makes this a no-op */
    int changed;
    int rc = exec_cmd(s,
                      "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, "
                      "created_at, expires_at) "
                      "VALUES ($1, $2, $3, NULL, NULL, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                      &p, &changed);
    if (rc)
        return rc;
    if (changed == 1) {
        out->state = IDEM_NEW;
        return 0;
    }
    struct params g = {0};
    p_str(&g, scope);
    p_str(&g, key);
    PGresult *r = exec_p(s,
                         "SELECT request_hash, status, body, expires_at FROM idempotency_keys "
                         "WHERE scope = $1 AND key = $2 FOR UPDATE",
                         &g, &rc);
    if (!r)
        return rc;
    if (PQntuples(r) == 1 && g_i64(r, 0, 3) > now) {
        if (strcmp(PQgetvalue(r, 0, 0), hash) != 0)
            out->state = IDEM_MISMATCH;
        else if (g_null(r, 0, 1))
            out->state = IDEM_INFLIGHT;
        else {
            out->state = IDEM_REPLAY;
            out->status = g_int(r, 0, 1);
            out->body = g_dup(r, 0, 2);
        }
        PQclear(r);
        return 0;
    }
    PQclear(r);
    /* expired (or deleted meanwhile): take it over */
    rc = exec_cmd(s,
                  "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, "
                  "created_at, expires_at) "
                  "VALUES ($1, $2, $3, NULL, NULL, $4, $5) ON CONFLICT (scope, key) DO UPDATE SET "
                  "request_hash = $3, status = NULL, body = NULL, created_at = $4, expires_at = $5",
                  &p, NULL);
    if (rc == 0)
        out->state = IDEM_NEW;
    return rc;
}

static int pg_idem_finish(store_tx_t *tx, const char *scope, const char *key, int status,
                          const char *body) {
    struct params p = {0};
    p_int(&p, status);
    p_str(&p, body ? body : "");
    p_str(&p, scope);
    p_str(&p, key);
    int changed;
    int rc = exec_cmd(
        TXC(tx), "UPDATE idempotency_keys SET status = $1, body = $2 WHERE scope = $3 AND key = $4",
        &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_NOTFOUND;
}

static int pg_idem_abort(store_tx_t *tx, const char *scope, const char *key) {
    struct params p = {0};
    p_str(&p, scope);
    p_str(&p, key);
    return exec_cmd(TXC(tx),
                    "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
                    &p, NULL);
}

/* ---- feedback -----------------------------------------------------------------------------------
 */

static int pg_feedback_add(store_tx_t *tx, const feedback_t *f) {
    struct params p = {0};
    p_str(&p, f->id);
    p_str(&p, f->run_id);
    p_str_or_null(&p, f->artifact_id);
    p_int(&p, f->rating);
    p_str_or_null(&p, f->comment);
    p_int(&p, f->created_at);
    int changed;
    int rc = exec_cmd(TXC(tx),
                      "INSERT INTO feedback (id, run_id, artifact_id, rating, comment, created_at) "
                      "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                      &p, &changed);
    if (rc)
        return rc;
    return changed == 1 ? 0 : ERR_CONFLICT;
}

static int pg_feedback_list(store_tx_t *tx, const char *run_id, feedback_t *out, int *n) {
    struct params p = {0};
    p_str(&p, run_id);
    p_int(&p, *n);
    int rc;
    PGresult *r =
        exec_p(TXC(tx),
               "SELECT id, run_id, artifact_id, rating, comment, created_at FROM feedback "
               "WHERE run_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2",
               &p, &rc);
    if (!r)
        return rc;
    int k = 0, rows = PQntuples(r);
    for (int i = 0; i < rows && k < *n; i++) {
        feedback_t *f = &out[k++];
        memset(f, 0, sizeof *f);
        g_copy(r, i, 0, f->id, sizeof f->id);
        g_copy(r, i, 1, f->run_id, sizeof f->run_id);
        g_copy(r, i, 2, f->artifact_id, sizeof f->artifact_id);
        f->rating = g_int(r, i, 3);
        f->comment = g_dup(r, i, 4);
        f->created_at = g_i64(r, i, 5);
    }
    PQclear(r);
    *n = k;
    return 0;
}

/* Server notices (NOTICE, WARNING) go to the log at debug level instead of libpq's stderr. */
static void on_notice(void *arg, const char *message) {
    char one[256];
    snprintf(one, sizeof one, "%s", message);
    one[strcspn(one, "\n")] = '\0';
    log_debug("db", "postgres notice", LF_S("notice", one));
}

/* ---- job notifications (LISTEN/NOTIFY), on the loop thread -------------------------------------
 */

/* The trigger of schema_pg.sql migration 2 notifies channel myloware_jobs with the job type
 * whenever a job becomes queued; Postgres delivers it at commit, to every listening session.
 * The watcher's connection is made on a libuv worker thread (uv_queue_work: libpq resolves a
 * host name with blocking getaddrinfo, and a connect is bounded only by connect_timeout), then
 * handed to the loop: libpq in non-blocking mode driven by a uv_poll on its socket, LISTEN, then
 * reading notifications. When it breaks (or the connect fails) it is retried WATCH_RETRY_MS
 * later; meanwhile the dispatcher's polling still finds the jobs. */

#define WATCH_RETRY_MS 1000

enum watch_state { W_IDLE, W_CONNECTING, W_LISTENING }; /* CONNECTING: the worker's connect */

struct pg_watch {
    struct pg_store *s;
    uv_loop_t *loop;
    void (*cb)(void *ud, const char *type);
    void *ud;
    PGconn *c;
    uv_poll_t *poll; /* heap: a new one per socket; freed by its close callback */
    int fd;
    uv_timer_t retry;
    uv_work_t work; /* the connect; in flight while st == W_CONNECTING */
    PGconn *made;   /* the worker's result, read by the loop in watch_connected */
    enum watch_state st;
    bool stopped;
};

static void free_poll(uv_handle_t *h) { free(h); }

static void watch_poll_stop(struct pg_watch *w) {
    if (w->poll) {
        uv_close((uv_handle_t *)w->poll, free_poll);
        w->poll = NULL;
    }
    w->fd = -1;
}

static void watch_connect(struct pg_watch *w);

static void watch_retry_cb(uv_timer_t *t) { watch_connect(t->data); }

static void watch_fail(struct pg_watch *w, const char *why) {
    if (w->c) {
        char one[256];
        snprintf(one, sizeof one, "%s", PQerrorMessage(w->c));
        one[strcspn(one, "\n")] = '\0';
        log_warn("db", "job notifications interrupted (polling goes on)", LF_S("reason", why),
                 LF_S("error", one));
    }
    watch_poll_stop(w);
    if (w->c)
        PQfinish(w->c);
    w->c = NULL;
    w->st = W_IDLE;
    if (!w->stopped)
        uv_timer_start(&w->retry, watch_retry_cb, WATCH_RETRY_MS, 0);
}

static void watch_io(uv_poll_t *p, int status, int events);

/* Polls the connection's socket for events (a new handle when the socket changed). */
static int watch_poll(struct pg_watch *w, int events) {
    int fd = PQsocket(w->c);
    if (fd < 0)
        return -1;
    if (w->poll && fd != w->fd)
        watch_poll_stop(w);
    if (!w->poll) {
        w->poll = xcalloc(1, sizeof *w->poll);
        if (uv_poll_init(w->loop, w->poll, fd) != 0) {
            free(w->poll);
            w->poll = NULL;
            return -1;
        }
        w->poll->data = w;
        w->fd = fd;
    }
    return uv_poll_start(w->poll, events, watch_io) == 0 ? 0 : -1;
}

/* Reads what arrived and hands every notification to the callback. */
static void watch_read(struct pg_watch *w) {
    if (!PQconsumeInput(w->c)) {
        watch_fail(w, "read");
        return;
    }
    while (!PQisBusy(w->c)) { /* the LISTEN's own result, once */
        PGresult *r = PQgetResult(w->c);
        if (!r)
            break;
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            PQclear(r);
            watch_fail(w, "LISTEN");
            return;
        }
        PQclear(r);
        /* listening (again): jobs enqueued while it was not are found by one claim of all */
        w->cb(w->ud, NULL);
        if (w->stopped || !w->c)
            return;
    }
    PGnotify *n;
    while ((n = PQnotifies(w->c)) != NULL) {
        char type[JOB_TYPE_MAX];
        snprintf(type, sizeof type, "%s", n->extra ? n->extra : "");
        PQfreemem(n);
        w->cb(w->ud, type);
        if (w->stopped || !w->c)
            return;
    }
}

static void watch_io(uv_poll_t *p, int status, int events) {
    struct pg_watch *w = p->data;
    if (w->stopped || p != w->poll)
        return;
    if (status < 0) {
        watch_fail(w, "poll");
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(w->c);
        if (f < 0 || watch_poll(w, f ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0) {
            watch_fail(w, "write");
            return;
        }
    }
    if (events & UV_READABLE)
        watch_read(w);
}

/* Worker thread: the blocking connect. */
static void watch_connect_work(uv_work_t *req) {
    struct pg_watch *w = req->data;
    w->made = pg_connect(w->s->url);
}

/* Loop thread: the connect's end; LISTEN on the new connection, else a retry. */
static void watch_connected(uv_work_t *req, int status) {
    struct pg_watch *w = req->data;
    PGconn *c = w->made;
    w->made = NULL;
    w->st = W_IDLE;
    if (w->stopped || status != 0) { /* unwatched meanwhile (or cancelled before it ran) */
        if (c)
            PQfinish(c);
        return;
    }
    w->c = c;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        watch_fail(w, "connect");
        return;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    if (PQsetnonblocking(c, 1) != 0 || !PQsendQuery(c, "LISTEN myloware_jobs")) {
        watch_fail(w, "LISTEN");
        return;
    }
    w->st = W_LISTENING;
    int f = PQflush(c);
    if (f < 0 || watch_poll(w, f ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0)
        watch_fail(w, "LISTEN");
}

/* Loop thread: starts a connect on a worker. */
static void watch_connect(struct pg_watch *w) {
    if (w->stopped || w->st == W_CONNECTING)
        return;
    w->work.data = w;
    w->made = NULL;
    if (uv_queue_work(w->loop, &w->work, watch_connect_work, watch_connected) != 0) {
        watch_fail(w, "connect");
        return;
    }
    w->st = W_CONNECTING;
}

static int pg_watch(store_t *st, uv_loop_t *loop, void (*cb)(void *ud, const char *type),
                    void *ud) {
    struct pg_store *s = P(st);
    if (s->watch)
        return ERR_CONFLICT;
    struct pg_watch *w = xcalloc(1, sizeof *w);
    w->s = s;
    w->loop = loop;
    w->cb = cb;
    w->ud = ud;
    w->fd = -1;
    uv_timer_init(loop, &w->retry);
    w->retry.data = w;
    s->watch = w;
    watch_connect(w);
    return 0;
}

static void pg_unwatch(store_t *st) {
    struct pg_watch *w = P(st)->watch;
    if (!w || w->stopped)
        return;
    w->stopped = true;
    if (w->st == W_CONNECTING)
        uv_cancel((uv_req_t *)&w->work); /* else watch_connected drops the connection it made */
    watch_poll_stop(w);
    if (w->c)
        PQfinish(w->c);
    w->c = NULL;
    if (!uv_is_closing((uv_handle_t *)&w->retry))
        uv_close((uv_handle_t *)&w->retry,
                 NULL); /* the struct is freed by pg_close, after the loop */
}

/* ---- open and close ---------------------------------------------------------------------------
 */

static void pg_close(store_t *st) {
    struct pg_store *s = P(st);
    if (s->watch) { /* the loop has ended: its handles are closed */
        if (s->watch->poll)
            free(s->watch->poll); /* closed by a loop-wide walk without our callback */
        if (s->watch->c)
            PQfinish(s->watch->c);
        free(s->watch);
    }
    if (s->c)
        PQfinish(s->c);
    free(s->url);
    free(s);
}

static int pg_open(const config_t *cfg, store_t **out, buf_t *err);

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .migrate = pg_migrate,
    .close = pg_close,
    .backup = NULL, /* pg_dump is the tool */
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .schema_version = pg_schema_version,
    .probe_write = pg_probe_write,
    .job_insert = pg_job_insert,
    .job_claim = pg_job_claim,
    .job_finish = pg_job_finish,
    .job_renew = pg_job_renew,
    .job_get = pg_job_get,
    .job_list = pg_job_list,
    .job_cancel = pg_job_cancel,
    .job_replay = pg_job_replay,
    .job_resolve = pg_job_resolve,
    .job_rescue = pg_job_rescue,
    .job_purge = pg_job_purge,
    .job_counts = pg_job_counts,
    .test_effect = pg_test_effect,
    .audit = pg_audit,
    .run_insert = pg_run_insert,
    .run_get = pg_run_get,
    .run_update = pg_run_update,
    .run_list = pg_run_list,
    .run_count_since = pg_run_count_since,
    .run_stale = pg_run_stale,
    .run_by_token = pg_run_by_token,
    .run_event_add = pg_run_event_add,
    .run_event_list = pg_run_event_list,
    .artifact_add = pg_artifact_add,
    .artifact_list = pg_artifact_list,
    .artifact_count = pg_artifact_count,
    .task_add = pg_task_add,
    .task_find = pg_task_find,
    .inbox_add = pg_inbox_add,
    .inbox_early = pg_inbox_early,
    .inbox_set = pg_inbox_set,
    .idem_begin = pg_idem_begin,
    .idem_finish = pg_idem_finish,
    .idem_abort = pg_idem_abort,
    .feedback_add = pg_feedback_add,
    .feedback_list = pg_feedback_list,
    .watch = pg_watch,
    .unwatch = pg_unwatch,
};

/* The URL's password: the userinfo's after its first ':' (up to the last '@': a password may
 * hold '@', '/' or '?'), else a password= parameter's value; its length, 0 when none. */
static size_t url_password(const char *url, const char **pw) {
    const char *p = strstr(url, "://"), *at = strrchr(url, '@');
    if (p && at && at > p + 3) {
        const char *colon = memchr(p + 3, ':', (size_t)(at - (p + 3)));
        if (colon && at > colon + 1) {
            *pw = colon + 1;
            return (size_t)(at - *pw);
        }
    }
    const char *q = strstr(url, "password=");
    if (q) {
        *pw = q + 9;
        return strcspn(*pw, "&");
    }
    return 0;
}

/* Appends msg to err with every piece of the URL's password in it (3 characters or more, or all
 * of a shorter one) as "***": libpq's messages about a malformed URL quote the URL, or the part
 * it could not parse (a host, a port, a percent-encoded token), which may be the password. */
static void put_redacted(buf_t *err, const char *msg, size_t len, const char *url) {
    const char *pw = NULL;
    size_t pwlen = url_password(url, &pw), need = pwlen < 3 ? pwlen : 3;
    for (size_t i = 0; i < len;) {
        size_t best = 0;
        for (size_t j = 0; pwlen && j < pwlen; j++) {
            size_t l = 0;
            while (i + l < len && j + l < pwlen && msg[i + l] == pw[j + l])
                l++;
            if (l > best)
                best = l;
        }
        if (pwlen && best >= need) {
            buf_puts(err, "***");
            i += best;
        } else {
            buf_append(err, &msg[i++], 1);
        }
    }
}

/* Opens the connection (on the calling thread, before the database thread starts; afterwards
 * only that thread uses it). The error never shows the URL: it may hold a password. */
static int pg_open(const config_t *cfg, store_t **out, buf_t *err) {
    const char *url = config_str(cfg, S_DATABASE_URL);
    struct pg_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &store_pg_ops;
    s->url = xstrdup(url);
    s->c = pg_connect(url);
    if (!s->c || PQstatus(s->c) != CONNECTION_OK) {
        const char *m = s->c ? PQerrorMessage(s->c) : "out of memory";
        buf_puts(err, "cannot connect to Postgres: ");
        put_redacted(err, m, strcspn(m, "\n"), url);
        pg_close(&s->base);
        return ERR_DB;
    }
    PQsetNoticeProcessor(s->c, on_notice, NULL);
    /* DB_SYNC=full: every commit waits for the server's WAL flush; normal: the server's
     * default stands (a session cannot be less durable than the database was set up). */
    const char *sync =
        strcmp(config_str(cfg, S_DB_SYNC), "full") == 0 ? "SET synchronous_commit = on" : NULL;
    if (simple(s, "SET client_min_messages = warning") != 0 || (sync && simple(s, sync) != 0)) {
        buf_printf(err, "cannot set up the Postgres session: %s", PQerrorMessage(s->c));
        pg_close(&s->base);
        return ERR_DB;
    }
    *out = &s->base;
    return 0;
}

#endif /* WITH_POSTGRES */
