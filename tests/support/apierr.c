/* apierr: helpers of the test_errors_* integration files. */
#include "support/apierr.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char projects_env[400];

void ae_start(struct server *s, const char *const *extra) {
    snprintf(projects_env, sizeof projects_env, "PROJECTS_DIR=%s/projects", MYLOWARE_SRCDIR);
    const char *env[40];
    size_t n = 0;
    env[n++] = projects_env;
    env[n++] = "OPENAI_WEBHOOK_SECRET=" AE_SECRET;
    env[n++] = "QUEUE_POLL_MS=50";
    for (const char *const *e = extra; e && *e && n + 1 < sizeof env / sizeof env[0]; e++)
        env[n++] = *e;
    env[n] = NULL;
    server_start(s, env);
}

const char *ae_str(const json_t *j, const char *key) {
    return json_string_value(json_object_get(j, key));
}

json_t *ae_call(int port, const char *method, const char *path, const char *headers,
                const char *body, int *status) {
    struct resp r;
    cr_assert(h_request(port, method, path, headers, body, &r), "%s %s: no answer", method, path);
    *status = r.status;
    json_t *j = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    resp_free(&r);
    return j;
}

json_t *ae_check_error(const struct resp *r, int status, const char *code, const char *detail) {
    cr_assert_eq(r->status, status, "status %d, want %d: %s", r->status, status, r->body);
    char ct[128];
    cr_assert(resp_header(r, "Content-Type", ct, sizeof ct), "an error answer has a Content-Type");
    cr_assert_str_eq(ct, "application/json");
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert(json_is_object(j), "error body is not a JSON object: %s", r->body);
    cr_assert_str_eq(ae_str(j, "error"), code, "%s", r->body);
    cr_assert(json_is_string(json_object_get(j, "detail")), "detail is a string: %s", r->body);
    if (detail)
        cr_assert_str_eq(ae_str(j, "detail"), detail, "%s", r->body);
    char rid[200];
    cr_assert(resp_header(r, "X-Request-ID", rid, sizeof rid));
    cr_assert_str_eq(ae_str(j, "request_id"), rid, "request_id is the X-Request-ID: %s", r->body);
    return j;
}

json_t *ae_error(int port, const char *method, const char *path, const char *headers,
                 const char *body, int status, const char *code, const char *detail,
                 struct resp *keep) {
    struct resp r;
    cr_assert(h_request(port, method, path, headers, body, &r), "%s %s: no answer", method, path);
    json_t *j = ae_check_error(&r, status, code, detail);
    if (keep)
        *keep = r;
    else
        resp_free(&r);
    return j;
}

long long ae_db_count(const struct server *s, const char *sql) {
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s->dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    long long v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

void ae_db_text(const struct server *s, const char *sql, char *out, size_t cap) {
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s->dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    const unsigned char *t = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

char *ae_start_run(int port, const char *body) {
    int st;
    json_t *j = ae_call(port, "POST", "/v1/runs/start", AE_JSON_KEY, body, &st);
    cr_assert_eq(st, 200, "start: %d", st);
    char *id = strdup(ae_str(j, "run_id"));
    json_decref(j);
    return id;
}

json_t *ae_wait_status(int port, const char *id, const char *want, int ms) {
    char path[128];
    snprintf(path, sizeof path, "/v1/runs/%s", id);
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        int st;
        json_t *j = ae_call(port, "GET", path, AE_KEY, NULL, &st);
        cr_assert_eq(st, 200);
        const char *s = ae_str(j, "status");
        if (strcmp(s, want) == 0)
            return j;
        bool terminal = !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "rejected") ||
                        !strcmp(s, "cancelled");
        cr_assert(!terminal && h_now_ms() < deadline, "run %s is %s, waited for %s", id, s, want);
        json_decref(j);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
}
