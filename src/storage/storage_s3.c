/*
 * storage_s3: media as objects in an S3 bucket (AWS or any S3-compatible server). Requests are
 * blocking libcurl easy transfers (worker threads only) signed by libcurl's AWS SigV4 support
 * (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3") with the payload's SHA-256 sent as
 * x-amz-content-sha256 (so the body is covered by the signature). Presigned GET URLs are computed
 * here (SigV4 query authentication, mbedTLS HMAC-SHA256), pure and callable from any thread.
 *
 * Addressing (S3_ENDPOINT): empty: AWS virtual-host style
 * https://<bucket>.s3.<region>.amazonaws.com; containing "{bucket}": virtual-host style with the
 * bucket put there; otherwise path style <endpoint>/<bucket>/<key>. Object names: <S3_PREFIX>/<key>
 * (the prefix's slashes trimmed).
 *
 * Non-goals: multipart uploads, temporary credentials (session tokens), SSE options.
 */
#include <curl/curl.h>
#include <errno.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "storage/storage_int.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERR_BODY_MAX 65536
#define LIST_BODY_MAX (4u << 20)

struct s3 {
    char *scheme;    /* "http" or "https" */
    char *authority; /* host[:port] as signed and sent (default ports dropped) */
    char *base_path; /* "" (virtual host) or "/<bucket>" (path style) */
    char *prefix;    /* "" or "<prefix>/" */
    char *bucket, *region, *akid, *secret;
    char sigv4[160]; /* CURLOPT_AWS_SIGV4 value */
};

#define S3(s) ((struct s3 *)(s)->impl)

/* ---- configuration ------------------------------------------------------------------------ */

static bool bucket_valid(const char *b) {
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    }
    return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-';
}

static bool region_valid(const char *r) {
    size_t n = strlen(r);
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    return true;
}

/* host[:port] of an endpoint: letters, digits, '.', '-', ':' and IPv6 brackets only. */
static bool authority_valid(const char *a, size_t n) {
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '{' || c == '}'))
            return false;
    }
    return true;
}

static void s3_free(storage_t *s) {
    struct s3 *c = S3(s);
    if (!c)
        return;
    free(c->scheme);
    free(c->authority);
    free(c->base_path);
    free(c->prefix);
    free(c->bucket);
    free(c->region);
    free(c->akid);
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c);
    s->impl = NULL;
    curl_global_cleanup();
}

