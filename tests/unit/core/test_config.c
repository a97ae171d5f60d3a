/*
 * test_config: the settings table and config.c (runtime.md §6, api.md §2-§3): defaults, typed
 * validation, the file format, the precedence file < environment < flags, derived provider
 * modes, the ENVIRONMENT=production refusals, API key lists and the secret-safe outputs.
 *
 * Criterion runs every test in its own process, so the environment changes made here stay in
 * that test. The fixture removes every setting from the environment first, so the tests do not
 * depend on the shell that runs them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

static config_t cfg;
static buf_t err;
static char tmp_path[64];

static void setup(void) {
    for (int i = 0; i < S__COUNT; i++)
        unsetenv(config_settings[i].name);
    config_init(&cfg);
    buf_init(&err, 1 << 20);
    tmp_path[0] = '\0';
}

static void teardown(void) {
    config_release(&cfg);
    buf_release(&err);
    if (tmp_path[0])
        unlink(tmp_path);
}

TestSuite(config, .init = setup, .fini = teardown);

static const char *msg(void) { return err.data ? err.data : ""; }

static void set(config_t *c, const char *name, const char *value) {
    buf_t e;
    buf_init(&e, 4096);
    int rc = config_set(c, name, value, CS_ENV, &e);
    cr_assert_eq(rc, 0, "config_set(%s) failed: %s", name, e.data ? e.data : "");
    buf_release(&e);
}

/* A fresh config with one value set, finished; the message (if any) goes to err. */
static int try_value(const char *name, const char *value) {
    config_t c;
    config_init(&c);
    buf_reset(&err);
    set(&c, name, value);
    int rc = config_finish(&c, &err);
    config_release(&c);
    return rc;
}

/* The smallest valid production configuration. */
static void set_production(config_t *c) {
    set(c, "ENVIRONMENT", "production");
    set(c, "API_KEY", "prod-key-0123456789abcdef");
    set(c, "OPENAI_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    set(c, "PUBLIC_BASE_URL", "https://myloware.example.com");
}

/* Writes text to a temporary file whose path is tmp_path (removed by the fixture). */
static const char *write_tmp(const char *text) {
    strcpy(tmp_path, "/tmp/myloware-test-config-XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert_geq(fd, 0, "mkstemp failed");
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return tmp_path;
}

/* open_memstream targets (file scope: GCC warns about the address of a local escaping). */
static char *mem_text;
static size_t mem_len;

/* Captures what config_show prints for c into a malloc'ed string. */
static char *capture_show(const config_t *c) {
    FILE *f = open_memstream(&mem_text, &mem_len);
    cr_assert_not_null(f);
    config_show(c, f);
    fclose(f);
    return mem_text;
}

/* Captures the README table into a malloc'ed string. */
static char *capture_table(void) {
    FILE *f = open_memstream(&mem_text, &mem_len);
    cr_assert_not_null(f);
    config_table_markdown(f);
    fclose(f);
    return mem_text;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- defaults ------------------------------------------------------------------------------ */

Test(config, every_setting_starts_at_its_default) {
    for (int i = 0; i < S__COUNT; i++) {
        cr_assert_not_null(cfg.raw[i]);
        cr_assert_str_eq(cfg.raw[i], config_settings[i].def, "%s", config_settings[i].name);
        cr_assert_eq(cfg.source[i], CS_DEFAULT);
        cr_assert_eq(config_find(config_settings[i].name), i);
    }
    cr_assert_eq(config_find("NO_SUCH_SETTING"), -1);
    cr_assert_eq(config_find(""), -1);
}

Test(config, defaults_are_valid_and_parsed) {
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_HOST), "127.0.0.1");
    cr_assert_eq(config_int(&cfg, S_PORT), 8000);
    cr_assert_str_eq(config_str(&cfg, S_ENVIRONMENT), "development");
    cr_assert_str_eq(config_str(&cfg, S_DATABASE_URL), "sqlite:./data/myloware.db");
    cr_assert_str_eq(config_str(&cfg, S_LOG_LEVEL), "info");
    cr_assert_str_eq(config_str(&cfg, S_LOG_FORMAT), "json");
    cr_assert_str_eq(config_str(&cfg, S_API_KEY), "dev-api-key");
    cr_assert_eq(config_int(&cfg, S_MAX_BODY_BYTES), 1048576);
    cr_assert_eq(config_int(&cfg, S_WEBHOOK_MAX_BODY_BYTES), 262144);
    cr_assert_eq(config_int(&cfg, S_HTTP_IDLE_TIMEOUT_MS), 60000);
    cr_assert_eq(config_int(&cfg, S_HTTP_REQUEST_TIMEOUT_MS), 30000);
    cr_assert_eq(config_int(&cfg, S_MAX_RUNS_LAST_24H), 1000);
    cr_assert_eq(config_int(&cfg, S_FAKE_VIDEO_FAIL_INDEX), -1);
    cr_assert_eq(config_int(&cfg, S_MAX_DOWNLOAD_BYTES), 1073741824LL);
    cr_assert_float_eq(config_num(&cfg, S_ESTIMATED_COST_PER_RUN_USD), 0.5, 1e-12);
    cr_assert_float_eq(config_num(&cfg, S_DAILY_COST_BUDGET_USD), 500, 1e-12);
    cr_assert_not(config_bool(&cfg, S_ALLOW_PRIVATE_URLS));
    cr_assert_not(config_bool(&cfg, S_PUBLIC_DEMO_ENABLED));
    int64_t n;
    double per;
    config_rate(&cfg, S_RUN_RATE_LIMIT, &n, &per);
    cr_assert_eq(n, 60);
    cr_assert_float_eq(per, 60.0, 1e-12);
    config_rate(&cfg, S_APPROVE_RATE_LIMIT, &n, &per);
    cr_assert_eq(n, 120);
    cr_assert_float_eq(per, 60.0, 1e-12);
    config_rate(&cfg, S_PUBLIC_DEMO_RATE_LIMIT, &n, &per);
    cr_assert_eq(n, 10);
    cr_assert_float_eq(per, 60.0, 1e-12);
}

Test(config, table_entries_are_well_formed) {
    for (int i = 0; i < S__COUNT; i++) {
        const struct setting_def *d = &config_settings[i];
        cr_assert_not_null(d->name);
        cr_assert_not_null(d->def, "%s", d->name);
        cr_assert(d->help && *d->help, "%s has no help", d->name);
        for (const char *p = d->name; *p; p++)
            cr_assert((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_',
                      "%s: bad name", d->name);
        if (d->type == CT_ENUM)
            cr_assert_not_null(d->choices, "%s", d->name);
        if (d->type == CT_INT || d->type == CT_NUM)
            cr_assert_leq(d->min, d->max, "%s", d->name);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(d->name, config_settings[j].name, "duplicate %s", d->name);
    }
}

/* ---- config_set ---------------------------------------------------------------------------- */

Test(config, set_unknown_name_fails_and_names_it) {
    int rc = config_set(&cfg, "NO_SUCH_SETTING", "1", CS_ENV, &err);
    cr_assert_eq(rc, ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "NO_SUCH_SETTING"), "%s", msg());
    cr_assert_eq(config_set(&cfg, "port", "1", CS_ENV, &err), ERR_INVAL, "names are exact");
    cr_assert_str_eq(config_str(&cfg, S_PORT), "8000");
}

Test(config, set_records_value_and_source) {
    cr_assert_eq(config_set(&cfg, "PORT", "9000", CS_FLAG, &err), 0);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9000");
    cr_assert_eq(cfg.source[S_PORT], CS_FLAG);
    cr_assert_eq(config_set(&cfg, "PORT", "9001", CS_FILE, &err), 0);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9001");
    cr_assert_eq(cfg.source[S_PORT], CS_FILE);
}

Test(config, set_refuses_huge_values_without_echoing_them) {
    size_t n = 70000;
    char *v = malloc(n + 1);
    memset(v, 'k', n);
    memcpy(v, "TOPSECRET", 9);
    v[n] = '\0';
    cr_assert_eq(config_set(&cfg, "API_KEY", v, CS_ENV, &err), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "API_KEY"), "%s", msg());
    cr_assert_null(strstr(msg(), "TOPSECRET"), "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_API_KEY), "dev-api-key", "unchanged on failure");
    v[65536] = '\0';
    cr_assert_eq(config_set(&cfg, "API_KEY", v, CS_ENV, &err), 0, "65536 characters are fine");
    free(v);
}

/* ---- typed validation ---------------------------------------------------------------------- */

Test(config, int_bounds) {
    cr_assert_eq(try_value("PORT", "0"), 0, "%s", msg());
    cr_assert_eq(try_value("PORT", "65535"), 0, "%s", msg());
    const char *bad[] = {"65536", "-1", "80x", "", "x", "1.5", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("PORT", bad[i]), ERR_INVAL, "PORT='%s' accepted", bad[i]);
        cr_assert_not_null(strstr(msg(), "PORT"), "%s", msg());
        cr_assert_not_null(strstr(msg(), "0 to 65535"), "%s", msg());
    }
    cr_assert_eq(try_value("FAKE_VIDEO_FAIL_INDEX", "-1"), 0, "%s", msg());
    cr_assert_eq(try_value("FAKE_VIDEO_FAIL_INDEX", "-2"), ERR_INVAL);
    cr_assert_eq(try_value("MAX_BODY_BYTES", "1023"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "MAX_BODY_BYTES"), "%s", msg());
    cr_assert_eq(try_value("MAX_DOWNLOAD_BYTES", "68719476736"), 0, "%s", msg());
    cr_assert_eq(try_value("MAX_DOWNLOAD_BYTES", "68719476737"), ERR_INVAL);

    set(&cfg, "MAX_DOWNLOAD_BYTES", "68719476736");
    set(&cfg, "PORT", "0");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_eq(config_int(&cfg, S_MAX_DOWNLOAD_BYTES), 68719476736LL);
    cr_assert_eq(config_int(&cfg, S_PORT), 0);
}

