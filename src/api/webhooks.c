/*
 * webhooks: POST /v1/webhooks/sora (api.md §6). No API key: the Standard Webhooks signature is
 * checked first, on the raw body, before any parsing; then the delivery is stored in the inbox
 * and its job enqueued in one transaction before the 200 (workflow.h wf_sora_delivery). Every
 * answer has exactly the keys status, run_id, task_id, video_index, video_url, error.
 * The legacy envelope (no "object":"event"; ?run_id=, code, msg, data.taskId, data.state,
 * data.info.resultUrls) is accepted too: its result URL is downloaded instead of the content
 * endpoint (through the client's URL guard).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/webhook.h"
#include "workflow/workflow.h"

static void count(const char *provider, const char *outcome) {
    buf_t lb;
    buf_init(&lb, 128);
    metrics_label(&lb, "provider", provider);
    metrics_label(&lb, "outcome", outcome);
    metrics_add(M_WEBHOOKS, lb.data, 1);
    buf_release(&lb);
}

static json_t *ack(const char *status, const char *run_id, const char *task_id, int video_index,
                   const char *error) {
    return json_pack("{s:s,s:s?,s:s?,s:o,s:n,s:s?}", "status", status, "run_id",
                     run_id && *run_id ? run_id : NULL, "task_id",
                     task_id && *task_id ? task_id : NULL, "video_index",
                     video_index >= 0 ? json_integer(video_index) : json_null(), "video_url",
                     "error", error);
}

/* A header value copied NUL-terminated (NULL when absent or too long). */
static char *header(http_req_t *req, const char *name, size_t max) {
    size_t n = 0;
    const char *v = http_header(req, name, &n);
    return v && n <= max ? xstrndup(v, n) : NULL;
}

struct delivery {
    http_req_t *req;
    inbox_item_t w;
    bool failed;
    char *result_url;
    char for_run[RUN_ID_LEN];
    enum wf_ack ack;
    int video_index;
    char run_status[RUN_STATUS_MAX];
};

static int delivery_unit(store_tx_t *tx, void *arg) {
    struct delivery *d = arg;
    return wf_sora_delivery(tx, &d->w, d->failed, d->result_url, d->for_run[0] ? d->for_run : NULL,
                            &d->ack, &d->video_index, d->run_status, sizeof d->run_status);
}

static void delivery_done(void *arg, int rc) {
    struct delivery *d = arg;
    http_req_t *req = d->req;
    app_t *app = req->app;
    if (rc) {
        log_error("webhook", "cannot store a delivery", LF_S("request_id", req->request_id),
                  LF_S("error", err_name(rc)));
        count("sora", "error");
        http_respond_err(req, ERR_INTERNAL, "Internal server error");
    } else {
        const char *run_id = d->w.run_id, *task = d->w.task_id;
        char msg[120];
        switch (d->ack) {
        case WF_ACCEPTED:
            count("sora", "accepted");
            workflow_kick(app->workflow);
            http_respond_json(req, 200, ack("accepted", run_id, task, d->video_index, NULL));
            break;
        case WF_DUPLICATE:
            count("sora", "duplicate");
            http_respond_json(req, 200, ack("duplicate", NULL, task, -1, NULL));
            break;
        case WF_IGNORED_UNKNOWN:
            count("sora", "early");
            http_respond_json(req, 200,
                              ack("ignored", NULL, task, -1, "Unknown task_id (no run mapping)"));
            break;
        case WF_IGNORED_TERMINAL:
            count("sora", "ignored");
            snprintf(msg, sizeof msg, "Run is %s", d->run_status);
            http_respond_json(req, 200, ack("ignored", run_id, task, d->video_index, msg));
            break;
        case WF_IGNORED_TYPE:
            count("sora", "ignored");
            http_respond_json(req, 200, ack("ignored", NULL, task, -1, NULL));
            break;
        }
    }
    inbox_item_release(&d->w);
    free(d->result_url);
    free(d);
}