static int s3_open(storage_t *s, const config_t *cfg, buf_t *err) {
    const char *bucket = config_str(cfg, S_S3_BUCKET), *region = config_str(cfg, S_S3_REGION);
    const char *endpoint = config_str(cfg, S_S3_ENDPOINT), *prefix = config_str(cfg, S_S3_PREFIX);
    const char *akid = config_str(cfg, S_AWS_ACCESS_KEY_ID),
               *secret = config_str(cfg, S_AWS_SECRET_ACCESS_KEY);
    if (!bucket_valid(bucket)) {
        buf_puts(err,
                 "S3_BUCKET: must be 3-63 characters of [a-z0-9.-] (STORAGE_BACKEND=s3 needs it)");
        return ERR_INVAL;
    }
    if (!region_valid(region)) {
        buf_puts(err, "S3_REGION: must be a region name like us-east-1");
        return ERR_INVAL;
    }
    if (!akid[0] || !secret[0]) {
        buf_puts(
            err,
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: both are needed with STORAGE_BACKEND=s3");
        return ERR_INVAL;
    }
    for (const char *p = akid; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            buf_puts(err, "AWS_ACCESS_KEY_ID: must be letters and digits");
            return ERR_INVAL;
        }
    /* the prefix: segments like key segments, slashes around it trimmed */
    while (*prefix == '/')
        prefix++;
    char pfx[STORAGE_KEY_MAX + 2];
    size_t pn = strlen(prefix);
    if (pn > STORAGE_KEY_MAX) {
        buf_puts(err, "S3_PREFIX: too long");
        return ERR_INVAL;
    }
    memcpy(pfx, prefix, pn + 1);
    while (pn > 0 && pfx[pn - 1] == '/')
        pfx[--pn] = '\0';
    for (char *p = pfx; pn > 0;) {
        char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!storage_name_valid(p, len)) {
            buf_puts(err,
                     "S3_PREFIX: segments must match [A-Za-z0-9][A-Za-z0-9._-]* separated by '/'");
            return ERR_INVAL;
        }
        if (!slash)
            break;
        p = slash + 1;
    }

    /* once, at open (start-up, one thread): libcurl's global state is not set up lazily from
     * the worker threads then; reference-counted, undone in s3_free */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        buf_puts(err, "STORAGE_BACKEND=s3: cannot initialise libcurl");
        return ERR_IO;
    }
    struct s3 *c = xcalloc(1, sizeof *c);
    s->impl = c;
    c->bucket = xstrdup(bucket);
    c->region = xstrdup(region);
    c->akid = xstrdup(akid);
    c->secret = xstrdup(secret);
    c->prefix = xmalloc(pn + 2);
    memcpy(c->prefix, pfx, pn);
    if (pn)
        c->prefix[pn++] = '/';
    c->prefix[pn] = '\0';
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", region);

    char auth[300];
    if (!endpoint[0]) {
        c->scheme = xstrdup("https");
        snprintf(auth, sizeof auth, "%s.s3.%s.amazonaws.com", bucket, region);
        c->authority = xstrdup(auth);
        c->base_path = xstrdup("");
        return 0;
    }
    const char *rest;
    if (strncmp(endpoint, "http://", 7) == 0) {
        c->scheme = xstrdup("http");
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        c->scheme = xstrdup("https");
        rest = endpoint + 8;
    } else {
        buf_puts(err, "S3_ENDPOINT: must start with http:// or https://");
        s3_free(s);
        return ERR_INVAL;
    }
    size_t an = strcspn(rest, "/?#");
    if (!authority_valid(rest, an) || (rest[an] && strcmp(rest + an, "/") != 0)) {
        buf_puts(err, "S3_ENDPOINT: must be scheme://host[:port] without a path");
        s3_free(s);
        return ERR_INVAL;
    }
    const char *ph = strstr(rest, "{bucket}");
    if (ph && ph < rest + an) { /* virtual-host style */
        snprintf(auth, sizeof auth, "%.*s%s%.*s", (int)(ph - rest), rest, bucket,
                 (int)(rest + an - (ph + 8)), ph + 8);
        c->base_path = xstrdup("");
    } else {
        snprintf(auth, sizeof auth, "%.*s", (int)an, rest);
        char bp[80];
        snprintf(bp, sizeof bp, "/%s", bucket);
        c->base_path = xstrdup(bp);
    }
    if (strchr(auth, '{') || strchr(auth, '}')) {
        buf_puts(err, "S3_ENDPOINT: the only placeholder is {bucket}");
        s3_free(s);
        return ERR_INVAL;
    }
    /* the default port is not part of the signed host (nor of curl's Host header) */
    size_t al = strlen(auth);
    const char *dport = strcmp(c->scheme, "https") == 0 ? ":443" : ":80";
    size_t dl = strlen(dport);
    if (al > dl && strcmp(auth + al - dl, dport) == 0)
        auth[al - dl] = '\0';
    c->authority = xstrdup(auth);
    return 0;
}

/* ---- SigV4 helpers ------------------------------------------------------------------------ */

/* AWS URI encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (uppercase); '/' kept when
 * keep_slash. Returns 0 or ERR_TOOBIG. */
