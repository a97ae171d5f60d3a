/*
 * runapi: helpers of the integration tests that drive runs through the API (test_runs,
 * test_workflow, test_postgres, the test_errors_* files through apierr): a server with the
 * repository's projects, one-shot JSON requests, the error-answer check, starting a run and
 * waiting (with a deadline) for its status, and counts on the server's SQLite file.
 */
#ifndef MYLOWARE_TESTS_RUNAPI_H
#define MYLOWARE_TESTS_RUNAPI_H

#include <jansson.h>
#include <stddef.h>

#include "support/harness.h"

#define RA_KEY "X-API-Key: dev-api-key\r\n"
#define RA_JSON_KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"
#define RA_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* Fills env (cap entries, NULL-terminated) with PROJECTS_DIR (the repository's),
 * OPENAI_WEBHOOK_SECRET=RA_SECRET, QUEUE_POLL_MS=50 and then extra (NULL-terminated; a later
 * entry wins). The entries stay valid until the next call. */
void ra_env(const char **env, size_t cap, const char *const *extra);
/* server_start with ra_env's entries. */
void ra_start(struct server *s, const char *const *extra);
/* One request; the body parsed as JSON (NULL when it is not JSON) and the status. */
json_t *ra_call(int port, const char *method, const char *path, const char *headers,
                const char *body, int *status);
/* j's string member key (NULL when absent or not a string). */
const char *ra_str(const json_t *j, const char *key);
/* Asserts status, the error code (and detail when not NULL) and a request_id of an answer;
 * frees it. */
void ra_expect_error(json_t *j, int status, int want_status, const char *code, const char *detail);
#define RA_ERR(port, method, path, headers, body, want, code, detail)                              \
    do {                                                                                           \
        int st_;                                                                                   \
        json_t *j_ = ra_call(port, method, path, headers, body, &st_);                             \
        ra_expect_error(j_, st_, want, code, detail);                                              \
    } while (0)
/* POST /v1/runs/start with body: must be 200 "pending"; returns the run id (caller frees). */
char *ra_start_run(int port, const char *body);
/* GET /v1/runs/{id}: must be 200; returns the run (caller frees). */
json_t *ra_get_run(int port, const char *id);
/* POST /v1/runs/{id}/approve of gate (approved): must be 200; returns the answer (caller frees). */
json_t *ra_approve(int port, const char *id, const char *gate);
/* Polls the run until its status is want; fails on another terminal status or after ms, with
 * the run and, when diag is not NULL, what diag writes into its buffer. Returns the run. */
json_t *ra_wait_status_diag(int port, const char *id, const char *want, int ms,
                            void (*diag)(const char *id, char *out, size_t cap));
json_t *ra_wait_status(int port, const char *id, const char *want, int ms);
/* The first column of the first row of sql on the server's database, -1 when no row. */
long long ra_db_count(const struct server *s, const char *sql);
/* The first column of the first row of sql as text into out ("" when no row or NULL). */
void ra_db_text(const struct server *s, const char *sql, char *out, size_t cap);

#endif
