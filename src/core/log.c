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

/* Decimal digits of v (no NUL) into out; returns the count. */
static size_t put_u64(char *out, unsigned long long v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int put_int(buf_t *b, long long v) {
    char num[24];
    size_t n = 0;
    unsigned long long u = (unsigned long long)v;
    if (v < 0) {
        num[n++] = '-';
        u = 0ull - u;
    }
    n += put_u64(num + n, u);
    return buf_append(b, num, n);
}

/* %.3f for the usual magnitudes without printf's floating-point path (hot: the access log). */
static int put_num(buf_t *b, double d) {
    if (!(d >= 0 && d < 1e12))
        return buf_printf(b, "%.3f", d);
    unsigned long long milli = (unsigned long long)(d * 1000.0 + 0.5);
    char num[32];
    size_t n = put_u64(num, milli / 1000);
    num[n++] = '.';
    num[n++] = (char)('0' + milli / 100 % 10);
    num[n++] = (char)('0' + milli / 10 % 10);
    num[n++] = (char)('0' + milli % 10);
    return buf_append(b, num, n);
}

#define LINE_MAX_BYTES (64 * 1024)

static int field_json(buf_t *b, const struct log_field *f) {
    size_t vlen = f->type == LFT_STR ? strlen(f->s) : 0;
    if (vlen > LINE_MAX_BYTES)
        return -1; /* the line would be too long: do not copy it first */
    int rc = buf_append(b, ",", 1);
    rc |= buf_json_str(b, f->key, strlen(f->key));
    rc |= buf_append(b, ":", 1);
    switch (f->type) {
    case LFT_STR: rc |= buf_json_str(b, f->s, vlen); break;
    case LFT_INT: rc |= put_int(b, f->i); break;
    case LFT_NUM: rc |= put_num(b, f->d); break;
    case LFT_BOOL: rc |= f->i ? buf_append(b, "true", 4) : buf_append(b, "false", 5); break;
    default: rc |= buf_append(b, "null", 4); break;
    }
    return rc;
}

/* The JSON line written straight into b: every length is known first, so the worst case is
 * reserved once and no bound is checked per byte (hot: the access log). Returns false, having
 * written nothing, when the worst case would pass LINE_MAX_BYTES or the fields are too many:
 * the caller then takes the general path. */
#define FAST_FIELDS 16

static bool line_json_fast(buf_t *b, enum log_level level, const char *module, const char *msg,
                           const struct log_field *fields, const char ts[CLOCK_ISO_LEN]) {
    size_t mlen = strlen(module), glen = strlen(msg), lvlen = strlen(names[level]);
    size_t klen[FAST_FIELDS], slen[FAST_FIELDS];
    size_t need = 40 + CLOCK_ISO_LEN + lvlen + BUF_JSON_WORST(mlen) + BUF_JSON_WORST(glen);
    int nf = 0;
    for (const struct log_field *f = fields; f && f->type != LFT_END; f++) {
        if (f->type == LFT_BEGIN || (f->type == LFT_STR && !f->s))
            continue;
        if (nf == FAST_FIELDS || (f->type == LFT_NUM && !(f->d >= 0 && f->d < 1e12)))
            return false;
        klen[nf] = strlen(f->key);
        slen[nf] = f->type == LFT_STR ? strlen(f->s) : 0;
        if (slen[nf] > LINE_MAX_BYTES || klen[nf] > LINE_MAX_BYTES)
            return false;
        need += 2 + BUF_JSON_WORST(klen[nf]) + (f->type == LFT_STR ? BUF_JSON_WORST(slen[nf]) : 32);
        nf++;
    }
    if (need > LINE_MAX_BYTES)
        return false;
    char *p0 = buf_room(b, need), *p = p0;
    if (!p)
        return false;
    memcpy(p, "{\"ts\":\"", 7);
    p += 7;
    memcpy(p, ts, CLOCK_ISO_LEN - 1);
    p += CLOCK_ISO_LEN - 1;
    memcpy(p, "\",\"level\":\"", 11);
    p += 11;
    memcpy(p, names[level], lvlen);
    p += lvlen;
    memcpy(p, "\",\"module\":", 11);
    p = buf_json_raw(p + 11, module, mlen);
    memcpy(p, ",\"msg\":", 7);
    p = buf_json_raw(p + 7, msg, glen);
    int i = 0;
    for (const struct log_field *f = fields; f && f->type != LFT_END; f++) {
        if (f->type == LFT_BEGIN || (f->type == LFT_STR && !f->s))
            continue;
        *p++ = ',';
        p = buf_json_raw(p, f->key, klen[i]);
        *p++ = ':';
        switch (f->type) {
        case LFT_STR: p = buf_json_raw(p, f->s, slen[i]); break;
        case LFT_INT: {
            unsigned long long u = (unsigned long long)f->i;
            if (f->i < 0) {
                *p++ = '-';
                u = 0ull - u;
            }
            p += put_u64(p, u);
            break;
        }
        case LFT_NUM: {
            unsigned long long milli = (unsigned long long)(f->d * 1000.0 + 0.5);
            p += put_u64(p, milli / 1000);
            p[0] = '.';
            p[1] = (char)('0' + milli / 100 % 10);
            p[2] = (char)('0' + milli / 10 % 10);
            p[3] = (char)('0' + milli % 10);
            p += 4;
            break;
        }
        case LFT_BOOL:
            memcpy(p, f->i ? "true" : "false", f->i ? 4 : 5);
            p += f->i ? 4 : 5;
            break;
        default:
            memcpy(p, "null", 4);
            p += 4;
            break;
        }
        i++;
    }
    *p++ = '}';
    *p++ = '\n';
    buf_commit(b, (size_t)(p - p0));
    return true;
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

bool log_pending(void) { return batch && batch->len; }

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
    /* Batched lines are built in place at the end of the batch; the others in a buffer of
     * their own. */
    bool batched = batch && level < LOG_WARN;
    buf_t own, *b = batched ? batch : &own;
    if (!batched)
        buf_init(&own, LINE_MAX_BYTES);
    size_t start = b->len;
    char ts[CLOCK_ISO_LEN];
    stamp(ts);
    int rc = 0;
    if (as_json && line_json_fast(b, level, module, msg, fields, ts))
        goto written;
    if (as_json) {
        rc |= buf_append(b, "{\"ts\":\"", 7);
        rc |= buf_append(b, ts, CLOCK_ISO_LEN - 1);
        rc |= buf_append(b, "\",\"level\":\"", 11);
        rc |= buf_puts(b, names[level]);
        rc |= buf_append(b, "\",\"module\":", 11);
        rc |= buf_json_str(b, module, strlen(module));
        rc |= buf_append(b, ",\"msg\":", 7);
        rc |= buf_json_str(b, msg, strlen(msg));
    } else {
        rc |= buf_printf(b, "%s %-5s %s: %s", ts, names[level], module, msg);
    }
    for (const struct log_field *f = fields; f && f->type != LFT_END; f++) {
        if (f->type == LFT_BEGIN || (f->type == LFT_STR && !f->s))
            continue;
        if (as_json)
            rc |= field_json(b, f);
        else
            field_text(b, f);
        if (b->len - start > LINE_MAX_BYTES)
            break;
    }
    if (as_json)
        rc |= buf_append(b, "}", 1);
    rc |= buf_append(b, "\n", 1);
    if (rc ||
        b->len - start > LINE_MAX_BYTES) { /* over the cap: keep the line valid, drop the tail */
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
        buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line too long\"}\n", ts,
                   names[level]);
    }
written:
    if (batched) {
        if (batch->len > 64 * 1024)
            log_flush();
        return;
    }
    log_flush(); /* keep the order */
    write_all(own.data, own.len);
    buf_release(&own);
}

