/*
 * The SQLite backend's WAL checkpointer (db/store_sqlite.c): checkpoints run on their own
 * thread, the WAL starts over instead of growing under steady writes, stays bounded while a
 * reader holds an old snapshot and starts over once it ends, an idle WAL is truncated, and
 * every committed row is in the database afterwards. Small thresholds (store_sqlite_wal_tune)
 * keep the writes small; a real SQLite file in a temporary directory.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "db/store.h"
#include "db/store_sqlite.h"

static config_t cfg;
static store_t *st;
static char dir[64], db_path[128], wal_path[136];

static const struct sqlite_wal_tuning small = {.ckpt_frames = 50,
                                               .restart_frames = 200,
                                               .tail_frames = 16,
                                               .hard_frames = 800,
                                               .idle_ms = 200};
static const struct sqlite_wal_tuning normal = {.ckpt_frames = 1000,
                                                .restart_frames = 4000,
                                                .tail_frames = 128,
                                                .hard_frames = 16000,
                                                .idle_ms = 1000};

static void open_store(const char *sync) {
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_set(&cfg, "DB_SYNC", sync, CS_FLAG, &err), 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.data);
    int from, to;
    cr_assert_eq(store_migrate(st, &from, &to, &err), 0, "%s", err.data);
    buf_release(&err);
}

static void close_store(void) {
    if (st)
        store_close(st);
    st = NULL;
    config_release(&cfg);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/myloware-wal-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/db.sqlite", dir);
    snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
    store_sqlite_wal_tune(&small);
}

static void teardown(void) {
    close_store();
    store_sqlite_wal_tune(&normal);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store_sqlite, .init = setup, .fini = teardown, .timeout = 60);

/* One unit: n runs with a brief of size bytes (about a page each). */
struct batch {
    int n, size;
};

static int write_unit(store_tx_t *tx, void *arg) {
    struct batch *b = arg;
    char *brief = malloc((size_t)b->size + 1);
    memset(brief, 'b', (size_t)b->size);
    brief[b->size] = '\0';
    int rc = 0;
    for (int i = 0; i < b->n && rc == 0; i++) {
        run_t r;
        memset(&r, 0, sizeof r);
        int64_t now = clock_now_ms();
        crypto_uuid7(r.id, now);
        snprintf(r.workflow, sizeof r.workflow, "aismr");
        snprintf(r.status, sizeof r.status, "pending");
        r.brief = brief;
        r.created_at = r.updated_at = now;
        rc = tx->s->ops->run_insert(tx, &r);
    }
    free(brief);
    return rc;
}

static void write_runs(int commits, int per_commit) {
    struct batch b = {per_commit, 3000};
    for (int i = 0; i < commits; i++)
        cr_assert_eq(store_call(st, write_unit, &b), 0, "commit %d", i);
}

static struct sqlite_wal_stats stats(void) {
    struct sqlite_wal_stats s;
    cr_assert_eq(store_sqlite_wal_stats(st, &s), 0);
    return s;
}

static void nap_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static off_t wal_size(void) {
    struct stat sb;
    return stat(wal_path, &sb) == 0 ? sb.st_size : -1;
}

/* The rows in the file, read by a connection of its own; and its integrity check. */
static int64_t count_rows(bool *intact) {
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM runs", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    *intact = strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void steady_writes(const char *sync) {
    open_store(sync);
    write_runs(300, 4); /* ~1500 frames: past hard_frames, were nothing copied */
    struct sqlite_wal_stats s = stats();
    cr_assert_geq(s.restarts, 1, "the WAL never started over (longest %d frames)", s.max_frames);
    cr_assert_leq(s.max_frames, small.hard_frames + 64, "the WAL grew to %d frames", s.max_frames);
    for (int64_t deadline = clock_now_ms() + 20000;
         stats().passes == 0 && clock_now_ms() < deadline;)
        nap_ms(5);
    cr_assert_geq(stats().passes, 1, "the checkpointer thread never ran");
    close_store();
    bool intact = false;
    cr_assert_eq(count_rows(&intact), 1200);
    cr_assert(intact);
}

Test(store_sqlite, the_wal_starts_over_under_steady_writes) { steady_writes("normal"); }

Test(store_sqlite, the_wal_starts_over_with_db_sync_full) { steady_writes("full"); }

