/*
 * fake_telegram: POST /_fake/telegram/bot<token>/sendMessage {chat_id, text}: answers like the
 * Bot API ({"ok": true, "result": {message_id, chat, text}}, or {"ok": false, "error_code",
 * "description"}). Nothing is sent anywhere. Loop thread.
 */
#include <string.h>

#include "core/clock.h"
#include "fakes/internal.h"

static void refuse(http_req_t *req, int status, const char *d) {
    http_respond_json(req, status,
                      json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", status, "description", d));
}

void fake_telegram_send(fakes_t *f, http_req_t *req) {
    char bot[200];
    if (http_param(req, 0, bot, sizeof bot) < 5 || strncmp(bot, "bot", 3) != 0) {
        refuse(req, 404, "Not Found");
        return;
    }
    json_t *chat = json_object_get(req->json, "chat_id");
    const char *text = json_string_value(json_object_get(req->json, "text"));
    if (!chat || (!json_is_string(chat) && !json_is_integer(chat))) {
        refuse(req, 400, "Bad Request: chat_id is empty");
        return;
    }
    if (!text || !*text) {
        refuse(req, 400, "Bad Request: message text is empty");
        return;
    }
    if (strlen(text) > 4096) {
        refuse(req, 400, "Bad Request: message is too long");
        return;
    }
    static int next_id = 1;
    http_respond_json(req, 200,
                      json_pack("{s:b,s:{s:i,s:I,s:{s:O},s:s}}", "ok", 1, "result", "message_id",
                                next_id++, "date", (json_int_t)(clock_now_ms() / 1000), "chat",
                                "id", chat, "text", text));
}
