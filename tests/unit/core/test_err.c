/*
 * test_err: every ERR_* code maps to the status and `error` code of api.md §1's table; the
 * expectations are written out here from the spec, not derived from ERR_MAP.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/err.h"

struct row {
    int err;
    const char *name;
    int status;
    const char *code;
};

static const struct row spec[] = {
    {ERR_OK, "ERR_OK", 200, "ok"},
    {ERR_INVAL, "ERR_INVAL", 400, "bad_request"},
    {ERR_BADJSON, "ERR_BADJSON", 400, "invalid_json"},
    {ERR_BLOCKED, "ERR_BLOCKED", 400, "content_blocked"},
    {ERR_UNAUTH, "ERR_UNAUTH", 401, "unauthorized"},
    {ERR_BADSIG, "ERR_BADSIG", 401, "invalid_signature"},
    {ERR_FORBIDDEN, "ERR_FORBIDDEN", 403, "forbidden"},
    {ERR_NOTFOUND, "ERR_NOTFOUND", 404, "not_found"},
    {ERR_METHOD, "ERR_METHOD", 405, "method_not_allowed"},
    {ERR_TIMEOUT, "ERR_TIMEOUT", 408, "request_timeout"},
    {ERR_CONFLICT, "ERR_CONFLICT", 409, "conflict"},
    {ERR_TOOBIG, "ERR_TOOBIG", 413, "payload_too_large"},
    {ERR_MEDIATYPE, "ERR_MEDIATYPE", 415, "unsupported_media_type"},
    {ERR_RANGE, "ERR_RANGE", 416, "range_not_satisfiable"},
    {ERR_VALIDATION, "ERR_VALIDATION", 422, "validation_error"},
    {ERR_IDEMREUSED, "ERR_IDEMREUSED", 422, "idempotency_key_reused"},
    {ERR_RATELIMIT, "ERR_RATELIMIT", 429, "rate_limited"},
    {ERR_BUDGET, "ERR_BUDGET", 429, "budget_exceeded"},
    {ERR_HEADERS, "ERR_HEADERS", 431, "headers_too_large"},
    {ERR_INTERNAL, "ERR_INTERNAL", 500, "internal_error"},
    {ERR_IO, "ERR_IO", 500, "internal_error"},
    {ERR_DB, "ERR_DB", 500, "internal_error"},
    {ERR_NOMEM, "ERR_NOMEM", 500, "internal_error"},
    {ERR_SCHEMA, "ERR_SCHEMA", 500, "internal_error"},
    {ERR_NOTSUP, "ERR_NOTSUP", 500, "internal_error"},
    {ERR_UNAVAIL, "ERR_UNAVAIL", 503, "unavailable"},
    {ERR_BUSY, "ERR_BUSY", 503, "unavailable"},
    {ERR_SAFETYDOWN, "ERR_SAFETYDOWN", 503, "safety_unavailable"},
};
#define NSPEC (sizeof spec / sizeof spec[0])

Test(err, every_code_maps_to_the_api_table) {
    for (size_t i = 0; i < NSPEC; i++) {
        cr_assert_eq(err_http_status(spec[i].err), spec[i].status, "%s", spec[i].name);
        cr_assert_str_eq(err_code_name(spec[i].err), spec[i].code, "%s", spec[i].name);
        cr_assert_str_eq(err_name(spec[i].err), spec[i].name);
    }
}

Test(err, the_table_here_covers_every_code) {
    /* A code added to ERR_MAP must be added above too (with its status from the spec). */
    static const int all[] = {
#define X(name, val, status, code) ERR_##name,
        ERR_MAP(X)
#undef X
    };
    cr_assert_eq(sizeof all / sizeof all[0], NSPEC);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < NSPEC; j++)
            found = found || spec[j].err == all[i];
        cr_assert(found, "%s has no expectation", err_name(all[i]));
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(all[i], all[j], "two codes share the value %d", all[i]);
        cr_assert(all[i] < 0 || all[i] == ERR_OK, "%s is not negative", err_name(all[i]));
    }
}

Test(err, unknown_codes_are_internal_errors) {
    const int unknown[] = {1, 42, -28, -100, -999999, 2147483647, -2147483647 - 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_eq(err_http_status(unknown[i]), 500, "%d", unknown[i]);
        cr_assert_str_eq(err_code_name(unknown[i]), "internal_error");
        cr_assert_str_eq(err_name(unknown[i]), "ERR_UNKNOWN");
    }
}

Test(err, code_for_a_bare_status) {
    cr_assert_str_eq(err_code_for_status(400), "bad_request");
    cr_assert_str_eq(err_code_for_status(401), "unauthorized");
    cr_assert_str_eq(err_code_for_status(403), "forbidden");
    cr_assert_str_eq(err_code_for_status(404), "not_found");
    cr_assert_str_eq(err_code_for_status(405), "method_not_allowed");
    cr_assert_str_eq(err_code_for_status(408), "request_timeout");
    cr_assert_str_eq(err_code_for_status(409), "conflict");
    cr_assert_str_eq(err_code_for_status(413), "payload_too_large");
    cr_assert_str_eq(err_code_for_status(415), "unsupported_media_type");
    cr_assert_str_eq(err_code_for_status(416), "range_not_satisfiable");
    cr_assert_str_eq(err_code_for_status(422), "validation_error");
    cr_assert_str_eq(err_code_for_status(429), "rate_limited");
    cr_assert_str_eq(err_code_for_status(431), "headers_too_large");
    cr_assert_str_eq(err_code_for_status(500), "internal_error");
    cr_assert_str_eq(err_code_for_status(503), "unavailable");
    cr_assert_str_eq(err_code_for_status(418), "bad_request", "unknown 4xx");
    cr_assert_str_eq(err_code_for_status(502), "internal_error", "unknown 5xx");
    cr_assert_str_neq(err_code_for_status(200), "ok", "200 is not an error");
}