void api_webhook_sora(http_req_t *req) {
    app_t *app = req->app;
    const char *secret = config_str(app->cfg, S_OPENAI_WEBHOOK_SECRET);
    if (!*secret) {
        count("sora", "error");
        http_respond_error(req, 500, "internal_error", "OPENAI_WEBHOOK_SECRET is not configured",
                           NULL, NULL);
        return;
    }
    char *id = header(req, "webhook-id", 255), *ts = header(req, "webhook-timestamp", 32),
         *sig = header(req, "webhook-signature", 8192);
    const char *why = NULL;
    int rc = webhook_verify_standard(secret, id, ts, sig, req->body.data ? req->body.data : "",
                                     req->body.len, clock_now_ms() / 1000, &why);
    free(ts);
    free(sig);
    if (rc) {
        free(id);
        count("sora", "invalid_signature");
        if (rc == ERR_INVAL) {
            http_respond_error(req, 500, "internal_error", "OPENAI_WEBHOOK_SECRET is not usable",
                               NULL, NULL);
            return;
        }
        log_warn("webhook", "delivery refused", LF_S("provider", "sora"), LF_S("reason", why),
                 LF_S("request_id", req->request_id));
        http_respond_error(req, 401, "invalid_signature", "Invalid webhook signature", NULL, NULL);
        return;
    }
    json_t *j = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        free(id);
        count("sora", "bad_request");
        http_respond_error(req, 400, "invalid_json", "Invalid JSON", NULL, NULL);
        return;
    }
    const char *object = json_string_value(json_object_get(j, "object"));
    bool legacy = !object || strcmp(object, "event") != 0;
    const char *type = NULL, *task = NULL, *result_url = NULL;
    bool completed = false, failed = false;
    char for_run[64] = "";
    json_t *data = json_object_get(j, "data");
    if (legacy) {
        int n = http_query(req, "run_id", for_run, sizeof for_run);
        const char *detail = n < 0 ? "Missing run_id query parameter"
                             : !crypto_is_uuid(for_run, (size_t)n) ? "Invalid run_id"
                                                                   : NULL;
        task = json_string_value(json_object_get(data, "taskId"));
        if (!detail && (!task || !*task))
            detail = "Missing data.taskId";
        if (detail) {
            json_decref(j);
            free(id);
            count("sora", "bad_request");
            http_respond_error(req, 400, "bad_request", detail, NULL, NULL);
            return;
        }
        json_t *code = json_object_get(j, "code");
        const char *state = json_string_value(json_object_get(data, "state"));
        failed = (code && (!json_is_integer(code) || json_integer_value(code) != 200)) ||
                 (state && strcmp(state, "fail") == 0);
        json_t *urls = json_object_get(json_object_get(data, "info"), "resultUrls");
        json_t *parsed = json_is_string(urls) ? json_loads(json_string_value(urls), 0, NULL) : NULL;
        json_t *first = json_array_get(parsed ? parsed : urls, 0);
        static char url_copy[2048];
        url_copy[0] = '\0';
        if (json_is_string(first) && json_string_length(first) < sizeof url_copy)
            snprintf(url_copy, sizeof url_copy, "%s", json_string_value(first));
        json_decref(parsed);
        result_url = url_copy[0] ? url_copy : NULL;
        completed = !failed;
        type = failed ? "video.failed" : "video.completed";
        for (char *p = for_run; *p; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    } else {
        type = json_string_value(json_object_get(j, "type"));
        completed = type && strcmp(type, "video.completed") == 0;
        failed = type && strcmp(type, "video.failed") == 0;
        task = json_string_value(json_object_get(data, "id"));
    }
    if (!completed && !failed) {
        json_decref(j);
        free(id);
        count("sora", "ignored");
        http_respond_json(req, 200, ack("ignored", NULL, NULL, -1, NULL));
        return;
    }
    if (!task || !*task || strlen(task) >= sizeof(((inbox_item_t *)0)->task_id)) {
        json_decref(j);
        free(id);
        count("sora", "bad_request");
        http_respond_error(req, 400, "bad_request", "Missing data.id", NULL, NULL);
        return;
    }
    struct delivery *d = xcalloc(1, sizeof *d);
    d->req = req;
    d->failed = failed;
    d->result_url = result_url ? xstrdup(result_url) : NULL;
    snprintf(d->for_run, sizeof d->for_run, "%.36s", for_run);
    d->video_index = -1;
    snprintf(d->w.provider, sizeof d->w.provider, "sora");
    snprintf(d->w.delivery_id, sizeof d->w.delivery_id, "%s", id);
    snprintf(d->w.event_type, sizeof d->w.event_type, "%s", type);
    snprintf(d->w.task_id, sizeof d->w.task_id, "%s", task);
    d->w.payload = xstrndup(req->body.data ? req->body.data : "", req->body.len);
    d->w.received_at = clock_now_ms();
    json_decref(j);
    free(id);
    store_submit(app->store, delivery_unit, d, delivery_done);
}

/* ---- POST /v1/webhooks/remotion?run_id= (render callbacks, HMAC-SHA512) -------------------------
 */

static json_t *render_ack(const char *status, const char *run_id, const char *error,
                          const char *url) {
    return json_pack("{s:s,s:s?,s:s?,s:s?}", "status", status, "run_id", run_id, "error", error,
                     "output_url", url && *url ? url : NULL);
}

struct callback {
    http_req_t *req;
    char run_id[RUN_ID_LEN];
    char *job_id, *output_url, *error, *body;
    bool ok;
    struct wf_render_ack ack;
};

static int callback_unit(store_tx_t *tx, void *arg) {
    struct callback *c = arg;
    return wf_render_callback(tx, c->run_id, c->job_id, c->ok, c->output_url, c->error, c->body,
                              &c->ack);
}

