/* HTTP_LOOP_SLICE_US: the server's loop thread asks for a short CPU slice; 0 leaves the default. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/harness.h"

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t prio;
    uint64_t runtime, deadline, period;
    uint32_t umin, umax;
};

static uint64_t slice_ns(pid_t tid) {
    struct attr a;
    memset(&a, 0, sizeof a);
    cr_assert_eq(syscall(SYS_sched_getattr, tid, &a, sizeof a, 0), 0);
    return a.runtime;
}

/* Whether this kernel keeps a slice asked for (Linux >= 6.12), tried on a child process. */
static bool kernel_keeps_slices(uint64_t *dflt) {
    *dflt = slice_ns(0);
    pid_t pid = fork();
    if (pid == 0) {
        struct attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.runtime = 300000;
        _exit(syscall(SYS_sched_setattr, 0, &a, 0) == 0 && slice_ns(0) == 300000 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void health_ok(int port) {
    struct resp r;
    cr_assert(h_request(port, "GET", "/health", NULL, NULL, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

Test(loop_slice, the_loop_thread_asks_for_a_short_slice_and_zero_leaves_the_default) {
    uint64_t dflt;
    bool keeps = kernel_keeps_slices(&dflt);
    struct server s;
    server_start(&s, NULL);
    health_ok(s.port); /* answered: the loop runs */
    if (keeps)
        cr_expect_eq(slice_ns(s.pid), 100000u, "the loop thread (the main thread) asks for 100 us");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);

    static const char *off[] = {"HTTP_LOOP_SLICE_US=0", NULL};
    server_start(&s, off);
    health_ok(s.port);
    cr_expect_eq(slice_ns(s.pid), dflt, "HTTP_LOOP_SLICE_US=0: the default slice");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
