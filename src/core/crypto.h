/*
 * crypto: the few primitives the service needs, on mbedTLS: HMAC-SHA256/512, SHA-256, base64,
 * hex, random bytes (a CTR-DRBG per thread), UUIDv4, and constant-time comparison.
 * Any thread.
 */
#ifndef MYLOWARE_CORE_CRYPTO_H
#define MYLOWARE_CORE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_UUID_LEN 37 /* 36 chars + NUL */

/* Fills out with n cryptographically random bytes. Aborts if the entropy source fails. */
void crypto_random(void *out, size_t n);
/* Writes a random lowercase UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"). */
void crypto_uuid4(char out[CRYPTO_UUID_LEN]);
/* A UUIDv7 (RFC 9562): 48 bits of ms_epoch, then 74 random bits. Ids made later sort later
 * (across milliseconds), so a B-tree keyed by them grows at its right edge instead of at
 * random pages (the job table's primary key). Any thread. */
void crypto_uuid7(char out[CRYPTO_UUID_LEN], int64_t ms_epoch);
/* True when s is a canonical UUID (any version, either case). */
bool crypto_is_uuid(const char *s, size_t n);

void crypto_sha256(const void *msg, size_t n, uint8_t out[32]);
void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[32]);
void crypto_hmac_sha512(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[64]);

/* Constant-time equality: time depends only on the lengths, never on the contents. */
bool crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void crypto_hex(const uint8_t *in, size_t n, char *out);
/* Standard base64 with padding into out (4*ceil(n/3)+1 bytes). Returns the length written. */
size_t crypto_base64(const uint8_t *in, size_t n, char *out);
/* Decodes standard base64 into out (cap bytes). Returns 0 and sets *outlen, or ERR_INVAL. */
int crypto_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);

#endif
