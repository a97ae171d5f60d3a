/*
 * storage_int: what the backends share with storage.c (not for callers): the ops table every
 * backend fills, the storage struct, and small file helpers. Threads as in storage.h.
 */
#ifndef MYLOWARE_STORAGE_STORAGE_INT_H
#define MYLOWARE_STORAGE_STORAGE_INT_H

#include "storage/storage.h"

struct storage_ops {
    const char *name;
    /* Reads its settings into s->impl; ERR_INVAL with a message in err. */
    int (*open)(storage_t *s, const config_t *cfg, buf_t *err);
    void (*free)(storage_t *s);
    int (*put_file)(storage_t *s, const char *key, const char *src, const char *content_type,
                    int flags);
    int (*get_file)(storage_t *s, const char *key, const char *dst);
    int (*stat)(storage_t *s, const char *key, struct storage_stat *st);
    int (*del)(storage_t *s, const char *key);
    int (*cleanup)(storage_t *s, const char *prefix, int64_t older_than,
                   bool (*keep)(const char *key, void *ud), void *ud, int *removed);
    /* NULL when the backend has no presigned URLs (local) */
    /* head: a HEAD URL (HeadObject) instead of GET */
    int (*presign)(const storage_t *s, bool head, const char *key, int64_t now, int64_t expires_s,
                   char *out, size_t cap);
};

extern const struct storage_ops storage_local_ops;
extern const struct storage_ops storage_s3_ops;

struct storage {
    const struct storage_ops *ops;
    char *media_dir;  /* no trailing '/' */
    char *media_root; /* realpath(media_dir) */
    char *base_url;   /* PUBLIC_BASE_URL without a trailing '/', or "" (then host:port) */
    char *host;       /* HOST, for the default base URL */
    int port;
    char *token; /* MEDIA_ACCESS_TOKEN or NULL */
    size_t token_len;
    int64_t url_ttl_s, presign_s, retention_hours;
    void *impl; /* the backend's own state */
};

/* mkdir -p of path (0750). 0 or ERR_IO. Worker thread (or start-up). */
int storage_mkdirs(const char *path);
/* mkdir -p of the directory part of path. */
int storage_mkdirs_parent(const char *path);
/* fsync of the directory holding path (after a rename). 0 or ERR_IO. */
int storage_fsync_parent(const char *path);
/* Copies src to dst atomically: a temp file next to dst, fsync, rename, fsync of the directory.
 * 0, ERR_NOTFOUND (no src), ERR_IO. */
int storage_copy_atomic(const char *src, const char *dst);
/* A temp name next to path: "<dir>/.<base>.<16 hex>.tmp". 0 or ERR_TOOBIG. */
int storage_tmp_sibling(const char *path, char *out, size_t cap);
/* Content-Type by the key's extension ("application/octet-stream" when unknown). */
const char *storage_content_type(const char *key);

#endif