Test(config, num_bounds) {
    cr_assert_eq(try_value("RENDER_SCALE", "0.05"), 0, "%s", msg());
    cr_assert_eq(try_value("RENDER_SCALE", "4"), 0, "%s", msg());
    cr_assert_eq(try_value("RENDER_SCALE", "1e0"), 0, "%s", msg());
    const char *bad[] = {"0.04", "4.01", "-1", "", "abc", "1.0x", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("RENDER_SCALE", bad[i]), ERR_INVAL, "RENDER_SCALE='%s' accepted",
                     bad[i]);
        cr_assert_not_null(strstr(msg(), "RENDER_SCALE"), "%s", msg());
        cr_assert_not_null(strstr(msg(), "number"), "%s", msg());
    }
    set(&cfg, "ESTIMATED_COST_PER_RUN_USD", "0.25");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_float_eq(config_num(&cfg, S_ESTIMATED_COST_PER_RUN_USD), 0.25, 1e-12);
}

Test(config, bool_forms) {
    const char *yes[] = {"true", "1", "yes", "on", "TRUE", "Yes", "ON"};
    const char *no[] = {"false", "0", "no", "off", "FALSE", "No", "Off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        config_t c;
        config_init(&c);
        set(&c, "ALLOW_PRIVATE_URLS", yes[i]);
        cr_assert_eq(config_finish(&c, &err), 0, "'%s': %s", yes[i], msg());
        cr_assert(config_bool(&c, S_ALLOW_PRIVATE_URLS), "'%s' is true", yes[i]);
        config_release(&c);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        config_t c;
        config_init(&c);
        set(&c, "ALLOW_PRIVATE_URLS", "true");
        set(&c, "ALLOW_PRIVATE_URLS", no[i]);
        cr_assert_eq(config_finish(&c, &err), 0, "'%s': %s", no[i], msg());
        cr_assert_not(config_bool(&c, S_ALLOW_PRIVATE_URLS), "'%s' is false", no[i]);
        config_release(&c);
    }
    const char *bad[] = {"", "maybe", "2", "tru", "yes please", "t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("ALLOW_PRIVATE_URLS", bad[i]), ERR_INVAL, "'%s' accepted", bad[i]);
        cr_assert_not_null(strstr(msg(), "ALLOW_PRIVATE_URLS: must be true or false"), "%s", msg());
    }
}

