/* pgtest: a fresh schema per test on the shared test server (see pgtest.h). */
#include "support/pgtest.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef WITH_POSTGRES
#include <libpq-fe.h>
#endif

bool pgtest_is_pg(const char *url) {
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

#ifdef WITH_POSTGRES
static PGconn *connect_or_fail(const char *url) {
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        cr_assert_fail("cannot connect to the test Postgres server: %s", msg);
    }
    return c;
}
#endif

static char last_schema[64];

const char *pgtest_schema(void) { return last_schema; }

void pgtest_isolate(const char *url, char *out, size_t cap) {
    if (!pgtest_is_pg(url)) {
        snprintf(out, cap, "%s", url);
        return;
    }
#ifdef WITH_POSTGRES
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char schema[64], sql[128];
    snprintf(schema, sizeof schema, "t_%ld_%u_%ld", (long)getpid(), counter++,
             (long)(ts.tv_nsec % 1000000));
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    cr_assert(ok, "%s: %s", sql, msg);
    snprintf(last_schema, sizeof last_schema, "%s", schema);
    int n = snprintf(out, cap, "%s%coptions=-csearch_path%%3D%s&application_name=%s", url,
                     strchr(url, '?') ? '&' : '?', schema, schema);
    cr_assert(n > 0 && (size_t)n < cap, "URL too long");
#else
    cr_assert_fail("a Postgres test URL in a build without Postgres (make WITH_POSTGRES=1)");
#endif
}

void pgtest_text(const char *url, const char *sql, char *out, size_t cap) {
#ifdef WITH_POSTGRES
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    else
        snprintf(out, cap, "(%s)",
                 PQresultStatus(r) == PGRES_TUPLES_OK ? "no row" : PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
#else
    (void)url;
    (void)sql;
    snprintf(out, cap, "(no Postgres in this build)");
#endif
}

long long pgtest_scalar(const char *url, const char *sql) {
#ifdef WITH_POSTGRES
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
    long long v = ok && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                      : -1;
    PQclear(r);
    PQfinish(c);
    cr_assert(ok, "%s: %s", sql, msg);
    return v;
#else
    (void)url;
    (void)sql;
    cr_assert_fail("pgtest_scalar in a build without Postgres");
    return -1;
#endif
}