static int uri_encode(buf_t *b, const char *s, bool keep_slash) {
    static const char hexd[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        int rc;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/')) {
            rc = buf_append(b, &ch, 1);
        } else {
            char e[3] = {'%', hexd[ch >> 4], hexd[ch & 15]};
            rc = buf_append(b, e, 3);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static void hmac(const void *key, size_t klen, const char *msg, uint8_t out[32]) {
    crypto_hmac_sha256(key, klen, msg, strlen(msg), out);
}

/* The object's path: <base_path>/<prefix><key>. */
static void object_path(const struct s3 *c, const char *key, buf_t *b) {
    buf_puts(b, c->base_path);
    buf_puts(b, "/");
    buf_puts(b, c->prefix);
    buf_puts(b, key);
}

static int s3_presign(const storage_t *s, bool head, const char *key, int64_t now,
                      int64_t expires_s, char *out, size_t cap) {
    const struct s3 *c = S3(s);
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return ERR_INVAL;
    char amzdate[17], date[9];
    strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date, amzdate, 8);
    date[8] = '\0';

    buf_t path, query, creq, sts, cred;
    buf_init(&path, 4096);
    buf_init(&query, 4096);
    buf_init(&creq, 16384);
    buf_init(&sts, 1024);
    buf_init(&cred, 512);
    int rc = ERR_TOOBIG;
    buf_t raw;
    buf_init(&raw, 4096);
    object_path(c, key, &raw);
    if (uri_encode(&path, raw.data, true))
        goto out;
    buf_printf(&cred, "%s/%s/%s/s3/aws4_request", c->akid, date, c->region);
    /* canonical query: names in byte order, values URI-encoded. The same parameters as the AWS
     * SDK's presigner (X-Amz-Content-Sha256, x-id), so the URLs are the SDK's byte for byte. */
    buf_puts(
        &query,
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=");
    if (uri_encode(&query, cred.data, false))
        goto out;
    buf_printf(&query, "&X-Amz-Date=%s&X-Amz-Expires=%lld", amzdate, (long long)expires_s);
    size_t sig_at = query.len; /* X-Amz-Signature sorts here, before X-Amz-SignedHeaders */
    buf_puts(&query, head ? "&X-Amz-SignedHeaders=host&x-id=HeadObject"
                          : "&X-Amz-SignedHeaders=host&x-id=GetObject");
    if (buf_printf(&creq, "%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", head ? "HEAD" : "GET",
                   path.data, query.data, c->authority))
        goto out;
    uint8_t h[32];
    char hex[65];
    crypto_sha256(creq.data, creq.len, h);
    crypto_hex(h, 32, hex);
    buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amzdate, date, c->region,
               hex);

    char kstart[256];
    int kn = snprintf(kstart, sizeof kstart, "AWS4%s", c->secret);
    if (kn < 0 || (size_t)kn >= sizeof kstart)
        goto out;
    uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac(kstart, (size_t)kn, date, k1);
    hmac(k1, 32, c->region, k2);
    hmac(k2, 32, "s3", k3);
    hmac(k3, 32, "aws4_request", k4);
    crypto_hmac_sha256(k4, 32, sts.data, sts.len, sig);
    memset(kstart, 0, sizeof kstart);
    crypto_hex(sig, 32, hex);
    int n = snprintf(out, cap, "%s://%s%s?%.*s&X-Amz-Signature=%s%s", c->scheme, c->authority,
                     path.data, (int)sig_at, query.data, hex, query.data + sig_at);
    rc = n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
out:
    buf_release(&raw);
    buf_release(&path);
    buf_release(&query);
    buf_release(&creq);
    buf_release(&sts);
    buf_release(&cred);
    return rc;
}

/* ---- requests ----------------------------------------------------------------------------- */

struct xfer {
    CURL *h;
    FILE *down; /* 2xx bodies go here when set */
    buf_t body; /* other bodies (errors, listings), capped */
    char etag[72];
    long status;
};

static size_t on_write(char *p, size_t sz, size_t n, void *ud) {
    struct xfer *x = ud;
    size_t len = sz * n;
    long st = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
    if (x->down && st >= 200 && st < 300)
        return fwrite(p, 1, len, x->down);
    if (buf_append(&x->body, p, len) != 0)
        return 0; /* over the cap: abort the transfer */
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    struct xfer *x = ud;
    size_t len = sz * n;
    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5;
        size_t vl = len - 5;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < sizeof x->etag) {
            memcpy(x->etag, v, vl);
            x->etag[vl] = '\0';
        }
    }
    return len;
}

