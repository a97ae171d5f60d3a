/*
 * test_crypto: HMAC-SHA256/512 (RFC 4231), SHA-256 (FIPS 180-2), base64 (RFC 4648), hex, UUIDv4,
 * and the constant-time comparison.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/err.h"

static void hex_of(const uint8_t *in, size_t n, char *out) { crypto_hex(in, n, out); }

/* ---- HMAC: RFC 4231 test cases 1-7 --------------------------------------------------------- */

struct hmac_case {
    const uint8_t *key;
    size_t klen;
    const char *data;
    size_t dlen;
    const char *sha256; /* hex; test case 5 is truncated to 128 bits */
    const char *sha512;
};

static uint8_t key_0b[20], key_aa20[20], key_0c[20], key_aa131[131], key_0125[25];
static uint8_t data_dd[50], data_cd[50];

static void vectors_init(void) {
    memset(key_0b, 0x0b, sizeof key_0b);
    memset(key_aa20, 0xaa, sizeof key_aa20);
    memset(key_0c, 0x0c, sizeof key_0c);
    memset(key_aa131, 0xaa, sizeof key_aa131);
    for (int i = 0; i < 25; i++)
        key_0125[i] = (uint8_t)(i + 1);
    memset(data_dd, 0xdd, sizeof data_dd);
    memset(data_cd, 0xcd, sizeof data_cd);
}

static const char tc6_data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
static const char tc7_data[] =
    "This is a test using a larger than block-size key and a larger than "
    "block-size data. The key needs to be hashed before being used by "
    "the HMAC algorithm.";

static void check_case(int no, const struct hmac_case *c) {
    uint8_t d256[32], d512[64];
    char h256[65], h512[129];
    crypto_hmac_sha256(c->key, c->klen, c->data, c->dlen, d256);
    crypto_hmac_sha512(c->key, c->klen, c->data, c->dlen, d512);
    hex_of(d256, 32, h256);
    hex_of(d512, 64, h512);
    size_t n256 = strlen(c->sha256), n512 = strlen(c->sha512);
    cr_assert_eq(strncmp(h256, c->sha256, n256), 0, "RFC 4231 case %d SHA-256: %s", no, h256);
    cr_assert_eq(strncmp(h512, c->sha512, n512), 0, "RFC 4231 case %d SHA-512: %s", no, h512);
}

