/*
 * buf: a growable byte buffer with a hard cap fixed at creation (curl's dynbuf). Limits on
 * request heads, bodies and payloads are enforced by the cap: an append past it fails with
 * ERR_TOOBIG and leaves the buffer unchanged. The data is always NUL-terminated.
 * Not thread-safe; owned by one thread at a time.
 */
#ifndef MYLOWARE_CORE_BUF_H
#define MYLOWARE_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t alloc;
    size_t max; /* hard cap on len */
} buf_t;

void buf_init(buf_t *b, size_t max);
/* Frees the memory; the buffer may be reused after buf_init. */
void buf_release(buf_t *b);
/* Empties the buffer and keeps its memory. */
void buf_reset(buf_t *b);
/* Returns 0 or ERR_TOOBIG (nothing appended). */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. */
int buf_json_str(buf_t *b, const char *s, size_t n);
/* Makes room for n more bytes (and the NUL) without appending: returns where they go, or NULL
 * when len + n would pass the cap (nothing changed). Follow with buf_commit(b, k), k <= n. */
char *buf_room(buf_t *b, size_t n);
/* Counts k bytes written at buf_room()'s pointer as appended. */
void buf_commit(buf_t *b, size_t k);
/* Writes s as a JSON string literal at out, which has room for BUF_JSON_WORST(n) bytes; returns
 * the end. For writers that reserved the worst case with buf_room(). */
#define BUF_JSON_WORST(n) (6 * (n) + 2)
char *buf_json_raw(char *out, const char *s, size_t n);
/* Takes the data out (caller frees; never NULL) and leaves the buffer empty. */
char *buf_steal(buf_t *b, size_t *len);
/* Drops the first n bytes. */
void buf_consume(buf_t *b, size_t n);

#endif
