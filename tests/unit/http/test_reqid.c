/*
 * test_reqid: which client X-Request-ID values are echoed (api.md §1): 1-128 characters of
 * [A-Za-z0-9._:-]; anything else gets a fresh UUIDv4 from the server.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/server.h"

static bool valid(const char *s) { return http_request_id_valid(s, strlen(s)); }

Test(reqid, accepted) {
    cr_assert(valid("a"));
    cr_assert(valid("Z"));
    cr_assert(valid("0"));
    cr_assert(valid("."));
    cr_assert(valid("abc-DEF_123.4:5"));
    cr_assert(valid("3f2b8c1e-1111-4222-8333-444455556666"));
    cr_assert(valid("req:2026-11-23T10:00:00.000Z"));
    cr_assert(valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"));
}

Test(reqid, length_limits) {
    char id[130];
    memset(id, 'x', sizeof id);
    cr_assert(http_request_id_valid(id, 1));
    cr_assert(http_request_id_valid(id, 127));
    cr_assert(http_request_id_valid(id, 128), "128 characters are allowed");
    cr_assert_not(http_request_id_valid(id, 129), "129 characters are too many");
    cr_assert_not(http_request_id_valid(id, 130));
    cr_assert_not(http_request_id_valid("", 0), "empty");
    cr_assert_not(http_request_id_valid("abc", 0), "n is the length");
    cr_assert_not(http_request_id_valid(id, (size_t)-1));
}

Test(reqid, rejected_characters) {
    const char *bad[] = {
        "a b",          " abc",
        "abc ",         "a\tb",
        "a/b",          "../etc",
        "a\\b",         "a,b",
        "a;b",          "a=b",
        "a\"b",         "a'b",
        "<script>",     "a+b",
        "a%20b",        "a@b",
        "a#b",          "a?b",
        "a*b",          "a|b",
        "a~b",          "caf\xc3\xa9", /* UTF-8 é */
        "\xe2\x80\x8b",                /* zero-width space */
        "a\rb",         "a\nX-Injected: 1",
        "a\x7f",        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(valid(bad[i]), "'%s' accepted", bad[i]);
    cr_assert_not(http_request_id_valid("ab\0cd", 5), "NUL inside");
}

Test(reqid, only_the_first_n_bytes_count) {
    cr_assert(http_request_id_valid("ab cd", 2));
    cr_assert_not(http_request_id_valid("ab cd", 3));
    cr_assert(http_request_id_valid("abc/", 3));
}
