/* buf: capped growable buffer. */
#include "core/buf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

void buf_init(buf_t *b, size_t max) {
    b->data = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

void buf_release(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void buf_reset(buf_t *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(buf_t *b, size_t n) {
    if (n > b->max || b->len + n > b->max)
        return ERR_TOOBIG;
    size_t need = b->len + n + 1;
    if (need <= b->alloc)
        return 0;
    size_t a = b->alloc ? b->alloc : 256;
    while (a < need)
        a *= 2;
    if (a > b->max + 1)
        a = b->max + 1;
    b->data = xrealloc(b->data, a);
    b->alloc = a;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n) {
    if (reserve(b, n))
        return ERR_TOOBIG;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

char *buf_room(buf_t *b, size_t n) {
    if (reserve(b, n))
        return NULL;
    return b->data + b->len;
}

void buf_commit(buf_t *b, size_t k) {
    b->len += k;
    b->data[b->len] = '\0';
}

int buf_puts(buf_t *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_vprintf(buf_t *b, const char *fmt, va_list ap) {
    /* one pass into the spare room; a second only when it did not fit */
    if (!b->data && reserve(b, 0) != 0) /* allocates the first block */
        return ERR_TOOBIG;
    size_t room = b->alloc - b->len;
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(b->data + b->len, room, fmt, cp);
    va_end(cp);
    if (n < 0) {
        b->data[b->len] = '\0';
        return ERR_INVAL;
    }
    if ((size_t)n < room) {
        if (b->len + (size_t)n > b->max) {
            b->data[b->len] = '\0';
            return ERR_TOOBIG;
        }
        b->len += (size_t)n;
        return 0;
    }
    b->data[b->len] = '\0';
    if (reserve(b, (size_t)n))
        return ERR_TOOBIG;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* 1 for the bytes a JSON string cannot hold as they are: controls, DEL, '"' and '\\'. */
static const unsigned char json_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,          1,          1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

int buf_json_str(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    /* the common case, nothing to escape: one append */
    size_t i = 0;
    while (i < n && !json_escape[(unsigned char)s[i]])
        i++;
    if (i == n) {
        if (reserve(b, n + 2))
            return ERR_TOOBIG;
        char *p = b->data + b->len;
        p[0] = '"';
        memcpy(p + 1, s, n);
        p[n + 1] = '"';
        p[n + 2] = '\0';
        b->len += n + 2;
        return 0;
    }
    int rc = buf_append(b, "\"", 1);
    size_t run = 0; /* start of the current run of characters that need no escape */
    for (; rc == 0 && i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : 0;
        if (i < n && !json_escape[c])
            continue;
        if (i > run)
            rc = buf_append(b, s + run, i - run);
        run = i + 1;
        if (rc || i == n)
            break;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = buf_append(b, e, 2);
        } else if (c == '\n') {
            rc = buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            rc = buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            rc = buf_append(b, "\\t", 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 6);
        }
    }
    if (rc == 0)
        rc = buf_append(b, "\"", 1);
    if (rc) { /* all or nothing */
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

char *buf_json_raw(char *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    *out++ = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!json_escape[c])
            continue;
        memcpy(out, s + run, i - run);
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        if (c == '"' || c == '\\') {
            *out++ = (char)c;
        } else if (c == '\n') {
            *out++ = 'n';
        } else if (c == '\r') {
            *out++ = 'r';
        } else if (c == '\t') {
            *out++ = 't';
        } else {
            memcpy(out, "u00", 3);
            out[3] = hex[c >> 4];
            out[4] = hex[c & 15];
            out += 5;
        }
    }
    memcpy(out, s + run, n - run);
    out += n - run;
    *out++ = '"';
    return out;
}

char *buf_steal(buf_t *b, size_t *len) {
    char *p = b->data ? b->data : xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

void buf_consume(buf_t *b, size_t n) {
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
