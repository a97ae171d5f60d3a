/*
 * llm_openai: OpenAI-compatible chat completions with tools (POST {base}/chat/completions).
 * The answer is validated before anyone sees it: choices[0].message must be an object whose
 * content is a string or null and whose tool_calls are {id, type "function", function {name,
 * arguments (string)}}. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "providers/impl.h"

#define MAX_TOOL_CALLS 32

static void answer(prov_call_t *pc, const struct http_response *r, struct prov_result *st) {
    struct llm_result res = {.st = *st, .finish_reason = ""};
    char err[400];
    json_t *j = NULL;
    struct llm_tool_call calls[MAX_TOOL_CALLS];
    if (st->outcome != PROV_OK)
        goto out;
    if (!(j = prov_json(pc, r, &res.st, err, sizeof err)))
        goto out;
    json_t *choices = json_object_get(j, "choices");
    json_t *choice = json_array_get(choices, 0);
    json_t *msg = json_object_get(choice, "message");
    if (!json_is_array(choices) || !json_is_object(choice) || !json_is_object(msg)) {
        prov_permanent(pc, &res.st, err, sizeof err, "answer has no choices[0].message");
        goto out;
    }
    json_t *content = json_object_get(msg, "content");
    if (content && !json_is_string(content) && !json_is_null(content)) {
        prov_permanent(pc, &res.st, err, sizeof err,
                       "message content is neither a string nor null");
        goto out;
    }
    json_t *tcs = json_object_get(msg, "tool_calls");
    size_t n = 0;
    if (tcs && !json_is_null(tcs)) {
        if (!json_is_array(tcs)) {
            prov_permanent(pc, &res.st, err, sizeof err, "tool_calls is not an array");
            goto out;
        }
        if (json_array_size(tcs) > MAX_TOOL_CALLS) {
            prov_permanent(pc, &res.st, err, sizeof err, "more than %d tool calls", MAX_TOOL_CALLS);
            goto out;
        }
        size_t i;
        json_t *tc;
        json_array_foreach(tcs, i, tc) {
            json_t *fn = json_object_get(tc, "function");
            json_t *type = json_object_get(tc, "type");
            const char *id = json_string_value(json_object_get(tc, "id"));
            const char *name = json_string_value(json_object_get(fn, "name"));
            const char *args = json_string_value(json_object_get(fn, "arguments"));
            if (!json_is_object(tc) || !id || !name || !args || (type && !json_is_string(type)) ||
                (type && strcmp(json_string_value(type), "function") != 0)) {
                prov_permanent(
                    pc, &res.st, err, sizeof err,
                    "tool call %zu is not {id, type: function, function: {name, arguments}}", i);
                goto out;
            }
            calls[n++] = (struct llm_tool_call){id, name, args};
        }
    }
    if (!json_object_get(msg, "role"))
        json_object_set_new(msg, "role", json_string("assistant"));
    res.message = msg;
    res.content = json_string_value(content);
    res.tool_calls = n ? calls : NULL;
    res.ntool_calls = n;
    const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
    res.finish_reason = fr ? fr : "";
    json_t *usage = json_object_get(j, "usage");
    res.prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
    res.completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
out:
    ((llm_cb)pc->cb)(&res, pc->ud);
    json_decref(j);
    prov_done(pc);
}

static int chat(providers_t *p, const struct llm_request *req, llm_cb cb, void *ud,
                prov_call_t **out) {
    if (!req || !json_is_array(req->messages) || json_array_size(req->messages) == 0 ||
        (req->tools && !json_is_array(req->tools)) || !cb)
        return ERR_INVAL;
    const char *key = prov_key(p, PK_LLM, S_LLM_API_KEY);
    if (!key)
        return prov_fail(p, PK_LLM, answer, (void *)cb, ud, "LLM_API_KEY is not set", out);
    json_t *body = json_object();
    json_object_set_new(
        body, "model",
        json_string(req->model && *req->model ? req->model : config_str(p->cfg, S_LLM_MODEL)));
    json_object_set(body, "messages", req->messages);
    if (req->tools && json_array_size(req->tools) > 0)
        json_object_set(body, "tools", req->tools);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return ERR_INVAL; /* not serialisable (NaN, bad UTF-8) */
    char url[PROV_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/chat/completions", p->base[PK_LLM]);
    struct prov_headers h = {0};
    prov_header(&h, "Authorization: Bearer %s", key);
    prov_header(&h, "Content-Type: application/json");
    struct http_request hr = {.method = "POST",
                              .url = url,
                              .headers = h.v,
                              .body = text,
                              .body_len = strlen(text),
                              .timeout_ms = config_int(p->cfg, S_LLM_TIMEOUT_MS),
                              .max_body = PROV_MAX_JSON};
    int rc = prov_send(p, PK_LLM, &hr, answer, (void *)cb, ud, NULL, out);
    free(text);
    return rc;
}

const struct llm_ops llm_openai_ops = {"openai", chat};
