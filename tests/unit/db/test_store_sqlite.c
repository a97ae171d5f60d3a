/*
 * The SQLite backend's WAL checkpointer (db/store_sqlite.c): checkpoints run on their own
 * thread, the WAL starts over instead of growing under steady writes, stays bounded while a
 * reader holds an old snapshot and starts over once it ends, an idle WAL is truncated, and
 * every committed row is in the database afterwards. Small thresholds (store_sqlite_wal_tune)
 * keep the writes small; a real SQLite file in a temporary directory.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
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

/* A VFS over the default one that counts the syncs of main database files (every connection
 * opened while it is the default goes through it, the checkpointer's included). */
struct cfile {
    const sqlite3_io_methods *methods;
    int flags;
    sqlite3_file *real; /* right after this struct, in the same allocation */
};
static sqlite3_vfs counting_vfs, *real_vfs;
static atomic_int db_syncs;
#define REAL(f) (((struct cfile *)(f))->real)
static int c_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 n) {
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int c_sync(sqlite3_file *f, int flags) {
    if (((struct cfile *)f)->flags & SQLITE_OPEN_MAIN_DB)
        atomic_fetch_add(&db_syncs, 1);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int c_size(sqlite3_file *f, sqlite3_int64 *n) {
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int c_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int c_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int c_reserved(sqlite3_file *f, int *r) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int c_fcntl(sqlite3_file *f, int op, void *a) { /* FILE_POINTER: SQLite gives this file */
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int c_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int c_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int c_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **pp) {
    return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, pp);
}
static int c_shmlock(sqlite3_file *f, int o, int n, int fl) {
    return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl);
}
static void c_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int c_shmunmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int c_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp) {
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, pp);
}
static int c_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}
static const sqlite3_io_methods counting_io = {
    3,         c_close,      c_read,     c_write, c_truncate, c_sync, c_size,
    c_lock,    c_unlock,     c_reserved, c_fcntl, c_sector,   c_dev,  c_shmmap,
    c_shmlock, c_shmbarrier, c_shmunmap, c_fetch, c_unfetch};
static int c_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)v;
    struct cfile *c = (struct cfile *)f;
    c->real = (sqlite3_file *)(c + 1);
    c->flags = flags;
    c->methods = NULL;
    int rc = real_vfs->xOpen(real_vfs, name, c->real, flags, out);
    if (c->real->pMethods)
        c->methods = &counting_io;
    return rc;
}
#undef REAL

/* A PASSIVE checkpoint syncs the database file only when it copied the whole WAL, which steady
 * writes seldom let it do: the checkpointer syncs it after every pass of its own, so that the
 * writer's short copy before the WAL starts over has only its own pages to write out (it had
 * every page of every pass since the last restart: an 80 ms stall under webhook load). */
Test(store_sqlite, the_checkpointer_syncs_the_database_file_after_each_pass) {
    real_vfs = sqlite3_vfs_find(NULL);
    counting_vfs = *real_vfs;
    counting_vfs.zName = "myloware-counting";
    counting_vfs.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile;
    counting_vfs.xOpen = c_open;
    cr_assert_eq(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
    open_store("normal");
    write_runs(300, 4);
    for (int64_t deadline = clock_now_ms() + 20000;
         stats().passes == 0 && clock_now_ms() < deadline;)
        nap_ms(5);
    struct sqlite_wal_stats s = stats(); /* every pass counted here has made its sync */
    close_store();
    sqlite3_vfs_unregister(&counting_vfs);
    int syncs = atomic_load(&db_syncs);
    cr_assert_geq(s.passes, 1, "the checkpointer thread never ran");
    /* the writer's tail copies each copy the whole WAL: SQLite syncs after those itself */
    cr_assert_geq(s.synced_passes, 1, "no pass copied anything");
    cr_assert_geq(syncs, s.synced_passes + s.writer_checkpoints,
                  "%d syncs of the database file for %lld passes that copied frames and %lld "
                  "tail copies",
                  syncs, (long long)s.synced_passes, (long long)s.writer_checkpoints);
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

/* The reader store (store_open_reader): its own connection and thread beside the writer's. A
 * read transaction held open on it does not hold up a write on the main store (the health
 * probe's queue counts, a scan of every unfinished job, run there); it sees what was
 * committed; nothing can be written through it. */
struct held_read {
    atomic_int reading, written;
    int64_t rows_seen;
    int rc;
};

static int held_read_unit(store_tx_t *tx, void *arg) {
    struct held_read *h = arg;
    struct queue_counts c;
    h->rc = tx->s->ops->job_counts(tx, clock_now_ms(), &c); /* a read transaction is open */
    h->rows_seen = c.ready;
    atomic_store(&h->reading, 1);
    for (int64_t deadline = clock_now_ms() + 10000;
         !atomic_load(&h->written) && clock_now_ms() < deadline;)
        nap_ms(2);
    return 0;
}

static void *held_read_main(void *arg) {
    store_t *reader = ((void **)arg)[0];
    struct held_read *h = ((void **)arg)[1];
    int rc = store_call(reader, held_read_unit, h);
    if (rc && !h->rc)
        h->rc = rc;
    return NULL;
}

static int insert_job_unit(store_tx_t *tx, void *arg) {
    (void)arg;
    job_t j;
    memset(&j, 0, sizeof j);
    int64_t now = clock_now_ms();
    crypto_uuid7(j.id, now);
    snprintf(j.type, sizeof j.type, "test.reader");
    j.payload = (char *)"{}";
    j.state = JOB_QUEUED;
    j.max_attempts = 1;
    j.run_at = j.created_at = j.updated_at = now;
    bool existed = false;
    return tx->s->ops->job_insert(tx, &j, &existed);
}

Test(store_sqlite, a_read_on_the_reader_store_does_not_hold_up_the_writer) {
    open_store("normal");
    cr_assert_eq(store_call(st, insert_job_unit, NULL), 0);
    store_t *reader = NULL;
    buf_t err;
    buf_init(&err, 256);
    cr_assert_eq(store_open_reader(&cfg, &reader, &err), 0, "%s", err.data ? err.data : "");
    buf_release(&err);
    struct held_read h = {0};
    void *args[2] = {reader, &h};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, held_read_main, args), 0);
    for (int64_t deadline = clock_now_ms() + 10000;
         !atomic_load(&h.reading) && clock_now_ms() < deadline;)
        nap_ms(2);
    cr_assert(atomic_load(&h.reading), "the reader's unit never ran");
    /* the write commits while the reader's transaction is open */
    cr_assert_eq(store_call(st, insert_job_unit, NULL), 0);
    cr_assert_eq(store_call(st, insert_job_unit, NULL), 0);
    cr_assert(!atomic_load(&h.written));
    atomic_store(&h.written, 1);
    pthread_join(t, NULL);
    cr_assert_eq(h.rc, 0);
    cr_assert_eq(h.rows_seen, 1, "the reader saw %lld ready jobs", (long long)h.rows_seen);
    /* a later read sees the writes; a write through the reader fails and changes nothing */
    struct held_read again = {0};
    atomic_store(&again.written, 1);
    cr_assert_eq(store_call(reader, held_read_unit, &again), 0);
    cr_assert_eq(again.rows_seen, 3);
    cr_assert_neq(store_call(reader, insert_job_unit, NULL), 0);
    store_close(reader);
    close_store();
}
