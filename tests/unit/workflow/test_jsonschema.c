/* jsonschema: the keywords the tool schemas use, and the error paths. */
#include <criterion/criterion.h>

#include "workflow/jsonschema.h"

static const char *schema_text =
    "{\"type\":\"object\",\"required\":[\"videos\"],\"properties\":{"
    "\"videos\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,\"items\":{\"type\":\"object\","
    "\"required\":[\"video_index\",\"visual_prompt\"],\"properties\":{"
    "\"video_index\":{\"type\":\"integer\",\"minimum\":0},"
    "\"visual_prompt\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},"
    "\"tag\":{\"type\":\"string\",\"pattern\":\"^[^#[:space:]]+$\"},"
    "\"kind\":{\"enum\":[\"a\",\"b\"]}}}}}}";

static bool valid(const char *value, char *err) {
    json_t *s = json_loads(schema_text, 0, NULL);
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(s);
    cr_assert_not_null(v, "bad test value %s", value);
    bool ok = jsonschema_validate(s, v, err, 200);
    json_decref(s);
    json_decref(v);
    return ok;
}

Test(jsonschema, accepts_a_valid_value) {
    char err[200];
    cr_assert(valid("{\"videos\":[{\"video_index\":0,\"visual_prompt\":\"héllo\",\"tag\":\"x\","
                    "\"kind\":\"a\"}]}",
                    err),
              "%s", err);
}

Test(jsonschema, names_the_failing_path) {
    struct {
        const char *v, *err;
    } cases[] = {
        {"[]", "arguments: must be of type object"},
        {"{}", "videos: is required"},
        {"{\"videos\":[]}", "videos: must have at least 1 items"},
        {"{\"videos\":[{\"video_index\":0}]}", "videos[0].visual_prompt: is required"},
        {"{\"videos\":[{\"video_index\":-1,\"visual_prompt\":\"a\"}]}",
         "videos[0].video_index: must be at least 0"},
        {"{\"videos\":[{\"video_index\":\"0\",\"visual_prompt\":\"a\"}]}",
         "videos[0].video_index: must be of type integer"},
        {"{\"videos\":[{\"video_index\":0,\"visual_prompt\":\"toolong\"}]}",
         "videos[0].visual_prompt: must be at most 5 characters"},
        {"{\"videos\":[{\"video_index\":0,\"visual_prompt\":\"a\",\"tag\":\"#x\"}]}",
         "videos[0].tag: must match ^[^#[:space:]]+$"},
        {"{\"videos\":[{\"video_index\":0,\"visual_prompt\":\"a\",\"kind\":\"c\"}]}",
         "videos[0].kind: is not one of the allowed values"},
        {"{\"videos\":[1,2,3,4]}", "videos: must have at most 3 items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[200];
        cr_assert_not(valid(cases[i].v, err), "%s should fail", cases[i].v);
        cr_assert_str_eq(err, cases[i].err, "%s", cases[i].v);
    }
}

Test(jsonschema, closed_objects_refuse_unknown_keys) {
    json_t *s = json_loads(
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{}}}", 0, NULL);
    json_t *ok = json_loads("{\"a\":1}", 0, NULL), *bad = json_loads("{\"a\":1,\"b\":2}", 0, NULL);
    char err[200];
    cr_assert(jsonschema_validate(s, ok, err, sizeof err));
    cr_assert_not(jsonschema_validate(s, bad, err, sizeof err));
    cr_assert_str_eq(err, "b: is not allowed");
    json_decref(s);
    json_decref(ok);
    json_decref(bad);
}
