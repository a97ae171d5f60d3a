/*
 * err: the one error convention. Functions return int: 0 on success, a negative ERR_* code on
 * failure. err_http_status() is the single place where codes become HTTP statuses, and
 * err_code_name() gives the `error` field of the API error body.
 * Non-goal: carrying messages; the caller logs or answers with its own sentence.
 */
#ifndef MYLOWARE_CORE_ERR_H
#define MYLOWARE_CORE_ERR_H

/* X(name, value, http status, api error code) */
#define ERR_MAP(X)                                                                                 \
    X(OK, 0, 200, "ok")                                                                            \
    X(INVAL, -1, 400, "bad_request")                                                               \
    X(BADJSON, -2, 400, "invalid_json")                                                            \
    X(BLOCKED, -3, 400, "content_blocked")                                                         \
    X(UNAUTH, -4, 401, "unauthorized")                                                             \
    X(BADSIG, -5, 401, "invalid_signature")                                                        \
    X(FORBIDDEN, -6, 403, "forbidden")                                                             \
    X(NOTFOUND, -7, 404, "not_found")                                                              \
    X(METHOD, -8, 405, "method_not_allowed")                                                       \
    X(TIMEOUT, -9, 408, "request_timeout")                                                         \
    X(CONFLICT, -10, 409, "conflict")                                                              \
    X(TOOBIG, -11, 413, "payload_too_large")                                                       \
    X(MEDIATYPE, -12, 415, "unsupported_media_type")                                               \
    X(VALIDATION, -13, 422, "validation_error")                                                    \
    X(IDEMREUSED, -14, 422, "idempotency_key_reused")                                              \
    X(RATELIMIT, -15, 429, "rate_limited")                                                         \
    X(BUDGET, -16, 429, "budget_exceeded")                                                         \
    X(HEADERS, -17, 431, "headers_too_large")                                                      \
    X(INTERNAL, -18, 500, "internal_error")                                                        \
    X(UNAVAIL, -19, 503, "unavailable")                                                            \
    X(SAFETYDOWN, -20, 503, "safety_unavailable")                                                  \
    X(IO, -21, 500, "internal_error")                                                              \
    X(DB, -22, 500, "internal_error")                                                              \
    X(NOMEM, -23, 500, "internal_error")                                                           \
    X(RANGE, -24, 416, "range_not_satisfiable")                                                    \
    X(BUSY, -25, 503, "unavailable")                                                               \
    X(SCHEMA, -26, 500, "internal_error")                                                          \
    X(NOTSUP, -27, 500, "internal_error") /* not in this backend or build */

enum {
#define X(name, val, status, code) ERR_##name = (val),
    ERR_MAP(X)
#undef X
};

/* Returns the HTTP status for an ERR_* code (500 for unknown codes). Any thread. */
int err_http_status(int err);
/* Returns the API `error` code string for an ERR_* code (static storage). Any thread. */
const char *err_code_name(int err);
/* Returns the symbolic name ("ERR_NOTFOUND") for logs (static storage). Any thread. */
const char *err_name(int err);
/* Returns the API `error` code used for a bare HTTP status (static storage). Any thread. */
const char *err_code_for_status(int status);

#endif
