/*
 * test_router: matching a method and a path against a routes[] table: exact segments, {param}
 * segments, 404 versus 405 with the Allow list, HEAD answered by GET routes.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "http/router.h"

static void h(struct http_req *req) { (void)req; }

enum {
    T_ROOT,
    T_HEALTH,
    T_HEALTH_DB,
    T_RUNS_GET,
    T_RUNS_POST,
    T_RUN_GET,
    T_RUN_DELETE,
    T_RUN_APPROVE,
    T_ARTIFACT,
    T_LOGLEVEL_PUT,
    T_WEBHOOK,
    T__COUNT
};

static const struct route routes[] = {
    [T_ROOT] = {"GET", "/", h, 0, 0},
    [T_HEALTH] = {"GET", "/health", h, 0, 0},
    [T_HEALTH_DB] = {"GET", "/health/db", h, 0, 0},
    [T_RUNS_GET] = {"GET", "/v1/runs", h, R_AUTH, 0},
    [T_RUNS_POST] = {"POST", "/v1/runs", h, R_AUTH | R_JSON, 1},
    [T_RUN_GET] = {"GET", "/v1/runs/{run_id}", h, R_AUTH, 0},
    [T_RUN_DELETE] = {"DELETE", "/v1/runs/{run_id}", h, R_AUTH, 0},
    [T_RUN_APPROVE] = {"POST", "/v1/runs/{run_id}/approve", h, R_AUTH | R_JSON, 2},
    [T_ARTIFACT] = {"GET", "/v1/runs/{run_id}/artifacts/{name}", h, R_AUTH, 0},
    [T_LOGLEVEL_PUT] = {"PUT", "/admin/log-level", h, R_AUTH | R_JSON, 0},
    [T_WEBHOOK] = {"POST", "/v1/webhooks/sora", h, R_WEBHOOK | R_RAW, 0},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static struct route_match m;

static int match(const char *method, const char *path) {
    memset(&m, 0x5a, sizeof m); /* nothing may be read before it is written */
    return router_match(routes, NROUTES, method, path, strlen(path), &m);
}

static void expect_route(const char *method, const char *path, int want) {
    int rc = match(method, path);
    cr_assert_eq(rc, 0, "%s %s: rc %d", method, path, rc);
    cr_assert_eq(m.route, &routes[want], "%s %s matched %s %s", method, path, m.route->method,
                 m.route->pattern);
}

static void expect_404(const char *method, const char *path) {
    cr_assert_eq(match(method, path), ERR_NOTFOUND, "%s '%s' is not a 404", method, path);
}

