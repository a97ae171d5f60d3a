/* ratelimit: token buckets in an open-addressing table. Loop thread. */
#include "core/ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

struct bucket {
    char *key; /* NULL: empty slot */
    size_t keylen;
    uint64_t hash;
    double tokens;
    int64_t updated_ms;
};

struct ratelimit {
    double capacity;
    double per_ms; /* refill rate, tokens per millisecond */
    double period_s;
    size_t max_keys, used, nslots;
    struct bucket *slots;
};

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

ratelimit_t *ratelimit_new(int64_t count, double period_s, size_t max_keys) {
    ratelimit_t *rl = xcalloc(1, sizeof *rl);
    rl->capacity = (double)count;
    rl->period_s = period_s;
    rl->per_ms = (double)count / (period_s * 1000.0);
    rl->max_keys = max_keys ? max_keys : 1;
    rl->nslots = 16;
    while (rl->nslots < rl->max_keys * 2)
        rl->nslots *= 2;
    rl->slots = xcalloc(rl->nslots, sizeof *rl->slots);
    return rl;
}

void ratelimit_free(ratelimit_t *rl) {
    if (!rl)
        return;
    for (size_t i = 0; i < rl->nslots; i++)
        free(rl->slots[i].key);
    free(rl->slots);
    free(rl);
}

size_t ratelimit_size(const ratelimit_t *rl) { return rl->used; }

static void refill(ratelimit_t *rl, struct bucket *b, int64_t now_ms) {
    if (now_ms > b->updated_ms) {
        b->tokens = fmin(rl->capacity, b->tokens + (double)(now_ms - b->updated_ms) * rl->per_ms);
        b->updated_ms = now_ms;
    }
}

/* Rebuilds the table keeping only the buckets for which keep() is true. */
static void rebuild(ratelimit_t *rl, int64_t now_ms, int64_t lru_cut) {
    struct bucket *old = rl->slots;
    size_t n = rl->nslots;
    rl->slots = xcalloc(n, sizeof *rl->slots);
    rl->used = 0;
    for (size_t i = 0; i < n; i++) {
        struct bucket *b = &old[i];
        if (!b->key)
            continue;
        /* Not refill(): updated_ms must stay the time of last use, which the LRU cut reads. */
        double level = b->tokens;
        if (now_ms > b->updated_ms)
            level += (double)(now_ms - b->updated_ms) * rl->per_ms;
        if (level >= rl->capacity || b->updated_ms < lru_cut) {
            free(b->key);
            continue;
        }
        size_t j = b->hash & (n - 1);
        while (rl->slots[j].key)
            j = (j + 1) & (n - 1);
        rl->slots[j] = *b;
        rl->used++;
    }
    free(old);
}

static void make_room(ratelimit_t *rl, int64_t now_ms) {
    rebuild(rl, now_ms, INT64_MIN); /* drop the full buckets */
    if (rl->used < rl->max_keys)
        return;
    /* Still full: drop the older half by last use. */
    int64_t *ages = xmalloc(rl->used * sizeof *ages);
    size_t k = 0;
    for (size_t i = 0; i < rl->nslots; i++)
        if (rl->slots[i].key)
            ages[k++] = rl->slots[i].updated_ms;
    int64_t lo = ages[0], hi = ages[0];
    for (size_t i = 1; i < k; i++) {
        lo = ages[i] < lo ? ages[i] : lo;
        hi = ages[i] > hi ? ages[i] : hi;
    }
    free(ages);
    rebuild(rl, now_ms, lo + (hi - lo) / 2 + 1);
}

int ratelimit_take(ratelimit_t *rl, const char *key, size_t keylen, int64_t now_ms,
                   int *retry_after_s) {
    uint64_t h = fnv1a(key, keylen);
    size_t mask = rl->nslots - 1, j = h & mask;
    struct bucket *b = NULL;
    for (; rl->slots[j].key; j = (j + 1) & mask) {
        struct bucket *s = &rl->slots[j];
        if (s->hash == h && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) {
            b = s;
            break;
        }
    }
    if (!b) {
        if (rl->used >= rl->max_keys) {
            make_room(rl, now_ms);
            j = h & mask;
            while (rl->slots[j].key)
                j = (j + 1) & mask;
        }
        b = &rl->slots[j];
        b->key = xmalloc(keylen + 1);
        memcpy(b->key, key, keylen);
        b->key[keylen] = '\0';
        b->keylen = keylen;
        b->hash = h;
        b->tokens = rl->capacity;
        b->updated_ms = now_ms;
        rl->used++;
    }
    refill(rl, b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    /* From the period, not per_ms: 1/per_ms is inexact (1 per hour gave 3601 s). */
    double wait_ms = (1.0 - b->tokens) * rl->period_s * 1000.0 / rl->capacity;
    int s = (int)ceil(wait_ms / 1000.0);
    *retry_after_s = s < 1 ? 1 : s;
    return ERR_RATELIMIT;
}

void ratelimit_describe(const ratelimit_t *rl, char *out, size_t cap) {
    const char *unit = "second";
    double n = rl->period_s;
    if (rl->period_s >= 3600 && fmod(rl->period_s, 3600) == 0) {
        unit = "hour";
        n = rl->period_s / 3600;
    } else if (rl->period_s >= 60 && fmod(rl->period_s, 60) == 0) {
        unit = "minute";
        n = rl->period_s / 60;
    }
    snprintf(out, cap, "%.0f per %.0f %s", rl->capacity, n, unit);
}
