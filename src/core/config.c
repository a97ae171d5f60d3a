/* config: parsing and validation driven by the settings table (core/settings.h). */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/mem.h"

const struct setting_def config_settings[S__COUNT] = {
#define X(id, type, def, min, max, choices, flags, help)                                           \
    {#id, type, def, (double)(min), (double)(max), choices, flags, help},
    SETTINGS(X)
#undef X
};

static const char *source_names[] = {"default", "file", "env", "flag", "derived"};

void config_init(config_t *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < S__COUNT; i++) {
        c->raw[i] = xstrdup(config_settings[i].def);
        c->source[i] = CS_DEFAULT;
    }
}

void config_release(config_t *c) {
    for (int i = 0; i < S__COUNT; i++) {
        free(c->raw[i]);
        c->raw[i] = NULL;
    }
}

int config_find(const char *name) {
    for (int i = 0; i < S__COUNT; i++)
        if (strcmp(config_settings[i].name, name) == 0)
            return i;
    return -1;
}

int config_set(config_t *c, const char *name, const char *value, enum config_source src,
               buf_t *err) {
    int id = config_find(name);
    if (id < 0) {
        buf_printf(err, "unknown setting '%s'", name);
        return ERR_INVAL;
    }
    if (strlen(value) > 65536) {
        buf_printf(err, "%s: value is longer than 65536 characters", name);
        return ERR_INVAL;
    }
    free(c->raw[id]);
    c->raw[id] = xstrdup(value);
    c->source[id] = src;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int config_load_file(config_t *c, const char *path, buf_t *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        buf_printf(err, "cannot open config file '%s': %s", path, strerror(errno));
        return ERR_IO;
    }
    char line[70000];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            buf_printf(err, "%s:%d: line too long", path, lineno);
            rc = ERR_INVAL;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            buf_printf(err, "%s:%d: expected KEY=VALUE", path, lineno);
            rc = ERR_INVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t n = strlen(val);
        if (n >= 2 && (val[0] == '"' || val[0] == '\'') && val[n - 1] == val[0]) {
            val[n - 1] = '\0';
            val++;
        }
        buf_t e2;
        buf_init(&e2, 512);
        rc = config_set(c, key, val, CS_FILE, &e2);
        if (rc)
            buf_printf(err, "%s:%d: %s", path, lineno, e2.data ? e2.data : "invalid");
        buf_release(&e2);
    }
    fclose(f);
    return rc;
}

void config_load_env(config_t *c) {
    for (int i = 0; i < S__COUNT; i++) {
        const char *v = getenv(config_settings[i].name);
        if (v) {
            free(c->raw[i]);
            c->raw[i] = xstrdup(v);
            c->source[i] = CS_ENV;
        }
    }
}

/* "--http-idle-timeout-ms" -> "HTTP_IDLE_TIMEOUT_MS" into out (cap bytes); false if not a flag. */
static bool flag_to_name(const char *arg, size_t n, char *out, size_t cap) {
    if (n < 3 || arg[0] != '-' || arg[1] != '-' || n - 2 >= cap)
        return false;
    size_t k = 0;
    for (size_t i = 2; i < n; i++)
        out[k++] = arg[i] == '-' ? '_' : (char)toupper((unsigned char)arg[i]);
    out[k] = '\0';
    return true;
}

static int parse_bool(const char *v, int64_t *out);

