/*
 * media jobs: the generic pool job type `media.transcode` (cap group "media", so at most
 * TRANSCODE_MAX_CONCURRENCY run at once across every media job type).
 *
 * Payload (JSON object):
 *   {"input": "in/x.webm", "output": "clips/x.mp4", "thumbnail": "clips/x.jpg",
 *    "width": 1080, "height": 1920, "fps": 30}
 * input and output are required, thumbnail optional (absent or null); the paths are relative
 * to MEDIA_DIR (or absolute) and must resolve inside MEDIA_DIR after symlinks and `..` are
 * resolved (a permanent failure otherwise); the output's directory must exist. width and height
 * (even, before RENDER_SCALE, which the job applies) and fps are required. TRANSCODE_PRESET and
 * TRANSCODE_CRF come from the settings; the codec threads of one job are the cores divided by
 * TRANSCODE_MAX_CONCURRENCY (at least 1), the x264 options TRANSCODE_X264_PARAMS. Like every
 * job of the "media" cap group it runs at TRANSCODE_PRIORITY (queue/dispatcher.h), so the loop
 * and database threads keep their CPU.
 * Outcome: succeeded (result_url: the output path relative to MEDIA_DIR); a bad payload or an
 * unusable input is a permanent failure with the library's reason; an output write failure is
 * retried. Progress (job `progress`) follows the transcode.
 */
#ifndef MYLOWARE_MEDIA_JOBS_H
#define MYLOWARE_MEDIA_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/dispatcher.h"

/* Registers media.transcode; cfg (MEDIA_DIR, RENDER_SCALE, TRANSCODE_*) must outlive the
 * dispatcher. Also starts, on a detached thread, the removal of temp files older than an hour
 * left in MEDIA_DIR by killed processes (media_sweep_temp). Loop thread, before
 * dispatcher_start. */
void media_jobs_register(dispatcher_t *d, const config_t *cfg);
/* The codec threads of one media job: the cores divided by TRANSCODE_MAX_CONCURRENCY, at least
 * 1 (set by media_jobs_register; 1 before). Any thread after registration. */
int media_jobs_threads(void);

/*
 * Resolves path (relative to root, or absolute) to a canonical absolute path inside root (after
 * symlinks and `..`): must_exist, an existing file or directory strictly below root; otherwise
 * a plain visible name (not starting with '.', not a directory) in an existing directory at or
 * below root. Returns 0 (out filled), ERR_NOTFOUND (missing) or ERR_INVAL (outside root,
 * control characters, longer than 1024 bytes, too long for out). Any thread.
 */
int media_resolve_path(const char *root, const char *path, bool must_exist, char *out, size_t n);

#endif
