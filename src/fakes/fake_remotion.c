/*
 * fake_remotion: a Remotion render service. POST /_fake/remotion/api/render takes {run_id,
 * clips, duration_frames, fps, width, height, callback_url, template, texts} and answers 202
 * {job_id, status: "queued", template}; the clips are then downloaded through the HTTP client
 * (URL guard on: our own media URLs are trusted, others need ALLOW_PRIVATE_URLS or
 * ALLOWED_MEDIA_DOMAINS), rendered like the local renderer (media_render on the pool: scaled by
 * RENDER_SCALE, overlays = texts[i] over clip i, RENDER_FONT) and the job ends "done" with
 * output_url <self>/_fake/remotion/output/<job_id>.mp4, or "error". The callback_url then gets
 * {job_id, run_id, status, output_url | error} signed with X-Remotion-Signature
 * (REMOTION_WEBHOOK_SECRET), through the URL guard, retried while it fails retryably.
 * GET .../api/render/{job_id} {status, progress, output_url, template, error}; GET
 * .../output/{file} the MP4. REMOTION_API_SECRET, when set, is required as Bearer or x-api-key.
 *
 * Jobs are JSON files under MEDIA_DIR/fakes/renders/; at start unfinished jobs render again and
 * undelivered callbacks are sent again. Loop thread, except render_work (pool).
 */
#include <dirent.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/cpuprio.h"
#include "core/crypto.h"
#include "core/dir.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/webhook.h"
#include "fakes/internal.h"
#include "http/file.h"
#include "media/media.h"

#define MAX_CLIPS 256
#define MAX_CALLBACK_ATTEMPTS 6

struct fake_render {
    struct fakes *f;
    char id[48];
    json_t *req;     /* the submitted body (clips, texts, sizes, callback_url, run_id, template) */
    char status[16]; /* queued, rendering, done, error */
    char error[400];
    _Atomic int permille;
    bool delivered, working;
    int attempts;
    size_t next_clip; /* downloads: the next clip to fetch */
    struct fake_saver saver;
    struct fake_timer timer;
    http_call_t *call;
    uv_work_t work;
    int work_rc;
    char work_err[400];
    struct fake_render *next;
};

static bool id_ok(const char *id) {
    size_t n = strlen(id);
    if (n < 6 || n > 40 || strncmp(id, "rjob_", 5) != 0)
        return false;
    for (size_t i = 5; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'f') || (id[i] >= '0' && id[i] <= '9')))
            return false;
    return true;
}

static void file_of(const struct fake_render *r, const char *name, char *out, size_t cap) {
    if ((size_t)snprintf(out, cap, "%s/renders/%s%s", r->f->dir, r->id, name) >= cap)
        out[0] = '\0'; /* MEDIA_DIR too long: opening "" fails cleanly */
}

static void output_url(const struct fake_render *r, char *out, size_t cap) {
    snprintf(out, cap, "%s/remotion/output/%s.mp4", r->f->self, r->id);
}

static json_t *state_json(const struct fake_render *r) {
    json_t *j =
        json_pack("{s:s,s:O,s:s,s:i,s:b}", "job_id", r->id, "request", r->req, "status", r->status,
                  "permille", atomic_load(&r->permille), "delivered", r->delivered);
    json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
    return j;
}

static void save(struct fake_render *r) {
    json_t *j = state_json(r);
    fake_save_json(&r->saver, j);
    json_decref(j);
}

static json_t *api_json(const struct fake_render *r) {
    char url[FAKE_URL_MAX + 100];
    output_url(r, url, sizeof url);
    bool done = strcmp(r->status, "done") == 0;
    json_t *j = json_pack("{s:s,s:s,s:f,s:O}", "job_id", r->id, "status", r->status, "progress",
                          done ? 1.0 : atomic_load(&r->permille) / 1000.0, "template",
                          json_object_get(r->req, "template"));
    json_object_set_new(j, "output_url", done ? json_string(url) : json_null());
    json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
    return j;
}