int config_from_args(config_t *c, int argc, char **argv, char **rest, int *nrest, buf_t *err) {
    int k = 0;
    /* The file goes below the environment and the flags: load it first. */
    for (int i = 0; i < argc; i++) {
        const char *file = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                buf_puts(err, "--config needs a file");
                return ERR_INVAL;
            }
            file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
        if (file) {
            int rc = config_load_file(c, file, err);
            if (rc)
                return rc;
        }
    }
    config_load_env(c);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
            const char *kv = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq) {
                buf_puts(err, "--set needs KEY=VALUE");
                return ERR_INVAL;
            }
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
            int rc = config_set(c, name, eq + 1, CS_FLAG, err);
            if (rc)
                return rc;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        char name[128];
        int id = flag_to_name(a, n, name, sizeof name) ? config_find(name) : -1;
        if (id < 0) {
            rest[k++] = argv[i];
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        int64_t ignored;
        /* A boolean flag takes the next argument only when it is a boolean word, so that
         * `--allow-private-urls URL` leaves URL in rest. */
        if (!val && config_settings[id].type == CT_BOOL &&
            (i + 1 >= argc || parse_bool(argv[i + 1], &ignored) != 0))
            val = "true";
        if (!val) {
            if (i + 1 >= argc) {
                buf_printf(err, "%.*s needs a value", (int)n, a);
                return ERR_INVAL;
            }
            val = argv[++i];
        }
        int rc = config_set(c, name, val, CS_FLAG, err);
        if (rc)
            return rc;
    }
    *nrest = k;
    return 0;
}

int config_parse_rate(const char *s, int64_t *count, double *period_s) {
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || errno || n < 1 || n > 1000000000 || *end != '/')
        return ERR_INVAL;
    const char *u = end + 1;
    double p;
    if (strcmp(u, "second") == 0 || strcmp(u, "s") == 0)
        p = 1;
    else if (strcmp(u, "minute") == 0 || strcmp(u, "m") == 0)
        p = 60;
    else if (strcmp(u, "hour") == 0 || strcmp(u, "h") == 0)
        p = 3600;
    else
        return ERR_INVAL;
    *count = n;
    *period_s = p;
    return 0;
}

void config_rate(const config_t *c, enum setting_id id, int64_t *count, double *period_s) {
    *count = c->i[id];
    *period_s = c->d[id];
}

static bool choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static int parse_bool(const char *v, int64_t *out) {
    static const char *yes[] = {"true", "1", "yes", "on"}, *no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return ERR_INVAL;
}

/* Parses one setting. The message never quotes a secret's value. */
static int parse_one(config_t *c, int id, buf_t *err) {
    const struct setting_def *d = &config_settings[id];
    const char *v = c->raw[id];
    bool secret = d->flags & (CF_SECRET | CF_SECRET_URL);
    char *end;
    switch (d->type) {
    case CT_STR: return 0;
    case CT_INT: {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (end == v || *end || errno || (double)n < d->min || (double)n > d->max) {
            buf_printf(err, "%s: must be an integer from %.0f to %.0f", d->name, d->min, d->max);
            goto bad;
        }
        c->i[id] = n;
        return 0;
    }
    case CT_NUM: {
        errno = 0;
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x) || x < d->min || x > d->max) {
            buf_printf(err, "%s: must be a number from %g to %g", d->name, d->min, d->max);
            goto bad;
        }
        c->d[id] = x;
        return 0;
    }
    case CT_BOOL:
        if (parse_bool(v, &c->i[id])) {
            buf_printf(err, "%s: must be true or false", d->name);
            goto bad;
        }
        return 0;
    case CT_ENUM:
        if (*v == '\0' && d->def[0] == '\0')
            return 0; /* empty default: derived in config_finish */
        if (!choice_ok(d->choices, v)) {
            buf_printf(err, "%s: must be one of %s", d->name, d->choices);
            goto bad;
        }
        return 0;
    case CT_RATE:
        if (config_parse_rate(v, &c->i[id], &c->d[id])) {
            buf_printf(err, "%s: must look like N/second, N/minute or N/hour", d->name);
            goto bad;
        }
        return 0;
    }
    return 0;
bad:
    if (!secret)
        buf_printf(err, " (got '%.80s')", v);
    return ERR_INVAL;
}

static void derive(config_t *c, enum setting_id id, const char *value) {
    if (c->raw[id][0] != '\0')
        return;
    free(c->raw[id]);
    c->raw[id] = xstrdup(value);
    c->source[id] = CS_DERIVED;
}

