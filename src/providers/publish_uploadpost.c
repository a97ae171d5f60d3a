/*
 * publish_uploadpost: Upload-Post. POST {base}/api/upload as multipart/form-data (video = the
 * video's public URL, title, user, platform[], tags[]), Authorization: Apikey <key>; an answer
 * with a request_id is still processing and is polled at
 * GET {base}/api/uploadposts/status?request_id=<id>. The post URL is looked for where
 * Upload-Post puts it: results.<platform>.url, then url / post_url / published_url /
 * canonicalUrl / link at the top or under response, data, result, then in the items of
 * results / data / uploads / items. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "providers/impl.h"

static const char *url_in(json_t *o) {
    static const char *keys[] = {"url", "post_url", "published_url", "canonicalUrl", "link"};
    if (!json_is_object(o))
        return NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *u = json_string_value(json_object_get(o, keys[i]));
        if (u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0))
            return u;
    }
    return NULL;
}

static const char *find_url(json_t *j) {
    json_t *results = json_object_get(j, "results");
    if (json_is_object(results)) {
        const char *k;
        json_t *v;
        json_object_foreach(results, k, v) {
            const char *u = url_in(v);
            if (u)
                return u;
        }
    }
    const char *u = url_in(j);
    static const char *nests[] = {"response", "data", "result"};
    for (size_t i = 0; !u && i < 3; i++)
        u = url_in(json_object_get(j, nests[i]));
    static const char *lists[] = {"results", "data", "uploads", "items"};
    for (size_t i = 0; !u && i < 4; i++) {
        json_t *a = json_object_get(j, lists[i]);
        size_t idx;
        json_t *it;
        if (json_is_array(a))
            json_array_foreach(a, idx, it) if (!u) u = url_in(it);
    }
    return u;
}

static bool failed_status(const char *s) {
    static const char *bad[] = {"failed", "error", "rejected", "canceled", "cancelled"};
    for (size_t i = 0; s && i < 5; i++)
        if (strcasecmp(s, bad[i]) == 0)
            return true;
    return false;
}

static void answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct publish_result res = {.st = *st, .status = "failed"};
    char err[500];
    json_t *j = NULL;
    if (st->outcome != PROV_OK)
        goto out;
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    const char *status = NULL;
    static const char *skeys[] = {"status", "state", "processing_status", "result"};
    for (size_t i = 0; !status && i < 4; i++)
        status = json_string_value(json_object_get(j, skeys[i]));
    json_t *success = json_object_get(j, "success");
    if (json_is_false(success) || failed_status(status)) {
        const char *m = json_string_value(json_object_get(j, "message"));
        if (!m)
            m = json_string_value(json_object_get(j, "error"));
        prov_permanent(pc, &res.st, err, sizeof err, "upload failed: %s",
                       m        ? m
                       : status ? status
                                : "success is false");
        goto out;
    }
    res.url = find_url(j);
    res.request_id = json_string_value(json_object_get(j, "request_id"));
    if (res.url) {
        res.status = "published";
    } else if (res.request_id || (pc->arg && status)) {
        res.status = "processing";
        if (!res.request_id)
            res.request_id = pc->arg;
    } else {
        prov_permanent(pc, &res.st, err, sizeof err,
                       "answer has neither a post URL nor a request_id");
    }
out:
    ((publish_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static int upload(providers_t *p, const struct publish_req *req, publish_cb cb, void *ud,
                  prov_call_t **out) {
    if (!req || !req->video_url || !*req->video_url || !req->caption || !cb ||
        (req->ntags && !req->tags) || req->ntags > 32)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_PUBLISH, S_UPLOAD_POST_API_KEY);
    if (!key)
        return prov_fail(p, PK_PUBLISH, answer, (void *)cb, ud, "UPLOAD_POST_API_KEY is not set",
                         out);
    const char *user = req->user && *req->user ? req->user : config_str(p->cfg, S_UPLOAD_POST_USER);
    if (!*user)
        user = "myloware";
    struct http_form_field f[4 + 32];
    size_t n = 0;
    f[n++] = (struct http_form_field){"video", req->video_url};
    f[n++] = (struct http_form_field){"title", req->caption};
    f[n++] = (struct http_form_field){"user", user};
    f[n++] = (struct http_form_field){"platform[]", req->platform ? req->platform : "tiktok"};
    for (size_t i = 0; i < req->ntags; i++)
        f[n++] = (struct http_form_field){"tags[]", req->tags[i] ? req->tags[i] : ""};
    char url[PROV_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/api/upload", p->base[PK_PUBLISH]);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Apikey %s", key);
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .headers = h.v,
                              .form = f,
                              .nform = n,
                              .timeout_ms = 60000,
                              .max_body = PROV_MAX_JSON};
    return prov_send(p, PK_PUBLISH, &hr, answer, (void *)cb, ud, NULL, out);
}

static int status(providers_t *p, const char *request_id, publish_cb cb, void *ud,
                  prov_call_t **out) {
    if (!prov_id_ok(request_id) || !cb)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_PUBLISH, S_UPLOAD_POST_API_KEY);
    if (!key)
        return prov_fail(p, PK_PUBLISH, answer, (void *)cb, ud, "UPLOAD_POST_API_KEY is not set",
                         out);
    char url[PROV_URL_MAX + 200];
    snprintf(url, sizeof url, "%s/api/uploadposts/status?request_id=%s", p->base[PK_PUBLISH],
             request_id);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Apikey %s", key);
    struct http_request hr = {
        .url = url, .headers = h.v, .timeout_ms = 30000, .max_body = PROV_MAX_JSON};
    return prov_send(p, PK_PUBLISH, &hr, answer, (void *)cb, ud, request_id, out);
}

const struct publish_ops publish_uploadpost_ops = {"upload_post", upload, status};
