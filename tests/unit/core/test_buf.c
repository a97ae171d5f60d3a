/*
 * test_buf: the capped growable buffer: the cap (ERR_TOOBIG leaves the buffer unchanged),
 * printf, JSON string escaping, consume and steal.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static buf_t b;

static void setup(void) { buf_init(&b, 16); }
static void teardown(void) { buf_release(&b); }

TestSuite(buf, .init = setup, .fini = teardown);

Test(buf, starts_empty) {
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.max, 16);
}

Test(buf, append_and_nul_termination) {
    cr_assert_eq(buf_append(&b, "abc", 3), 0);
    cr_assert_eq(b.len, 3);
    cr_assert_str_eq(b.data, "abc");
    cr_assert_eq(buf_puts(&b, "de"), 0);
    cr_assert_str_eq(b.data, "abcde");
    cr_assert_eq(buf_append(&b, "x\0y", 3), 0, "binary data");
    cr_assert_eq(b.len, 8);
    cr_assert_eq(memcmp(b.data, "abcdex\0y", 9), 0, "and a NUL after it");
    cr_assert_eq(buf_append(&b, NULL, 0), 0);
    cr_assert_eq(b.len, 8);
}

Test(buf, cap_enforced_and_buffer_unchanged) {
    cr_assert_eq(buf_puts(&b, "0123456789"), 0);
    cr_assert_eq(buf_puts(&b, "abcdefg"), ERR_TOOBIG, "17 bytes > 16");
    cr_assert_eq(b.len, 10);
    cr_assert_str_eq(b.data, "0123456789");
    cr_assert_eq(buf_puts(&b, "abcdef"), 0, "exactly 16 bytes fit");
    cr_assert_eq(b.len, 16);
    cr_assert_str_eq(b.data, "0123456789abcdef");
    cr_assert_eq(buf_append(&b, "x", 1), ERR_TOOBIG);
    cr_assert_eq(buf_append(&b, "", 0), 0, "nothing always fits");
    cr_assert_eq(b.len, 16);
    cr_assert_str_eq(b.data, "0123456789abcdef");
    cr_assert_leq(b.alloc, b.max + 1, "never allocates past the cap");
}

Test(buf, huge_append_does_not_wrap) {
    cr_assert_eq(buf_puts(&b, "abc"), 0);
    cr_assert_eq(buf_append(&b, "x", (size_t)-1), ERR_TOOBIG);
    cr_assert_eq(buf_append(&b, "x", (size_t)-1 - 2), ERR_TOOBIG);
    cr_assert_eq(b.len, 3);
    cr_assert_str_eq(b.data, "abc");
}

Test(buf, zero_cap) {
    buf_t z;
    buf_init(&z, 0);
    cr_assert_eq(buf_append(&z, "a", 1), ERR_TOOBIG);
    cr_assert_eq(buf_append(&z, "", 0), 0);
    cr_assert_eq(z.len, 0);
    buf_release(&z);
}

Test(buf, grows_past_the_first_allocation) {
    buf_t big;
    buf_init(&big, 100000);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(buf_printf(&big, "%04d,", i % 10000), 0);
    cr_assert_eq(big.len, 50000);
    cr_assert_eq(strlen(big.data), 50000);
    cr_assert_eq(memcmp(big.data, "0000,0001,", 10), 0);
    cr_assert_eq(memcmp(big.data + 49995, "9999,", 5), 0);
    buf_release(&big);
}

Test(buf, printf) {
    cr_assert_eq(buf_printf(&b, "%s=%d", "port", 80), 0);
    cr_assert_str_eq(b.data, "port=80");
    cr_assert_eq(buf_printf(&b, "%s", ""), 0);
    cr_assert_str_eq(b.data, "port=80");
    cr_assert_eq(buf_printf(&b, "/%05.1f", 2.25), 0);
    cr_assert_str_eq(b.data, "port=80/002.2");
    cr_assert_eq(buf_printf(&b, "%s", "xyzw"), ERR_TOOBIG, "17 bytes");
    cr_assert_eq(b.len, 13);
    cr_assert_str_eq(b.data, "port=80/002.2", "unchanged on failure");
    cr_assert_eq(buf_printf(&b, "%c%c%c", 'a', 'b', 'c'), 0);
    cr_assert_str_eq(b.data, "port=80/002.2abc");
}

Test(buf, printf_on_an_empty_buffer) {
    cr_assert_eq(buf_printf(&b, "%s", ""), 0);
    cr_assert_not_null(b.data);
    cr_assert_str_eq(b.data, "");
    cr_assert_eq(b.len, 0);
}

static void expect_json(const char *in, size_t n, const char *want) {
    buf_t j;
    buf_init(&j, 1024);
    cr_assert_eq(buf_json_str(&j, in, n), 0);
    cr_assert_eq(j.len, strlen(want));
    cr_assert_str_eq(j.data, want);
    buf_release(&j);
}

Test(buf, json_string_escaping) {
    expect_json("", 0, "\"\"");
    expect_json("plain text", 10, "\"plain text\"");
    expect_json("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    expect_json("a\\b", 3, "\"a\\\\b\"");
    expect_json("l1\nl2\r\tx", 8, "\"l1\\nl2\\r\\tx\"");
    expect_json("\x01\x08\x0c\x1f\x7f", 5, "\"\\u0001\\u0008\\u000c\\u001f\\u007f\"");
    expect_json("a\0b", 3, "\"a\\u0000b\"");
    expect_json("caf\xc3\xa9 \xe2\x82\xac", 9, "\"caf\xc3\xa9 \xe2\x82\xac\"");
    expect_json("</script>", 9, "\"</script>\"");
    expect_json("a\"b", 1, "\"a\""); /* n is the length */
}

