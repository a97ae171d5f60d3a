/*
 * ratelimit: token buckets keyed by a string (an API key id, a client IP). Each key gets a
 * bucket of `count` tokens refilled continuously at count/period. The table holds at most
 * max_keys buckets: when it is full, full buckets (indistinguishable from new ones) are
 * dropped first, then the least recently used. Memory is therefore bounded whatever the
 * clients send. Not thread-safe: one owner thread (the loop).
 */
#ifndef MYLOWARE_CORE_RATELIMIT_H
#define MYLOWARE_CORE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

ratelimit_t *ratelimit_new(int64_t count, double period_s, size_t max_keys);
void ratelimit_free(ratelimit_t *rl);
/*
 * Takes one token from key's bucket at now_ms. Returns 0 when allowed; ERR_RATELIMIT when
 * not, with *retry_after_s set to the whole seconds until a token is back (at least 1).
 */
int ratelimit_take(ratelimit_t *rl, const char *key, size_t keylen, int64_t now_ms,
                   int *retry_after_s);
/* Number of buckets held (for tests and metrics). */
size_t ratelimit_size(const ratelimit_t *rl);
/* "60 per 1 minute" for the 429 body; out has cap bytes. */
void ratelimit_describe(const ratelimit_t *rl, char *out, size_t cap);

#endif
