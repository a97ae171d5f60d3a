/*
 * file: file answers (see file.h). One struct fsend per answer walks realpath -> open -> fstat
 * -> answer head -> read/write chunks -> close, every file-system call on libuv's pool, every
 * callback on the loop. At most one fs request is in flight per answer and at most one chunk
 * is held in memory besides what the socket has not taken (bounded by the stream high-water
 * mark), so a 10 GiB file costs the same memory as a 100 KiB one.
 *
 * Ownership: until the head is sent, fsend owns req (it always answers). After
 * http_stream_begin, the server may end req under us (the client went away: stream_cb with
 * ERR_IO); fsend then only finishes its in-flight fs request, closes the file and frees itself.
 */
#include "http/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"

#define CHUNK (64u << 10)

struct fsend {
    uv_fs_t fs;
    http_req_t *req; /* NULL once the server has ended it */
    uv_loop_t *loop;
    char *path, *root, *content_type, *cache_control, *extra, *not_found, *invalid;
    uv_file fd;
    char *chunk;        /* the read in flight */
    uint64_t off, left; /* next byte to read, bytes still to send */
    bool reading;       /* a uv_fs_read is in flight */
    bool done;          /* the answer is over: close and free when nothing is in flight */
};

static void fsend_free(struct fsend *f) {
    free(f->path);
    free(f->root);
    free(f->content_type);
    free(f->cache_control);
    free(f->extra);
    free(f->not_found);
    free(f->invalid);
    free(f->chunk);
    free(f);
}

static void on_close(uv_fs_t *fs) {
    struct fsend *f = fs->data;
    uv_fs_req_cleanup(fs);
    fsend_free(f);
}