static bool is_dev_key(const char *k, size_t n) {
    return n == 11 && memcmp(k, "dev-api-key", 11) == 0;
}

static int x264_fail(buf_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int x264_fail(buf_t *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(err, fmt, ap);
        va_end(ap);
    }
    return ERR_INVAL;
}

/* The x264 options a caller may set (memory, threading, speed/quality trade-offs), with values
 * of at most 16 characters from [A-Za-z0-9.,+-]: libx264 only warns about an option it does not
 * know (and FFmpeg's log is silenced), so anything else is refused here instead. */
#define X264_PARAMS_MAX 256
static const char *const x264_keys[] = {"rc-lookahead",
                                        "bframes",
                                        "b-adapt",
                                        "b-pyramid",
                                        "ref",
                                        "sliced-threads",
                                        "lookahead-threads",
                                        "sync-lookahead",
                                        "mbtree",
                                        "aq-mode",
                                        "subme",
                                        "me",
                                        "trellis",
                                        "weightp",
                                        "keyint",
                                        "min-keyint",
                                        "scenecut",
                                        "8x8dct",
                                        "deblock"};

int config_x264_params_ok(const char *params, buf_t *err) {
    if (!params)
        return 0;
    size_t len = strlen(params);
    if (len > X264_PARAMS_MAX)
        return x264_fail(err, "x264 options longer than %d bytes", X264_PARAMS_MAX);
    const char *p = params;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ':');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end)
            return x264_fail(err, "x264 options: '%.*s' is not key=value", (int)(end - p), p);
        size_t i = 0, klen = (size_t)(eq - p);
        while (i < sizeof x264_keys / sizeof x264_keys[0] &&
               (strlen(x264_keys[i]) != klen || strncmp(x264_keys[i], p, klen) != 0))
            i++;
        if (i == sizeof x264_keys / sizeof x264_keys[0])
            return x264_fail(err, "x264 options: '%.*s' is not an option accepted here", (int)klen,
                             p);
        size_t vlen = (size_t)(end - eq - 1);
        if (vlen < 1 || vlen > 16 ||
            strspn(eq + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,+-") <
                vlen)
            return x264_fail(err, "x264 options: bad value for '%.*s'", (int)klen, p);
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return x264_fail(err, "x264 options: trailing ':'");
    }
    return 0;
}

