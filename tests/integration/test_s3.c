/*
 * Integration: the s3 storage backend against a real S3-compatible server (npm s3rver, started
 * here on 127.0.0.1 with Debian's node), and our SigV4 signatures against the AWS SDK for
 * JavaScript (tests/s3/sdk.js, run here for the same inputs and clock).
 *
 * What s3rver enforces for SigV4 (node_modules/s3rver/lib/middleware/authentication.js): a known
 * access key id (InvalidAccessKeyId), an x-amz-content-sha256 header, a request time within 15
 * minutes, and a presigned URL's expiry; it does NOT verify V4 signatures. So the signatures
 * themselves are checked against the SDK: our presigned URLs must equal getSignedUrl()'s byte for
 * byte, and the Authorization header libcurl sent for each of our requests (captured by a local
 * listener) must equal what the SDK's signer computes for the same request.
 *
 * Needs node and npm (scripts/bootstrap.sh installs them): without node the tests skip, saying so.
 * tests/s3/node_modules comes from `npm ci` on first use.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/sha256.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "storage/storage.h"
#include "support/harness.h"

#define S3DIR MYLOWARE_SRCDIR "/tests/s3"
#define AKID "S3RVER" /* s3rver's built-in account */
#define SECRET "S3RVER"

/* ---- processes ---------------------------------------------------------------------------- */

static bool have_node(void) {
    return system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") == 0;
}

/* npm ci once (a lock: Criterion runs tests in parallel processes). */
static void need_node_modules(void) {
    if (!have_node())
        cr_skip_test("node/npm not installed: the S3 tests need them (scripts/bootstrap.sh "
                     "installs nodejs and npm)");
    int rc = system(
        "mkdir -p '" MYLOWARE_SRCDIR "/build' && flock '" MYLOWARE_SRCDIR
        "/build/.npm-s3.lock' sh -c "
        "'cd \"" S3DIR "\" && { [ node_modules/.package-lock.json -nt package-lock.json ] && "
        "[ -d node_modules/s3rver ] || npm ci --no-audit --no-fund --silent >/dev/null; }'");
    cr_assert_eq(rc, 0, "npm ci in tests/s3 failed");
}

