/*
 * test_ratelimit: token buckets (api.md §3). Time is passed explicitly (now_ms), so nothing
 * here sleeps.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/ratelimit.h"

/* Takes from key at now; returns the result and stores retry_after (or -1 when allowed). */
static int take(ratelimit_t *rl, const char *key, int64_t now, int *retry) {
    int r = -1;
    int rc = ratelimit_take(rl, key, strlen(key), now, &r);
    if (retry)
        *retry = rc == 0 ? -1 : r;
    return rc;
}

/* Takes n tokens at now and asserts every one is allowed. */
static void take_ok(ratelimit_t *rl, const char *key, int64_t now, int n) {
    for (int i = 0; i < n; i++)
        cr_assert_eq(take(rl, key, now, NULL), 0, "%s: take %d of %d at %lld refused", key, i + 1,
                     n, (long long)now);
}

Test(ratelimit, bucket_capacity) {
    ratelimit_t *rl = ratelimit_new(60, 60, 100);
    take_ok(rl, "k", 0, 60);
    int retry;
    cr_assert_eq(take(rl, "k", 0, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 1, "one token per second");
    cr_assert_eq(take(rl, "k", 0, NULL), ERR_RATELIMIT, "a refused request consumes nothing more");
    cr_assert_eq(ratelimit_size(rl), 1);
    ratelimit_free(rl);
}

Test(ratelimit, single_token_bucket) {
    ratelimit_t *rl = ratelimit_new(1, 1, 10);
    cr_assert_eq(take(rl, "k", 1000, NULL), 0);
    cr_assert_eq(take(rl, "k", 1000, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "k", 1999, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "k", 2000, NULL), 0);
    ratelimit_free(rl);
}

Test(ratelimit, continuous_refill) {
    ratelimit_t *rl = ratelimit_new(10, 1, 10); /* one token every 100 ms */
    take_ok(rl, "k", 0, 10);
    cr_assert_eq(take(rl, "k", 0, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "k", 99, NULL), ERR_RATELIMIT, "0.99 token is not a token");
    cr_assert_eq(take(rl, "k", 100, NULL), 0, "one token after 100 ms");
    cr_assert_eq(take(rl, "k", 100, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "k", 250, NULL), 0, "1.5 tokens after 150 ms more");
    cr_assert_eq(take(rl, "k", 250, NULL), ERR_RATELIMIT, "0.5 left");
    cr_assert_eq(take(rl, "k", 300, NULL), 0, "the half token was kept");
    take_ok(rl, "k", 600, 3);
    cr_assert_eq(take(rl, "k", 600, NULL), ERR_RATELIMIT);
    ratelimit_free(rl);
}

Test(ratelimit, refill_is_capped_at_capacity) {
    ratelimit_t *rl = ratelimit_new(5, 1, 10);
    take_ok(rl, "k", 0, 5);
    take_ok(rl, "k", 1000000000, 5); /* a long idle time gives 5 tokens, not more */
    cr_assert_eq(take(rl, "k", 1000000000, NULL), ERR_RATELIMIT);
    ratelimit_free(rl);
}

Test(ratelimit, clock_going_back_gives_no_tokens) {
    ratelimit_t *rl = ratelimit_new(2, 60, 10);
    take_ok(rl, "k", 100000, 2);
    cr_assert_eq(take(rl, "k", 0, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "k", 100000, NULL), ERR_RATELIMIT);
    ratelimit_free(rl);
}

Test(ratelimit, retry_after_rounds_up_and_is_at_least_one) {
    int retry;
    ratelimit_t *rl = ratelimit_new(1, 3600, 10); /* one token per hour */
    take_ok(rl, "k", 0, 1);
    cr_assert_eq(take(rl, "k", 0, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 3600);
    cr_assert_eq(take(rl, "k", 1, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 3600, "3599.999 s rounds up");
    cr_assert_eq(take(rl, "k", 1000, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 3599);
    cr_assert_eq(take(rl, "k", 3599500, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 1, "0.5 s rounds up to 1");
    cr_assert_eq(take(rl, "k", 3600000, &retry), 0);
    ratelimit_free(rl);

    rl = ratelimit_new(1000, 1, 10); /* one token per millisecond */
    take_ok(rl, "k", 0, 1000);
    cr_assert_eq(take(rl, "k", 0, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 1, "1 ms is still 1 s");
    ratelimit_free(rl);

    rl = ratelimit_new(3, 10, 10); /* a token every 3.33 s */
    take_ok(rl, "k", 0, 3);
    cr_assert_eq(take(rl, "k", 0, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 4);
    cr_assert_eq(take(rl, "k", 3000, &retry), ERR_RATELIMIT);
    cr_assert_eq(retry, 1);
    ratelimit_free(rl);
}

Test(ratelimit, keys_are_independent) {
    ratelimit_t *rl = ratelimit_new(2, 60, 100);
    take_ok(rl, "alice", 0, 2);
    cr_assert_eq(take(rl, "alice", 0, NULL), ERR_RATELIMIT);
    take_ok(rl, "bob", 0, 2);
    cr_assert_eq(take(rl, "bob", 0, NULL), ERR_RATELIMIT);
    take_ok(rl, "alic", 0, 2); /* a prefix is another key */
    take_ok(rl, "alice2", 0, 2);
    cr_assert_eq(ratelimit_size(rl), 4);

    /* keylen counts, not the NUL: binary keys are distinct. */
    int r;
    cr_assert_eq(ratelimit_take(rl, "x\0a", 3, 0, &r), 0);
    cr_assert_eq(ratelimit_take(rl, "x\0a", 3, 0, &r), 0);
    cr_assert_eq(ratelimit_take(rl, "x\0a", 3, 0, &r), ERR_RATELIMIT);
    cr_assert_eq(ratelimit_take(rl, "x\0b", 3, 0, &r), 0);
    cr_assert_eq(ratelimit_take(rl, "x", 1, 0, &r), 0);
    cr_assert_eq(ratelimit_take(rl, "", 0, 0, &r), 0, "an empty key is a key");
    cr_assert_eq(ratelimit_size(rl), 8);
    ratelimit_free(rl);
}

Test(ratelimit, many_keys_in_a_large_table) {
    ratelimit_t *rl = ratelimit_new(3, 60, 5000);
    char key[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "203.0.113.%d", i);
        take_ok(rl, key, 0, 3);
    }
    cr_assert_eq(ratelimit_size(rl), 4000);
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "203.0.113.%d", i);
        cr_assert_eq(take(rl, key, 0, NULL), ERR_RATELIMIT, "%s lost its bucket", key);
    }
    ratelimit_free(rl);
}

Test(ratelimit, table_bound_is_never_exceeded) {
    const size_t max = 64;
    ratelimit_t *rl = ratelimit_new(5, 60, max);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "client-%d", i);
        /* each client takes a token, so its bucket is not full and cannot simply be dropped */
        cr_assert_eq(take(rl, key, i / 10, NULL), 0, "a new key always gets a full bucket");
        cr_assert_leq(ratelimit_size(rl), max, "after %d keys: %zu buckets", i + 1,
                      ratelimit_size(rl));
    }
    /* the same, all at one instant */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "burst-%d", i);
        cr_assert_eq(take(rl, key, 5000, NULL), 0);
        cr_assert_leq(ratelimit_size(rl), max);
    }
    ratelimit_free(rl);
}

