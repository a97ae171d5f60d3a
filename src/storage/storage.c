/*
 * storage: the backend registry, key rules, media URLs and their signatures, and the file
 * helpers both backends use. Threads as stated in storage.h.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "http/file.h"

/* The backends, by STORAGE_BACKEND name. */
static const struct storage_ops *const backends[] = {&storage_local_ops, &storage_s3_ops};

/* ---- keys --------------------------------------------------------------------------------- */

bool storage_name_valid(const char *name, size_t n) {
    if (n < 1 || n > STORAGE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
        if (c == '.' && i + 1 < n && name[i + 1] == '.')
            return false;
    }
    return true;
}

bool storage_key_valid(const char *key) {
    if (!key)
        return false;
    size_t n = strlen(key);
    if (n == 0 || n > STORAGE_KEY_MAX)
        return false;
    int segs = 0;
    for (const char *p = key;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!storage_name_valid(p, len) || ++segs > 4)
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

const char *storage_content_type(const char *key) { return http_file_content_type(key); }

/* ---- open --------------------------------------------------------------------------------- */

int storage_open(const config_t *cfg, storage_t **out, buf_t *err) {
    const char *name = config_str(cfg, S_STORAGE_BACKEND);
    const struct storage_ops *ops = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            ops = backends[i];
    if (!ops) {
        buf_printf(err, "STORAGE_BACKEND: unknown backend '%s'", name);
        return ERR_INVAL;
    }
    const char *dir = config_str(cfg, S_MEDIA_DIR);
    const char *base = config_str(cfg, S_PUBLIC_BASE_URL);
    if (!dir[0]) {
        buf_puts(err, "MEDIA_DIR: must not be empty");
        return ERR_INVAL;
    }
    if (base[0] && strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        buf_puts(err, "PUBLIC_BASE_URL: must start with http:// or https://");
        return ERR_INVAL;
    }
    storage_t *s = xcalloc(1, sizeof *s);
    s->ops = ops;
    s->media_dir = xstrdup(dir);
    for (size_t n = strlen(s->media_dir); n > 1 && s->media_dir[n - 1] == '/'; n--)
        s->media_dir[n - 1] = '\0';
    s->base_url = xstrdup(base);
    for (size_t n = strlen(s->base_url); n > 0 && s->base_url[n - 1] == '/'; n--)
        s->base_url[n - 1] = '\0';
    s->host = xstrdup(config_str(cfg, S_HOST));
    s->port = (int)config_int(cfg, S_PORT);
    const char *tok = config_str(cfg, S_MEDIA_ACCESS_TOKEN);
    if (tok[0]) {
        s->token = xstrdup(tok);
        s->token_len = strlen(tok);
    }
    s->url_ttl_s = config_int(cfg, S_MEDIA_URL_TTL_S);
    s->presign_s = config_int(cfg, S_S3_PRESIGN_S);
    s->retention_hours = config_int(cfg, S_MEDIA_RETENTION_HOURS);
    int rc = storage_mkdirs(s->media_dir);
    if (rc) {
        buf_printf(err, "MEDIA_DIR: cannot create '%s': %s", s->media_dir, strerror(errno));
        storage_free(s);
        return rc;
    }
    char *real = realpath(s->media_dir, NULL);
    if (!real) {
        buf_printf(err, "MEDIA_DIR: cannot resolve '%s': %s", s->media_dir, strerror(errno));
        storage_free(s);
        return ERR_IO;
    }
    s->media_root = real;
    rc = ops->open(s, cfg, err);
    if (rc) {
        s->ops = NULL; /* nothing of the backend to free */
        storage_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void storage_set_port(storage_t *s, int port) { s->port = port; }

void storage_free(storage_t *s) {
    if (!s)
        return;
    if (s->ops)
        s->ops->free(s);
    free(s->media_dir);
    free(s->media_root);
    free(s->base_url);
    free(s->host);
    if (s->token) {
        memset(s->token, 0, s->token_len);
        free(s->token);
    }
    free(s);
}

const char *storage_backend(const storage_t *s) { return s->ops->name; }
bool storage_is_local(const storage_t *s) { return s->ops == &storage_local_ops; }
const char *storage_media_token(const storage_t *s) { return s->token; }
const char *storage_local_root(const storage_t *s) {
    return storage_is_local(s) ? s->media_root : NULL;
}

int storage_local_path(const storage_t *s, const char *key, char *out, size_t cap) {
    if (!storage_is_local(s) || !storage_key_valid(key))
        return ERR_INVAL;
    int n = snprintf(out, cap, "%s/%s", s->media_dir, key);
    return n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
}

int storage_tmp_path(const storage_t *s, const char *suffix, char *out, size_t cap) {
    if (!suffix || !storage_name_valid(suffix, strlen(suffix)))
        return ERR_INVAL;
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s/.tmp", s->media_dir) >= (int)sizeof dir)
        return ERR_TOOBIG;
    int rc = storage_mkdirs(dir);
    if (rc)
        return rc;
    uint8_t r[8];
    char hex[17];
    crypto_random(r, sizeof r);
    crypto_hex(r, sizeof r, hex);
    int n = snprintf(out, cap, "%s/%s-%s", dir, hex, suffix);
    return n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
}

/* ---- dispatch to the backend -------------------------------------------------------------- */

int storage_put_file(storage_t *s, const char *key, const char *src_path, const char *content_type,
                     int flags) {
    if (!storage_key_valid(key) || !src_path || !src_path[0])
        return ERR_INVAL;
    return s->ops->put_file(s, key, src_path,
                            content_type ? content_type : storage_content_type(key), flags);
}

int storage_get_file(storage_t *s, const char *key, const char *dst_path) {
    if (!storage_key_valid(key) || !dst_path || !dst_path[0])
        return ERR_INVAL;
    return s->ops->get_file(s, key, dst_path);
}

int storage_stat(storage_t *s, const char *key, struct storage_stat *st) {
    if (!storage_key_valid(key))
        return ERR_INVAL;
    return s->ops->stat(s, key, st);
}

bool storage_exists(storage_t *s, const char *key) {
    struct storage_stat st;
    return storage_stat(s, key, &st) == 0;
}

int storage_delete(storage_t *s, const char *key) {
    if (!storage_key_valid(key))
        return ERR_INVAL;
    return s->ops->del(s, key);
}

int storage_cleanup(storage_t *s, const char *prefix, int64_t older_than,
                    bool (*keep)(const char *key, void *ud), void *ud, int *removed) {
    char p[STORAGE_KEY_MAX + 2];
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > STORAGE_KEY_MAX)
        return ERR_INVAL;
    memcpy(p, prefix, n + 1);
    if (p[n - 1] == '/')
        p[--n] = '\0';
    if (!storage_key_valid(p))
        return ERR_INVAL;
    int count = 0;
    int rc = s->ops->cleanup(s, p, older_than, keep, ud, &count);
    if (removed)
        *removed = count;
    if (count > 0)
        log_info("storage", "retention removed media", LF_S("prefix", p), LF_I("removed", count));
    return rc;
}

int storage_key_run_id(const char *key, char out[37]) {
    static const char *const shapes[] = {"transcoded/clip_", "thumbnails/thumb_"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = strlen(shapes[i]);
        if (strncmp(key, shapes[i], n) != 0 || strlen(key) < n + 37)
            continue;
        const char *id = key + n;
        if (id[36] != '_' || !crypto_is_uuid(id, 36) || strchr(id, '/') || !storage_key_valid(key))
            return ERR_INVAL;
        memcpy(out, id, 36);
        out[36] = '\0';
        return 0;
    }
    return ERR_INVAL;
}

int64_t storage_retention_cutoff(const storage_t *s, int64_t now) {
    return s->retention_hours > 0 ? now - s->retention_hours * 3600 : 0;
}

/* ---- URLs --------------------------------------------------------------------------------- */

int storage_media_path(const char *key, char *out, size_t cap) {
    if (!storage_key_valid(key))
        return ERR_INVAL;
    const char *slash = strchr(key, '/');
    if (!slash || strchr(slash + 1, '/'))
        return ERR_INVAL;
    size_t dlen = (size_t)(slash - key);
    const char *file = slash + 1;
    int n;
    if (dlen == 10 && memcmp(key, "transcoded", 10) == 0) {
        n = snprintf(out, cap, "/v1/media/transcoded/%s", file);
    } else if (dlen == 10 && memcmp(key, "thumbnails", 10) == 0) {
        n = snprintf(out, cap, "/v1/media/thumbnails/%s", file);
    } else if (dlen == 7 && memcmp(key, "renders", 7) == 0) {
        size_t fl = strlen(file);
        if (fl <= 4 || strcmp(file + fl - 4, ".mp4") != 0)
            return ERR_INVAL;
        n = snprintf(out, cap, "/v1/media/video/%.*s", (int)(fl - 4), file);
    } else {
        return ERR_INVAL;
    }
    return n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
}

int storage_presign(const storage_t *s, const char *key, int64_t now, int64_t expires_s, char *out,
                    size_t cap) {
    if (!s->ops->presign || !storage_key_valid(key) || expires_s < 1 || expires_s > 604800)
        return ERR_INVAL;
    return s->ops->presign(s, false, key, now, expires_s, out, cap);
}

int storage_presign_head(const storage_t *s, const char *key, int64_t now, int64_t expires_s,
                         char *out, size_t cap) {
    if (!s->ops->presign || !storage_key_valid(key) || expires_s < 1 || expires_s > 604800)
        return ERR_INVAL;
    return s->ops->presign(s, true, key, now, expires_s, out, cap);
}

int storage_url(const storage_t *s, const char *key, int64_t now, char *out, size_t cap) {
    if (s->ops->presign)
        return storage_presign(s, key, now, s->presign_s, out, cap);
    char path[STORAGE_KEY_MAX + 64];
    int rc = storage_media_path(key, path, sizeof path);
    if (rc)
        return rc;
    char base[512];
    if (s->base_url[0])
        snprintf(base, sizeof base, "%s", s->base_url);
    else if (strchr(s->host, ':')) /* IPv6 literal */
        snprintf(base, sizeof base, "http://[%s]:%d", s->host, s->port);
    else
        snprintf(base, sizeof base, "http://%s:%d",
                 strcmp(s->host, "0.0.0.0") == 0 ? "127.0.0.1" : s->host, s->port);
    int n;
    if (s->token) {
        char sig[65];
        int64_t exp = now + s->url_ttl_s;
        storage_media_sign(s->token, s->token_len, path, exp, sig);
        n = snprintf(out, cap, "%s%s?expires=%lld&sig=%s", base, path, (long long)exp, sig);
    } else {
        n = snprintf(out, cap, "%s%s", base, path);
    }
    return n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
}

/* ---- signed media URLs -------------------------------------------------------------------- */

void storage_media_sign(const char *token, size_t token_len, const char *path, int64_t expires,
                        char sig[65]) {
    char msg[STORAGE_KEY_MAX + 128];
    size_t plen = strlen(path);
    uint8_t mac[32];
    if (plen > STORAGE_KEY_MAX + 64) { /* never a valid media path: a signature nobody can match */
        memset(sig, '0', 64);
        sig[64] = '\0';
        return;
    }
    int n = snprintf(msg, sizeof msg, "%s%lld", path, (long long)expires);
    crypto_hmac_sha256(token, token_len, msg, (size_t)n, mac);
    crypto_hex(mac, sizeof mac, sig);
}

int storage_media_verify(const char *token, size_t token_len, const char *path, const char *expires,
                         const char *sig, int64_t now) {
    if (!token || !path || !expires || !sig)
        return ERR_UNAUTH;
    size_t en = strlen(expires);
    if (en < 1 || en > 18)
        return ERR_UNAUTH;
    int64_t exp = 0;
    for (size_t i = 0; i < en; i++) {
        if (expires[i] < '0' || expires[i] > '9')
            return ERR_UNAUTH;
        exp = exp * 10 + (expires[i] - '0');
    }
    if (strlen(sig) != 64)
        return ERR_UNAUTH;
    char got[65];
    for (size_t i = 0; i < 64; i++) {
        char c = sig[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return ERR_UNAUTH;
        got[i] = c;
    }
    got[64] = '\0';
    char want[65];
    /* sign the value as received (leading zeros included): the signer chose that text */
    char msg[STORAGE_KEY_MAX + 128];
    size_t plen = strlen(path);
    if (plen > STORAGE_KEY_MAX + 64)
        return ERR_UNAUTH;
    memcpy(msg, path, plen);
    memcpy(msg + plen, expires, en);
    uint8_t mac[32];
    crypto_hmac_sha256(token, token_len, msg, plen + en, mac);
    crypto_hex(mac, sizeof mac, want);
    bool ok = crypto_ct_equal(got, 64, want, 64);
    if (!ok || exp < now)
        return ERR_UNAUTH;
    return 0;
}

/* ---- file helpers ------------------------------------------------------------------------- */

int storage_mkdirs(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ERR_IO;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return ERR_IO;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return ERR_IO;
    return 0;
}

int storage_mkdirs_parent(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ERR_IO;
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = '\0';
    return storage_mkdirs(tmp);
}

int storage_fsync_parent(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ERR_IO;
    char *slash = strrchr(tmp, '/');
    if (slash == tmp)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(tmp, sizeof tmp, ".");
    int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ERR_IO;
    int rc = fsync(fd) == 0 ? 0 : ERR_IO;
    close(fd);
    return rc;
}

int storage_tmp_sibling(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dlen = slash ? (int)(slash - path) + 1 : 0;
    uint8_t r[8];
    char hex[17];
    crypto_random(r, sizeof r);
    crypto_hex(r, sizeof r, hex);
    int n = snprintf(out, cap, "%.*s.%s.%s.tmp", dlen, path, base, hex);
    return n < 0 || (size_t)n >= cap ? ERR_TOOBIG : 0;
}

int storage_copy_atomic(const char *src, const char *dst) {
    char tmp[4096];
    int rc = storage_tmp_sibling(dst, tmp, sizeof tmp);
    if (rc)
        return rc;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    int outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (outfd < 0) {
        log_warn("storage", "cannot create temp file", LF_S("path", tmp),
                 LF_S("error", strerror(errno)));
        close(in);
        return ERR_IO;
    }
    rc = 0;
    static const size_t chunk = 1 << 16;
    char *buf = xmalloc(chunk);
    for (;;) {
        ssize_t n = read(in, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ERR_IO;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(outfd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = ERR_IO;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    free(buf);
    if (rc == 0 && fsync(outfd) != 0)
        rc = ERR_IO;
    if (close(outfd) != 0 && rc == 0)
        rc = ERR_IO;
    close(in);
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = ERR_IO;
    if (rc) {
        log_warn("storage", "cannot copy file", LF_S("to", dst), LF_S("error", strerror(errno)));
        unlink(tmp);
        return rc;
    }
    return storage_fsync_parent(dst);
}