Test(crypto, hmac_rfc4231, .init = vectors_init) {
    const struct hmac_case cases[] = {
        {key_0b, 20, "Hi There", 8,
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
         "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
        {(const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
         "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
        {key_aa20, 20, (const char *)data_dd, 50,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
         "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
        {key_0125, 25, (const char *)data_cd, 50,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
         "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
         "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
        {key_0c, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b",
         "415fad6271580a531d4179bc891d87a6"},
        {key_aa131, 131, tc6_data, sizeof tc6_data - 1,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
         "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
        {key_aa131, 131, tc7_data, sizeof tc7_data - 1,
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
         "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
         "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
    };
    for (int i = 0; i < 7; i++)
        check_case(i + 1, &cases[i]);
}

Test(crypto, hmac_depends_on_key_and_message) {
    uint8_t a[32], b[32], c[32];
    crypto_hmac_sha256("key", 3, "msg", 3, a);
    crypto_hmac_sha256("kez", 3, "msg", 3, b);
    crypto_hmac_sha256("key", 3, "msh", 3, c);
    cr_assert_neq(memcmp(a, b, 32), 0);
    cr_assert_neq(memcmp(a, c, 32), 0);
    crypto_hmac_sha256("key", 3, "msg", 3, b);
    cr_assert_eq(memcmp(a, b, 32), 0, "deterministic");
    crypto_hmac_sha256("", 0, "", 0, a); /* empty key and message are valid */
    char h[65];
    hex_of(a, 32, h);
    cr_assert_str_eq(h, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ---- SHA-256 ------------------------------------------------------------------------------- */

Test(crypto, sha256) {
    uint8_t d[32];
    char h[65];
    crypto_sha256("abc", 3, d);
    hex_of(d, 32, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256("", 0, d);
    hex_of(d, 32, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    crypto_sha256(m, strlen(m), d);
    hex_of(d, 32, h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* ---- hex ----------------------------------------------------------------------------------- */

Test(crypto, hex) {
    const uint8_t in[] = {0x00, 0xff, 0x10, 0xab, 0x7f, 0x80, 0x09};
    char out[2 * sizeof in + 1];
    memset(out, 'X', sizeof out);
    crypto_hex(in, sizeof in, out);
    cr_assert_str_eq(out, "00ff10ab7f8009");
    char empty[1] = {'X'};
    crypto_hex(in, 0, empty);
    cr_assert_str_eq(empty, "");
}

/* ---- base64 -------------------------------------------------------------------------------- */

Test(crypto, base64_rfc4648) {
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        size_t n = crypto_base64((const uint8_t *)plain[i], strlen(plain[i]), out);
        cr_assert_str_eq(out, enc[i]);
        cr_assert_eq(n, strlen(enc[i]));
        uint8_t dec[16];
        size_t dn = 99;
        cr_assert_eq(crypto_base64_decode(enc[i], strlen(enc[i]), dec, sizeof dec, &dn), 0, "%s",
                     enc[i]);
        cr_assert_eq(dn, strlen(plain[i]));
        cr_assert_eq(memcmp(dec, plain[i], dn), 0);
    }
    /* the whole alphabet, '+' and '/' included */
    const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    crypto_base64(bytes, 3, out);
    cr_assert_str_eq(out, "+/+/");
}

Test(crypto, base64_round_trip) {
    uint8_t in[300], dec[300];
    char enc[4 * ((300 + 2) / 3) + 1];
    for (size_t n = 0; n <= 300; n += (n < 70 ? 1 : 23)) {
        crypto_random(in, n);
        if (n > 0)
            in[0] = 0; /* NUL bytes are data */
        size_t len = crypto_base64(in, n, enc);
        cr_assert_eq(len, 4 * ((n + 2) / 3));
        cr_assert_eq(strlen(enc), len);
        size_t dn = 0;
        cr_assert_eq(crypto_base64_decode(enc, len, dec, sizeof dec, &dn), 0, "n=%zu", n);
        cr_assert_eq(dn, n);
        cr_assert_eq(memcmp(in, dec, n), 0, "n=%zu", n);
    }
}

Test(crypto, base64_decoding_errors) {
    const char *bad[] = {
        "Zm9v!A==",     /* not in the alphabet */
        "Zm9v-_==",     /* the URL-safe alphabet is not the standard one */
        "Zm=v",         /* padding inside */
        "=Zm9",         /* padding first */
        "Zg===",        /* too much padding */
        "Zm9vYg==Zm9v", /* data after padding */
        "Zm 9v",        /* space inside */
        "Zg",           /* missing padding */
        "Zg=",          /* short padding */
        "Zm9vY",        /* incomplete group */
        "Zm9v\n",       /* trailing line break */
        "Zm9v    ",     /* trailing spaces */
        "Zm\0v",        /* NUL inside */
    };
    size_t lens[] = {8, 8, 4, 4, 5, 12, 5, 2, 3, 5, 5, 8, 4};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[32];
        size_t dn = 12345;
        cr_assert_eq(crypto_base64_decode(bad[i], lens[i], out, sizeof out, &dn), ERR_INVAL,
                     "'%s' decoded", bad[i]);
        cr_assert_eq(dn, 12345, "outlen untouched on failure");
    }
    /* the output does not fit */
    uint8_t small[2];
    size_t dn = 12345;
    cr_assert_eq(crypto_base64_decode("Zm9v", 4, small, sizeof small, &dn), ERR_INVAL);
    cr_assert_eq(dn, 12345);
    uint8_t exact[3];
    cr_assert_eq(crypto_base64_decode("Zm9v", 4, exact, sizeof exact, &dn), 0);
    cr_assert_eq(dn, 3);
}

/* ---- random and UUIDs ---------------------------------------------------------------------- */

Test(crypto, random_fills_large_requests) {
    size_t n = 5000; /* above the DRBG's 1024-byte request limit */
    uint8_t *a = calloc(1, n), *b = calloc(1, n);
    crypto_random(a, n);
    crypto_random(b, n);
    cr_assert_neq(memcmp(a, b, n), 0);
    size_t zero_tail = 0; /* the last KiB must be random too, not left at 0 */
    for (size_t i = n - 1024; i < n; i++)
        zero_tail += a[i] == 0;
    cr_assert_lt(zero_tail, 64, "%zu zero bytes in the last 1024", zero_tail);
    free(a);
    free(b);
}

static bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

Test(crypto, uuid4_format) {
    for (int k = 0; k < 1000; k++) {
        char u[CRYPTO_UUID_LEN];
        memset(u, 'X', sizeof u);
        crypto_uuid4(u);
        cr_assert_eq(strlen(u), 36, "%s", u);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                cr_assert_eq(u[i], '-', "%s", u);
            else
                cr_assert(is_lower_hex(u[i]), "%s: char %d", u, i);
        }
        cr_assert_eq(u[14], '4', "version nibble: %s", u);
        cr_assert(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b', "variant: %s", u);
        cr_assert(crypto_is_uuid(u, 36), "%s", u);
    }
}

Test(crypto, uuid4_unique) {
    enum { N = 20000 };
    char(*u)[CRYPTO_UUID_LEN] = malloc(N * sizeof *u);
    for (int i = 0; i < N; i++)
        crypto_uuid4(u[i]);
    qsort(u, N, sizeof *u, cmp_str);
    for (int i = 1; i < N; i++)
        cr_assert_str_neq(u[i - 1], u[i], "duplicate UUID");
    /* the random part varies in every position */
    for (int pos = 0; pos < 36; pos++) {
        if (pos == 8 || pos == 13 || pos == 14 || pos == 18 || pos == 23)
            continue;
        bool varies = false;
        for (int i = 1; i < N && !varies; i++)
            varies = u[i][pos] != u[0][pos];
        cr_assert(varies, "position %d never changes", pos);
    }
    free(u);
}

Test(crypto, is_uuid) {
    cr_assert(crypto_is_uuid("123e4567-e89b-12d3-a456-426614174000", 36));
    cr_assert(crypto_is_uuid("123E4567-E89B-42D3-A456-426614174ABC", 36), "upper case");
    cr_assert(crypto_is_uuid("00000000-0000-0000-0000-000000000000", 36), "any version");
    const char *bad[] = {
        "123e4567-e89b-12d3-a456-42661417400",   /* 35 */
        "123e4567-e89b-12d3-a456-4266141740000", /* 37 */
        "123e4567e89b-12d3-a456-4266141740000",  /* hyphen moved */
        "123e4567-e89b-12d3-a456_426614174000",  /* wrong separator */
        "123e4567-e89b-12d3-a456-42661417400g",  /* not hex */
        "{23e4567-e89b-12d3-a456-42661417400}",  /* braces */
        "123e4567+e89b-12d3-a456-426614174000",  "------------------------------------", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(crypto_is_uuid(bad[i], strlen(bad[i])), "'%s' accepted", bad[i]);
    /* n is the length: a valid UUID followed by more text is not a UUID of length 40 */
    const char *longer = "123e4567-e89b-12d3-a456-426614174000/xyz";
    cr_assert(crypto_is_uuid(longer, 36));
    cr_assert_not(crypto_is_uuid(longer, 40));
    cr_assert_not(crypto_is_uuid(longer, 35));
    cr_assert_not(crypto_is_uuid("123e4567-e89b-12d3-a456-42661417\x00"
                                 "000",
                                 36),
                  "NUL inside");
}

/* ---- constant-time comparison -------------------------------------------------------------- */

Test(crypto, ct_equal) {
    cr_assert(crypto_ct_equal("secret", 6, "secret", 6));
    cr_assert_not(crypto_ct_equal("secret", 6, "secreT", 6), "last byte differs");
    cr_assert_not(crypto_ct_equal("secret", 6, "Secret", 6), "first byte differs");
    cr_assert_not(crypto_ct_equal("secret", 6, "secret!", 7), "longer");
    cr_assert_not(crypto_ct_equal("secret", 6, "secre", 5), "prefix");
    cr_assert_not(crypto_ct_equal("abc", 3, "abcabc", 6), "a repetition is not equal");
    cr_assert_not(crypto_ct_equal("abcabc", 6, "abc", 3));
    cr_assert(crypto_ct_equal("", 0, "", 0), "two empty inputs are equal");
    cr_assert(crypto_ct_equal(NULL, 0, NULL, 0));
    cr_assert_not(crypto_ct_equal("", 0, "a", 1), "empty vs one byte");
    cr_assert_not(crypto_ct_equal("a", 1, "", 0));
    cr_assert_not(crypto_ct_equal("\0", 1, "", 0), "a NUL byte is not nothing");
    const uint8_t x[4] = {0, 1, 2, 0x80}, y[4] = {0, 1, 2, 0x00};
    cr_assert_not(crypto_ct_equal(x, 4, y, 4), "high bit");
    cr_assert(crypto_ct_equal(x, 3, y, 3), "the length is respected");
}

Test(crypto, uuid7_is_versioned_and_time_ordered) {
    char a[CRYPTO_UUID_LEN], b[CRYPTO_UUID_LEN], c[CRYPTO_UUID_LEN];
    crypto_uuid7(a, 1700000000000);
    crypto_uuid7(b, 1700000000001);
    crypto_uuid7(c, 1700000000001);
    cr_assert(crypto_is_uuid(a, strlen(a)));
    cr_assert_eq(a[14], '7', "version nibble: %s", a);
    cr_assert(strchr("89ab", a[19]), "variant: %s", a);
    cr_assert_lt(strcmp(a, b), 0, "later ms sorts later: %s %s", a, b);
    cr_assert_str_neq(b, c, "random bits differ within a millisecond");
    cr_assert_eq(strncmp(a, "018bcfe5-6800", 13), 0, "48-bit big-endian ms first: %s", a);
}