Test(ratelimit, eviction_drops_full_buckets_first) {
    /* 5 per hour: a bucket takes 720 s to earn a token back. */
    ratelimit_t *rl = ratelimit_new(5, 3600, 4);
    take_ok(rl, "c", 0, 5); /* exhausted, used long ago */
    take_ok(rl, "d", 0, 5);
    take_ok(rl, "a", 1000, 1); /* used recently, full again at 721000 */
    take_ok(rl, "b", 1000, 1);
    cr_assert_eq(ratelimit_size(rl), 4);
    int64_t t = 721000;
    cr_assert_eq(take(rl, "e", t, NULL), 0);
    cr_assert_eq(ratelimit_size(rl), 3, "a and b (full) dropped, c and d kept");
    /* c and d still hold about one token each: the second take is refused. */
    cr_assert_eq(take(rl, "c", t, NULL), 0);
    cr_assert_eq(take(rl, "c", t, NULL), ERR_RATELIMIT, "c's bucket must have been kept");
    cr_assert_eq(take(rl, "d", t, NULL), 0);
    cr_assert_eq(take(rl, "d", t, NULL), ERR_RATELIMIT, "d's bucket must have been kept");
    ratelimit_free(rl);
}

Test(ratelimit, eviction_then_drops_least_recently_used) {
    /* No bucket is full: the older half by last use goes, the recently used ones stay. */
    ratelimit_t *rl = ratelimit_new(2, 3600, 4);
    take_ok(rl, "old1", 0, 1);
    take_ok(rl, "old2", 1000, 1);
    take_ok(rl, "recent", 3000, 2);
    take_ok(rl, "victim", 4000, 2);
    cr_assert_eq(take(rl, "victim", 4000, NULL), ERR_RATELIMIT);
    cr_assert_eq(take(rl, "newcomer", 5000, NULL), 0);
    cr_assert_leq(ratelimit_size(rl), 4);
    cr_assert_geq(ratelimit_size(rl), 2, "only the older half is dropped");
    /* A limited client must not get a fresh bucket because someone else showed up. */
    cr_assert_eq(take(rl, "victim", 5000, NULL), ERR_RATELIMIT,
                 "the most recent bucket was dropped");
    cr_assert_eq(take(rl, "recent", 5000, NULL), ERR_RATELIMIT, "a recent bucket was dropped");
    ratelimit_free(rl);
}