Test(config, enum_choices) {
    const char *levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(try_value("LOG_LEVEL", levels[i]), 0, "%s: %s", levels[i], msg());
    const char *bad[] = {"verbose", "", "inf", "infox", "info|warn", "debug|info|warn|error",
                         " info"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("LOG_LEVEL", bad[i]), ERR_INVAL, "LOG_LEVEL='%s' accepted", bad[i]);
        cr_assert_not_null(strstr(msg(), "LOG_LEVEL"), "%s", msg());
        cr_assert_not_null(strstr(msg(), "debug|info|warn|error"), "%s", msg());
    }
    cr_assert_eq(try_value("TRANSCODE_PRESET", "ultrafast"), 0, "first choice: %s", msg());
    cr_assert_eq(try_value("TRANSCODE_PRESET", "veryslow"), 0, "last choice: %s", msg());
    cr_assert_eq(try_value("ENVIRONMENT", "staging"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "ENVIRONMENT"), "%s", msg());
    /* An enum with an empty default may stay empty: it is derived later. */
    cr_assert_eq(try_value("PROVIDERS", ""), 0, "%s", msg());
    cr_assert_eq(try_value("PROVIDERS", "mixed"), ERR_INVAL);
}

Test(config, parse_rate_forms) {
    int64_t n = -7;
    double per = -7;
    cr_assert_eq(config_parse_rate("60/minute", &n, &per), 0);
    cr_assert_eq(n, 60);
    cr_assert_float_eq(per, 60, 1e-12);
    cr_assert_eq(config_parse_rate("10/second", &n, &per), 0);
    cr_assert_eq(n, 10);
    cr_assert_float_eq(per, 1, 1e-12);
    cr_assert_eq(config_parse_rate("5/hour", &n, &per), 0);
    cr_assert_eq(n, 5);
    cr_assert_float_eq(per, 3600, 1e-12);
    cr_assert_eq(config_parse_rate("1/second", &n, &per), 0);
    cr_assert_eq(n, 1);

    const char *bad[] = {"",
                         "60",
                         "60/",
                         "/minute",
                         "0/minute",
                         "-1/minute",
                         "60/minutes",
                         "60/day",
                         "60 / minute",
                         "x/minute",
                         "60/minute ",
                         "1.5/second",
                         "60/Minute",
                         "60per minute",
                         "1000000001/second",
                         "99999999999999999999/hour"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = -7;
        per = -7;
        cr_assert_eq(config_parse_rate(bad[i], &n, &per), ERR_INVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(n, -7, "out-parameters untouched on failure");
        cr_assert_float_eq(per, -7, 1e-12, "out-parameters untouched on failure");
    }
}

Test(config, rate_settings_are_validated) {
    set(&cfg, "RUN_RATE_LIMIT", "5/hour");
    set(&cfg, "APPROVE_RATE_LIMIT", "3/second");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    int64_t n;
    double per;
    config_rate(&cfg, S_RUN_RATE_LIMIT, &n, &per);
    cr_assert_eq(n, 5);
    cr_assert_float_eq(per, 3600, 1e-12);
    config_rate(&cfg, S_APPROVE_RATE_LIMIT, &n, &per);
    cr_assert_eq(n, 3);
    cr_assert_float_eq(per, 1, 1e-12);

    cr_assert_eq(try_value("PUBLIC_DEMO_RATE_LIMIT", "10/day"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "PUBLIC_DEMO_RATE_LIMIT"), "%s", msg());
    cr_assert_not_null(strstr(msg(), "N/minute"), "%s", msg());
    cr_assert_eq(try_value("RUN_RATE_LIMIT", "60"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "RUN_RATE_LIMIT"), "%s", msg());
}

Test(config, cross_setting_checks) {
    cr_assert_eq(try_value("FAKE_CLIP_SIZE", "360x640"), 0, "%s", msg());
    const char *bad[] = {"360", "361x640", "8x8", "360x640x2", "360x640 ", "axb", "8192x8192"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("FAKE_CLIP_SIZE", bad[i]), ERR_INVAL, "'%s' accepted", bad[i]);
        cr_assert_not_null(strstr(msg(), "FAKE_CLIP_SIZE"), "%s", msg());
    }
    cr_assert_eq(try_value("PUBLIC_BASE_URL", "ftp://example.com"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "PUBLIC_BASE_URL"), "%s", msg());
    cr_assert_eq(try_value("PUBLIC_BASE_URL", "http://localhost:8000"), 0, "%s", msg());
    cr_assert_eq(try_value("JOB_RETRY_BASE_S", "301"), ERR_INVAL, "base above max");
    cr_assert_not_null(strstr(msg(), "JOB_RETRY_BASE_S"), "%s", msg());
}

Test(config, x264_options_are_checked) {
    const char *good[] = {"", "rc-lookahead=1:bframes=1",
                          "sliced-threads=1:rc-lookahead=0:bframes=0", "deblock=-1,-1:ref=2",
                          "b-pyramid=none:me=hex"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(try_value("TRANSCODE_X264_PARAMS", good[i]), 0, "'%s' refused: %s", good[i],
                     msg());
    /* x264 would only warn (silently, FFmpeg's log is off) about these: refused at start */
    const char *bad[] = {"bframes",
                         "bframes=",
                         "=1",
                         "foo=1",
                         "rc-lookahead=1:",
                         ":bframes=1",
                         "bframes=1:threads=64",
                         "preset=slow",
                         "bframes=1;rm",
                         "bframes=1 ",
                         "me=aaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(try_value("TRANSCODE_X264_PARAMS", bad[i]), ERR_INVAL, "'%s' accepted",
                     bad[i]);
        cr_assert_not_null(strstr(msg(), "TRANSCODE_X264_PARAMS: x264 options"), "%s", msg());
    }
    char lng[300];
    memset(lng, 0, sizeof lng);
    for (size_t n = 0; n + 12 < sizeof lng - 1;)
        n += (size_t)snprintf(lng + n, sizeof lng - n, "%sbframes=1", n ? ":" : "");
    cr_assert_eq(config_x264_params_ok(lng, NULL), ERR_INVAL, "longer than 256 bytes");
    cr_assert_eq(config_x264_params_ok(NULL, NULL), 0);
    cr_assert_eq(try_value("TRANSCODE_PRIORITY", "idle"), 0, "%s", msg());
    cr_assert_eq(try_value("TRANSCODE_PRIORITY", "high"), ERR_INVAL);
}

