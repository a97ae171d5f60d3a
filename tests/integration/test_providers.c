/*
 * test_providers: every real provider client (src/providers/) against its fake over real HTTP:
 * `myloware fakes serve` started by the harness, the clients running on a libuv loop in this
 * process. A small capture server here receives what the fakes send out (signed video events,
 * signed render callbacks) and serves a clip for the render fake to download. Also: the fake
 * LLM is deterministic for a brief, the fakes keep their work across kill -9, and production
 * mounts no fake.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/webhook.h"
#include "media/media.h"
#include "providers/providers.h"
#include "support/harness.h"
#include "support/loopwait.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define RM_SECRET "remotion-callback-secret"
#define WAIT_MS 90000

/* ---- the capture server --------------------------------------------------------------------- */

struct captured {
    char path[512];
    char head[8192];
    char *body;
    size_t body_len;
};

static int cap_fd = -1, cap_port;
static pthread_t cap_thread;
static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct captured caps[64];
static int ncaps;
static volatile int cap_stop;
static char clip_path[300];

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w, n -= (size_t)w;
    }
}

static void serve_one(int fd) {
    char *req = malloc(1 << 20);
    size_t len = 0;
    char *eoh = NULL;
    while (!eoh && len < (1 << 20) - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0)
            goto out;
        ssize_t r = recv(fd, req + len, (1 << 20) - 1 - len, 0);
        if (r <= 0)
            goto out;
        len += (size_t)r;
        req[len] = '\0';
        eoh = strstr(req, "\r\n\r\n");
    }
    if (!eoh)
        goto out;
    size_t hl = (size_t)(eoh + 4 - req), clen = 0;
    const char *cl = strcasestr(req, "\r\nContent-Length:");
    if (cl && cl < eoh)
        clen = strtoul(cl + 17, NULL, 10);
    while (len - hl < clen && len < (1 << 20) - 1) {
        ssize_t r = recv(fd, req + len, (1 << 20) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    req[len] = '\0';
    char path[512] = "";
    sscanf(req, "%*s %511s", path);
    if (strncmp(path, "/clip", 5) == 0) {
        FILE *f = fopen(clip_path, "rb");
        char *data = malloc(8 << 20);
        size_t n = f ? fread(data, 1, 8 << 20, f) : 0;
        if (f)
            fclose(f);
        char h[200];
        int k = snprintf(h, sizeof h,
                         "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         n);
        send_all(fd, h, (size_t)k);
        send_all(fd, data, n);
        free(data);
    } else {
        pthread_mutex_lock(&cap_mu);
        if (ncaps < 64) {
            struct captured *c = &caps[ncaps++];
            snprintf(c->path, sizeof c->path, "%s", path);
            snprintf(c->head, sizeof c->head, "%.*s", (int)hl, req);
            c->body_len = len - hl;
            c->body = malloc(c->body_len + 1);
            memcpy(c->body, req + hl, c->body_len);
            c->body[c->body_len] = '\0';
        }
        pthread_mutex_unlock(&cap_mu);
        const char *ok =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"
            "Connection: close\r\n\r\n{\"status\":\"accepted\"}\n";
        send_all(fd, ok, strlen(ok));
    }
out:
    free(req);
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void *cap_main(void *arg) {
    while (!cap_stop) {
        struct pollfd p = {cap_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(cap_fd, NULL, NULL);
        if (fd >= 0)
            serve_one(fd);
    }
    return NULL;
}

static void cap_start(void) {
    cap_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(cap_fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(cap_fd, (struct sockaddr *)&a, &al);
    cap_port = ntohs(a.sin_port);
    listen(cap_fd, 16);
    cap_stop = 0;
    pthread_create(&cap_thread, NULL, cap_main, NULL);
}

static void cap_end(void) {
    cap_stop = 1;
    pthread_join(cap_thread, NULL);
    close(cap_fd);
    for (int i = 0; i < ncaps; i++)
        free(caps[i].body);
    ncaps = 0;
}

/* Copies the first captured request whose path starts with prefix and whose body contains
 * needle; waits up to ms. */
static bool cap_wait(const char *prefix, const char *needle, int ms, struct captured *out) {
    int64_t until = h_now_ms() + ms;
    while (h_now_ms() < until) {
        pthread_mutex_lock(&cap_mu);
        for (int i = 0; i < ncaps; i++) {
            if (strncmp(caps[i].path, prefix, strlen(prefix)) == 0 &&
                (!needle || strstr(caps[i].body, needle))) {
                *out = caps[i];
                out->body = strdup(caps[i].body);
                pthread_mutex_unlock(&cap_mu);
                return true;
            }
        }
        pthread_mutex_unlock(&cap_mu);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    return false;
}

static int cap_count(const char *needle) {
    int n = 0;
    pthread_mutex_lock(&cap_mu);
    for (int i = 0; i < ncaps; i++)
        n += strstr(caps[i].body, needle) != NULL;
    pthread_mutex_unlock(&cap_mu);
    return n;
}

static void head_value(const char *head, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    char key[80];
    snprintf(key, sizeof key, "\r\n%s:", name);
    const char *p = strcasestr(head, key);
    if (!p)
        return;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

/* ---- the fakes server and the clients ------------------------------------------------------- */

static struct server fk;
static uv_loop_t loop;
static http_client_t *client;
static providers_t *prov;
static config_t cfg;
static char self[128];
static char env_webhook[128];

static const char *fake_env[] = {"OPENAI_WEBHOOK_SECRET=" SECRET,
                                 "REMOTION_WEBHOOK_SECRET=" RM_SECRET,
                                 env_webhook,
                                 "FAKE_CLIP_SIZE=64x112",
                                 "FAKE_CLIP_SECONDS=0.5",
                                 "FAKE_VIDEO_DELAY_MS=20",
                                 "FAKE_VIDEO_FAIL_INDEX=1",
                                 "ALLOW_PRIVATE_URLS=true",
                                 "TRANSCODE_PRESET=ultrafast",
                                 "RENDER_SCALE=0.1",
                                 "LOG_LEVEL=info",
                                 NULL};

static void make_providers(const char *const *extra) {
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    const char *base[] = {"PROVIDERS=fake",
                          "SAFETY_PROVIDER=openai",
                          "RENDER_PROVIDER=remotion",
                          "TELEGRAM_BOT_TOKEN=123456:secret-bot-token",
                          "UPLOAD_POST_USER=mylo_test",
                          NULL};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *list = pass == 0 ? base : extra;
        for (const char *const *e = list; e && *e; e++) {
            char name[64];
            const char *eq = strchr(*e, '=');
            snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
            cr_assert_eq(config_set(&cfg, name, eq + 1, CS_FLAG, &err), 0, "%s", err.data);
        }
    }
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data ? err.data : "");
    uv_loop_init(&loop);
    cr_assert_eq(http_client_new(&loop, &(struct http_client_opts){0}, &client), 0);
    cr_assert_eq(providers_new(&loop, &cfg, client, self, &prov, &err), 0, "%s",
                 err.data ? err.data : "");
    buf_release(&err);
}

static void setup(void) {
    log_setup(LOG_WARN, false);
    metrics_init();
    cap_start();
    snprintf(env_webhook, sizeof env_webhook, "MYLOWARE_URL=http://127.0.0.1:%d", cap_port);
    fakes_start_in(&fk, NULL, fake_env);
    snprintf(self, sizeof self, "http://127.0.0.1:%d", fk.port);
    make_providers(NULL);
}

static void teardown(void) {
    providers_free(prov);
    http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    config_release(&cfg);
    if (fk.pid > 0)
        cr_assert_eq(server_stop(&fk, SIGTERM, 30000), 0, "fakes serve exits 0 on SIGTERM");
    cap_end();
    metrics_release();
}

TestSuite(providers, .init = setup, .fini = teardown, .timeout = 240);

/* Until a completion set *flag (or ms): see tests/support/loopwait.h for why not a plain
 * uv_run(UV_RUN_ONCE) loop (a completion in the timer phase went unseen until the deadline). */
static bool run_until(int *flag, int ms) { return h_loop_run_until(&loop, flag, ms); }

/* ---- llm ------------------------------------------------------------------------------------ */

struct llm_got {
    int done;
    enum prov_outcome outcome;
    char error[512];
    char *content;
    json_t *message;
    char tool[64];
    char *args;
    size_t ncalls;
};

static void on_llm(const struct llm_result *r, void *ud) {
    struct llm_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    g->content = r->content ? strdup(r->content) : NULL;
    g->message = r->message ? json_deep_copy(r->message) : NULL;
    g->ncalls = r->ntool_calls;
    if (r->ntool_calls) {
        snprintf(g->tool, sizeof g->tool, "%s", r->tool_calls[0].name);
        g->args = strdup(r->tool_calls[0].arguments);
    }
}

static void llm_got_free(struct llm_got *g) {
    free(g->content);
    free(g->args);
    json_decref(g->message);
}

static struct llm_got chat(json_t *messages, json_t *tools) {
    struct llm_got g = {0};
    struct llm_request req = {.messages = messages, .tools = tools};
    cr_assert_eq(provider_llm_chat(prov, &req, on_llm, &g, NULL), 0);
    cr_assert_eq(g.done, 0, "never inside the call");
    cr_assert(run_until(&g.done, WAIT_MS), "the chat answered");
    return g;
}

static json_t *ideator_messages(const char *brief, const char *project, int count) {
    char sys[400];
    snprintf(sys, sizeof sys,
             "You are the ideator.\n```json\n{\"project\": \"%s\", \"video_count\": %d}\n```",
             project, count);
    char user[2000];
    snprintf(user, sizeof user, "Brief:\n%s", brief);
    return json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content", sys, "role", "user",
                     "content", user);
}

static json_t *tool(const char *name, const char *params_json) {
    json_t *params = json_loads(params_json, 0, NULL);
    cr_assert_not_null(params);
    return json_pack("[{s:s,s:{s:s,s:s,s:o}}]", "type", "function", "function", "name", name,
                     "description", "tool", "parameters", params);
}

/* The fenced JSON block of an ideator answer. */
static json_t *ideas_block(const char *content) {
    const char *s = strstr(content, "```json\n");
    cr_assert_not_null(s, "a fenced json block");
    s += 8;
    const char *e = strstr(s, "```");
    cr_assert_not_null(e);
    json_t *j = json_loadb(s, (size_t)(e - s), 0, NULL);
    cr_assert(json_is_object(j), "the block is a JSON object");
    return j;
}

Test(providers, llm_ideator_aismr_is_deterministic) {
    static const char *signs[] = {"Aries",       "Taurus",    "Gemini",   "Cancer",
                                  "Leo",         "Virgo",     "Libra",    "Scorpio",
                                  "Sagittarius", "Capricorn", "Aquarius", "Pisces"};
    const char *brief =
        "Gentle ASMR clips of crystals and soft fabrics, one for each zodiac sign, calm and slow, "
        "whispered voice over";
    json_t *m = ideator_messages(brief, "aismr", 12);
    struct llm_got a = chat(m, NULL), b = chat(m, NULL);
    cr_assert_eq(a.outcome, PROV_OK, "%s", a.error);
    cr_assert_eq(a.ncalls, 0, "the ideator calls no tool");
    cr_assert_not_null(a.content);
    cr_assert_str_eq(a.content, b.content, "the same brief gives the same ideas");
    cr_assert(json_equal(a.message, b.message));
    cr_assert(strstr(a.content, "## Topic"));
    for (int i = 0; i < 12; i++) {
        char h[64];
        snprintf(h, sizeof h, "### %d. %s\n", i + 1, signs[i]);
        cr_assert(strstr(a.content, h), "section '%s'", h);
    }
    json_t *block = ideas_block(a.content);
    char topic[81];
    snprintf(topic, sizeof topic, "%.80s", brief);
    cr_assert_str_eq(json_string_value(json_object_get(block, "topic")), topic,
                     "topic is the brief's first 80 chars");
    json_t *ideas = json_object_get(block, "ideas");
    cr_assert_eq(json_array_size(ideas), 12);
    for (size_t i = 0; i < 12; i++) {
        json_t *idea = json_array_get(ideas, i);
        cr_assert_eq(json_integer_value(json_object_get(idea, "index")), (json_int_t)i);
        cr_assert_str_eq(json_string_value(json_object_get(idea, "title")), signs[i]);
        cr_assert(json_is_string(json_object_get(idea, "visual")));
        cr_assert(json_is_string(json_object_get(idea, "voice_over")));
        cr_assert(json_is_string(json_object_get(idea, "overlay")));
    }
    json_decref(block);
    /* another brief, other ideas; the motivational project's count */
    json_t *m2 = ideator_messages("Morning routines that build discipline", "motivational", 2);
    struct llm_got c = chat(m2, NULL);
    cr_assert_eq(c.outcome, PROV_OK);
    cr_assert_str_neq(c.content, a.content);
    json_t *block2 = ideas_block(c.content);
    cr_assert_eq(json_array_size(json_object_get(block2, "ideas")), 2);
    cr_assert_null(strstr(c.content, "Aries"));
    json_decref(block2);
    llm_got_free(&a);
    llm_got_free(&b);
    llm_got_free(&c);
    json_decref(m);
    json_decref(m2);
}

static const char *SORA_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"videos\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\","
    "\"properties\":{\"video_index\":{\"type\":\"integer\"},\"visual_prompt\":{\"type\":\"string\"}"
    ","
    "\"voice_over\":{\"type\":\"string\"}},\"required\":[\"video_index\",\"visual_prompt\"]}}},"
    "\"required\":[\"videos\"]}";

Test(providers, llm_agents_answer_with_their_one_tool_call) {
    json_t *im = ideator_messages("Soft rain on a window at night", "aismr", 12);
    struct llm_got idea = chat(im, NULL);
    cr_assert_eq(idea.outcome, PROV_OK);
    json_t *block = ideas_block(idea.content);
    char *ideas_text = json_dumps(block, JSON_COMPACT);

    /* producer: sora_generate with one video per idea, pruned to the tool's schema */
    char user[60000];
    snprintf(user, sizeof user, "Produce the clips for these ideas:\n```json\n%s\n```", ideas_text);
    json_t *pm = json_pack(
        "[{s:s,s:s},{s:s,s:s}]", "role", "system", "content",
        "```json\n{\"project\":\"aismr\",\"video_count\":12,\"aspect_ratio\":\"9:16\"}\n```",
        "role", "user", "content", user);
    json_t *ptools = tool("sora_generate", SORA_SCHEMA);
    struct llm_got p = chat(pm, ptools);
    cr_assert_eq(p.outcome, PROV_OK, "%s", p.error);
    cr_assert_eq(p.ncalls, 1);
    cr_assert_str_eq(p.tool, "sora_generate");
    json_t *args = json_loads(p.args, 0, NULL);
    json_t *videos = json_object_get(args, "videos");
    cr_assert_eq(json_array_size(videos), 12);
    cr_assert_null(json_object_get(args, "aspect_ratio"),
                   "properties the schema lacks are dropped");
    for (size_t i = 0; i < 12; i++) {
        json_t *v = json_array_get(videos, i);
        cr_assert_eq(json_integer_value(json_object_get(v, "video_index")), (json_int_t)i);
        cr_assert(json_is_string(json_object_get(v, "visual_prompt")));
    }
    json_decref(args);

    /* after the tool result: text only */
    json_t *after = json_deep_copy(pm);
    json_array_append(after, p.message);
    json_array_append_new(after, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id",
                                           "call_x", "content", "{\"submitted\":12}"));
    struct llm_got done = chat(after, ptools);
    cr_assert_eq(done.outcome, PROV_OK);
    cr_assert_eq(done.ncalls, 0);
    cr_assert_not_null(done.content);

    /* without ideas the producer cannot call its tool */
    json_t *bare = json_pack("[{s:s,s:s}]", "role", "user", "content", "Make some videos");
    struct llm_got none = chat(bare, ptools);
    cr_assert_eq(none.outcome, PROV_OK);
    cr_assert_eq(none.ncalls, 0);

    /* editor: remotion_render with the clips and the overlays */
    char euser[60000];
    snprintf(euser, sizeof euser,
             "```json\n%s\n```\n```json\n{\"project\":\"aismr\",\"clip_seconds\":8,\"clips\":["
             "\"http://x/c0.mp4\","
             "\"http://x/c1.mp4\"]}\n```",
             ideas_text);
    json_t *em = json_pack("[{s:s,s:s}]", "role", "user", "content", euser);
    json_t *etools = tool("remotion_render",
                          "{\"type\":\"object\",\"properties\":{\"clips\":{\"type\":\"array\"},"
                          "\"template\":{\"type\":\"string\"},\"texts\":{\"type\":\"array\"},"
                          "\"duration_seconds\":{\"type\":\"number\"}}}");
    struct llm_got e = chat(em, etools);
    cr_assert_eq(e.ncalls, 1);
    cr_assert_str_eq(e.tool, "remotion_render");
    json_t *eargs = json_loads(e.args, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(eargs, "clips")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(eargs, "template")), "aismr");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(eargs, "texts"), 0)),
                     "Aries");
    cr_assert_eq(json_number_value(json_object_get(eargs, "duration_seconds")), 16.0);
    json_decref(eargs);

    /* publisher: caption from the template, at most 150 characters, 3-8 tags without '#' */
    json_t *um = json_pack("[{s:s,s:s}]", "role", "user", "content",
                           "```json\n{\"video_url\":\"http://127.0.0.1:1/v1/media/video/"
                           "r.mp4\",\"topic\":\"Soft rain on a window at night, "
                           "recorded close with binaural microphones for deep relaxation and "
                           "sleep\",\"caption_template\":\"{topic} — "
                           "watch till the end for the calmest moment of your day, and follow for "
                           "more every single night\","
                           "\"tags\":[\"#asmr\",\"rain\"]}\n```");
    json_t *utools = tool(
        "upload_post", "{\"type\":\"object\",\"properties\":{\"video_url\":{\"type\":\"string\"},"
                       "\"caption\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\"}}}");
    struct llm_got u = chat(um, utools);
    cr_assert_eq(u.ncalls, 1);
    cr_assert_str_eq(u.tool, "upload_post");
    json_t *uargs = json_loads(u.args, 0, NULL);
    const char *caption = json_string_value(json_object_get(uargs, "caption"));
    cr_assert(strncmp(caption, "Soft rain on a window at night", 30) == 0, "%s", caption);
    size_t chars = 0;
    for (const char *c = caption; *c; c++)
        chars += ((unsigned char)*c & 0xc0) != 0x80;
    cr_assert(chars <= 150, "caption of %zu characters", chars);
    cr_assert(chars >= 140, "the template was filled (%zu characters)", chars);
    json_t *tags = json_object_get(uargs, "tags");
    cr_assert(json_array_size(tags) >= 3 && json_array_size(tags) <= 8);
    cr_assert_str_eq(json_string_value(json_array_get(tags, 0)), "asmr", "no '#'");
    cr_assert_str_eq(json_string_value(json_object_get(uargs, "video_url")),
                     "http://127.0.0.1:1/v1/media/video/r.mp4");
    json_decref(uargs);

    free(ideas_text);
    json_decref(block);
    json_decref(im);
    json_decref(pm);
    json_decref(ptools);
    json_decref(after);
    json_decref(bare);
    json_decref(em);
    json_decref(etools);
    json_decref(um);
    json_decref(utools);
    llm_got_free(&idea);
    llm_got_free(&p);
    llm_got_free(&done);
    llm_got_free(&none);
    llm_got_free(&e);
    llm_got_free(&u);
}

