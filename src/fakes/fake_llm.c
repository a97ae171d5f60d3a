/*
 * fake_llm: POST /_fake/openai/v1/chat/completions. A deterministic stand-in for the model:
 * the same messages and tools give the same answer (ids are hashes of the request).
 *
 * Which agent calls is read from the tools offered (providers.h): none = ideator,
 * sora_generate = producer, remotion_render = editor, upload_post = publisher. After a tool
 * result (last message role "tool") the agent answers text only. Facts come from ```json
 * blocks (or whole-JSON messages) of the system and user messages, merged key by key:
 * project, video_count, clip_seconds, caption_template, tags, topic, ideas, clips, template,
 * duration_seconds, video_url; the brief from "Brief:\n<brief>".
 *
 * The ideator writes "## Topic" and one "### <n>. <title>" section per idea, then the fenced
 * JSON {"topic": <brief, first 80 chars>, "ideas": [{index, title, visual, voice_over,
 * overlay}]} with video_count ideas (aismr: the zodiac signs in order). The tool calls are
 * built from the ideas and pruned to the tool's JSON schema (unknown properties dropped).
 * FAKE_LLM_NO_TOOL names an agent that answers text without its tool call (tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/mem.h"
#include "fakes/internal.h"

static const char *const zodiac[12] = {"Aries",       "Taurus",    "Gemini",   "Cancer",
                                       "Leo",         "Virgo",     "Libra",    "Scorpio",
                                       "Sagittarius", "Capricorn", "Aquarius", "Pisces"};

/* Byte length of the first n UTF-8 characters of s. */
static size_t utf8_prefix(const char *s, size_t n) {
    size_t i = 0, chars = 0;
    while (s[i] && chars < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] >> 6) != 2) {
                k = j;
                break;
            }
        i += k;
        chars++;
    }
    return i;
}

static const char *msg_text(json_t *m) {
    json_t *c = json_object_get(m, "content");
    if (json_is_string(c))
        return json_string_value(c);
    /* content parts: the first text part */
    size_t i;
    json_t *part;
    if (json_is_array(c))
        json_array_foreach(c, i, part) if (
            json_is_string(json_object_get(
                part, "text"))) return json_string_value(json_object_get(part, "text"));
    return NULL;
}

/* Merges the object's keys into facts. */
static void merge(json_t *facts, json_t *o) {
    if (json_is_object(o))
        json_object_update(facts, o);
}

/* Every ```json block (or the whole text when it is a JSON object) of text into facts. */
static void facts_from_text(json_t *facts, const char *text) {
    json_t *whole = json_loads(text, 0, NULL);
    if (json_is_object(whole)) {
        merge(facts, whole);
        json_decref(whole);
        return;
    }
    json_decref(whole);
    for (const char *p = text; (p = strstr(p, "```json"));) {
        p += 7;
        const char *e = strstr(p, "```");
        if (!e)
            break;
        json_t *j = json_loadb(p, (size_t)(e - p), 0, NULL);
        merge(facts, j);
        json_decref(j);
        p = e + 3;
    }
}

static const char *fact_str(json_t *facts, const char *k) {
    return json_string_value(json_object_get(facts, k));
}

/* Keeps only the properties the schema knows (recursively); a schema without properties keeps all.
 */
static void prune(json_t *v, json_t *schema) {
    if (!json_is_object(schema))
        return;
    json_t *props = json_object_get(schema, "properties");
    if (json_is_object(v) && json_is_object(props)) {
        const char *k;
        json_t *x, *tmp;
        json_object_foreach_safe(v, tmp, k, x) {
            json_t *ps = json_object_get(props, k);
            if (!ps)
                json_object_del(v, k);
            else
                prune(x, ps);
        }
    }
    json_t *items = json_object_get(schema, "items");
    if (json_is_array(v) && json_is_object(items)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) prune(x, items);
    }
}