void log_http_request(const char *request_id, const char *method, const char *route, int status,
                      long long bytes, double ms) {
    if (!log_enabled(LOG_INFO))
        return;
    size_t idn = strlen(request_id), mn = strlen(method), rn = strlen(route);
    if (!as_json || !batch || idn > 1024 || mn > 1024 || rn > 1024 || !(ms >= 0 && ms < 1e12)) {
        log_info("http", "request", LF_S("request_id", request_id), LF_S("method", method),
                 LF_S("route", route), LF_I("status", status), LF_I("bytes", bytes),
                 LF_D("duration_ms", ms));
        return;
    }
    static const char p1[] =
        "\",\"level\":\"info\",\"module\":\"http\",\"msg\":\"request\",\"request_id\":";
    char ts[CLOCK_ISO_LEN];
    stamp(ts);
    size_t need = 120 + sizeof p1 + CLOCK_ISO_LEN + BUF_JSON_WORST(idn) + BUF_JSON_WORST(mn) +
                  BUF_JSON_WORST(rn);
    char *p0 = buf_room(batch, need), *p = p0;
    if (!p)
        return; /* cannot happen: the batch is flushed long before its cap */
#define PUTS(lit) (memcpy(p, lit, sizeof lit - 1), p += sizeof lit - 1)
    PUTS("{\"ts\":\"");
    memcpy(p, ts, CLOCK_ISO_LEN - 1);
    p += CLOCK_ISO_LEN - 1;
    PUTS(p1);
    p = buf_json_raw(p, request_id, idn);
    PUTS(",\"method\":");
    p = buf_json_raw(p, method, mn);
    PUTS(",\"route\":");
    p = buf_json_raw(p, route, rn);
    PUTS(",\"status\":");
    if (status < 0) {
        *p++ = '-';
        p += put_u64(p, 0ull - (unsigned long long)status);
    } else {
        p += put_u64(p, (unsigned long long)status);
    }
    PUTS(",\"bytes\":");
    if (bytes < 0) {
        *p++ = '-';
        p += put_u64(p, 0ull - (unsigned long long)bytes);
    } else {
        p += put_u64(p, (unsigned long long)bytes);
    }
    PUTS(",\"duration_ms\":");
    unsigned long long milli = (unsigned long long)(ms * 1000.0 + 0.5);
    p += put_u64(p, milli / 1000);
    p[0] = '.';
    p[1] = (char)('0' + milli / 100 % 10);
    p[2] = (char)('0' + milli / 10 % 10);
    p[3] = (char)('0' + milli % 10);
    p += 4;
    PUTS("}\n");
#undef PUTS
    buf_commit(batch, (size_t)(p - p0));
    if (batch->len > 64 * 1024)
        log_flush();
}