Test(providers, llm_bad_requests) {
    struct llm_got g = {0};
    struct llm_request req = {.messages = json_array()};
    cr_assert_eq(provider_llm_chat(prov, &req, on_llm, &g, NULL), ERR_INVAL,
                 "an empty conversation");
    json_decref(req.messages);
    /* the fake refuses a message without a role: a permanent error with its message */
    json_t *m = json_pack("[{s:s}]", "content", "hi");
    struct llm_got b = chat(m, NULL);
    cr_assert_eq(b.outcome, PROV_PERMANENT);
    cr_assert(strstr(b.error, "llm: ") == b.error, "%s", b.error);
    cr_assert(strstr(b.error, "HTTP 400"), "%s", b.error);
    cr_assert(strstr(b.error, "must be an object with a role"), "the provider's message: %s",
              b.error);
    json_decref(m);
    llm_got_free(&b);
}

/* ---- sora ----------------------------------------------------------------------------------- */

struct sora_got {
    int done;
    enum prov_outcome outcome;
    int http_status;
    char error[512], id[64], status[32], verror[300];
    int progress;
};

static void on_sora(const struct sora_result *r, void *ud) {
    struct sora_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    g->http_status = r->st.http_status;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->id, sizeof g->id, "%s", r->video.id ? r->video.id : "");
    snprintf(g->status, sizeof g->status, "%s", r->video.status ? r->video.status : "");
    snprintf(g->verror, sizeof g->verror, "%s", r->video.error ? r->video.error : "");
    g->progress = r->video.progress;
}

