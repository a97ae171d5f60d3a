/*
 * router: matches a method and a path against one table of routes. A pattern is a path whose
 * segments may be `{name}` (any non-empty segment, bound as a parameter). GET routes also
 * answer HEAD. A path that matches some pattern but not the method is a 405 with the allowed
 * methods. Patterns are what metrics and logs show; never the raw path. Pure; any thread.
 */
#ifndef MYLOWARE_HTTP_ROUTER_H
#define MYLOWARE_HTTP_ROUTER_H

#include <stddef.h>

#define ROUTE_MAX_PARAMS 4

struct http_req;
typedef void (*route_fn)(struct http_req *req);

/* Route flags: what the dispatcher does before the handler (api.md §1 processing order). */
enum route_flags {
    R_AUTH = 1,    /* X-API-Key required */
    R_JSON = 2,    /* a body must be JSON (415/400); an empty body is {} */
    R_WEBHOOK = 4, /* body cap WEBHOOK_MAX_BODY_BYTES instead of MAX_BODY_BYTES */
    R_RAW = 8,     /* keep the raw body (signatures), no JSON parsing by the dispatcher */
};

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/runs/{id}" */
    route_fn fn;
    int flags;
    int rate_class; /* index into the server's limiters; 0: none */
};

struct route_match {
    const struct route *route;
    int nparams;
    struct {
        const char *s; /* points into the matched path */
        size_t n;
    } params[ROUTE_MAX_PARAMS];
    char allow[96]; /* on ERR_METHOD: "GET, HEAD, POST" */
};

/*
 * Matches method and path (without the query) against routes[0..n). Returns 0 and fills m;
 * ERR_NOTFOUND; or ERR_METHOD with m->allow set and m->route naming the path's first route
 * (for its pattern only: the method is not its own).
 */
int router_match(const struct route *routes, size_t n, const char *method, const char *path,
                 size_t plen, struct route_match *m);

#endif
