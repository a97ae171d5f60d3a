/*
 * pgtest: per-test isolation on a shared Postgres server. The Postgres tests run against one
 * throwaway server (scripts/pg-test.sh) with Criterion's parallel workers; each test gets its
 * own schema, so every test starts from an empty database exactly as with a fresh SQLite file.
 */
#ifndef MYLOWARE_TESTS_PGTEST_H
#define MYLOWARE_TESTS_PGTEST_H

#include <stdbool.h>
#include <stddef.h>

/* True for a postgres:// or postgresql:// URL. */
bool pgtest_is_pg(const char *url);
/* For a Postgres URL: creates a new empty schema on that server and writes to out the URL whose
 * connections use it (options=-csearch_path=..., application_name=the schema); asserts on failure.
 * Other URLs are copied. In a build without Postgres, a Postgres URL fails the test. */
void pgtest_isolate(const char *url, char *out, size_t cap);
/* The schema the last pgtest_isolate made; also the application_name of the connections of
 * its URL (to find them in pg_stat_activity). */
const char *pgtest_schema(void);
/* Runs one SQL statement on the Postgres URL and returns the first column of the first row as
 * a number (-1 when there is no row); asserts on failure. */
long long pgtest_scalar(const char *url, const char *sql);

/* The first column of the first row as text into out (for failure messages; never asserts). */
void pgtest_text(const char *url, const char *sql, char *out, size_t cap);

#endif