Test(store_sqlite, an_idle_wal_is_truncated) {
    open_store("normal");
    write_runs(20, 2);
    cr_assert_gt(wal_size(), 0);
    int64_t deadline = clock_now_ms() + 20000;
    while ((stats().truncates == 0 || wal_size() != 0) && clock_now_ms() < deadline)
        nap_ms(10);
    cr_assert_eq(wal_size(), 0, "the WAL is %lld bytes after idling", (long long)wal_size());
    cr_assert_geq(stats().truncates, 1);
    bool intact = false;
    cr_assert_eq(count_rows(&intact), 40, "the truncated WAL's rows are in the database file");
    cr_assert(intact);
    write_runs(5, 2); /* and writing goes on */
    cr_assert_gt(wal_size(), 0);
    close_store();
    cr_assert_eq(count_rows(&intact), 50);
}

Test(store_sqlite, a_reader_on_an_old_snapshot_holds_the_wal_back_until_it_ends) {
    struct sqlite_wal_tuning t = small;
    t.idle_ms = 600000; /* no idle truncation before the reader's snapshot: it must be in the WAL */
    store_sqlite_wal_tune(&t);
    open_store("normal");
    write_runs(5, 2);
    sqlite3 *reader = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(reader, "SELECT count(*) FROM runs", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 10);
    sqlite3_finalize(q);
    int64_t restarts = stats().restarts;
    write_runs(300, 4); /* the writer is never blocked by the pinned WAL */
    cr_assert_eq(stats().restarts, restarts, "the WAL started over under a reader's snapshot");
    cr_assert_gt(stats().max_frames, small.hard_frames);
    cr_assert_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL),
                 SQLITE_OK); /* the snapshot is released */
    sqlite3_close(reader);
    int more = 0;
    for (; more < 200 && stats().restarts == restarts; more++)
        write_runs(1, 4);
    cr_assert_gt(stats().restarts, restarts, "the WAL did not start over after the reader ended");
    close_store();
    bool intact = false;
    cr_assert_eq(count_rows(&intact), 10 + 1200 + 4 * more);
    cr_assert(intact);
}

/* The run budget's count (two index lookups, not a scan) against count(*), at every boundary. */
struct timed_batch {
    int64_t base;
    int n;
};

static int timed_unit(store_tx_t *tx, void *arg) {
    struct timed_batch *b = arg;
    int rc = 0;
    for (int i = 0; i < b->n && rc == 0; i++) {
        run_t r;
        memset(&r, 0, sizeof r);
        int64_t at = b->base + i / 3; /* three runs per millisecond */
        crypto_uuid7(r.id, at);
        snprintf(r.workflow, sizeof r.workflow, "aismr");
        snprintf(r.status, sizeof r.status, "pending");
        r.brief = "b";
        r.created_at = r.updated_at = at;
        rc = tx->s->ops->run_insert(tx, &r);
    }
    return rc;
}

struct since {
    int64_t at, count;
};

static int since_unit(store_tx_t *tx, void *arg) {
    struct since *q = arg;
    return tx->s->ops->run_count_since(tx, q->at, &q->count);
}

Test(store_sqlite, the_run_budget_count_matches_count_star) {
    store_sqlite_wal_tune(&normal);
    open_store("normal");
    struct since q = {0, -1};
    cr_assert_eq(store_call(st, since_unit, &q), 0);
    cr_assert_eq(q.count, 0, "no runs: %lld", (long long)q.count);
    int64_t base = clock_now_ms() - 10000;
    struct timed_batch b = {base, 3000};
    cr_assert_eq(store_call(st, timed_unit, &b), 0);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *c = NULL;
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM runs WHERE created_at >= ?", -1, &c, NULL),
        SQLITE_OK);
    for (int64_t at = base - 5; at <= base + 1005; at += 7) {
        q.at = at;
        cr_assert_eq(store_call(st, since_unit, &q), 0);
        sqlite3_bind_int64(c, 1, at);
        cr_assert_eq(sqlite3_step(c), SQLITE_ROW);
        cr_assert_eq(q.count, sqlite3_column_int64(c, 0), "since %lld: %lld, count(*) %lld",
                     (long long)(at - base), (long long)q.count,
                     (long long)sqlite3_column_int64(c, 0));
        sqlite3_reset(c);
    }
    sqlite3_finalize(c);
    sqlite3_close(db);
}
