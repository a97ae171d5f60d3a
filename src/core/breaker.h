/*
 * breaker: a circuit breaker (closed / open / half-open) for calls to one outside service.
 *
 *   closed --threshold consecutive failures--> open --recovery time passed--> half_open
 *     ^                                          ^                              |
 *     +------------- the trial succeeds ---------|------------------------------+
 *                                                +------ the trial fails -------+
 *
 * Closed: every call may go; a success resets the count of consecutive failures. Open: no call
 * may go until recovery_ms has passed since it opened. Half-open: exactly one call (the trial)
 * may go; its success closes the circuit, its failure opens it again (a fresh recovery time).
 * Each permitted call holds a ticket (breaker_acquire) and gives it back with its verdict
 * (breaker_release): a verdict only counts in the state its ticket was taken in, so a slow
 * call started while closed cannot decide a later half-open trial.
 *
 * Times are passed in (milliseconds, any monotonic origin) so that it is pure and testable.
 * Not thread-safe: one owner thread (the dispatcher's loop).
 */
#ifndef MYLOWARE_CORE_BREAKER_H
#define MYLOWARE_CORE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };
enum breaker_verdict { BV_SUCCESS, BV_FAILURE, BV_NEUTRAL /* decides nothing */ };
/* breaker_acquire's answers */
enum breaker_ticket { BT_DENIED = -1, BT_CALL = 0, BT_TRIAL = 1 };

typedef struct breaker {
    int threshold;       /* consecutive failures that open it (>= 1) */
    int64_t recovery_ms; /* open -> half_open after this */
    enum breaker_state state;
    int failures;        /* consecutive, while closed */
    int64_t opened_ms;   /* when it last opened */
    bool trial_out;      /* half_open: the trial is running */
    uint32_t generation; /* bumped on every state change: stale tickets decide nothing */
    uint64_t opens;      /* times it opened (for tests and logs) */
} breaker_t;

void breaker_init(breaker_t *b, int threshold, int64_t recovery_ms);
/* The state at now_ms (an open circuit whose recovery time passed reports half_open). */
enum breaker_state breaker_state(const breaker_t *b, int64_t now_ms);
/* "closed", "open", "half_open". */
const char *breaker_state_name(enum breaker_state s);
/* May a call start at now_ms? BT_CALL (closed), BT_TRIAL (the one half-open trial; moves open
 * to half_open when its time came), or BT_DENIED. *gen gets the ticket's generation, to pass
 * back to breaker_release. */
enum breaker_ticket breaker_acquire(breaker_t *b, int64_t now_ms, uint32_t *gen);
/* A call that held a ticket ended. Returns true when this verdict changed the state. */
bool breaker_release(breaker_t *b, enum breaker_ticket t, uint32_t gen, enum breaker_verdict v,
                     int64_t now_ms);
/* Milliseconds until an open circuit turns half-open (0 when not open). */
int64_t breaker_wait_ms(const breaker_t *b, int64_t now_ms);

#endif
