/*
 * test_loopwait: h_loop_run_until (tests/support/loopwait.c), the wait every loop-driving test
 * needs. The regression: a completion that runs in the timer phase of a turn (as curl's
 * timeout callback finishing a transfer does) must be seen at once, not when the deadline
 * timer next wakes the loop; this is what made providers::sora_create_status_download_and_
 * signed_event wait 90 s with a status answer in hand and fail "never became completed".
 */
#include <criterion/criterion.h>
#include <uv.h>

#include "support/harness.h"
#include "support/loopwait.h"

static uv_loop_t loop;

static void setup(void) { cr_assert_eq(uv_loop_init(&loop), 0); }

static void teardown(void) {
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "h_loop_run_until closed its handles");
}

TestSuite(loopwait, .init = setup, .fini = teardown, .timeout = 60);

static void set_flag(uv_timer_t *t) { *(int *)t->data = 1; }

/* The flag is set by a 0 ms timer: in the timer phase, before that turn's poll. */
Test(loopwait, a_completion_in_the_timer_phase_is_seen_at_once) {
    for (int round = 0; round < 3; round++) {
        int flag = 0;
        uv_timer_t t;
        uv_timer_init(&loop, &t);
        t.data = &flag;
        uv_timer_start(&t, set_flag, 0, 0);
        int64_t t0 = h_now_ms();
        cr_assert(h_loop_run_until(&loop, &flag, 20000));
        int64_t took = h_now_ms() - t0;
        cr_assert_lt(
            took, 5000,
            "round %d: the flag set in the timer phase was seen after %lld ms (the deadline "
            "is 20000 ms)",
            round, (long long)took);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* A timer started from inside another callback (as the HTTP client arms curl's timer from a
 * socket callback) that completes in a later turn's timer phase. */
static uv_timer_t second;

static void arm_later(uv_timer_t *t) {
    (void)t;
    uv_timer_start(&second, set_flag, 0, 0);
}

Test(loopwait, a_completion_armed_from_a_callback_is_seen_at_once) {
    int flag = 0;
    uv_timer_t first;
    uv_timer_init(&loop, &first);
    uv_timer_init(&loop, &second);
    second.data = &flag;
    uv_timer_start(&first, arm_later, 1, 0);
    int64_t t0 = h_now_ms();
    cr_assert(h_loop_run_until(&loop, &flag, 20000));
    cr_assert_lt(h_now_ms() - t0, 5000);
    uv_close((uv_handle_t *)&first, NULL);
    uv_close((uv_handle_t *)&second, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* first lives on this stack */
}

/* Pool work: its done callback runs in the poll phase (woken by libuv's async). */
static void work(uv_work_t *w) { (void)w; }
static void work_done(uv_work_t *w, int status) {
    (void)status;
    *(int *)w->data = 1;
}

Test(loopwait, a_pool_completion_is_seen) {
    int flag = 0;
    uv_work_t w = {.data = &flag};
    cr_assert_eq(uv_queue_work(&loop, &w, work, work_done), 0);
    cr_assert(h_loop_run_until(&loop, &flag, 20000));
}

/* Nothing sets the flag: false, at the deadline (not before it), the loop left clean. */
Test(loopwait, no_completion_returns_false_at_the_deadline) {
    int flag = 0;
    int64_t t0 = h_now_ms();
    cr_assert_not(h_loop_run_until(&loop, &flag, 200));
    int64_t took = h_now_ms() - t0;
    cr_assert_geq(took, 190, "returned after %lld ms", (long long)took);
    cr_assert_lt(took, 10000);
}
