/*
 * fake_video: the OpenAI videos API. POST /_fake/openai/v1/videos accepts a job and answers at
 * once ("queued"); a real clip is then synthesised on the pool (media_synth_clip: a moving test
 * pattern with the clip number, a tone, FAKE_CLIP_SECONDS at FAKE_CLIP_SIZE; at most
 * TRANSCODE_MAX_CONCURRENCY at once), and FAKE_VIDEO_DELAY_MS after it is done a
 * Standard-Webhooks-signed event (video.completed, or video.failed for the clip whose
 * X-Myloware-Video-Index is FAKE_VIDEO_FAIL_INDEX) is POSTed to the server's
 * /v1/webhooks/sora, retried with backoff while it fails retryably (up to 10 times); with
 * FAKE_VIDEO_WEBHOOKS=false no event is sent (tests of the server's status polls, sora.poll).
 * GET .../videos/{id} gives the job, GET .../videos/{id}/content the MP4.
 *
 * The same Idempotency-Key gives the same video (id = "video_" + a hash of the key). Every job
 * is a JSON file under MEDIA_DIR/fakes/videos/ next to its clip; at start, unfinished jobs are
 * synthesised again and undelivered events sent again. Loop thread, except synth_work (pool).
 * NEEDSWORK: jobs stay in memory for the life of the process (fine for a fake).
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define MAX_DELIVERY_ATTEMPTS 10

struct fake_video {
    struct fakes *f;
    char id[48];
    char key[256];
    int index;
    int seconds;
    char size[16], model[32];
    char status[16]; /* queued, in_progress, completed, failed */
    char error[400];
    int progress;
    bool delivered, working;
    int attempts;
    int64_t created_at;
    struct fake_saver saver;
    struct fake_timer timer;
    http_call_t *call;
    uv_work_t work;
    int work_rc;
    char work_err[300];
    struct fake_video *next;
};

static bool id_ok(const char *id) {
    size_t n = strlen(id);
    if (n < 7 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '_' || id[i] == '-'))
            return false;
    return true;
}

static void path_of(const struct fake_video *v, const char *ext, char *out, size_t cap) {
    if ((size_t)snprintf(out, cap, "%s/videos/%s.%s", v->f->dir, v->id, ext) >= cap)
        out[0] = '\0'; /* MEDIA_DIR too long: opening "" fails cleanly */
}

static json_t *state_json(const struct fake_video *v) {
    json_t *j =
        json_pack("{s:s,s:s,s:i,s:s,s:i,s:s,s:s,s:i,s:b,s:I}", "id", v->id, "idempotency_key",
                  v->key, "video_index", v->index, "model", v->model, "seconds", v->seconds, "size",
                  v->size, "status", v->status, "progress", v->progress, "delivered", v->delivered,
                  "created_at", (json_int_t)v->created_at);
    json_object_set_new(j, "error", v->error[0] ? json_string(v->error) : json_null());
    return j;
}

static void save(struct fake_video *v) {
    json_t *j = state_json(v);
    fake_save_json(&v->saver, j);
    json_decref(j);
}

/* The public view (what OpenAI answers). */
static json_t *api_json(const struct fake_video *v) {
    char secs[8];
    snprintf(secs, sizeof secs, "%d", v->seconds);
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:s}", "id", v->id, "object", "video", "model",
                  v->model, "status", v->status, "progress", v->progress, "created_at",
                  (json_int_t)v->created_at, "seconds", secs, "size", v->size);
    if (v->error[0])
        json_object_set_new(
            j, "error",
            json_pack("{s:s,s:s}", "code", "video_generation_failed", "message", v->error));
    return j;
}

static struct fake_video *find(struct fakes *f, const char *id, const char *key) {
    for (struct fake_video *v = f->videos; v; v = v->next)
        if ((id && strcmp(v->id, id) == 0) || (key && *key && strcmp(v->key, key) == 0))
            return v;
    return NULL;
}

static void deliver(struct fake_video *v);

