/*
 * render_remotion: a Remotion render service. POST {base}/api/render {run_id, clips,
 * duration_frames, fps, width, height, callback_url, template, texts} (202 {job_id, status}),
 * GET {base}/api/render/{job_id} {status, progress (0..1), output_url, error}. Bearer and
 * x-api-key REMOTION_API_SECRET when it is set. RENDER_PROVIDER=local makes no call (the
 * workflow renders on the pool). Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "providers/impl.h"

static void job_answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct render_result res = {.st = *st};
    char err[400];
    json_t *j = NULL;
    if (st->outcome != PROV_OK) {
        if (r && r->status == 404 && pc->arg) {
            snprintf(err, sizeof err, "render: Job not found: %s", pc->arg);
            res.st.error = err;
        }
        goto out;
    }
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    const char *id = json_string_value(json_object_get(j, "job_id"));
    if (!id)
        id = json_string_value(json_object_get(j, "id"));
    if (!id)
        id = pc->arg; /* status answers may omit it */
    const char *status = json_string_value(json_object_get(j, "status"));
    if (!id || !*id || !status) {
        prov_permanent(pc, &res.st, err, sizeof err, "answer has no %s",
                       !id || !*id ? "job_id" : "status");
        goto out;
    }
    res.job.job_id = id;
    res.job.status = status;
    json_t *progress = json_object_get(j, "progress");
    double v = json_is_number(progress) ? json_number_value(progress) : 0;
    res.job.progress = v < 0 ? 0 : v > 1 ? 1 : v;
    if (strcmp(status, "done") == 0 || strcmp(status, "completed") == 0)
        res.job.progress = 1;
    const char *url = json_string_value(json_object_get(j, "output_url"));
    if (!url)
        url = json_string_value(json_object_get(j, "outputUrl"));
    res.job.output_url = url;
    json_t *e = json_object_get(j, "error");
    res.job.error =
        json_is_object(e) ? json_string_value(json_object_get(e, "message")) : json_string_value(e);
out:
    ((render_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static void auth_headers(providers_t *p, struct prov_headers *h) {
    const char *key = config_str(p->cfg, S_REMOTION_API_SECRET);
    if (!*key && p->fake[PK_RENDER])
        key = "fake";
    if (*key) {
        prov_header(h, "Authorization: Bearer %s", key);
        prov_header(h, "x-api-key: %s", key);
    }
}

static json_t *strings(const char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    return a;
}

static int submit(providers_t *p, const struct render_submit_req *req, render_cb cb, void *ud,
                  prov_call_t **out) {
    if (!req || !req->run_id || !req->clips || req->nclips == 0 || !req->template_name || !cb ||
        req->fps <= 0 || req->width <= 0 || req->height <= 0 || req->duration_frames <= 0)
        return ERR_INVAL;
    if (providers_render_mode(p) != RENDER_REMOTION)
        return prov_fail(p, PK_RENDER, job_answer, (void *)cb, ud,
                         "RENDER_PROVIDER is local (no service)", out);
    json_t *body = json_object();
    json_object_set_new(body, "run_id", json_string(req->run_id));
    json_object_set_new(body, "clips", strings(req->clips, req->nclips));
    json_object_set_new(body, "duration_frames", json_integer(req->duration_frames));
    json_object_set_new(body, "fps", json_integer(req->fps));
    json_object_set_new(body, "width", json_integer(req->width));
    json_object_set_new(body, "height", json_integer(req->height));
    json_object_set_new(body, "callback_url",
                        req->callback_url ? json_string(req->callback_url) : json_null());
    json_object_set_new(body, "template", json_string(req->template_name));
    json_object_set_new(body, "texts", strings(req->texts, req->texts ? req->ntexts : 0));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return ERR_INVAL;
    char url[PROV_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/api/render", p->base[PK_RENDER]);
    struct prov_headers h = {0};
    auth_headers(p, &h);
    prov_header(&h, "Content-Type: application/json");
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .headers = h.v,
                              .body = text,
                              .body_len = strlen(text),
                              .timeout_ms = 30000,
                              .max_body = PROV_MAX_JSON};
    int rc = prov_send(p, PK_RENDER, &hr, job_answer, (void *)cb, ud, NULL, out);
    free(text);
    return rc;
}

static int status(providers_t *p, const char *job_id, render_cb cb, void *ud, prov_call_t **out) {
    if (!prov_id_ok(job_id) || !cb)
        return ERR_INVAL;
    if (providers_render_mode(p) != RENDER_REMOTION)
        return prov_fail(p, PK_RENDER, job_answer, (void *)cb, ud,
                         "RENDER_PROVIDER is local (no service)", out);
    char url[PROV_URL_MAX + 160];
    snprintf(url, sizeof url, "%s/api/render/%s", p->base[PK_RENDER], job_id);
    struct prov_headers h = {0};
    auth_headers(p, &h);
    struct http_request hr = {
        .url = url, .headers = h.v, .timeout_ms = 10000, .max_body = PROV_MAX_JSON};
    return prov_send(p, PK_RENDER, &hr, job_answer, (void *)cb, ud, job_id, out);
}

const struct render_ops render_remotion_ops = {"remotion", submit, status};
