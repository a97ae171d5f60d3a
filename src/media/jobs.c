/*
 * media jobs: the `media.transcode` pool job type (see jobs.h for the payload and outcomes).
 * The payload is outside input (an API client or a provider answer may have chosen the paths),
 * so every path is resolved and must stay inside MEDIA_DIR. Pool thread, except registration.
 */
#include "media/jobs.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "media/media.h"

#define PATH_IN_MAX 1024

static const config_t *media_cfg; /* read-only after config_finish; set before dispatcher_start */
static int media_threads;         /* codec threads per transcode, set with media_cfg */

/* Is path (resolved, no trailing slash) root itself or below it? */
static bool under(const char *root, const char *path, bool allow_root) {
    size_t n = strlen(root);
    if (strncmp(path, root, n) != 0)
        return false;
    if (path[n] == '\0')
        return allow_root;
    return path[n] == '/' || (n == 1 && root[0] == '/');
}

int media_resolve_path(const char *root, const char *path, bool must_exist, char *out, size_t n) {
    char real_root[PATH_MAX], joined[PATH_MAX + PATH_IN_MAX + 2], real[PATH_MAX];
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len > PATH_IN_MAX || !root || !realpath(root, real_root))
        return ERR_INVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)path[i] < 0x20)
            return ERR_INVAL;
    if (path[0] == '/')
        snprintf(joined, sizeof joined, "%s", path);
    else
        snprintf(joined, sizeof joined, "%s/%s", real_root, path);
    if (must_exist) {
        if (!realpath(joined, real))
            return errno == ENOENT ? ERR_NOTFOUND : ERR_INVAL;
        if (!under(real_root, real, false))
            return ERR_INVAL;
    } else {
        /* the file may not exist yet: resolve its directory, keep a plain, visible name */
        char *slash = strrchr(joined, '/');
        const char *base = slash + 1;
        if (!*base || base[0] == '.')
            return ERR_INVAL; /* "", ".", "..", hidden names (our temp files are hidden) */
        *slash = '\0';
        char real_dir[PATH_MAX];
        if (!realpath(joined[0] ? joined : "/", real_dir))
            return errno == ENOENT ? ERR_NOTFOUND : ERR_INVAL;
        if (!under(real_root, real_dir, true))
            return ERR_INVAL;
        if (snprintf(real, sizeof real, "%s/%s", real_dir, base) >= (int)sizeof real)
            return ERR_INVAL;
        struct stat st;
        if (lstat(real, &st) == 0 && S_ISDIR(st.st_mode))
            return ERR_INVAL;
    }
    if (strlen(real) >= n)
        return ERR_INVAL;
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

static int on_progress(double done, void *ud) {
    struct job_ctx *ctx = ud;
    ctx->progress = done;
    return 0;
}

/* "field": an integer in [lo, hi]; false when missing or out of bounds. */
static bool get_int(json_t *o, const char *k, int lo, int hi, int *out) {
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = (int)json_integer_value(v);
    return true;
}

static const char *get_str(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return NULL; /* not a string, or one with a NUL inside */
    return json_string_value(v);
}