/* ---- secrets never appear in messages ------------------------------------------------------ */

Test(config, invalid_secrets_are_never_echoed) {
    /* A key longer than 256 characters is refused; the message names API_KEYS only. */
    char key[400];
    memset(key, 'z', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    memcpy(key, "SUPERSECRETKEY", 14);
    char list[420];
    snprintf(list, sizeof list, "okkey,%s", key);
    cr_assert_eq(try_value("API_KEYS", list), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "API_KEYS"), "%s", msg());
    cr_assert_null(strstr(msg(), "SUPERSECRETKEY"), "secret leaked: %s", msg());

    /* DATABASE_URL may hold a password: an invalid one is not quoted. */
    cr_assert_eq(try_value("DATABASE_URL", "mysql://admin:hunter2secret@db.example/app"),
                 ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "DATABASE_URL"), "%s", msg());
    cr_assert_null(strstr(msg(), "hunter2secret"), "secret leaked: %s", msg());

    /* Whatever value a secret setting gets, in any environment, it never shows in the message. */
    for (int i = 0; i < S__COUNT; i++) {
        if (!(config_settings[i].flags & (CF_SECRET | CF_SECRET_URL)))
            continue;
        static const char *v = "not-valid\x01SECRETVALUE@@://:";
        for (int prod = 0; prod < 2; prod++) {
            config_t c;
            config_init(&c);
            if (prod)
                set_production(&c);
            set(&c, config_settings[i].name, v);
            buf_reset(&err);
            (void)config_finish(&c, &err);
            cr_assert_null(strstr(msg(), "SECRETVALUE"), "%s leaked: %s", config_settings[i].name,
                           msg());
            config_release(&c);
        }
    }
}

Test(config, non_secret_messages_quote_the_value) {
    /* Useful to people: a non-secret bad value is shown (the secret case is tested above). */
    cr_assert_eq(try_value("PORT", "80x"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "80x"), "%s", msg());
}

/* ---- config_load_file ---------------------------------------------------------------------- */

