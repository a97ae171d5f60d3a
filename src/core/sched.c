/* sched: the short-slice hint (see sched.h). Any thread. */
#include "core/sched.h"

#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/err.h"

/* The kernel's struct sched_attr (linux/sched/types.h clashes with glibc's sched.h). */
struct sched_attr_v1 {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

#define POLICY_OTHER 0
#define FLAG_RESET_ON_FORK 0x01

int sched_short_slice(unsigned us) {
#ifdef SYS_sched_setattr
    struct sched_attr_v1 a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0 || a.sched_policy != POLICY_OTHER)
        return ERR_UNAVAIL; /* a real-time or batch policy set from outside: leave it */
    int32_t nice = a.sched_nice;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.sched_policy = POLICY_OTHER;
    a.sched_flags = FLAG_RESET_ON_FORK;
    a.sched_nice = nice;
    a.sched_runtime = (uint64_t)us * 1000;
    return syscall(SYS_sched_setattr, 0, &a, 0) == 0 ? 0 : ERR_UNAVAIL;
#else
    (void)us;
    return ERR_UNAVAIL;
#endif
}
