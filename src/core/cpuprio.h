/*
 * cpuprio: the CPU priority of background work. Media work (encodes that keep every core busy
 * for seconds) runs below the loop and database threads so that HTTP latency holds while it
 * runs: on Linux the scheduling policy and the nice value belong to a thread, and the threads
 * it creates (x264's and FFmpeg's codec threads) inherit them.
 *
 *   CPUPRIO_NORMAL  as the rest of the process
 *   CPUPRIO_LOW     nice +10: about a tenth of a core's share against a busy normal thread
 *   CPUPRIO_IDLE    SCHED_IDLE: only CPU time no normal thread wants; a waking normal thread
 *                   (the loop) preempts it at once
 *
 * An unprivileged thread cannot raise its priority back, so the work runs on a thread of its
 * own that ends with it (cpuprio_run), never on a pool thread that later runs other work.
 */
#ifndef MYLOWARE_CORE_CPUPRIO_H
#define MYLOWARE_CORE_CPUPRIO_H

enum cpuprio { CPUPRIO_NORMAL, CPUPRIO_LOW, CPUPRIO_IDLE };

/* "normal", "low", "idle" (TRANSCODE_PRIORITY); anything else is CPUPRIO_NORMAL. Any thread. */
enum cpuprio cpuprio_parse(const char *s);
/* Lowers the calling thread to p (CPUPRIO_NORMAL: nothing). Returns 0 or ERR_INTERNAL (the
 * system refused; the thread is unchanged). Any thread that never needs its priority back. */
int cpuprio_lower_self(enum cpuprio p);
/* The calling thread's class as the scheduler sees it (for tests). Any thread. */
enum cpuprio cpuprio_self(void);
/*
 * Runs fn(arg) at priority p and returns when it has returned: on a new thread that lowers
 * itself first, then ends (CPUPRIO_NORMAL: on the calling thread). When no thread can be made,
 * fn runs on the calling thread at its priority and ERR_NOMEM is returned (fn has still run).
 * Returns 0 otherwise. Blocking: a worker thread, never the loop.
 */
int cpuprio_run(enum cpuprio p, void (*fn)(void *arg), void *arg);

#endif
