/*
 * Integration: the queue with the real binary (ENVIRONMENT=test job types). kill -9 at random
 * points, several processes on one SQLite file, and the SIGTERM drain. The database is read
 * directly to check the promises: nothing lost, nothing completed twice.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"

#define KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"

static long long q(const char *dir, const char *sql) {
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void enqueue(int port, const char *body) {
    struct resp r;
    cr_assert(h_request(port, "POST", "/_test/jobs", KEY, body, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

/* Waits until sql gives want (deadline in ms); returns the last value. */
static long long wait_for(const char *dir, const char *sql, long long want, int ms) {
    int64_t deadline = h_now_ms() + ms;
    long long v;
    do {
        v = q(dir, sql);
        if (v == want)
            return v;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    } while (h_now_ms() < deadline);
    return v;
}

static const char *test_env[] = {"ENVIRONMENT=test", "JOB_LEASE_S=10", "QUEUE_POLL_MS=50", NULL};

Test(queue_it, kill_9_at_random_points_loses_nothing_and_completes_nothing_twice, .timeout = 180) {
    struct server s;
    server_start(&s, test_env);
    enqueue(s.port, "{\"type\":\"test.effect\",\"count\":2000,\"per_unit\":1}");
    srand((unsigned)getpid());
    for (int round = 0; round < 6; round++) {
        struct timespec ts = {0, (long)(5 + rand() % 60) * 1000 * 1000};
        nanosleep(&ts, NULL); /* a random instant in the processing, not a wait for a condition */
        kill(s.pid, SIGKILL);
        int status;
        waitpid(s.pid, &status, 0);
        s.pid = 0;
        char dir[256];
        snprintf(dir, sizeof dir, "%s", s.dir);
        server_start_in(&s, dir, test_env);
    }
    long long done =
        wait_for(s.dir, "SELECT count(*) FROM jobs WHERE state = 'succeeded'", 2000, 60000);
    cr_assert_eq(done, 2000, "succeeded %lld of 2000", done);
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM jobs"), 2000, "jobs lost or added");
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM test_effects"), 2000,
                 "each side effect exactly once");
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM jobs j LEFT JOIN test_effects e ON e.job_id = j.id "
                          "WHERE e.job_id IS NULL"),
                 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

static pid_t workers[2];

/* Runs even when an assertion failed: no worker outlives its test. */
static void kill_workers(void) {
    for (int i = 0; i < 2; i++)
        if (workers[i] > 0) {
            kill(workers[i], SIGKILL);
            waitpid(workers[i], NULL, 0);
            workers[i] = 0;
        }
}

/* Sanitizer builds run about ten times slower: the big test scales down (MYLOWARE_TEST_SLOW). */
static int scaled(int n) { return getenv("MYLOWARE_TEST_SLOW") ? n / 5 : n; }