int config_finish(config_t *c, buf_t *err) {
    for (int i = 0; i < S__COUNT; i++) {
        int rc = parse_one(c, i, err);
        if (rc)
            return rc;
    }
    bool prod = strcmp(c->raw[S_ENVIRONMENT], "production") == 0;
    derive(c, S_PROVIDERS, prod ? "real" : "fake");
    bool fake = strcmp(c->raw[S_PROVIDERS], "fake") == 0;
    derive(c, S_LLM_PROVIDER, fake ? "fake" : "openai");
    derive(c, S_SORA_PROVIDER, fake ? "fake" : "openai");
    derive(c, S_PUBLISH_PROVIDER, fake ? "fake" : "upload_post");

    const char *db = c->raw[S_DATABASE_URL];
    bool pg = strncmp(db, "postgres://", 11) == 0 || strncmp(db, "postgresql://", 13) == 0;
    if (strncmp(db, "sqlite:", 7) != 0 && !pg) {
        buf_puts(err, "DATABASE_URL: must be sqlite:PATH, postgres://... or postgresql://...");
        return ERR_INVAL;
    }
    if (!pg && db[7] == '\0') {
        buf_puts(err, "DATABASE_URL: sqlite: needs a file path");
        return ERR_INVAL;
    }
#ifndef WITH_POSTGRES
    if (pg) {
        buf_puts(err, "DATABASE_URL: this binary was built without Postgres support "
                      "(rebuild with make WITH_POSTGRES=1)");
        return ERR_INVAL;
    }
#endif
    int w, h;
    char tail;
    if (sscanf(c->raw[S_FAKE_CLIP_SIZE], "%dx%d%c", &w, &h, &tail) != 2 || w < 16 || h < 16 ||
        w > 4096 || h > 4096 || (w & 1) || (h & 1)) {
        buf_printf(err, "FAKE_CLIP_SIZE: must be WxH with even sizes from 16 to 4096 (got '%.40s')",
                   c->raw[S_FAKE_CLIP_SIZE]);
        return ERR_INVAL;
    }
    buf_t xerr;
    buf_init(&xerr, 512);
    if (config_x264_params_ok(c->raw[S_TRANSCODE_X264_PARAMS], &xerr) != 0) {
        buf_printf(err, "TRANSCODE_X264_PARAMS: %s", xerr.data ? xerr.data : "invalid");
        buf_release(&xerr);
        return ERR_INVAL;
    }
    buf_release(&xerr);
    const char *base = c->raw[S_PUBLIC_BASE_URL];
    if (*base && strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        buf_puts(err, "PUBLIC_BASE_URL: must start with http:// or https://");
        return ERR_INVAL;
    }
    if (c->d[S_JOB_RETRY_BASE_S] > c->d[S_JOB_RETRY_MAX_S]) {
        buf_puts(err, "JOB_RETRY_BASE_S: must not exceed JOB_RETRY_MAX_S");
        return ERR_INVAL;
    }

    const char *keys[64];
    size_t lens[64];
    int nkeys = config_api_keys(c, keys, lens, 64);
    for (int i = 0; i < nkeys; i++) {
        if (lens[i] > 256) {
            buf_puts(err, "API_KEYS: a key is longer than 256 characters");
            return ERR_INVAL;
        }
    }
    if (!prod) {
        /* Outside production the fakes sign their webhooks with the secret the server verifies
         * with: when the setting was never given and the fake is the signer, each process
         * draws a random one (the fakes inside `serve` post to that same process). A secret
         * set to "" stays unset (the webhook routes then answer 500). */
        uint8_t rnd[24];
        char b64[40], hex[49];
        crypto_random(rnd, sizeof rnd);
        crypto_base64(rnd, sizeof rnd, b64);
        char whsec[48];
        snprintf(whsec, sizeof whsec, "whsec_%s", b64);
        if (c->source[S_OPENAI_WEBHOOK_SECRET] == CS_DEFAULT &&
            strcmp(c->raw[S_SORA_PROVIDER], "fake") == 0)
            derive(c, S_OPENAI_WEBHOOK_SECRET, whsec);
        crypto_random(rnd, sizeof rnd);
        crypto_hex(rnd, sizeof rnd, hex);
        if (c->source[S_REMOTION_WEBHOOK_SECRET] == CS_DEFAULT && fake &&
            strcmp(c->raw[S_RENDER_PROVIDER], "remotion") == 0)
            derive(c, S_REMOTION_WEBHOOK_SECRET, hex);
        return 0;
    }
    /* ENVIRONMENT=production refusals (runtime.md §6, api.md §2). */
    if (nkeys == 0) {
        buf_puts(err, "API_KEY: production needs an API key (set API_KEY or API_KEYS)");
        return ERR_INVAL;
    }
    for (int i = 0; i < nkeys; i++) {
        if (is_dev_key(keys[i], lens[i])) {
            buf_puts(err, "API_KEY: production refuses the development key dev-api-key");
            return ERR_INVAL;
        }
    }
    static const enum setting_id modes[] = {S_LLM_PROVIDER, S_SORA_PROVIDER, S_PUBLISH_PROVIDER};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(c->raw[modes[i]], "fake") == 0) {
            buf_printf(err, "%s: production refuses fake providers",
                       config_settings[modes[i]].name);
            return ERR_INVAL;
        }
    }
    if (strcmp(c->raw[S_SORA_PROVIDER], "openai") == 0 && !*c->raw[S_OPENAI_WEBHOOK_SECRET]) {
        buf_puts(err, "OPENAI_WEBHOOK_SECRET: production needs it with SORA_PROVIDER=openai");
        return ERR_INVAL;
    }
    if (strcmp(c->raw[S_RENDER_PROVIDER], "remotion") == 0 && !*c->raw[S_REMOTION_WEBHOOK_SECRET]) {
        buf_puts(err, "REMOTION_WEBHOOK_SECRET: production needs it with RENDER_PROVIDER=remotion");
        return ERR_INVAL;
    }
    if (strncmp(base, "https://", 8) != 0) {
        buf_puts(err, "PUBLIC_BASE_URL: production needs an https:// URL");
        return ERR_INVAL;
    }
    return 0;
}