/* The S3 error code of an XML error body (<Code>...</Code>) into out, or "". */
static void error_code(const buf_t *b, char *out, size_t cap) {
    out[0] = '\0';
    const char *p = b->data ? strstr(b->data, "<Code>") : NULL;
    const char *e = p ? strstr(p, "</Code>") : NULL;
    if (p && e && (size_t)(e - p - 6) < cap) {
        memcpy(out, p + 6, (size_t)(e - p - 6));
        out[e - p - 6] = '\0';
    }
}

/*
 * One signed request. method "PUT" (upload: up with up_size bytes, payload_hash its SHA-256),
 * "GET", "HEAD", "DELETE". path_query: the URL path and query, already encoded. Returns 0 with
 * x->status set, or ERR_IO (transport failure, logged).
 */
static int request(const struct s3 *c, const char *method, const char *path_query, FILE *up,
                   int64_t up_size, const char *payload_hash, const char *content_type,
                   struct xfer *x) {
    CURL *h = curl_easy_init();
    if (!h)
        return ERR_IO;
    x->h = h;
    char url[STORAGE_URL_MAX], hdr_sha[128], hdr_ct[160];
    snprintf(url, sizeof url, "%s://%s%s", c->scheme, c->authority, path_query);
    struct curl_slist *hdrs = NULL;
    snprintf(hdr_sha, sizeof hdr_sha, "x-amz-content-sha256: %s",
             payload_hash ? payload_hash : EMPTY_SHA256);
    hdrs = curl_slist_append(hdrs, hdr_sha);
    if (content_type) {
        snprintf(hdr_ct, sizeof hdr_ct, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, hdr_ct);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer ends after 60 s */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->akid);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up_size);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK) {
        log_warn("storage", "s3 request failed", LF_S("method", method), LF_S("host", c->authority),
                 LF_S("error", curl_easy_strerror(cc)));
        curl_easy_cleanup(h);
        x->h = NULL;
        return ERR_IO;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
    return 0; /* the caller reads more info, then calls done() */
}

static void done(struct xfer *x) {
    if (x->h)
        curl_easy_cleanup(x->h);
    x->h = NULL;
    buf_release(&x->body);
}

/* Maps a non-2xx answer to an ERR_* (logging the S3 error code, never a secret). */
static int failed(const struct s3 *c, const char *method, const char *key, struct xfer *x) {
    char code[64];
    error_code(&x->body, code, sizeof code);
    if (x->status == 404 && strcmp(code, "NoSuchBucket") != 0)
        return ERR_NOTFOUND;
    log_warn("storage", "s3 refused the request", LF_S("method", method), LF_S("key", key),
             LF_I("status", x->status), LF_S("code", code[0] ? code : NULL));
    if (x->status == 403 || strcmp(code, "InvalidAccessKeyId") == 0 ||
        strcmp(code, "SignatureDoesNotMatch") == 0)
        return ERR_UNAUTH;
    return ERR_IO;
}

static int object_url_path(const struct s3 *c, const char *key, char *out, size_t cap) {
    buf_t raw, enc;
    buf_init(&raw, STORAGE_URL_MAX);
    buf_init(&enc, STORAGE_URL_MAX);
    object_path(c, key, &raw);
    int rc = uri_encode(&enc, raw.data, true);
    if (rc == 0 && snprintf(out, cap, "%s", enc.data) >= (int)cap)
        rc = ERR_TOOBIG;
    buf_release(&raw);
    buf_release(&enc);
    return rc;
}

