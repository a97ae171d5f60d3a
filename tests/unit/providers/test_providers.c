/*
 * test_providers: the real provider clients in real mode against a scripted HTTP server on
 * 127.0.0.1 that answers what real APIs may answer badly: not JSON, missing fields, malformed
 * tool calls, success:false, error bodies that quote our key. Plus modes and base URLs from
 * the configuration, calls that fail before sending (a missing key), and cancel.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "providers/providers.h"

#define KEY "sk-test-0123456789abcdef"

/* ---- scripted server: the answer for the next request ------------------------------------- */

static int lfd, port;
static pthread_t th;
static volatile int stop_srv;
static char answer_status[64] = "200 OK";
static char answer_body[8192];
static char last_request[16384];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *srv(void *arg) {
    while (!stop_srv) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        char req[16384];
        size_t len = 0;
        char *eoh = NULL;
        while (!eoh && len < sizeof req - 1) {
            ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
            if (r <= 0)
                break;
            len += (size_t)r;
            req[len] = '\0';
            eoh = strstr(req, "\r\n\r\n");
        }
        const char *cl = strcasestr(req, "\r\nContent-Length:");
        size_t clen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        while (eoh && len - (size_t)(eoh + 4 - req) < clen && len < sizeof req - 1) {
            ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
            if (r <= 0)
                break;
            len += (size_t)r;
            req[len] = '\0';
        }
        pthread_mutex_lock(&mu);
        snprintf(last_request, sizeof last_request, "%s", req);
        char out[9000];
        int n = snprintf(out, sizeof out,
                         "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: "
                         "%zu\r\nConnection: close\r\n\r\n%s",
                         answer_status, strlen(answer_body), answer_body);
        pthread_mutex_unlock(&mu);
        if (send(fd, out, (size_t)n, MSG_NOSIGNAL) < 0)
            fprintf(stderr, "send failed\n");
        shutdown(fd, SHUT_WR);
        char drain[256];
        struct pollfd q = {fd, POLLIN, 0};
        while (poll(&q, 1, 1000) > 0 && recv(fd, drain, sizeof drain, 0) > 0) {
        }
        close(fd);
    }
    return NULL;
}

static void answer(const char *status, const char *body) {
    pthread_mutex_lock(&mu);
    snprintf(answer_status, sizeof answer_status, "%s", status);
    snprintf(answer_body, sizeof answer_body, "%s", body);
    pthread_mutex_unlock(&mu);
}

static uv_loop_t loop;
static http_client_t *client;
static providers_t *prov;
static config_t cfg;

static void make(const char *const *settings) {
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    for (const char *const *e = settings; *e; e++) {
        char name[64];
        const char *eq = strchr(*e, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        cr_assert_eq(config_set(&cfg, name, eq + 1, CS_FLAG, &err), 0, "%s", err.data);
    }
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data ? err.data : "");
    cr_assert_eq(providers_new(&loop, &cfg, client, "http://127.0.0.1:9", &prov, &err), 0, "%s",
                 err.data ? err.data : "");
    buf_release(&err);
}

static void setup(void) {
    log_setup(LOG_ERROR, false);
    metrics_init();
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    listen(lfd, 16);
    stop_srv = 0;
    pthread_create(&th, NULL, srv, NULL);
    uv_loop_init(&loop);
    cr_assert_eq(http_client_new(&loop, &(struct http_client_opts){0}, &client), 0);
    char llm[128], openai[128], remotion[128], up[128];
    snprintf(llm, sizeof llm, "LLM_BASE_URL=http://127.0.0.1:%d/v1", port);
    snprintf(openai, sizeof openai, "OPENAI_BASE_URL=http://127.0.0.1:%d", port);
    snprintf(remotion, sizeof remotion, "REMOTION_SERVICE_URL=http://127.0.0.1:%d/", port);
    snprintf(up, sizeof up, "UPLOAD_POST_API_URL=http://127.0.0.1:%d", port);
    const char *s[] = {"PROVIDERS=real",
                       "SAFETY_PROVIDER=openai",
                       "RENDER_PROVIDER=remotion",
                       llm,
                       openai,
                       remotion,
                       up,
                       "LLM_API_KEY=" KEY,
                       "OPENAI_API_KEY=" KEY,
                       "UPLOAD_POST_API_KEY=up-key-123456",
                       NULL};
    make(s);
}

