/* webhook: Standard Webhooks v1 and Remotion HMAC-SHA512 signatures (see webhook.h). */
#include "core/webhook.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/err.h"

int webhook_std_key(const char *secret, uint8_t key[WEBHOOK_MAX_KEY], size_t *klen) {
    if (!secret || !*secret)
        return ERR_INVAL;
    size_t n = strlen(secret);
    if (strncmp(secret, "whsec_", 6) == 0) {
        size_t got = 0;
        if (n == 6 || crypto_base64_decode(secret + 6, n - 6, key, WEBHOOK_MAX_KEY, &got) != 0 ||
            got == 0)
            return ERR_INVAL;
        *klen = got;
        return 0;
    }
    if (n > WEBHOOK_MAX_KEY)
        return ERR_INVAL;
    memcpy(key, secret, n);
    *klen = n;
    return 0;
}

/* base64(HMAC-SHA256(key, id "." ts "." body)) into out (45 bytes). */
static void std_mac(const uint8_t *key, size_t klen, const char *id, size_t idlen, const char *ts,
                    size_t tslen, const void *body, size_t len, char out[45]) {
    size_t n = idlen + 1 + tslen + 1 + len;
    char *msg = malloc(n ? n : 1);
    if (!msg)
        abort();
    memcpy(msg, id, idlen);
    msg[idlen] = '.';
    memcpy(msg + idlen + 1, ts, tslen);
    msg[idlen + 1 + tslen] = '.';
    if (len)
        memcpy(msg + idlen + tslen + 2, body, len);
    uint8_t mac[32];
    crypto_hmac_sha256(key, klen, msg, n, mac);
    free(msg);
    crypto_base64(mac, sizeof mac, out);
}

int webhook_sign_standard(const char *secret, const char *id, int64_t timestamp, const void *body,
                          size_t len, char out[WEBHOOK_STD_SIG_LEN]) {
    uint8_t key[WEBHOOK_MAX_KEY];
    size_t klen;
    if (!id || webhook_std_key(secret, key, &klen) != 0)
        return ERR_INVAL;
    char ts[24];
    int tslen = snprintf(ts, sizeof ts, "%lld", (long long)timestamp);
    char mac[45];
    std_mac(key, klen, id, strlen(id), ts, (size_t)tslen, body, len, mac);
    memcpy(out, "v1,", 3);
    memcpy(out + 3, mac, 45);
    return 0;
}

static int refuse(const char **why, const char *reason) {
    if (why)
        *why = reason;
    return ERR_BADSIG;
}

int webhook_verify_standard(const char *secret, const char *id, const char *timestamp,
                            const char *signature, const void *body, size_t len, int64_t now_s,
                            const char **why) {
    uint8_t key[WEBHOOK_MAX_KEY];
    size_t klen;
    if (why)
        *why = "";
    if (webhook_std_key(secret, key, &klen) != 0) {
        if (why)
            *why = "webhook secret unusable";
        return ERR_INVAL;
    }
    if (!id || !*id)
        return refuse(why, "missing webhook-id");
    if (!timestamp || !*timestamp)
        return refuse(why, "missing webhook-timestamp");
    if (!signature || !*signature)
        return refuse(why, "missing webhook-signature");
    /* the timestamp: decimal digits only, no sign, no spaces, at most 15 digits */
    size_t tslen = strlen(timestamp);
    if (tslen > 15)
        return refuse(why, "timestamp is not an integer");
    for (size_t i = 0; i < tslen; i++)
        if (!isdigit((unsigned char)timestamp[i]))
            return refuse(why, "timestamp is not an integer");
    int64_t ts = strtoll(timestamp, NULL, 10);
    if (ts < now_s - WEBHOOK_TOLERANCE_S)
        return refuse(why, "timestamp too old");
    if (ts > now_s + WEBHOOK_TOLERANCE_S)
        return refuse(why, "timestamp in the future");
    char expected[45];
    std_mac(key, klen, id, strlen(id), timestamp, tslen, body, len, expected);
    bool ok = false;
    for (const char *p = signature; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if (e - p > 3 && memcmp(p, "v1,", 3) == 0) {
            /* constant-time; keep looking at every entry so the time does not tell which matched */
            if (crypto_ct_equal(p + 3, (size_t)(e - p - 3), expected, 44))
                ok = true;
        }
        p = e;
    }
    return ok ? 0 : refuse(why, "no matching signature");
}

int webhook_sign_remotion(const char *secret, const void *body, size_t len,
                          char out[WEBHOOK_REMOTION_SIG_LEN]) {
    if (!secret || !*secret)
        return ERR_INVAL;
    uint8_t mac[64];
    crypto_hmac_sha512(secret, strlen(secret), body, len, mac);
    memcpy(out, "sha512=", 7);
    crypto_hex(mac, sizeof mac, out + 7);
    return 0;
}

int webhook_verify_remotion(const char *secret, const char *signature, const void *body, size_t len,
                            const char **why) {
    if (why)
        *why = "";
    if (!secret || !*secret) {
        if (why)
            *why = "webhook secret unusable";
        return ERR_INVAL;
    }
    if (!signature)
        return refuse(why, "missing signature");
    while (*signature == ' ' || *signature == '\t')
        signature++;
    if (strncasecmp(signature, "sha512=", 7) == 0)
        signature += 7;
    size_t n = strlen(signature);
    while (n > 0 && (signature[n - 1] == ' ' || signature[n - 1] == '\t'))
        n--;
    if (n == 0)
        return refuse(why, "missing signature");
    char expected[WEBHOOK_REMOTION_SIG_LEN];
    webhook_sign_remotion(secret, body, len, expected);
    char got[129];
    if (n != 128)
        return refuse(why, "no matching signature");
    for (size_t i = 0; i < n; i++)
        got[i] = (char)tolower((unsigned char)signature[i]);
    got[128] = '\0';
    return crypto_ct_equal(got, 128, expected + 7, 128) ? 0 : refuse(why, "no matching signature");
}
