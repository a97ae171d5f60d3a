/*
 * storage_local: media as files under MEDIA_DIR (key "transcoded/x.mp4" is MEDIA_DIR/transcoded/
 * x.mp4). Writes are atomic (temp file in the target directory, fsync, rename, fsync of the
 * directory), so the media routes never serve half a file and a crash leaves the old file or the
 * new one, plus at most a stale dot-temp file that retention removes. Every function here blocks
 * on the file system: worker threads only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dir.h"
#include "core/err.h"
#include "core/log.h"
#include "storage/storage_int.h"

static int local_open(storage_t *s, const config_t *cfg, buf_t *err) { return 0; }
static void local_free(storage_t *s) {}

static int key_path(const storage_t *s, const char *key, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/%s", s->media_dir, key);
    return n < 0 || (size_t)n >= cap ? ERR_INVAL : 0;
}

/* Makes the data of path durable before it is renamed into place. */
static int fsync_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    int rc = fsync(fd) == 0 ? 0 : ERR_IO;
    close(fd);
    return rc;
}

static int local_put_file(storage_t *s, const char *key, const char *src, const char *ct,
                          int flags) {
    char dst[4096];
    int rc = key_path(s, key, dst, sizeof dst);
    if (rc)
        return rc;
    struct stat st;
    if (stat(src, &st) != 0)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    if (!S_ISREG(st.st_mode))
        return ERR_INVAL;
    if (storage_mkdirs_parent(dst) != 0) {
        log_warn("storage", "cannot create the directory of a key", LF_S("key", key),
                 LF_S("error", strerror(errno)));
        return ERR_IO;
    }
    if (flags & STORAGE_PUT_MOVE) {
        /* same file system: durable data, then one rename (atomic), then a durable directory */
        rc = fsync_file(src);
        if (rc)
            return rc;
        if (rename(src, dst) == 0)
            return storage_fsync_parent(dst);
        if (errno != EXDEV) {
            log_warn("storage", "cannot move file into place", LF_S("key", key),
                     LF_S("error", strerror(errno)));
            return ERR_IO;
        }
    }
    rc = storage_copy_atomic(src, dst);
    if (rc == 0 && (flags & STORAGE_PUT_MOVE))
        unlink(src);
    return rc;
}

static int local_get_file(storage_t *s, const char *key, const char *dst) {
    char src[4096];
    int rc = key_path(s, key, src, sizeof src);
    return rc ? rc : storage_copy_atomic(src, dst);
}

static int local_stat(storage_t *s, const char *key, struct storage_stat *out) {
    char path[4096];
    int rc = key_path(s, key, path, sizeof path);
    if (rc)
        return rc;
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? ERR_NOTFOUND : ERR_IO;
    if (!S_ISREG(st.st_mode))
        return ERR_NOTFOUND;
    out->size = (int64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtim.tv_sec;
    /* the same validator the media routes compute from fstat (http/file.c) */
    snprintf(out->etag, sizeof out->etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    return 0;
}

static int local_del(storage_t *s, const char *key) {
    char path[4096];
    int rc = key_path(s, key, path, sizeof path);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR) {
        log_warn("storage", "cannot remove file", LF_S("key", key), LF_S("error", strerror(errno)));
        return ERR_IO;
    }
    return 0;
}

/* Removes the regular files of dir older than older_than: dot-temp files always, others when
 * keep says no (prefix/name is the key given to keep). */
static int sweep(const char *dir, const char *prefix, int64_t older_than,
                 bool (*keep)(const char *key, void *ud), void *ud, int *removed) {
    DIR *d = dir_open(dir);
    if (!d)
        return errno == ENOENT ? 0 : ERR_IO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096], key[STORAGE_KEY_MAX + 1];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            (int64_t)st.st_mtim.tv_sec >= older_than)
            continue;
        bool temp = e->d_name[0] == '.' || !prefix;
        if (!temp) {
            if (snprintf(key, sizeof key, "%s/%s", prefix, e->d_name) >= (int)sizeof key ||
                !storage_key_valid(key))
                continue; /* not one of ours: left alone */
            if (keep && keep(key, ud))
                continue;
        }
        if (unlink(path) == 0)
            (*removed)++;
        else if (errno != ENOENT)
            log_warn("storage", "cannot remove expired file", LF_S("path", path),
                     LF_S("error", strerror(errno)));
    }
    closedir(d);
    return 0;
}

static int local_cleanup(storage_t *s, const char *prefix, int64_t older_than,
                         bool (*keep)(const char *key, void *ud), void *ud, int *removed) {
    char dir[4096];
    int rc = key_path(s, prefix, dir, sizeof dir);
    if (rc)
        return rc;
    rc = sweep(dir, prefix, older_than, keep, ud, removed);
    /* abandoned worker temp files (storage_tmp_path) */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s/.tmp", s->media_dir) < (int)sizeof tmp)
        sweep(tmp, NULL, older_than, NULL, NULL, removed);
    return rc;
}

const struct storage_ops storage_local_ops = {
    .name = "local",
    .open = local_open,
    .free = local_free,
    .put_file = local_put_file,
    .get_file = local_get_file,
    .stat = local_stat,
    .del = local_del,
    .cleanup = local_cleanup,
    .presign = NULL,
};