static struct sora_got sora_create(int index, const char *key) {
    struct sora_got g = {0};
    struct sora_create_req req = {.prompt = "A calm macro shot of rain drops",
                                  .seconds = 8,
                                  .size = "720x1280",
                                  .idempotency_key = key,
                                  .video_index = index};
    cr_assert_eq(provider_sora_create(prov, &req, on_sora, &g, NULL), 0);
    cr_assert(run_until(&g.done, WAIT_MS));
    return g;
}

static struct sora_got sora_wait(const char *id, const char *want) {
    int64_t until = h_now_ms() + WAIT_MS;
    struct sora_got g;
    do {
        g = (struct sora_got){0};
        cr_assert_eq(provider_sora_status(prov, id, on_sora, &g, NULL), 0);
        cr_assert(run_until(&g.done, WAIT_MS));
        cr_assert_eq(g.outcome, PROV_OK, "%s", g.error);
        if (strcmp(g.status, want) == 0)
            return g;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    } while (h_now_ms() < until);
    cr_assert_fail("video %s never became %s (last %s)", id, want, g.status);
    return g;
}

struct dl_got {
    int done;
    enum prov_outcome outcome;
    char error[512];
    uint64_t bytes;
};

static void on_dl(const struct download_result *r, void *ud) {
    struct dl_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    g->bytes = r->bytes;
}