/* Expects 405 with exactly the methods of want (comma-separated, any order). */
static void expect_405(const char *method, const char *path, const char *want, int route) {
    cr_assert_eq(match(method, path), ERR_METHOD, "%s %s is not a 405", method, path);
    cr_assert_eq(m.route, &routes[route], "%s %s: m->route is not the path's route", method, path);
    int nwant = 0, nhave = 0;
    char w[96];
    snprintf(w, sizeof w, "%s", want);
    for (char *save, *tok = strtok_r(w, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        nwant++;
        bool found = false;
        char a[96];
        snprintf(a, sizeof a, "%s", m.allow);
        for (char *s2, *t2 = strtok_r(a, ", ", &s2); t2; t2 = strtok_r(NULL, ", ", &s2))
            found = found || strcmp(t2, tok) == 0;
        cr_assert(found, "%s %s: Allow '%s' lacks %s", method, path, m.allow, tok);
    }
    char a[96];
    snprintf(a, sizeof a, "%s", m.allow);
    for (char *s2, *t2 = strtok_r(a, ", ", &s2); t2; t2 = strtok_r(NULL, ", ", &s2))
        nhave++;
    cr_assert_eq(nhave, nwant, "%s %s: Allow is '%s', want '%s'", method, path, m.allow, want);
}

Test(router, exact_routes) {
    expect_route("GET", "/health", T_HEALTH);
    cr_assert_eq(m.nparams, 0);
    expect_route("GET", "/health/db", T_HEALTH_DB);
    expect_route("GET", "/v1/runs", T_RUNS_GET);
    expect_route("POST", "/v1/runs", T_RUNS_POST);
    expect_route("PUT", "/admin/log-level", T_LOGLEVEL_PUT);
    expect_route("POST", "/v1/webhooks/sora", T_WEBHOOK);
    expect_route("GET", "/", T_ROOT);
}

Test(router, near_misses_are_404) {
    expect_404("GET", "/healthz");
    expect_404("GET", "/healt");
    expect_404("GET", "/Health");
    expect_404("GET", "/health/");
    expect_404("GET", "//health");
    expect_404("GET", "/health/db/x");
    expect_404("GET", "/health//db");
    expect_404("GET", "health");
    expect_404("GET", "");
    expect_404("GET", "//");
    expect_404("GET", "/v1");
    expect_404("GET", "/v1/");
    expect_404("POST", "/v1/webhooks/sora/");
    expect_404("POST", "/v1/webhooks");
    expect_404("DELETE", "/nope");
}

Test(router, params_are_bound) {
    expect_route("GET", "/v1/runs/3f2b8c1e-1111-4222-8333-444455556666", T_RUN_GET);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(m.params[0].n, 36);
    cr_assert_eq(strncmp(m.params[0].s, "3f2b8c1e-1111-4222-8333-444455556666", 36), 0);

    expect_route("POST", "/v1/runs/abc/approve", T_RUN_APPROVE);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(m.params[0].n, 3);
    cr_assert_eq(strncmp(m.params[0].s, "abc", 3), 0);

    const char *path = "/v1/runs/r-1/artifacts/final.mp4";
    cr_assert_eq(match("GET", path), 0);
    cr_assert_eq(m.route, &routes[T_ARTIFACT]);
    cr_assert_eq(m.nparams, 2);
    cr_assert_eq(m.params[0].s, path + 9, "params point into the path");
    cr_assert_eq(m.params[0].n, 3);
    cr_assert_eq(m.params[1].s, path + 23);
    cr_assert_eq(m.params[1].n, 9);

    expect_route("GET", "/v1/runs/x", T_RUN_GET);
    cr_assert_eq(m.params[0].n, 1, "a one-character segment");
    expect_route("GET", "/v1/runs/%2F..%20", T_RUN_GET);
    cr_assert_eq(m.params[0].n, 8, "bound raw, not decoded");
}

Test(router, params_do_not_match_empty_or_several_segments) {
    expect_404("GET", "/v1/runs/abc/");
    expect_404("GET", "/v1/runs//approve");
    expect_404("POST", "/v1/runs//approve");
    expect_404("POST", "/v1/runs/abc/approve/");
    expect_404("GET", "/v1/runs/a/b");
    expect_404("GET", "/v1/runs/r1/artifacts/");
    expect_404("GET", "/v1/runs/r1/artifacts//");
    expect_404("GET", "/v1/runs//artifacts/x");
    expect_404("GET", "/v1/runs/r1/artifacts/a/b");
    /* "/v1/runs/" is neither /v1/runs (trailing slash) nor /v1/runs/{run_id} (empty segment) */
    expect_404("GET", "/v1/runs/");
    expect_404("POST", "/v1/runs/");
}

Test(router, path_length_is_respected) {
    const char *buf = "/health?verbose=1";
    cr_assert_eq(router_match(routes, NROUTES, "GET", buf, 7, &m), 0, "the query is not part");
    cr_assert_eq(m.route, &routes[T_HEALTH]);
    char raw[16];
    memcpy(raw, "/health/dbXXXXX", 16);
    cr_assert_eq(router_match(routes, NROUTES, "GET", raw, 10, &m), 0);
    cr_assert_eq(m.route, &routes[T_HEALTH_DB]);
    cr_assert_eq(router_match(routes, NROUTES, "GET", raw, 6, &m), ERR_NOTFOUND, "'/healt'");
    const char *p = "/v1/runs/abcdef";
    cr_assert_eq(router_match(routes, NROUTES, "GET", p, 12, &m), 0);
    cr_assert_eq(m.params[0].n, 3, "the param stops at plen");
}

Test(router, method_not_allowed_on_get_route) {
    expect_405("POST", "/health", "GET, HEAD", T_HEALTH);
    cr_assert_str_eq(m.allow, "GET, HEAD");
    expect_405("DELETE", "/health/db", "GET, HEAD", T_HEALTH_DB);
    cr_assert_str_eq(m.allow, "GET, HEAD");
    expect_405("POST", "/", "GET, HEAD", T_ROOT);
}

Test(router, method_not_allowed_lists_every_method_of_the_path) {
    expect_405("PUT", "/v1/runs", "GET, HEAD, POST", T_RUNS_GET);
    expect_405("PATCH", "/v1/runs/abc", "GET, HEAD, DELETE", T_RUN_GET);
    expect_405("POST", "/v1/runs/abc", "GET, HEAD, DELETE", T_RUN_GET);
    expect_405("GET", "/v1/runs/abc/approve", "POST", T_RUN_APPROVE);
    expect_405("HEAD", "/v1/runs/abc/approve", "POST", T_RUN_APPROVE);
    expect_405("GET", "/admin/log-level", "PUT", T_LOGLEVEL_PUT);
    expect_405("GET", "/v1/webhooks/sora", "POST", T_WEBHOOK);
    expect_405("get", "/health", "GET, HEAD", T_HEALTH); /* methods are case-sensitive */
}

Test(router, head_is_answered_by_get_routes) {
    expect_route("HEAD", "/health", T_HEALTH);
    expect_route("HEAD", "/v1/runs", T_RUNS_GET);
    expect_route("HEAD", "/v1/runs/abc", T_RUN_GET);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(strncmp(m.params[0].s, "abc", 3), 0);
    expect_route("HEAD", "/", T_ROOT);
}

Test(router, first_matching_route_wins) {
    /* Same pattern twice: the table order decides; other methods still see every route. */
    const struct route t[] = {
        {"GET", "/x/{id}", h, 0, 0},
        {"GET", "/x/special", h, 0, 0},
        {"POST", "/x/special", h, 0, 0},
    };
    const char *p = "/x/special";
    cr_assert_eq(router_match(t, 3, "GET", p, strlen(p), &m), 0);
    cr_assert_eq(m.route, &t[0]);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(router_match(t, 3, "POST", p, strlen(p), &m), 0);
    cr_assert_eq(m.route, &t[2]);
    cr_assert_eq(m.nparams, 0, "params of an earlier candidate do not leak");
    cr_assert_eq(router_match(t, 3, "PUT", p, strlen(p), &m), ERR_METHOD);
    cr_assert_eq(m.route, &t[0]);
    cr_assert_str_eq(m.allow, "GET, HEAD, POST", "no duplicates");
}

Test(router, empty_table) {
    cr_assert_eq(router_match(routes, 0, "GET", "/health", 7, &m), ERR_NOTFOUND);
}
