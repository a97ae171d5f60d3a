/*
 * test_webhook: Standard Webhooks v1 (the published test vector, rotation, timestamps, secrets
 * with and without the whsec_ prefix) and the Remotion HMAC-SHA512 callback signature.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/err.h"
#include "core/webhook.h"

/* The Standard Webhooks specification's test vector (also in every reference library). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS 1614265330
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

Test(webhook, standard_sign_reproduces_the_published_vector) {
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(SW_SECRET, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig), 0);
    cr_assert_str_eq(sig, SW_SIG);
}

Test(webhook, standard_verify_accepts_the_published_vector) {
    const char *why = NULL;
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS, &why),
                 0, "refused: %s", why);
    /* within the tolerance on both sides */
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS + 300, NULL),
                 0);
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS - 300, NULL),
                 0);
}

Test(webhook, standard_rotation_any_v1_entry_matches) {
    const char *hdrs[] = {
        "v1,bm9wZQ== " SW_SIG,          /* old key first */
        SW_SIG " v1,bm9wZQ==",          /* new key first */
        "v2,abc v1a,xyz " SW_SIG,       /* other versions skipped */
        "  v1,bm9wZQ==   " SW_SIG "  ", /* extra spaces */
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", hdrs[i], SW_BODY,
                                             strlen(SW_BODY), SW_TS, NULL),
                     0, "header %zu refused", i);
    const char *why = NULL;
    cr_assert_eq(webhook_verify_standard(
                     SW_SECRET, SW_ID, "1614265330",
                     "v1,bm9wZQ== v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", SW_BODY,
                     strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
    cr_assert_str_eq(why, "no matching signature");
}

Test(webhook, standard_refuses_tampering) {
    const char *why;
    /* body, id, timestamp changed: the MAC covers all three */
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG,
                                         "{\"test\": 2432232315}", 20, SW_TS, &why),
                 ERR_BADSIG);
    cr_assert_eq(webhook_verify_standard(SW_SECRET, "msg_other", "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265331", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
    /* another secret */
    cr_assert_eq(webhook_verify_standard("whsec_bm90IHRoZSBzZWNyZXQ=", SW_ID, "1614265330", SW_SIG,
                                         SW_BODY, strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
    /* a truncated signature */
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330",
                                         "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", SW_BODY,
                                         strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", "v1,", SW_BODY,
                                         strlen(SW_BODY), SW_TS, &why),
                 ERR_BADSIG);
}

Test(webhook, standard_stale_and_future_timestamps) {
    const char *why;
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS + 301, &why),
                 ERR_BADSIG);
    cr_assert_str_eq(why, "timestamp too old");
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", SW_SIG, SW_BODY,
                                         strlen(SW_BODY), SW_TS - 301, &why),
                 ERR_BADSIG);
    cr_assert_str_eq(why, "timestamp in the future");
    const char *bad[] = {
        "", "abc", "-1614265330", "1614265330.5", " 1614265330", "1e9", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, bad[i], SW_SIG, SW_BODY,
                                             strlen(SW_BODY), SW_TS, &why),
                     ERR_BADSIG, "timestamp '%s' accepted", bad[i]);
}

Test(webhook, standard_missing_headers) {
    const char *why;
    cr_assert_eq(
        webhook_verify_standard(SW_SECRET, NULL, "1614265330", SW_SIG, SW_BODY, 20, SW_TS, &why),
        ERR_BADSIG);
    cr_assert_str_eq(why, "missing webhook-id");
    cr_assert_eq(webhook_verify_standard(SW_SECRET, SW_ID, NULL, SW_SIG, SW_BODY, 20, SW_TS, &why),
                 ERR_BADSIG);
    cr_assert_str_eq(why, "missing webhook-timestamp");
    cr_assert_eq(
        webhook_verify_standard(SW_SECRET, SW_ID, "1614265330", "", SW_BODY, 20, SW_TS, &why),
        ERR_BADSIG);
    cr_assert_str_eq(why, "missing webhook-signature");
}

Test(webhook, standard_secret_without_prefix_is_raw_bytes) {
    /* python: base64(hmac.new(b'plain-secret', b'msg_1.1700000000.{}', sha256).digest()) */
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard("plain-secret", "msg_1", 1700000000, "{}", 2, sig), 0);
    cr_assert_str_eq(sig, "v1,p6NQsMzLWth/nlsTq5oslSVPNvyHmbQZrni4qovDPj4=");
    cr_assert_eq(webhook_verify_standard("plain-secret", "msg_1", "1700000000", sig, "{}", 2,
                                         1700000000, NULL),
                 0);
    /* the base64 text of the vector's key used raw is another key */
    cr_assert_eq(webhook_verify_standard("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SW_ID, "1614265330",
                                         SW_SIG, SW_BODY, strlen(SW_BODY), SW_TS, NULL),
                 ERR_BADSIG);
}