static void verify_event(const struct captured *c, const char *type, const char *video_id) {
    char id[128], ts[64], sig[512];
    head_value(c->head, "webhook-id", id, sizeof id);
    head_value(c->head, "webhook-timestamp", ts, sizeof ts);
    head_value(c->head, "webhook-signature", sig, sizeof sig);
    const char *why = "";
    cr_assert_eq(webhook_verify_standard(SECRET, id, ts, sig, c->body, c->body_len,
                                         clock_now_ms() / 1000, &why),
                 0, "the event verifies: %s", why);
    json_t *j = json_loads(c->body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "event");
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), type);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "data"), "id")),
                     video_id);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), id, "webhook-id is the event id");
    json_decref(j);
}

Test(providers, sora_create_status_download_and_signed_event) {
    struct sora_got c = sora_create(0, "run-1:0");
    cr_assert_eq(c.outcome, PROV_OK, "%s", c.error);
    cr_assert(strncmp(c.id, "video_", 6) == 0, "%s", c.id);
    struct sora_got again = sora_create(0, "run-1:0");
    cr_assert_str_eq(again.id, c.id, "the same Idempotency-Key gives the same video");
    struct sora_got other = sora_create(2, "run-1:2");
    cr_assert_str_neq(other.id, c.id);

    struct sora_got s = sora_wait(c.id, "completed");
    cr_assert_eq(s.progress, 100);
    char path[400];
    snprintf(path, sizeof path, "%s/clip0.mp4", fk.dir);
    struct dl_got d = {0};
    cr_assert_eq(provider_sora_download(prov, c.id, path, on_dl, &d, NULL), 0);
    cr_assert(run_until(&d.done, WAIT_MS));
    cr_assert_eq(d.outcome, PROV_OK, "%s", d.error);
    struct media_info info;
    buf_t err;
    buf_init(&err, 512);
    cr_assert_eq(media_probe(path, &info, &err), 0, "a real clip: %s", err.data ? err.data : "");
    buf_release(&err);
    cr_assert_str_eq(info.video_codec, "h264");
    cr_assert_eq(info.width, 64);
    cr_assert_eq(info.height, 112);
    cr_assert(info.has_audio, "with a tone");
    cr_assert((uint64_t)d.bytes > 1000);

    struct captured ev;
    cr_assert(cap_wait("/v1/webhooks/sora", c.id, WAIT_MS, &ev), "the video event arrived");
    verify_event(&ev, "video.completed", c.id);
    free(ev.body);
}