/* The ideas of the ideator: deterministic for the brief and the facts. */
static json_t *make_ideas(const char *topic, const char *project, int count) {
    json_t *ideas = json_array();
    bool aismr = project && strcmp(project, "aismr") == 0;
    for (int i = 0; i < count; i++) {
        char title[160], visual[700], vo[400], overlay[200];
        if (aismr) {
            const char *sign = zodiac[i % 12];
            snprintf(title, sizeof title, "%s", sign);
            snprintf(visual, sizeof visual,
                     "Macro close-up of a %s-themed object for \"%s\", soft light, slow camera "
                     "push-in, tactile "
                     "textures, calm ASMR mood",
                     sign, topic);
            snprintf(vo, sizeof vo, "A whisper for %s: breathe slowly and listen.", sign);
            snprintf(overlay, sizeof overlay, "%s", sign);
        } else {
            snprintf(title, sizeof title, "Moment %d", i + 1);
            snprintf(visual, sizeof visual,
                     "Cinematic vertical shot %d about \"%s\": sunrise light, a person moving "
                     "forward with "
                     "determination, shallow depth of field",
                     i + 1, topic);
            snprintf(vo, sizeof vo, "Step %d: keep going, one small win at a time.", i + 1);
            snprintf(overlay, sizeof overlay, "Step %d", i + 1);
        }
        json_array_append_new(ideas,
                              json_pack("{s:i,s:s,s:s,s:s,s:s}", "index", i, "title", title,
                                        "visual", visual, "voice_over", vo, "overlay", overlay));
    }
    return ideas;
}

static char *ideator_text(const char *topic, json_t *ideas) {
    buf_t b;
    buf_init(&b, 1u << 20);
    buf_printf(&b, "## Topic\n\n%s\n\n", topic);
    size_t i;
    json_t *idea;
    json_array_foreach(ideas, i, idea) {
        buf_printf(&b, "### %zu. %s\n\n%s\n\n*Voice over:* %s\n\n*Overlay:* %s\n\n", i + 1,
                   fact_str(idea, "title"), fact_str(idea, "visual"), fact_str(idea, "voice_over"),
                   fact_str(idea, "overlay"));
    }
    json_t *block = json_pack("{s:s,s:O}", "topic", topic, "ideas", ideas);
    char *js = json_dumps(block, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(block);
    buf_printf(&b, "```json\n%s\n```\n", js ? js : "{}");
    free(js);
    return buf_steal(&b, NULL);
}

static json_t *tool_schema(json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function");
        const char *n = json_string_value(json_object_get(fn, "name"));
        if (n && strcmp(n, name) == 0)
            return json_object_get(fn, "parameters");
    }
    return NULL;
}

static bool has_tool(json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static json_t *ideas_of(json_t *facts) {
    json_t *ideas = json_object_get(facts, "ideas");
    return json_is_array(ideas) && json_array_size(ideas) > 0 ? ideas : NULL;
}

static json_t *producer_args(json_t *facts, char *why, size_t cap) {
    json_t *ideas = ideas_of(facts);
    if (!ideas) {
        snprintf(why, cap, "I need the approved ideas to produce the clips.");
        return NULL;
    }
    json_t *videos = json_array();
    size_t i;
    json_t *idea;
    json_array_foreach(ideas, i, idea) {
        json_t *ix = json_object_get(idea, "index");
        json_t *v =
            json_pack("{s:I,s:s}", "video_index",
                      json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)i, "visual_prompt",
                      fact_str(idea, "visual") ? fact_str(idea, "visual") : "A calm scene");
        if (fact_str(idea, "voice_over"))
            json_object_set_new(v, "voice_over", json_string(fact_str(idea, "voice_over")));
        json_array_append_new(videos, v);
    }
    json_t *args = json_pack("{s:o}", "videos", videos);
    if (json_is_string(json_object_get(facts, "aspect_ratio")))
        json_object_set(args, "aspect_ratio", json_object_get(facts, "aspect_ratio"));
    if (json_is_integer(json_object_get(facts, "clip_seconds")))
        json_object_set(args, "n_frames", json_object_get(facts, "clip_seconds"));
    return args;
}

static json_t *editor_args(json_t *facts, char *why, size_t cap) {
    json_t *clips = json_object_get(facts, "clips");
    if (!json_is_array(clips) || json_array_size(clips) == 0) {
        snprintf(why, cap, "I need the clip URLs to edit the video.");
        return NULL;
    }
    json_t *urls = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(clips, i, c) {
        if (json_is_string(c))
            json_array_append(urls, c);
        else if (json_is_string(json_object_get(c, "url")))
            json_array_append(urls, json_object_get(c, "url"));
    }
    json_t *texts = json_array();
    json_t *ideas = ideas_of(facts);
    json_t *idea;
    if (ideas)
        json_array_foreach(ideas, i, idea) json_array_append_new(
            texts, json_string(fact_str(idea, "overlay") ? fact_str(idea, "overlay") : ""));
    const char *tmpl =
        fact_str(facts, "template") ? fact_str(facts, "template") : fact_str(facts, "project");
    double secs = 0;
    json_t *ds = json_object_get(facts, "duration_seconds");
    if (json_is_number(ds))
        secs = json_number_value(ds);
    else if (json_is_integer(json_object_get(facts, "clip_seconds")))
        secs = (double)json_integer_value(json_object_get(facts, "clip_seconds")) *
               (double)json_array_size(urls);
    json_t *args = json_pack("{s:o,s:s,s:o}", "clips", urls, "template", tmpl ? tmpl : "default",
                             "texts", texts);
    if (secs > 0)
        json_object_set_new(args, "duration_seconds", json_real(secs));
    return args;
}

