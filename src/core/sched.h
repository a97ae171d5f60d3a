/*
 * sched: a scheduling hint for the loop thread.
 *
 * On a machine whose CPUs are busy (the load generator of a benchmark, encodes, other
 * processes), a thread that sleeps in epoll_wait and wakes for each burst of requests waits for
 * the CPU behind whatever runs there: with the Linux default time slice (0.7 ms x (1 + log2
 * CPUs)) that wait, not our code, is most of the HTTP p99. Linux >= 6.12 (EEVDF) lets a thread
 * ask for a shorter slice (sched_attr.sched_runtime with SCHED_OTHER): it is then picked sooner
 * after waking, for the same share of CPU (its weight, the nice value, is unchanged). Threads the
 * caller creates later (libuv's pool, curl's resolver threads) get the default slice back
 * (SCHED_FLAG_RESET_ON_FORK). Older kernels ignore the slice. No privilege needed.
 */
#ifndef MYLOWARE_CORE_SCHED_H
#define MYLOWARE_CORE_SCHED_H

/* The loop thread's slice is the setting HTTP_LOOP_SLICE_US (100 microseconds, the kernel's
 * minimum; 0 leaves the default). */

/* Asks for a slice of us microseconds for the calling thread. Returns 0, or ERR_UNAVAIL when
 * the kernel refuses (nothing changed). Best effort: callers go on either way. Any thread. */
int sched_short_slice(unsigned us);

#endif
