/*
 * Integration: the Postgres backend with the real binary. In every build: `version` names the
 * backends built in, and a binary built without Postgres refuses a postgres:// URL with a clear
 * message. In a WITH_POSTGRES=1 build, against the server of scripts/pg-test.sh
 * (MYLOWARE_TEST_DATABASE_URL; a fresh schema per test): `migrate`, /health/db, and a whole
 * motivational run with the fakes split over two processes sharing the database, an API
 * process (serve --role api, which also hosts the fakes) and a worker (worker run), the worker
 * killed with SIGKILL in the middle of the run and restarted: the run completes, each clip once.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"
#include "support/pgtest.h"
#include "support/runapi.h"

#define JSON_KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"

static char out[65536];

Test(postgres, version_names_the_backends_built_in) {
    const char *args[] = {"version", NULL};
    cr_assert_eq(run_cmd(args, NULL, out, sizeof out), 0, "%s", out);
#ifdef WITH_POSTGRES
    cr_assert(strstr(out, "databases: sqlite ") && strstr(out, ", postgres\n"), "%s", out);
#else
    cr_assert(strstr(out, "(built without postgres)"), "%s", out);
#endif
}

#ifndef WITH_POSTGRES

Test(postgres, a_build_without_postgres_refuses_a_postgres_url) {
    const char *urls[] = {"--database-url=postgres://app:s3cret@127.0.0.1:5432/myloware",
                          "--database-url=postgresql://app:s3cret@127.0.0.1/myloware"};
    for (size_t i = 0; i < 2; i++) {
        const char *serve[] = {"serve", "--host=127.0.0.1", "--port=0", urls[i], NULL};
        cr_assert_eq(run_cmd(serve, NULL, out, sizeof out), 1, "%s", out);
        cr_assert(strstr(out, "DATABASE_URL: this binary was built without Postgres support "
                              "(rebuild with make WITH_POSTGRES=1)"),
                  "%s", out);
        cr_assert_null(strstr(out, "s3cret"), "the password leaked: %s", out);
        const char *migrate[] = {"migrate", urls[i], NULL};
        cr_assert_eq(run_cmd(migrate, NULL, out, sizeof out), 1, "%s", out);
        cr_assert(strstr(out, "built without Postgres support"), "%s", out);
    }
}

#else /* WITH_POSTGRES */

static char url[1200], url_arg[1300];

/* A fresh schema on the test server; skipped (with the reason) when no server was given. */
static void need_server(void) {
    const char *base = getenv("MYLOWARE_TEST_DATABASE_URL");
    if (!base || !pgtest_is_pg(base))
        cr_skip_test("no Postgres server: run `make WITH_POSTGRES=1 test-pg` (scripts/pg-test.sh "
                     "starts one)");
    pgtest_isolate(base, url, sizeof url);
    snprintf(url_arg, sizeof url_arg, "--database-url=%s", url);
}