/* caption_template with {topic} (and {brief}) replaced, cut to 150 characters. */
static char *caption(const char *tmpl, const char *topic) {
    buf_t b;
    buf_init(&b, 8192);
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{topic}", 7) == 0 || strncmp(p, "{brief}", 7) == 0) {
            buf_puts(&b, topic);
            p += 7;
        } else {
            buf_append(&b, p, 1);
            p++;
        }
    }
    char *s = buf_steal(&b, NULL);
    s[utf8_prefix(s, 150)] = '\0';
    return s;
}

static json_t *publisher_args(json_t *facts, char *why, size_t cap) {
    const char *url = fact_str(facts, "video_url");
    if (!url) {
        snprintf(why, cap, "I need the final video URL to publish.");
        return NULL;
    }
    const char *topic = fact_str(facts, "topic") ? fact_str(facts, "topic") : "our new video";
    const char *tmpl =
        fact_str(facts, "caption_template") ? fact_str(facts, "caption_template") : "{topic}";
    char *cap_text = caption(tmpl, topic);
    json_t *tags = json_array();
    json_t *given = json_object_get(facts, "tags");
    size_t i;
    json_t *t;
    if (json_is_array(given))
        json_array_foreach(given, i, t) {
            const char *s = json_string_value(t);
            while (s && *s == '#')
                s++;
            if (s && *s && json_array_size(tags) < 8)
                json_array_append_new(tags, json_string(s));
        }
    static const char *fill[] = {"myloware", "aivideo", "shorts"};
    for (size_t k = 0; json_array_size(tags) < 3; k++)
        json_array_append_new(tags, json_string(fill[k]));
    json_t *args = json_pack("{s:s,s:s,s:o}", "video_url", url, "caption", cap_text, "tags", tags);
    free(cap_text);
    return args;
}

