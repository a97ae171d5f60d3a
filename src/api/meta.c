/* meta: /metrics, /openapi.json, and the admin log level. */
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/crypto.h"
#include "core/embed.h"
#include "core/log.h"
#include "core/metrics.h"

void api_field_error(http_req_t *req, const char *field, const char *message) {
    json_t *extra = json_pack("{s:[{s:s,s:s}]}", "fields", "field", field, "message", message);
    http_respond_error(req, 422, "validation_error", "Request validation failed", extra, NULL);
}

static void render_metrics(http_req_t *req) {
    buf_t b;
    buf_init(&b, 64u << 20);
    metrics_render(&b);
    http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    buf_release(&b);
}

void api_metrics(http_req_t *req) {
    app_t *app = req->app;
    const char *token = config_str(app->cfg, S_METRICS_TOKEN);
    if (*token) {
        size_t n = 0;
        const char *auth = http_header(req, "Authorization", &n);
        if (!auth || n < 7 || strncmp(auth, "Bearer ", 7) != 0 ||
            !crypto_ct_equal(auth + 7, n - 7, token, strlen(token))) {
            http_respond_error(req, 401, "unauthorized",
                               auth ? "Invalid metrics token" : "Missing metrics token", NULL,
                               NULL);
            return;
        }
    }
    health_then(req, render_metrics); /* the queue gauges come from the health probe */
}

void api_openapi(http_req_t *req) {
    http_respond(req, 200, "application/json", embed_openapi_json, embed_openapi_json_len(), NULL);
}

static const char *level_names[] = {"debug", "info", "warn", "error"};

static int current_level(void) {
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (log_enabled((enum log_level)i))
            return i;
    return LOG_ERROR;
}

void api_log_level_get(http_req_t *req) {
    http_respond_json(req, 200, json_pack("{s:s}", "level", level_names[current_level()]));
}

void api_log_level_put(http_req_t *req) {
    json_t *v = json_object_get(req->json, "level");
    if (!v) {
        api_field_error(req, "level", "is required");
        return;
    }
    int level = json_is_string(v) ? log_level_parse(json_string_value(v)) : -1;
    if (level < 0) {
        api_field_error(req, "level", "must be one of debug, info, warn, error");
        return;
    }
    log_set_level((enum log_level)level);
    log_warn("api", "log level changed", LF_S("level", level_names[level]),
             LF_S("request_id", req->request_id));
    http_respond_json(req, 200, json_pack("{s:s}", "level", level_names[level]));
}
