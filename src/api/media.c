/*
 * media: GET|HEAD /v1/media/transcoded/{file}, /v1/media/video/{id}, /v1/media/thumbnails/{file}
 * (api.md §7). Order: the media token (when MEDIA_ACCESS_TOKEN is set: Bearer, X-Media-Token or
 * a signed URL, else 401), then the name (strict, else 400 "Invalid filename"), then the file:
 * local backend: sent from disk by http/file.c (resolved inside MEDIA_DIR; absent: 404 "Video
 * not found"); s3 backend: a presigned HEAD on the loop's HTTP client first (absent: the same
 * 404; the storage unreachable: 503), then 302 to a presigned GET URL. Loop thread; nothing here
 * blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/client.h"
#include "http/file.h"
#include "storage/storage.h"

/* True when the request carries the media token or a valid signed URL. */
static bool media_authorized(http_req_t *req, const char *token) {
    size_t tl = strlen(token), n = 0;
    const char *v = http_header(req, "Authorization", &n);
    if (v && n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
        const char *t = v + 7;
        size_t m = n - 7;
        while (m && *t == ' ')
            t++, m--;
        if (crypto_ct_equal(t, m, token, tl))
            return true;
    }
    v = http_header(req, "X-Media-Token", &n);
    if (v && crypto_ct_equal(v, n, token, tl))
        return true;
    char expires[32], sig[80];
    if (http_query(req, "expires", expires, sizeof expires) > 0 &&
        http_query(req, "sig", sig, sizeof sig) > 0)
        return storage_media_verify(token, tl, req->path, expires, sig, clock_now_ms() / 1000) == 0;
    return false;
}

/* S3: the object is checked with a HEAD (presigned, on the loop's HTTP client) before the
 * redirect, so a missing object is a 404 "Video not found" as with the local backend, not a
 * redirect to S3's own error. */
#define S3_CHECK_TIMEOUT_MS 5000

struct s3_check {
    http_req_t *req;
    char url[STORAGE_URL_MAX]; /* the presigned GET to redirect to */
};

/* Loop thread. */
static void s3_checked(const struct http_response *r, void *ud) {
    struct s3_check *k = ud;
    if (r->outcome == HC_OK) {
        char hdr[STORAGE_URL_MAX + 64];
        snprintf(hdr, sizeof hdr, "Location: %s\r\nCache-Control: no-store\r\n", k->url);
        http_respond(k->req, 302, NULL, NULL, 0, hdr);
    } else if (r->status == 404 || r->status == 403) {
        /* S3 answers a missing object's HEAD with 403 when the key lacks s3:ListBucket */
        if (r->status == 403)
            log_warn("media", "media object refused (missing, or no s3:ListBucket permission)");
        http_respond_error(k->req, 404, "not_found", "Video not found", NULL, NULL);
    } else {
        log_warn("media", "cannot check a media object", LF_S("error", r->error),
                 LF_I("status", r->status));
        http_respond_error(k->req, 503, "unavailable", "Media storage is not available", NULL,
                           NULL);
    }
    free(k);
}

/* Loop thread: answers later (s3_checked) unless the check cannot start. */
static void serve_s3(http_req_t *req, storage_t *st, const char *key) {
    app_t *app = req->app;
    int64_t now = clock_now_ms() / 1000;
    struct s3_check *k = xcalloc(1, sizeof *k);
    char head[STORAGE_URL_MAX];
    k->req = req;
    if (storage_url(st, key, now, k->url, sizeof k->url) != 0 ||
        storage_presign_head(st, key, now, 300, head, sizeof head) != 0) {
        free(k);
        http_respond_err(req, ERR_INTERNAL, "Internal server error");
        return;
    }
    struct http_request hr = {.method = "HEAD",
                              .url = head,
                              .connect_timeout_ms = S3_CHECK_TIMEOUT_MS,
                              .timeout_ms = S3_CHECK_TIMEOUT_MS};
    if (!app->client || http_client_send(app->client, &hr, s3_checked, k, NULL) != 0) {
        free(k);
        http_respond_error(req, 503, "unavailable", "Media storage is not available", NULL, NULL);
    }
}

/* Serves key (dir/name) once the name has been checked. extra: more answer headers or NULL. */
static void serve(http_req_t *req, const char *key, const char *extra) {
    app_t *app = req->app;
    storage_t *st = app->storage;
    if (!st) {
        http_respond_error(req, 503, "unavailable", "Media storage is not available", NULL, NULL);
        return;
    }
    if (!storage_is_local(st)) {
        serve_s3(req, st, key);
        return;
    }
    char path[4096];
    if (storage_local_path(st, key, path, sizeof path) != 0) {
        http_respond_error(req, 400, "bad_request", "Invalid filename", NULL, NULL);
        return;
    }
    struct http_file_opts o = {
        .root = storage_local_root(st),
        .not_found_detail = "Video not found",
        .invalid_detail = "Invalid filename",
        .extra_headers = extra,
    };
    http_file_send(req, path, &o);
}

/* Checks the token, then takes the name from path parameter 0; false when it has answered. */
static bool media_begin(http_req_t *req, char *name, size_t cap) {
    app_t *app = req->app;
    const char *token = app->storage ? storage_media_token(app->storage) : NULL;
    if (token && !media_authorized(req, token)) {
        http_respond_error(req, 401, "unauthorized", "Unauthorized", NULL, NULL);
        return false;
    }
    /* the raw segment: an escaped character ('%') is never part of a valid name */
    int n = http_param(req, 0, name, cap);
    if (n < 0 || !storage_name_valid(name, (size_t)n)) {
        http_respond_error(req, 400, "bad_request", "Invalid filename", NULL, NULL);
        return false;
    }
    return true;
}

void api_media_transcoded(http_req_t *req) {
    char name[STORAGE_NAME_MAX + 1], key[STORAGE_NAME_MAX + 16];
    if (!media_begin(req, name, sizeof name))
        return;
    snprintf(key, sizeof key, "transcoded/%s", name);
    serve(req, key, NULL);
}

void api_media_thumbnail(http_req_t *req) {
    char name[STORAGE_NAME_MAX + 1], key[STORAGE_NAME_MAX + 16];
    if (!media_begin(req, name, sizeof name))
        return;
    snprintf(key, sizeof key, "thumbnails/%s", name);
    serve(req, key, NULL);
}

void api_media_video(http_req_t *req) {
    char id[STORAGE_NAME_MAX + 1], key[STORAGE_NAME_MAX + 16], hdr[STORAGE_NAME_MAX + 64];
    if (!media_begin(req, id, sizeof id))
        return;
    size_t n = strlen(id);
    if (n > 4 &&
        strcasecmp(id + n - 4, ".mp4") == 0) /* /v1/media/video/<id>.mp4 is the same file */
        id[n -= 4] = '\0';
    if (n + 4 > STORAGE_NAME_MAX) {
        http_respond_error(req, 400, "bad_request", "Invalid filename", NULL, NULL);
        return;
    }
    snprintf(key, sizeof key, "renders/%s.mp4", id);
    snprintf(hdr, sizeof hdr, "Content-Disposition: inline; filename=\"%s.mp4\"\r\n", id);
    serve(req, key, hdr);
}
