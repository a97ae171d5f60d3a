/* crypto: mbedTLS wrappers. The DRBG is per thread, so no lock is taken on the hot path. */
#include "core/crypto.h"

#include <ctype.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct drbg {
    int ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context ctr;
};

static _Thread_local struct drbg tls_drbg;

void crypto_random(void *out, size_t n) {
    struct drbg *d = &tls_drbg;
    if (!d->ready) {
        mbedtls_entropy_init(&d->entropy);
        mbedtls_ctr_drbg_init(&d->ctr);
        static const char pers[] = "myloware";
        if (mbedtls_ctr_drbg_seed(&d->ctr, mbedtls_entropy_func, &d->entropy,
                                  (const unsigned char *)pers, sizeof pers - 1) != 0) {
            fprintf(stderr, "fatal: cannot seed the random generator\n");
            abort();
        }
        d->ready = 1;
    }
    unsigned char *p = out;
    while (n > 0) { /* the DRBG gives at most MBEDTLS_CTR_DRBG_MAX_REQUEST bytes per call */
        size_t k = n > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : n;
        if (mbedtls_ctr_drbg_random(&d->ctr, p, k) != 0) {
            fprintf(stderr, "fatal: the random generator failed\n");
            abort();
        }
        p += k;
        n -= k;
    }
}

/* Request ids need 16 random bytes each: draw them from a per-thread block of DRBG output so
 * the generator runs once per 256 ids instead of once per id. */
static void random16(uint8_t b[16]) {
    static _Thread_local uint8_t pool[4096];
    static _Thread_local size_t used = sizeof pool;
    if (used == sizeof pool) {
        crypto_random(pool, sizeof pool);
        used = 0;
    }
    memcpy(b, pool + used, 16);
    memset(pool + used, 0, 16); /* handed out once */
    used += 16;
}

static void uuid_format(const uint8_t b[16], char out[CRYPTO_UUID_LEN]);

void crypto_uuid4(char out[CRYPTO_UUID_LEN]) {
    uint8_t b[16];
    random16(b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

void crypto_uuid7(char out[CRYPTO_UUID_LEN], int64_t ms_epoch) {
    uint8_t b[16];
    random16(b);
    uint64_t ms = (uint64_t)ms_epoch;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x70);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

static void uuid_format(const uint8_t b[16], char out[CRYPTO_UUID_LEN]) {
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hx[b[i] >> 4];
        out[o++] = hx[b[i] & 15];
    }
    out[o] = '\0';
}

bool crypto_is_uuid(const char *s, size_t n) {
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

void crypto_sha256(const void *msg, size_t n, uint8_t out[32]) {
    mbedtls_sha256_ret(msg, n, out, 0);
}

static void hmac(mbedtls_md_type_t t, const void *key, size_t klen, const void *msg, size_t n,
                 uint8_t *out) {
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(t);
    if (mbedtls_md_hmac(info, key, klen, msg, n, out) != 0) {
        fprintf(stderr, "fatal: hmac failed\n");
        abort();
    }
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[32]) {
    hmac(MBEDTLS_MD_SHA256, key, klen, msg, n, out);
}

void crypto_hmac_sha512(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[64]) {
    hmac(MBEDTLS_MD_SHA512, key, klen, msg, n, out);
}

bool crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen) {
    const volatile unsigned char *x = a, *y = b;
    size_t n = alen > blen ? alen : blen;
    unsigned char d = alen != blen;
    for (size_t i = 0; i < n; i++) {
        /* Wrap the shorter input: the time depends on the lengths only. */
        unsigned char cx = alen ? x[i % alen] : 0;
        unsigned char cy = blen ? y[i % blen] : 0;
        d |= (unsigned char)(cx ^ cy);
    }
    return d == 0;
}

void crypto_hex(const uint8_t *in, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

size_t crypto_base64(const uint8_t *in, size_t n, char *out) {
    size_t olen = 0;
    mbedtls_base64_encode((unsigned char *)out, 4 * ((n + 2) / 3) + 1, &olen, in, n);
    out[olen] = '\0';
    return olen;
}

int crypto_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
    size_t olen = 0;
    /* mbedTLS skips spaces and line breaks and drops an incomplete last group ("Zm9vY" gave
     * "foo"): accept only whole groups of the alphabet and '='. */
    if (n % 4 != 0)
        return ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)in[i]) && in[i] != '+' && in[i] != '/' && in[i] != '=')
            return ERR_INVAL;
    if (mbedtls_base64_decode(out, cap, &olen, (const unsigned char *)in, n) != 0)
        return ERR_INVAL;
    *outlen = olen;
    return 0;
}
