/*
 * storage: where media files live, behind one interface (runtime.md §4). Two backends, each an
 * ops table in its own file: `local` (storage_local.c: files under MEDIA_DIR) and `s3`
 * (storage_s3.c: objects under S3_BUCKET/S3_PREFIX, uploads signed by libcurl's AWS SigV4,
 * presigned GET URLs computed here). STORAGE_BACKEND picks one; adding a backend is one file and
 * one line in storage.c.
 *
 * Keys. An object is named by a key: one to four segments separated by '/', each segment
 * matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ and never containing "..", at most
 * STORAGE_KEY_MAX bytes. The media routes (api.md §7) serve three families:
 *     transcoded/clip_<run_id>_<i>.mp4   ->  /v1/media/transcoded/clip_<run_id>_<i>.mp4
 *     thumbnails/thumb_<run_id>_<i>.jpg  ->  /v1/media/thumbnails/thumb_<run_id>_<i>.jpg
 *     renders/<run_id>.mp4               ->  /v1/media/video/<run_id>
 * Other keys may be stored (and fetched back by workers) but have no public URL.
 *
 * Writes are atomic: a reader sees the old object, no object, or the whole new one; never a
 * part (local: temp file in the same directory + fsync + rename + fsync of the directory; s3:
 * a single PUT). A put of an existing key replaces it.
 *
 * Threads. storage_t is read-only after storage_open() and may be shared by every thread.
 *   - pure (any thread, loop included; no I/O): storage_key_valid, storage_backend,
 *     storage_local_path, storage_local_root, storage_media_path, storage_url, storage_presign, the
 * storage_media_* helpers.
 *   - blocking (worker / pool threads only, NEVER the loop): storage_put_file, storage_get_file,
 *     storage_stat, storage_exists, storage_delete, storage_cleanup, storage_tmp_path (mkdir).
 *
 * Errors (core/err.h): ERR_INVAL bad key or arguments, ERR_NOTFOUND no such object, ERR_IO
 * file-system or network failure (reason logged, never a secret), ERR_UNAUTH the server refused
 * our credentials (s3 403 InvalidAccessKeyId / SignatureDoesNotMatch / AccessDenied),
 * ERR_TOOBIG an output buffer too small. Out-parameters are untouched on failure.
 *
 * Non-goals: multipart uploads (one PUT, S3's 5 GiB limit), listing for the API, versioning.
 */
#ifndef MYLOWARE_STORAGE_STORAGE_H
#define MYLOWARE_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

#define STORAGE_KEY_MAX 512
#define STORAGE_NAME_MAX 128 /* one key segment (and one media route file name) */
#define STORAGE_URL_MAX 4096 /* storage_url / storage_presign outputs fit in this */

typedef struct storage storage_t;

struct storage_stat {
    int64_t size;  /* bytes */
    int64_t mtime; /* last modification, Unix seconds */
    char etag[72]; /* quoted strong validator: local "<size hex>-<mtime ns hex>", s3 its ETag */
};

/* Flags of storage_put_file. */
enum storage_put_flags {
    STORAGE_PUT_MOVE = 1, /* the source file is consumed: renamed into place when it is on the
                             same file system (local), else copied / uploaded then unlinked */
};

/*
 * Opens the backend named by STORAGE_BACKEND from cfg (MEDIA_DIR; S3_BUCKET, S3_PREFIX,
 * S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_PRESIGN_S;
 * PUBLIC_BASE_URL (else http://HOST:PORT), MEDIA_ACCESS_TOKEN, MEDIA_URL_TTL_S,
 * MEDIA_RETENTION_HOURS). Validates them (an unusable value: ERR_INVAL with the setting's name
 * and the reason in err, never a secret) and creates MEDIA_DIR (local; s3 uses it for temp
 * files). No network traffic. The config must outlive the storage (its strings are copied).
 * S3_ENDPOINT: empty means AWS (virtual-host style, https://<bucket>.s3.<region>.amazonaws.com);
 * an endpoint containing "{bucket}" is virtual-host style with the bucket put there
 * ("https://{bucket}.s3.example.com"); any other endpoint is path style
 * (http://127.0.0.1:9000/<bucket>/<key>).
 * Main thread at start-up (or any thread). Returns 0 and *out, or ERR_INVAL / ERR_IO.
 */