Test(postgres, migrate_then_health_db_says_postgres, .timeout = 60) {
    need_server();
    const char *migrate[] = {"migrate", url_arg, NULL};
    cr_assert_eq(run_cmd(migrate, NULL, out, sizeof out), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "schema version %d (postgres)", latest_schema_version());
    cr_assert(strstr(out, want), "want '%s': %s", want, out);
    cr_assert_eq(run_cmd(migrate, NULL, out, sizeof out), 0, "a second migrate changes nothing: %s",
                 out);
    cr_assert(strstr(out, want), "%s", out);
    char sql[1400];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM schema_version");
    cr_assert_eq(pgtest_scalar(url, sql), latest_schema_version(), "one row per migration");

    struct server s;
    const char *args[] = {url_arg, NULL};
    server_start_with(&s, NULL, args, NULL);
    int st;
    json_t *j = ra_call(s.port, "GET", "/health/db", NULL, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(ra_str(j, "backend"), "postgres");
    cr_assert_str_eq(ra_str(j, "database"), "healthy");
    cr_assert_eq(json_integer_value(json_object_get(j, "schema_version")), latest_schema_version());
    json_decref(j);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* The store's connections speak UTF-8 whatever client_encoding the URL names: a brief with
 * non-Latin-1 characters is stored as the same characters, not as their UTF-8 bytes read as
 * Latin-1. */
Test(postgres, the_store_speaks_utf8_whatever_the_url_says, .timeout = 60) {
    need_server();
    char arg[1500];
    snprintf(arg, sizeof arg, "--database-url=%s&client_encoding=LATIN1", url);
    const char *args[] = {arg, NULL}, *env[40];
    ra_env(env, 40, NULL);
    struct server s;
    server_start_with(&s, NULL, args, env);
    char *id = ra_start_run(
        s.port, "{\"project\":\"motivational\",\"brief\":\"caf\\u00e9 \\u2615 \\u6f22\"}");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runs WHERE id = '%s' AND brief = 'caf\u00e9 \u2615 \u6f22'", id);
    cr_assert_eq(pgtest_scalar(url, sql), 1, "the brief is stored as the characters sent");
    json_t *r = ra_get_run(s.port, id);
    cr_assert_str_eq(ra_str(r, "brief"), "caf\u00e9 \u2615 \u6f22");
    json_decref(r);
    free(id);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(postgres, a_wrong_server_is_a_clear_error_without_the_password, .timeout = 60) {
    need_server();
    /* a socket directory with no server in it */
    const char *bad =
        "--database-url=postgresql://app:s3cret@/myloware?host=/nonexistent-myloware-dir";
    const char *migrate[] = {"migrate", bad, NULL};
    cr_assert_eq(run_cmd(migrate, NULL, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cannot connect to Postgres"), "%s", out);
    cr_assert_null(strstr(out, "s3cret"), "the password leaked: %s", out);
}

/* ---- a whole run over two processes ------------------------------------------------------------
 */

static const char *run_env[16];

static void env_init(void) {
    const char *e[] = {"RENDER_SCALE=0.1", "FAKE_CLIP_SECONDS=1", "FAKE_CLIP_SIZE=96x160",
                       "FAKE_VIDEO_DELAY_MS=30", NULL};
    ra_env(run_env, sizeof run_env / sizeof run_env[0], e);
}

static struct server worker, worker2;

static void kill_workers(void) {
    struct server *ws[] = {&worker, &worker2};
    for (int i = 0; i < 2; i++)
        if (ws[i]->pid > 0) {
            kill(ws[i]->pid, SIGKILL);
            waitpid(ws[i]->pid, NULL, 0);
            ws[i]->pid = 0;
        }
}

/* `myloware worker run` on the shared database and media directory, logging to dir/logname;
 * its providers call the fakes of the API process (PORT). Waits for its "worker started". */
static void worker_start(struct server *w, const char *dir, int api_port, const char *logname,
                         const char *const *env) {
    char port[32], media[400];
    snprintf(port, sizeof port, "--port=%d", api_port);
    snprintf(media, sizeof media, "--media-dir=%s/media", dir);
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->log, sizeof w->log, "%.250s/%s", dir, logname);
    char *before = server_log(w);
    size_t skip = strlen(before);
    free(before);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        harness_die_with_parent(parent);
        int fd = open(w->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        unsetenv("ENVIRONMENT");
        unsetenv("API_KEYS");
        for (const char *const *e = env; *e; e++)
            putenv((char *)*e);
        const char *bin = getenv("MYLOWARE_BIN") ? getenv("MYLOWARE_BIN") : "./myloware";
        execl(bin, bin, "worker", "run", url_arg, media, port, (char *)NULL);
        _exit(127);
    }
    w->pid = pid;
    int64_t deadline = h_now_ms() + 15000;
    for (;;) {
        char *log = server_log(w);
        bool up = strlen(log) > skip && strstr(log + skip, "\"msg\":\"worker started\"");
        free(log);
        if (up)
            return;
        cr_assert(server_alive(w), "the worker exited during start-up");
        cr_assert(h_now_ms() < deadline, "the worker did not start within 15 s");
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
}

/* What the jobs of the run and the database's sessions are doing: a failed wait's diagnosis. */
static void pg_diag(const char *id, char *diag, size_t cap) {
    char sql[600], jobs[4096], locks[2048];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(type || ' ' || state || ' attempts ' || attempts || ' owner ' || "
             "coalesce(lease_owner, '-') || ' run_at-now ' || (run_at - (extract(epoch from now()) "
             "* 1000)::bigint) "
             "|| ' err ' || coalesce(last_error, '-'), '; ' ORDER BY created_at) FROM jobs WHERE "
             "run_id = '%s'",
             id);
    pgtest_text(url, sql, jobs, sizeof jobs);
    pgtest_text(
        url,
        "SELECT string_agg(pid || ' ' || coalesce(application_name, '') || ' ' || state || ' ' || "
        "coalesce(wait_event_type, '-') || ' ' || left(query, 80), '; ') FROM pg_stat_activity "
        "WHERE backend_type = 'client backend'",
        locks, sizeof locks);
    snprintf(diag, cap, "jobs: %s\nsessions: %s", jobs, locks);
}

static json_t *wait_status(int port, const char *id, const char *want, int ms) {
    return ra_wait_status_diag(port, id, want, ms, pg_diag);
}

Test(postgres, api_and_worker_processes_finish_a_run_across_a_worker_kill_9, .timeout = 240,
     .fini = kill_workers) {
    need_server();
    env_init();
    struct server api;
    const char *args[] = {url_arg, "--role=api", NULL};
    server_start_with(&api, NULL, args, run_env);
    worker_start(&worker, api.dir, api.port, "worker.log", run_env);

    int st;
    json_t *j =
        ra_call(api.port, "POST", "/v1/runs/start", JSON_KEY,
                "{\"project\":\"motivational\",\"brief\":\"two processes, one database\"}", &st);
    cr_assert_eq(st, 200, "start: %d", st);
    char id[64];
    snprintf(id, sizeof id, "%s", ra_str(j, "run_id"));
    json_decref(j);
    json_decref(wait_status(api.port, id, "awaiting_ideation_approval", 60000));
    json_decref(ra_approve(api.port, id, "ideation"));
    json_decref(wait_status(api.port, id, "awaiting_video_generation", 60000));

    kill(worker.pid, SIGKILL); /* clips are being made, downloaded, transcoded by the worker */
    waitpid(worker.pid, NULL, 0);
    worker.pid = 0;
    worker_start(&worker, api.dir, api.port, "worker.log",
                 run_env); /* re-queues the dead worker's jobs at once (same host) */

    json_t *r = wait_status(api.port, id, "awaiting_publish_approval", 120000);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "artifacts"), "clips")), 2);
    json_decref(r);
    json_decref(ra_approve(api.port, id, "publish"));
    json_decref(wait_status(api.port, id, "completed", 60000));

    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM artifacts WHERE run_id = '%s' AND type = 'video_clip'", id);
    cr_assert_eq(pgtest_scalar(url, sql), 2, "each clip exactly once");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE run_id = '%s' AND state <> 'succeeded'", id);
    cr_assert_eq(pgtest_scalar(url, sql), 0, "every job of the run succeeded");
    cr_assert_eq(server_stop(&worker, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&api, SIGTERM, 20000), 0);
}

/* ---- many processes on one queue
 * ----------------------------------------------------------------- */

/* Waits until the count query gives want (deadline in ms); returns the last value. */
static long long wait_count(const char *sql, long long want, int ms) {
    int64_t deadline = h_now_ms() + ms;
    long long v;
    do {
        v = pgtest_scalar(url, sql);
        if (v == want)
            return v;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    } while (h_now_ms() < deadline);
    return v;
}

Test(postgres, three_processes_drain_the_queue_once_each_across_a_worker_kill_9, .timeout = 180,
     .fini = kill_workers) {
    need_server();
    const char *env[] = {"ENVIRONMENT=test", "JOB_LEASE_S=10", "QUEUE_POLL_MS=50", NULL};
    struct server s;
    const char *args[] = {url_arg, NULL};
    server_start_with(&s, NULL, args, env);
    worker_start(&worker, s.dir, s.port, "worker1.log", env);
    worker_start(&worker2, s.dir, s.port, "worker2.log", env);
    int n = getenv("MYLOWARE_TEST_SLOW") ? 600 : 3000;
    char body[128];
    snprintf(body, sizeof body, "{\"type\":\"test.effect\",\"count\":%d,\"per_unit\":50}", n);
    struct resp r;
    cr_assert(h_request(s.port, "POST", "/_test/jobs", JSON_KEY, body, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    /* kill -9 one worker once the queue is moving: its claimed jobs come back (same host) */
    wait_count("SELECT least(count(*), 1) FROM test_effects", 1, 30000);
    kill(worker.pid, SIGKILL);
    waitpid(worker.pid, NULL, 0);
    worker.pid = 0;
    worker_start(&worker, s.dir, s.port, "worker1.log", env);

    long long done = wait_count("SELECT count(*) FROM jobs WHERE state = 'succeeded'", n, 120000);
    cr_assert_eq(done, n, "succeeded %lld of %d", done, n);
    cr_assert_eq(pgtest_scalar(url, "SELECT count(*) FROM jobs"), n, "jobs lost or added");
    cr_assert_eq(pgtest_scalar(url, "SELECT count(*) FROM test_effects"), n,
                 "each side effect exactly once");
    cr_assert_eq(server_stop(&worker2, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&worker, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    char *log = server_log(&worker2);
    cr_assert(strstr(log, "jobs drained"), "worker 2: %s", log);
    cr_assert_null(strstr(log, "\"level\":\"error\""), "worker 2: %s", log);
    free(log);
}

Test(postgres, a_worker_polling_once_a_minute_starts_other_processes_jobs_at_once, .timeout = 90,
     .fini = kill_workers) {
    need_server();
    /* the worker's poll is 60 s and nothing is rescued: only the notification can wake it */
    const char *api_env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=60000", NULL};
    const char *args[] = {url_arg, "--role=api", NULL};
    struct server s;
    server_start_with(&s, NULL, args, api_env);
    worker_start(&worker, s.dir, s.port, "worker1.log", api_env);
    int64_t t0 = h_now_ms();
    struct resp r;
    cr_assert(h_request(s.port, "POST", "/_test/jobs", JSON_KEY,
                        "{\"type\":\"test.effect\",\"count\":20,\"per_unit\":5}", &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    long long done = wait_count("SELECT count(*) FROM test_effects", 20, 30000);
    cr_assert_eq(done, 20, "the worker ran %lld of 20 jobs within 30 s", done);
    cr_assert_lt(h_now_ms() - t0, 30000);

    /* the server drops every connection of both processes (a failover, a restart): each
     * reconnects by itself, the API at its next transaction, the worker's listener within a
     * second, which then claims what was enqueued meanwhile */
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name = '%s' AND pid <> pg_backend_pid()",
             pgtest_schema());
    cr_assert_geq(pgtest_scalar(url, sql), 3,
                  "the API's, the worker's and its listener's connections");
    cr_assert(h_request(s.port, "POST", "/_test/jobs", JSON_KEY,
                        "{\"type\":\"test.effect\",\"count\":20,\"per_unit\":5}", &r));
    cr_assert_eq(r.status, 200, "the API reconnected: %s", r.body);
    resp_free(&r);
    done = wait_count("SELECT count(*) FROM test_effects", 40, 30000);
    cr_assert_eq(done, 40, "after the reconnection the worker ran %lld of 40 jobs within 30 s",
                 done);
    char *log = server_log(&worker);
    cr_assert(strstr(log, "job notifications interrupted"), "%s", log);
    free(log);
    cr_assert_eq(server_stop(&worker, SIGTERM, 20000), 0);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

#endif /* WITH_POSTGRES */