Test(config, load_file_format) {
    const char *path = write_tmp("# a comment\n"
                                 "\n"
                                 "   \t\n"
                                 "export PORT=9001\n"
                                 "HOST = 0.0.0.0 \n"
                                 "LOG_LEVEL=\"debug\"\n"
                                 "API_KEY='quoted key'\n"
                                 "   # an indented comment\n"
                                 "MEDIA_DIR=/srv/a=b\n"
                                 "LLM_MODEL=\"unbalanced'\n"
                                 "PUBLIC_BASE_URL=\n"
                                 "S3_PREFIX=\"\"\n"
                                 "LOG_FORMAT=text\r\n"
                                 "S3_REGION=eu-west-1"); /* no final newline */
    cr_assert_eq(config_load_file(&cfg, path, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9001");
    cr_assert_eq(cfg.source[S_PORT], CS_FILE);
    cr_assert_str_eq(config_str(&cfg, S_HOST), "0.0.0.0");
    cr_assert_str_eq(config_str(&cfg, S_LOG_LEVEL), "debug");
    cr_assert_str_eq(config_str(&cfg, S_API_KEY), "quoted key");
    cr_assert_str_eq(config_str(&cfg, S_MEDIA_DIR), "/srv/a=b");
    cr_assert_str_eq(config_str(&cfg, S_LLM_MODEL), "\"unbalanced'");
    cr_assert_str_eq(config_str(&cfg, S_PUBLIC_BASE_URL), "");
    cr_assert_eq(cfg.source[S_PUBLIC_BASE_URL], CS_FILE);
    cr_assert_str_eq(config_str(&cfg, S_S3_PREFIX), "");
    cr_assert_str_eq(config_str(&cfg, S_LOG_FORMAT), "text");
    cr_assert_str_eq(config_str(&cfg, S_S3_REGION), "eu-west-1");
    cr_assert_eq(cfg.source[S_LOG_LEVEL], CS_FILE);
    cr_assert_eq(cfg.source[S_DB_SYNC], CS_DEFAULT, "keys not in the file keep their default");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_eq(config_int(&cfg, S_PORT), 9001);
}

Test(config, load_file_unknown_key_names_file_and_line) {
    const char *path = write_tmp("PORT=9001\n# comment\nNOT_A_SETTING=hush-secret\nHOST=x\n");
    cr_assert_eq(config_load_file(&cfg, path, &err), ERR_INVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:3:", path);
    cr_assert_not_null(strstr(msg(), want), "%s", msg());
    cr_assert_not_null(strstr(msg(), "NOT_A_SETTING"), "%s", msg());
    cr_assert_null(strstr(msg(), "hush-secret"), "the value is not quoted: %s", msg());
    cr_assert_str_eq(config_str(&cfg, S_HOST), "127.0.0.1", "lines after the error are not read");
}

Test(config, load_file_line_without_equals) {
    const char *path = write_tmp("PORT=9001\n\nJUST_A_WORD\n");
    cr_assert_eq(config_load_file(&cfg, path, &err), ERR_INVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:3:", path);
    cr_assert_not_null(strstr(msg(), want), "%s", msg());
    cr_assert_not_null(strstr(msg(), "KEY=VALUE"), "%s", msg());
}

Test(config, load_file_line_too_long) {
    size_t n = 80000;
    char *text = malloc(n + 16);
    strcpy(text, "MEDIA_DIR=");
    memset(text + 10, 'a', n);
    strcpy(text + 10 + n, "\n");
    const char *path = write_tmp(text);
    free(text);
    cr_assert_eq(config_load_file(&cfg, path, &err), ERR_INVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:1:", path);
    cr_assert_not_null(strstr(msg(), want), "%s", msg());
}

Test(config, load_missing_file) {
    const char *path = "/nonexistent/myloware-test/none.env";
    cr_assert_eq(config_load_file(&cfg, path, &err), ERR_IO);
    cr_assert_not_null(strstr(msg(), path), "%s", msg());
}

/* ---- precedence and flags ------------------------------------------------------------------ */

Test(config, file_then_env_then_flags) {
    const char *path = write_tmp("PORT=9001\nHOST=10.0.0.1\nLOG_LEVEL=debug\n");
    setenv("PORT", "9002", 1);
    setenv("LOG_LEVEL", "warn", 1);
    char *argv[] = {"--config", (char *)path, "--port", "9003"};
    char *rest[4];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 4, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 0);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9003");
    cr_assert_eq(cfg.source[S_PORT], CS_FLAG);
    cr_assert_str_eq(config_str(&cfg, S_LOG_LEVEL), "warn");
    cr_assert_eq(cfg.source[S_LOG_LEVEL], CS_ENV);
    cr_assert_str_eq(config_str(&cfg, S_HOST), "10.0.0.1");
    cr_assert_eq(cfg.source[S_HOST], CS_FILE);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_eq(config_int(&cfg, S_PORT), 9003);
}

Test(config, flag_before_config_still_wins) {
    const char *path = write_tmp("PORT=9001\n");
    char *argv[] = {"--port=9005", "--config", (char *)path};
    char *rest[3];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 3, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9005");
}

Test(config, env_over_file_with_config_equals) {
    const char *path = write_tmp("PORT=9001\nHOST=10.0.0.1\n");
    setenv("PORT", "9002", 1);
    char arg[128];
    snprintf(arg, sizeof arg, "--config=%s", path);
    char *argv[] = {arg};
    char *rest[1];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 1, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 0);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9002");
    cr_assert_eq(cfg.source[S_PORT], CS_ENV);
    cr_assert_str_eq(config_str(&cfg, S_HOST), "10.0.0.1");
}

Test(config, load_env_takes_only_settings) {
    setenv("PORT", "7000", 1);
    setenv("API_KEYS", "", 1);
    setenv("MYLOWARE_NOT_A_SETTING", "x", 1);
    config_load_env(&cfg);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "7000");
    cr_assert_eq(cfg.source[S_PORT], CS_ENV);
    cr_assert_eq(cfg.source[S_API_KEYS], CS_ENV, "an empty variable is still set");
    cr_assert_eq(cfg.source[S_HOST], CS_DEFAULT);
}

Test(config, flag_forms) {
    char *argv[] = {"--port",
                    "9000",
                    "--host=0.0.0.0",
                    "--set",
                    "LOG_LEVEL=debug",
                    "--set=LOG_FORMAT=text",
                    "--http-idle-timeout-ms",
                    "500",
                    "--media-dir=/a=b"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    char *rest[16];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, argc, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 0);
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9000");
    cr_assert_str_eq(config_str(&cfg, S_HOST), "0.0.0.0");
    cr_assert_str_eq(config_str(&cfg, S_LOG_LEVEL), "debug");
    cr_assert_str_eq(config_str(&cfg, S_LOG_FORMAT), "text");
    cr_assert_str_eq(config_str(&cfg, S_HTTP_IDLE_TIMEOUT_MS), "500");
    cr_assert_str_eq(config_str(&cfg, S_MEDIA_DIR), "/a=b");
    for (int id = 0; id < S__COUNT; id++) {
        bool changed = id == S_PORT || id == S_HOST || id == S_LOG_LEVEL || id == S_LOG_FORMAT ||
                       id == S_HTTP_IDLE_TIMEOUT_MS || id == S_MEDIA_DIR;
        cr_assert_eq(cfg.source[id], changed ? CS_FLAG : CS_DEFAULT, "%s",
                     config_settings[id].name);
    }
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_eq(config_int(&cfg, S_PORT), 9000);
    cr_assert_eq(config_int(&cfg, S_HTTP_IDLE_TIMEOUT_MS), 500);
}

Test(config, set_flag_value_may_be_empty_and_contain_equals) {
    char *argv[] = {"--set", "PUBLIC_BASE_URL=", "--set", "S3_PREFIX=a=b"};
    char *rest[4];
    int nrest = -1;
    set(&cfg, "PUBLIC_BASE_URL", "http://x");
    cr_assert_eq(config_from_args(&cfg, 4, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PUBLIC_BASE_URL), "");
    cr_assert_str_eq(config_str(&cfg, S_S3_PREFIX), "a=b");
}

Test(config, bool_flag_without_value) {
    char *argv[] = {"--allow-private-urls", "--port", "1234", "--public-demo-enabled"};
    char *rest[4];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 4, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert(config_bool(&cfg, S_ALLOW_PRIVATE_URLS));
    cr_assert(config_bool(&cfg, S_PUBLIC_DEMO_ENABLED));
    cr_assert_eq(config_int(&cfg, S_PORT), 1234);
}

Test(config, bool_flag_with_explicit_value) {
    setenv("ALLOW_PRIVATE_URLS", "true", 1);
    setenv("PUBLIC_DEMO_ENABLED", "true", 1);
    char *argv[] = {"--allow-private-urls", "false", "--public-demo-enabled=no"};
    char *rest[3];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 3, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_not(config_bool(&cfg, S_ALLOW_PRIVATE_URLS));
    cr_assert_not(config_bool(&cfg, S_PUBLIC_DEMO_ENABLED));
}

Test(config, bool_flag_before_a_positional_argument) {
    /* The positional argument is not a boolean: it is not taken as the flag's value. */
    char *argv[] = {"--allow-private-urls", "https://example.com/a.mp4"};
    char *rest[2];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(nrest, 1);
    cr_assert_str_eq(rest[0], "https://example.com/a.mp4");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert(config_bool(&cfg, S_ALLOW_PRIVATE_URLS));
}

Test(config, non_setting_arguments_stay_in_order) {
    char *argv[] = {"serve", "--port", "9000",   "extra", "--unknown-flag", "x", "-v",
                    "--",    "--set",  "HOST=h", "last"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    char *rest[16];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, argc, argv, rest, &nrest, &err), 0, "%s", msg());
    const char *want[] = {"serve", "extra", "--unknown-flag", "x", "-v", "--", "last"};
    cr_assert_eq(nrest, 7);
    const int from[] = {0, 3, 4, 5, 6, 7, 10}; /* the same pointers, not copies */
    for (int i = 0; i < nrest; i++) {
        cr_assert_str_eq(rest[i], want[i]);
        cr_assert_eq(rest[i], argv[from[i]]);
    }
    cr_assert_str_eq(config_str(&cfg, S_PORT), "9000");
    cr_assert_str_eq(config_str(&cfg, S_HOST), "h");
}

Test(config, flag_errors) {
    char *rest[4];
    int nrest;
    {
        char *argv[] = {"--port"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 1, argv, rest, &nrest, &err), ERR_INVAL);
        cr_assert_not_null(strstr(msg(), "--port"), "%s", msg());
    }
    {
        char *argv[] = {"--config"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 1, argv, rest, &nrest, &err), ERR_INVAL);
        cr_assert_not_null(strstr(msg(), "--config"), "%s", msg());
    }
    {
        char *argv[] = {"--config", "/nonexistent/myloware.env"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), ERR_IO);
        cr_assert_not_null(strstr(msg(), "/nonexistent/myloware.env"), "%s", msg());
    }
    {
        char *argv[] = {"--set", "PORT"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), ERR_INVAL);
        cr_assert_not_null(strstr(msg(), "--set"), "%s", msg());
    }
    {
        char *argv[] = {"--set"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 1, argv, rest, &nrest, &err), ERR_INVAL);
    }
    {
        char *argv[] = {"--set", "API_KY=do-not-print-me"};
        buf_reset(&err);
        cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), ERR_INVAL);
        cr_assert_not_null(strstr(msg(), "API_KY"), "%s", msg());
        cr_assert_null(strstr(msg(), "do-not-print-me"), "%s", msg());
    }
}

