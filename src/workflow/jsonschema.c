/* jsonschema: the validator (see jsonschema.h). */
#include "workflow/jsonschema.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

static bool fail(char *err, size_t cap, const char *path, const char *msg) {
    snprintf(err, cap, "%s: %s", *path ? path : "arguments", msg);
    return false;
}

static bool type_is(const json_t *v, const char *t) {
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v));
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    return true;
}

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool check(const json_t *sc, const json_t *v, const char *path, char *err, size_t cap) {
    char msg[200], sub[256];
    if (!json_is_object(sc))
        return true;
    const json_t *t = json_object_get(sc, "type");
    if (json_is_string(t) && !type_is(v, json_string_value(t))) {
        snprintf(msg, sizeof msg, "must be of type %s", json_string_value(t));
        return fail(err, cap, path, msg);
    }
    const json_t *en = json_object_get(sc, "enum");
    if (json_is_array(en)) {
        bool found = false;
        size_t i;
        const json_t *x;
        json_array_foreach(en, i, x) found |= json_equal(x, v);
        if (!found)
            return fail(err, cap, path, "is not one of the allowed values");
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v));
        const json_t *mn = json_object_get(sc, "minLength"), *mx = json_object_get(sc, "maxLength");
        if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn)) {
            snprintf(msg, sizeof msg, "must be at least %lld characters",
                     (long long)json_integer_value(mn));
            return fail(err, cap, path, msg);
        }
        if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx)) {
            snprintf(msg, sizeof msg, "must be at most %lld characters",
                     (long long)json_integer_value(mx));
            return fail(err, cap, path, msg);
        }
        const json_t *pat = json_object_get(sc, "pattern");
        if (json_is_string(pat)) {
            regex_t re;
            if (regcomp(&re, json_string_value(pat), REG_EXTENDED | REG_NOSUB) == 0) {
                int m = regexec(&re, json_string_value(v), 0, NULL, 0);
                regfree(&re);
                if (m != 0) {
                    snprintf(msg, sizeof msg, "must match %s", json_string_value(pat));
                    return fail(err, cap, path, msg);
                }
            }
        }
    }
    if (json_is_number(v)) {
        double d = json_number_value(v);
        const json_t *mn = json_object_get(sc, "minimum"), *mx = json_object_get(sc, "maximum");
        if (json_is_number(mn) && d < json_number_value(mn)) {
            snprintf(msg, sizeof msg, "must be at least %g", json_number_value(mn));
            return fail(err, cap, path, msg);
        }
        if (json_is_number(mx) && d > json_number_value(mx)) {
            snprintf(msg, sizeof msg, "must be at most %g", json_number_value(mx));
            return fail(err, cap, path, msg);
        }
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        const json_t *mn = json_object_get(sc, "minItems"), *mx = json_object_get(sc, "maxItems");
        if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn)) {
            snprintf(msg, sizeof msg, "must have at least %lld items",
                     (long long)json_integer_value(mn));
            return fail(err, cap, path, msg);
        }
        if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx)) {
            snprintf(msg, sizeof msg, "must have at most %lld items",
                     (long long)json_integer_value(mx));
            return fail(err, cap, path, msg);
        }
        const json_t *items = json_object_get(sc, "items");
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (!check(items, x, sub, err, cap))
                return false;
        }
    }
    if (json_is_object(v)) {
        const json_t *req = json_object_get(sc, "required");
        size_t i;
        const json_t *x;
        json_array_foreach(req, i, x) {
            if (json_is_string(x) && !json_object_get(v, json_string_value(x))) {
                snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", json_string_value(x));
                return fail(err, cap, sub, "is required");
            }
        }
        const json_t *props = json_object_get(sc, "properties");
        bool closed = json_is_false(json_object_get(sc, "additionalProperties"));
        const char *k;
        const json_t *val;
        json_object_foreach((json_t *)v, k, val) {
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k);
            const json_t *ps = json_object_get(props, k);
            if (!ps && closed)
                return fail(err, cap, sub, "is not allowed");
            if (ps && !check(ps, val, sub, err, cap))
                return false;
        }
    }
    return true;
}

bool jsonschema_validate(const json_t *schema, const json_t *v, char *err, size_t cap) {
    if (cap)
        err[0] = '\0';
    return check(schema, v, "", err, cap);
}