int config_api_keys(const config_t *c, const char **keys, size_t *lens, int max) {
    int n = 0;
    for (const char *p = c->raw[S_API_KEYS]; *p && n < max;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && isspace((unsigned char)*s))
            s++;
        const char *t = e;
        while (t > s && isspace((unsigned char)t[-1]))
            t--;
        if (t > s) {
            keys[n] = s;
            lens[n++] = (size_t)(t - s);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    /* API_KEY joins the list unless it is only the default while API_KEYS is set. */
    const char *k = c->raw[S_API_KEY];
    bool only_default = c->source[S_API_KEY] == CS_DEFAULT;
    if (*k && n < max && !(n > 0 && only_default)) {
        keys[n] = k;
        lens[n++] = strlen(k);
    }
    return n;
}

static void print_masked_url(FILE *out, const char *v) {
    /* scheme://user:password@host -> scheme://user:***@host */
    const char *s = strstr(v, "://");
    const char *at = s ? strchr(s + 3, '@') : NULL;
    const char *colon = s && at ? memchr(s + 3, ':', (size_t)(at - s - 3)) : NULL;
    if (!colon) {
        fputs(v, out);
        return;
    }
    fprintf(out, "%.*s:***%s", (int)(colon - v), v, at);
}

void config_show(const config_t *c, FILE *out) {
    for (int i = 0; i < S__COUNT; i++) {
        const struct setting_def *d = &config_settings[i];
        fprintf(out, "%s=", d->name);
        if ((d->flags & CF_SECRET) && c->raw[i][0])
            fputs("***", out);
        else if (d->flags & CF_SECRET_URL)
            print_masked_url(out, c->raw[i]);
        else
            fputs(c->raw[i], out);
        fprintf(out, "  (%s)\n", source_names[c->source[i]]);
    }
}

void config_table_markdown(FILE *out) {
    static const char *types[] = {"string", "integer", "number", "boolean", "choice", "rate"};
    fputs("| setting | type | default | description |\n|---|---|---|---|\n", out);
    for (int i = 0; i < S__COUNT; i++) {
        const struct setting_def *d = &config_settings[i];
        char type[160];
        if (d->type == CT_ENUM) { /* `a`, `b`: a bare | would split the markdown cell */
            size_t k = 0;
            type[k++] = '`';
            for (const char *p = d->choices; *p && k + 5 < sizeof type; p++) {
                if (*p == '|') {
                    memcpy(type + k, "`, `", 4);
                    k += 4;
                } else {
                    type[k++] = *p;
                }
            }
            type[k++] = '`';
            type[k] = '\0';
        } else if (d->type == CT_INT)
            snprintf(type, sizeof type, "integer %.0f–%.0f", d->min, d->max);
        else if (d->type == CT_NUM)
            snprintf(type, sizeof type, "number %g–%g", d->min, d->max);
        else
            snprintf(type, sizeof type, "%s%s", types[d->type],
                     (d->flags & CF_LIST) ? " list" : "");
        fprintf(out, "| `%s` | %s | %s%s%s | %s%s |\n", d->name, type, d->def[0] ? "`" : "",
                d->def[0] ? d->def : "(empty)", d->def[0] ? "`" : "", d->help,
                (d->flags & (CF_SECRET | CF_SECRET_URL)) ? " (secret)" : "");
    }
}
