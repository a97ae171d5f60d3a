/* winlimit: a ring of the last `max` event times (see winlimit.h). */
#include "core/winlimit.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/mem.h"

struct winlimit {
    int max, count, head; /* head: index of the oldest recorded event */
    int64_t window_ms;
    int64_t *at;
};

winlimit_t *winlimit_new(int max, int64_t window_ms) {
    winlimit_t *w = xcalloc(1, sizeof *w);
    w->max = max > 0 ? max : 1;
    w->window_ms = window_ms > 0 ? window_ms : 1;
    w->at = xcalloc((size_t)w->max, sizeof *w->at);
    return w;
}

void winlimit_free(winlimit_t *w) {
    if (w) {
        free(w->at);
        free(w);
    }
}

/* Events still inside the window ending at now_ms: the ring is in time order, so count from
 * the oldest until one is inside. */
static int live(const winlimit_t *w, int64_t now_ms, int *first) {
    int n = w->count, h = w->head;
    while (n > 0 && w->at[h] <= now_ms - w->window_ms) {
        h = (h + 1) % w->max;
        n--;
    }
    if (first)
        *first = h;
    return n;
}

int winlimit_available(const winlimit_t *w, int64_t now_ms) {
    return w->max - live(w, now_ms, NULL);
}

int winlimit_take(winlimit_t *w, int64_t now_ms) {
    int first, n = live(w, now_ms, &first);
    if (n >= w->max)
        return ERR_RATELIMIT;
    w->head = first;
    w->count = n + 1;
    w->at[(first + n) % w->max] = now_ms;
    return 0;
}

int64_t winlimit_wait_ms(const winlimit_t *w, int64_t now_ms) {
    int first, n = live(w, now_ms, &first);
    if (n < w->max)
        return 0;
    /* the oldest live event leaves the window at at + window_ms (strictly after: <= now - window)
     */
    int64_t wait = w->at[first] + w->window_ms - now_ms;
    return wait > 0 ? wait : 0;
}
