/*
 * test_metrics: the registry and its Prometheus text exposition (format 0.0.4): HELP and TYPE
 * lines, counters, gauges, cumulative histogram buckets with +Inf, _sum and _count, label
 * escaping. The registry is process-wide; Criterion runs each test in its own process.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"

static buf_t out;

static void setup(void) {
    metrics_init();
    buf_init(&out, 1 << 22);
}

static void teardown(void) {
    buf_release(&out);
    metrics_release();
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void) {
    buf_reset(&out);
    metrics_render(&out);
    cr_assert_not_null(out.data);
    return out.data;
}

/* Asserts that text has the exact line (without its '\n'). */
static void expect_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    }
    cr_assert_fail("missing line '%s' in:\n%s", line, text);
}

static void expect_no_line_starting(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        cr_assert_neq(strncmp(p, prefix, n), 0, "unexpected line starting '%s'", prefix);
}

Test(metrics, counter) {
    metrics_add(M_HTTP_REQUESTS, "method=\"GET\",route=\"/health\",status=\"200\"", 1);
    metrics_add(M_HTTP_REQUESTS, "method=\"GET\",route=\"/health\",status=\"200\"", 2);
    metrics_add(M_HTTP_REQUESTS, "method=\"POST\",route=\"/v1/runs\",status=\"201\"", 1);
    cr_assert_float_eq(
        metrics_get(M_HTTP_REQUESTS, "method=\"GET\",route=\"/health\",status=\"200\""), 3, 1e-9);
    cr_assert_float_eq(
        metrics_get(M_HTTP_REQUESTS, "method=\"POST\",route=\"/v1/runs\",status=\"201\""), 1, 1e-9);
    const char *t = render();
    expect_line(t, "# HELP myloware_http_requests_total HTTP requests answered, by method, route "
                   "pattern and status");
    expect_line(t, "# TYPE myloware_http_requests_total counter");
    expect_line(t,
                "myloware_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 3");
    expect_line(
        t, "myloware_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"201\"} 1");
    /* series in creation order, after their TYPE line */
    const char *type = strstr(t, "# TYPE myloware_http_requests_total counter\n");
    const char *get = strstr(t, "myloware_http_requests_total{method=\"GET\"");
    const char *post = strstr(t, "myloware_http_requests_total{method=\"POST\"");
    cr_assert(type && get && post && type < get && get < post);
}

Test(metrics, series_without_labels) {
    metrics_add(M_WEBHOOKS, "", 1);
    metrics_add(M_WEBHOOKS, NULL, 1);
    cr_assert_float_eq(metrics_get(M_WEBHOOKS, NULL), 2, 1e-9);
    cr_assert_float_eq(metrics_get(M_WEBHOOKS, ""), 2, 1e-9);
    const char *t = render();
    expect_line(t, "myloware_webhooks_total 2");
    expect_no_line_starting(t, "myloware_webhooks_total{");
}

Test(metrics, gauge) {
    metrics_set(M_HTTP_CONNECTIONS, "", 5);
    metrics_set(M_HTTP_CONNECTIONS, "", 3);
    metrics_add(M_HTTP_CONNECTIONS, "", -1);
    cr_assert_float_eq(metrics_get(M_HTTP_CONNECTIONS, ""), 2, 1e-9);
    metrics_set(M_QUEUE_JOBS, "state=\"ready\"", 7);
    metrics_set(M_QUEUE_JOBS, "state=\"dead\"", 0);
    const char *t = render();
    expect_line(t, "# TYPE myloware_http_connections gauge");
    expect_line(t, "myloware_http_connections 2");
    expect_line(t, "myloware_queue_jobs{state=\"ready\"} 7");
    expect_line(t, "myloware_queue_jobs{state=\"dead\"} 0");
}

Test(metrics, get_absent_is_zero) {
    cr_assert_float_eq(metrics_get(M_RUNS, "workflow=\"x\""), 0, 1e-12);
    metrics_add(M_RUNS, "workflow=\"x\"", 1);
    cr_assert_float_eq(metrics_get(M_RUNS, "workflow=\"y\""), 0, 1e-12);
    cr_assert_float_eq(metrics_get(M_RUNS, "workflow=\"x\""), 1, 1e-12);
    metrics_init();
    cr_assert_float_eq(metrics_get(M_RUNS, "workflow=\"x\""), 0, 1e-12, "init resets");
}

