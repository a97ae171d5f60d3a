/* log: structured lines on stderr. Any thread. */
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

/* Batching (one thread, the loop): lines collect here and leave in one write per loop turn. */
static _Thread_local buf_t *batch;

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

/* %.3f for the usual magnitudes without printf's floating-point path (hot: the access log). */
static void put_num(buf_t *b, double d) {
    if (!(d >= 0 && d < 1e12)) {
        buf_printf(b, "%.3f", d);
        return;
    }
    unsigned long long milli = (unsigned long long)(d * 1000.0 + 0.5);
    buf_printf(b, "%llu.%03llu", milli / 1000, milli % 1000);
}

static void field_json(buf_t *b, const struct log_field *f) {
    buf_puts(b, ",");
    buf_json_str(b, f->key, strlen(f->key));
    buf_puts(b, ":");
    switch (f->type) {
    case LFT_STR: buf_json_str(b, f->s, strlen(f->s)); break;
    case LFT_INT: buf_printf(b, "%lld", f->i); break;
    case LFT_NUM: put_num(b, f->d); break;
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

static void write_all(const char *p, size_t left) {
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
}

void log_batch_begin(void) {
    if (!batch) {
        batch = malloc(sizeof *batch);
        if (batch)
            buf_init(batch, 1 << 20);
    }
}

void log_flush(void) {
    if (batch && batch->len) {
        write_all(batch->data, batch->len);
        buf_reset(batch);
    }
}

void log_batch_end(void) {
    log_flush();
    if (batch) {
        buf_release(batch);
        free(batch);
        batch = NULL;
    }
}

/* The stamp changes once a millisecond; many lines share it. */
static void stamp(char ts[CLOCK_ISO_LEN]) {
    static _Thread_local int64_t last_ms = -1;
    static _Thread_local char last[CLOCK_ISO_LEN];
    int64_t now = clock_now_ms();
    if (now != last_ms) {
        clock_iso8601(now, last);
        last_ms = now;
    }
    memcpy(ts, last, CLOCK_ISO_LEN);
}

void log_write(enum log_level level, const char *module, const char *msg,
               const struct log_field *fields) {
    buf_t b;
    buf_init(&b, 64 * 1024);
    char ts[CLOCK_ISO_LEN];
    stamp(ts);
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
    if (batch && level < LOG_WARN && buf_append(batch, b.data, b.len) == 0) {
        if (batch->len > 64 * 1024)
            log_flush();
    } else {
        log_flush(); /* keep the order */
        write_all(b.data, b.len);
    }
    buf_release(&b);
}
