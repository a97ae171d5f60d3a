/*
 * internal: what the fake files share: the fakes object, state files written atomically on the
 * pool (one saver per object keeps the writes in order), OpenAI-style error answers, and the
 * pieces each file exports to fakes.c (start, resume, close). Loop thread unless noted.
 */
#ifndef MYLOWARE_FAKES_INTERNAL_H
#define MYLOWARE_FAKES_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fakes/fakes.h"

#define FAKE_URL_MAX 1024
#define FAKE_PATH_MAX 1024

/* One state file: saves are queued so the last state always wins on disk. */
struct fake_saver {
    struct fakes *f;
    char path[FAKE_PATH_MAX];
    char *writing, *next; /* JSON texts */
    bool busy, oneshot;   /* oneshot: heap-allocated, freed after its write */
    void (*next_cb)(void *ud), (*writing_cb)(void *ud); /* run once that state is on disk */
    void *next_ud, *writing_ud;
    uv_work_t work;
    int rc;
};

struct fake_video;
struct fake_render;

struct fake_upload {
    char request_id[64];
    json_t *results;
    int polls; /* status polls answered so far (FAKE_PUBLISH_PENDING_POLLS) */
    struct fake_upload *next;
};

struct fakes {
    uv_loop_t *loop;
    const config_t *cfg;
    http_client_t *client;
    char self[FAKE_URL_MAX];    /* "<self>/_fake" */
    char webhook[FAKE_URL_MAX]; /* where video events go: "<base>/v1/webhooks/sora" */
    char dir[FAKE_PATH_MAX];    /* MEDIA_DIR/fakes */
    struct fake_video *videos;
    struct fake_render *renders;
    struct fake_upload *uploads;
    int synth_running; /* clips on the pool (at most TRANSCODE_MAX_CONCURRENCY) */
    int busy;          /* pool work, saves, timers and calls that hold the fakes open */
    bool closing, freeing;
    _Atomic bool stopping; /* closing, as pool threads may read it */
    void (*close_cb)(void *);
    void *close_ud;
};

/* Starts writing text (taken) to the saver's file (temp + rename on the pool). */
void fake_save(struct fake_saver *s, char *text);
/* Same with a JSON object (dumped here; the reference stays with the caller). */
void fake_save_json(struct fake_saver *s, const json_t *j);
/* Same, then cb(ud) once this state (or a newer one) is on disk (durable before answering). */
void fake_save_json_then(struct fake_saver *s, const json_t *j, void (*cb)(void *ud), void *ud);
void fake_saver_init(struct fake_saver *s, struct fakes *f, const char *path);
/* Reads a whole small file (start-up only: blocking). NULL when absent or over 1 MiB. */
char *fake_read_file(const char *path);
/* mkdir -p (start-up only). */
int fake_mkdirs(const char *path);

/* A reference held while work is pending; fake_unhold frees the fakes once closing and idle. */
void fake_hold(struct fakes *f);
void fake_unhold(struct fakes *f);

/* A one-shot timer of a fake object (a delivery or a retry): armed, it holds the fakes. */
struct fake_timer {
    struct fakes *f;
    uv_timer_t handle;
    bool on;
    void (*fire)(void *ud), (*closed)(void *ud);
    void *ud;
};
/* fire(ud) runs when the timer goes off (no longer armed by then). */
void fake_timer_init(struct fake_timer *t, struct fakes *f, void (*fire)(void *ud), void *ud);
/* Arms it for ms, unless already armed or the fakes are closing. */
void fake_timer_start(struct fake_timer *t, uint64_t ms);
/* Disarms it (fakes_close). */
void fake_timer_stop(struct fake_timer *t);
/* Closes the handle, then closed(ud) (which may free the object holding the timer); holds the fakes
 * until then. */
void fake_timer_close(struct fake_timer *t, void (*closed)(void *ud));

/* OpenAI-style error answer {"error": {"message", "type", "code"}}. */
void fake_error(http_req_t *req, int status, const char *type, const char *message);
/* "<prefix><hex of sha256(text)>" cut to n hex digits, into out. */
void fake_hash_id(const char *prefix, const char *text, size_t n, char *out, size_t cap);

/* fake_video.c / fake_remotion.c */
/* resume: at start (blocking reads); close: stop timers and calls (fakes_close); free: release
 * the objects once nothing is pending (each may hold the fakes for its handles' close). */
void fake_videos_resume(struct fakes *f);
void fake_videos_close(struct fakes *f);
void fake_videos_free(struct fakes *f);
void fake_renders_resume(struct fakes *f);
void fake_renders_close(struct fakes *f);
void fake_renders_free(struct fakes *f);
void fake_uploads_resume(struct fakes *f);
void fake_uploads_free(struct fakes *f);

#endif
