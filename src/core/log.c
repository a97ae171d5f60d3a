/* log: structured lines on stderr. Any thread. */
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

static _Atomic int threshold = LOG_INFO; /* changed at run time by PUT /admin/log-level */
static bool as_json = true;
static const char *names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, bool json) {
    threshold = level;
    as_json = json;
}

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return LOG_WARN;
    return -1;
}

bool log_enabled(enum log_level level) { return (int)level >= threshold; }

void log_set_level(enum log_level level) { threshold = level; }

static void field_json(buf_t *b, const struct log_field *f) {
    buf_puts(b, ",");
    buf_json_str(b, f->key, strlen(f->key));
    buf_puts(b, ":");
    switch (f->type) {
    case LFT_STR: buf_json_str(b, f->s, strlen(f->s)); break;
    case LFT_INT: buf_printf(b, "%lld", f->i); break;
    case LFT_NUM: buf_printf(b, "%.3f", f->d); break;
    case LFT_BOOL: buf_puts(b, f->i ? "true" : "false"); break;
    default: buf_puts(b, "null"); break;
    }
}

static void field_text(buf_t *b, const struct log_field *f) {
    buf_printf(b, " %s=", f->key);
    switch (f->type) {
    case LFT_STR:
        if (strpbrk(f->s, " \"=\n") || !*f->s)
            buf_json_str(b, f->s, strlen(f->s));
        else
            buf_puts(b, f->s);
        break;
    case LFT_INT: buf_printf(b, "%lld", f->i); break;
    case LFT_NUM: buf_printf(b, "%.3f", f->d); break;
    case LFT_BOOL: buf_puts(b, f->i ? "true" : "false"); break;
    default: break;
    }
}

void log_write(enum log_level level, const char *module, const char *msg,
               const struct log_field *fields) {
    buf_t b;
    buf_init(&b, 64 * 1024);
    char ts[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), ts);
    if (as_json) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":", ts, names[level]);
        buf_json_str(&b, module, strlen(module));
        buf_puts(&b, ",\"msg\":");
        buf_json_str(&b, msg, strlen(msg));
    } else {
        buf_printf(&b, "%s %-5s %s: %s", ts, names[level], module, msg);
    }
    for (const struct log_field *f = fields; f && f->type != LFT_END; f++) {
        if (f->type == LFT_BEGIN || (f->type == LFT_STR && !f->s))
            continue;
        if (as_json)
            field_json(&b, f);
        else
            field_text(&b, f);
    }
    if (as_json)
        buf_puts(&b, "}");
    if (buf_puts(&b, "\n") != 0) { /* over the cap: keep the line valid, drop the tail */
        b.len = 0;
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line too long\"}\n", ts,
                   names[level]);
    }
    const char *p = b.data;
    size_t left = b.len;
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    buf_release(&b);
}