Test(metrics, many_series_in_one_family) {
    char labels[64];
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof labels, "type=\"t%d\"", i);
        metrics_add(M_JOBS, labels, i);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof labels, "type=\"t%d\"", i);
        cr_assert_float_eq(metrics_get(M_JOBS, labels), i, 1e-9, "%s", labels);
    }
}

Test(metrics, histogram_default_buckets) {
    const char *l = "route=\"/x\"";
    metrics_observe(M_HTTP_DURATION, l, 0.25);
    metrics_observe(M_HTTP_DURATION, l, 0.5);
    metrics_observe(M_HTTP_DURATION, l, 2);
    metrics_observe(M_HTTP_DURATION, l, 0.0001);
    metrics_observe(M_HTTP_DURATION, l, 100);
    cr_assert_float_eq(metrics_get(M_HTTP_DURATION, l), 5, 1e-9, "a histogram's count");
    const char *t = render();
    expect_line(t, "# TYPE myloware_http_request_duration_seconds histogram");
    const char *name = "myloware_http_request_duration_seconds_bucket{route=\"/x\",le=";
    /* bounds are upper-inclusive and the counts cumulative */
    const struct {
        const char *le;
        int n;
    } want[] = {{"0.0005", 1}, {"0.001", 1}, {"0.0025", 1}, {"0.005", 1}, {"0.01", 1},
                {"0.025", 1},  {"0.05", 1},  {"0.1", 1},    {"0.25", 2},  {"0.5", 3},
                {"1", 3},      {"2.5", 4},   {"5", 4},      {"10", 4},    {"+Inf", 5}};
    const char *prev = t;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "%s\"%s\"} %d", name, want[i].le, want[i].n);
        expect_line(t, line);
        const char *at = strstr(t, line);
        cr_assert_gt(at, prev, "buckets in increasing order: %s", line);
        prev = at;
    }
    expect_line(t, "myloware_http_request_duration_seconds_sum{route=\"/x\"} 102.7501");
    expect_line(t, "myloware_http_request_duration_seconds_count{route=\"/x\"} 5");
    cr_assert_gt(strstr(t, "myloware_http_request_duration_seconds_sum{"), prev, "_sum after +Inf");
}

Test(metrics, histogram_custom_buckets_without_labels) {
    metrics_observe(M_TRANSCODE, NULL, 1);
    metrics_observe(M_TRANSCODE, NULL, 301);
    const char *t = render();
    expect_line(t, "myloware_transcode_seconds_bucket{le=\"0.25\"} 0");
    expect_line(t, "myloware_transcode_seconds_bucket{le=\"1\"} 1");
    expect_line(t, "myloware_transcode_seconds_bucket{le=\"300\"} 1");
    expect_line(t, "myloware_transcode_seconds_bucket{le=\"+Inf\"} 2");
    expect_line(t, "myloware_transcode_seconds_sum 302");
    expect_line(t, "myloware_transcode_seconds_count 2");
    expect_no_line_starting(t, "myloware_transcode_seconds_bucket{le=\"0.0005\"}");
}

Test(metrics, process_gauges) {
    const char *t = render();
    expect_line(t, "# TYPE process_resident_memory_bytes gauge");
    expect_line(t, "# TYPE process_open_fds gauge");
    expect_line(t, "# TYPE process_start_time_seconds gauge");
    expect_line(t, "# TYPE process_cpu_seconds_total counter");
    cr_assert_gt(metrics_get(M_RSS, ""), 1024 * 1024);
    cr_assert_geq(metrics_get(M_FDS, ""), 3);
    cr_assert_gt(metrics_get(M_START_TIME, ""), 1.6e9);
    cr_assert_geq(metrics_get(M_CPU, ""), 0);
}

/* The metric name of a sample line (up to '{' or ' '). */
static size_t name_len(const char *line) { return strcspn(line, "{ \n"); }

