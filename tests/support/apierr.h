/*
 * apierr: helpers of the test_errors_* integration files (api.md error answers). A server with
 * the repository's projects, one-shot JSON requests, and the one assertion every error answer
 * of api.md §1 must pass: its status, "error", "detail" and a "request_id" equal to the
 * X-Request-ID header.
 */
#ifndef MYLOWARE_TESTS_APIERR_H
#define MYLOWARE_TESTS_APIERR_H

#include <jansson.h>

#include "support/harness.h"

#define AE_KEY "X-API-Key: dev-api-key\r\n"
#define AE_JSON "Content-Type: application/json\r\n"
#define AE_JSON_KEY AE_KEY AE_JSON
#define AE_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define AE_NO_RUN "00000000-0000-4000-8000-000000000000"

/* Starts `serve` with PROJECTS_DIR (the repository's), OPENAI_WEBHOOK_SECRET=AE_SECRET,
 * QUEUE_POLL_MS=50 and then extra (NULL-terminated; a later entry wins). */
void ae_start(struct server *s, const char *const *extra);
/* One request; the body parsed as JSON (NULL when it is not JSON) and the status. */
json_t *ae_call(int port, const char *method, const char *path, const char *headers,
                const char *body, int *status);
/* One request that must get the error answer (status, code, detail when not NULL). The whole
 * answer goes to keep when not NULL (caller frees with resp_free); returns the parsed body
 * (caller frees). */
json_t *ae_error(int port, const char *method, const char *path, const char *headers,
                 const char *body, int status, const char *code, const char *detail,
                 struct resp *keep);
/* Same check on an answer already read. */
json_t *ae_check_error(const struct resp *r, int status, const char *code, const char *detail);
/* ae_error, body freed. */
#define AE_ERR(port, method, path, headers, body, status, code, detail)                            \
    json_decref(ae_error(port, method, path, headers, body, status, code, detail, NULL))
/* The first column of the first row of sql on the server's database, -1 when no row. */
long long ae_db_count(const struct server *s, const char *sql);
/* The first column of the first row of sql as text into out ("" when no row or NULL). */
void ae_db_text(const struct server *s, const char *sql, char *out, size_t cap);
/* Starts a run through POST /v1/runs/start (must be 200); returns its id (caller frees). */
char *ae_start_run(int port, const char *body);
/* Polls GET /v1/runs/{id} until status is want (fails on another terminal status or after ms);
 * returns the run (caller frees). */
json_t *ae_wait_status(int port, const char *id, const char *want, int ms);
const char *ae_str(const json_t *j, const char *key);

#endif