Test(providers, sora_fail_index_sends_video_failed) {
    struct sora_got c = sora_create(1, "run-2:1");
    cr_assert_eq(c.outcome, PROV_OK, "%s", c.error);
    struct sora_got s = sora_wait(c.id, "failed");
    cr_assert(strstr(s.verror, "FAKE_VIDEO_FAIL_INDEX"), "%s", s.verror);
    struct captured ev;
    cr_assert(cap_wait("/v1/webhooks/sora", c.id, WAIT_MS, &ev));
    verify_event(&ev, "video.failed", c.id);
    free(ev.body);
    /* its content does not exist */
    char path[400];
    snprintf(path, sizeof path, "%s/failed.mp4", fk.dir);
    struct dl_got d = {0};
    cr_assert_eq(provider_sora_download(prov, c.id, path, on_dl, &d, NULL), 0);
    cr_assert(run_until(&d.done, WAIT_MS));
    cr_assert_eq(d.outcome, PROV_PERMANENT);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "nothing written");
}

Test(providers, sora_errors) {
    struct sora_got g = {0};
    cr_assert_eq(provider_sora_status(prov, "video_doesnotexist", on_sora, &g, NULL), 0);
    cr_assert(run_until(&g.done, WAIT_MS));
    cr_assert_eq(g.outcome, PROV_PERMANENT);
    cr_assert_eq(g.http_status, 404);
    cr_assert(strstr(g.error, "Video not found"), "%s", g.error);
    struct sora_create_req bad = {
        .prompt = "x", .seconds = 5, .size = "720x1280", .video_index = -1};
    cr_assert_eq(provider_sora_create(prov, &bad, on_sora, &g, NULL), ERR_INVAL);
    cr_assert_eq(provider_sora_status(prov, "../../etc/passwd", on_sora, &g, NULL), ERR_INVAL,
                 "ids go into paths");
}

