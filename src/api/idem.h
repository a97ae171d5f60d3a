/*
 * api/idem: the Idempotency-Key of the writes (api.md §3), shared by runs.c and demo.c: the
 * key's validation, the request's hash, and the answers to a key seen before. Loop thread.
 */
#ifndef MYLOWARE_API_IDEM_H
#define MYLOWARE_API_IDEM_H

#include <stdbool.h>

#include "db/store.h"
#include "http/server.h"

#define API_IDEM_TTL_MS (24LL * 3600 * 1000) /* a key's record is kept a day */
#define API_IDEM_HASH_LEN 65                 /* hex SHA-256 and its NUL */

/* Reads req's Idempotency-Key (1-255 printable characters). true: none (*key NULL) or a valid
 * one: *key (caller frees) and hash, the SHA-256 of the method, path and body. false: answered
 * 422 validation_error; headers are extra header lines of that answer (NULL: none). */
bool api_idem_take(http_req_t *req, char **key, char hash[API_IDEM_HASH_LEN], const char *headers);

/* Answers a request whose key was seen before (r->state != IDEM_NEW): a finished one's stored
 * answer with Idempotent-Replayed: true, another request's key 422 idempotency_key_reused, one
 * still in progress 409 conflict. false (nothing answered) for IDEM_NEW. headers: as above. */
bool api_idem_answer(http_req_t *req, const struct idem_result *r, const char *headers);

#endif