int storage_open(const config_t *cfg, storage_t **out, buf_t *err);
/* The port of the URLs when PUBLIC_BASE_URL is empty (http://HOST:<port>): the server calls it
 * once it is listening (PORT=0 picks the port then). Main thread at start-up, before the storage
 * is shared with other threads. */
void storage_set_port(storage_t *s, int port);
/* Frees the storage. NULL is fine. Any thread, once no other thread uses it. */
void storage_free(storage_t *s);
/* "local" or "s3". Pure. */
const char *storage_backend(const storage_t *s);
/* True for the local backend (files are served from disk; else the routes answer 302). Pure. */
bool storage_is_local(const storage_t *s);

/* True when key follows the key rules above. Pure, any thread. */
bool storage_key_valid(const char *key);
/* True when name is one segment: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ and no "..". Pure. */
bool storage_name_valid(const char *name, size_t n);

/*
 * Local backend: the file path of key (MEDIA_DIR/key) into out (cap bytes). The file may not
 * exist. Pure, any thread. ERR_INVAL bad key or not the local backend; ERR_TOOBIG.
 */
int storage_local_path(const storage_t *s, const char *key, char *out, size_t cap);

/* Local backend: MEDIA_DIR with symlinks resolved (taken at storage_open), the directory every
 * served file must resolve inside; NULL for other backends. Pure. */
const char *storage_local_root(const storage_t *s);

/*
 * A fresh temp file path for a worker to write an output into before storage_put_file(...,
 * STORAGE_PUT_MOVE) (MEDIA_DIR/.tmp/<random>-<suffix>; suffix like "clip.mp4" keeps the
 * extension for FFmpeg's muxer guess). Creates MEDIA_DIR/.tmp when missing; the file itself is
 * not created. Worker thread. ERR_INVAL / ERR_IO / ERR_TOOBIG.
 */
int storage_tmp_path(const storage_t *s, const char *suffix, char *out, size_t cap);

/*
 * Stores the file at src_path under key, atomically; content_type (NULL: from the extension)
 * is the S3 Content-Type. With STORAGE_PUT_MOVE the source is gone afterwards on success (and
 * left in place on failure). Worker thread (blocking: copy, fsync, or network upload).
 * 0, ERR_INVAL, ERR_NOTFOUND (no src_path), ERR_IO, ERR_UNAUTH.
 */
int storage_put_file(storage_t *s, const char *key, const char *src_path, const char *content_type,
                     int flags);
/*
 * Copies the object to dst_path (atomically: temp + rename), e.g. clips a render needs on local
 * disk. Local backend: a plain copy. Worker thread. 0, ERR_INVAL, ERR_NOTFOUND, ERR_IO, ERR_UNAUTH.
 */
int storage_get_file(storage_t *s, const char *key, const char *dst_path);
/* Size, mtime and ETag of key. Worker thread (s3: a HEAD request). 0, ERR_NOTFOUND, ERR_*. */
int storage_stat(storage_t *s, const char *key, struct storage_stat *st);
/* True when key exists (false on any error). Worker thread. */
bool storage_exists(storage_t *s, const char *key);
/* Removes key; an absent key is success (idempotent). Worker thread. 0, ERR_INVAL, ERR_IO. */
int storage_delete(storage_t *s, const char *key);

/*
 * Retention of intermediate media: removes the objects under prefix (e.g. "transcoded/",
 * "thumbnails/") last modified before older_than (Unix seconds) for which keep(key, ud) is
 * false (keep NULL: remove them all), e.g. keep returns true while the clip's run is not
 * finished. Callers derive older_than from storage_retention_cutoff(). Objects whose names
 * start with '.' (temp files) older than older_than are removed too (local). *removed gets the
 * count (may be NULL). Worker thread (blocking: directory scan / s3 ListObjectsV2 + DELETE).
 * keep is called on the same thread. 0 or ERR_*; a failure to remove one object is logged and
 * the scan goes on.
 */