/* ---- safety, publish, notify ---------------------------------------------------------------- */

struct misc_got {
    int done;
    enum prov_outcome outcome;
    char error[512];
    bool flagged;
    char category[64], status[32], url[300], request_id[80];
};

static void on_safety(const struct safety_result *r, void *ud) {
    struct misc_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    g->flagged = r->flagged;
    snprintf(g->category, sizeof g->category, "%s", r->category ? r->category : "");
}

Test(providers, safety_flags_the_test_phrase) {
    struct misc_got a = {0}, b = {0};
    cr_assert_eq(provider_safety_check(prov, "A calm video about rain", on_safety, &a, NULL), 0);
    cr_assert(run_until(&a.done, WAIT_MS));
    cr_assert_eq(a.outcome, PROV_OK, "%s", a.error);
    cr_assert(!a.flagged);
    cr_assert_eq(
        provider_safety_check(prov, "this has a FORBIDDEN-TEST-PHRASE in it", on_safety, &b, NULL),
        0);
    cr_assert(run_until(&b.done, WAIT_MS));
    cr_assert_eq(b.outcome, PROV_OK);
    cr_assert(b.flagged);
    cr_assert_str_eq(b.category, "violence");
}

static void on_publish(const struct publish_result *r, void *ud) {
    struct misc_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->status, sizeof g->status, "%s", r->status ? r->status : "");
    snprintf(g->url, sizeof g->url, "%s", r->url ? r->url : "");
    snprintf(g->request_id, sizeof g->request_id, "%s", r->request_id ? r->request_id : "");
}

Test(providers, publish_upload_gives_a_tiktok_url) {
    const char *tags[] = {"asmr", "rain", "sleep"};
    struct publish_req req = {.video_url = "https://media.example.com/v1/media/video/run.mp4",
                              .caption = "Soft rain for sleep",
                              .tags = tags,
                              .ntags = 3};
    struct misc_got a = {0}, b = {0};
    cr_assert_eq(provider_publish_upload(prov, &req, on_publish, &a, NULL), 0);
    cr_assert(run_until(&a.done, WAIT_MS));
    cr_assert_eq(a.outcome, PROV_OK, "%s", a.error);
    cr_assert_str_eq(a.status, "published");
    regex_t re;
    regcomp(&re, "^https://www\\.tiktok\\.com/@mylo_test/video/[1-9][0-9]{18}$",
            REG_EXTENDED | REG_NOSUB);
    cr_assert_eq(regexec(&re, a.url, 0, NULL, 0), 0, "%s", a.url);
    regfree(&re);
    cr_assert_eq(provider_publish_upload(prov, &req, on_publish, &b, NULL), 0);
    cr_assert(run_until(&b.done, WAIT_MS));
    cr_assert_str_eq(b.url, a.url, "the same upload, the same URL");
    /* a status poll for an unknown request is a permanent 404 */
    struct misc_got c = {0};
    cr_assert_eq(provider_publish_status(prov, "req_0000", on_publish, &c, NULL), 0);
    cr_assert(run_until(&c.done, WAIT_MS));
    cr_assert_eq(c.outcome, PROV_PERMANENT);
    cr_assert(strstr(c.error, "Upload not found"), "%s", c.error);
}

static void on_notify(const struct notify_result *r, void *ud) {
    struct misc_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
}