/* SHA-256 of a file's contents (hex), read in 64 KiB chunks. 0 or ERR_IO. */
static int file_sha256(FILE *f, char hex[65]) {
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts_ret(&ctx, 0);
    char *buf = xmalloc(1 << 16);
    size_t n;
    while ((n = fread(buf, 1, 1 << 16, f)) > 0)
        mbedtls_sha256_update_ret(&ctx, (const unsigned char *)buf, n);
    int rc = ferror(f) ? ERR_IO : 0;
    uint8_t out[32];
    mbedtls_sha256_finish_ret(&ctx, out);
    mbedtls_sha256_free(&ctx);
    free(buf);
    if (rc == 0)
        crypto_hex(out, 32, hex);
    return rc;
}

static int s3_put_file(storage_t *s, const char *key, const char *src, const char *ct, int flags) {
    const struct s3 *c = S3(s);
    FILE *f = fopen(src, "rb");
    if (!f)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    struct stat st;
    char hash[65], path[STORAGE_URL_MAX];
    int rc = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? 0 : ERR_INVAL;
    if (rc == 0)
        rc = file_sha256(f, hash);
    if (rc == 0)
        rc = object_url_path(c, key, path, sizeof path);
    if (rc == 0 && fseek(f, 0, SEEK_SET) != 0)
        rc = ERR_IO;
    struct xfer x = {0};
    buf_init(&x.body, ERR_BODY_MAX);
    if (rc == 0)
        rc = request(c, "PUT", path, f, (int64_t)st.st_size, hash, ct, &x);
    if (rc == 0 && (x.status < 200 || x.status >= 300))
        rc = failed(c, "PUT", key, &x);
    if (rc == ERR_NOTFOUND)
        rc = ERR_IO; /* a 404 on PUT: the bucket or the endpoint is wrong */
    done(&x);
    fclose(f);
    if (rc == 0 && (flags & STORAGE_PUT_MOVE))
        unlink(src);
    return rc;
}

static int s3_get_file(storage_t *s, const char *key, const char *dst) {
    const struct s3 *c = S3(s);
    char tmp[4096], path[STORAGE_URL_MAX];
    int rc = storage_tmp_sibling(dst, tmp, sizeof tmp);
    if (rc == 0)
        rc = object_url_path(c, key, path, sizeof path);
    if (rc)
        return rc;
    FILE *f = fopen(tmp, "wbx");
    if (!f)
        return ERR_IO;
    struct xfer x = {0};
    buf_init(&x.body, ERR_BODY_MAX);
    x.down = f;
    rc = request(c, "GET", path, NULL, 0, NULL, NULL, &x);
    if (rc == 0 && (x.status < 200 || x.status >= 300))
        rc = failed(c, "GET", key, &x);
    done(&x);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : ERR_IO;
    fclose(f);
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = ERR_IO;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return storage_fsync_parent(dst);
}

static int s3_stat(storage_t *s, const char *key, struct storage_stat *st) {
    const struct s3 *c = S3(s);
    char path[STORAGE_URL_MAX];
    int rc = object_url_path(c, key, path, sizeof path);
    if (rc)
        return rc;
    struct xfer x = {0};
    buf_init(&x.body, ERR_BODY_MAX);
    rc = request(c, "HEAD", path, NULL, 0, NULL, NULL, &x);
    if (rc == 0 && (x.status < 200 || x.status >= 300))
        rc = x.status == 404 ? ERR_NOTFOUND : failed(c, "HEAD", key, &x);
    if (rc == 0) {
        curl_off_t len = -1, ft = -1;
        curl_easy_getinfo(x.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        curl_easy_getinfo(x.h, CURLINFO_FILETIME_T, &ft);
        st->size = len < 0 ? 0 : (int64_t)len;
        st->mtime = ft < 0 ? 0 : (int64_t)ft;
        snprintf(st->etag, sizeof st->etag, "%s", x.etag);
    }
    done(&x);
    return rc;
}

static int s3_del(storage_t *s, const char *key) {
    const struct s3 *c = S3(s);
    char path[STORAGE_URL_MAX];
    int rc = object_url_path(c, key, path, sizeof path);
    if (rc)
        return rc;
    struct xfer x = {0};
    buf_init(&x.body, ERR_BODY_MAX);
    rc = request(c, "DELETE", path, NULL, 0, NULL, NULL, &x);
    if (rc == 0 && (x.status < 200 || x.status >= 300) && x.status != 404)
        rc = failed(c, "DELETE", key, &x);
    done(&x);
    return rc;
}

/* The text between <tag> and </tag> from *p on (before end), advancing *p; false when absent. */
static bool xml_next(const char **p, const char *end, const char *tag, char *out, size_t cap) {
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(*p, open);
    if (!a || a >= end)
        return false;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b || b > end || (size_t)(b - a) >= cap)
        return false;
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = '\0';
    *p = b + strlen(close);
    return true;
}

