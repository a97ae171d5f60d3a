/*
 * test_breaker: the circuit breaker's transitions and the sliding-window limiter. Time is
 * passed explicitly, so nothing here sleeps.
 */
#include <criterion/criterion.h>

#include "core/breaker.h"
#include "core/err.h"
#include "core/winlimit.h"

/* A call that starts at now and ends at once with verdict v. Returns its ticket. */
static enum breaker_ticket call(breaker_t *b, int64_t now, enum breaker_verdict v) {
    uint32_t gen;
    enum breaker_ticket t = breaker_acquire(b, now, &gen);
    if (t != BT_DENIED)
        breaker_release(b, t, gen, v, now);
    return t;
}

Test(breaker, opens_after_threshold_consecutive_failures) {
    breaker_t b;
    breaker_init(&b, 3, 30000);
    cr_assert_eq(breaker_state(&b, 0), BREAKER_CLOSED);
    cr_assert_eq(call(&b, 0, BV_FAILURE), BT_CALL);
    cr_assert_eq(call(&b, 1, BV_FAILURE), BT_CALL);
    cr_assert_eq(call(&b, 2, BV_SUCCESS), BT_CALL); /* resets the count */
    cr_assert_eq(call(&b, 3, BV_FAILURE), BT_CALL);
    cr_assert_eq(call(&b, 4, BV_FAILURE), BT_CALL);
    cr_assert_eq(breaker_state(&b, 4), BREAKER_CLOSED);
    cr_assert_eq(call(&b, 5, BV_NEUTRAL), BT_CALL); /* neutral neither resets nor counts */
    cr_assert_eq(breaker_state(&b, 5), BREAKER_CLOSED);
    cr_assert_eq(call(&b, 6, BV_FAILURE), BT_CALL);
    cr_assert_eq(breaker_state(&b, 6), BREAKER_OPEN);
    cr_assert_str_eq(breaker_state_name(breaker_state(&b, 6)), "open");
    cr_assert_eq(b.opens, 1);
}

Test(breaker, open_denies_until_recovery_then_one_trial) {
    breaker_t b;
    breaker_init(&b, 1, 1000);
    cr_assert_eq(call(&b, 100, BV_FAILURE), BT_CALL);
    uint32_t gen;
    cr_assert_eq(breaker_acquire(&b, 100, &gen), BT_DENIED);
    cr_assert_eq(breaker_acquire(&b, 1099, &gen), BT_DENIED);
    cr_assert_eq(breaker_wait_ms(&b, 1099), 1);
    cr_assert_eq(breaker_state(&b, 1100), BREAKER_HALF_OPEN);
    cr_assert_eq(breaker_acquire(&b, 1100, &gen), BT_TRIAL);
    uint32_t g2;
    cr_assert_eq(breaker_acquire(&b, 1101, &g2), BT_DENIED, "a second call while the trial runs");
    cr_assert(breaker_release(&b, BT_TRIAL, gen, BV_SUCCESS, 1200));
    cr_assert_eq(breaker_state(&b, 1200), BREAKER_CLOSED);
    cr_assert_eq(breaker_acquire(&b, 1201, &g2), BT_CALL);
}

Test(breaker, failed_trial_opens_again_with_fresh_recovery) {
    breaker_t b;
    breaker_init(&b, 2, 1000);
    call(&b, 0, BV_FAILURE);
    call(&b, 0, BV_FAILURE);
    cr_assert_eq(breaker_state(&b, 0), BREAKER_OPEN);
    cr_assert_eq(call(&b, 1000, BV_FAILURE), BT_TRIAL);
    cr_assert_eq(breaker_state(&b, 1000), BREAKER_OPEN);
    cr_assert_eq(breaker_state(&b, 1999), BREAKER_OPEN);
    cr_assert_eq(breaker_state(&b, 2000), BREAKER_HALF_OPEN);
    cr_assert_eq(b.opens, 2);
}