static void on_timer(void *ud) { deliver(ud); }

static struct fake_video *video_new(struct fakes *f, const char *id) {
    struct fake_video *v = xcalloc(1, sizeof *v);
    v->f = f;
    snprintf(v->id, sizeof v->id, "%s", id);
    char p[FAKE_PATH_MAX + 80];
    path_of(v, "json", p, sizeof p);
    fake_saver_init(&v->saver, f, p);
    fake_timer_init(&v->timer, f, on_timer, v);
    v->work.data = v;
    v->next = f->videos;
    f->videos = v;
    return v;
}

/* ---- delivery of the event ----------------------------------------------------------------- */

/* FAKE_VIDEO_WEBHOOKS=false: no event is ever sent (the server finds the clip by polling). */
static void schedule(struct fake_video *v, uint64_t ms) {
    if (config_bool(v->f->cfg, S_FAKE_VIDEO_WEBHOOKS))
        fake_timer_start(&v->timer, ms);
}

static void on_delivered(const struct http_response *r, void *ud) {
    struct fake_video *v = ud;
    v->call = NULL;
    struct fakes *f = v->f;
    if (r->outcome == HC_OK) {
        v->delivered = true;
        save(v);
        log_info("fakes", "video event delivered", LF_S("video_id", v->id),
                 LF_S("status", v->status));
    } else if (r->outcome == HC_RETRY && ++v->attempts < MAX_DELIVERY_ATTEMPTS) {
        uint64_t ms = 250u << (v->attempts < 7 ? v->attempts : 7);
        log_info("fakes", "video event delivery failed, will retry", LF_S("video_id", v->id),
                 LF_S("error", r->error), LF_I("retry_ms", (long long)ms));
        schedule(v, ms);
    } else if (r->outcome != HC_CANCELLED) {
        v->delivered = true; /* refused for good: a human has to look */
        save(v);
        log_warn("fakes", "video event refused", LF_S("video_id", v->id), LF_S("error", r->error),
                 LF_I("status", r->status), LF_S("answer", r->body));
    }
    fake_unhold(f);
}

static void deliver(struct fake_video *v) {
    struct fakes *f = v->f;
    if (f->closing || v->delivered || v->call)
        return;
    const char *type = strcmp(v->status, "completed") == 0 ? "video.completed" : "video.failed";
    char seed[128], evt[64];
    snprintf(seed, sizeof seed, "%s:%s", v->id, type);
    fake_hash_id("evt_", seed, 32, evt, sizeof evt);
    int64_t now = clock_now_ms() / 1000;
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:{s:s}}", "id", evt, "object", "event",
                             "created_at", (json_int_t)now, "type", type, "data", "id", v->id);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    char sig[WEBHOOK_STD_SIG_LEN];
    if (webhook_sign_standard(config_str(f->cfg, S_OPENAI_WEBHOOK_SECRET), evt, now, text,
                              strlen(text), sig) != 0) {
        log_warn("fakes", "cannot sign video events: OPENAI_WEBHOOK_SECRET is unusable",
                 LF_S("video_id", v->id));
        free(text);
        return;
    }
    char h_id[100], h_ts[64], h_sig[80];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", evt);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", (long long)now);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    const char *hdrs[] = {"Content-Type: application/json", h_id, h_ts, h_sig, NULL};
    struct http_request req = {.method = "POST",
                               .url = f->webhook,
                               .headers = hdrs,
                               .body = text,
                               .body_len = strlen(text),
                               .timeout_ms = 15000,
                               .max_body = 65536};
    fake_hold(f);
    if (http_client_send(f->client, &req, on_delivered, v, &v->call) != 0) {
        v->call = NULL;
        fake_unhold(f);
        log_warn("fakes", "cannot send a video event", LF_S("url", f->webhook));
    }
    free(text);
}

/* ---- synthesis on the pool ----------------------------------------------------------------- */

static void pump(struct fakes *f);