Test(config, flag_value_too_long_is_an_error) {
    size_t n = 70000;
    char *v = malloc(n + 1);
    memset(v, 'd', n);
    v[n] = '\0';
    char *argv[] = {"--media-dir", v};
    char *rest[2];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), ERR_INVAL,
                 "a refused flag value must not be ignored silently");
    cr_assert_not_null(strstr(msg(), "MEDIA_DIR"), "%s", msg());
    free(v);
}

Test(config, flag_values_are_validated_by_finish) {
    char *argv[] = {"--port", "http"};
    char *rest[2];
    int nrest = -1;
    cr_assert_eq(config_from_args(&cfg, 2, argv, rest, &nrest, &err), 0, "%s", msg());
    cr_assert_eq(config_finish(&cfg, &err), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "PORT"), "%s", msg());
}

/* ---- derived provider modes ---------------------------------------------------------------- */

Test(config, providers_default_fake_outside_production) {
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PROVIDERS), "fake");
    cr_assert_eq(cfg.source[S_PROVIDERS], CS_DERIVED);
    cr_assert_str_eq(config_str(&cfg, S_LLM_PROVIDER), "fake");
    cr_assert_str_eq(config_str(&cfg, S_SORA_PROVIDER), "fake");
    cr_assert_str_eq(config_str(&cfg, S_PUBLISH_PROVIDER), "fake");
    cr_assert_eq(cfg.source[S_LLM_PROVIDER], CS_DERIVED);
    cr_assert_str_eq(config_str(&cfg, S_RENDER_PROVIDER), "local");

    config_t c;
    config_init(&c);
    set(&c, "ENVIRONMENT", "test");
    cr_assert_eq(config_finish(&c, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&c, S_PROVIDERS), "fake");
    config_release(&c);
}

Test(config, providers_default_real_in_production) {
    set_production(&cfg);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PROVIDERS), "real");
    cr_assert_eq(cfg.source[S_PROVIDERS], CS_DERIVED);
    cr_assert_str_eq(config_str(&cfg, S_LLM_PROVIDER), "openai");
    cr_assert_str_eq(config_str(&cfg, S_SORA_PROVIDER), "openai");
    cr_assert_str_eq(config_str(&cfg, S_PUBLISH_PROVIDER), "upload_post");
}

Test(config, explicit_provider_setting_wins) {
    set(&cfg, "PROVIDERS", "real");
    set(&cfg, "LLM_PROVIDER", "fake");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&cfg, S_PROVIDERS), "real");
    cr_assert_eq(cfg.source[S_PROVIDERS], CS_ENV);
    cr_assert_str_eq(config_str(&cfg, S_LLM_PROVIDER), "fake");
    cr_assert_eq(cfg.source[S_LLM_PROVIDER], CS_ENV);
    cr_assert_str_eq(config_str(&cfg, S_SORA_PROVIDER), "openai");
    cr_assert_str_eq(config_str(&cfg, S_PUBLISH_PROVIDER), "upload_post");

    config_t c;
    config_init(&c);
    set(&c, "SORA_PROVIDER", "openai");
    cr_assert_eq(config_finish(&c, &err), 0, "%s", msg());
    cr_assert_str_eq(config_str(&c, S_SORA_PROVIDER), "openai");
    cr_assert_str_eq(config_str(&c, S_LLM_PROVIDER), "fake");
    config_release(&c);
}

/* ---- ENVIRONMENT=production ---------------------------------------------------------------- */