Test(providers, notify_telegram_without_leaking_the_token) {
    cr_assert(providers_notify_enabled(prov));
    struct misc_got a = {0}, b = {0};
    cr_assert_eq(
        provider_notify_send(prov, "42", "Run abc waits for your approval", on_notify, &a, NULL),
        0);
    cr_assert(run_until(&a.done, WAIT_MS));
    cr_assert_eq(a.outcome, PROV_OK, "%s", a.error);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* cut to 4096 by the client, so accepted; an empty text is refused by the API */
    cr_assert_eq(provider_notify_send(prov, "42", "", on_notify, &b, NULL), 0);
    cr_assert(run_until(&b.done, WAIT_MS));
    cr_assert_eq(b.outcome, PROV_PERMANENT);
    cr_assert(strstr(b.error, "bot***"), "%s", b.error);
    cr_assert_null(strstr(b.error, "secret-bot-token"), "%s", b.error);
}

/* ---- render ------------------------------------------------------------------------------- */

struct render_got {
    int done;
    enum prov_outcome outcome;
    char error[512], job_id[64], status[32], output_url[400];
    double progress;
};

static void on_render(const struct render_result *r, void *ud) {
    struct render_got *g = ud;
    g->done = 1;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->job_id, sizeof g->job_id, "%s", r->job.job_id ? r->job.job_id : "");
    snprintf(g->status, sizeof g->status, "%s", r->job.status ? r->job.status : "");
    snprintf(g->output_url, sizeof g->output_url, "%s", r->job.output_url ? r->job.output_url : "");
    g->progress = r->job.progress;
}

Test(providers, remotion_render_with_signed_callback) {
    snprintf(clip_path, sizeof clip_path, "%s/src.mp4", fk.dir);
    buf_t err;
    buf_init(&err, 512);
    struct media_synth_opts so = {.output = clip_path,
                                  .width = 64,
                                  .height = 112,
                                  .fps = 30,
                                  .seconds = 0.5,
                                  .clip_number = 3};
    cr_assert_eq(media_synth_clip(&so, &err), 0, "%s", err.data ? err.data : "");
    char c0[128], c1[128], cb[160];
    snprintf(c0, sizeof c0, "http://127.0.0.1:%d/clip0.mp4", cap_port);
    snprintf(c1, sizeof c1, "http://127.0.0.1:%d/clip1.mp4", cap_port);
    snprintf(cb, sizeof cb, "http://127.0.0.1:%d/v1/webhooks/remotion?run_id=r-1", cap_port);
    const char *clips[] = {c0, c1}, *texts[] = {"One", "Two"};
    struct render_submit_req req = {.run_id = "r-1",
                                    .clips = clips,
                                    .nclips = 2,
                                    .duration_frames = 30,
                                    .fps = 30,
                                    .width = 1080,
                                    .height = 1920,
                                    .callback_url = cb,
                                    .template_name = "aismr",
                                    .texts = texts,
                                    .ntexts = 2};
    struct render_got s = {0};
    cr_assert_eq(provider_render_submit(prov, &req, on_render, &s, NULL), 0);
    cr_assert(run_until(&s.done, WAIT_MS));
    cr_assert_eq(s.outcome, PROV_OK, "%s", s.error);
    cr_assert(strncmp(s.job_id, "rjob_", 5) == 0);
    cr_assert_str_eq(s.status, "queued");

    struct captured ev;
    cr_assert(cap_wait("/v1/webhooks/remotion", s.job_id, WAIT_MS, &ev),
              "the render callback arrived");
    char sig[300];
    head_value(ev.head, "X-Remotion-Signature", sig, sizeof sig);
    const char *why = "";
    cr_assert_eq(webhook_verify_remotion(RM_SECRET, sig, ev.body, ev.body_len, &why), 0,
                 "signed: %s", why);
    json_t *j = json_loads(ev.body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "done", "%s", ev.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "run_id")), "r-1");
    json_decref(j);
    free(ev.body);

    struct render_got st = {0};
    cr_assert_eq(provider_render_status(prov, s.job_id, on_render, &st, NULL), 0);
    cr_assert(run_until(&st.done, WAIT_MS));
    cr_assert_str_eq(st.status, "done");
    cr_assert_eq(st.progress, 1.0);
    cr_assert(strstr(st.output_url, "/_fake/remotion/output/"), "%s", st.output_url);
    char out[400];
    snprintf(out, sizeof out, "%s/render.mp4", fk.dir);
    struct dl_got d = {0};
    cr_assert_eq(provider_download_url(prov, PK_RENDER, st.output_url, out, on_dl, &d, NULL), 0);
    cr_assert(run_until(&d.done, WAIT_MS));
    cr_assert_eq(d.outcome, PROV_OK, "the fakes' own URL passes the guard: %s", d.error);
    struct media_info info;
    cr_assert_eq(media_probe(out, &info, &err), 0, "%s", err.data ? err.data : "");
    cr_assert_str_eq(info.video_codec, "h264");
    cr_assert_eq(info.width, 108, "RENDER_SCALE 0.1 of 1080");
    cr_assert_eq(info.height, 192);
    cr_assert(info.duration > 0.8 && info.duration < 1.3, "two clips of 0.5 s: %.2f",
              info.duration);
    buf_release(&err);

    struct render_got nf = {0};
    cr_assert_eq(provider_render_status(prov, "rjob_0000", on_render, &nf, NULL), 0);
    cr_assert(run_until(&nf.done, WAIT_MS));
    cr_assert_eq(nf.outcome, PROV_PERMANENT);
    cr_assert_str_eq(nf.error, "render: Job not found: rjob_0000");
}

