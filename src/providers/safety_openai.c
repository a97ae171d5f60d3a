/*
 * safety_openai: OpenAI moderation. POST {base}/v1/moderations {"input": text}; the answer's
 * results[0] gives flagged and the categories (the first true one is reported). Timeout
 * SAFETY_TIMEOUT_MS. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "providers/impl.h"

static void answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct safety_result res = {.st = *st};
    char err[300];
    json_t *j = NULL;
    if (st->outcome != PROV_OK)
        goto out;
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    json_t *first = json_array_get(json_object_get(j, "results"), 0);
    json_t *flagged = json_object_get(first, "flagged");
    if (!json_is_object(first) || !json_is_boolean(flagged)) {
        prov_permanent(pc, &res.st, err, sizeof err, "answer has no results[0].flagged");
        goto out;
    }
    res.flagged = json_is_true(flagged);
    json_t *cats = json_object_get(first, "categories");
    const char *k;
    json_t *v;
    if (json_is_object(cats))
        json_object_foreach(cats, k, v) if (json_is_true(v) && !res.category) res.category = k;
    if (res.flagged && !res.category)
        res.category = "unspecified";
out:
    ((safety_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static int check(providers_t *p, const char *text, safety_cb cb, void *ud, prov_call_t **out) {
    if (!text || !cb)
        return ERR_INVAL;
    if (!providers_safety_enabled(p))
        return prov_fail(p, PK_SAFETY, answer, (void *)cb, ud, "safety provider is off", out);
    const char *key = prov_key(p, PK_SAFETY, S_OPENAI_API_KEY);
    if (!key)
        return prov_fail(p, PK_SAFETY, answer, (void *)cb, ud, "OPENAI_API_KEY is not set", out);
    json_t *body = json_pack("{s:s}", "input", text);
    char *t = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!t)
        return ERR_INVAL; /* not UTF-8 */
    char url[PROV_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/moderations", p->base[PK_SAFETY]);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Bearer %s", key);
    prov_header(&h, "Content-Type: application/json");
    int64_t ms = config_int(p->cfg, S_SAFETY_TIMEOUT_MS);
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .headers = h.v,
                              .body = t,
                              .body_len = strlen(t),
                              .timeout_ms = ms,
                              .connect_timeout_ms = ms,
                              .max_body = PROV_MAX_JSON};
    int rc = prov_send(p, PK_SAFETY, &hr, answer, (void *)cb, ud, NULL, out);
    free(t);
    return rc;
}

const struct safety_ops safety_openai_ops = {"openai", check};
