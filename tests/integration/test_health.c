/*
 * Integration: /health's queue and provider parts and the queue metrics (api.md §9) with the
 * real binary and the ENVIRONMENT=test job types. test.provider fails behind provider "test",
 * so its failures open that provider's circuit in the server.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"

#define KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"

static struct server srv;

static void stop(void) {
    if (srv.pid > 0)
        server_stop(&srv, SIGKILL, 5000);
}

TestSuite(health_it, .fini = stop, .timeout = 60);

static void enqueue(const char *body) {
    struct resp r;
    cr_assert(h_request(srv.port, "POST", "/_test/jobs", KEY, body, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

static json_t *get_json(const char *path, int *status) {
    struct resp r;
    cr_assert(h_request(srv.port, "GET", path, KEY, NULL, &r));
    json_error_t e;
    json_t *j = json_loadb(r.body, r.body_len, 0, &e);
    cr_assert(j, "%s is not JSON: %s", path, r.body);
    if (status)
        *status = r.status;
    resp_free(&r);
    return j;
}

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long qcount(json_t *h, const char *key) {
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(h, "checks"), "queue"), key));
}

static const char *circuit(json_t *h, const char *provider) {
    json_t *p =
        json_object_get(json_object_get(json_object_get(h, "checks"), "providers"), provider);
    return p ? json_string_value(json_object_get(p, "circuit")) : "";
}

/* Polls /health until pred holds (deadline ms); returns the last body (owned). */
static json_t *health_until(bool (*pred)(json_t *), int ms) {
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        json_t *h = get_json("/health", NULL);
        if (pred(h) || h_now_ms() > deadline)
            return h;
        json_decref(h);
        pause_ms(50);
    }
}

static bool seven_ready_two_dead(json_t *h) {
    return qcount(h, "ready") == 7 && qcount(h, "dead") == 2;
}

Test(health_it, queue_counts_in_health_and_metrics) {
    const char *env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=50", NULL};
    server_start(&srv, env);
    enqueue("{\"type\": \"test.nobody-handles-this\", \"count\": 7}"); /* no handler: stays ready */
    enqueue("{\"type\": \"test.fail\", \"count\": 2, \"payload\": {\"permanent\": 1}}");
    json_t *h = health_until(seven_ready_two_dead, 10000);
    cr_assert_eq(qcount(h, "ready"), 7);
    cr_assert_eq(qcount(h, "dead"), 2);
    cr_assert_eq(qcount(h, "running"), 0);
    cr_assert_eq(qcount(h, "scheduled"), 0);
    json_t *age = json_object_get(json_object_get(json_object_get(h, "checks"), "queue"),
                                  "oldest_ready_age_s");
    cr_assert(json_is_number(age) && json_number_value(age) >= 0 && json_number_value(age) < 60);
    cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "healthy");
    cr_assert(json_is_true(json_object_get(h, "degraded_mode")),
              "the fakes are not real providers");
    const char *spec[] = {"llm", "sora", "render", "publish"};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(circuit(h, spec[i]), "closed", "%s", spec[i]);
        cr_assert(json_is_string(json_object_get(json_object_get(h, "provider_modes"), spec[i])));
    }
    cr_assert_str_eq(circuit(h, "test"), "closed");
    json_decref(h);

    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/metrics", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "myloware_queue_jobs{state=\"ready\"} 7\n"), "%s", r.body);
    cr_assert(strstr(r.body, "myloware_queue_jobs{state=\"dead\"} 2\n"));
    cr_assert(strstr(r.body, "myloware_queue_jobs{state=\"running\"} 0\n"));
    cr_assert(strstr(r.body, "myloware_queue_oldest_ready_age_seconds "));
    cr_assert(strstr(r.body, "myloware_provider_circuit_open{provider=\"test\"} 0\n"));
    cr_assert(strstr(r.body, "myloware_jobs_total{type=\"test.fail\",outcome=\"dead\"} 2\n"), "%s",
              r.body);
    cr_assert(strstr(r.body, "myloware_job_duration_seconds_count{type=\"test.fail\"} 2\n"));
    char path[] = "/tmp/myloware-qmetrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
    close(fd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > /dev/null 2>&1", path);
    cr_assert_eq(system(cmd), 0, "promtool check metrics failed on:\n%s", r.body);
    unlink(path);
    resp_free(&r);
}

static bool test_circuit_open(json_t *h) { return strcmp(circuit(h, "test"), "open") == 0; }
static bool all_done(json_t *h) {
    return strcmp(circuit(h, "test"), "closed") == 0 && qcount(h, "ready") == 0 &&
           qcount(h, "scheduled") == 0 && qcount(h, "running") == 0;
}

Test(health_it, open_circuit_is_degraded_and_its_jobs_wait) {
    const char *env[] = {"ENVIRONMENT=test",
                         "QUEUE_POLL_MS=50",
                         "CIRCUIT_BREAKER_FAILURE_THRESHOLD=2",
                         "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S=3",
                         "JOB_RETRY_BASE_S=0.01",
                         "JOB_RETRY_MAX_S=0.02",
                         NULL};
    server_start(&srv, env);
    /* the first attempt of each fails (retryable), later ones succeed */
    enqueue("{\"type\": \"test.provider\", \"count\": 5, \"payload\": {\"fail_times\": 1}}");
    json_t *h = health_until(test_circuit_open, 10000);
    cr_assert_str_eq(circuit(h, "test"), "open", "%s", json_dumps(h, 0));
    cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "degraded");
    json_decref(h);
    /* while open the jobs wait: queued, none dead, none done */
    json_t *jobs = get_json("/admin/jobs?type=test.provider", NULL);
    json_t *list = json_object_get(jobs, "jobs");
    cr_assert_eq(json_array_size(list), 5);
    for (size_t i = 0; i < 5; i++) {
        const char *st = json_string_value(json_object_get(json_array_get(list, i), "state"));
        cr_assert(strcmp(st, "queued") == 0 || strcmp(st, "running") == 0,
                  "job %zu is %s while the circuit is open", i, st);
    }
    json_decref(jobs);
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/metrics", NULL, NULL, &r));
    cr_assert(strstr(r.body, "myloware_provider_circuit_open{provider=\"test\"} 1\n"), "%s",
              r.body);
    resp_free(&r);
    /* after the recovery time a trial succeeds, the circuit closes and every job completes */
    h = health_until(all_done, 20000);
    cr_assert(all_done(h), "%s", json_dumps(h, 0));
    cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "healthy");
    cr_assert_eq(qcount(h, "dead"), 0);
    json_decref(h);
    jobs = get_json("/admin/jobs?type=test.provider&state=succeeded", NULL);
    cr_assert_eq(json_integer_value(json_object_get(jobs, "count")), 5);
    json_decref(jobs);
}