/* Runs argv (PATH lookup), stdout into out; stderr too when want_err. Returns the exit code. */
static int run_argv(const char *const *argv, char *out, size_t cap, bool want_err) {
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        if (want_err)
            dup2(p[1], 2);
        close(p[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t k = 0;
    ssize_t r;
    while (k < cap - 1 && (r = read(p[0], out + k, cap - 1 - k)) > 0)
        k += (size_t)r;
    out[k] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct {
    pid_t pid;
    int stdin_fd;
    int port;
    char dir[64];
} s3r;

static void s3rver_start(void) {
    need_node_modules();
    snprintf(s3r.dir, sizeof s3r.dir, "/tmp/myloware-s3rver-XXXXXX");
    cr_assert(mkdtemp(s3r.dir));
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("node", "node", S3DIR "/s3rver.js", s3r.dir, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    s3r.pid = pid;
    s3r.stdin_fd = in[1];
    char line[256] = "";
    size_t n = 0;
    int64_t deadline = h_now_ms() + 30000;
    while (!strchr(line, '\n') && h_now_ms() < deadline && n < sizeof line - 1) {
        struct pollfd pf = {out[0], POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t k = read(out[0], line + n, sizeof line - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        line[n] = '\0';
    }
    close(out[0]);
    const char *p = strstr(line, "\"port\":");
    cr_assert(p, "s3rver did not start: '%s'", line);
    s3r.port = atoi(p + 7);
}

static char media_dir[64];

static void remove_media_dir(void) {
    if (media_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", media_dir);
        cr_assert_eq(system(cmd), 0);
        media_dir[0] = '\0';
    }
}

static void s3rver_stop(void) {
    remove_media_dir();
    if (s3r.pid > 0) {
        close(s3r.stdin_fd);
        kill(s3r.pid, SIGTERM);
        int status;
        int64_t deadline = h_now_ms() + 10000;
        while (waitpid(s3r.pid, &status, WNOHANG) == 0) {
            if (h_now_ms() > deadline) {
                kill(s3r.pid, SIGKILL);
                waitpid(s3r.pid, &status, 0);
                break;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
        }
        s3r.pid = 0;
    }
    if (s3r.dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s3r.dir);
        system(cmd);
    }
}

/* ---- storage under test ------------------------------------------------------------------- */

static storage_t *open_s3_with(const char *endpoint, const char *akid, const char *secret,
                               const char *prefix, const char *region) {
    config_t cfg;
    buf_t err;
    config_init(&cfg);
    buf_init(&err, 4096);
    if (!media_dir[0]) {
        snprintf(media_dir, sizeof media_dir, "/tmp/myloware-s3media-XXXXXX");
        cr_assert(mkdtemp(media_dir));
    }
    const char *kv[][2] = {
        {"STORAGE_BACKEND", "s3"},           {"S3_BUCKET", "media"},
        {"S3_ENDPOINT", endpoint},           {"S3_REGION", region ? region : "us-east-1"},
        {"AWS_ACCESS_KEY_ID", akid},         {"AWS_SECRET_ACCESS_KEY", secret},
        {"S3_PREFIX", prefix ? prefix : ""}, {"MEDIA_DIR", media_dir}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        cr_assert_eq(config_set(&cfg, kv[i][0], kv[i][1], CS_FLAG, &err), 0, "%s", err.data);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    storage_t *s = NULL;
    cr_assert_eq(storage_open(&cfg, &s, &err), 0, "%s", err.data);
    config_release(&cfg);
    buf_release(&err);
    return s;
}

static storage_t *open_s3(const char *endpoint, const char *akid, const char *prefix,
                          const char *region) {
    return open_s3_with(endpoint, akid, SECRET, prefix, region);
}

static void endpoint_of(char *out, size_t cap, bool vhost) {
    if (vhost) /* curl resolves *.localhost to the loopback address itself (RFC 6761) */
        snprintf(out, cap, "http://{bucket}.s3.localhost:%d", s3r.port);
    else
        snprintf(out, cap, "http://127.0.0.1:%d", s3r.port);
}

static void write_bytes(const char *path, size_t n, unsigned seed) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 2654435761u + seed) >> 13) & 0xff, f);
    fclose(f);
}

static bool same_files(const char *a, const char *b) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* Fetches url with the curl command line into path; returns the HTTP status. */
static int curl_get(const char *url, const char *path) {
    char out[64];
    const char *argv[] = {"curl",         "-s",         "-o", path, "-w",
                          "%{http_code}", "--max-time", "30", url,  NULL};
    cr_assert_eq(run_argv(argv, out, sizeof out, false), 0, "curl failed for %s", url);
    return atoi(out);
}

static void tmp_file(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", media_dir, name);
}

TestSuite(s3, .init = s3rver_start, .fini = s3rver_stop, .timeout = 120);

static void round_trip(bool vhost) {
    char ep[128], src[256], back[256], fetched[256], url[STORAGE_URL_MAX];
    endpoint_of(ep, sizeof ep, vhost);
    storage_t *s = open_s3(ep, AKID, "myloware/v1", NULL);
    tmp_file(src, sizeof src, "src.mp4");
    tmp_file(back, sizeof back, "back.mp4");
    tmp_file(fetched, sizeof fetched, "fetched.mp4");
    write_bytes(src, (2u << 20) + 123, vhost); /* over 1 MiB: curl sends Expect: 100-continue */
    const char *key = "transcoded/clip_run1_0.mp4";
    cr_assert_not(storage_exists(s, key));
    cr_assert_eq(storage_put_file(s, key, src, NULL, 0), 0);
    struct storage_stat st;
    cr_assert_eq(storage_stat(s, key, &st), 0);
    cr_assert_eq(st.size, (2 << 20) + 123);
    cr_assert(st.etag[0] == '"', "the object's ETag: %s", st.etag);
    cr_assert(st.mtime > 1700000000);
    cr_assert_eq(storage_get_file(s, key, back), 0);
    cr_assert(same_files(src, back), "downloaded object differs");

    /* the presigned GET URL, fetched by another client */
    cr_assert_eq(storage_url(s, key, time(NULL), url, sizeof url), 0);
    cr_assert(strstr(url, vhost ? "http://media.s3.localhost:" : "/media/myloware/v1/transcoded/"),
              "%s", url);
    cr_assert_eq(curl_get(url, fetched), 200, "%s", url);
    cr_assert(same_files(src, fetched), "presigned download differs");

    /* the object lives where S3 puts it: <bucket>/<prefix>/<key> on s3rver's disk */
    char ondisk[512];
    snprintf(ondisk, sizeof ondisk,
             "ls '%s/media/myloware/v1/transcoded/' | grep -q clip_run1_0.mp4", s3r.dir);
    cr_assert_eq(system(ondisk), 0, "object not under the prefix");

    /* a move upload consumes the source */
    cr_assert_eq(storage_put_file(s, "thumbnails/t.jpg", src, "image/jpeg", STORAGE_PUT_MOVE), 0);
    cr_assert_eq(access(src, F_OK), -1);

    cr_assert_eq(storage_delete(s, key), 0);
    cr_assert_eq(storage_stat(s, key, &st), ERR_NOTFOUND);
    cr_assert_eq(storage_get_file(s, key, back), ERR_NOTFOUND);
    cr_assert_eq(storage_delete(s, key), 0, "deleting an absent key is fine");
    cr_assert_eq(curl_get(url, fetched), 404);
    storage_free(s);
}

Test(s3, path_style_upload_stat_download_presigned_get_delete) { round_trip(false); }
Test(s3, virtual_host_style_upload_stat_download_presigned_get_delete) { round_trip(true); }

Test(s3, an_unknown_access_key_is_refused) {
    char ep[128], src[256], fetched[256], url[STORAGE_URL_MAX];
    endpoint_of(ep, sizeof ep, false);
    storage_t *s = open_s3(ep, "NOSUCHKEY", NULL, NULL);
    tmp_file(src, sizeof src, "k.mp4");
    tmp_file(fetched, sizeof fetched, "k-fetched.xml");
    write_bytes(src, 1000, 7);
    cr_assert_eq(storage_put_file(s, "transcoded/k.mp4", src, NULL, 0), ERR_UNAUTH);
    cr_assert_eq(access(src, F_OK), 0, "a failed put leaves the source");
    struct storage_stat st;
    cr_assert_neq(storage_stat(s, "transcoded/k.mp4", &st), 0);
    /* the same object with the right key exists, but a URL signed with an unknown key is refused */
    storage_t *good = open_s3(ep, AKID, NULL, NULL);
    cr_assert_eq(storage_put_file(good, "transcoded/k.mp4", src, NULL, 0), 0);
    cr_assert_eq(storage_presign(s, "transcoded/k.mp4", time(NULL), 600, url, sizeof url), 0);
    cr_assert_eq(curl_get(url, fetched), 403);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q InvalidAccessKeyId '%s'", fetched);
    cr_assert_eq(system(cmd), 0, "s3rver's answer names the unknown key");
    storage_free(good);
    storage_free(s);
}

Test(s3, an_expired_presigned_url_is_refused) {
    char ep[128], src[256], fetched[256], url[STORAGE_URL_MAX];
    endpoint_of(ep, sizeof ep, false);
    storage_t *s = open_s3(ep, AKID, NULL, NULL);
    tmp_file(src, sizeof src, "e.mp4");
    tmp_file(fetched, sizeof fetched, "e-fetched.xml");
    write_bytes(src, 1000, 9);
    cr_assert_eq(storage_put_file(s, "transcoded/e.mp4", src, NULL, 0), 0);
    cr_assert_eq(storage_presign(s, "transcoded/e.mp4", time(NULL) - 3600, 60, url, sizeof url), 0);
    cr_assert_eq(curl_get(url, fetched), 403);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'Request has expired' '%s'", fetched);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(storage_presign(s, "transcoded/e.mp4", time(NULL) - 30, 60, url, sizeof url), 0);
    cr_assert_eq(curl_get(url, fetched), 200, "still valid");
    storage_free(s);
}

static bool keep_marked(const char *key, void *ud) { return strstr(key, "_keep_") != NULL; }

Test(s3, retention_lists_and_deletes_old_objects) {
    char ep[128], src[256];
    endpoint_of(ep, sizeof ep, false);
    storage_t *s = open_s3(ep, AKID, "pfx", NULL);
    tmp_file(src, sizeof src, "r.mp4");
    write_bytes(src, 100, 3);
    const char *keys[] = {"transcoded/clip_a_0.mp4", "transcoded/clip_a_1.mp4",
                          "transcoded/clip_keep_0.mp4", "thumbnails/thumb_a_0.jpg"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(storage_put_file(s, keys[i], src, NULL, 0), 0);
    int removed = -1;
    /* nothing is older than an hour ago */
    cr_assert_eq(storage_cleanup(s, "transcoded", time(NULL) - 3600, NULL, NULL, &removed), 0);
    cr_assert_eq(removed, 0);
    /* everything is older than a minute from now */
    cr_assert_eq(storage_cleanup(s, "transcoded/", time(NULL) + 60, keep_marked, NULL, &removed),
                 0);
    cr_assert_eq(removed, 2);
    cr_assert_not(storage_exists(s, keys[0]));
    cr_assert_not(storage_exists(s, keys[1]));
    cr_assert(storage_exists(s, keys[2]), "keep said so");
    cr_assert(storage_exists(s, keys[3]), "another prefix");
    storage_free(s);
}

Test(s3, the_media_routes_redirect_to_presigned_urls) {
    char ep[128], src[256], fetched[256];
    endpoint_of(ep, sizeof ep, false);
    storage_t *s = open_s3(ep, AKID, NULL, NULL);
    tmp_file(src, sizeof src, "m.mp4");
    tmp_file(fetched, sizeof fetched, "m-fetched.mp4");
    write_bytes(src, 5000, 11);
    cr_assert_eq(storage_put_file(s, "renders/run-9.mp4", src, NULL, 0), 0);
    cr_assert_eq(storage_put_file(s, "transcoded/clip_x_0.mp4", src, NULL, 0), 0);
    storage_free(s);

    char e1[200];
    snprintf(e1, sizeof e1, "S3_ENDPOINT=%s", ep);
    const char *env[] = {"STORAGE_BACKEND=s3",
                         "S3_BUCKET=media",
                         e1,
                         "AWS_ACCESS_KEY_ID=" AKID,
                         "AWS_SECRET_ACCESS_KEY=" SECRET,
                         NULL};
    struct server srv;
    server_start(&srv, env);
    struct resp r;
    cr_assert(h_request(srv.port, "GET", "/v1/media/video/run-9", NULL, NULL, &r));
    cr_assert_eq(r.status, 302, "%d %s", r.status, r.body);
    char loc[STORAGE_URL_MAX];
    cr_assert(resp_header(&r, "Location", loc, sizeof loc));
    resp_free(&r);
    cr_assert(strstr(loc, "/media/renders/run-9.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"), "%s", loc);
    cr_assert_eq(curl_get(loc, fetched), 200);
    cr_assert(same_files(src, fetched));
    cr_assert(h_request(srv.port, "HEAD", "/v1/media/transcoded/clip_x_0.mp4", NULL, NULL, &r));
    cr_assert_eq(r.status, 302);
    resp_free(&r);
    /* a missing object: checked with a HEAD first, 404 as with the local backend (api.md §7) */
    cr_assert(h_request(srv.port, "GET", "/v1/media/transcoded/clip_nope_0.mp4", NULL, NULL, &r));
    cr_assert_eq(r.status, 404, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "Video not found"), "%s", r.body);
    cr_assert_not(resp_header(&r, "Location", loc, sizeof loc));
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/v1/media/thumbnails/nope.jpg", NULL, NULL, &r));
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/v1/media/video/run-10", NULL, NULL, &r));
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    cr_assert(h_request(srv.port, "GET", "/v1/media/transcoded/..%2fx", NULL, NULL, &r));
    cr_assert_eq(r.status, 400, "names are checked before the redirect");
    resp_free(&r);
    cr_assert_eq(server_stop(&srv, SIGTERM, 30000), 0);
    /* no secret in the log */
    char *log = server_log(&srv);
    cr_assert_null(strstr(log, "AWS_SECRET"), "%s", log);
    free(log);
}

/* ---- signatures against the AWS SDK ------------------------------------------------------- */

static json_t *sdk(json_t *req) {
    char *arg = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    static char out[16384];
    const char *argv[] = {"node", S3DIR "/sdk.js", arg, NULL};
    int rc = run_argv(argv, out, sizeof out, true);
    free(arg);
    cr_assert_eq(rc, 0, "sdk.js failed: %s", out);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    cr_assert(j, "sdk.js said: %s", out);
    return j;
}

static void sigv4_init(void) { need_node_modules(); }
TestSuite(sigv4, .init = sigv4_init, .fini = remove_media_dir, .timeout = 120);

#define SDK_AKID "AKIAIOSFODNN7EXAMPLE"
#define SDK_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

Test(sigv4, presigned_urls_equal_the_sdk_presigner) {
    static const struct {
        const char *endpoint; /* ours */
        const char *sdk_endpoint;
        bool path_style;
        const char *region, *prefix, *key;
        long long now, expires;
    } cases[] = {
        {"", NULL, false, "us-east-1", "", "transcoded/clip_a_0.mp4", 1700000000, 86400},
        {"", NULL, false, "eu-west-3", "myloware/media", "renders/r-1.mp4", 1767225600, 3600},
        {"http://127.0.0.1:9000", "http://127.0.0.1:9000", true, "us-east-1", "",
         "thumbnails/t.jpg", 1700000123, 60},
        {"http://127.0.0.1:9000", "http://127.0.0.1:9000", true, "ap-southeast-2", "a/b",
         "x/y_z.mp4", 1999999999, 604800},
        {"https://minio.example.com:8443", "https://minio.example.com:8443", true, "us-east-1", "p",
         "k.mp4", 1700000000, 900},
        {"http://{bucket}.s3.localhost:4568", "http://s3.localhost:4568", false, "us-east-1", "",
         "transcoded/v.mp4", 1700000000, 120},
        {"https://{bucket}.objects.example.com", "https://objects.example.com", false,
         "eu-central-1", "pre", "a.mp4", 1800000000, 7200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        storage_t *s =
            open_s3_with(cases[i].endpoint, SDK_AKID, SDK_SECRET, cases[i].prefix, cases[i].region);
        char ours[STORAGE_URL_MAX];
        cr_assert_eq(
            storage_presign(s, cases[i].key, cases[i].now, cases[i].expires, ours, sizeof ours), 0);
        storage_free(s);
        char full_key[600];
        snprintf(full_key, sizeof full_key, "%s%s%s", cases[i].prefix,
                 cases[i].prefix[0] ? "/" : "", cases[i].key);
        json_t *req =
            json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:s,s:I,s:I}", "op", "presign", "region",
                      cases[i].region, "forcePathStyle", cases[i].path_style, "bucket", "media",
                      "key", full_key, "accessKeyId", SDK_AKID, "secretAccessKey", SDK_SECRET,
                      "now", (json_int_t)cases[i].now, "expires", (json_int_t)cases[i].expires);
        if (cases[i].sdk_endpoint)
            json_object_set_new(req, "endpoint", json_string(cases[i].sdk_endpoint));
        json_t *j = sdk(req);
        const char *theirs = json_string_value(json_object_get(j, "url"));
        cr_assert(theirs);
        cr_assert_str_eq(ours, theirs, "case %zu: ours differs from the SDK's", i);
        json_decref(j);
    }
}

/* A one-shot HTTP listener that records the requests it gets and answers each with `answer`. */
struct capture {
    int lfd, port;
    pthread_t th;
    int want; /* requests to take */
    char head[8][8192];
    buf_t body[8];
    const char *answer[8];
};

static void *capture_main(void *arg) {
    struct capture *c = arg;
    for (int i = 0; i < c->want; i++) {
        int fd = accept(c->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        size_t n = 0;
        char *h = c->head[i];
        while (n < sizeof c->head[i] - 1 && !(n >= 4 && memcmp(h + n - 4, "\r\n\r\n", 4) == 0)) {
            if (read(fd, h + n, 1) != 1)
                break;
            h[++n] = '\0';
        }
        const char *cl = strcasestr(h, "\r\ncontent-length:");
        size_t len = cl ? (size_t)atol(cl + 17) : 0;
        if (strcasestr(h, "\r\nexpect: 100-continue"))
            write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        buf_init(&c->body[i], 64u << 20);
        char tmp[65536];
        while (c->body[i].len < len) {
            size_t want = len - c->body[i].len < sizeof tmp ? len - c->body[i].len : sizeof tmp;
            ssize_t k = read(fd, tmp, want);
            if (k <= 0)
                break;
            buf_append(&c->body[i], tmp, (size_t)k);
        }
        write(fd, c->answer[i], strlen(c->answer[i]));
        close(fd);
    }
    return NULL;
}

static void capture_start(struct capture *c) {
    c->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(c->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(c->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(c->lfd, (struct sockaddr *)&a, &al);
    c->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&c->th, NULL, capture_main, c), 0);
}

static void capture_end(struct capture *c) {
    pthread_join(c->th, NULL);
    close(c->lfd);
}

/* The value of header name (lowercase compare) in a captured head, or NULL (static buffer). */
static const char *cap_header(const char *head, const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= cap)
                return NULL;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

static void pct_decode(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n + 1) {
            char hx[3] = {s[i + 1], s[i + 2], 0};
            out[k++] = (char)strtol(hx, NULL, 16);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
}

/* Asks the SDK's signer for the Authorization of the captured request (same method, path,
 * query, signed headers and their values, x-amz-date) and compares it with the one libcurl sent. */
static void assert_sdk_agrees(const char *head, const char *region) {
    char method[16], target[4096];
    cr_assert_eq(sscanf(head, "%15s %4095s", method, target), 2, "%s", head);
    char auth[1024], date[64], host[256];
    cr_assert(cap_header(head, "Authorization", auth, sizeof auth), "no Authorization in:\n%s",
              head);
    cr_assert(cap_header(head, "x-amz-date", date, sizeof date), "no x-amz-date in:\n%s", head);
    cr_assert(cap_header(head, "Host", host, sizeof host));
    const char *sh = strstr(auth, "SignedHeaders=");
    cr_assert(sh, "%s", auth);
    char signed_list[512];
    size_t sl = strcspn(sh + 14, ",");
    memcpy(signed_list, sh + 14, sl);
    signed_list[sl] = '\0';
    cr_assert(strstr(signed_list, "host") && strstr(signed_list, "x-amz-content-sha256") &&
                  strstr(signed_list, "x-amz-date"),
              "host, x-amz-content-sha256 and x-amz-date are signed: %s", signed_list);
    json_t *headers = json_object();
    char copy[512];
    snprintf(copy, sizeof copy, "%s", signed_list);
    for (char *save = NULL, *name = strtok_r(copy, ";", &save); name;
         name = strtok_r(NULL, ";", &save)) {
        char v[1024];
        cr_assert(cap_header(head, name, v, sizeof v), "signed header %s not sent", name);
        json_object_set_new(headers, name, json_string(v));
    }
    json_t *query = json_object();
    char *q = strchr(target, '?');
    if (q) {
        *q++ = '\0';
        for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv;
             kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            char k[512], v[1024];
            pct_decode(kv, eq ? (size_t)(eq - kv) : strlen(kv), k);
            pct_decode(eq ? eq + 1 : "", eq ? strlen(eq + 1) : 0, v);
            json_object_set_new(query, k, json_string(v));
        }
    }
    char hostname[256];
    int port = 0;
    snprintf(hostname, sizeof hostname, "%s", host);
    char *colon = strrchr(hostname, ':');
    if (colon) {
        *colon = '\0';
        port = atoi(colon + 1);
    }
    json_t *req =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:o,s:o,s:s}", "op", "sign", "region",
                  region, "accessKeyId", SDK_AKID, "secretAccessKey", SDK_SECRET, "method", method,
                  "protocol", "http:", "hostname", hostname, "port", port, "path", target, "query",
                  query, "headers", headers, "date", date);
    json_t *j = sdk(req);
    const char *theirs = json_string_value(json_object_get(j, "authorization"));
    cr_assert(theirs);
    cr_assert_str_eq(auth, theirs, "libcurl's Authorization differs from the SDK's for:\n%s", head);
    json_decref(j);
}

