/*
 * winlimit: at most `max` events in any window of `window_ms` (a sliding-window log: a ring of
 * the last `max` event times). Exact, unlike a token bucket (core/ratelimit.h), which lets a
 * full bucket plus its refill, up to twice the limit, into one window: the queue's limiter
 * (QUEUE_LIMITER_MAX jobs per QUEUE_LIMITER_DURATION_MS) promises the limit per window.
 * Memory: 8 bytes per allowed event. Times are passed in (monotonic milliseconds). Not
 * thread-safe: one owner thread.
 */
#ifndef MYLOWARE_CORE_WINLIMIT_H
#define MYLOWARE_CORE_WINLIMIT_H

#include <stdint.h>

typedef struct winlimit winlimit_t;

/* max >= 1, window_ms >= 1. */
winlimit_t *winlimit_new(int max, int64_t window_ms);
void winlimit_free(winlimit_t *w);
/* How many events may happen at now_ms. */
int winlimit_available(const winlimit_t *w, int64_t now_ms);
/* Records one event at now_ms. Returns 0, or ERR_RATELIMIT (nothing recorded) when none is
 * available. now_ms must not go back in time. */
int winlimit_take(winlimit_t *w, int64_t now_ms);
/* Milliseconds from now_ms until one event is available (0: now). */
int64_t winlimit_wait_ms(const winlimit_t *w, int64_t now_ms);

#endif