static void teardown(void) {
    providers_free(prov);
    http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    config_release(&cfg);
    stop_srv = 1;
    pthread_join(th, NULL);
    close(lfd);
    metrics_release();
}

TestSuite(real, .init = setup, .fini = teardown, .timeout = 60);

/* A completion may run in the timer phase of uv_run(UV_RUN_ONCE), after which that call would
 * still block in poll: a 10 ms tick makes every turn come back so the flag is seen. */
struct deadline {
    bool expired;
    uint64_t until;
};

static void on_tick(uv_timer_t *t) {
    struct deadline *d = t->data;
    if (uv_now(t->loop) >= d->until)
        d->expired = true;
}

static void run_until(int *flag) {
    uv_timer_t t;
    uv_update_time(&loop);
    struct deadline d = {false, uv_now(&loop) + 20000};
    uv_timer_init(&loop, &t);
    t.data = &d;
    uv_timer_start(&t, on_tick, 10, 10);
    while (!*flag && !d.expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert(*flag, "answered within 20 s");
}

struct got {
    int done;
    enum prov_outcome outcome;
    int http_status, retry_after;
    char error[600], text[600];
    size_t n;
};

static void on_llm(const struct llm_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    g->http_status = r->st.http_status;
    g->retry_after = r->st.retry_after_s;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    g->n = r->ntool_calls;
    if (r->ntool_calls)
        snprintf(g->text, sizeof g->text, "%s(%s)", r->tool_calls[0].name,
                 r->tool_calls[0].arguments);
    else
        snprintf(g->text, sizeof g->text, "%s", r->content ? r->content : "(null)");
}

static struct got llm(void) {
    json_t *m = json_pack("[{s:s,s:s}]", "role", "user", "content", "hi");
    struct llm_request req = {.messages = m};
    struct got g = {0};
    cr_assert_eq(provider_llm_chat(prov, &req, on_llm, &g, NULL), 0);
    json_decref(m);
    run_until(&g.done);
    cr_assert_eq(g.done, 1, "one callback");
    return g;
}

Test(real, llm_request_shape_and_answer) {
    answer("200 OK", "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "null,\"tool_calls\":"
                     "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"sora_"
                     "generate\",\"arguments\":"
                     "\"{\\\"videos\\\":[]}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":{"
                     "\"prompt_tokens\":3}}");
    struct got g = llm();
    cr_assert_eq(g.outcome, PROV_OK, "%s", g.error);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.text, "sora_generate({\"videos\":[]})");
    pthread_mutex_lock(&mu);
    cr_assert(strstr(last_request, "POST /v1/chat/completions HTTP/1.1"), "%s", last_request);
    cr_assert(strstr(last_request, "Authorization: Bearer " KEY));
    cr_assert(strstr(last_request, "\"model\":\"gpt-4o-mini\""), "LLM_MODEL by default");
    cr_assert(strstr(last_request, "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"));
    pthread_mutex_unlock(&mu);
}

Test(real, llm_bad_answers_are_permanent_with_a_clear_message) {
    struct {
        const char *body, *want;
    } cases[] = {
        {"not json at all", "llm: answer is not JSON"},
        {"[1,2]", "llm: answer is not a JSON object"},
        {"{\"choices\":[]}", "llm: answer has no choices[0].message"},
        {"{\"choices\":[{\"message\":{\"content\":5}}]}",
         "llm: message content is neither a string nor null"},
        {"{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":{}}}]}",
         "llm: tool_calls is not an array"},
        {"{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\","
         "\"function\":{\"name\":\"x\",\"arguments\":{}}}]}}]}",
         "llm: tool call 0 is not {id, type: function, function: {name, arguments}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        answer("200 OK", cases[i].body);
        struct got g = llm();
        cr_assert_eq(g.outcome, PROV_PERMANENT, "case %zu", i);
        cr_assert(strncmp(g.error, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: %s", i,
                  g.error);
    }
}