static struct fake_render *find(struct fakes *f, const char *id) {
    for (struct fake_render *r = f->renders; r; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void deliver(struct fake_render *r);

static void on_timer(void *ud) { deliver(ud); }

static struct fake_render *render_new(struct fakes *f, const char *id, json_t *req) {
    struct fake_render *r = xcalloc(1, sizeof *r);
    r->f = f;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->req = json_incref(req);
    char p[FAKE_PATH_MAX + 80];
    file_of(r, ".json", p, sizeof p);
    fake_saver_init(&r->saver, f, p);
    fake_timer_init(&r->timer, f, on_timer, r);
    r->work.data = r;
    r->next = f->renders;
    f->renders = r;
    return r;
}

/* ---- the callback -------------------------------------------------------------------------- */

static void schedule(struct fake_render *r, uint64_t ms) { fake_timer_start(&r->timer, ms); }

static void on_delivered(const struct http_response *res, void *ud) {
    struct fake_render *r = ud;
    struct fakes *f = r->f;
    r->call = NULL;
    if (res->outcome == HC_OK) {
        r->delivered = true;
        save(r);
        log_info("fakes", "render callback delivered", LF_S("job_id", r->id),
                 LF_S("status", r->status));
    } else if (res->outcome == HC_RETRY && ++r->attempts < MAX_CALLBACK_ATTEMPTS) {
        schedule(r, 250u << r->attempts);
    } else if (res->outcome != HC_CANCELLED) {
        r->delivered = true;
        save(r);
        log_warn("fakes", "render callback refused", LF_S("job_id", r->id),
                 LF_S("error", res->error), LF_S("answer", res->body));
    }
    fake_unhold(f);
}

static void deliver(struct fake_render *r) {
    struct fakes *f = r->f;
    const char *cb = json_string_value(json_object_get(r->req, "callback_url"));
    if (f->closing || r->delivered || r->call)
        return;
    if (!cb) {
        r->delivered = true;
        save(r);
        return;
    }
    bool done = strcmp(r->status, "done") == 0;
    char url[FAKE_URL_MAX + 100];
    output_url(r, url, sizeof url);
    json_t *body = json_pack("{s:s}", "job_id", r->id);
    json_t *run = json_object_get(r->req, "run_id");
    if (json_is_string(run))
        json_object_set(body, "run_id", run);
    json_object_set_new(body, "status", json_string(done ? "done" : "error"));
    if (done)
        json_object_set_new(body, "output_url", json_string(url));
    else
        json_object_set_new(body, "error", json_string(r->error[0] ? r->error : "Render failed"));
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    char sig[WEBHOOK_REMOTION_SIG_LEN], h_sig[WEBHOOK_REMOTION_SIG_LEN + 40];
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    if (webhook_sign_remotion(config_str(f->cfg, S_REMOTION_WEBHOOK_SECRET), text, strlen(text),
                              sig) == 0) {
        snprintf(h_sig, sizeof h_sig, "X-Remotion-Signature: %s", sig);
        hdrs[1] = h_sig;
    }
    /* the callback URL came with the request: through the URL guard, like the real service's
     * allowlist (our own origin is trusted; others need ALLOW_PRIVATE_URLS or
     * ALLOWED_MEDIA_DOMAINS) */
    struct http_request req = {.method = "POST",
                               .url = cb,
                               .headers = hdrs,
                               .body = text,
                               .body_len = strlen(text),
                               .timeout_ms = 5000,
                               .max_body = 65536,
                               .guard = true};
    fake_hold(f);
    if (http_client_send(f->client, &req, on_delivered, r, &r->call) != 0) {
        r->call = NULL;
        r->delivered = true;
        save(r);
        fake_unhold(f);
        log_warn("fakes", "render callback URL refused", LF_S("job_id", r->id));
    }
    free(text);
}

static void fail(struct fake_render *r, const char *what, const char *detail) {
    snprintf(r->status, sizeof r->status, "error");
    snprintf(r->error, sizeof r->error, "%s%s", what, detail);
    log_warn("fakes", "render failed", LF_S("job_id", r->id), LF_S("error", r->error));
    save(r);
    deliver(r);
}

/* ---- the render on the pool ---------------------------------------------------------------- */

static int on_progress(double done, void *ud) {
    struct fake_render *r = ud;
    atomic_store(&r->permille, 100 + (int)(done * 850));
    return atomic_load(&r->f->stopping); /* stop early at shutdown (resumed at the next start) */
}

/* Pool thread, at TRANSCODE_PRIORITY (render_work): reads only r->req (not changed while
 * working) and the settings. */
static void render_clips(void *arg) {
    struct fake_render *r = arg;
    const config_t *cfg = r->f->cfg;
    json_t *clips = json_object_get(r->req, "clips"), *texts = json_object_get(r->req, "texts");
    size_t n = json_array_size(clips);
    struct media_render_clip *mc = xcalloc(n, sizeof *mc);
    char(*paths)[FAKE_PATH_MAX + 80] = xcalloc(n, sizeof *paths);
    for (size_t i = 0; i < n; i++) {
        char name[40];
        snprintf(name, sizeof name, ".clip%zu.mp4", i);
        file_of(r, name, paths[i], sizeof paths[i]);
        mc[i].path = paths[i];
        mc[i].overlay = json_string_value(json_array_get(texts, i));
    }
    int w0 = (int)json_integer_value(json_object_get(r->req, "width"));
    int h0 = (int)json_integer_value(json_object_get(r->req, "height"));
    int width, height;
    media_scaled_size(w0, h0, config_num(cfg, S_RENDER_SCALE), &width, &height);
    char out[FAKE_PATH_MAX + 80];
    file_of(r, ".mp4", out, sizeof out);
    struct media_render_opts o = {.clips = mc,
                                  .nclips = n,
                                  .output = out,
                                  .width = width,
                                  .height = height,
                                  .fps = (int)json_integer_value(json_object_get(r->req, "fps")),
                                  .preset = config_str(cfg, S_TRANSCODE_PRESET),
                                  .crf = (int)config_int(cfg, S_TRANSCODE_CRF),
                                  .font = config_str(cfg, S_RENDER_FONT)};
    buf_t err;
    buf_init(&err, sizeof r->work_err - 1);
    r->work_rc = media_render(&o, on_progress, r, &err);
    snprintf(r->work_err, sizeof r->work_err, "%s", err.data ? err.data : "");
    buf_release(&err);
    for (size_t i = 0; i < n; i++)
        unlink(paths[i]);
    free(paths);
    free(mc);
}

/* Pool thread: the render runs below the loop's CPU priority, as media jobs do. */
static void render_work(uv_work_t *w) {
    struct fake_render *r = w->data;
    cpuprio_run(cpuprio_parse(config_str(r->f->cfg, S_TRANSCODE_PRIORITY)), render_clips, r);
}

static void render_done(uv_work_t *w, int status) {
    struct fake_render *r = w->data;
    struct fakes *f = r->f;
    r->working = false;
    if (f->closing) { /* stopped for shutdown: it renders again at the next start */
        fake_unhold(f);
        return;
    }
    if (r->work_rc == 0) {
        snprintf(r->status, sizeof r->status, "done");
        atomic_store(&r->permille, 1000);
        save(r);
        deliver(r);
    } else {
        fail(r, "render failed: ", r->work_err);
    }
    fake_unhold(f);
}

/* ---- clip downloads ------------------------------------------------------------------------ */

static void fetch_next(struct fake_render *r);

static void on_clip(const struct http_response *res, void *ud) {
    struct fake_render *r = ud;
    struct fakes *f = r->f;
    r->call = NULL;
    if (res->outcome == HC_OK) {
        r->next_clip++;
        atomic_store(&r->permille,
                     (int)(100 * r->next_clip / json_array_size(json_object_get(r->req, "clips"))));
        fetch_next(r);
    } else if (res->outcome != HC_CANCELLED) {
        char what[HTTP_CLIENT_ERROR_LEN + 40];
        snprintf(what, sizeof what, "clip %zu: %s", r->next_clip, res->error);
        fail(r, "cannot download ", what);
    }
    fake_unhold(f);
}

static void fetch_next(struct fake_render *r) {
    struct fakes *f = r->f;
    json_t *clips = json_object_get(r->req, "clips");
    if (f->closing)
        return;
    if (r->next_clip >= json_array_size(clips)) {
        snprintf(r->status, sizeof r->status, "rendering");
        save(r);
        r->working = true;
        fake_hold(f);
        uv_queue_work(f->loop, &r->work, render_work, render_done);
        return;
    }
    char path[FAKE_PATH_MAX + 80], name[40];
    snprintf(name, sizeof name, ".clip%zu.mp4", r->next_clip);
    file_of(r, name, path, sizeof path);
    struct http_request req = {.url = json_string_value(json_array_get(clips, r->next_clip)),
                               .download_path = path,
                               .guard = true,
                               .timeout_ms = 120000};
    fake_hold(f);
    int rc = http_client_send(f->client, &req, on_clip, r, &r->call);
    if (rc != 0) {
        r->call = NULL;
        fake_unhold(f);
        char what[80];
        snprintf(what, sizeof what, "clip %zu: URL refused (not an allowed media URL)",
                 r->next_clip);
        fail(r, "", what);
    }
}

static void start(struct fake_render *r) {
    r->next_clip = 0;
    snprintf(r->status, sizeof r->status, "queued");
    atomic_store(&r->permille, 0);
    fetch_next(r);
}

/* ---- routes -------------------------------------------------------------------------------- */

static bool authorized(fakes_t *f, http_req_t *req) {
    const char *secret = config_str(f->cfg, S_REMOTION_API_SECRET);
    if (!*secret)
        return true;
    size_t n = 0, sl = strlen(secret);
    const char *a = http_header(req, "Authorization", &n);
    if (a && n > 7 && strncmp(a, "Bearer ", 7) == 0 && crypto_ct_equal(a + 7, n - 7, secret, sl))
        return true;
    const char *k = http_header(req, "x-api-key", &n);
    if (k && crypto_ct_equal(k, n, secret, sl))
        return true;
    http_respond_json(req, 401, json_pack("{s:s}", "error", "unauthorized"));
    return false;
}

static void bad(http_req_t *req, const char *msg) {
    http_respond_json(req, 400, json_pack("{s:s,s:s}", "error", "bad_request", "message", msg));
}

static bool is_http(const char *u) {
    return u && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
}

struct accepted {
    http_req_t *req;
    json_t *answer;
};

static void answer_accepted(void *ud) {
    struct accepted *a = ud;
    http_respond_json(a->req, 202, a->answer);
    free(a);
}

void fake_render_submit(fakes_t *f, http_req_t *req) {
    if (!authorized(f, req))
        return;
    json_t *j = req->json;
    const char *tmpl = json_string_value(json_object_get(j, "template"));
    if (!tmpl || !*tmpl || strlen(tmpl) > 64) {
        bad(req, "template is required");
        return;
    }
    json_t *clips = json_object_get(j, "clips");
    if (!json_is_array(clips) || json_array_size(clips) == 0 ||
        json_array_size(clips) > MAX_CLIPS) {
        bad(req, "clips must be a non-empty array");
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(clips, i, c) if (!is_http(json_string_value(c))) {
        bad(req, "clips must be http(s) URLs");
        return;
    }
    json_t *texts = json_object_get(j, "texts");
    if (texts && !json_is_array(texts) && !json_is_null(texts)) {
        bad(req, "texts must be an array of strings");
        return;
    }
    json_t *fps = json_object_get(j, "fps"), *w = json_object_get(j, "width"),
           *h = json_object_get(j, "height");
    json_int_t vf = fps ? json_integer_value(fps) : 30, vw = w ? json_integer_value(w) : 1080,
               vh = h ? json_integer_value(h) : 1920;
    if (vf < 1 || vf > 120 || vw < 16 || vw > 4096 || vh < 16 || vh > 4096 || (vw & 1) ||
        (vh & 1)) {
        bad(req, "fps, width or height out of range");
        return;
    }
    json_t *cb = json_object_get(j, "callback_url");
    if (cb && !json_is_null(cb) && !is_http(json_string_value(cb))) {
        bad(req, "callback_url must be an http(s) URL");
        return;
    }
    json_t *keep = json_pack("{s:s,s:O,s:I,s:I,s:I}", "template", tmpl, "clips", clips, "fps", vf,
                             "width", vw, "height", vh);
    json_object_set_new(keep, "texts", json_is_array(texts) ? json_deep_copy(texts) : json_array());
    if (json_is_string(cb))
        json_object_set(keep, "callback_url", cb);
    if (json_is_string(json_object_get(j, "run_id")))
        json_object_set(keep, "run_id", json_object_get(j, "run_id"));
    if (json_is_integer(json_object_get(j, "duration_frames")))
        json_object_set(keep, "duration_frames", json_object_get(j, "duration_frames"));
    uint8_t rnd[12];
    char hex[25], id[48];
    crypto_random(rnd, sizeof rnd);
    crypto_hex(rnd, sizeof rnd, hex);
    snprintf(id, sizeof id, "rjob_%s", hex);
    struct fake_render *r = render_new(f, id, keep);
    json_decref(keep);
    snprintf(r->status, sizeof r->status, "queued");
    log_info("fakes", "render job created", LF_S("job_id", id),
             LF_I("clips", (long long)json_array_size(clips)));
    /* answered once the job is on disk: a crash after the answer loses nothing */
    struct accepted *a = xmalloc(sizeof *a);
    a->req = req;
    a->answer = json_pack("{s:s,s:s,s:s}", "job_id", id, "status", "queued", "template", tmpl);
    json_t *st = state_json(r);
    fake_save_json_then(&r->saver, st, answer_accepted, a);
    json_decref(st);
    start(r);
}

void fake_render_get(fakes_t *f, http_req_t *req) {
    if (!authorized(f, req))
        return;
    char id[64];
    struct fake_render *r = http_param(req, 0, id, sizeof id) > 0 ? find(f, id) : NULL;
    if (!r) {
        http_respond_json(req, 404, json_pack("{s:s}", "error", "Job not found"));
        return;
    }
    http_respond_json(req, 200, api_json(r));
}

void fake_render_output(fakes_t *f, http_req_t *req) {
    char file[64];
    int n = http_param(req, 0, file, sizeof file);
    if (n < 5 || strcmp(file + n - 4, ".mp4") != 0) {
        http_respond_json(req, 404, json_pack("{s:s}", "error", "not found"));
        return;
    }
    file[n - 4] = '\0';
    struct fake_render *r = find(f, file);
    if (!r || strcmp(r->status, "done") != 0) {
        http_respond_json(req, 404, json_pack("{s:s}", "error", "not found"));
        return;
    }
    char path[FAKE_PATH_MAX + 80], root[FAKE_PATH_MAX + 16], real[PATH_MAX];
    file_of(r, ".mp4", path, sizeof path);
    snprintf(root, sizeof root, "%s/renders", f->dir);
    struct http_file_opts o = {.root = realpath(root, real) ? real : NULL,
                               .content_type = "video/mp4"};
    http_file_send(req, path, &o);
}

/* ---- start-up and shutdown ----------------------------------------------------------------- */

void fake_renders_resume(struct fakes *f) {
    char d[FAKE_PATH_MAX + 16];
    snprintf(d, sizeof d, "%s/renders", f->dir);
    DIR *dir = dir_open(d);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char p[FAKE_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        char *text = fake_read_file(p);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        const char *id = json_string_value(json_object_get(j, "job_id"));
        const char *status = json_string_value(json_object_get(j, "status"));
        json_t *req = json_object_get(j, "request");
        if (!id || !status || !json_is_object(req) || !id_ok(id) || find(f, id)) {
            json_decref(j);
            continue;
        }
        struct fake_render *r = render_new(f, id, req);
        snprintf(r->status, sizeof r->status, "%s", status);
        const char *err = json_string_value(json_object_get(j, "error"));
        snprintf(r->error, sizeof r->error, "%s", err ? err : "");
        r->delivered = json_is_true(json_object_get(j, "delivered"));
        json_decref(j);
        if (strcmp(r->status, "done") != 0 && strcmp(r->status, "error") != 0)
            start(r);
        else if (!r->delivered)
            schedule(r, 0);
    }
    closedir(dir);
}

void fake_renders_close(struct fakes *f) {
    for (struct fake_render *r = f->renders; r; r = r->next) {
        fake_timer_stop(&r->timer);
        if (r->call) {
            http_call_cancel(r->call);
            r->call = NULL;
            fake_unhold(f);
        }
    }
}

static void on_render_timer_closed(void *ud) {
    struct fake_render *r = ud;
    json_decref(r->req);
    free(r->saver.next);
    free(r);
}

void fake_renders_free(struct fakes *f) {
    for (struct fake_render *r = f->renders, *next; r; r = next) {
        next = r->next;
        fake_timer_close(&r->timer, on_render_timer_closed);
    }
    f->renders = NULL;
}