/* Pool thread, at TRANSCODE_PRIORITY (media work: synth_work). */
static void synth_clip(void *arg) {
    struct fake_video *v = arg;
    const config_t *cfg = v->f->cfg;
    char out[FAKE_PATH_MAX + 80];
    path_of(v, "mp4", out, sizeof out);
    int width = 360, height = 640;
    media_parse_size(config_str(cfg, S_FAKE_CLIP_SIZE), &width, &height);
    struct media_synth_opts o = {.output = out,
                                 .width = width,
                                 .height = height,
                                 .fps = 30,
                                 .seconds = config_num(cfg, S_FAKE_CLIP_SECONDS),
                                 .clip_number = v->index >= 0 ? (v->index + 1) % 10000 : 0};
    buf_t err;
    buf_init(&err, sizeof v->work_err - 1);
    v->work_rc = media_synth_clip(&o, &err);
    snprintf(v->work_err, sizeof v->work_err, "%s", err.data ? err.data : "");
    buf_release(&err);
}

/* Pool thread: the synthesis runs below the loop's CPU priority, as media jobs do. */
static void synth_work(uv_work_t *w) {
    struct fake_video *v = w->data;
    cpuprio_run(cpuprio_parse(config_str(v->f->cfg, S_TRANSCODE_PRIORITY)), synth_clip, v);
}

static void synth_done(uv_work_t *w, int status) {
    struct fake_video *v = w->data;
    struct fakes *f = v->f;
    v->working = false;
    f->synth_running--;
    if (v->work_rc == 0) {
        snprintf(v->status, sizeof v->status, "completed");
        v->progress = 100;
    } else {
        snprintf(v->status, sizeof v->status, "failed");
        snprintf(v->error, sizeof v->error, "clip synthesis failed: %s", v->work_err);
        log_warn("fakes", "clip synthesis failed", LF_S("video_id", v->id),
                 LF_S("error", v->work_err));
    }
    save(v);
    schedule(v, (uint64_t)config_int(f->cfg, S_FAKE_VIDEO_DELAY_MS));
    pump(f);
    fake_unhold(f);
}

static void start(struct fake_video *v) {
    struct fakes *f = v->f;
    if (v->index >= 0 && v->index == config_int(f->cfg, S_FAKE_VIDEO_FAIL_INDEX)) {
        snprintf(v->status, sizeof v->status, "failed");
        snprintf(v->error, sizeof v->error,
                 "Video generation failed for clip %d (FAKE_VIDEO_FAIL_INDEX)", v->index);
        save(v);
        schedule(v, (uint64_t)config_int(f->cfg, S_FAKE_VIDEO_DELAY_MS));
        return;
    }
    v->working = true;
    f->synth_running++;
    snprintf(v->status, sizeof v->status, "in_progress");
    v->progress = 10;
    save(v);
    fake_hold(f);
    uv_queue_work(f->loop, &v->work, synth_work, synth_done);
}

static void pump(struct fakes *f) {
    int cap = (int)config_int(f->cfg, S_TRANSCODE_MAX_CONCURRENCY);
    if (f->closing)
        return;
    /* oldest first: the list is newest first, so find the last queued each time */
    while (f->synth_running < cap) {
        struct fake_video *pick = NULL;
        for (struct fake_video *v = f->videos; v; v = v->next)
            if (strcmp(v->status, "queued") == 0 && !v->working)
                pick = v;
        if (!pick)
            return;
        start(pick);
    }
}

/* ---- routes -------------------------------------------------------------------------------- */

static bool authorized(http_req_t *req) {
    size_t n = 0;
    const char *a = http_header(req, "Authorization", &n);
    if (a && n > 7 && strncmp(a, "Bearer ", 7) == 0)
        return true;
    fake_error(req, 401, "invalid_request_error", "You didn't provide an API key.");
    return false;
}

struct created {
    http_req_t *req;
    json_t *answer;
};

static void answer_created(void *ud) {
    struct created *c = ud;
    http_respond_json(c->req, 200, c->answer);
    free(c);
}

