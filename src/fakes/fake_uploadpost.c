/*
 * fake_uploadpost: Upload-Post. POST /_fake/upload-post/api/upload takes the multipart form the
 * real API takes (video, title, user, platform[], tags[]; Authorization: Apikey <key>) and
 * answers {"success": true, "results": {"tiktok": {"url":
 * "https://www.tiktok.com/@<user>/video/<19 digits>"}}} (the digits are a hash of the upload,
 * so the same upload gets the same URL). With async_upload=true it answers {"success": true,
 * "request_id"} instead, and GET .../api/uploadposts/status?request_id= gives the result.
 * FAKE_PUBLISH_PENDING_POLLS=N (tests of publish.poll): every upload answers a request_id, and
 * its first N status polls say "in_progress" before the result.
 * Every upload is a JSON file under MEDIA_DIR/fakes/uploads/. Loop thread.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/dir.h"
#include "core/log.h"
#include "core/mem.h"
#include "fakes/internal.h"

#define MAX_FIELDS 64

struct field {
    char name[64];
    const char *value; /* into the body (NUL-terminated in place) */
    size_t len;
};

/* Parses multipart/form-data (plain fields only) in place. Returns the field count or -1. */
static int parse_form(char *body, size_t len, const char *ctype, struct field *out, int max) {
    const char *b = ctype ? strcasestr(ctype, "boundary=") : NULL;
    if (!b)
        return -1;
    b += 9;
    char boundary[200];
    size_t bl = 0;
    bool quoted = *b == '"';
    if (quoted)
        b++;
    while (b[bl] && b[bl] != ';' && b[bl] != ' ' && (!quoted || b[bl] != '"') && bl < 190)
        bl++;
    if (bl == 0)
        return -1;
    char delim[210];
    int dl = snprintf(delim, sizeof delim, "--%.*s", (int)bl, b);
    (void)boundary;
    int n = 0;
    char *end = body + len;
    char *p = memmem(body, len, delim, (size_t)dl);
    while (p && n < max) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return n; /* the closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return -1;
        p += 2;
        char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return -1;
        *hend = '\0';
        const char *nm = strcasestr(p, "name=\"");
        if (!nm || strcasestr(p, "filename="))
            return -1; /* files are not part of this API */
        nm += 6;
        const char *ne = strchr(nm, '"');
        if (!ne || ne - nm >= (long)sizeof out[n].name)
            return -1;
        char *v = hend + 4;
        char crlf_delim[220];
        int cl = snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
        char *next = memmem(v, (size_t)(end - v), crlf_delim, (size_t)cl);
        if (!next)
            return -1;
        memcpy(out[n].name, nm, (size_t)(ne - nm));
        out[n].name[ne - nm] = '\0';
        out[n].value = v;
        out[n].len = (size_t)(next - v);
        *next = '\0';
        n++;
        p = next + 2;
    }
    return p ? n : -1;
}

static const char *field(struct field *fs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(fs[i].name, name) == 0)
            return fs[i].value;
    return NULL;
}

static void fail(http_req_t *req, int status, const char *msg) {
    http_respond_json(req, status, json_pack("{s:b,s:s}", "success", 0, "message", msg));
}

static bool authorized(http_req_t *req) {
    size_t n = 0;
    const char *a = http_header(req, "Authorization", &n);
    if (a && n > 7 && strncasecmp(a, "Apikey ", 7) == 0)
        return true;
    fail(req, 401, "Invalid or missing API key");
    return false;
}

static bool user_ok(const char *u) {
    size_t n = strlen(u);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
              (u[i] >= '0' && u[i] <= '9') || u[i] == '_' || u[i] == '.' || u[i] == '-'))
            return false;
    return true;
}

static void remember(struct fakes *f, const char *rid, json_t *results) {
    for (struct fake_upload *u = f->uploads; u; u = u->next)
        if (strcmp(u->request_id, rid) == 0)
            return;
    struct fake_upload *u = xcalloc(1, sizeof *u);
    snprintf(u->request_id, sizeof u->request_id, "%s", rid);
    u->results = json_incref(results);
    u->next = f->uploads;
    f->uploads = u;
}

static json_t *results_for(const char *user, const char *platform, const char *seed) {
    uint8_t h[32];
    crypto_sha256(seed, strlen(seed), h);
    char digits[20];
    digits[0] = (char)('1' + h[0] % 9);
    for (int i = 1; i < 19; i++)
        digits[i] = (char)('0' + h[i] % 10);
    digits[19] = '\0';
    char url[200];
    snprintf(url, sizeof url, "https://www.tiktok.com/@%s/video/%s", user, digits);
    return json_pack("{s:{s:s}}", platform, "url", url);
}

struct published {
    http_req_t *req;
    json_t *answer;
};

static void answer_published(void *ud) {
    struct published *p = ud;
    http_respond_json(p->req, 200, p->answer);
    free(p);
}

