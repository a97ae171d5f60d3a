/*
 * fake_moderation: POST /_fake/openai/v1/moderations {"input": string | [strings]}. An input
 * containing "forbidden-test-phrase" (any case) is flagged in the "violence" category; every
 * other input passes. Loop thread.
 */
#include <string.h>

#include "core/crypto.h"
#include "fakes/internal.h"

static const char *const categories[] = {"harassment", "hate", "self-harm", "sexual", "violence"};
#define NCATS (sizeof categories / sizeof categories[0])

static json_t *result_for(const char *text) {
    bool hit = strcasestr(text, "forbidden-test-phrase") != NULL;
    json_t *cats = json_object(), *scores = json_object();
    for (size_t i = 0; i < NCATS; i++) {
        bool on = hit && strcmp(categories[i], "violence") == 0;
        json_object_set_new(cats, categories[i], json_boolean(on));
        json_object_set_new(scores, categories[i], json_real(on ? 0.99 : 0.001));
    }
    return json_pack("{s:b,s:o,s:o}", "flagged", hit, "categories", cats, "category_scores",
                     scores);
}

void fake_moderation(fakes_t *f, http_req_t *req) {
    size_t n = 0;
    const char *a = http_header(req, "Authorization", &n);
    if (!a || n <= 7 || strncmp(a, "Bearer ", 7) != 0) {
        fake_error(req, 401, "invalid_request_error", "You didn't provide an API key.");
        return;
    }
    json_t *input = json_object_get(req->json, "input");
    json_t *results = json_array();
    if (json_is_string(input)) {
        json_array_append_new(results, result_for(json_string_value(input)));
    } else if (json_is_array(input) && json_array_size(input) > 0 && json_array_size(input) <= 64) {
        size_t i;
        json_t *v;
        json_array_foreach(input, i, v) {
            if (!json_is_string(v)) {
                json_decref(results);
                fake_error(req, 400, "invalid_request_error",
                           "'input' must be a string or an array of strings.");
                return;
            }
            json_array_append_new(results, result_for(json_string_value(v)));
        }
    } else {
        json_decref(results);
        fake_error(req, 400, "invalid_request_error",
                   "'input' must be a string or an array of strings.");
        return;
    }
    char *canon = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
    char id[64];
    fake_hash_id("modr-fake-", canon ? canon : "", 24, id, sizeof id);
    free(canon);
    http_respond_json(req, 200,
                      json_pack("{s:s,s:s,s:o}", "id", id, "model", "omni-moderation-latest",
                                "results", results));
}
