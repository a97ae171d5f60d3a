/* cpuprio: background threads below the loop (see cpuprio.h). */
#include "core/cpuprio.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/err.h"

#define LOW_NICE 10

enum cpuprio cpuprio_parse(const char *s) {
    if (s && strcmp(s, "idle") == 0)
        return CPUPRIO_IDLE;
    if (s && strcmp(s, "low") == 0)
        return CPUPRIO_LOW;
    return CPUPRIO_NORMAL;
}

int cpuprio_lower_self(enum cpuprio p) {
    if (p == CPUPRIO_IDLE) {
        struct sched_param sp = {.sched_priority = 0};
        if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
            return 0;
        p = CPUPRIO_LOW; /* a kernel without SCHED_IDLE: the next best */
    }
    if (p == CPUPRIO_LOW) {
        /* setpriority on a thread id changes that thread only (Linux); raising one's own nice
         * value needs no privilege */
        int now = getpriority(PRIO_PROCESS, (id_t)gettid());
        if (now >= LOW_NICE)
            return 0;
        return setpriority(PRIO_PROCESS, (id_t)gettid(), LOW_NICE) == 0 ? 0 : ERR_INTERNAL;
    }
    return 0;
}

enum cpuprio cpuprio_self(void) {
    int policy;
    struct sched_param sp;
    if (pthread_getschedparam(pthread_self(), &policy, &sp) == 0 && policy == SCHED_IDLE)
        return CPUPRIO_IDLE;
    return getpriority(PRIO_PROCESS, (id_t)gettid()) >= LOW_NICE ? CPUPRIO_LOW : CPUPRIO_NORMAL;
}

struct bg {
    enum cpuprio p;
    void (*fn)(void *);
    void *arg;
};

static void *bg_main(void *a) {
    struct bg *b = a;
    cpuprio_lower_self(b->p); /* refused: the work still runs, at the normal priority */
    b->fn(b->arg);
    return NULL;
}

int cpuprio_run(enum cpuprio p, void (*fn)(void *arg), void *arg) {
    if (p == CPUPRIO_NORMAL) {
        fn(arg);
        return 0;
    }
    struct bg b = {p, fn, arg};
    pthread_t t;
    if (pthread_create(&t, NULL, bg_main, &b) != 0) {
        fn(arg);
        return ERR_NOMEM;
    }
    pthread_join(t, NULL);
    return 0;
}