static void run_transcode(struct job_ctx *ctx) {
    const char *root = config_str(media_cfg, S_MEDIA_DIR);
    char in[PATH_MAX], out[PATH_MAX], thumb[PATH_MAX];
    int w, h, fps, rc;
    json_error_t jerr;
    json_t *p = json_loads(ctx->job.payload ? ctx->job.payload : "", 0, &jerr);
    const char *s_in = json_is_object(p) ? get_str(p, "input") : NULL;
    const char *s_out = json_is_object(p) ? get_str(p, "output") : NULL;
    const char *s_thumb = json_is_object(p) ? get_str(p, "thumbnail") : NULL;
    if (!json_is_object(p)) {
        job_set_error(ctx, JO_PERMANENT, "payload: not a JSON object");
        goto out;
    }
    if (!s_in || !s_out) {
        job_set_error(ctx, JO_PERMANENT, "payload: input and output are required strings");
        goto out;
    }
    json_t *jt = json_object_get(p, "thumbnail");
    if (jt && !json_is_null(jt) && !s_thumb) {
        job_set_error(ctx, JO_PERMANENT, "payload: thumbnail must be a string");
        goto out;
    }
    if (!get_int(p, "width", MEDIA_MIN_DIM, MEDIA_MAX_DIM, &w) ||
        !get_int(p, "height", MEDIA_MIN_DIM, MEDIA_MAX_DIM, &h) || (w | h) & 1) {
        job_set_error(ctx, JO_PERMANENT,
                      "payload: width and height must be even integers from %d to %d",
                      MEDIA_MIN_DIM, MEDIA_MAX_DIM);
        goto out;
    }
    if (!get_int(p, "fps", 1, MEDIA_MAX_FPS, &fps)) {
        job_set_error(ctx, JO_PERMANENT, "payload: fps must be an integer from 1 to %d",
                      MEDIA_MAX_FPS);
        goto out;
    }
    if ((rc = media_resolve_path(root, s_in, true, in, sizeof in)) != 0) {
        job_set_error(ctx, JO_PERMANENT, "payload: input %s",
                      rc == ERR_NOTFOUND ? "does not exist"
                                         : "must be a file inside the media directory");
        goto out;
    }
    if (media_resolve_path(root, s_out, false, out, sizeof out) != 0 ||
        (s_thumb && media_resolve_path(root, s_thumb, false, thumb, sizeof thumb) != 0)) {
        job_set_error(ctx, JO_PERMANENT,
                      "payload: output and thumbnail must be plain names in existing directories "
                      "inside the media directory");
        goto out;
    }
    if (strcmp(in, out) == 0 || (s_thumb && (strcmp(thumb, out) == 0 || strcmp(thumb, in) == 0))) {
        job_set_error(ctx, JO_PERMANENT, "payload: input, output and thumbnail must differ");
        goto out;
    }
    struct media_transcode_opts o = {.input = in,
                                     .output = out,
                                     .thumbnail = s_thumb ? thumb : NULL,
                                     .fps = fps,
                                     .threads = media_threads,
                                     .preset = config_str(media_cfg, S_TRANSCODE_PRESET),
                                     .crf = (int)config_int(media_cfg, S_TRANSCODE_CRF),
                                     .x264_params = config_str(media_cfg, S_TRANSCODE_X264_PARAMS)};
    media_scaled_size(w, h, config_num(media_cfg, S_RENDER_SCALE), &o.width, &o.height);
    buf_t err;
    buf_init(&err, 2048);
    ctx->progress = 0;
    rc = media_transcode(&o, on_progress, ctx, &err);
    if (rc) {
        /* a write failure may pass (disk space, a directory being recreated); bad input will not */
        job_set_error(ctx, rc == ERR_IO ? JO_RETRY : JO_PERMANENT, "transcode failed: %s",
                      err.data ? err.data : err_name(rc));
        log_warn("media", "transcode failed", LF_S("job_id", ctx->job.id), LF_S("error", err.data));
    } else {
        size_t rl = strlen(root);
        char real_root[PATH_MAX];
        const char *rel = out;
        if (realpath(root, real_root) && (rl = strlen(real_root)) &&
            strncmp(out, real_root, rl) == 0 && out[rl] == '/')
            rel = out + rl + 1;
        free(ctx->result_url);
        ctx->result_url = strdup(rel);
        if (!ctx->result_url)
            abort();
    }
    buf_release(&err);
out:
    json_decref(p);
}

static const struct job_type types[] = {
    {.name = "media.transcode", .kind = JK_POOL, .run_pool = run_transcode, .cap_group = "media"},
};
/* the same job under a test.* name, which POST /_test/jobs accepts (ENVIRONMENT=test only) */
static const struct job_type test_types[] = {
    {.name = "test.media.transcode",
     .kind = JK_POOL,
     .run_pool = run_transcode,
     .cap_group = "media"},
};

/* Temp files older than this are leftovers of a killed process (a live encode rewrites its own
 * every frame). */
#define TEMP_STALE_S 3600

/* Detached: it owns its copy of the directory name (the settings may be gone before it ends). */
static void *sweep_main(void *arg) {
    char *dir = arg;
    int n = media_sweep_temp(dir, TEMP_STALE_S);
    if (n > 0)
        log_info("media", "removed stale temp files", LF_I("count", n));
    free(dir);
    return NULL;
}

int media_jobs_threads(void) { return media_threads > 0 ? media_threads : 1; }

void media_jobs_register(dispatcher_t *d, const config_t *cfg) {
    media_cfg = cfg;
    /* The cores shared out between the transcodes allowed at once, at least one thread each:
     * running TRANSCODE_MAX_CONCURRENCY encodes with x264's automatic 1.5 threads per core each
     * would oversubscribe the machine, and every codec thread holds frames (at 1080x1920 an
     * encode with automatic threads peaks near 300 MiB, with one thread near 225 MiB). */
    int cores = (int)uv_available_parallelism();
    int cap = (int)config_int(cfg, S_TRANSCODE_MAX_CONCURRENCY);
    media_threads = cap > 0 && cores / cap > 1 ? cores / cap : 1;
    /* the walk of the media directory must not hold up the start (nor ever the loop) */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    char *dir = strdup(config_str(cfg, S_MEDIA_DIR));
    if (!dir || pthread_create(&t, &attr, sweep_main, dir) != 0) {
        log_warn("media", "cannot start the temp file sweep");
        free(dir);
    }
    pthread_attr_destroy(&attr);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        dispatcher_register(d, &types[i]);
    if (strcmp(config_str(cfg, S_ENVIRONMENT), "test") == 0)
        for (size_t i = 0; i < sizeof test_types / sizeof test_types[0]; i++)
            dispatcher_register(d, &test_types[i]);
}
