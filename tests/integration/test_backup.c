/*
 * Integration: `myloware backup PATH` (runtime.md §7, §8) while the server serves and writes:
 * the copy opens, passes PRAGMA integrity_check, holds every job acknowledged before the backup
 * started, and a server started on it serves. Refusals: an existing PATH, a missing database,
 * no PATH.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/harness.h"

#define KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"
#define PER_POST 20

static char out[1 << 16];

struct writer {
    int port;
    atomic_bool stop;
    atomic_int acked; /* POSTs answered 200 (PER_POST jobs each) */
    atomic_int failed;
};

/* Keeps enqueuing jobs (which the server also runs: claims, finishes) until told to stop. */
static void *write_loop(void *arg) {
    struct writer *w = arg;
    while (!atomic_load(&w->stop)) {
        struct resp r;
        char body[64];
        snprintf(body, sizeof body, "{\"type\":\"test.noop\",\"count\":%d}", PER_POST);
        if (h_request(w->port, "POST", "/_test/jobs", KEY, body, &r)) {
            atomic_fetch_add(r.status == 200 ? &w->acked : &w->failed, 1);
            resp_free(&r);
        } else {
            atomic_fetch_add(&w->failed, 1);
        }
    }
    return NULL;
}

static long long count_jobs(const char *db) {
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", db);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok", "integrity_check of %s", db);
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

Test(backup, copy_taken_while_serving_under_writes_opens_checks_and_serves, .timeout = 120) {
    static const char *env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=20", NULL};
    struct server s;
    server_start(&s, env);
    struct writer w = {.port = s.port};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, write_loop, &w), 0);
    /* writes are flowing before the backup starts */
    int64_t deadline = h_now_ms() + 30000;
    while (atomic_load(&w.acked) < 5 && h_now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int before = atomic_load(&w.acked);
    cr_assert_geq(before, 5, "the server took writes (failed %d)", atomic_load(&w.failed));

    char copy_dir[] = "/tmp/myloware-backup-XXXXXX";
    cr_assert_not_null(mkdtemp(copy_dir));
    char src_url[400], copy[300];
    snprintf(src_url, sizeof src_url, "--database-url=sqlite:%s/db.sqlite", s.dir);
    snprintf(copy, sizeof copy, "%s/db.sqlite", copy_dir);
    const char *args[] = {"backup", src_url, copy, NULL};
    int rc = run_cmd(args, NULL, out, sizeof out);
    int after = atomic_load(&w.acked);
    cr_assert_eq(rc, 0, "backup: %s", out);
    cr_assert(strstr(out, "integrity ok"), "%s", out);

    /* the server kept serving writes during and after the backup */
    deadline = h_now_ms() + 30000;
    while (atomic_load(&w.acked) < after + 3 && h_now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    cr_assert_geq(atomic_load(&w.acked), after + 3, "writes went on after the backup");
    cr_assert_eq(atomic_load(&w.failed), 0, "no write failed while the backup ran");

    /* one self-contained file: no journal or WAL beside it, no temporary left */
    char side[400];
    struct stat sb;
    snprintf(side, sizeof side, "%s-wal", copy);
    cr_assert_neq(stat(side, &sb), 0, "no -wal beside the copy");
    snprintf(side, sizeof side, "%s-journal", copy);
    cr_assert_neq(stat(side, &sb), 0);
    char ls[600];
    snprintf(ls, sizeof ls, "ls %s | grep -c tmp- > /dev/null", copy_dir);
    cr_assert_neq(system(ls), 0, "no temporary file left in %s", copy_dir);

    long long n = count_jobs(copy);
    cr_assert_geq(n, (long long)before * PER_POST,
                  "every job acknowledged before the backup is in it");
    cr_assert_leq(n, (long long)(atomic_load(&w.acked) + 1) * PER_POST, "and nothing invented");

    /* a second backup to the same path is refused and leaves the first untouched */
    rc = run_cmd(args, NULL, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "File exists"), "%s", out);
    cr_assert_eq(count_jobs(copy), n);

    cr_assert_eq(server_stop(&s, SIGTERM, 30000), 0);

    /* a server started on the copy serves it */
    struct server r;
    server_start_in(&r, copy_dir, env);
    struct resp a;
    cr_assert(h_request(r.port, "GET", "/health", NULL, NULL, &a));
    cr_assert_eq(a.status, 200, "%s", a.body);
    resp_free(&a);
    cr_assert(h_request(r.port, "GET", "/health/db", NULL, NULL, &a));
    cr_assert_eq(a.status, 200, "%s", a.body);
    resp_free(&a);
    cr_assert(
        h_request(r.port, "GET", "/admin/jobs?limit=1", "X-API-Key: dev-api-key\r\n", NULL, &a));
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert(strstr(a.body, "test.noop"), "the copy's jobs are served: %s", a.body);
    resp_free(&a);
    cr_assert_eq(server_stop(&r, SIGTERM, 30000), 0);

    char rm[700];
    snprintf(rm, sizeof rm, "rm -rf %s %s", copy_dir, s.dir);
    cr_assert_eq(system(rm), 0);
}

Test(backup, refusals_exit_1_or_2_and_write_nothing) {
    char dir[] = "/tmp/myloware-backup-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char url[300], dest[300];
    snprintf(url, sizeof url, "--database-url=sqlite:%s/missing.sqlite", dir);
    snprintf(dest, sizeof dest, "%s/copy.sqlite", dir);
    const char *missing[] = {"backup", url, dest, NULL};
    cr_assert_eq(run_cmd(missing, NULL, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "missing.sqlite"), "%s", out);
    struct stat sb;
    cr_assert_neq(stat(dest, &sb), 0, "no copy");
    snprintf(url, sizeof url, "%s/missing.sqlite", dir);
    cr_assert_neq(stat(url, &sb), 0, "the missing database was not created");
    const char *none[] = {"backup", NULL};
    cr_assert_eq(run_cmd(none, NULL, out, sizeof out), 2, "%s", out);
    const char *two[] = {"backup", "a.db", "b.db", NULL};
    cr_assert_eq(run_cmd(two, NULL, out, sizeof out), 2, "%s", out);
    /* not a MyloWare database */
    snprintf(url, sizeof url, "%s/other.sqlite", dir);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(url, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    char url2[400];
    snprintf(url2, sizeof url2, "--database-url=sqlite:%s", url);
    const char *other[] = {"backup", url2, dest, NULL};
    cr_assert_eq(run_cmd(other, NULL, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "not a MyloWare database"), "%s", out);
    cr_assert_neq(stat(dest, &sb), 0, "no copy");
    char rm[400];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}