Test(config, production_valid_configuration_passes) {
    set_production(&cfg);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());

    config_t c;
    config_init(&c);
    set_production(&c);
    set(&c, "RENDER_PROVIDER", "remotion");
    set(&c, "REMOTION_WEBHOOK_SECRET", "remotion-secret");
    set(&c, "API_KEYS", "key-one,key-two");
    cr_assert_eq(config_finish(&c, &err), 0, "%s", msg());
    config_release(&c);
}

/* Production config with one change; asserts a refusal whose message contains want. */
static void expect_production_refusal(const char *name, const char *value, const char *want) {
    config_t c;
    config_init(&c);
    set_production(&c);
    set(&c, name, value);
    buf_reset(&err);
    cr_assert_eq(config_finish(&c, &err), ERR_INVAL, "%s=%s accepted in production", name, value);
    cr_assert_not_null(strstr(msg(), want), "%s=%s: '%s' lacks '%s'", name, value, msg(), want);
    config_release(&c);
}

Test(config, production_refusals) {
    expect_production_refusal("API_KEY", "dev-api-key", "API_KEY");
    expect_production_refusal("API_KEY", "", "API_KEY");
    expect_production_refusal("API_KEYS", "good-key, dev-api-key", "dev-api-key");
    expect_production_refusal("PROVIDERS", "fake", "fake");
    expect_production_refusal("LLM_PROVIDER", "fake", "LLM_PROVIDER");
    expect_production_refusal("SORA_PROVIDER", "fake", "SORA_PROVIDER");
    expect_production_refusal("PUBLISH_PROVIDER", "fake", "PUBLISH_PROVIDER");
    expect_production_refusal("OPENAI_WEBHOOK_SECRET", "", "OPENAI_WEBHOOK_SECRET");
    expect_production_refusal("RENDER_PROVIDER", "remotion", "REMOTION_WEBHOOK_SECRET");
    expect_production_refusal("PUBLIC_BASE_URL", "http://myloware.example.com", "PUBLIC_BASE_URL");
    expect_production_refusal("PUBLIC_BASE_URL", "", "PUBLIC_BASE_URL");
}

Test(config, production_refuses_default_key) {
    set(&cfg, "ENVIRONMENT", "production");
    set(&cfg, "OPENAI_WEBHOOK_SECRET", "whsec_x");
    set(&cfg, "PUBLIC_BASE_URL", "https://myloware.example.com");
    cr_assert_eq(config_finish(&cfg, &err), ERR_INVAL, "the default key is dev-api-key");
    cr_assert_not_null(strstr(msg(), "API_KEY"), "%s", msg());
}

Test(config, production_refuses_no_key) {
    set_production(&cfg);
    set(&cfg, "API_KEY", "");
    set(&cfg, "API_KEYS", " , ,");
    cr_assert_eq(config_finish(&cfg, &err), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "API_KEY"), "%s", msg());
}

Test(config, production_key_list_without_api_key) {
    /* API_KEYS alone: the default API_KEY (the development key) is not one of the keys. */
    set(&cfg, "ENVIRONMENT", "production");
    set(&cfg, "OPENAI_WEBHOOK_SECRET", "whsec_x");
    set(&cfg, "PUBLIC_BASE_URL", "https://myloware.example.com");
    set(&cfg, "API_KEYS", "rotation-a,rotation-b");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
}

Test(config, development_allows_what_production_refuses) {
    set(&cfg, "PUBLIC_BASE_URL", "http://localhost:8000");
    set(&cfg, "RENDER_PROVIDER", "remotion");
    set(&cfg, "SORA_PROVIDER", "openai");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", msg());
}

/* ---- DATABASE_URL ------------------------------------------------------------------------- */

Test(config, database_url_forms) {
    cr_assert_eq(try_value("DATABASE_URL", "sqlite:/tmp/x.db"), 0, "%s", msg());
    cr_assert_eq(try_value("DATABASE_URL", "sqlite::memory:"), 0, "%s", msg());
    cr_assert_eq(try_value("DATABASE_URL", "sqlite:"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "DATABASE_URL"), "%s", msg());
    cr_assert_eq(try_value("DATABASE_URL", "./data/myloware.db"), ERR_INVAL);
    cr_assert_not_null(strstr(msg(), "DATABASE_URL"), "%s", msg());
}

#ifndef WITH_POSTGRES
Test(config, postgres_refused_without_postgres_build) {
    const char *urls[] = {"postgres://app:pw@db.example/app", "postgresql://db.example/app"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(try_value("DATABASE_URL", urls[i]), ERR_INVAL, "%s accepted", urls[i]);
        cr_assert_not_null(strstr(msg(), "DATABASE_URL"), "%s", msg());
        cr_assert_not_null(strstr(msg(), "Postgres"), "%s", msg());
        cr_assert_not_null(strstr(msg(), "WITH_POSTGRES=1"), "%s", msg());
        cr_assert_null(strstr(msg(), ":pw@"), "%s", msg());
    }
}
#else
Test(config, postgres_accepted_with_postgres_build) {
    cr_assert_eq(try_value("DATABASE_URL", "postgres://app:pw@db.example/app"), 0, "%s", msg());
}
#endif

/* ---- API keys ------------------------------------------------------------------------------ */

static void expect_keys(const config_t *c, const char **want, int nwant) {
    const char *keys[16];
    size_t lens[16];
    int n = config_api_keys(c, keys, lens, 16);
    cr_assert_eq(n, nwant, "got %d keys, want %d", n, nwant);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(lens[i], strlen(want[i]), "key %d length", i);
        cr_assert_eq(memcmp(keys[i], want[i], lens[i]), 0, "key %d is '%.*s', want '%s'", i,
                     (int)lens[i], keys[i], want[i]);
    }
}

Test(config, api_keys_default_is_the_dev_key) {
    const char *want[] = {"dev-api-key"};
    expect_keys(&cfg, want, 1);
}

