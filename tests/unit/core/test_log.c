/*
 * test_log: the JSON line format (the fast path that writes whole lines at once and the general
 * path give the same fields), escaping, numbers, skipped NULL strings, the line cap, and the
 * batching order (info lines wait for log_flush, a warn line flushes them first).
 * stderr is redirected to a temporary file for each test.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static int saved_fd = -1;
static FILE *cap;

static void setup(void) {
    cap = tmpfile();
    cr_assert_not_null(cap);
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    cr_assert_geq(saved_fd, 0);
    cr_assert_geq(dup2(fileno(cap), STDERR_FILENO), 0);
    log_setup(LOG_DEBUG, true);
}

static void teardown(void) {
    log_batch_end();
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    fclose(cap);
}

TestSuite(log, .init = setup, .fini = teardown);

/* Everything written to stderr so far, as lines (caller frees *lines and each line). */
static size_t captured(char ***lines) {
    long end = lseek(fileno(cap), 0, SEEK_END);
    char *all = calloc(1, (size_t)end + 1);
    cr_assert_eq(pread(fileno(cap), all, (size_t)end, 0), end);
    size_t n = 0;
    *lines = calloc((size_t)end + 1, sizeof **lines);
    for (char *p = all, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        (*lines)[n++] = strdup(p);
    }
    free(all);
    return n;
}

static void free_lines(char **lines, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static json_t *parse(const char *line) {
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %s", e.text, line);
    return j;
}

Test(log, access_line_fields_and_types) {
    log_batch_begin();
    log_info("http", "request", LF_S("request_id", "abc-1"), LF_S("method", "GET"),
             LF_S("route", "/health"), LF_I("status", 200), LF_I("bytes", 306),
             LF_D("duration_ms", 0.0126), LF_I("neg", -42), LF_B("yes", 1), LF_B("no", 0),
             LF_S("skipped", NULL));
    char **l;
    cr_assert_eq(captured(&l), 0, "batched until log_flush");
    free(l);
    log_flush();
    size_t n = captured(&l);
    cr_assert_eq(n, 1);
    cr_assert(strstr(l[0], "\"duration_ms\":0.013,") != NULL, "%%.3f: %s", l[0]);
    cr_assert(strstr(l[0], "\"status\":200,") != NULL, "%s", l[0]);
    json_t *j = parse(l[0]);
    cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    cr_assert_str_eq(json_string_value(json_object_get(j, "module")), "http");
    cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "request");
    cr_assert_str_eq(json_string_value(json_object_get(j, "route")), "/health");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 200);
    cr_assert_eq(json_integer_value(json_object_get(j, "neg")), -42);
    cr_assert(json_is_true(json_object_get(j, "yes")));
    cr_assert(json_is_false(json_object_get(j, "no")));
    cr_assert_null(json_object_get(j, "skipped"));
    const char *ts = json_string_value(json_object_get(j, "ts"));
    cr_assert(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z', "ts %s", ts ? ts : "-");
    json_decref(j);
    free_lines(l, n);
}

Test(log, escapes_and_extreme_numbers) {
    log_info("t", "quote \" and \\ and \n", LF_S("s", "tab\there\x01\x7f"),
             LF_I("min", -9223372036854775807LL - 1), LF_D("big", 1e15), LF_D("negative", -2.5));
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 1, "not batched: written at once");
    json_t *j = parse(l[0]);
    cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "quote \" and \\ and \n");
    cr_assert_str_eq(json_string_value(json_object_get(j, "s")), "tab\there\x01\x7f");
    cr_assert_eq(json_integer_value(json_object_get(j, "min")), -9223372036854775807LL - 1);
    cr_assert(strstr(l[0], "\"big\":1000000000000000.000") != NULL, "%s", l[0]);
    cr_assert(strstr(l[0], "\"negative\":-2.500") != NULL, "%s", l[0]);
    json_decref(j);
    free_lines(l, n);
}

Test(log, many_fields_take_the_general_path_with_the_same_format) {
    /* 20 fields: more than the fast path takes */
    log_info("m", "many", LF_I("f0", 0), LF_I("f1", 1), LF_I("f2", 2), LF_I("f3", 3), LF_I("f4", 4),
             LF_I("f5", 5), LF_I("f6", 6), LF_I("f7", 7), LF_I("f8", 8), LF_I("f9", 9),
             LF_S("f10", "x\"y"), LF_D("f11", 1.5), LF_B("f12", 1), LF_I("f13", -13),
             LF_I("f14", 14), LF_I("f15", 15), LF_I("f16", 16), LF_I("f17", 17), LF_I("f18", 18),
             LF_I("f19", 19));
    log_info("m", "few", LF_S("f10", "x\"y"), LF_D("f11", 1.5), LF_B("f12", 1), LF_I("f13", -13));
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 2);
    const char *tail = "\"f10\":\"x\\\"y\",\"f11\":1.500,\"f12\":true,\"f13\":-13";
    cr_assert(strstr(l[0], tail) != NULL, "general path: %s", l[0]);
    cr_assert(strstr(l[1], tail) != NULL, "fast path: %s", l[1]);
    json_t *j = parse(l[0]);
    cr_assert_eq(json_object_size(j), 24);
    cr_assert_eq(json_integer_value(json_object_get(j, "f19")), 19);
    json_decref(j);
    free_lines(l, n);
}

