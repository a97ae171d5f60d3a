/* Integration: the /v1/media routes of the real binary over real sockets (api.md §7). */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <mbedtls/md.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"

static struct server srv;
static unsigned char *big;  /* BIG_SIZE bytes of a pattern no shifted copy matches */
#define BIG_SIZE (5u << 20) /* larger than the server's write high-water mark (1 MiB) */

static void write_file(const char *rel, const void *data, size_t n) {
    char path[600], dir[600];
    snprintf(path, sizeof path, "%s/media/%s", srv.dir, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void make_big(void) {
    big = malloc(BIG_SIZE);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG_SIZE; i++) { /* xorshift: no period short enough to hide an offset */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (unsigned char)x;
    }
}

static void start_with(const char *const *env) {
    if (!big)
        make_big();
    if (srv.pid > 0) { /* a test's own .init runs after the suite's: replace that server */
        server_stop(&srv, SIGKILL, 5000);
        srv.pid = 0;
    }
    server_start(&srv, env);
    write_file("transcoded/clip_r1_0.mp4", big, BIG_SIZE);
    write_file("transcoded/small.mp4", "0123456789abcdefghij", 20);
    write_file("transcoded/empty.mp4", "", 0);
    write_file("transcoded/.hidden.mp4", "hidden", 6);
    write_file("renders/run-1.mp4", "final render", 12);
    write_file("thumbnails/thumb_r1_0.jpg", "\xff\xd8\xff jpeg", 8);
    char secret[600];
    snprintf(secret, sizeof secret, "%s/secret.mp4", srv.dir);
    FILE *f = fopen(secret, "w");
    fputs("TOP SECRET", f);
    fclose(f);
    char link[700];
    snprintf(link, sizeof link, "%s/media/transcoded/link.mp4", srv.dir);
    cr_assert_eq(symlink(secret, link), 0);
    mkdir(strcat(strcpy(link, srv.dir), "/media/transcoded/adir.mp4"), 0755);
}

static void start_plain(void) { start_with(NULL); }
static const char *const token_env[] = {"MEDIA_ACCESS_TOKEN=s3cr3t-media-token", NULL};
static void start_token(void) { start_with(token_env); }

static void stop(void) {
    free(big);
    big = NULL;
    if (srv.pid > 0) /* a clean exit, so a leak (LeakSanitizer) or a report fails the test */
        cr_assert_eq(server_stop(&srv, SIGTERM, 30000), 0, "the server did not stop cleanly");
}

/* Reads a response head only (HEAD answers, 304): byte by byte up to the blank line. */
static bool read_head(int fd, struct resp *r, int timeout_ms) {
    memset(r, 0, sizeof *r);
    size_t n = 0;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (n < 4 || memcmp(r->head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n + 1 >= sizeof r->head || h_now_ms() > deadline)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(fd, r->head + n, 1);
        if (k <= 0)
            return false;
        n++;
        r->head[n] = '\0';
    }
    r->status = atoi(r->head + 9);
    return true;
}

static void get(const char *path, const char *headers, struct resp *r) {
    cr_assert(h_request(srv.port, "GET", path, headers, NULL, r), "no answer to GET %s", path);
}

static void assert_error(const struct resp *r, int status, const char *code, const char *detail) {
    cr_assert_eq(r->status, status, "status %d, want %d: %s", r->status, status, r->body);
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert(j, "not JSON: %s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), code);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), detail);
    json_decref(j);
}

static void header_is(const struct resp *r, const char *name, const char *want) {
    char v[512];
    cr_assert(resp_header(r, name, v, sizeof v), "no %s header in:\n%s", name, r->head);
    cr_assert_str_eq(v, want, "%s", name);
}

TestSuite(media, .init = start_plain, .fini = stop, .timeout = 120);

Test(media, whole_file_larger_than_the_write_buffer_is_sent_byte_exact_with_validators) {
    struct resp r;
    get("/v1/media/transcoded/clip_r1_0.mp4", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, BIG_SIZE);
    cr_assert(memcmp(r.body, big, BIG_SIZE) == 0, "the body differs from the file");
    header_is(&r, "Content-Type", "video/mp4");
    header_is(&r, "Accept-Ranges", "bytes");
    header_is(&r, "Cache-Control", "public, max-age=3600");
    char etag[128], lm[128];
    cr_assert(resp_header(&r, "ETag", etag, sizeof etag));
    cr_assert(etag[0] == '"' && etag[strlen(etag) - 1] == '"' && strchr(etag, '-'),
              "strong ETag: %s", etag);
    char want_size[32];
    snprintf(want_size, sizeof want_size, "\"%x-", BIG_SIZE);
    cr_assert(strncmp(etag, want_size, strlen(want_size)) == 0, "ETag starts with the size: %s",
              etag);
    cr_assert(resp_header(&r, "Last-Modified", lm, sizeof lm));
    struct stat st;
    char path[600];
    snprintf(path, sizeof path, "%s/media/transcoded/clip_r1_0.mp4", srv.dir);
    cr_assert_eq(stat(path, &st), 0);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    cr_assert(strptime(lm, "%a, %d %b %Y %H:%M:%S GMT", &tm), "IMF-fixdate: %s", lm);
    cr_assert_eq((long long)timegm(&tm), (long long)st.st_mtime);
    resp_free(&r);

    /* the same again on a keep-alive connection: the answer is framed exactly */
    int fd = h_connect(srv.port);
    h_sendf(fd, "GET /v1/media/transcoded/clip_r1_0.mp4 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /v1/media/transcoded/small.mp4 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(h_read(fd, &r, 60000));
    cr_assert_eq(r.body_len, BIG_SIZE);
    cr_assert(memcmp(r.body, big, BIG_SIZE) == 0);
    resp_free(&r);
    cr_assert(h_read(fd, &r, 60000));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "0123456789abcdefghij");
    resp_free(&r);
    close(fd);
}

Test(media, every_range_form) {
    static const struct {
        const char *range;
        int status;
        const char *body, *content_range;
    } cases[] = {
        {"bytes=0-4", 206, "01234", "bytes 0-4/20"},
        {"bytes=5-5", 206, "5", "bytes 5-5/20"},
        {"bytes=10-", 206, "abcdefghij", "bytes 10-19/20"},
        {"bytes=-3", 206, "hij", "bytes 17-19/20"},
        {"bytes=-50", 206, "0123456789abcdefghij",
         "bytes 0-19/20"},                               /* suffix longer than the file */
        {"bytes=15-99", 206, "fghij", "bytes 15-19/20"}, /* last past the end: clamped */
        {"bytes=19-19", 206, "j", "bytes 19-19/20"},
        {"bytes=0-1,5-6", 200, "0123456789abcdefghij", NULL}, /* several ranges: whole file */
        {"items=0-1", 200, "0123456789abcdefghij", NULL},     /* other unit: ignored */
        {"bytes=abc", 200, "0123456789abcdefghij", NULL},     /* garbage: ignored */
        {"bytes=20-", 416, NULL, "bytes */20"},
        {"bytes=25-30", 416, NULL, "bytes */20"},
        {"bytes=-0", 416, NULL, "bytes */20"},
        {"bytes=9-3", 416, NULL, "bytes */20"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Range: %s\r\n", cases[i].range);
        struct resp r;
        get("/v1/media/transcoded/small.mp4", hdr, &r);
        cr_assert_eq(r.status, cases[i].status, "%s: status %d", cases[i].range, r.status);
        char v[128];
        if (cases[i].content_range) {
            cr_assert(resp_header(&r, "Content-Range", v, sizeof v), "%s: no Content-Range",
                      cases[i].range);
            cr_assert_str_eq(v, cases[i].content_range, "%s", cases[i].range);
        } else {
            cr_assert_not(resp_header(&r, "Content-Range", v, sizeof v), "%s", cases[i].range);
        }
        if (cases[i].body)
            cr_assert_str_eq(r.body, cases[i].body, "%s", cases[i].range);
        else
            assert_error(&r, 416, "range_not_satisfiable", "Requested range not satisfiable");
        resp_free(&r);
    }

    /* a range of the big file, deep inside, crossing chunk boundaries */
    struct resp r;
    get("/v1/media/transcoded/clip_r1_0.mp4", "Range: bytes=65530-2000000\r\n", &r);
    cr_assert_eq(r.status, 206);
    cr_assert_eq(r.body_len, 2000000 - 65530 + 1);
    cr_assert(memcmp(r.body, big + 65530, r.body_len) == 0);
    resp_free(&r);

    /* an empty file: no range can be satisfied */
    get("/v1/media/transcoded/empty.mp4", "Range: bytes=0-\r\n", &r);
    cr_assert_eq(r.status, 416);
    header_is(&r, "Content-Range", "bytes */0");
    resp_free(&r);
    get("/v1/media/transcoded/empty.mp4", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    resp_free(&r);
}

Test(media, if_range_that_does_not_match_gives_the_whole_file) {
    struct resp r;
    get("/v1/media/transcoded/small.mp4", NULL, &r);
    char etag[128], hdr[300];
    cr_assert(resp_header(&r, "ETag", etag, sizeof etag));
    resp_free(&r);
    snprintf(hdr, sizeof hdr, "Range: bytes=0-1\r\nIf-Range: %s\r\n", etag);
    get("/v1/media/transcoded/small.mp4", hdr, &r);
    cr_assert_eq(r.status, 206);
    cr_assert_str_eq(r.body, "01");
    resp_free(&r);
    get("/v1/media/transcoded/small.mp4", "Range: bytes=0-1\r\nIf-Range: \"other\"\r\n", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 20);
    resp_free(&r);
}

Test(media, conditional_requests_give_304_without_a_body) {
    struct resp r;
    get("/v1/media/transcoded/small.mp4", NULL, &r);
    char etag[128], lm[128];
    cr_assert(resp_header(&r, "ETag", etag, sizeof etag));
    cr_assert(resp_header(&r, "Last-Modified", lm, sizeof lm));
    resp_free(&r);

    const char *matching[4];
    char h1[300], h2[300], h3[300], h4[300];
    snprintf(h1, sizeof h1, "If-None-Match: %s\r\n", etag);
    snprintf(h2, sizeof h2, "If-None-Match: \"nope\", W/%s\r\n", etag);
    snprintf(h3, sizeof h3, "If-None-Match: *\r\n");
    snprintf(h4, sizeof h4, "If-Modified-Since: %s\r\n", lm);
    matching[0] = h1, matching[1] = h2, matching[2] = h3, matching[3] = h4;
    for (int i = 0; i < 4; i++) {
        int fd = h_connect(srv.port);
        /* a second request behind it proves the 304 carried no body */
        h_sendf(
            fd,
            "GET /v1/media/transcoded/small.mp4 HTTP/1.1\r\nHost: t\r\n%s\r\n"
            "GET /v1/media/transcoded/small.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=0-2\r\n\r\n",
            matching[i]);
        cr_assert(read_head(fd, &r, 30000));
        cr_assert_eq(r.status, 304, "%s", matching[i]);
        header_is(&r, "ETag", etag);
        char v[64];
        cr_assert_not(resp_header(&r, "Content-Length", v, sizeof v));
        cr_assert(h_read(fd, &r, 30000));
        cr_assert_eq(r.status, 206);
        cr_assert_str_eq(r.body, "012");
        resp_free(&r);
        close(fd);
    }
    get("/v1/media/transcoded/small.mp4", "If-None-Match: \"something-else\"\r\n", &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    get("/v1/media/transcoded/small.mp4", "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n",
        &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

Test(media, head_gives_the_headers_without_the_body) {
    int fd = h_connect(srv.port);
    h_sendf(fd,
            "HEAD /v1/media/transcoded/clip_r1_0.mp4 HTTP/1.1\r\nHost: t\r\n\r\n"
            "HEAD /v1/media/transcoded/small.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\n\r\n"
            "GET /v1/media/transcoded/small.mp4 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(read_head(fd, &r, 30000));
    cr_assert_eq(r.status, 200);
    char v[64];
    snprintf(v, sizeof v, "%u", BIG_SIZE);
    header_is(&r, "Content-Length", v);
    header_is(&r, "Content-Type", "video/mp4");
    header_is(&r, "Accept-Ranges", "bytes");
    cr_assert(read_head(fd, &r, 30000));
    cr_assert_eq(r.status, 206);
    header_is(&r, "Content-Length", "3");
    header_is(&r, "Content-Range", "bytes 2-4/20");
    cr_assert(h_read(fd, &r, 30000));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "0123456789abcdefghij");
    resp_free(&r);
    close(fd);
}

Test(media, pipelined_requests_after_a_file_answer_keep_their_order) {
    int fd = h_connect(srv.port);
    h_sendf(
        fd,
        "GET /v1/media/transcoded/clip_r1_0.mp4 HTTP/1.1\r\nHost: t\r\nX-Request-ID: one\r\n\r\n"
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Request-ID: two\r\n\r\n"
        "GET /v1/media/transcoded/clip_r1_0.mp4 HTTP/1.1\r\nHost: t\r\nRange: "
        "bytes=-10\r\nX-Request-ID: three\r\n\r\n"
        "GET /v1/media/transcoded/missing.mp4 HTTP/1.1\r\nHost: t\r\nX-Request-ID: four\r\n\r\n"
        "GET /v1/media/thumbnails/thumb_r1_0.jpg HTTP/1.1\r\nHost: t\r\nX-Request-ID: "
        "five\r\n\r\n");
    static const char *ids[] = {"one", "two", "three", "four", "five"};
    static const int statuses[] = {200, 200, 206, 404, 200};
    for (int i = 0; i < 5; i++) {
        struct resp r;
        cr_assert(h_read(fd, &r, 60000), "answer %d", i);
        cr_assert_eq(r.status, statuses[i], "answer %d: %d", i, r.status);
        header_is(&r, "X-Request-ID", ids[i]);
        if (i == 0)
            cr_assert(r.body_len == BIG_SIZE && memcmp(r.body, big, BIG_SIZE) == 0);
        if (i == 2)
            cr_assert(r.body_len == 10 && memcmp(r.body, big + BIG_SIZE - 10, 10) == 0);
        if (i == 4)
            header_is(&r, "Content-Type", "image/jpeg");
        resp_free(&r);
    }
    close(fd);
}

/* The server's open connections (the gauge in /metrics). */
static int open_connections(void) {
    struct resp r;
    get("/metrics", NULL, &r);
    const char *p = strstr(r.body, "\nmyloware_http_connections ");
    int n = p ? atoi(p + strlen("\nmyloware_http_connections ")) : -1;
    resp_free(&r);
    return n;
}

Test(media, a_client_that_disconnects_mid_file_frees_everything) {
    /* 64 MiB (sparse): far more than socket buffers hold, so every close below is mid-file */
    char huge[600];
    snprintf(huge, sizeof huge, "%s/media/transcoded/huge.mp4", srv.dir);
    FILE *f = fopen(huge, "w");
    cr_assert(f && ftruncate(fileno(f), 64 << 20) == 0);
    fclose(f);
    int before = open_connections();
    cr_assert(before >= 0, "no connections gauge in /metrics");
    for (int round = 0; round < 8; round++) {
        int fd = h_connect(srv.port);
        h_sendf(fd, "GET /v1/media/transcoded/huge.mp4 HTTP/1.1\r\nHost: t\r\n\r\n");
        char buf[8192];
        cr_assert(h_recv_until(fd, buf, sizeof buf, "\r\n\r\n", 30000));
        if (round % 2) { /* an abortive close (RST) while the answer is still coming */
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
    }
    /* the server closes them: the gauge comes back to where it was (this request's own
     * connection counted in both) */
    int64_t deadline = h_now_ms() + 30000;
    int now = -1;
    while (h_now_ms() < deadline && (now = open_connections()) != before) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    cr_assert_eq(now, before, "connections left open: %d, before %d", now, before);
    struct resp r;
    get("/v1/media/transcoded/small.mp4", NULL, &r); /* still serving */
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* stop() then requires a clean exit: under ASan, LeakSanitizer fails it on any leak */
}

Test(media, names_never_leave_the_media_directory) {
    static const char *bad[] = {
        "/v1/media/transcoded/..",
        "/v1/media/transcoded/.hidden.mp4",
        "/v1/media/transcoded/%2e%2e",
        "/v1/media/transcoded/%2e%2e%2fsecret.mp4",
        "/v1/media/transcoded/..%2f..%2fsecret.mp4",
        "/v1/media/transcoded/..%2F..%2Fsecret.mp4",
        "/v1/media/transcoded/a..b.mp4",
        "/v1/media/transcoded/x%00.mp4",
        "/v1/media/transcoded/x%20y.mp4",
        "/v1/media/transcoded/%2fetc%2fpasswd",
        "/v1/media/transcoded/a\\b.mp4",
        "/v1/media/transcoded/-lead.mp4",
        "/v1/media/transcoded/_lead.mp4",
        "/v1/media/transcoded/link.mp4", /* a symlink out of the media directory */
        "/v1/media/video/..",
        "/v1/media/video/%2e%2e%2fsecret",
        "/v1/media/thumbnails/.hidden.mp4",
        "/v1/media/thumbnails/..%2ftranscoded%2fsmall.mp4",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct resp r;
        get(bad[i], NULL, &r);
        assert_error(&r, 400, "bad_request", "Invalid filename");
        cr_assert_null(strstr(r.body, "SECRET"), "%s", bad[i]);
        resp_free(&r);
    }
    /* overlong names: 128 characters is the most */
    char name[200], path[300];
    memset(name, 'a', 129);
    name[129] = '\0';
    snprintf(path, sizeof path, "/v1/media/transcoded/%s", name);
    struct resp r;
    get(path, NULL, &r);
    assert_error(&r, 400, "bad_request", "Invalid filename");
    resp_free(&r);
    name[128] = '\0';
    snprintf(path, sizeof path, "/v1/media/transcoded/%s", name);
    get(path, NULL, &r);
    assert_error(&r, 404, "not_found", "Video not found");
    resp_free(&r);
    /* dot segments never reach a media handler: the router sees other paths */
    static const char *other[] = {
        "/v1/media/transcoded/../../secret.mp4", "/v1/media/transcoded/./small.mp4",
        "/v1/media/transcoded/a/b.mp4", "/v1/media/transcoded//small.mp4"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        get(other[i], NULL, &r);
        cr_assert(r.status == 404 || r.status == 400, "%s: %d", other[i], r.status);
        cr_assert_null(strstr(r.body, "SECRET"), "%s", other[i]);
        cr_assert_null(strstr(r.body, "0123456789"), "%s", other[i]);
        resp_free(&r);
    }
}

Test(media, absent_files_and_directories_are_404) {
    struct resp r;
    get("/v1/media/transcoded/none.mp4", NULL, &r);
    assert_error(&r, 404, "not_found", "Video not found");
    resp_free(&r);
    get("/v1/media/transcoded/adir.mp4", NULL, &r);
    assert_error(&r, 404, "not_found", "Video not found");
    resp_free(&r);
    get("/v1/media/video/nope", NULL, &r);
    assert_error(&r, 404, "not_found", "Video not found");
    resp_free(&r);
}

Test(media, renders_and_thumbnails) {
    struct resp r;
    get("/v1/media/video/run-1", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "final render");
    header_is(&r, "Content-Type", "video/mp4");
    header_is(&r, "Content-Disposition", "inline; filename=\"run-1.mp4\"");
    resp_free(&r);
    get("/v1/media/video/run-1.mp4", "Range: bytes=6-\r\n", &r);
    cr_assert_eq(r.status, 206);
    cr_assert_str_eq(r.body, "render");
    resp_free(&r);
    get("/v1/media/thumbnails/thumb_r1_0.jpg", NULL, &r);
    cr_assert_eq(r.status, 200);
    header_is(&r, "Content-Type", "image/jpeg");
    cr_assert_eq(r.body_len, 8);
    resp_free(&r);
    /* POST is not a media method */
    cr_assert(h_request(srv.port, "POST", "/v1/media/video/run-1", NULL, "", &r));
    cr_assert_eq(r.status, 405);
    resp_free(&r);
}

/* ---- MEDIA_ACCESS_TOKEN ------------------------------------------------------------------- */

static void sign(const char *path, long long expires, char hex[65]) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s%lld", path, expires);
    unsigned char mac[32];
    static const char key[] = "s3cr3t-media-token";
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)key,
                    sizeof key - 1, (const unsigned char *)msg, (size_t)n, mac);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", mac[i]);
}

Test(media, access_token_forms, .init = start_token) {
    struct resp r;
    const char *path = "/v1/media/transcoded/small.mp4";
    get(path, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
    /* the token is checked before the name */
    get("/v1/media/transcoded/..", NULL, &r);
    cr_assert_eq(r.status, 401);
    resp_free(&r);

    static const char *good[] = {"Authorization: Bearer s3cr3t-media-token\r\n",
                                 "Authorization: bearer s3cr3t-media-token\r\n",
                                 "X-Media-Token: s3cr3t-media-token\r\n"};
    for (size_t i = 0; i < 3; i++) {
        get(path, good[i], &r);
        cr_assert_eq(r.status, 200, "%s", good[i]);
        cr_assert_str_eq(r.body, "0123456789abcdefghij");
        resp_free(&r);
    }
    static const char *wrong[] = {"Authorization: Bearer s3cr3t-media-tokeN\r\n",
                                  "Authorization: Basic s3cr3t-media-token\r\n",
                                  "Authorization: Bearer s3cr3t-media-token-and-more\r\n",
                                  "X-Media-Token: s3cr3t\r\n", "X-Media-Token: \r\n"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        get(path, wrong[i], &r);
        assert_error(&r, 401, "unauthorized", "Unauthorized");
        resp_free(&r);
    }

    long long now = (long long)time(NULL);
    char sig[65], url[600];
    sign(path, now + 600, sig);
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now + 600, sig);
    get(url, "Range: bytes=0-2\r\n", &r);
    cr_assert_eq(r.status, 206, "a valid signed URL: %s", r.body);
    cr_assert_str_eq(r.body, "012");
    resp_free(&r);
    for (char *p = sig; *p; p++) /* hex case does not matter */
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now + 600, sig);
    get(url, NULL, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    /* expired (correctly signed), bad signature, another path's signature, a later expiry */
    sign(path, now - 5, sig);
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now - 5, sig);
    get(url, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
    sign(path, now + 600, sig);
    sig[10] = sig[10] == '0' ? '1' : '0';
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now + 600, sig);
    get(url, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
    sign("/v1/media/transcoded/clip_r1_0.mp4", now + 600, sig);
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now + 600, sig);
    get(url, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
    sign(path, now + 600, sig);
    snprintf(url, sizeof url, "%s?expires=%lld&sig=%s", path, now + 6000, sig);
    get(url, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
    snprintf(url, sizeof url, "%s?expires=soon&sig=%s", path, sig);
    get(url, NULL, &r);
    assert_error(&r, 401, "unauthorized", "Unauthorized");
    resp_free(&r);
}

Test(media, sigterm_lets_a_file_answer_in_flight_finish) {
    char huge[600];
    snprintf(huge, sizeof huge, "%s/media/transcoded/drain.mp4", srv.dir);
    FILE *f = fopen(huge, "w");
    cr_assert(f && ftruncate(fileno(f), 16 << 20) == 0);
    fclose(f);
    int fd = h_connect(srv.port);
    h_sendf(fd, "GET /v1/media/transcoded/drain.mp4 HTTP/1.1\r\nHost: t\r\n\r\n");
    size_t cap = (17u << 20), n = 0;
    char *buf = malloc(cap);
    bool signalled = false, eof = false;
    int64_t deadline = h_now_ms() + 60000;
    while (!eof && h_now_ms() < deadline && n < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(fd, buf + n, cap - n);
        if (k <= 0) {
            eof = true;
            break;
        }
        n += (size_t)k;
        if (!signalled) { /* the answer has started: now stop the server */
            cr_assert_eq(kill(srv.pid, SIGTERM), 0);
            signalled = true;
        }
    }
    close(fd);
    cr_assert(eof, "the server closes the connection once the answer is out");
    char *end = memmem(buf, n, "\r\n\r\n", 4);
    cr_assert(end, "no head");
    size_t body = n - (size_t)(end + 4 - buf);
    cr_assert_eq(body, 16u << 20, "the whole file despite SIGTERM: %zu bytes", body);
    for (size_t i = 0; i < body; i++)
        if (end[4 + i] != 0)
            cr_assert_fail("byte %zu differs", i);
    free(buf);
    cr_assert_eq(server_wait(&srv, 30000), 0, "exit 0 after the drain");
}

/* ---- retention in the running server ------------------------------------------------------ */

static void age_file(const char *rel, long seconds) {
    char path[600];
    snprintf(path, sizeof path, "%s/media/%s", srv.dir, rel);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= seconds;
    tv[1] = tv[0];
    cr_assert_eq(utimes(path, tv), 0, "%s", path);
}

static bool media_exists(const char *rel) {
    char path[600];
    snprintf(path, sizeof path, "%s/media/%s", srv.dir, rel);
    return access(path, F_OK) == 0;
}

static const char *const retention_env[] = {"ENVIRONMENT=test", "MEDIA_RETENTION_HOURS=1", NULL};
static void start_retention(void) { start_with(retention_env); }

Test(media, the_server_sweeps_clips_of_runs_that_are_gone, .init = start_retention) {
    /* no run has this id in the database: its old clip and thumbnail go, its new clip and the
     * files that are no run's intermediate media stay */
    const char *old_clip = "transcoded/clip_5d0c1f9e-3a7b-4c2d-9e8f-1a2b3c4d5e6f_0.mp4";
    const char *old_thumb = "thumbnails/thumb_5d0c1f9e-3a7b-4c2d-9e8f-1a2b3c4d5e6f_0.jpg";
    const char *new_clip = "transcoded/clip_5d0c1f9e-3a7b-4c2d-9e8f-1a2b3c4d5e6f_1.mp4";
    write_file(old_clip, "old", 3);
    write_file(old_thumb, "old", 3);
    write_file(new_clip, "new", 3);
    age_file(old_clip, 2 * 3600);
    age_file(old_thumb, 2 * 3600);
    age_file("transcoded/small.mp4", 2 * 3600);
    int64_t deadline = h_now_ms() + 30000;
    while (h_now_ms() < deadline && (media_exists(old_clip) || media_exists(old_thumb))) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    cr_assert_not(media_exists(old_clip), "swept within 30 s");
    cr_assert_not(media_exists(old_thumb));
    cr_assert(media_exists(new_clip), "too new");
    cr_assert(media_exists("transcoded/small.mp4"), "not a run's clip");
    cr_assert(media_exists("renders/run-1.mp4"));
    struct resp r;
    get("/v1/media/transcoded/clip_5d0c1f9e-3a7b-4c2d-9e8f-1a2b3c4d5e6f_0.mp4", NULL, &r);
    assert_error(&r, 404, "not_found", "Video not found");
    resp_free(&r);
}
