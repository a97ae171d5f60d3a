/*
 * config: the effective settings. Sources, lowest first: the defaults of the settings table,
 * a `--config FILE` of KEY=VALUE lines, the environment, then command-line flags
 * (`--port 9000`, `--port=9000`, or `--set PORT=9000`). config_finish() validates every
 * value and the cross-setting rules (ENVIRONMENT=production refusals); an invalid value
 * stops start-up with the setting's name and the reason, never with a secret's value.
 * A config_t is read-only after config_finish() and may then be shared by every thread.
 */
#ifndef MYLOWARE_CORE_CONFIG_H
#define MYLOWARE_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/settings.h"

enum config_type { CT_STR, CT_INT, CT_NUM, CT_BOOL, CT_ENUM, CT_RATE };
enum config_flags { CF_SECRET = 1, CF_LIST = 2, CF_SECRET_URL = 4 };
enum config_source { CS_DEFAULT, CS_FILE, CS_ENV, CS_FLAG, CS_DERIVED };

enum setting_id {
#define X(id, ...) S_##id,
    SETTINGS(X)
#undef X
        S__COUNT
};

struct setting_def {
    const char *name;
    enum config_type type;
    const char *def;
    double min, max;
    const char *choices;
    int flags;
    const char *help;
};

extern const struct setting_def config_settings[S__COUNT];

typedef struct config {
    char *raw[S__COUNT]; /* owned strings; never NULL after config_init */
    enum config_source source[S__COUNT];
    int64_t i[S__COUNT]; /* CT_INT, CT_BOOL; CT_RATE: the count */
    double d[S__COUNT];  /* CT_NUM; CT_RATE: the period in seconds */
} config_t;

/* Fills every setting with its default. */
void config_init(config_t *c);
void config_release(config_t *c);
/* Returns the setting id for a name ("PORT"), or -1. */
int config_find(const char *name);
/* Sets one value from a source. Unknown name: ERR_INVAL with a message in err. */
int config_set(config_t *c, const char *name, const char *value, enum config_source src,
               buf_t *err);
/* Reads KEY=VALUE lines (# comments, blank lines, optional `export `, optional quotes). */
int config_load_file(config_t *c, const char *path, buf_t *err);
/* Takes every setting present in the process environment. */
void config_load_env(config_t *c);
/*
 * Applies the flags in argv: --config FILE (loaded first, below the environment), --KEY-NAME
 * VALUE, --KEY-NAME=VALUE, --set KEY=VALUE. Arguments that are not settings are left, in
 * order, in rest (caller-allocated, argc entries); *nrest gets their count.
 */
int config_from_args(config_t *c, int argc, char **argv, char **rest, int *nrest, buf_t *err);
/* Validates and parses every value, derives the provider modes, applies production rules. */
int config_finish(config_t *c, buf_t *err);

static inline const char *config_str(const config_t *c, enum setting_id id) { return c->raw[id]; }
static inline int64_t config_int(const config_t *c, enum setting_id id) { return c->i[id]; }
static inline double config_num(const config_t *c, enum setting_id id) { return c->d[id]; }
static inline bool config_bool(const config_t *c, enum setting_id id) { return c->i[id] != 0; }
/* CT_RATE: *count per *period_s seconds. */
void config_rate(const config_t *c, enum setting_id id, int64_t *count, double *period_s);
/* Parses "N/second|minute|hour". Returns 0 or ERR_INVAL. */
int config_parse_rate(const char *s, int64_t *count, double *period_s);

/* The accepted API keys (API_KEYS entries, plus API_KEY). Returns the count (<= max). */
int config_api_keys(const config_t *c, const char **keys, size_t *lens, int max);
/* Checks x264 options (TRANSCODE_X264_PARAMS, `media transcode --x264-params`): "" or
 * "key=value(:key=value)*", at most 256 bytes, keys from a fixed list (lookahead, B-frames,
 * references, threading and a few speed/quality switches), values of 1 to 16 characters from
 * [A-Za-z0-9.,+-]. Returns 0 or ERR_INVAL with the reason in err (may be NULL). Any thread. */
int config_x264_params_ok(const char *params, buf_t *err);

/* Prints NAME=value (source) lines; secrets as ***. */
void config_show(const config_t *c, FILE *out);
/* Prints the README settings table (markdown). */
void config_table_markdown(FILE *out);

#endif