Test(breaker, neutral_trial_lets_another_trial_go) {
    breaker_t b;
    breaker_init(&b, 1, 10);
    call(&b, 0, BV_FAILURE);
    cr_assert_eq(call(&b, 10, BV_NEUTRAL), BT_TRIAL);
    cr_assert_eq(breaker_state(&b, 10), BREAKER_HALF_OPEN);
    cr_assert_eq(call(&b, 11, BV_SUCCESS), BT_TRIAL);
    cr_assert_eq(breaker_state(&b, 11), BREAKER_CLOSED);
}

Test(breaker, stale_tickets_decide_nothing) {
    breaker_t b;
    breaker_init(&b, 2, 100);
    uint32_t slow_gen, g;
    cr_assert_eq(breaker_acquire(&b, 0, &slow_gen),
                 BT_CALL); /* a slow call, started while closed */
    call(&b, 1, BV_FAILURE);
    call(&b, 2, BV_FAILURE); /* opens */
    cr_assert_eq(breaker_state(&b, 2), BREAKER_OPEN);
    cr_assert_eq(breaker_acquire(&b, 102, &g), BT_TRIAL);
    /* the slow call's success must not close the circuit; its failure must not reopen it */
    cr_assert_not(breaker_release(&b, BT_CALL, slow_gen, BV_SUCCESS, 103));
    cr_assert_not(breaker_release(&b, BT_CALL, slow_gen, BV_FAILURE, 103));
    cr_assert_eq(breaker_state(&b, 103), BREAKER_HALF_OPEN);
    cr_assert(breaker_release(&b, BT_TRIAL, g, BV_FAILURE, 104));
    cr_assert_eq(breaker_state(&b, 104), BREAKER_OPEN);
    /* and an old trial ticket cannot act on the newer episode */
    cr_assert_not(breaker_release(&b, BT_TRIAL, g, BV_SUCCESS, 105));
    cr_assert_eq(breaker_state(&b, 105), BREAKER_OPEN);
}

Test(winlimit, at_most_max_in_any_window) {
    winlimit_t *w = winlimit_new(3, 1000);
    cr_assert_eq(winlimit_available(w, 0), 3);
    cr_assert_eq(winlimit_take(w, 0), 0);
    cr_assert_eq(winlimit_take(w, 400), 0);
    cr_assert_eq(winlimit_take(w, 500), 0);
    cr_assert_eq(winlimit_available(w, 600), 0);
    cr_assert_eq(winlimit_take(w, 999), ERR_RATELIMIT);
    cr_assert_eq(winlimit_wait_ms(w, 600), 400);
    cr_assert_eq(winlimit_take(w, 1000), 0, "the event at 0 left the window");
    cr_assert_eq(winlimit_take(w, 1001), ERR_RATELIMIT);
    cr_assert_eq(winlimit_wait_ms(w, 1001), 399);
    cr_assert_eq(winlimit_available(w, 1499), 1, "400 left at 1400; 500 and 1000 are still in");
    cr_assert_eq(winlimit_available(w, 1500), 2);
    cr_assert_eq(winlimit_available(w, 2000), 3);
    winlimit_free(w);
}

/* A token bucket would let 2 x max into one window; the sliding log never does. */
Test(winlimit, never_more_than_max_in_a_sliding_window) {
    const int max = 7;
    const int64_t win = 50;
    winlimit_t *w = winlimit_new(max, win);
    int64_t at[2000];
    int n = 0;
    for (int64_t t = 0; t < 1000 && n < 2000; t++)
        for (int k = 0; k < 3; k++)
            if (winlimit_take(w, t) == 0)
                at[n++] = t;
    cr_assert_gt(n, 1000 / win * max - max, "throughput reaches the limit: %d", n);
    for (int i = 0; i + max < n; i++)
        cr_assert_geq(at[i + max] - at[i], win, "events %d and %d within one window", i, i + max);
    winlimit_free(w);
}