json_t *fake_llm_answer(const json_t *request, char *err, size_t cap) {
    json_t *messages = json_object_get(request, "messages");
    json_t *tools = json_object_get(request, "tools");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        snprintf(err, cap, "'messages' must be a non-empty array");
        return NULL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            snprintf(err, cap, "messages[%zu] must be an object with a role", i);
            return NULL;
        }
    }
    if (tools && !json_is_array(tools)) {
        snprintf(err, cap, "'tools' must be an array");
        return NULL;
    }
    /* the request's hash names everything we make up */
    char *canon = json_dumps(request, JSON_COMPACT | JSON_SORT_KEYS);
    char hid[64];
    fake_hash_id("", canon ? canon : "", 24, hid, sizeof hid);
    free(canon);

    json_t *facts = json_object();
    const char *brief = NULL;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *text = msg_text(m);
        if (!text || (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
                      strcmp(role, "developer") != 0))
            continue;
        facts_from_text(facts, text);
        if (strcmp(role, "user") == 0 && strncmp(text, "Brief:\n", 7) == 0)
            brief = text + 7;
    }
    json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    bool after_tool = strcmp(json_string_value(json_object_get(last, "role")), "tool") == 0;
    const char *agent = !tools || json_array_size(tools) == 0 ? "ideator"
                        : has_tool(tools, "sora_generate")    ? "producer"
                        : has_tool(tools, "remotion_render")  ? "editor"
                        : has_tool(tools, "upload_post")      ? "publisher"
                                                              : "assistant";
    char *content = NULL;
    json_t *tool_calls = NULL;
    char why[200] = "";
    if (after_tool) {
        char done[200];
        snprintf(done, sizeof done, "The %s step is done.", agent);
        content = xstrdup(done);
    } else if (strcmp(agent, "ideator") == 0) {
        if (!brief) {
            const char *t = msg_text(last);
            brief = t ? t : "";
        }
        char topic[400];
        size_t n = utf8_prefix(brief, 80);
        snprintf(topic, sizeof topic, "%.*s", (int)(n < sizeof topic ? n : sizeof topic - 1),
                 brief);
        const char *project = fact_str(facts, "project");
        json_t *vc = json_object_get(facts, "video_count");
        int count = json_is_integer(vc)                        ? (int)json_integer_value(vc)
                    : project && strcmp(project, "aismr") == 0 ? 12
                                                               : 2;
        if (count < 1)
            count = 1;
        if (count > 64)
            count = 64;
        json_t *ideas = make_ideas(topic, project, count);
        content = ideator_text(topic, ideas);
        json_decref(ideas);
    } else {
        const char *tool = strcmp(agent, "producer") == 0    ? "sora_generate"
                           : strcmp(agent, "editor") == 0    ? "remotion_render"
                           : strcmp(agent, "publisher") == 0 ? "upload_post"
                                                             : NULL;
        json_t *args = !tool                                ? NULL
                       : strcmp(tool, "sora_generate") == 0 ? producer_args(facts, why, sizeof why)
                       : strcmp(tool, "remotion_render") == 0
                           ? editor_args(facts, why, sizeof why)
                           : publisher_args(facts, why, sizeof why);
        if (args) {
            prune(args, tool_schema(tools, tool));
            char *a = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(args);
            char cid[80];
            snprintf(cid, sizeof cid, "call_%s", hid);
            tool_calls = json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "id", cid, "type", "function",
                                   "function", "name", tool, "arguments", a ? a : "{}");
            free(a);
        } else {
            content = xstrdup(why[0] ? why : "I have no tool for this.");
        }
    }
    json_decref(facts);

    json_t *msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content", content ? json_string(content) : json_null());
    if (tool_calls)
        json_object_set_new(msg, "tool_calls", tool_calls);
    size_t out_len = content ? strlen(content) : 64;
    free(content);
    char id[80];
    snprintf(id, sizeof id, "chatcmpl-fake-%s", hid);
    const char *model = json_string_value(json_object_get(request, "model"));
    json_t *prompt = json_object_get(request, "messages");
    char *ptext = json_dumps(prompt, JSON_COMPACT);
    size_t in_len = ptext ? strlen(ptext) : 0;
    free(ptext);
    return json_pack("{s:s,s:s,s:s,s:[{s:i,s:o,s:s}],s:{s:I,s:I,s:I}}", "id", id, "object",
                     "chat.completion", "model", model ? model : "fake", "choices", "index", 0,
                     "message", msg, "finish_reason", tool_calls ? "tool_calls" : "stop", "usage",
                     "prompt_tokens", (json_int_t)(in_len / 4), "completion_tokens",
                     (json_int_t)(out_len / 4), "total_tokens",
                     (json_int_t)((in_len + out_len) / 4));
}

/* FAKE_LLM_NO_TOOL=<agent>: that agent answers text instead of its tool call (tests of "a missing
 * tool call", workflow.md §2). */
static void drop_tool_call(const config_t *cfg, json_t *request, json_t *answer) {
    const char *skip = config_str(cfg, S_FAKE_LLM_NO_TOOL);
    const char *tool = strcmp(skip, "producer") == 0    ? "sora_generate"
                       : strcmp(skip, "editor") == 0    ? "remotion_render"
                       : strcmp(skip, "publisher") == 0 ? "upload_post"
                                                        : NULL;
    json_t *choice = json_array_get(json_object_get(answer, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!tool || !has_tool(json_object_get(request, "tools"), tool) ||
        !json_object_get(msg, "tool_calls"))
        return;
    json_object_del(msg, "tool_calls");
    char text[160];
    snprintf(text, sizeof text, "I would rather not call %s.", tool);
    json_object_set_new(msg, "content", json_string(text));
    json_object_set_new(choice, "finish_reason", json_string("stop"));
}

void fake_llm_chat(fakes_t *f, http_req_t *req) {
    char err[200];
    json_t *a = fake_llm_answer(req->json, err, sizeof err);
    if (!a) {
        fake_error(req, 400, "invalid_request_error", err);
        return;
    }
    drop_tool_call(f->cfg, req->json, a);
    json_object_set_new(a, "created", json_integer(clock_now_ms() / 1000));
    http_respond_json(req, 200, a);
}