/* "2026-12-01T10:00:00.000Z" to Unix seconds; -1 when malformed. */
static int64_t parse_iso(const char *s) {
    struct tm tm = {0};
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    return e ? (int64_t)timegm(&tm) : -1;
}

static int s3_cleanup(storage_t *s, const char *prefix, int64_t older_than,
                      bool (*keep)(const char *key, void *ud), void *ud, int *removed) {
    const struct s3 *c = S3(s);
    char token[1024] = "";
    int rc = 0;
    for (int page = 0; page < 10000; page++) {
        buf_t pq, full;
        buf_init(&pq, STORAGE_URL_MAX);
        buf_init(&full, STORAGE_KEY_MAX * 2);
        buf_printf(&full, "%s%s/", c->prefix, prefix);
        /* query names in byte order: libcurl signs the query as given */
        buf_puts(&pq, c->base_path[0] ? c->base_path : "/");
        buf_puts(&pq, "?");
        if (token[0]) {
            buf_puts(&pq, "continuation-token=");
            uri_encode(&pq, token, false);
            buf_puts(&pq, "&");
        }
        buf_puts(&pq, "list-type=2&prefix=");
        uri_encode(&pq, full.data, false);
        struct xfer x = {0};
        buf_init(&x.body, LIST_BODY_MAX);
        rc = request(c, "GET", pq.data, NULL, 0, NULL, NULL, &x);
        if (rc == 0 && x.status != 200)
            rc = failed(c, "LIST", prefix, &x);
        buf_release(&pq);
        if (rc) {
            buf_release(&full);
            done(&x);
            return rc;
        }
        const char *p = x.body.data ? x.body.data : "";
        const char *cend;
        while ((p = strstr(p, "<Contents>")) != NULL && (cend = strstr(p, "</Contents>")) != NULL) {
            char name[STORAGE_KEY_MAX * 2], lm[64];
            const char *q = p;
            bool okk = xml_next(&q, cend, "Key", name, sizeof name);
            q = p;
            bool okm = xml_next(&q, cend, "LastModified", lm, sizeof lm);
            p = cend + 11;
            if (!okk || !okm || strncmp(name, c->prefix, strlen(c->prefix)) != 0)
                continue;
            const char *key = name + strlen(c->prefix);
            int64_t t = parse_iso(lm);
            if (!storage_key_valid(key) || t < 0 || t >= older_than)
                continue;
            if (keep && keep(key, ud))
                continue;
            if (s3_del(s, key) == 0)
                (*removed)++;
        }
        char trunc[16] = "";
        const char *b = x.body.data ? x.body.data : "";
        const char *bend = b + x.body.len;
        const char *q = b;
        xml_next(&q, bend, "IsTruncated", trunc, sizeof trunc);
        q = b;
        bool more = strcmp(trunc, "true") == 0 &&
                    xml_next(&q, bend, "NextContinuationToken", token, sizeof token);
        buf_release(&full);
        done(&x);
        if (!more)
            break;
    }
    return 0;
}

const struct storage_ops storage_s3_ops = {
    .name = "s3",
    .open = s3_open,
    .free = s3_free,
    .put_file = s3_put_file,
    .get_file = s3_get_file,
    .stat = s3_stat,
    .del = s3_del,
    .cleanup = s3_cleanup,
    .presign = s3_presign,
};
