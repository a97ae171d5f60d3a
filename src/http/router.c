/* router: linear match over a small table; patterns are compared segment by segment. */
#include "http/router.h"

#include <stdbool.h>
#include <string.h>

#include "core/err.h"

static bool match_pattern(const char *pat, const char *path, size_t plen, struct route_match *m) {
    const char *p = path, *end = path + plen;
    m->nparams = 0;
    while (*pat) {
        if (p >= end || *pat != '/' || *p != '/')
            return false;
        pat++;
        p++;
        const char *seg_end = memchr(p, '/', (size_t)(end - p));
        if (!seg_end)
            seg_end = end;
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            if (seg_end == p || m->nparams >= ROUTE_MAX_PARAMS)
                return false;
            m->params[m->nparams].s = p;
            m->params[m->nparams].n = (size_t)(seg_end - p);
            m->nparams++;
            pat = close + 1;
        } else {
            const char *pe = strchr(pat, '/');
            size_t n = pe ? (size_t)(pe - pat) : strlen(pat);
            if ((size_t)(seg_end - p) != n || memcmp(pat, p, n) != 0)
                return false;
            pat += n;
        }
        p = seg_end;
    }
    return p == end;
}

static void allow_add(char *allow, size_t cap, const char *method) {
    if (strstr(allow, method)) /* methods are distinct words: GET, HEAD, POST, ... */
        return;
    size_t len = strlen(allow), mlen = strlen(method), sep = len ? 2 : 0;
    if (len + sep + mlen >= cap)
        return;
    memcpy(allow + len, ", ", sep);
    memcpy(allow + len + sep, method, mlen + 1);
}

int router_match(const struct route *routes, size_t n, const char *method, const char *path,
                 size_t plen, struct route_match *m) {
    bool head = strcmp(method, "HEAD") == 0;
    bool path_known = false;
    struct route_match tmp;
    /* the usual case first: the first route of the path and the method (no Allow needed) */
    for (size_t i = 0; i < n; i++) {
        if (!match_pattern(routes[i].pattern, path, plen, &tmp))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0 ||
            (head && strcmp(routes[i].method, "GET") == 0)) {
            tmp.route = &routes[i];
            tmp.allow[0] = '\0';
            *m = tmp;
            return 0;
        }
    }
    if (!path_known)
        return ERR_NOTFOUND;
    /* 405: every method of the path; keep the first route of this path, so metrics and logs can
     * name its pattern */
    m->allow[0] = '\0';
    m->route = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!match_pattern(routes[i].pattern, path, plen, &tmp))
            continue;
        if (!m->route)
            m->route = &routes[i];
        allow_add(m->allow, sizeof m->allow, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(m->allow, sizeof m->allow, "HEAD");
    }
    return ERR_METHOD;
}
