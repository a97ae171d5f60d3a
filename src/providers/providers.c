/*
 * providers: modes and base URLs from the configuration, the registry of ops tables, and the
 * call helper every client uses (see impl.h). Loop thread.
 */
#include "providers/providers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "providers/impl.h"

const char *const provider_kind_names[PK__COUNT] = {"llm",     "sora",   "render",
                                                    "publish", "safety", "notify"};

void providers_self_base_url(const config_t *cfg, int port, char *out, size_t cap) {
    const char *pub = config_str(cfg, S_PUBLIC_BASE_URL);
    if (*pub) {
        size_t n = strlen(pub);
        while (n > 0 && pub[n - 1] == '/')
            n--;
        snprintf(out, cap, "%.*s", (int)n, pub);
    } else {
        snprintf(out, cap, "http://127.0.0.1:%d", port);
    }
}

static void set_base(providers_t *p, enum provider_kind k, const char *url) {
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    snprintf(p->base[k], sizeof p->base[k], "%.*s", (int)n, url);
}

static bool is_http_url(const char *u) {
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

int providers_new(uv_loop_t *loop, const config_t *cfg, http_client_t *client,
                  const char *self_base_url, providers_t **out, buf_t *err) {
    providers_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->cfg = cfg;
    p->client = client;
    snprintf(p->self, sizeof p->self, "%s", self_base_url);
    char fakes[PROV_URL_MAX + 16];
    snprintf(fakes, sizeof fakes, "%s/_fake", p->self);
    bool all_fake = strcmp(config_str(cfg, S_PROVIDERS), "fake") == 0;
    char u[PROV_URL_MAX + 64];

    p->llm = &llm_openai_ops;
    p->mode[PK_LLM] = config_str(cfg, S_LLM_PROVIDER);
    p->fake[PK_LLM] = strcmp(p->mode[PK_LLM], "fake") == 0;
    snprintf(u, sizeof u, "%s/openai/v1", fakes);
    set_base(p, PK_LLM, p->fake[PK_LLM] ? u : config_str(cfg, S_LLM_BASE_URL));

    p->sora = &sora_openai_ops;
    p->mode[PK_SORA] = config_str(cfg, S_SORA_PROVIDER);
    p->fake[PK_SORA] = strcmp(p->mode[PK_SORA], "fake") == 0;
    snprintf(u, sizeof u, "%s/openai", fakes);
    set_base(p, PK_SORA, p->fake[PK_SORA] ? u : config_str(cfg, S_OPENAI_BASE_URL));

    p->safety = &safety_openai_ops;
    p->mode[PK_SAFETY] = config_str(cfg, S_SAFETY_PROVIDER);
    p->fake[PK_SAFETY] = all_fake && strcmp(p->mode[PK_SAFETY], "openai") == 0;
    set_base(p, PK_SAFETY, all_fake ? u : config_str(cfg, S_OPENAI_BASE_URL));

    p->render = &render_remotion_ops;
    p->mode[PK_RENDER] = config_str(cfg, S_RENDER_PROVIDER);
    bool remotion = strcmp(p->mode[PK_RENDER], "remotion") == 0;
    p->fake[PK_RENDER] = remotion && all_fake;
    snprintf(u, sizeof u, "%s/remotion", fakes);
    set_base(p, PK_RENDER, !remotion ? "" : all_fake ? u : config_str(cfg, S_REMOTION_SERVICE_URL));

    p->publish = &publish_uploadpost_ops;
    p->mode[PK_PUBLISH] = config_str(cfg, S_PUBLISH_PROVIDER);
    p->fake[PK_PUBLISH] = strcmp(p->mode[PK_PUBLISH], "fake") == 0;
    snprintf(u, sizeof u, "%s/upload-post", fakes);
    set_base(p, PK_PUBLISH, p->fake[PK_PUBLISH] ? u : config_str(cfg, S_UPLOAD_POST_API_URL));

    p->notify = &notify_telegram_ops;
    bool tg = *config_str(cfg, S_TELEGRAM_BOT_TOKEN) != '\0';
    p->mode[PK_NOTIFY] = tg ? "telegram" : "off";
    p->fake[PK_NOTIFY] = tg && all_fake;
    snprintf(u, sizeof u, "%s/telegram", fakes);
    set_base(p, PK_NOTIFY, !tg ? "" : all_fake ? u : "https://api.telegram.org");

    for (int k = 0; k < PK__COUNT; k++) {
        if (p->base[k][0] && !is_http_url(p->base[k])) {
            buf_printf(err, "%s: base URL must start with http:// or https:// (got '%.80s')",
                       provider_kind_names[k], p->base[k]);
            free(p);
            return ERR_INVAL;
        }
    }
    if (remotion && !p->base[PK_RENDER][0]) {
        buf_puts(err, "REMOTION_SERVICE_URL: needed with RENDER_PROVIDER=remotion");
        free(p);
        return ERR_INVAL;
    }
    http_client_trust_origin(client, p->self);
    *out = p;
    log_info("providers", "providers ready", LF_S("llm", p->mode[PK_LLM]),
             LF_S("sora", p->mode[PK_SORA]), LF_S("render", p->mode[PK_RENDER]),
             LF_S("publish", p->mode[PK_PUBLISH]), LF_S("safety", p->mode[PK_SAFETY]),
             LF_S("notify", p->mode[PK_NOTIFY]),
             LF_B("fakes", p->fake[PK_LLM] || p->fake[PK_SORA] || p->fake[PK_PUBLISH]));
    return 0;
}

void providers_free(providers_t *p) {
    if (!p)
        return;
    if (p->calls > 0)
        log_warn("providers", "freed with calls in flight", LF_I("calls", p->calls));
    free(p);
}

const char *providers_mode(const providers_t *p, enum provider_kind k) { return p->mode[k]; }
bool providers_is_fake(const providers_t *p, enum provider_kind k) { return p->fake[k]; }
const char *providers_base_url(const providers_t *p, enum provider_kind k) { return p->base[k]; }
const char *providers_self_url(const providers_t *p) { return p->self; }
http_client_t *providers_client(providers_t *p) { return p->client; }
enum render_mode providers_render_mode(const providers_t *p) {
    return strcmp(p->mode[PK_RENDER], "remotion") == 0 ? RENDER_REMOTION : RENDER_LOCAL;
}
bool providers_safety_enabled(const providers_t *p) {
    return strcmp(p->mode[PK_SAFETY], "openai") == 0;
}
bool providers_notify_enabled(const providers_t *p) {
    return strcmp(p->mode[PK_NOTIFY], "telegram") == 0;
}

/* ---- dispatch through the ops tables --------------------------------------------------------- */

int provider_llm_chat(providers_t *p, const struct llm_request *req, llm_cb cb, void *ud,
                      prov_call_t **out) {
    return p->llm->chat(p, req, cb, ud, out);
}
int provider_sora_create(providers_t *p, const struct sora_create_req *req, sora_cb cb, void *ud,
                         prov_call_t **out) {
    return p->sora->create(p, req, cb, ud, out);
}
int provider_sora_status(providers_t *p, const char *id, sora_cb cb, void *ud, prov_call_t **out) {
    return p->sora->status(p, id, cb, ud, out);
}
int provider_sora_download(providers_t *p, const char *id, const char *path, download_cb cb,
                           void *ud, prov_call_t **out) {
    return p->sora->download(p, id, path, cb, ud, out);
}
int provider_render_submit(providers_t *p, const struct render_submit_req *req, render_cb cb,
                           void *ud, prov_call_t **out) {
    return p->render->submit(p, req, cb, ud, out);
}
int provider_render_status(providers_t *p, const char *job_id, render_cb cb, void *ud,
                           prov_call_t **out) {
    return p->render->status(p, job_id, cb, ud, out);
}
int provider_publish_upload(providers_t *p, const struct publish_req *req, publish_cb cb, void *ud,
                            prov_call_t **out) {
    return p->publish->upload(p, req, cb, ud, out);
}
int provider_publish_status(providers_t *p, const char *request_id, publish_cb cb, void *ud,
                            prov_call_t **out) {
    return p->publish->status(p, request_id, cb, ud, out);
}
int provider_safety_check(providers_t *p, const char *text, safety_cb cb, void *ud,
                          prov_call_t **out) {
    return p->safety->check(p, text, cb, ud, out);
}
int provider_notify_send(providers_t *p, const char *chat_id, const char *text, notify_cb cb,
                         void *ud, prov_call_t **out) {
    return p->notify->send(p, chat_id, text, cb, ud, out);
}

/* ---- downloads of outside URLs --------------------------------------------------------------- */

static void download_answer(prov_call_t *pc, const struct http_response *r,
                            struct prov_result *st) {
    struct download_result res = {.st = *st, .path = pc->arg, .bytes = r ? r->downloaded : 0};
    ((download_cb)pc->cb)(&res, pc->ud);
    prov_done(pc);
}

int provider_download_url(providers_t *p, enum provider_kind kind, const char *url,
                          const char *path, download_cb cb, void *ud, prov_call_t **out) {
    if (!url || !path || kind < 0 || kind >= PK__COUNT)
        return ERR_INVAL;
    struct http_request req = {.url = url,
                               .download_path = path,
                               .guard = true,
                               .timeout_ms = 300000,
                               .connect_timeout_ms = 30000};
    int rc = prov_send(p, kind, &req, download_answer, (void *)cb, ud, path, out);
    if (rc == ERR_FORBIDDEN)
        return prov_fail(p, kind, download_answer, (void *)cb, ud,
                         "URL refused (not an allowed media domain)", out);
    return rc;
}

/* ---- the call helper ------------------------------------------------------------------------- */

void prov_header(struct prov_headers *h, const char *fmt, ...) {
    if (h->n >= 8)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->lines[h->n], sizeof h->lines[h->n], fmt, ap);
    va_end(ap);
    h->v[h->n] = h->lines[h->n];
    h->n++;
    h->v[h->n] = NULL;
}

