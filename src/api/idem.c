/* idem: the Idempotency-Key of the writes (see idem.h). */
#include "api/idem.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/mem.h"

bool api_idem_take(http_req_t *req, char **key, char hash[API_IDEM_HASH_LEN], const char *headers) {
    *key = NULL;
    size_t n = 0;
    const char *k = http_header(req, "Idempotency-Key", &n);
    if (!k)
        return true;
    bool ok = n >= 1 && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] >= 0x21 && k[i] <= 0x7e;
    if (!ok) {
        json_t *extra = json_pack("{s:[{s:s,s:s}]}", "fields", "field", "Idempotency-Key",
                                  "message", "must be 1 to 255 printable characters");
        http_respond_error(req, 422, "validation_error", "Request validation failed", extra,
                           headers);
        return false;
    }
    *key = xstrndup(k, n);
    buf_t b;
    buf_init(&b, 64u << 20);
    buf_printf(&b, "%s %s\n", req->method, req->path);
    buf_append(&b, req->body.data ? req->body.data : "", req->body.len);
    uint8_t h[32];
    crypto_sha256(b.data ? b.data : "", b.len, h);
    crypto_hex(h, sizeof h, hash);
    buf_release(&b);
    return true;
}

bool api_idem_answer(http_req_t *req, const struct idem_result *r, const char *headers) {
    if (r->state == IDEM_NEW)
        return false;
    if (r->state == IDEM_REPLAY && r->status != 0) {
        char h[1024];
        snprintf(h, sizeof h, "%sIdempotent-Replayed: true\r\n", headers ? headers : "");
        const char *b = r->body ? r->body : "";
        http_respond(req, r->status, "application/json", b, strlen(b), h);
    } else if (r->state == IDEM_MISMATCH) {
        http_respond_error(req, 422, "idempotency_key_reused",
                           "Idempotency-Key was already used with a different request", NULL,
                           headers);
    } else { /* in progress (a v2 start's provisional record has no status yet) */
        http_respond_error(req, 409, "conflict",
                           "A request with this Idempotency-Key is still in progress", NULL,
                           headers);
    }
    return true;
}
