/*
 * file: answers a request with a file from disk (api.md §7) without blocking the loop and
 * without reading the file into memory: realpath, open, fstat and 64 KiB reads run on libuv's
 * pool (uv_fs_*), and the chunks go out through the server's streaming answers
 * (http_stream_*), which hold the next read back while the client is slow (write backpressure).
 *
 * HTTP semantics: GET and HEAD; ETag (strong, "<size hex>-<mtime ns hex>"), Last-Modified,
 * Accept-Ranges: bytes, Cache-Control; If-None-Match (or, without it, If-Modified-Since) gives
 * 304; one Range (bytes=a-b, bytes=a-, bytes=-n) gives 206 with Content-Range, an unsatisfiable
 * one 416 with Content-Range: bytes * /<size>; a Range the server cannot use (other units,
 * several ranges, garbage) is ignored (200, RFC 9110 §14.2), as is one under an If-Range that
 * does not match.
 *
 * Non-goals: multipart/byteranges, compression, directory listings.
 * Loop thread only.
 */
#ifndef MYLOWARE_HTTP_FILE_H
#define MYLOWARE_HTTP_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "http/server.h"

struct http_file_opts {
    const char *root;          /* realpath of the directory the file must resolve inside, or NULL */
    const char *content_type;  /* NULL: from the file name's extension */
    const char *cache_control; /* NULL: "public, max-age=3600" */
    const char *extra_headers; /* NULL or full "Name: value\r\n" lines (copied) */
    const char *not_found_detail; /* 404 detail; NULL: "Not found" */
    const char
        *invalid_detail; /* 400 detail when the path resolves outside root; NULL: "Invalid path" */
};

/*
 * Answers req with the file at path (absolute or relative to the working directory). Always
 * answers (404 when absent or not a regular file, 400 when it resolves outside root, 500 on a
 * read error before the first byte; a read error later ends the connection), so req belongs to
 * this function from the call on. The strings of opts are copied. Loop thread.
 */
void http_file_send(http_req_t *req, const char *path, const struct http_file_opts *opts);

/* Content-Type for a file name by its extension (mp4, mov, webm, mkv, jpg, jpeg, png, gif,
 * webp, json, txt, html, css, js, svg, mp3, m4a, wav, srt, vtt); "application/octet-stream"
 * otherwise. Case-insensitive. Pure, any thread. */
const char *http_file_content_type(const char *name);

/*
 * Parses one Range header value against a representation of size bytes. Returns 1 and sets
 * [*first, *last] (inclusive) for a satisfiable single range, 0 when the header is to be
 * ignored (not "bytes=", several ranges, syntax the server does not use), ERR_RANGE when it is
 * unsatisfiable (416). Pure, any thread.
 */
int http_file_parse_range(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *last);

/* Strong ETag of a file ("\"<size hex>-<mtime ns hex>\"") into out (cap >= 40). Pure. */
void http_file_etag(uint64_t size, int64_t mtime_sec, long mtime_nsec, char *out, size_t cap);

#endif