void fake_video_create(fakes_t *f, http_req_t *req) {
    if (!authorized(req))
        return;
    json_t *j = req->json;
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    json_t *model = json_object_get(j, "model"), *secs = json_object_get(j, "seconds"),
           *size = json_object_get(j, "size");
    if (!prompt || !*prompt) {
        fake_error(req, 400, "invalid_request_error", "Missing required parameter: 'prompt'.");
        return;
    }
    if (strlen(prompt) > 32000) {
        fake_error(req, 400, "invalid_request_error", "'prompt' is too long.");
        return;
    }
    int seconds = 4;
    if (secs) {
        const char *s = json_string_value(secs);
        seconds = s ? atoi(s) : -1;
        if (!s || (seconds != 4 && seconds != 8 && seconds != 12)) {
            fake_error(req, 400, "invalid_request_error",
                       "Invalid 'seconds': expected one of '4', '8', '12'.");
            return;
        }
    }
    const char *sz = size ? json_string_value(size) : "720x1280";
    if (!sz || (strcmp(sz, "720x1280") != 0 && strcmp(sz, "1280x720") != 0 &&
                strcmp(sz, "1024x1792") != 0 && strcmp(sz, "1792x1024") != 0)) {
        fake_error(req, 400, "invalid_request_error", "Invalid 'size'.");
        return;
    }
    const char *m = model ? json_string_value(model) : "sora-2";
    if (!m || (strcmp(m, "sora-2") != 0 && strcmp(m, "sora-2-pro") != 0)) {
        fake_error(req, 400, "invalid_request_error",
                   "Invalid 'model': expected 'sora-2' or 'sora-2-pro'.");
        return;
    }
    size_t kn = 0;
    const char *key = http_header(req, "Idempotency-Key", &kn);
    if (key && (kn == 0 || kn > 255))
        key = NULL;
    int index = -1;
    const char *ix = http_header(req, "X-Myloware-Video-Index", NULL);
    if (ix) {
        char *end;
        long n = strtol(ix, &end, 10);
        if (*ix && !*end && n >= 0 && n < 10000)
            index = (int)n;
    }
    struct fake_video *v = key ? find(f, NULL, key) : NULL;
    if (!v) {
        char id[48];
        if (key) {
            fake_hash_id("video_", key, 32, id, sizeof id);
        } else {
            uint8_t r[16];
            char hex[33];
            crypto_random(r, sizeof r);
            crypto_hex(r, sizeof r, hex);
            snprintf(id, sizeof id, "video_%s", hex);
        }
        v = video_new(f, id);
        snprintf(v->key, sizeof v->key, "%s", key ? key : "");
        v->index = index;
        v->seconds = seconds;
        snprintf(v->size, sizeof v->size, "%s", sz);
        snprintf(v->model, sizeof v->model, "%s", m);
        snprintf(v->status, sizeof v->status, "queued");
        v->created_at = clock_now_ms() / 1000;
        log_info("fakes", "video job created", LF_S("video_id", v->id), LF_I("video_index", index));
        /* answered once the job is on disk: a crash after the answer loses nothing */
        struct created *c = xmalloc(sizeof *c);
        c->req = req;
        c->answer = api_json(v);
        json_t *st = state_json(v);
        fake_save_json_then(&v->saver, st, answer_created, c);
        json_decref(st);
        pump(f);
        return;
    }
    http_respond_json(req, 200, api_json(v));
}

void fake_video_get(fakes_t *f, http_req_t *req) {
    char id[64];
    if (!authorized(req))
        return;
    struct fake_video *v = http_param(req, 0, id, sizeof id) > 0 ? find(f, id, NULL) : NULL;
    if (!v) {
        fake_error(req, 404, "invalid_request_error", "Video not found.");
        return;
    }
    http_respond_json(req, 200, api_json(v));
}

