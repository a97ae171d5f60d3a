/*
 * Integration: `myloware jobs ...` and `myloware dlq ...` against the real server (they are
 * clients of its HTTP routes), with the ENVIRONMENT=test job types: output, effects and exit
 * codes (0 ok, 1 refused or unreachable, 2 usage).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/harness.h"

#define KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"

static struct server srv;
static char out[1 << 16];
static char url_env[64];

static void start(void) {
    const char *env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=50", NULL};
    server_start(&srv, env);
    snprintf(url_env, sizeof url_env, "MYLOWARE_URL=http://127.0.0.1:%d", srv.port);
}

static void stop(void) {
    if (srv.pid > 0)
        server_stop(&srv, SIGKILL, 5000);
}

TestSuite(cli_jobs, .init = start, .fini = stop, .timeout = 60);

static int cli(const char *const *args) {
    const char *env[] = {url_env, NULL};
    return run_cmd(args, env, out, sizeof out);
}

/* Runs args until its output holds needle (deadline ms); returns the last exit code. */
static int cli_until(const char *const *args, const char *needle, int ms) {
    int64_t deadline = h_now_ms() + ms;
    int rc;
    do {
        rc = cli(args);
        if (rc == 0 && strstr(out, needle))
            return rc;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    } while (h_now_ms() < deadline);
    return rc;
}

/* The first column of the first data line of a list (after the header). */
static void first_id(char *id, size_t cap) {
    const char *line = strchr(out, '\n');
    cr_assert(line, "%s", out);
    line++;
    size_t n = strcspn(line, "\t\n");
    cr_assert(n > 0 && n < cap, "%s", out);
    memcpy(id, line, n);
    id[n] = '\0';
}

Test(cli_jobs, dead_letter_life_cycle_through_the_commands) {
    struct resp r;
    cr_assert(h_request(srv.port, "POST", "/_test/jobs", KEY,
                        "{\"type\": \"test.fail\", \"payload\": {\"fail_times\": 1}, \"count\": 1}",
                        &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* max_attempts is 5 and only attempt 1 fails: it retries and succeeds */
    const char *list_ok[] = {"jobs", "list", "--type", "test.fail", "--state", "succeeded", NULL};
    cr_assert_eq(cli_until(list_ok, "1 job(s)", 20000), 0, "%s", out);
    cr_assert(strstr(out, "test.fail\tsucceeded\t2/5"), "%s", out);
    char id[64];
    first_id(id, sizeof id);
    const char *show[] = {"jobs", "show", id, NULL};
    cr_assert_eq(cli(show), 0, "%s", out);
    cr_assert(strstr(out, "\"state\": \"succeeded\""), "%s", out);
    cr_assert(strstr(out, id));

    cr_assert(h_request(srv.port, "POST", "/_test/jobs", KEY,
                        "{\"type\": \"test.fail\", \"payload\": {\"permanent\": 1}, \"count\": 1}",
                        &r));
    resp_free(&r);
    const char *dlq[] = {"dlq", "list", NULL};
    cr_assert_eq(cli_until(dlq, "1 dead letter(s)", 20000), 0, "%s", out);
    cr_assert(strstr(out, "test failure (permanent)"), "%s", out);
    char dead[64];
    first_id(dead, sizeof dead);
    const char *dshow[] = {"dlq", "show", dead, NULL};
    cr_assert_eq(cli(dshow), 0);
    cr_assert(strstr(out, "\"payload\""), "%s", out);
    const char *resolve[] = {"dlq", "resolve", dead, NULL};
    cr_assert_eq(cli(resolve), 0, "%s", out);
    cr_assert(strstr(out, "resolved"), "%s", out);
    cr_assert_eq(cli(resolve), 0);
    cr_assert(strstr(out, "already resolved at 20"), "%s", out);
    cr_assert_eq(cli(dlq), 0);
    cr_assert(strstr(out, "0 dead letter(s)"), "resolved letters are hidden: %s", out);
    const char *all[] = {"dlq", "list", "--all", "--json", NULL};
    cr_assert_eq(cli(all), 0);
    cr_assert(strstr(out, "\"count\": 1"), "%s", out);
    const char *replay[] = {"dlq", "replay", dead, NULL};
    cr_assert_eq(cli(replay), 1, "a resolved letter cannot be replayed: %s", out);
    cr_assert(strstr(out, "is already resolved (HTTP 409)"), "%s", out);
}

Test(cli_jobs, replay_requeues_a_dead_job) {
    struct resp r;
    /* a permanent failure dies at its first attempt */
    cr_assert(h_request(srv.port, "POST", "/_test/jobs", KEY,
                        "{\"type\": \"test.fail\", \"payload\": {\"permanent\": 1}, \"count\": 1}",
                        &r));
    resp_free(&r);
    const char *dlq[] = {"dlq", "list", NULL};
    cr_assert_eq(cli_until(dlq, "1 dead letter(s)", 20000), 0, "%s", out);
    char dead[64];
    first_id(dead, sizeof dead);
    const char *replay[] = {"dlq", "replay", dead, NULL};
    cr_assert_eq(cli(replay), 0, "%s", out);
    char want[160];
    snprintf(want, sizeof want, "dead letter %s replayed as job %s", dead, dead);
    cr_assert(strstr(out, want), "%s", out);
}

Test(cli_jobs, errors_and_exit_codes) {
    const char *missing[] = {"jobs", "show", "01234567-89ab-7cde-8f01-23456789abcd", NULL};
    cr_assert_eq(cli(missing), 1);
    cr_assert(strstr(out, "(HTTP 404)"), "%s", out);
    const char *bad_id[] = {"dlq", "show", "../../health", NULL};
    cr_assert_eq(cli(bad_id), 2, "%s", out);
    const char *no_id[] = {"dlq", "replay", NULL};
    cr_assert_eq(cli(no_id), 2);
    const char *bad_opt[] = {"jobs", "list", "--frob", NULL};
    cr_assert_eq(cli(bad_opt), 2);
    cr_assert(strstr(out, "--frob"), "%s", out);
    const char *bad_state[] = {"jobs", "list", "--state", "sideways", NULL};
    cr_assert_eq(cli(bad_state), 1);
    cr_assert(strstr(out, "HTTP 422"), "%s", out);
    const char *list[] = {"jobs", "list", NULL};
    const char *wrong_key[] = {url_env, "MYLOWARE_API_KEY=not-the-key", NULL};
    cr_assert_eq(run_cmd(list, wrong_key, out, sizeof out), 1);
    cr_assert(strstr(out, "HTTP 401"), "%s", out);
    cr_assert_null(strstr(out, "not-the-key"), "the key is never printed");
    const char *nowhere[] = {"MYLOWARE_URL=http://127.0.0.1:1", NULL};
    cr_assert_eq(run_cmd(list, nowhere, out, sizeof out), 1);
    cr_assert(strstr(out, "cannot reach the server"), "%s", out);
    const char *helps[][4] = {{"jobs", "list", "--help"},  {"jobs", "show", "--help"},
                              {"dlq", "list", "--help"},   {"dlq", "show", "--help"},
                              {"dlq", "replay", "--help"}, {"dlq", "resolve", "--help"}};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(run_cmd(helps[i], NULL, out, sizeof out), 0, "%s %s --help", helps[i][0],
                     helps[i][1]);
        cr_assert(strstr(out, "usage: myloware"), "%s", out);
    }
}