Test(buf, json_string_all_or_nothing) {
    cr_assert_eq(buf_puts(&b, "{\"k\":"), 0);
    cr_assert_eq(buf_json_str(&b, "\x01\x02", 2), ERR_TOOBIG, "5 + 14 > 16");
    cr_assert_eq(b.len, 5);
    cr_assert_str_eq(b.data, "{\"k\":");
    cr_assert_eq(buf_json_str(&b, "abcdefghi", 9), 0, "5 + 11 = 16 fits");
    cr_assert_str_eq(b.data, "{\"k\":\"abcdefghi\"");

    buf_t e;
    buf_init(&e, 3);
    cr_assert_eq(buf_json_str(&e, "ab", 2), ERR_TOOBIG);
    cr_assert_eq(e.len, 0);
    cr_assert(e.data == NULL || e.data[0] == '\0');
    buf_release(&e);
}

Test(buf, consume) {
    buf_t c;
    buf_init(&c, 64);
    cr_assert_eq(buf_puts(&c, "hello world"), 0);
    buf_consume(&c, 0);
    cr_assert_str_eq(c.data, "hello world");
    buf_consume(&c, 6);
    cr_assert_eq(c.len, 5);
    cr_assert_str_eq(c.data, "world");
    cr_assert_eq(buf_puts(&c, "!"), 0);
    cr_assert_str_eq(c.data, "world!");
    buf_consume(&c, 6);
    cr_assert_eq(c.len, 0);
    cr_assert_str_eq(c.data, "");
    cr_assert_eq(buf_puts(&c, "ab"), 0);
    buf_consume(&c, 100);
    cr_assert_eq(c.len, 0);
    cr_assert_str_eq(c.data, "");
    buf_release(&c);

    buf_t empty;
    buf_init(&empty, 8);
    buf_consume(&empty, 3); /* nothing to drop, no data yet */
    cr_assert_eq(empty.len, 0);
    buf_release(&empty);
}

Test(buf, consume_frees_room_under_the_cap) {
    cr_assert_eq(buf_puts(&b, "0123456789abcdef"), 0);
    cr_assert_eq(buf_puts(&b, "x"), ERR_TOOBIG);
    buf_consume(&b, 10);
    cr_assert_eq(buf_puts(&b, "0123456789"), 0, "the cap is on the current length");
    cr_assert_str_eq(b.data, "abcdef0123456789");
}

Test(buf, steal) {
    cr_assert_eq(buf_puts(&b, "payload"), 0);
    size_t n = 0;
    char *p = buf_steal(&b, &n);
    cr_assert_str_eq(p, "payload");
    cr_assert_eq(n, 7);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.alloc, 0);
    cr_assert_eq(b.max, 16, "the cap stays");
    cr_assert_eq(buf_puts(&b, "again"), 0, "usable after steal");
    cr_assert_str_eq(b.data, "again");
    cr_assert_neq(b.data, p);
    free(p);

    buf_t e;
    buf_init(&e, 8);
    char *q = buf_steal(&e, NULL);
    cr_assert_not_null(q, "never NULL");
    cr_assert_str_eq(q, "");
    free(q);
    buf_release(&e);
}

Test(buf, reset_keeps_memory) {
    cr_assert_eq(buf_puts(&b, "abcdef"), 0);
    char *data = b.data;
    size_t alloc = b.alloc;
    buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.data, data);
    cr_assert_eq(b.alloc, alloc);
    cr_assert_str_eq(b.data, "");
    cr_assert_eq(buf_puts(&b, "0123456789abcdef"), 0, "the whole cap is available again");
}

Test(buf, release_then_reuse) {
    cr_assert_eq(buf_puts(&b, "abc"), 0);
    buf_release(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    buf_init(&b, 4);
    cr_assert_eq(buf_puts(&b, "abcd"), 0);
    cr_assert_eq(buf_puts(&b, "e"), ERR_TOOBIG);
}

Test(buf, json_raw_matches_json_str_on_every_byte) {
    /* every byte value, alone and inside plain runs of several lengths */
    for (int c = 0; c < 256; c++) {
        for (size_t pad = 0; pad < 10; pad += 3) {
            char in[32];
            size_t n = 0;
            for (size_t i = 0; i < pad; i++)
                in[n++] = 'a';
            in[n++] = (char)c;
            for (size_t i = 0; i < pad; i++)
                in[n++] = 'z';
            buf_t want;
            buf_init(&want, 1024);
            cr_assert_eq(buf_json_str(&want, in, n), 0);
            char out[BUF_JSON_WORST(32)];
            char *end = buf_json_raw(out, in, n);
            cr_assert_eq((size_t)(end - out), want.len, "byte 0x%02x, pad %zu", c, pad);
            cr_assert_eq(memcmp(out, want.data, want.len), 0, "byte 0x%02x, pad %zu", c, pad);
            cr_assert_leq((size_t)(end - out), BUF_JSON_WORST(n));
            buf_release(&want);
        }
    }
    char out[8];
    cr_assert_eq(buf_json_raw(out, "", 0) - out, 2);
    cr_assert_eq(memcmp(out, "\"\"", 2), 0);
}

Test(buf, room_and_commit_respect_the_cap) {
    cr_assert_eq(buf_puts(&b, "0123456789"), 0);
    cr_assert_null(buf_room(&b, 7), "10 + 7 > 16");
    cr_assert_eq(b.len, 10);
    cr_assert_str_eq(b.data, "0123456789", "unchanged");
    char *p = buf_room(&b, 6);
    cr_assert_not_null(p);
    cr_assert_eq(p, b.data + 10);
    memcpy(p, "abc", 3);
    buf_commit(&b, 3);
    cr_assert_eq(b.len, 13);
    cr_assert_str_eq(b.data, "0123456789abc");
}