/* The answer is over (req answered or ended): close the file and go. */
static void finish(struct fsend *f) {
    f->done = true;
    if (f->fd >= 0) {
        uv_file fd = f->fd;
        f->fd = -1;
        f->fs.data = f;
        if (uv_fs_close(f->loop, &f->fs, fd, on_close) == 0)
            return;
    }
    fsend_free(f);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

/* ---- pure helpers ------------------------------------------------------------------------- */

const char *http_file_content_type(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"mp4", "video/mp4"},
        {"m4v", "video/mp4"},
        {"mov", "video/quicktime"},
        {"webm", "video/webm"},
        {"mkv", "video/x-matroska"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"png", "image/png"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"svg", "image/svg+xml"},
        {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"html", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mp3", "audio/mpeg"},
        {"m4a", "audio/mp4"},
        {"wav", "audio/wav"},
        {"srt", "application/x-subrip"},
        {"vtt", "text/vtt; charset=utf-8"},
    };
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

void http_file_etag(uint64_t size, int64_t mtime_sec, long mtime_nsec, char *out, size_t cap) {
    snprintf(out, cap, "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)mtime_sec * 1000000000ull + (unsigned long long)mtime_nsec);
}

/* Digits into *v; false on none or overflow. */
static bool parse_u64(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    uint64_t x = 0;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return false;
        x = x * 10 + d;
    }
    *p = s;
    *v = x;
    return true;
}

int http_file_parse_range(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *last) {
    const char *p = v, *end = v + n;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return 0;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    for (const char *q = p; q < end; q++)
        if (*q == ',')
            return 0; /* several ranges: served whole */
    uint64_t a = 0, b = 0;
    if (p < end && *p == '-') { /* suffix: the last b bytes */
        p++;
        if (!parse_u64(&p, end, &b) || p != end)
            return 0;
        if (b == 0 || size == 0)
            return ERR_RANGE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!parse_u64(&p, end, &a) || p >= end || *p != '-')
        return 0;
    p++;
    bool open = p == end;
    if (!open && (!parse_u64(&p, end, &b) || p != end))
        return 0;
    if (!open && b < a)
        return ERR_RANGE; /* an invalid range-spec: none of the (one) ranges is usable */
    if (a >= size)
        return ERR_RANGE;
    *first = a;
    *last = open || b >= size ? size - 1 : b;
    return 1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" into out (>= 30 bytes). */
static void http_date(int64_t t, char *out, size_t cap) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* IMF-fixdate to Unix seconds, or -1. */
static int64_t parse_http_date(const char *v, size_t n) {
    char tmp[64];
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return e && *e == '\0' ? (int64_t)timegm(&tm) : -1;
}

/* True when the If-None-Match list (or "*") names etag; weak comparison (RFC 9110 §13.1.2). */
static bool etag_matches(const char *v, size_t n, const char *etag) {
    size_t el = strlen(etag);
    const char *p = v, *end = v + n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;
        if (*p == '*')
            return true;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *q = p;
        if (q < end && *q == '"') {
            q = memchr(q + 1, '"', (size_t)(end - q - 1));
            if (!q)
                return false;
            q++;
        } else {
            while (q < end && *q != ',')
                q++;
        }
        if ((size_t)(q - p) == el && memcmp(p, etag, el) == 0)
            return true;
        p = q;
    }
    return false;
}

/* ---- the answer --------------------------------------------------------------------------- */

static void read_next(struct fsend *f);

static void fail(struct fsend *f, int status, const char *code, const char *detail) {
    http_respond_error(f->req, status, code, detail, NULL, NULL);
    f->req = NULL;
    finish(f);
}

static void stream_cb(http_req_t *req, int status, void *ud) {
    struct fsend *f = ud;
    if (status < 0) { /* the server ends req when we return */
        f->req = NULL;
        if (!f->reading)
            finish(f);
        return;
    }
    read_next(f);
}

static void on_read(uv_fs_t *fs) {
    struct fsend *f = fs->data;
    ssize_t n = fs->result;
    uv_fs_req_cleanup(fs);
    f->reading = false;
    char *chunk = f->chunk;
    f->chunk = NULL;
    if (!f->req) { /* the client went away meanwhile */
        free(chunk);
        finish(f);
        return;
    }
    if (n <= 0) { /* read error, or the file shrank under us: the body cannot be completed */
        free(chunk);
        log_warn("http", "cannot read file being sent", LF_S("request_id", f->req->request_id),
                 LF_S("error", n < 0 ? uv_strerror((int)n) : "unexpected end of file"));
        http_stream_end(f->req, false);
        f->req = NULL;
        finish(f);
        return;
    }
    if ((uint64_t)n > f->left)
        n = (ssize_t)f->left;
    f->off += (uint64_t)n;
    f->left -= (uint64_t)n;
    int rc = http_stream_write(f->req, chunk, (size_t)n);
    if (rc < 0)
        return; /* going away: stream_cb(ERR_IO) follows and finishes */
    if (f->left == 0) {
        http_stream_end(f->req, true);
        f->req = NULL;
        finish(f);
        return;
    }
    if (rc == 0)
        read_next(f);
    /* HTTP_STREAM_WAIT: stream_cb(0) calls read_next once the socket drained */
}

static void read_next(struct fsend *f) {
    size_t want = f->left < CHUNK ? (size_t)f->left : CHUNK;
    f->chunk = xmalloc(want);
    uv_buf_t b = uv_buf_init(f->chunk, (unsigned)want);
    f->fs.data = f;
    f->reading = true;
    int rc = uv_fs_read(f->loop, &f->fs, f->fd, &b, 1, (int64_t)f->off, on_read);
    if (rc != 0) {
        f->reading = false;
        free(f->chunk);
        f->chunk = NULL;
        http_stream_end(f->req, false);
        f->req = NULL;
        finish(f);
    }
}

/* The file is open: decide the answer from its stat and the request's conditionals. */
static void answer(struct fsend *f, const uv_stat_t *st) {
    http_req_t *req = f->req;
    uint64_t size = st->st_size;
    char etag[48], lastmod[40];
    http_file_etag(size, (int64_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec, etag, sizeof etag);
    http_date((int64_t)st->st_mtim.tv_sec, lastmod, sizeof lastmod);
    buf_t h;
    buf_init(&h, 16384);
    buf_printf(&h, "Accept-Ranges: bytes\r\nETag: %s\r\nLast-Modified: %s\r\nCache-Control: %s\r\n",
               etag, lastmod, f->cache_control ? f->cache_control : "public, max-age=3600");
    if (f->extra)
        buf_puts(&h, f->extra);
    const char *ct = f->content_type ? f->content_type : http_file_content_type(f->path);

    size_t n = 0;
    const char *inm = http_header(req, "If-None-Match", &n);
    bool not_modified = false;
    if (inm) {
        not_modified = etag_matches(inm, n, etag);
    } else {
        const char *ims = http_header(req, "If-Modified-Since", &n);
        int64_t t = ims ? parse_http_date(ims, n) : -1;
        not_modified = t >= 0 && (int64_t)st->st_mtim.tv_sec <= t;
    }
    if (not_modified) {
        http_respond(req, 304, NULL, NULL, 0, h.data);
        goto answered;
    }

    uint64_t first = 0, last = size ? size - 1 : 0;
    int status = 200;
    const char *rv = http_header(req, "Range", &n);
    if (rv) {
        size_t irn = 0;
        const char *ir = http_header(req, "If-Range", &irn);
        /* If-Range: the range only applies to the representation the client has */
        bool usable = !ir || (irn == strlen(etag) && memcmp(ir, etag, irn) == 0) ||
                      (ir[0] != '"' && parse_http_date(ir, irn) == (int64_t)st->st_mtim.tv_sec);
        int r = usable ? http_file_parse_range(rv, n, size, &first, &last) : 0;
        if (r == ERR_RANGE) {
            buf_printf(&h, "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
            http_respond_error(req, 416, "range_not_satisfiable", "Requested range not satisfiable",
                               NULL, h.data);
            goto answered;
        }
        if (r == 1) {
            status = 206;
            buf_printf(&h, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
                       (unsigned long long)last, (unsigned long long)size);
        }
    }
    uint64_t len = size ? last - first + 1 : 0;
    if (req->head_only || len == 0) {
        http_respond(req, status, ct, NULL, len, h.data); /* HEAD: the head only */
        goto answered;
    }
    if (http_stream_begin(req, status, ct, len, h.data, stream_cb, f) != 0) {
        f->req = NULL; /* freed by the server: the client is gone */
        buf_release(&h);
        finish(f);
        return;
    }
    buf_release(&h);
    f->off = first;
    f->left = len;
    read_next(f);
    return;
answered:
    buf_release(&h);
    f->req = NULL;
    finish(f);
}

static void on_fstat(uv_fs_t *fs) {
    struct fsend *f = fs->data;
    int rc = (int)fs->result;
    uv_stat_t st = fs->statbuf;
    uv_fs_req_cleanup(fs);
    if (rc < 0) {
        fail(f, 500, "internal_error", "Internal server error");
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(f, 404, "not_found", f->not_found ? f->not_found : "Not found");
        return;
    }
    answer(f, &st);
}

static void on_open(uv_fs_t *fs) {
    struct fsend *f = fs->data;
    int rc = (int)fs->result;
    uv_fs_req_cleanup(fs);
    if (rc < 0) {
        bool absent = rc == UV_ENOENT || rc == UV_ENOTDIR || rc == UV_ELOOP || rc == UV_EISDIR;
        if (absent)
            fail(f, 404, "not_found", f->not_found ? f->not_found : "Not found");
        else
            fail(f, 500, "internal_error", "Internal server error");
        return;
    }
    f->fd = rc;
    f->fs.data = f;
    if (uv_fs_fstat(f->loop, &f->fs, f->fd, on_fstat) != 0)
        fail(f, 500, "internal_error", "Internal server error");
}

static void open_file(struct fsend *f, const char *path) {
    f->fs.data = f;
    /* O_NOFOLLOW: the last component was resolved already; a symlink swapped in since is refused */
    if (uv_fs_open(f->loop, &f->fs, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0, on_open) != 0)
        fail(f, 500, "internal_error", "Internal server error");
}

static void on_realpath(uv_fs_t *fs) {
    struct fsend *f = fs->data;
    int rc = (int)fs->result;
    if (rc < 0) {
        uv_fs_req_cleanup(fs);
        bool absent = rc == UV_ENOENT || rc == UV_ENOTDIR || rc == UV_ELOOP;
        if (absent)
            fail(f, 404, "not_found", f->not_found ? f->not_found : "Not found");
        else
            fail(f, 500, "internal_error", "Internal server error");
        return;
    }
    char *real = xstrdup((const char *)fs->ptr);
    uv_fs_req_cleanup(fs);
    size_t rl = strlen(f->root);
    bool inside =
        strncmp(real, f->root, rl) == 0 && (real[rl] == '/' || (rl == 1 && f->root[0] == '/'));
    if (!inside) {
        free(real);
        fail(f, 400, "bad_request", f->invalid ? f->invalid : "Invalid path");
        return;
    }
    open_file(f, real);
    free(real);
}

void http_file_send(http_req_t *req, const char *path, const struct http_file_opts *o) {
    struct fsend *f = xcalloc(1, sizeof *f);
    f->req = req;
    f->loop = http_server_loop(req->server);
    f->fd = -1;
    f->path = xstrdup(path);
    f->root = dup_or_null(o ? o->root : NULL);
    f->content_type = dup_or_null(o ? o->content_type : NULL);
    f->cache_control = dup_or_null(o ? o->cache_control : NULL);
    f->extra = dup_or_null(o ? o->extra_headers : NULL);
    f->not_found = dup_or_null(o ? o->not_found_detail : NULL);
    f->invalid = dup_or_null(o ? o->invalid_detail : NULL);
    f->fs.data = f;
    if (f->root) {
        if (uv_fs_realpath(f->loop, &f->fs, f->path, on_realpath) != 0)
            fail(f, 500, "internal_error", "Internal server error");
        return;
    }
    open_file(f, f->path);
}