Test(ratelimit, active_limited_client_survives_key_cycling) {
    /* Someone cycling through many keys (addresses) fills the table again and again; a
     * limited client that keeps trying is among the most recently used and stays limited. */
    ratelimit_t *rl = ratelimit_new(3, 60, 16);
    take_ok(rl, "limited", 0, 3);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "spoof-%d", i);
        take_ok(rl, key, 10 + i, 1);
        if (i < 15) /* the table is not full yet: nothing is dropped */
            cr_assert_eq(ratelimit_size(rl), (size_t)i + 2);
        cr_assert_leq(ratelimit_size(rl), 16);
        cr_assert_eq(take(rl, "limited", 10 + i, NULL), ERR_RATELIMIT,
                     "the limited client got a fresh bucket after %d other keys", i + 1);
    }
    ratelimit_free(rl);
}

Test(ratelimit, max_keys_zero_means_one) {
    ratelimit_t *rl = ratelimit_new(1, 60, 0);
    cr_assert_eq(take(rl, "a", 0, NULL), 0);
    cr_assert_eq(take(rl, "b", 1, NULL), 0);
    cr_assert_eq(ratelimit_size(rl), 1);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

static void expect_describe(int64_t count, double period_s, const char *want) {
    ratelimit_t *rl = ratelimit_new(count, period_s, 4);
    char out[64];
    ratelimit_describe(rl, out, sizeof out);
    cr_assert_str_eq(out, want);
    ratelimit_free(rl);
}

Test(ratelimit, describe) {
    expect_describe(60, 60, "60 per 1 minute");
    expect_describe(120, 60, "120 per 1 minute");
    expect_describe(10, 1, "10 per 1 second");
    expect_describe(5, 3600, "5 per 1 hour");
    expect_describe(5, 7200, "5 per 2 hour");
    expect_describe(7, 120, "7 per 2 minute");
    expect_describe(3, 90, "3 per 90 second");
    expect_describe(1, 5400, "1 per 90 minute");
    expect_describe(1000000000, 1, "1000000000 per 1 second");

    ratelimit_t *rl = ratelimit_new(60, 60, 4);
    char small[8];
    ratelimit_describe(rl, small, sizeof small);
    cr_assert_str_eq(small, "60 per ", "truncated, NUL-terminated");
    ratelimit_free(rl);
}