Test(config, api_keys_rotation_list) {
    set(&cfg, "API_KEYS", " alpha , ,beta,,\tgamma  ,");
    const char *want[] = {"alpha", "beta", "gamma"};
    expect_keys(&cfg, want, 3); /* API_KEY is only the default: not added */
}

Test(config, api_keys_list_plus_explicit_key) {
    set(&cfg, "API_KEYS", "alpha,beta");
    set(&cfg, "API_KEY", "primary");
    const char *want[] = {"alpha", "beta", "primary"};
    expect_keys(&cfg, want, 3);
}

Test(config, api_keys_only_api_key) {
    set(&cfg, "API_KEY", "only-key");
    const char *want[] = {"only-key"};
    expect_keys(&cfg, want, 1);
}

Test(config, api_keys_none) {
    set(&cfg, "API_KEY", "");
    set(&cfg, "API_KEYS", " , ");
    expect_keys(&cfg, NULL, 0);
}

Test(config, api_keys_respects_max) {
    set(&cfg, "API_KEYS", "a,b,c,d");
    set(&cfg, "API_KEY", "e");
    const char *keys[2];
    size_t lens[2];
    cr_assert_eq(config_api_keys(&cfg, keys, lens, 2), 2);
    cr_assert_eq(lens[0], 1);
    cr_assert_eq(keys[0][0], 'a');
    cr_assert_eq(keys[1][0], 'b');
}

/* ---- config show and the README table ------------------------------------------------------ */

Test(config, show_masks_secrets) {
    set(&cfg, "API_KEY", "topsecret-api-key");
    set(&cfg, "API_KEYS", "rot-one-secret,rot-two-secret");
    set(&cfg, "OPENAI_API_KEY", "sk-livesecret");
    set(&cfg, "AWS_SECRET_ACCESS_KEY", "aws/secret+value");
    set(&cfg, "DATABASE_URL", "postgres://app:pa55word@db.example:5432/myloware");
    set(&cfg, "PORT", "9000");
    char *out = capture_show(&cfg);
    cr_assert_eq(count_lines(out), S__COUNT, "one line per setting");
    cr_assert_null(strstr(out, "topsecret"), "%s", out);
    cr_assert_null(strstr(out, "rot-one"), "%s", out);
    cr_assert_null(strstr(out, "livesecret"), "%s", out);
    cr_assert_null(strstr(out, "aws/secret"), "%s", out);
    cr_assert_null(strstr(out, "pa55word"), "%s", out);
    cr_assert_not_null(strstr(out, "\nAPI_KEY=***  (env)\n"), "%s", out);
    cr_assert_not_null(strstr(out, "\nAPI_KEYS=***  (env)\n"), "%s", out);
    cr_assert_not_null(strstr(out, "\nOPENAI_API_KEY=***  (env)\n"), "%s", out);
    cr_assert_not_null(
        strstr(out, "\nDATABASE_URL=postgres://app:***@db.example:5432/myloware  (env)\n"), "%s",
        out);
    cr_assert_not_null(strstr(out, "\nPORT=9000  (env)\n"), "%s", out);
    cr_assert_eq(strncmp(out, "HOST=127.0.0.1  (default)\n", 26), 0, "%s", out);
    free(out);
}

Test(config, show_keeps_urls_without_password_and_sources) {
    set(&cfg, "DATABASE_URL", "postgres://app@db.example/myloware");
    cr_assert_eq(config_set(&cfg, "LOG_LEVEL", "debug", CS_FILE, &err), 0);
    cr_assert_eq(config_set(&cfg, "HOST", "0.0.0.0", CS_FLAG, &err), 0);
    char *out = capture_show(&cfg);
    cr_assert_not_null(strstr(out, "\nDATABASE_URL=postgres://app@db.example/myloware  (env)\n"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "\nLOG_LEVEL=debug  (file)\n"), "%s", out);
    cr_assert_not_null(strstr(out, "HOST=0.0.0.0  (flag)\n"), "%s", out);
    free(out);

    config_t c;
    config_init(&c);
    cr_assert_eq(config_finish(&c, &err), 0, "%s", msg());
    out = capture_show(&c);
    cr_assert_not_null(strstr(out, "\nDATABASE_URL=sqlite:./data/myloware.db  (default)\n"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "\nPROVIDERS=fake  (derived)\n"), "%s", out);
    free(out);
    config_release(&c);
}

Test(config, table_markdown_has_one_row_per_setting) {
    char *out = capture_table();
    cr_assert_eq(
        strncmp(out, "| setting | type | default | description |\n|---|---|---|---|\n", 57), 0,
        "%s", out);
    cr_assert_eq(count_lines(out), S__COUNT + 2);
    int rows = 0;
    for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, "| `", 3) == 0)
            rows++;
    }
    cr_assert_eq(rows, S__COUNT);
    for (int i = 0; i < S__COUNT; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n| `%s` |", config_settings[i].name);
        const char *row = strstr(out, want);
        cr_assert_not_null(row, "no row for %s", config_settings[i].name);
        const char *eol = strchr(row + 1, '\n');
        bool secret = config_settings[i].flags & (CF_SECRET | CF_SECRET_URL);
        bool marked = eol - row > 13 && memcmp(eol - 11, " (secret) |", 11) == 0;
        cr_assert_eq(marked, secret, "%s: secret mark", config_settings[i].name);
    }
    /* Four cells per row: a '|' inside a cell (enum choices) must be escaped, as GitHub's
     * tables split cells on every unescaped '|', even inside a code span. */
    for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
        int bars = 0;
        for (const char *p = line; *p != '\n'; p++)
            bars += *p == '|' && (p == line || p[-1] != '\\');
        cr_assert_eq(bars, 5, "not 4 cells: %.*s", (int)(strchr(line, '\n') - line), line);
    }
    cr_assert_not_null(strstr(out, "\n| `PORT` | integer 0–65535 | `8000` |"), "%s", out);
    cr_assert_not_null(strstr(out, "\n| `LOG_LEVEL` | `debug`, `info`, `warn`, `error` | `info` |"),
                       "%s", out);
    free(out);
}
