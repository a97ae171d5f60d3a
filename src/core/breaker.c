/* breaker: the circuit breaker's transitions (see breaker.h). Pure; one owner thread. */
#include "core/breaker.h"

void breaker_init(breaker_t *b, int threshold, int64_t recovery_ms) {
    *b = (breaker_t){.threshold = threshold > 0 ? threshold : 1,
                     .recovery_ms = recovery_ms > 0 ? recovery_ms : 0};
}

static void set_state(breaker_t *b, enum breaker_state s, int64_t now_ms) {
    b->state = s;
    b->generation++;
    b->failures = 0;
    b->trial_out = false;
    if (s == BREAKER_OPEN) {
        b->opened_ms = now_ms;
        b->opens++;
    }
}

enum breaker_state breaker_state(const breaker_t *b, int64_t now_ms) {
    if (b->state == BREAKER_OPEN && now_ms - b->opened_ms >= b->recovery_ms)
        return BREAKER_HALF_OPEN;
    return b->state;
}

const char *breaker_state_name(enum breaker_state s) {
    switch (s) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half_open";
    }
    return "closed";
}

enum breaker_ticket breaker_acquire(breaker_t *b, int64_t now_ms, uint32_t *gen) {
    if (b->state == BREAKER_OPEN) {
        if (now_ms - b->opened_ms < b->recovery_ms)
            return BT_DENIED;
        set_state(b, BREAKER_HALF_OPEN, now_ms);
    }
    if (b->state == BREAKER_CLOSED) {
        *gen = b->generation;
        return BT_CALL;
    }
    if (b->trial_out) /* half-open: one trial at a time */
        return BT_DENIED;
    b->trial_out = true;
    *gen = b->generation;
    return BT_TRIAL;
}

bool breaker_release(breaker_t *b, enum breaker_ticket t, uint32_t gen, enum breaker_verdict v,
                     int64_t now_ms) {
    if (t == BT_DENIED || gen != b->generation)
        return false; /* taken in an earlier state: it decides nothing now */
    if (t == BT_TRIAL) {
        if (b->state != BREAKER_HALF_OPEN)
            return false;
        if (v == BV_NEUTRAL) { /* let another trial go */
            b->trial_out = false;
            return false;
        }
        set_state(b, v == BV_SUCCESS ? BREAKER_CLOSED : BREAKER_OPEN, now_ms);
        return true;
    }
    if (b->state != BREAKER_CLOSED)
        return false;
    if (v == BV_SUCCESS) {
        b->failures = 0;
    } else if (v == BV_FAILURE && ++b->failures >= b->threshold) {
        set_state(b, BREAKER_OPEN, now_ms);
        return true;
    }
    return false;
}

int64_t breaker_wait_ms(const breaker_t *b, int64_t now_ms) {
    if (b->state != BREAKER_OPEN)
        return 0;
    int64_t left = b->recovery_ms - (now_ms - b->opened_ms);
    return left > 0 ? left : 0;
}
