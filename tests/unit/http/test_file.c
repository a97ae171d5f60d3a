/* test_file: the pure parts of file answers: Range parsing (RFC 9110 §14), Content-Type, ETag. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/err.h"
#include "http/file.h"

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b) {
    return http_file_parse_range(v, strlen(v), size, a, b);
}

Test(file, single_ranges) {
    uint64_t a = 0, b = 0;
    cr_assert_eq(range("bytes=0-0", 10, &a, &b), 1);
    cr_assert(a == 0 && b == 0);
    cr_assert_eq(range("bytes=2-5", 10, &a, &b), 1);
    cr_assert(a == 2 && b == 5);
    cr_assert_eq(range("bytes=7-", 10, &a, &b), 1);
    cr_assert(a == 7 && b == 9);
    cr_assert_eq(range("bytes=-4", 10, &a, &b), 1);
    cr_assert(a == 6 && b == 9);
    cr_assert_eq(range("bytes=-40", 10, &a, &b), 1,
                 "a suffix longer than the file is the whole file");
    cr_assert(a == 0 && b == 9);
    cr_assert_eq(range("bytes=3-1000", 10, &a, &b), 1);
    cr_assert(a == 3 && b == 9);
    cr_assert_eq(range("  Bytes=1-2 ", 10, &a, &b), 1, "unit case and surrounding blanks");
    cr_assert(a == 1 && b == 2);
    cr_assert_eq(range("bytes=0-18446744073709551615", 10, &a, &b), 1);
    cr_assert(a == 0 && b == 9);
}

Test(file, unsatisfiable_ranges) {
    uint64_t a = 77, b = 77;
    cr_assert_eq(range("bytes=10-", 10, &a, &b), ERR_RANGE);
    cr_assert_eq(range("bytes=10-20", 10, &a, &b), ERR_RANGE);
    cr_assert_eq(range("bytes=-0", 10, &a, &b), ERR_RANGE);
    cr_assert_eq(range("bytes=5-4", 10, &a, &b), ERR_RANGE);
    cr_assert_eq(range("bytes=0-", 0, &a, &b), ERR_RANGE);
    cr_assert_eq(range("bytes=-1", 0, &a, &b), ERR_RANGE);
    cr_assert(a == 77 && b == 77, "untouched");
}

Test(file, ranges_that_are_ignored) {
    uint64_t a = 77, b = 77;
    const char *ignored[] = {"",           "bytes",
                             "bytes=",     "bytes=-",
                             "bytes=a-b",  "bytes=1-2,4-5",
                             "bytes=1-2x", "items=1-2",
                             "bytes=1",    "bytes=99999999999999999999999-",
                             "bytes= -",   "bytes=--1",
                             "bytes=+1-2"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        cr_assert_eq(range(ignored[i], 10, &a, &b), 0, "'%s'", ignored[i]);
    cr_assert(a == 77 && b == 77);
}

Test(file, content_types_and_etags) {
    cr_assert_str_eq(http_file_content_type("clip_1_0.mp4"), "video/mp4");
    cr_assert_str_eq(http_file_content_type("dir/T.JPG"), "image/jpeg");
    cr_assert_str_eq(http_file_content_type("x.webm"), "video/webm");
    cr_assert_str_eq(http_file_content_type("x.png"), "image/png");
    cr_assert_str_eq(http_file_content_type("noext"), "application/octet-stream");
    cr_assert_str_eq(http_file_content_type("a.mp4/b"), "application/octet-stream");
    cr_assert_str_eq(http_file_content_type(NULL), "application/octet-stream");
    char e[64];
    http_file_etag(255, 1, 5, e, sizeof e);
    cr_assert_str_eq(e, "\"ff-3b9aca05\"");
}
