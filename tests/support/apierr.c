/* apierr: helpers of the test_errors_* integration files. */
#include "support/apierr.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ae_start(struct server *s, const char *const *extra) { ra_start(s, extra); }

const char *ae_str(const json_t *j, const char *key) { return ra_str(j, key); }

json_t *ae_call(int port, const char *method, const char *path, const char *headers,
                const char *body, int *status) {
    return ra_call(port, method, path, headers, body, status);
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

long long ae_db_count(const struct server *s, const char *sql) { return ra_db_count(s, sql); }

void ae_db_text(const struct server *s, const char *sql, char *out, size_t cap) {
    ra_db_text(s, sql, out, cap);
}

char *ae_start_run(int port, const char *body) { return ra_start_run(port, body); }

json_t *ae_wait_status(int port, const char *id, const char *want, int ms) {
    return ra_wait_status(port, id, want, ms);
}