Test(real, llm_errors_are_classified_and_never_quote_the_key) {
    answer("401 Unauthorized", "{\"error\":{\"message\":\"Incorrect API key provided: " KEY "\"}}");
    struct got g = llm();
    cr_assert_eq(g.outcome, PROV_PERMANENT);
    cr_assert_eq(g.http_status, 401);
    cr_assert(strstr(g.error, "Incorrect API key provided: ***"), "%s", g.error);
    cr_assert_null(strstr(g.error, KEY), "%s", g.error);
    answer("503 Service Unavailable", "{\"error\":{\"message\":\"overloaded\"}}");
    g = llm();
    cr_assert_eq(g.outcome, PROV_RETRY);
    cr_assert(strstr(g.error, "HTTP 503"), "%s", g.error);
    cr_assert(strstr(g.error, "overloaded"), "%s", g.error);
}

static void on_sora(const struct sora_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->text, sizeof g->text, "%s/%s/%d", r->video.id ? r->video.id : "",
             r->video.status ? r->video.status : "", r->video.progress);
}

Test(real, sora_request_and_validation) {
    answer("200 OK", "{\"id\":\"video_abc\",\"status\":\"in_progress\",\"progress\":33}");
    struct sora_create_req req = {.prompt = "p",
                                  .seconds = 12,
                                  .size = "1280x720",
                                  .idempotency_key = "r:1",
                                  .video_index = 1};
    struct got g = {0};
    cr_assert_eq(provider_sora_create(prov, &req, on_sora, &g, NULL), 0);
    run_until(&g.done);
    cr_assert_eq(g.outcome, PROV_OK, "%s", g.error);
    cr_assert_str_eq(g.text, "video_abc/in_progress/33");
    pthread_mutex_lock(&mu);
    cr_assert(strstr(last_request, "POST /v1/videos HTTP/1.1"));
    cr_assert(
        strstr(last_request,
               "{\"model\":\"sora-2\",\"prompt\":\"p\",\"seconds\":\"12\",\"size\":\"1280x720\"}"),
        "%s", last_request);
    cr_assert(strstr(last_request, "Idempotency-Key: r:1"));
    cr_assert(strstr(last_request, "X-Myloware-Video-Index: 1"));
    pthread_mutex_unlock(&mu);
    answer("200 OK", "{\"status\":\"queued\"}");
    struct got m = {0};
    cr_assert_eq(provider_sora_status(prov, "video_abc", on_sora, &m, NULL), 0);
    run_until(&m.done);
    cr_assert_eq(m.outcome, PROV_PERMANENT);
    cr_assert_str_eq(m.error, "sora: answer has no video id");
}

static void on_render(const struct render_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->text, sizeof g->text, "%s/%s/%.2f/%s", r->job.job_id ? r->job.job_id : "",
             r->job.status ? r->job.status : "", r->job.progress,
             r->job.output_url ? r->job.output_url : "");
}

Test(real, remotion_status_and_not_found) {
    answer("200 OK", "{\"status\":\"rendering\",\"progress\":0.5}");
    struct got g = {0};
    cr_assert_eq(provider_render_status(prov, "j1", on_render, &g, NULL), 0);
    run_until(&g.done);
    cr_assert_eq(g.outcome, PROV_OK, "%s", g.error);
    cr_assert_str_eq(g.text, "j1/rendering/0.50/");
    pthread_mutex_lock(&mu);
    cr_assert(strstr(last_request, "GET /api/render/j1 HTTP/1.1"),
              "the trailing '/' of the base is dropped");
    pthread_mutex_unlock(&mu);
    answer("404 Not Found", "{\"error\":\"Job not found\"}");
    struct got n = {0};
    cr_assert_eq(provider_render_status(prov, "j2", on_render, &n, NULL), 0);
    run_until(&n.done);
    cr_assert_eq(n.outcome, PROV_PERMANENT);
    cr_assert_str_eq(n.error, "render: Job not found: j2");
}