static pid_t spawn_worker(const char *dir, const char *logname) {
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        harness_die_with_parent(parent);
        char db[400], log[400];
        snprintf(db, sizeof db, "--database-url=sqlite:%s/db.sqlite", dir);
        snprintf(log, sizeof log, "%s/%s", dir, logname);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        for (const char **e = test_env; *e; e++)
            putenv((char *)*e);
        const char *bin = getenv("MYLOWARE_BIN") ? getenv("MYLOWARE_BIN") : "./myloware";
        execl(bin, bin, "worker", "run", db, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int stop_pid(pid_t pid) {
    kill(pid, SIGTERM);
    int64_t deadline = h_now_ms() + 20000;
    int status;
    while (h_now_ms() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

Test(queue_it, three_processes_drain_ten_thousand_jobs_once_each, .timeout = 180,
     .fini = kill_workers) {
    struct server s;
    server_start(&s, test_env);
    pid_t w1 = workers[0] = spawn_worker(s.dir, "worker1.log"),
          w2 = workers[1] = spawn_worker(s.dir, "worker2.log");
    int n = scaled(10000);
    char body[128];
    snprintf(body, sizeof body, "{\"type\":\"test.effect\",\"count\":%d,\"per_unit\":100}", n);
    enqueue(s.port, body);
    long long done =
        wait_for(s.dir, "SELECT count(*) FROM jobs WHERE state = 'succeeded'", n, 120000);
    cr_assert_eq(done, n);
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM test_effects"), n);
    /* Completed twice would break test_effects' key (checked above). A second attempt is
     * legitimate only when a lease expired, which a sanitizer's slowness can cause. */
    if (!getenv("MYLOWARE_TEST_SLOW"))
        cr_assert_eq(q(s.dir, "SELECT count(*) FROM jobs WHERE attempts != 1"), 0,
                     "a job ran more than once");
    cr_assert_eq(stop_pid(w1), 0);
    workers[0] = 0;
    cr_assert_eq(stop_pid(w2), 0);
    workers[1] = 0;
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    /* the workers really took part: each logged its start and drained without error */
    for (int i = 1; i <= 2; i++) {
        struct server w = {0};
        snprintf(w.log, sizeof w.log, "%.250s/worker%d.log", s.dir, i);
        char *log = server_log(&w);
        cr_assert(strstr(log, "jobs drained"), "worker %d: %s", i, log);
        cr_assert_null(strstr(log, "\"level\":\"error\""), "worker %d: %s", i, log);
        free(log);
    }
}

Test(queue_it, sigterm_lets_short_jobs_finish_and_hands_long_ones_back, .timeout = 60) {
    struct server s;
    const char *env[] = {"ENVIRONMENT=test", "SHUTDOWN_GRACE_S=1", "QUEUE_POLL_MS=50", NULL};
    server_start(&s, env);
    enqueue(s.port, "{\"type\":\"test.sleep\",\"payload\":{\"ms\":300}}");
    enqueue(s.port, "{\"type\":\"test.sleep\",\"payload\":{\"ms\":20000}}");
    cr_assert_eq(wait_for(s.dir, "SELECT count(*) FROM jobs WHERE state = 'running'", 2, 5000), 2);
    int64_t t0 = h_now_ms();
    cr_assert_eq(server_stop(&s, SIGTERM, 10000), 0);
    cr_assert_lt(h_now_ms() - t0, 5000, "the grace period was not honoured");
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM jobs WHERE state = 'succeeded'"), 1,
                 "the short job finished");
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts = 0"), 1,
                 "the long job was handed back without losing an attempt");
}

Test(queue_it, failing_jobs_retry_then_die_and_replay_from_the_api, .timeout = 60) {
    struct server s;
    const char *env[] = {"ENVIRONMENT=test", "JOB_RETRY_BASE_S=0.01", "JOB_MAX_ATTEMPTS=3",
                         "QUEUE_POLL_MS=20", NULL};
    server_start(&s, env);
    enqueue(s.port, "{\"type\":\"test.fail\",\"payload\":{\"fail_times\":2}}");
    cr_assert_eq(wait_for(s.dir,
                          "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND attempts = 3", 1,
                          10000),
                 1);
    enqueue(s.port, "{\"type\":\"test.fail\",\"payload\":{\"fail_times\":99}}");
    cr_assert_eq(wait_for(s.dir, "SELECT count(*) FROM jobs WHERE state = 'dead'", 1, 10000), 1);
    struct resp r;
    cr_assert(h_request(s.port, "GET", "/admin/dlq", "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    char *id = strstr(r.body, "\"id\":\"");
    cr_assert(id, "%s", r.body);
    char jid[37];
    memcpy(jid, id + 6, 36);
    jid[36] = '\0';
    cr_assert(strstr(r.body, "\"attempts\":3"), "%s", r.body);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/admin/dlq/%s/replay", jid);
    cr_assert(h_request(s.port, "POST", path, "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"status\":\"replayed\""));
    resp_free(&r);
    /* the replayed job fails its three attempts again: a dead letter again, unresolved */
    cr_assert_eq(wait_for(s.dir,
                          "SELECT count(*) FROM jobs WHERE state = 'dead' AND resolved_at IS NULL "
                          "AND last_error = 'test failure 3' AND updated_at > created_at + 1",
                          1, 10000),
                 1);
    char rpath[128];
    snprintf(rpath, sizeof rpath, "/admin/dlq/%s/resolve", jid);
    cr_assert(h_request(s.port, "POST", rpath, "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert(strstr(r.body, "\"status\":\"resolved\""), "%s", r.body);
    resp_free(&r);
    cr_assert(h_request(s.port, "POST", rpath, "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert(strstr(r.body, "\"status\":\"already_resolved\""), "%s", r.body);
    resp_free(&r);
    cr_assert(h_request(s.port, "POST", path, "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(r.body, "is already resolved"), "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", jid);
    cr_assert(h_request(s.port, "GET", path, "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert(
        h_request(s.port, "GET", "/v1/jobs/not-a-uuid", "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    cr_assert_eq(
        q(s.dir,
          "SELECT count(*) FROM audit_log WHERE action = 'dlq.replay' AND actor LIKE 'key:%'"),
        1);
    cr_assert_eq(q(s.dir, "SELECT count(*) FROM audit_log WHERE action = 'dlq.resolve'"), 1);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(queue_it, test_jobs_route_is_absent_outside_test_environment, .timeout = 30) {
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    cr_assert(h_request(s.port, "POST", "/_test/jobs", KEY, "{\"type\":\"test.noop\"}", &r));
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
