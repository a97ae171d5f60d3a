/* runapi: helpers of the integration tests that drive runs through the API (see runapi.h). */
#include "support/runapi.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char projects_env[400];

void ra_env(const char **env, size_t cap, const char *const *extra) {
    snprintf(projects_env, sizeof projects_env, "PROJECTS_DIR=%s/projects", MYLOWARE_SRCDIR);
    size_t n = 0;
    env[n++] = projects_env;
    env[n++] = "OPENAI_WEBHOOK_SECRET=" RA_SECRET;
    env[n++] = "QUEUE_POLL_MS=50";
    for (const char *const *e = extra; e && *e && n + 1 < cap; e++)
        env[n++] = *e;
    env[n] = NULL;
}

void ra_start(struct server *s, const char *const *extra) {
    const char *env[40];
    ra_env(env, sizeof env / sizeof env[0], extra);
    server_start(s, env);
}

json_t *ra_call(int port, const char *method, const char *path, const char *headers,
                const char *body, int *status) {
    struct resp r;
    cr_assert(h_request(port, method, path, headers, body, &r), "%s %s: no answer", method, path);
    *status = r.status;
    json_t *j = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    resp_free(&r);
    return j;
}

const char *ra_str(const json_t *j, const char *key) {
    return json_string_value(json_object_get(j, key));
}

void ra_expect_error(json_t *j, int status, int want_status, const char *code, const char *detail) {
    char *dump = j ? json_dumps(j, 0) : strdup("(no JSON)");
    cr_assert_eq(status, want_status, "status %d, want %d: %s", status, want_status, dump);
    cr_assert_str_eq(ra_str(j, "error"), code, "%s", dump);
    if (detail)
        cr_assert_str_eq(ra_str(j, "detail"), detail, "%s", dump);
    cr_assert_not_null(ra_str(j, "request_id"));
    free(dump);
    json_decref(j);
}

char *ra_start_run(int port, const char *body) {
    int st;
    json_t *j = ra_call(port, "POST", "/v1/runs/start", RA_JSON_KEY, body, &st);
    cr_assert_eq(st, 200, "start: %d", st);
    cr_assert_str_eq(ra_str(j, "status"), "pending");
    char *id = strdup(ra_str(j, "run_id"));
    json_decref(j);
    return id;
}

json_t *ra_get_run(int port, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/runs/%s", id);
    int st;
    json_t *j = ra_call(port, "GET", path, RA_KEY, NULL, &st);
    cr_assert_eq(st, 200);
    return j;
}

json_t *ra_approve(int port, const char *id, const char *gate) {
    char path[128], body[128];
    snprintf(path, sizeof path, "/v1/runs/%s/approve", id);
    snprintf(body, sizeof body, "{\"gate\":\"%s\",\"approved\":true}", gate);
    int st;
    json_t *j = ra_call(port, "POST", path, RA_JSON_KEY, body, &st);
    cr_assert_eq(st, 200, "approve %s: %d", gate, st);
    return j;
}

json_t *ra_wait_status_diag(int port, const char *id, const char *want, int ms,
                            void (*diag)(const char *id, char *out, size_t cap)) {
    int64_t deadline = h_now_ms() + ms;
    json_t *j = NULL;
    for (;;) {
        json_decref(j);
        j = ra_get_run(port, id);
        const char *s = ra_str(j, "status");
        cr_assert_not_null(s, "a run has a status");
        if (strcmp(s, want) == 0)
            return j;
        bool terminal = !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "rejected") ||
                        !strcmp(s, "cancelled");
        if (terminal || h_now_ms() > deadline) {
            static char more[8192];
            more[0] = '\0';
            if (diag)
                diag(id, more, sizeof more);
            char *d = json_dumps(j, 0);
            cr_assert_fail("run %s is %s, waited for %s: %s%s%s", id, s, want, d, *more ? "\n" : "",
                           more);
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
}

json_t *ra_wait_status(int port, const char *id, const char *want, int ms) {
    return ra_wait_status_diag(port, id, want, ms, NULL);
}

/* Opens the server's database and prepares sql (asserting both). */
static sqlite3_stmt *db_prepare(const struct server *s, const char *sql, sqlite3 **db) {
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s->dir);
    cr_assert_eq(sqlite3_open(path, db), SQLITE_OK);
    sqlite3_busy_timeout(*db, 5000);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(*db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(*db));
    return q;
}

long long ra_db_count(const struct server *s, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *q = db_prepare(s, sql, &db);
    long long v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

void ra_db_text(const struct server *s, const char *sql, char *out, size_t cap) {
    sqlite3 *db;
    sqlite3_stmt *q = db_prepare(s, sql, &db);
    const unsigned char *t = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
}
