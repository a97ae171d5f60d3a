/*
 * store_sqlite: the SQLite backend. WAL, busy_timeout, foreign keys, synchronous from DB_SYNC,
 * BEGIN IMMEDIATE for writes. One connection guarded by a mutex for now; the queue issue
 * moves writes to a database thread with group commit.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/mem.h"
#include "db/store.h"

#define MAX_MIGRATIONS 256

struct sqlite_store {
    store_t base;
    sqlite3 *db;
    pthread_mutex_t mu;
    char *path;
};

#define S(st) ((struct sqlite_store *)(st))

/* mkdir -p for the directory part of path. */
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
        buf_printf(err, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return ERR_DB;
    }
    return 0;
}

static void sqlite_close(store_t *st) {
    struct sqlite_store *s = S(st);
    if (s->db)
        sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

static int sqlite_open(const config_t *cfg, store_t **out, buf_t *err);

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

static int sqlite_schema_version(store_t *st, int *out) {
    struct sqlite_store *s = S(st);
    pthread_mutex_lock(&s->mu);
    int rc = current_version(s->db, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int sqlite_migrate(store_t *st, int *from, int *to, buf_t *err) {
    struct sqlite_store *s = S(st);
    static struct migration ms[MAX_MIGRATIONS];
    int n = store_migrations(ms, MAX_MIGRATIONS);
    int latest = n ? ms[n - 1].version : 0;
    int rc, cur = 0;
    pthread_mutex_lock(&s->mu);
    if ((rc = exec(s->db, "BEGIN IMMEDIATE", err)) != 0)
        goto out;
    if ((rc = current_version(s->db, &cur)) != 0) {
        buf_printf(err, "cannot read the schema version: %s", sqlite3_errmsg(s->db));
        goto rollback;
    }
    if (cur > latest) {
        buf_printf(err, "database schema version %d is newer than this binary's (%d): upgrade myloware",
                   cur, latest);
        rc = ERR_SCHEMA;
        goto rollback;
    }
    for (int i = 0; i < n; i++) {
        if (ms[i].version <= cur)
            continue;
        char *sql = xstrndup(ms[i].sql, ms[i].len);
        rc = exec(s->db, sql, err);
        free(sql);
        if (rc) {
            buf_printf(err, " (migration %d)", ms[i].version);
            goto rollback;
        }
        sqlite3_stmt *ins = NULL;
        char ts[CLOCK_ISO_LEN];
        clock_iso8601(clock_now_ms(), ts);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)",
                               -1, &ins, NULL) != SQLITE_OK) {
            buf_printf(err, "%s", sqlite3_errmsg(s->db));
            rc = ERR_DB;
            goto rollback;
        }
        sqlite3_bind_int(ins, 1, ms[i].version);
        sqlite3_bind_text(ins, 2, ms[i].description, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 3, ts, -1, SQLITE_TRANSIENT);
        int step = sqlite3_step(ins);
        sqlite3_finalize(ins);
        if (step != SQLITE_DONE) {
            buf_printf(err, "%s", sqlite3_errmsg(s->db));
            rc = ERR_DB;
            goto rollback;
        }
    }
    if ((rc = exec(s->db, "COMMIT", err)) != 0)
        goto rollback;
    *from = cur;
    *to = cur > latest ? cur : latest;
    goto out;
rollback:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int sqlite_probe(store_t *st, buf_t *err) {
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q = NULL;
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), ts);
    pthread_mutex_lock(&s->mu);
    int rc = exec(s->db, "BEGIN IMMEDIATE", err);
    if (rc)
        goto out;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO health_probe(id, at, pid) VALUES (1, ?, ?) "
                           "ON CONFLICT(id) DO UPDATE SET at = excluded.at, pid = excluded.pid",
                           -1, &q, NULL) != SQLITE_OK) {
        buf_printf(err, "%s", sqlite3_errmsg(s->db));
        rc = ERR_DB;
        goto rollback;
    }
    sqlite3_bind_text(q, 1, ts, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, (int)getpid());
    if (sqlite3_step(q) != SQLITE_DONE) {
        buf_printf(err, "%s", sqlite3_errmsg(s->db));
        rc = ERR_DB;
        goto rollback;
    }
    if ((rc = exec(s->db, "COMMIT", err)) == 0)
        goto out;
rollback:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .migrate = sqlite_migrate,
    .schema_version = sqlite_schema_version,
    .probe = sqlite_probe,
    .close = sqlite_close,
};

static int sqlite_open(const config_t *cfg, store_t **out, buf_t *err) {
    const char *url = config_str(cfg, S_DATABASE_URL);
    const char *path = url + 7; /* after "sqlite:" */
    if (strncmp(path, "//", 2) == 0)
        path += 2; /* sqlite:///abs/path */
    struct sqlite_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &store_sqlite_ops;
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    int rc = strcmp(path, ":memory:") == 0 ? 0 : make_parent_dirs(path, err);
    if (rc)
        goto fail;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        buf_printf(err, "cannot open database '%s': %s", path,
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = ERR_DB;
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = %s;",
             strcmp(config_str(cfg, S_DB_SYNC), "full") == 0 ? "FULL" : "NORMAL");
    if ((rc = exec(s->db, pragmas, err)) != 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    sqlite_close(&s->base);
    return rc;
}