Test(metrics, exposition_is_well_formed) {
    metrics_add(M_HTTP_REQUESTS, "method=\"GET\"", 1);
    metrics_observe(M_JOB_DURATION, "type=\"a\"", 0.3);
    metrics_set(M_PROVIDER_CIRCUIT, "provider=\"sora\"", 1);
    const char *t = render();
    cr_assert_eq(t[out.len - 1], '\n', "ends with a newline");
    int families = 0;
    char family[128] = "", kind[16] = "";
    for (const char *line = t; *line; line = strchr(line, '\n') + 1) {
        const char *eol = strchr(line, '\n');
        cr_assert_not_null(eol);
        if (strncmp(line, "# HELP ", 7) == 0) {
            families++;
            size_t n = strcspn(line + 7, " ");
            snprintf(family, sizeof family, "%.*s", (int)n, line + 7);
            cr_assert_gt(eol - (line + 7 + n), 1, "%s has no help text", family);
            /* TYPE follows HELP for the same family */
            char want[200];
            snprintf(want, sizeof want, "# TYPE %s ", family);
            cr_assert_eq(strncmp(eol + 1, want, strlen(want)), 0, "no TYPE after HELP %s", family);
            const char *k = eol + 1 + strlen(want);
            snprintf(kind, sizeof kind, "%.*s", (int)strcspn(k, "\n"), k);
            cr_assert(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0 ||
                          strcmp(kind, "histogram") == 0,
                      "%s: kind %s", family, kind);
            continue;
        }
        if (line[0] == '#')
            continue;
        /* a sample belongs to the family announced last */
        size_t n = name_len(line), fn = strlen(family);
        cr_assert(fn > 0 && n >= fn && strncmp(line, family, fn) == 0, "orphan sample: %.*s",
                  (int)(eol - line), line);
        const char *suffix = line + fn;
        size_t sn = n - fn;
        if (strcmp(kind, "histogram") == 0)
            cr_assert((sn == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                          (sn == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                          (sn == 6 && strncmp(suffix, "_count", 6) == 0),
                      "bad histogram sample %.*s", (int)(eol - line), line);
        else
            cr_assert_eq(sn, 0, "bad sample %.*s", (int)(eol - line), line);
        const char *sp = eol;
        while (sp > line && sp[-1] != ' ')
            sp--;
        cr_assert_gt(sp, line + n, "no value: %.*s", (int)(eol - line), line);
        sp--;
        char *end;
        strtod(sp + 1, &end);
        cr_assert_eq(end, eol, "value is not a number: %.*s", (int)(eol - line), line);
    }
    cr_assert_eq(families, M__COUNT, "one HELP per family, with or without series");
}

Test(metrics, label_escaping) {
    buf_t l;
    buf_init(&l, 1024);
    metrics_label(&l, "route", "/health");
    cr_assert_str_eq(l.data, "route=\"/health\"");
    metrics_label(&l, "path", "a\\b\"c\nd");
    cr_assert_str_eq(l.data, "route=\"/health\",path=\"a\\\\b\\\"c\\nd\"");
    metrics_label(&l, "empty", "");
    cr_assert_str_eq(l.data, "route=\"/health\",path=\"a\\\\b\\\"c\\nd\",empty=\"\"");
    buf_release(&l);

    buf_t u;
    buf_init(&u, 1024);
    metrics_label(&u, "name", "caf\xc3\xa9 {x}=y,z");
    cr_assert_str_eq(u.data, "name=\"caf\xc3\xa9 {x}=y,z\"", "other bytes pass through");
    metrics_add(M_RUNS, u.data, 1);
    cr_assert_float_eq(metrics_get(M_RUNS, u.data), 1, 1e-9);
    expect_line(render(), "myloware_runs_total{name=\"caf\xc3\xa9 {x}=y,z\"} 1");
    buf_release(&u);
}

Test(metrics, escaped_label_renders_on_one_line) {
    buf_t l;
    buf_init(&l, 1024);
    metrics_label(&l, "route", "/x\n# TYPE injected counter");
    metrics_add(M_HTTP_REQUESTS, l.data, 1);
    const char *t = render();
    expect_line(t, "myloware_http_requests_total{route=\"/x\\n# TYPE injected counter\"} 1");
    expect_no_line_starting(t, "# TYPE injected");
    buf_release(&l);
}

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        metrics_add(M_JOBS, "type=\"shared\"", 1);
        metrics_observe(M_JOB_DURATION, "type=\"shared\"", 0.01);
    }
    return NULL;
}

Test(metrics, concurrent_updates_are_not_lost) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, adder, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_float_eq(metrics_get(M_JOBS, "type=\"shared\""), 80000, 1e-9);
    cr_assert_float_eq(metrics_get(M_JOB_DURATION, "type=\"shared\""), 80000, 1e-9);
}
