/*
 * sora_openai: OpenAI videos. POST {base}/v1/videos {"model", "prompt", "seconds", "size"},
 * GET {base}/v1/videos/{id} (status, progress, error.message), GET {base}/v1/videos/{id}/content
 * (the MP4, streamed to a file). Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "providers/impl.h"

static void video_answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct sora_result res = {.st = *st};
    char err[400];
    json_t *j = NULL;
    if (st->outcome != PROV_OK)
        goto out;
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!id || !*id) {
        prov_permanent(pc, &res.st, err, sizeof err, "answer has no video id");
        goto out;
    }
    json_t *status = json_object_get(j, "status");
    if (status && !json_is_string(status)) {
        prov_permanent(pc, &res.st, err, sizeof err, "video status is not a string");
        goto out;
    }
    res.video.id = id;
    res.video.status = status ? json_string_value(status) : "queued";
    json_t *progress = json_object_get(j, "progress");
    if (json_is_number(progress)) {
        double v = json_number_value(progress);
        res.video.progress = v < 0 ? 0 : v > 100 ? 100 : (int)v;
    }
    if (strcmp(res.video.status, "completed") == 0)
        res.video.progress = 100;
    json_t *e = json_object_get(j, "error");
    res.video.error =
        json_is_object(e) ? json_string_value(json_object_get(e, "message")) : json_string_value(e);
out:
    ((sora_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static int create(providers_t *p, const struct sora_create_req *req, sora_cb cb, void *ud,
                  prov_call_t **out) {
    if (!req || !req->prompt || !*req->prompt || !cb)
        return ERR_INVAL;
    if (req->seconds != 4 && req->seconds != 8 && req->seconds != 12)
        return ERR_INVAL;
    const char *size = req->size ? req->size : "720x1280";
    if (strcmp(size, "720x1280") != 0 && strcmp(size, "1280x720") != 0)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_SORA, S_OPENAI_API_KEY);
    if (!key)
        return prov_fail(p, PK_SORA, video_answer, (void *)cb, ud, "OPENAI_API_KEY is not set",
                         out);
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(req->model ? req->model : "sora-2"));
    json_object_set_new(body, "prompt", json_string(req->prompt));
    char secs[8];
    snprintf(secs, sizeof secs, "%d", req->seconds);
    json_object_set_new(body, "seconds", json_string(secs));
    json_object_set_new(body, "size", json_string(size));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return ERR_INVAL;
    char url[PROV_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/videos", p->base[PK_SORA]);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Bearer %s", key);
    prov_header(&h, "Content-Type: application/json");
    if (req->idempotency_key && prov_id_ok(req->idempotency_key))
        prov_header(&h, "Idempotency-Key: %s", req->idempotency_key);
    if (req->video_index >= 0)
        prov_header(&h, "X-Myloware-Video-Index: %d", req->video_index);
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .headers = h.v,
                              .body = text,
                              .body_len = strlen(text),
                              .timeout_ms = 60000,
                              .max_body = PROV_MAX_JSON};
    int rc = prov_send(p, PK_SORA, &hr, video_answer, (void *)cb, ud, NULL, out);
    free(text);
    return rc;
}

static int status(providers_t *p, const char *id, sora_cb cb, void *ud, prov_call_t **out) {
    if (!prov_id_ok(id) || !cb)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_SORA, S_OPENAI_API_KEY);
    if (!key)
        return prov_fail(p, PK_SORA, video_answer, (void *)cb, ud, "OPENAI_API_KEY is not set",
                         out);
    char url[PROV_URL_MAX + 160];
    snprintf(url, sizeof url, "%s/v1/videos/%s", p->base[PK_SORA], id);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Bearer %s", key);
    struct http_request hr = {
        .url = url, .headers = h.v, .timeout_ms = 30000, .max_body = PROV_MAX_JSON};
    return prov_send(p, PK_SORA, &hr, video_answer, (void *)cb, ud, id, out);
}

static void download_answer(prov_call_t *pc, const struct http_response *r,
                            struct prov_result *st) {
    struct download_result res = {.st = *st, .path = pc->arg, .bytes = r ? r->downloaded : 0};
    char err[200];
    if (st->outcome == PROV_OK && res.bytes == 0)
        prov_permanent(pc, &res.st, err, sizeof err, "the video content is empty");
    ((download_cb)pc->cb)(&res, pc->ud);
    prov_done(pc);
}

static int download(providers_t *p, const char *id, const char *path, download_cb cb, void *ud,
                    prov_call_t **out) {
    if (!prov_id_ok(id) || !path || !*path || !cb)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_SORA, S_OPENAI_API_KEY);
    if (!key)
        return prov_fail(p, PK_SORA, download_answer, (void *)cb, ud, "OPENAI_API_KEY is not set",
                         out);
    char url[PROV_URL_MAX + 160];
    snprintf(url, sizeof url, "%s/v1/videos/%s/content", p->base[PK_SORA], id);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Bearer %s", key);
    struct http_request hr = {.url = url,
                              .headers = h.v,
                              .timeout_ms = 300000,
                              .connect_timeout_ms = 60000,
                              .download_path = path};
    return prov_send(p, PK_SORA, &hr, download_answer, (void *)cb, ud, path, out);
}

const struct sora_ops sora_openai_ops = {"openai", create, status, download};
