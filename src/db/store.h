/*
 * store: the database behind one opaque interface; only the backend files (store_sqlite.c,
 * later store_postgres.c) contain SQL. A backend is an ops table chosen from DATABASE_URL;
 * adding one is one file and one line in store.c.
 *
 * This first cut holds what the foundation needs (open, migrations, the health probe); the
 * queue and run state grow here.
 * Thread safety: every function may be called from any thread; a backend serialises its own
 * connection use.
 */
#ifndef MYLOWARE_DB_STORE_H
#define MYLOWARE_DB_STORE_H

#include "core/buf.h"
#include "core/config.h"

typedef struct store store_t;

struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    int (*open)(const config_t *cfg, store_t **out, buf_t *err);
    int (*migrate)(store_t *s, int *from, int *to, buf_t *err);
    int (*schema_version)(store_t *s, int *out);
    int (*probe)(store_t *s, buf_t *err);
    void (*close)(store_t *s);
};

struct store {
    const struct store_ops *ops;
};

/* Opens the database named by DATABASE_URL (does not migrate). */
int store_open(const config_t *cfg, store_t **out, buf_t *err);
/* Applies every pending migration in one transaction; *from and *to get the versions. */
int store_migrate(store_t *s, int *from, int *to, buf_t *err);
int store_schema_version(store_t *s, int *out);
/* A real probe: a write in a transaction. Blocking: call it off the loop. */
int store_probe(store_t *s, buf_t *err);
const char *store_backend(const store_t *s);
void store_close(store_t *s);

/* The migrations in schema.sql: count, and the highest version. Pure. */
struct migration {
    int version;
    char description[128];
    const char *sql; /* points into the embedded schema */
    size_t len;
};
int store_migrations(struct migration *out, int max);

#endif