int storage_cleanup(storage_t *s, const char *prefix, int64_t older_than,
                    bool (*keep)(const char *key, void *ud), void *ud, int *removed);
/* The run id of an intermediate media key ("transcoded/clip_<run_id>_<i>.mp4",
 * "thumbnails/thumb_<run_id>_<i>.jpg", run_id a UUID) into out (37 bytes), for cleanup's keep
 * callback. Pure. 0, or ERR_INVAL when the key is not of that shape. */
int storage_key_run_id(const char *key, char out[37]);
/* now - MEDIA_RETENTION_HOURS as Unix seconds, or 0 when retention is off (0 hours: keep all,
 * so callers skip the cleanup). Pure. */
int64_t storage_retention_cutoff(const storage_t *s, int64_t now);

/*
 * The public media route path of key ("/v1/media/transcoded/x.mp4", "/v1/media/video/<id>"
 * for renders/<id>.mp4, "/v1/media/thumbnails/x.jpg") into out. Pure. ERR_INVAL when the key
 * has no route; ERR_TOOBIG.
 */
int storage_media_path(const char *key, char *out, size_t cap);

/*
 * The absolute URL given to providers and the UI for key, valid from now (Unix seconds):
 *   local: PUBLIC_BASE_URL + storage_media_path(key), signed with MEDIA_ACCESS_TOKEN when it is
 *          set ("?expires=<now + MEDIA_URL_TTL_S>&sig=<hex>", see storage_media_sign);
 *   s3:    a presigned GET URL valid S3_PRESIGN_S seconds (storage_presign).
 * Pure (no I/O; the object is not checked), any thread. ERR_INVAL (no route for a local key),
 * ERR_TOOBIG.
 */
int storage_url(const storage_t *s, const char *key, int64_t now, char *out, size_t cap);

/*
 * S3 backend: a SigV4 presigned GET URL for key (query auth: X-Amz-Algorithm,
 * X-Amz-Content-Sha256=UNSIGNED-PAYLOAD, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 * X-Amz-Signature, X-Amz-SignedHeaders=host, x-id=GetObject: the AWS SDK's presigner's URL, byte
 * for byte), signed at now (Unix seconds, so tests fix the clock), valid expires_s
 * seconds (1..604800). Pure, any thread. ERR_INVAL (not s3, bad key, bad expiry), ERR_TOOBIG.
 */
int storage_presign(const storage_t *s, const char *key, int64_t now, int64_t expires_s, char *out,
                    size_t cap);
/* The same for a HEAD request (the canonical request's method HEAD, x-id=HeadObject): the
 * media routes check that an object exists before redirecting to it. Pure, any thread. */
int storage_presign_head(const storage_t *s, const char *key, int64_t now, int64_t expires_s,
                         char *out, size_t cap);

/* ---- signed media URLs (api.md §7), pure, any thread ------------------------------------------
 */

/* hex HMAC-SHA256(token, path + decimal(expires)) into sig (65 bytes). path is the request path
 * without the query ("/v1/media/transcoded/x.mp4"). */
void storage_media_sign(const char *token, size_t token_len, const char *path, int64_t expires,
                        char sig[65]);
/*
 * Checks a signed media URL's query values: expires (decimal Unix seconds, as received) must be
 * >= now and sig its signature (constant-time compare, either hex case). Returns 0, ERR_UNAUTH
 * (bad signature, malformed values, or expired).
 */
int storage_media_verify(const char *token, size_t token_len, const char *path, const char *expires,
                         const char *sig, int64_t now);
/* The media access token (MEDIA_ACCESS_TOKEN) or NULL when media is public. Pure. */
const char *storage_media_token(const storage_t *s);

#endif