Test(log, overlong_line_is_replaced_by_a_valid_one) {
    size_t big = 70 * 1024;
    char *s = malloc(big + 1);
    memset(s, 'a', big);
    s[big] = '\0';
    log_batch_begin();
    log_info("t", "before");
    log_info("t", "huge", LF_S("v", s));
    /* just under the cap, with escapes that double its size: the general path decides */
    size_t mid = 40 * 1024;
    s[mid] = '\0';
    memset(s, '"', mid);
    log_info("t", "escaped", LF_S("v", s));
    log_warn("t", "after");
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 4, "the warn line flushed the batch before itself");
    cr_assert(strstr(l[0], "\"msg\":\"before\"") != NULL);
    cr_assert(strstr(l[1], "\"msg\":\"log line too long\"") != NULL, "%.80s", l[1]);
    cr_assert(strstr(l[2], "\"msg\":\"log line too long\"") != NULL, "80 KiB escaped: %.80s", l[2]);
    cr_assert(strstr(l[3], "\"msg\":\"after\"") != NULL);
    for (size_t i = 0; i < n; i++)
        json_decref(parse(l[i]));
    /* below the cap once escaped: written whole */
    s[20 * 1024] = '\0';
    log_info("t", "fits", LF_S("v", s));
    log_flush();
    free_lines(l, n);
    n = captured(&l);
    cr_assert_eq(n, 5);
    json_t *j = parse(l[4]);
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "v"))), 20 * 1024);
    json_decref(j);
    free_lines(l, n);
    free(s);
}

Test(log, text_format_for_people) {
    log_setup(LOG_DEBUG, false);
    log_info("http", "request", LF_S("route", "/health"), LF_I("status", 200), LF_S("q", "a b"));
    log_setup(LOG_DEBUG, true);
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 1);
    cr_assert(strstr(l[0], " info  http: request route=/health status=200 q=\"a b\"") != NULL, "%s",
              l[0]);
    free_lines(l, n);
}

Test(log, below_threshold_is_not_written) {
    log_setup(LOG_WARN, true);
    log_info("t", "hidden");
    log_error("t", "shown");
    log_setup(LOG_DEBUG, true);
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 1);
    cr_assert(strstr(l[0], "\"level\":\"error\"") != NULL);
    free_lines(l, n);
}

Test(log, access_line_is_the_generic_line) {
    log_batch_begin();
    const char *ids[] = {"abc-1", "0c9f3e2a-8d7b-4c61-9a05-5b1f2e3d4c5b", "we\"ird"};
    for (size_t i = 0; i < 3; i++) {
        log_http_request(ids[i], "GET", "/v1/runs/{id}", 404, 1234567, 12.3456);
        log_info("http", "request", LF_S("request_id", ids[i]), LF_S("method", "GET"),
                 LF_S("route", "/v1/runs/{id}"), LF_I("status", 404), LF_I("bytes", 1234567),
                 LF_D("duration_ms", 12.3456));
    }
    log_http_request("x", "POST", "/", -1, -5, 1e13); /* out-of-range duration: generic path */
    log_info("http", "request", LF_S("request_id", "x"), LF_S("method", "POST"), LF_S("route", "/"),
             LF_I("status", -1), LF_I("bytes", -5), LF_D("duration_ms", 1e13));
    log_flush();
    char **l;
    size_t n = captured(&l);
    cr_assert_eq(n, 8);
    for (size_t i = 0; i < n; i += 2) {
        /* the same after the time stamp */
        cr_assert_str_eq(l[i] + 31, l[i + 1] + 31, "\n%s\n%s", l[i], l[i + 1]);
        json_decref(parse(l[i]));
    }
    cr_assert(strstr(l[0], "\"duration_ms\":12.346}") != NULL, "%s", l[0]);
    log_setup(LOG_WARN, true);
    log_http_request("hidden", "GET", "/", 200, 1, 1);
    log_setup(LOG_DEBUG, true);
    log_flush();
    free_lines(l, n);
    cr_assert_eq(captured(&l), 8, "nothing below the threshold");
    free_lines(l, 8);
}