static void on_publish(const struct publish_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->text, sizeof g->text, "%s/%s/%s", r->status, r->url ? r->url : "",
             r->request_id ? r->request_id : "");
}

Test(real, uploadpost_answers) {
    const char *tags[] = {"a", "b", "c"};
    struct publish_req req = {
        .video_url = "https://x.test/v.mp4", .caption = "Hi", .tags = tags, .ntags = 3};
    struct {
        const char *body, *text, *error;
    } cases[] = {
        {"{\"success\":true,\"results\":{\"tiktok\":{\"url\":\"https://www.tiktok.com/@u/video/"
         "1\"}}}",
         "published/https://www.tiktok.com/@u/video/1/", NULL},
        {"{\"success\":true,\"request_id\":\"abc123\"}", "processing//abc123", NULL},
        {"{\"data\":{\"post_url\":\"https://t.test/p\"}}", "published/https://t.test/p/", NULL},
        {"{\"success\":false,\"message\":\"quota exceeded\"}", NULL,
         "publish: upload failed: quota exceeded"},
        {"{\"success\":true}", NULL, "publish: answer has neither a post URL nor a request_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        answer("200 OK", cases[i].body);
        struct got g = {0};
        cr_assert_eq(provider_publish_upload(prov, &req, on_publish, &g, NULL), 0);
        run_until(&g.done);
        if (cases[i].text) {
            cr_assert_eq(g.outcome, PROV_OK, "case %zu: %s", i, g.error);
            cr_assert_str_eq(g.text, cases[i].text, "case %zu", i);
        } else {
            cr_assert_eq(g.outcome, PROV_PERMANENT, "case %zu", i);
            cr_assert_str_eq(g.error, cases[i].error, "case %zu", i);
        }
    }
    pthread_mutex_lock(&mu);
    cr_assert(strstr(last_request, "Authorization: Apikey up-key-123456"));
    cr_assert(strstr(last_request, "name=\"user\"\r\n\r\nmyloware\r\n"),
              "UPLOAD_POST_USER empty: myloware");
    pthread_mutex_unlock(&mu);
}

static void on_safety(const struct safety_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
    snprintf(g->text, sizeof g->text, "%d/%s", r->flagged, r->category ? r->category : "");
}

Test(real, moderation_answers) {
    answer("200 OK",
           "{\"results\":[{\"flagged\":true,\"categories\":{\"hate\":false,\"violence\":true}}]}");
    struct got g = {0};
    cr_assert_eq(provider_safety_check(prov, "x", on_safety, &g, NULL), 0);
    run_until(&g.done);
    cr_assert_eq(g.outcome, PROV_OK);
    cr_assert_str_eq(g.text, "1/violence");
    answer("200 OK", "{\"results\":[{}]}");
    struct got b = {0};
    cr_assert_eq(provider_safety_check(prov, "x", on_safety, &b, NULL), 0);
    run_until(&b.done);
    cr_assert_eq(b.outcome, PROV_PERMANENT);
    cr_assert_str_eq(b.error, "safety: answer has no results[0].flagged");
}

static void on_notify(const struct notify_result *r, void *ud) {
    struct got *g = ud;
    g->done++;
    g->outcome = r->st.outcome;
    snprintf(g->error, sizeof g->error, "%s", r->st.error);
}

Test(real, calls_that_cannot_be_made_fail_on_the_next_turn) {
    /* notify is off without TELEGRAM_BOT_TOKEN */
    cr_assert(!providers_notify_enabled(prov));
    struct got g = {0};
    cr_assert_eq(provider_notify_send(prov, "1", "x", on_notify, &g, NULL), 0);
    cr_assert_eq(g.done, 0, "not inside the call");
    run_until(&g.done);
    cr_assert_eq(g.outcome, PROV_PERMANENT);
    cr_assert_str_eq(g.error, "notify: telegram is not configured");
    /* a real LLM without a key */
    providers_free(prov);
    config_release(&cfg);
    const char *s[] = {"LLM_PROVIDER=openai", NULL};
    make(s);
    struct got k = llm();
    cr_assert_eq(k.outcome, PROV_PERMANENT);
    cr_assert_str_eq(k.error, "llm: LLM_API_KEY is not set");
    cr_assert_eq(provider_llm_chat(prov, &(struct llm_request){0}, on_llm, &k, NULL), ERR_INVAL);
}

Test(real, cancel_means_no_callback) {
    answer("200 OK", "{\"choices\":[{\"message\":{\"content\":\"late\"}}]}");
    json_t *m = json_pack("[{s:s,s:s}]", "role", "user", "content", "hi");
    struct got g = {0};
    prov_call_t *call;
    cr_assert_eq(provider_llm_chat(prov, &(struct llm_request){.messages = m}, on_llm, &g, &call),
                 0);
    prov_call_cancel(call);
    struct got early = {0};
    prov_call_t *ecall;
    cr_assert_eq(provider_notify_send(prov, "1", "x", on_notify, &early, &ecall), 0);
    prov_call_cancel(ecall);
    struct got after = llm(); /* the loop keeps working */
    cr_assert_eq(after.outcome, PROV_OK);
    cr_assert_eq(g.done, 0);
    cr_assert_eq(early.done, 0);
    json_decref(m);
}

Test(real, modes_and_base_urls) {
    cr_assert_str_eq(providers_mode(prov, PK_LLM), "openai");
    cr_assert(!providers_is_fake(prov, PK_LLM));
    cr_assert_eq(providers_render_mode(prov), RENDER_REMOTION);
    providers_free(prov);
    config_release(&cfg);
    const char *s[] = {"PROVIDERS=fake", "RENDER_PROVIDER=remotion", "SAFETY_PROVIDER=openai",
                       "TELEGRAM_BOT_TOKEN=t:1", NULL};
    make(s);
    cr_assert_str_eq(providers_base_url(prov, PK_LLM), "http://127.0.0.1:9/_fake/openai/v1");
    cr_assert_str_eq(providers_base_url(prov, PK_SORA), "http://127.0.0.1:9/_fake/openai");
    cr_assert_str_eq(providers_base_url(prov, PK_SAFETY), "http://127.0.0.1:9/_fake/openai");
    cr_assert_str_eq(providers_base_url(prov, PK_RENDER), "http://127.0.0.1:9/_fake/remotion");
    cr_assert_str_eq(providers_base_url(prov, PK_PUBLISH), "http://127.0.0.1:9/_fake/upload-post");
    cr_assert_str_eq(providers_base_url(prov, PK_NOTIFY), "http://127.0.0.1:9/_fake/telegram");
    for (int k = 0; k < PK__COUNT; k++)
        cr_assert(providers_is_fake(prov, (enum provider_kind)k), "%s is fake",
                  provider_kind_names[k]);
    char self[128];
    config_t c2;
    config_init(&c2);
    buf_t err;
    buf_init(&err, 256);
    config_set(&c2, "PUBLIC_BASE_URL", "https://mylo.example.com/", CS_FLAG, &err);
    cr_assert_eq(config_finish(&c2, &err), 0);
    providers_self_base_url(&c2, 8000, self, sizeof self);
    cr_assert_str_eq(self, "https://mylo.example.com");
    config_release(&c2);
    config_init(&c2);
    cr_assert_eq(config_finish(&c2, &err), 0);
    providers_self_base_url(&c2, 8123, self, sizeof self);
    cr_assert_str_eq(self, "http://127.0.0.1:8123");
    /* remotion in real mode needs its URL */
    config_release(&c2);
    config_init(&c2);
    config_set(&c2, "PROVIDERS", "real", CS_FLAG, &err);
    config_set(&c2, "RENDER_PROVIDER", "remotion", CS_FLAG, &err);
    cr_assert_eq(config_finish(&c2, &err), 0);
    providers_t *p2 = NULL;
    buf_reset(&err);
    cr_assert_eq(providers_new(&loop, &c2, client, "http://127.0.0.1:9", &p2, &err), ERR_INVAL);
    cr_assert(strstr(err.data, "REMOTION_SERVICE_URL"), "%s", err.data);
    config_release(&c2);
    buf_release(&err);
}