static void headers_of_our_requests(bool vhost) {
    struct capture c = {.want = 4};
    c.answer[0] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: \"abc\"\r\n\r\n";
    c.answer[1] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nETag: \"abc\"\r\n\r\n";
    c.answer[2] = "HTTP/1.1 204 No Content\r\n\r\n";
    static const char list[] =
        "<?xml "
        "version=\"1.0\"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    char list_answer[512];
    snprintf(list_answer, sizeof list_answer,
             "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof list - 1, list);
    c.answer[3] = list_answer;
    capture_start(&c);
    char ep[128];
    if (vhost)
        snprintf(ep, sizeof ep, "http://{bucket}.s3.localhost:%d", c.port);
    else
        snprintf(ep, sizeof ep, "http://127.0.0.1:%d", c.port);
    storage_t *s = open_s3_with(ep, SDK_AKID, SDK_SECRET, "my/prefix", "eu-west-3");
    char src[256];
    tmp_file(src, sizeof src, "sig.mp4");
    write_bytes(src, 300000, 5);
    cr_assert_eq(storage_put_file(s, "transcoded/clip_s_0.mp4", src, NULL, 0), 0);
    struct storage_stat st;
    cr_assert_eq(storage_stat(s, "transcoded/clip_s_0.mp4", &st), 0);
    cr_assert_eq(st.size, 4);
    cr_assert_eq(storage_delete(s, "transcoded/clip_s_0.mp4"), 0);
    int removed = -1;
    cr_assert_eq(storage_cleanup(s, "transcoded", time(NULL), NULL, NULL, &removed), 0);
    cr_assert_eq(removed, 0);
    storage_free(s);
    capture_end(&c);

    /* the upload: its body is the file, and x-amz-content-sha256 is that body's hash */
    cr_assert(strncmp(c.head[0], "PUT /", 5) == 0, "%s", c.head[0]);
    cr_assert(strstr(c.head[0], vhost ? "PUT /my/prefix/transcoded/clip_s_0.mp4 "
                                      : "PUT /media/my/prefix/transcoded/clip_s_0.mp4 "),
              "%s", c.head[0]);
    cr_assert_eq(c.body[0].len, 300000);
    uint8_t h[32];
    char hex[65], sent[128];
    crypto_sha256(c.body[0].data, c.body[0].len, h);
    crypto_hex(h, 32, hex);
    cr_assert(cap_header(c.head[0], "x-amz-content-sha256", sent, sizeof sent));
    cr_assert_str_eq(sent, hex, "the payload hash is the body's");
    cr_assert(cap_header(c.head[0], "Content-Type", sent, sizeof sent));
    cr_assert_str_eq(sent, "video/mp4");
    cr_assert(strncmp(c.head[1], "HEAD /", 6) == 0, "%s", c.head[1]);
    cr_assert(strncmp(c.head[2], "DELETE /", 8) == 0, "%s", c.head[2]);
    cr_assert(strstr(c.head[3], "GET /") &&
                  strstr(c.head[3], "list-type=2&prefix=my%2Fprefix%2Ftranscoded%2F"),
              "%s", c.head[3]);
    for (int i = 0; i < 4; i++) {
        assert_sdk_agrees(c.head[i], "eu-west-3");
        buf_release(&c.body[i]);
    }
}

Test(sigv4, libcurl_authorization_headers_equal_the_sdk_signer_path_style) {
    headers_of_our_requests(false);
}
Test(sigv4, libcurl_authorization_headers_equal_the_sdk_signer_virtual_host) {
    headers_of_our_requests(true);
}