Test(webhook, standard_unusable_secrets) {
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard("", "id", 1, "", 0, sig), ERR_INVAL);
    cr_assert_eq(webhook_sign_standard("whsec_", "id", 1, "", 0, sig), ERR_INVAL);
    cr_assert_eq(webhook_sign_standard("whsec_***notbase64***", "id", 1, "", 0, sig), ERR_INVAL);
    cr_assert_eq(
        webhook_verify_standard(NULL, SW_ID, "1614265330", SW_SIG, SW_BODY, 20, SW_TS, NULL),
        ERR_INVAL);
    cr_assert_eq(webhook_verify_standard("", SW_ID, "1614265330", SW_SIG, SW_BODY, 20, SW_TS, NULL),
                 ERR_INVAL);
}

Test(webhook, standard_round_trip_binary_body) {
    char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 7);
    char sig[WEBHOOK_STD_SIG_LEN];
    cr_assert_eq(webhook_sign_standard(SW_SECRET, "evt_1", 1800000000, body, sizeof body, sig), 0);
    cr_assert_eq(webhook_verify_standard(SW_SECRET, "evt_1", "1800000000", sig, body, sizeof body,
                                         1800000100, NULL),
                 0);
    body[299] ^= 1;
    cr_assert_eq(webhook_verify_standard(SW_SECRET, "evt_1", "1800000000", sig, body, sizeof body,
                                         1800000100, NULL),
                 ERR_BADSIG);
}

/* python: hmac.new(b'remotion-secret', b'{"job_id":"j1","status":"done"}', sha512).hexdigest() */
#define RM_BODY "{\"job_id\":\"j1\",\"status\":\"done\"}"
#define RM_HEX                                                                                     \
    "c88e2b81212e446fa1712bbc396f2d2112e5271e120a424588a36ac3a7bc018b40a8ab464a202c8f9ea0fa4c6dd"  \
    "b4dab14d6ac35f3ea6dbea6893f8276eaeefc"

Test(webhook, remotion_sign_and_verify) {
    char sig[WEBHOOK_REMOTION_SIG_LEN];
    cr_assert_eq(webhook_sign_remotion("remotion-secret", RM_BODY, strlen(RM_BODY), sig), 0);
    cr_assert_str_eq(sig, "sha512=" RM_HEX);
    const char *why;
    cr_assert_eq(webhook_verify_remotion("remotion-secret", sig, RM_BODY, strlen(RM_BODY), &why),
                 0);
    cr_assert_eq(webhook_verify_remotion("remotion-secret", RM_HEX, RM_BODY, strlen(RM_BODY), &why),
                 0, "the prefix is optional");
    char upper[WEBHOOK_REMOTION_SIG_LEN];
    strcpy(upper, "SHA512=" RM_HEX);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    cr_assert_eq(webhook_verify_remotion("remotion-secret", upper, RM_BODY, strlen(RM_BODY), &why),
                 0);
}

Test(webhook, remotion_refusals) {
    const char *why;
    cr_assert_eq(webhook_verify_remotion("remotion-secret", NULL, RM_BODY, strlen(RM_BODY), &why),
                 ERR_BADSIG);
    cr_assert_str_eq(why, "missing signature");
    cr_assert_eq(
        webhook_verify_remotion("remotion-secret", "sha512=", RM_BODY, strlen(RM_BODY), &why),
        ERR_BADSIG);
    cr_assert_str_eq(why, "missing signature");
    cr_assert_eq(
        webhook_verify_remotion("other-secret", "sha512=" RM_HEX, RM_BODY, strlen(RM_BODY), &why),
        ERR_BADSIG);
    cr_assert_str_eq(why, "no matching signature");
    cr_assert_eq(webhook_verify_remotion("remotion-secret", "sha512=" RM_HEX, "{}", 2, &why),
                 ERR_BADSIG);
    cr_assert_eq(
        webhook_verify_remotion("remotion-secret", "sha512=abcdef", RM_BODY, strlen(RM_BODY), &why),
        ERR_BADSIG);
    cr_assert_eq(webhook_verify_remotion("", "sha512=" RM_HEX, RM_BODY, strlen(RM_BODY), &why),
                 ERR_INVAL);
    char sig[WEBHOOK_REMOTION_SIG_LEN];
    cr_assert_eq(webhook_sign_remotion("", "x", 1, sig), ERR_INVAL);
}
