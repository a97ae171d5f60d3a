/*
 * media: GET|HEAD /v1/media/transcoded/{file}, /v1/media/video/{id}, /v1/media/thumbnails/{file}
 * (api.md §7). Order: the media token (when MEDIA_ACCESS_TOKEN is set: Bearer, X-Media-Token or
 * a signed URL, else 401), then the name (strict, else 400 "Invalid filename"), then the file:
 * local backend: sent from disk by http/file.c (resolved inside MEDIA_DIR; absent: 404 "Video
 * not found"); s3 backend: 302 to a presigned GET URL. Loop thread; nothing here blocks.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
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
    if (http_query(req, "expires", expires, sizeof expires) > 0 && http_query(req, "sig", sig, sizeof sig) > 0)
        return storage_media_verify(token, tl, req->path, expires, sig, clock_now_ms() / 1000) == 0;
    return false;
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
        char url[STORAGE_URL_MAX], hdr[STORAGE_URL_MAX + 64];
        if (storage_url(st, key, clock_now_ms() / 1000, url, sizeof url) != 0) {
            http_respond_err(req, ERR_INTERNAL, "Internal server error");
            return;
        }
        snprintf(hdr, sizeof hdr, "Location: %s\r\nCache-Control: no-store\r\n", url);
        http_respond(req, 302, NULL, NULL, 0, hdr);
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
    if (n > 4 && strcasecmp(id + n - 4, ".mp4") == 0) /* /v1/media/video/<id>.mp4 is the same file */
        id[n -= 4] = '\0';
    if (n + 4 > STORAGE_NAME_MAX) {
        http_respond_error(req, 400, "bad_request", "Invalid filename", NULL, NULL);
        return;
    }
    snprintf(key, sizeof key, "renders/%s.mp4", id);
    snprintf(hdr, sizeof hdr, "Content-Disposition: inline; filename=\"%s.mp4\"\r\n", id);
    serve(req, key, hdr);
}
