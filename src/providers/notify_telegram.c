/*
 * notify_telegram: Telegram Bot API sendMessage (POST {base}/bot<token>/sendMessage
 * {chat_id, text}), only when TELEGRAM_BOT_TOKEN is set. The token is part of the URL path, so
 * errors and logs show "bot***" instead. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "providers/impl.h"

static void answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct notify_result res = {.st = *st};
    char err[300];
    json_t *j = NULL;
    if (st->outcome != PROV_OK)
        goto out;
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    if (!json_is_true(json_object_get(j, "ok"))) {
        const char *d = json_string_value(json_object_get(j, "description"));
        prov_permanent(pc, &res.st, err, sizeof err, "sendMessage refused: %s",
                       d ? d : "ok is not true");
    }
out:
    ((notify_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static int send_message(providers_t *p, const char *chat_id, const char *text, notify_cb cb,
                        void *ud, prov_call_t **out) {
    if (!chat_id || !*chat_id || strlen(chat_id) > 64 || !text || !cb)
        return ERR_INVAL;
    if (!providers_notify_enabled(p))
        return prov_fail(p, PK_NOTIFY, answer, (void *)cb, ud, "telegram is not configured", out);
    json_t *body = json_pack("{s:s,s:s%}", "chat_id", chat_id, "text", text,
                             strlen(text) > 4096 ? 4096 : strlen(text));
    char *t = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!t)
        return ERR_INVAL;
    const char *token = config_str(p->cfg, S_TELEGRAM_BOT_TOKEN);
    char url[PROV_URL_MAX + 300], shown[PROV_URL_MAX + 40];
    snprintf(url, sizeof url, "%s/bot%s/sendMessage", p->base[PK_NOTIFY], token);
    snprintf(shown, sizeof shown, "%s/bot***/sendMessage", p->base[PK_NOTIFY]);
    struct prov_headers h = {0};
    prov_header(&h, "Content-Type: application/json");
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .log_url = shown,
                              .headers = h.v,
                              .body = t,
                              .body_len = strlen(t),
                              .timeout_ms = 10000,
                              .max_body = PROV_MAX_JSON};
    int rc = prov_send(p, PK_NOTIFY, &hr, answer, (void *)cb, ud, NULL, out);
    free(t);
    return rc;
}

const struct notify_ops notify_telegram_ops = {"telegram", send_message};