static void callback_done(void *arg, int rc) {
    struct callback *c = arg;
    http_req_t *req = c->req;
    app_t *app = req->app;
    char msg[300];
    switch (rc) {
    case 0:
        if (c->ack.ignored) { /* a cancelled, rejected or failed run (workflow.md §2) */
            count("remotion", "ignored");
            http_respond_json(req, 200, render_ack("ignored", c->run_id, NULL, NULL));
            break;
        }
        count("remotion", c->ack.repeat ? "duplicate" : "accepted");
        if (!c->ack.repeat)
            workflow_kick(app->workflow);
        http_respond_json(req, 200,
                          render_ack("accepted", c->run_id, c->ok ? NULL : c->error,
                                     c->ack.output_url[0] ? c->ack.output_url : NULL));
        break;
    case ERR_NOTFOUND:
        count("remotion", "bad_request");
        http_respond_error(req, 404, "not_found", "Run not found", NULL, NULL);
        break;
    case ERR_INVAL:
        count("remotion", "bad_request");
        snprintf(msg, sizeof msg, "Unknown job_id: %.200s", c->job_id);
        http_respond_error(req, 400, "bad_request", msg, NULL, NULL);
        break;
    case ERR_CONFLICT:
        count("remotion", "conflict");
        snprintf(msg, sizeof msg, "Run %s is in status %s, expected awaiting_render", c->run_id,
                 c->ack.status);
        http_respond_error(req, 409, "conflict", msg, NULL, NULL);
        break;
    default:
        count("remotion", "error");
        http_respond_err(req, ERR_INTERNAL, "Internal server error");
    }
    free(c->job_id);
    free(c->output_url);
    free(c->error);
    free(c->body);
    free(c);
}

void api_webhook_remotion(http_req_t *req) {
    app_t *app = req->app;
    const char *secret = config_str(app->cfg, S_REMOTION_WEBHOOK_SECRET);
    if (!*secret) {
        count("remotion", "error");
        http_respond_error(req, 500, "internal_error", "REMOTION_WEBHOOK_SECRET is not configured",
                           NULL, NULL);
        return;
    }
    char *sig = header(req, "X-Remotion-Signature", 1024);
    if (!sig)
        sig = header(req, "webhook-signature", 1024);
    const char *why = NULL;
    int rc = sig ? webhook_verify_remotion(secret, sig, req->body.data ? req->body.data : "",
                                           req->body.len, &why)
                 : ERR_BADSIG;
    if (rc) {
        count("remotion", "invalid_signature");
        log_warn("webhook", "delivery refused", LF_S("provider", "remotion"),
                 LF_S("reason", sig ? why : "missing"), LF_S("request_id", req->request_id));
        http_respond_error(req, 401, "invalid_signature",
                           sig ? "Invalid webhook signature" : "Missing webhook signature", NULL,
                           NULL);
        free(sig);
        return;
    }
    free(sig);
    char run_id[64];
    int n = http_query(req, "run_id", run_id, sizeof run_id);
    if (n <= 0) {
        count("remotion", "bad_request");
        http_respond_error(req, 400, "bad_request", "Missing run_id query parameter", NULL, NULL);
        return;
    }
    if (!crypto_is_uuid(run_id, (size_t)n)) {
        count("remotion", "bad_request");
        http_respond_error(req, 400, "bad_request", "Invalid run_id", NULL, NULL);
        return;
    }
    json_t *j = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        count("remotion", "bad_request");
        http_respond_error(req, 400, "invalid_json", "Invalid JSON", NULL, NULL);
        return;
    }
    const char *job = json_string_value(json_object_get(j, "job_id"));
    if (!job)
        job = json_string_value(json_object_get(j, "id"));
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *url = json_string_value(json_object_get(j, "output_url"));
    if (!url)
        url = json_string_value(json_object_get(j, "url"));
    bool ok = status && (strcmp(status, "done") == 0 || strcmp(status, "completed") == 0);
    bool bad = status && (strcmp(status, "error") == 0 || strcmp(status, "failed") == 0);
    /* An over-long job_id goes on: it is no job of the run's, so the unit answers 404 for an
     * unknown run, else 400 "Unknown job_id: <its first 200 characters>" (api.md §6). */
    if (!job || !*job || (!ok && !bad) || (ok && (!url || strlen(url) > 2000))) {
        /* the detail before the body goes: job points into it */
        const char *detail = !job || !*job ? "Missing job_id"
                             : !ok && !bad ? "Unknown status"
                             : !url        ? "Missing output_url"
                                           : "Invalid output_url";
        json_decref(j);
        count("remotion", "bad_request");
        http_respond_error(req, 400, "bad_request", detail, NULL, NULL);
        return;
    }
    struct callback *c = xcalloc(1, sizeof *c);
    c->req = req;
    for (int i = 0; i < n; i++)
        c->run_id[i] =
            (char)(run_id[i] >= 'A' && run_id[i] <= 'F' ? run_id[i] - 'A' + 'a' : run_id[i]);
    c->job_id = xstrdup(job);
    c->output_url = url ? xstrdup(url) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    c->error = xstrndup(e ? e : "", e ? strnlen(e, 500) : 0);
    c->ok = ok;
    c->body = xstrndup(req->body.data ? req->body.data : "", req->body.len);
    json_decref(j);
    store_submit(app->store, callback_unit, c, callback_done);
}
