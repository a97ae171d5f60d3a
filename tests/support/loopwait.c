/* loopwait: see loopwait.h. */
#include "support/loopwait.h"

#include <stdint.h>

struct loopwait {
    const volatile int *flag;
    bool expired;
};

static void on_prepare(uv_prepare_t *p) {
    struct loopwait *w = p->data;
    if (*w->flag)
        uv_stop(p->loop); /* the poll that follows does not block */
}

static void on_deadline(uv_timer_t *t) {
    struct loopwait *w = t->data;
    w->expired = true;
}

bool h_loop_run_until(uv_loop_t *loop, const volatile int *flag, int ms) {
    struct loopwait w = {flag, false};
    uv_prepare_t p;
    uv_timer_t t;
    uv_prepare_init(loop, &p);
    uv_timer_init(loop, &t);
    p.data = t.data = &w;
    uv_prepare_start(&p, on_prepare);
    uv_update_time(loop);
    uv_timer_start(&t, on_deadline, (uint64_t)(ms > 0 ? ms : 0), 0);
    while (!*flag && !w.expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* their close callbacks */
    return *flag != 0;
}