void fake_upload(fakes_t *f, http_req_t *req) {
    if (!authorized(req))
        return;
    struct field fs[MAX_FIELDS];
    char *body = xmalloc(req->body.len + 1);
    memcpy(body, req->body.data ? req->body.data : "", req->body.len);
    body[req->body.len] = '\0';
    int n = parse_form(body, req->body.len, http_header(req, "Content-Type", NULL), fs, MAX_FIELDS);
    const char *video = n > 0 ? field(fs, n, "video") : NULL,
               *title = n > 0 ? field(fs, n, "title") : NULL,
               *user = n > 0 ? field(fs, n, "user") : NULL,
               *platform = n > 0 ? field(fs, n, "platform[]") : NULL;
    if (n < 0) {
        fail(req, 400, "Request must be multipart/form-data");
    } else if (!video ||
               (strncmp(video, "https://", 8) != 0 && strncmp(video, "http://", 7) != 0)) {
        fail(req, 400, "video must be a URL");
    } else if (!title || !*title) {
        fail(req, 400, "title is required");
    } else if (!user || !user_ok(user)) {
        fail(req, 400, "user is required");
    } else if (!platform || strcmp(platform, "tiktok") != 0) {
        fail(req, 400, "platform[] must be tiktok");
    } else {
        json_t *tags = json_array();
        for (int i = 0; i < n; i++)
            if (strcmp(fs[i].name, "tags[]") == 0)
                json_array_append_new(tags, json_stringn(fs[i].value, fs[i].len));
        char seed[4096];
        snprintf(seed, sizeof seed, "%s\n%s\n%s", user, video, title);
        json_t *results = results_for(user, platform, seed);
        char rid[64];
        fake_hash_id("req_", seed, 24, rid, sizeof rid);
        json_t *state = json_pack("{s:s,s:s,s:s,s:s,s:o,s:O,s:I}", "request_id", rid, "video",
                                  video, "title", title, "user", user, "tags", tags, "results",
                                  results, "created_at", (json_int_t)(clock_now_ms() / 1000));
        char path[FAKE_PATH_MAX + 100];
        snprintf(path, sizeof path, "%s/uploads/%s.json", f->dir, rid);
        remember(f, rid, results);
        bool async =
            (field(fs, n, "async_upload") && strcmp(field(fs, n, "async_upload"), "true") == 0) ||
            config_int(f->cfg, S_FAKE_PUBLISH_PENDING_POLLS) > 0;
        log_info("fakes", "upload published", LF_S("request_id", rid), LF_S("user", user));
        struct published *pb = xmalloc(sizeof *pb);
        pb->req = req;
        pb->answer = async ? json_pack("{s:b,s:s}", "success", 1, "request_id", rid)
                           : json_pack("{s:b,s:O}", "success", 1, "results", results);
        struct fake_saver *s = xmalloc(sizeof *s); /* freed after its one write */
        fake_saver_init(s, f, path);
        s->oneshot = true;
        fake_save_json_then(s, state, answer_published, pb); /* answered once on disk */
        json_decref(state);
        json_decref(
            results); /* results_for's reference (state, the list and the answer hold theirs) */
    }
    free(body);
}

void fake_upload_status(fakes_t *f, http_req_t *req) {
    if (!authorized(req))
        return;
    char rid[64];
    if (http_query(req, "request_id", rid, sizeof rid) <= 0 || strncmp(rid, "req_", 4) != 0 ||
        strspn(rid + 4, "0123456789abcdef") != strlen(rid + 4)) {
        fail(req, 400, "request_id is required");
        return;
    }
    struct fake_upload *u = f->uploads;
    while (u && strcmp(u->request_id, rid) != 0)
        u = u->next;
    if (!u) {
        fail(req, 404, "Upload not found");
        return;
    }
    if (u->polls++ < config_int(f->cfg, S_FAKE_PUBLISH_PENDING_POLLS)) {
        http_respond_json(
            req, 200,
            json_pack("{s:b,s:s,s:s}", "success", 1, "request_id", rid, "status", "in_progress"));
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:b,s:s,s:s,s:O}", "success", 1, "request_id", rid, "status",
                                "completed", "results", u->results));
}

void fake_uploads_resume(struct fakes *f) {
    char d[FAKE_PATH_MAX + 16];
    snprintf(d, sizeof d, "%s/uploads", f->dir);
    DIR *dir = dir_open(d);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 10 || strcmp(e->d_name + n - 5, ".json") != 0 || strncmp(e->d_name, "req_", 4) != 0)
            continue;
        char p[FAKE_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        char *text = fake_read_file(p);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        const char *rid = json_string_value(json_object_get(j, "request_id"));
        if (rid && strlen(rid) < 64 && json_is_object(json_object_get(j, "results")))
            remember(f, rid, json_object_get(j, "results"));
        json_decref(j);
    }
    closedir(dir);
}

void fake_uploads_free(struct fakes *f) {
    for (struct fake_upload *u = f->uploads, *next; u; u = next) {
        next = u->next;
        json_decref(u->results);
        free(u);
    }
    f->uploads = NULL;
}