bool prov_id_ok(const char *s) {
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static void scrub_one(char *s, const char *secret) {
    size_t n = strlen(secret);
    if (n < 4)
        return;
    char *hit;
    while ((hit = strstr(s, secret))) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + n, strlen(hit + n) + 1);
    }
}

void prov_scrub(const providers_t *p, char *s) {
    static const enum setting_id secrets[] = {S_LLM_API_KEY,
                                              S_OPENAI_API_KEY,
                                              S_REMOTION_API_SECRET,
                                              S_UPLOAD_POST_API_KEY,
                                              S_TELEGRAM_BOT_TOKEN,
                                              S_OPENAI_WEBHOOK_SECRET,
                                              S_REMOTION_WEBHOOK_SECRET};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        scrub_one(s, config_str(p->cfg, secrets[i]));
}

const char *prov_key(providers_t *p, enum provider_kind kind, enum setting_id id) {
    const char *k = config_str(p->cfg, id);
    if (*k)
        return k;
    return p->fake[kind] ? "fake" : NULL;
}

/* The message of an error answer: error.message, error (string), message, detail,
 * description, else the start of the text. */
static void answer_message(const struct http_response *r, char *out, size_t cap) {
    out[0] = '\0';
    if (!r->body_len)
        return;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *m = NULL;
    if (json_is_object(j)) {
        json_t *e = json_object_get(j, "error");
        if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
            m = json_string_value(json_object_get(e, "message"));
        else if (json_is_string(e))
            m = json_string_value(e);
        static const char *keys[] = {"message", "detail", "description"};
        for (size_t i = 0; !m && i < 3; i++)
            if (json_is_string(json_object_get(j, keys[i])))
                m = json_string_value(json_object_get(j, keys[i]));
    }
    if (m)
        snprintf(out, cap, "%s", m);
    else if (!j && r->content_type && strncmp(r->content_type, "text/", 5) == 0)
        snprintf(out, cap, "%.*s", (int)(r->body_len < 200 ? r->body_len : 200), r->body);
    json_decref(j);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

static void on_http(const struct http_response *r, void *ud) {
    prov_call_t *pc = ud;
    pc->http = NULL;
    char error[700] = "";
    struct prov_result st = {.outcome = PROV_OK,
                             .http_status = r->status,
                             .retry_after_s = r->retry_after_s,
                             .error = ""};
    if (r->outcome != HC_OK) {
        char msg[320];
        answer_message(r, msg, sizeof msg);
        snprintf(error, sizeof error, "%s: %s%s%s", provider_kind_names[pc->kind], r->error,
                 msg[0] ? ": " : "", msg);
        prov_scrub(pc->p, error);
        st.outcome = r->outcome == HC_RETRY       ? PROV_RETRY
                     : r->outcome == HC_CANCELLED ? PROV_CANCELLED
                                                  : PROV_PERMANENT;
        st.error = error;
    }
    pc->answer(pc, r, &st);
}

static prov_call_t *call_new(providers_t *p, enum provider_kind kind, prov_answer_fn answer,
                             void *cb, void *ud, const char *arg) {
    prov_call_t *pc = xcalloc(1, sizeof *pc);
    pc->p = p;
    pc->kind = kind;
    pc->answer = answer;
    pc->cb = cb;
    pc->ud = ud;
    pc->arg = arg ? xstrdup(arg) : NULL;
    p->calls++;
    return pc;
}

static void call_free(prov_call_t *pc) {
    pc->p->calls--;
    free(pc->arg);
    free(pc);
}

int prov_send(providers_t *p, enum provider_kind kind, struct http_request *req,
              prov_answer_fn answer, void *cb, void *ud, const char *arg, prov_call_t **out) {
    if (!cb)
        return ERR_INVAL;
    prov_call_t *pc = call_new(p, kind, answer, cb, ud, arg);
    req->provider = provider_kind_names[kind];
    int rc = http_client_send(p->client, req, on_http, pc, &pc->http);
    if (rc != 0) {
        call_free(pc);
        return rc;
    }
    if (out)
        *out = pc;
    return 0;
}

static void on_later_closed(uv_handle_t *h) { call_free(h->data); }

static void on_later(uv_timer_t *t) {
    prov_call_t *pc = t->data;
    pc->pending_early = false;
    if (!pc->cancelled) {
        struct prov_result st = pc->early;
        st.error = pc->early_error;
        pc->answer(pc, NULL, &st); /* calls prov_done */
        return;
    }
    uv_close((uv_handle_t *)&pc->later, on_later_closed);
}

int prov_fail(providers_t *p, enum provider_kind kind, prov_answer_fn answer, void *cb, void *ud,
              const char *message, prov_call_t **out) {
    if (!cb)
        return ERR_INVAL;
    prov_call_t *pc = call_new(p, kind, answer, cb, ud, NULL);
    pc->early = (struct prov_result){.outcome = PROV_PERMANENT, .retry_after_s = -1};
    snprintf(pc->early_error, sizeof pc->early_error, "%s: %s", provider_kind_names[kind], message);
    pc->pending_early = true;
    uv_timer_init(p->loop, &pc->later);
    pc->later.data = pc;
    uv_timer_start(&pc->later, on_later, 0, 0);
    if (out)
        *out = pc;
    return 0;
}

void prov_done(prov_call_t *pc) {
    if (pc->later.data == pc) { /* an early failure: its timer is closed first */
        uv_close((uv_handle_t *)&pc->later, on_later_closed);
        return;
    }
    call_free(pc);
}

void prov_call_cancel(prov_call_t *pc) {
    if (!pc || pc->cancelled)
        return;
    pc->cancelled = true;
    if (pc->pending_early) {
        uv_timer_stop(&pc->later);
        uv_close((uv_handle_t *)&pc->later, on_later_closed);
        return;
    }
    if (pc->http)
        http_call_cancel(pc->http);
    call_free(pc);
}

json_t *prov_json(prov_call_t *pc, const struct http_response *r, struct prov_result *st, char *err,
                  size_t cap) {
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j) {
        prov_permanent(pc, st, err, cap, "answer is not JSON (%s at byte %d)", je.text,
                       je.position);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        prov_permanent(pc, st, err, cap, "answer is not a JSON object");
        return NULL;
    }
    return j;
}

void prov_permanent(prov_call_t *pc, struct prov_result *st, char *err, size_t cap, const char *fmt,
                    ...) {
    int n = snprintf(err, cap, "%s: ", provider_kind_names[pc->kind]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < cap)
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    prov_scrub(pc->p, err);
    st->outcome = PROV_PERMANENT;
    st->error = err;
}