/* ---- durability and production ----------------------------------------------------------------
 */

Test(providers, video_jobs_survive_kill_9) {
    /* a second fakes server whose events wait 3 s: killed before it sends anything */
    struct server slow;
    const char *env[] = {"OPENAI_WEBHOOK_SECRET=" SECRET, env_webhook,
                         "FAKE_CLIP_SIZE=64x112",         "FAKE_CLIP_SECONDS=0.5",
                         "FAKE_VIDEO_DELAY_MS=3000",      NULL};
    fakes_start_in(&slow, NULL, env);
    char req[200];
    snprintf(req, sizeof req, "{\"prompt\":\"durable\",\"seconds\":\"4\",\"size\":\"720x1280\"}");
    struct resp r;
    cr_assert(h_request(
        slow.port, "POST", "/_fake/openai/v1/videos",
        "Content-Type: application/json\r\nAuthorization: Bearer x\r\nIdempotency-Key: dur-1\r\n"
        "X-Myloware-Video-Index: 4\r\n",
        req, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    resp_free(&r);
    cr_assert_eq(server_stop(&slow, SIGKILL, 10000), 128 + SIGKILL);
    cr_assert_eq(cap_count(id), 0, "no event before the kill");

    fakes_start_in(&slow, slow.dir, env);
    char path[200];
    snprintf(path, sizeof path, "/_fake/openai/v1/videos/%s", id);
    int64_t until = h_now_ms() + WAIT_MS;
    bool completed = false;
    while (!completed && h_now_ms() < until) {
        cr_assert(h_request(slow.port, "GET", path, "Authorization: Bearer x\r\n", NULL, &r));
        cr_assert_eq(r.status, 200, "the job is still known after the restart: %s", r.body);
        completed = strstr(r.body, "\"status\":\"completed\"") != NULL;
        resp_free(&r);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    cr_assert(completed);
    struct captured ev;
    cr_assert(cap_wait("/v1/webhooks/sora", id, WAIT_MS, &ev),
              "the event is sent after the restart");
    verify_event(&ev, "video.completed", id);
    free(ev.body);
    cr_assert_eq(server_stop(&slow, SIGTERM, 30000), 0);
}

Test(providers, production_mounts_no_fakes) {
    struct server prod;
    const char *env[] = {"ENVIRONMENT=production", "API_KEY=prod-key-123",
                         "PUBLIC_BASE_URL=https://mylo.example.com",
                         "OPENAI_WEBHOOK_SECRET=" SECRET, NULL};
    server_start(&prod, env);
    struct resp r;
    cr_assert(h_request(prod.port, "POST", "/_fake/openai/v1/moderations",
                        "Content-Type: application/json\r\nAuthorization: Bearer x\r\n",
                        "{\"input\":\"hi\"}", &r));
    cr_assert_eq(r.status, 404, "%s", r.body);
    resp_free(&r);
    cr_assert_eq(server_stop(&prod, SIGTERM, 30000), 0);
    /* and the fakes alone refuse to start */
    char out[2000];
    const char *args[] = {"fakes", "serve", "--port=0", NULL};
    const char *penv[] = {"ENVIRONMENT=production", "API_KEY=prod-key-123",
                          "PUBLIC_BASE_URL=https://mylo.example.com",
                          "OPENAI_WEBHOOK_SECRET=" SECRET, NULL};
    cr_assert_eq(run_cmd(args, penv, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "never run with ENVIRONMENT=production"), "%s", out);
}

Test(providers, serve_mounts_the_fakes_in_development) {
    struct server dev;
    server_start(&dev, NULL);
    struct resp r;
    cr_assert(h_request(dev.port, "POST", "/_fake/openai/v1/moderations",
                        "Content-Type: application/json\r\nAuthorization: Bearer x\r\n",
                        "{\"input\":[\"fine\",\"forbidden-test-phrase\"]}", &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *res = json_object_get(j, "results");
    cr_assert(json_is_false(json_object_get(json_array_get(res, 0), "flagged")));
    cr_assert(json_is_true(json_object_get(json_array_get(res, 1), "flagged")));
    json_decref(j);
    resp_free(&r);
    cr_assert_eq(server_stop(&dev, SIGTERM, 30000), 0);
}

Test(providers, fakes_serve_usage) {
    char out[4000];
    const char *help[] = {"fakes", "serve", "--help", NULL};
    cr_assert_eq(run_cmd(help, NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "usage: myloware fakes serve"), "%s", out);
    const char *bad[] = {"fakes", "serve", "--bogus", NULL};
    cr_assert_eq(run_cmd(bad, NULL, out, sizeof out), 2, "%s", out);
}