void fake_video_content(fakes_t *f, http_req_t *req) {
    char id[64];
    if (!authorized(req))
        return;
    struct fake_video *v = http_param(req, 0, id, sizeof id) > 0 ? find(f, id, NULL) : NULL;
    if (!v) {
        fake_error(req, 404, "invalid_request_error", "Video not found.");
        return;
    }
    if (strcmp(v->status, "completed") != 0) {
        fake_error(req, 409, "invalid_request_error", "Video is not completed yet.");
        return;
    }
    char path[FAKE_PATH_MAX + 80], root[FAKE_PATH_MAX + 16];
    path_of(v, "mp4", path, sizeof path);
    snprintf(root, sizeof root, "%s/videos", f->dir);
    char real[PATH_MAX];
    struct http_file_opts o = {.root = realpath(root, real) ? real : NULL,
                               .content_type = "video/mp4",
                               .cache_control = "no-store",
                               .not_found_detail = "Video content not found"};
    http_file_send(req, path, &o);
}

/* ---- start-up and shutdown ----------------------------------------------------------------- */

void fake_videos_resume(struct fakes *f) {
    char d[FAKE_PATH_MAX + 16];
    snprintf(d, sizeof d, "%s/videos", f->dir);
    DIR *dir = dir_open(d);
    if (!dir)
        return;
    struct dirent *e;
    int resumed = 0, redeliver = 0;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 ||
            strncmp(e->d_name, "video_", 6) != 0)
            continue;
        char p[FAKE_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        char *text = fake_read_file(p);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *status = json_string_value(json_object_get(j, "status"));
        if (!id || !status || !id_ok(id) || find(f, id, NULL)) {
            json_decref(j);
            continue;
        }
        struct fake_video *v = video_new(f, id);
        const char *key = json_string_value(json_object_get(j, "idempotency_key"));
        snprintf(v->key, sizeof v->key, "%s", key ? key : "");
        v->index = (int)json_integer_value(json_object_get(j, "video_index"));
        v->seconds = (int)json_integer_value(json_object_get(j, "seconds"));
        const char *size = json_string_value(json_object_get(j, "size"));
        const char *model = json_string_value(json_object_get(j, "model"));
        snprintf(v->size, sizeof v->size, "%s", size ? size : "720x1280");
        snprintf(v->model, sizeof v->model, "%s", model ? model : "sora-2");
        snprintf(v->status, sizeof v->status, "%s", status);
        v->progress = (int)json_integer_value(json_object_get(j, "progress"));
        const char *err = json_string_value(json_object_get(j, "error"));
        snprintf(v->error, sizeof v->error, "%s", err ? err : "");
        v->delivered = json_is_true(json_object_get(j, "delivered"));
        v->created_at = json_integer_value(json_object_get(j, "created_at"));
        json_decref(j);
        if (strcmp(v->status, "completed") != 0 && strcmp(v->status, "failed") != 0) {
            snprintf(v->status, sizeof v->status, "queued"); /* synthesised again */
            resumed++;
        } else if (!v->delivered) {
            schedule(v, (uint64_t)config_int(f->cfg, S_FAKE_VIDEO_DELAY_MS));
            redeliver++;
        }
    }
    closedir(dir);
    pump(f);
    if (resumed || redeliver)
        log_info("fakes", "video jobs resumed", LF_I("synthesised_again", resumed),
                 LF_I("events_again", redeliver));
}

static void on_video_timer_closed(void *ud) {
    struct fake_video *v = ud;
    free(v->saver.next);
    free(v);
}

void fake_videos_close(struct fakes *f) {
    for (struct fake_video *v = f->videos, *next; v; v = next) {
        next = v->next;
        fake_timer_stop(&v->timer);
        if (v->call) {
            http_call_cancel(v->call);
            v->call = NULL;
            fake_unhold(f);
        }
    }
}

/* After every pool work and save is done (fakes.c calls it right before freeing). */
void fake_videos_free(struct fakes *f) {
    for (struct fake_video *v = f->videos, *next; v; v = next) {
        next = v->next;
        fake_timer_close(&v->timer, on_video_timer_closed);
    }
    f->videos = NULL;
}
