/*
 * loopwait: run a test's libuv loop until a completion callback set a flag, or a deadline.
 *
 * Why not `while (!flag) uv_run(loop, UV_RUN_ONCE);` with a deadline timer: a callback that
 * runs in the timer phase at the start of a turn (curl's timeout callback finishing a
 * transfer, a 0 ms timer) sets the flag, and that same turn then still blocks in poll until
 * the next event, which may be only the deadline timer: the answer is seen ms later, at the
 * deadline (the providers test waited 90 s with a status answer already in hand). Here a
 * prepare handle, which runs right before every poll, stops the loop once the flag is set, so
 * poll does not block; no periodic wake-ups.
 */
#ifndef MYLOWARE_TESTS_LOOPWAIT_H
#define MYLOWARE_TESTS_LOOPWAIT_H

#include <stdbool.h>
#include <uv.h>

/* Runs loop until *flag != 0 or ms have passed; returns whether *flag was set. The handles it
 * adds are closed before it returns. Loop thread (the caller's). */
bool h_loop_run_until(uv_loop_t *loop, const volatile int *flag, int ms);

#endif
