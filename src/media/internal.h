/*
 * media internals shared by the files of src/media/ (not for other modules): opening inputs
 * safely, error sentences, and the output writer (encoders + muxer + temp file + rename).
 * Worker threads; every object belongs to one call.
 */
#ifndef MYLOWARE_MEDIA_INTERNAL_H
#define MYLOWARE_MEDIA_INTERNAL_H

#include "media/ff.h"
#include <stdbool.h>

#include "core/buf.h"
#include "media/media.h"

/* The canonical audio handed to the writer: planar float, stereo, 48 kHz. */
#define MEDIA_RATE 48000
#define MEDIA_CHANNELS 2

/* Loads the FFmpeg libraries (ff_load) and silences their log, once per process; every public
 * media function calls it first. Returns 0 or ERR_INTERNAL (the reason appended to err). Any
 * thread but the loop thread (the first call maps the libraries). */
int media_lib_init(buf_t *err);

/* Appends "<what>: <av_strerror(averr)>" to err (err may be NULL). Returns code. */
int media_fail_av(buf_t *err, int code, int averr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the sentence to err (may be NULL). Returns code. */
int media_fail(buf_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Opens a local file for demuxing: protocol "file" only, the demuxer must be on the whitelist
 * of plain containers (no playlists, concat scripts, image patterns, text "video"), streams
 * probed. *out is the context to give to media_input_close. Returns 0, ERR_NOTFOUND,
 * ERR_MEDIATYPE or ERR_IO.
 */
int media_input_open(const char *path, AVFormatContext **out, buf_t *err);
void media_input_close(AVFormatContext **ic);
/* The largest picture decoded (8K UHD): bigger frames are refused by the decoders. */
#define MEDIA_MAX_INPUT_PIXELS (7680 * 4320)

/* Opens a decoder for stream idx (threads: 0 automatic). Returns 0 or ERR_MEDIATYPE. */
int media_decoder_open(AVFormatContext *ic, int idx, int threads, AVCodecContext **out, buf_t *err);
/* The declared length of stream idx (or of the container) in seconds; 0 when unknown. */
double media_stream_seconds(const AVFormatContext *ic, int idx);

/* A temp name next to path: "<dir>/.<base>.tmp-<16 hex>". Returns 0 or ERR_INVAL (too long). */
int media_temp_name(const char *path, char *out, size_t n);
/* fsync(tmp), then rename(tmp, path). Returns 0 or ERR_IO (tmp is left for the caller). */
int media_commit_file(const char *tmp, const char *path, buf_t *err);

/* ---- the output writer ---- */

struct mout_opts {
    const char *path;   /* final name; written as a temp file, renamed by mout_finish */
    const char *format; /* muxer name ("mp4"); NULL: guessed from path */
    int width, height;
    AVRational time_base;    /* of the video frames' pts */
    AVRational frame_rate;   /* nominal */
    const char *video_codec; /* NULL: libx264 */
    const char *preset;      /* libx264 only; NULL: veryfast */
    int crf;                 /* libx264 only */
    int threads;             /* encoder threads, 0: automatic */
    const char *x264_params; /* libx264 only: x264 options "key=value:..." (config_x264_params_ok);
                                NULL or "": x264's defaults for the preset */
    bool audio;              /* an audio track (AAC; Opus in WebM) */
};

struct mout;

/* Creates the temp file, the encoders and writes the header. */
int mout_open(struct mout **out, const struct mout_opts *o, buf_t *err);
/* The pixel format video frames must have. */
enum AVPixelFormat mout_pix_fmt(const struct mout *m);
/* Encodes one video frame (its pts in time_base; the frame is not taken). */
int mout_video(struct mout *m, AVFrame *frame, buf_t *err);
/* Queues canonical audio (planar float stereo 48 kHz, n samples); encodes whole frames when
 * allowed (see mout_audio_allow). ch may be NULL: silence. Samples more than 30 s ahead of the
 * allowed point are dropped (audio that outlasts the video). */
int mout_audio(struct mout *m, const float *const *ch, int n, buf_t *err);
/* Samples queued so far (encoded or not) */
int64_t mout_audio_queued(const struct mout *m);
/* Drops queued samples beyond total (only those not encoded yet can go). */
void mout_audio_truncate(struct mout *m, int64_t total);
/* Audio up to sample `upto` may be encoded (the video has reached that time); encodes it. */
int mout_audio_allow(struct mout *m, int64_t upto, buf_t *err);
/* Flushes the encoders, writes the trailer (the +faststart rewrite), writes the thumbnail
 * (optional) from the finished temp file, syncs and renames. On failure nothing is left. */
int mout_finish(struct mout *m, const char *thumbnail, buf_t *err);
/* Frees; removes the temp file unless mout_finish succeeded. NULL is fine. */
void mout_free(struct mout *m);

#endif
