/*
 * webhook: signatures of the deliveries providers send us (api.md §6), as pure functions.
 *
 * Standard Webhooks v1 (OpenAI video events, our fake video provider):
 *   headers  webhook-id, webhook-timestamp (unix seconds), webhook-signature
 *   key      a `whsec_` secret is base64 after the prefix; any other secret is its raw bytes
 *   MAC      base64(HMAC-SHA256(key, "<id>.<timestamp>.<raw body>"))
 *   header   space-separated "v1,<base64>" entries (several during a key rotation); entries of
 *            other versions are skipped; any v1 entry that matches passes
 *   time     a timestamp more than WEBHOOK_TOLERANCE_S (300) seconds old or ahead is refused
 * Every comparison is constant-time; a refusal says which rule failed (for logs, never the
 * expected signature).
 *
 * Remotion render callbacks: header X-Remotion-Signature "sha512=<hex>" of
 * HMAC-SHA512(secret, raw body), the secret used as raw bytes; the "sha512=" prefix is optional
 * on verification; hex compares case-insensitively.
 *
 * Any thread. No allocation except where noted.
 */
#ifndef MYLOWARE_CORE_WEBHOOK_H
#define MYLOWARE_CORE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_TOLERANCE_S 300
/* "v1," + base64 of 32 bytes + NUL */
#define WEBHOOK_STD_SIG_LEN (3 + 44 + 1)
/* "sha512=" + 128 hex + NUL */
#define WEBHOOK_REMOTION_SIG_LEN (7 + 128 + 1)
/* longest key taken from a secret */
#define WEBHOOK_MAX_KEY 512

/*
 * The HMAC key of a Standard Webhooks secret into key (WEBHOOK_MAX_KEY bytes): base64-decoded
 * after a `whsec_` prefix, else the secret's bytes. Returns 0 and sets *klen; ERR_INVAL for an
 * empty secret, a `whsec_` secret that is not valid base64, or a key over WEBHOOK_MAX_KEY.
 */
int webhook_std_key(const char *secret, uint8_t key[WEBHOOK_MAX_KEY], size_t *klen);

/*
 * Signs one delivery: writes "v1,<base64>" (NUL-terminated) into out. Returns 0, or ERR_INVAL
 * (bad secret, as webhook_std_key). id and body are signed as given.
 */
int webhook_sign_standard(const char *secret, const char *id, int64_t timestamp, const void *body,
                          size_t len, char out[WEBHOOK_STD_SIG_LEN]);

/*
 * Verifies a delivery. id, timestamp and signature are the header values as received
 * (NUL-terminated; NULL when absent); now_s is the current unix time. Returns 0 when some v1
 * entry matches and the timestamp is within WEBHOOK_TOLERANCE_S of now_s; ERR_INVAL when the
 * secret is unusable (empty or bad base64: the caller answers 500, it is our configuration);
 * ERR_BADSIG otherwise (missing header, timestamp not an integer, stale or future timestamp,
 * no matching entry). When why is not NULL it gets a static phrase for logs
 * ("missing webhook-id", "timestamp too old", "timestamp in the future", "no matching signature").
 */
int webhook_verify_standard(const char *secret, const char *id, const char *timestamp,
                            const char *signature, const void *body, size_t len, int64_t now_s,
                            const char **why);

/* Writes "sha512=<lowercase hex>" of HMAC-SHA512(secret, body) into out. Returns 0 or ERR_INVAL
 * (empty secret). */
int webhook_sign_remotion(const char *secret, const void *body, size_t len,
                          char out[WEBHOOK_REMOTION_SIG_LEN]);

/*
 * Verifies a Remotion callback signature (the header value, with or without "sha512=",
 * surrounding spaces ignored). Returns 0 on a match; ERR_INVAL for an empty secret; ERR_BADSIG
 * when signature is NULL/empty ("missing signature") or does not match.
 */
int webhook_verify_remotion(const char *secret, const char *signature, const void *body, size_t len,
                            const char **why);

#endif
