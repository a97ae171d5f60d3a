/*
 * mem: allocation that never returns NULL. Running out of memory aborts with a message
 * (as redis zmalloc does): every caller can then treat allocation as infallible.
 */
#ifndef MYLOWARE_CORE_MEM_H
#define MYLOWARE_CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
