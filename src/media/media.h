/*
 * media: video work with the FFmpeg libraries, in-process (libavformat, libavcodec, libavfilter,
 * libswscale, libswresample): clip synthesis for the fake video provider, transcode, thumbnail,
 * local render (scale/pad, concatenate, burned overlays) and probe.
 *
 * Every function here is BLOCKING (seconds of CPU) and meant for a worker thread (a pool job),
 * never the loop thread. They are reentrant: each call owns all of its FFmpeg state, so several
 * may run at once on different threads. Limiting how many run at once is the dispatcher's job
 * (job types with `cap_group = "media"`, capped at TRANSCODE_MAX_CONCURRENCY), not this module's.
 *
 * Conventions of every function:
 *   - Returns 0 or a negative ERR_* code; on failure `err` (may be NULL) gets one lower-case
 *     sentence with the library's reason (av_strerror), e.g.
 *     "cannot open 'x.mp4': Invalid data found when processing input". Nothing is appended to
 *     err on success. Paths are never interpreted beyond the local file system: no URLs, no
 *     playlists, no external references (a demuxer whitelist of plain containers, protocol
 *     "file" only).
 *       ERR_INVAL      bad options (sizes, rates, lengths out of bounds, NULL paths)
 *       ERR_NOTFOUND   the input file does not exist
 *       ERR_MEDIATYPE  the input is not usable video: garbage, corrupt, truncated, not a
 *                      whitelisted container, no video stream, nothing decodable
 *       ERR_IO         the output cannot be written (directory missing, disk full, rename)
 *       ERR_UNAVAIL    the progress callback asked to stop
 *       ERR_INTERNAL   a library failure that is not the input's fault (missing encoder)
 *   - Outputs are written to a hidden temp name in the output's directory
 *     (".<name>.tmp-<random>"), flushed to disk, then renamed over the output: readers never see
 *     a partial file, and on failure the temp file is removed and an existing output is left
 *     untouched.
 *   - Output video: H.264 (libx264, the preset and CRF given, yuv420p, constant frame rate,
 *     square pixels), audio AAC-LC 128 kb/s 48 kHz stereo (a silent track when the input has
 *     none), MP4 with +faststart (moov before mdat). Width and height must be even.
 *   - No FFmpeg log output: the library's log is silenced process-wide on first use (the
 *     reasons come back through err instead).
 *   - Nothing leaks on any path (checked under ASan with detect_leaks=1).
 *
 * RENDER_SCALE is applied by the CALLER: pass the scaled size (media_scaled_size()) in the
 * options; these functions never read the settings.
 */
#ifndef MYLOWARE_MEDIA_MEDIA_H
#define MYLOWARE_MEDIA_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Bounds checked by every function (ERR_INVAL outside). */
#define MEDIA_MIN_DIM 16
#define MEDIA_MAX_DIM 4096
#define MEDIA_MAX_FPS 120
#define MEDIA_MAX_SECONDS 600.0 /* synthesized clips */
#define MEDIA_MAX_RENDER_CLIPS 256
#define MEDIA_MAX_OVERLAY 512 /* bytes of one overlay text */

/*
 * Progress: called from the calling (worker) thread with done in 0..1, non-decreasing, at most
 * about every 1 % of the work and once with 1.0 before success. Return 0 to go on, non-zero to
 * stop: the call then fails with ERR_UNAVAIL ("cancelled") and removes its partial output.
 * May be NULL.
 */
typedef int (*media_progress_fn)(double done, void *ud);

/*
 * The x264 options of transcodes and renders unless the caller gives its own
 * (TRANSCODE_X264_PARAMS defaults to the same string), on top of the preset (veryfast) and CRF.
 * They bound the encoder's memory, which is most of a transcode's: at 1080x1920 every frame x264
 * holds for its lookahead costs ~6.5 MB (the picture plus its half-size copies) and every
 * reconstructed frame ~11.5 MB (with its half-pel planes), plus ~12 MB of fixed buffers.
 * veryfast's own settings (rc-lookahead 10, 3 B-frames with pyramid, 1.5 frame threads per
 * core) hold ~20 frames and peak near 305 MiB per transcode (the ffmpeg CLI: 311 MiB):
 *   - rc-lookahead=1:bframes=1 keeps 1 B-frame (no pyramid) and a one-frame lookahead: ~135 MiB
 *     per transcode with one thread (the libraries' own mapped code is ~50 MiB of it). The cost
 *     is compression: about 0.6 dB PSNR at the same bitrate against veryfast's defaults (~10 %
 *     more bits for the same quality); rc-lookahead=0:bframes=0 would save 20 MiB more for twice
 *     that loss.
 *   - sliced-threads=1: threads (when more than one is given) share one frame, in slices,
 *     instead of each holding frames of its own (frame threads cost ~37 MiB each at this size),
 *     so memory no longer grows with the core count. Slices cost ~1 % of compression.
 */
#define MEDIA_X264_PARAMS "sliced-threads=1:rc-lookahead=1:bframes=1"

/* ---- clip synthesis (the fake video provider; also the tests' input generator) -------------- */

struct media_synth_opts {
    const char *output; /* the container is chosen from the extension: .mp4 .mov .mkv .webm .avi */
    int width, height;  /* MEDIA_MIN_DIM..MEDIA_MAX_DIM; odd sizes allowed when the codec allows */
    int fps;            /* 1..MEDIA_MAX_FPS */
    double seconds;     /* > 0, <= MEDIA_MAX_SECONDS */
    int clip_number;    /* drawn big in the middle of every frame (0..9999, built-in digits: no
                           font needed); it also sets the tone's pitch (440 Hz + 40 Hz * (n % 12)) */
    /* For tests; zero values give the fake provider's clip: H.264 + AAC. */
    const char *video_codec; /* encoder name: NULL "libx264"; e.g. "mpeg4", "libvpx-vp9", "ffv1" */
    bool no_audio;           /* no audio track at all */
    bool variable_fps;       /* irregular frame spacing (durations alternate 0.5x / 1.5x of 1/fps,
                                same total length) */
    double audio_seconds;    /* the tone's length when it differs from the video's (0: the same) */
};

/*
 * Writes a moving test pattern (testsrc2, shifting every frame) with the clip number drawn on
 * it, plus a sine tone, opts->seconds long (round(seconds * fps) frames). The default codecs are
 * those of the transcode output (H.264 yuv420p + AAC; MP4 with +faststart); with another
 * video_codec the encoder's first supported pixel format is used and the audio is Opus in WebM,
 * AAC elsewhere. Worker thread; blocking.
 */
int media_synth_clip(const struct media_synth_opts *opts, buf_t *err);

/* ---- transcode ---------------------------------------------------------------------------------
 */

struct media_transcode_opts {
    const char *input;     /* any file in a whitelisted container with a decodable video stream */
    const char *output;    /* .mp4 (always MP4, whatever the extension) */
    const char *thumbnail; /* optional (NULL): also write this JPEG (media_thumbnail of output) */
    int width, height;     /* even, MEDIA_MIN_DIM..MEDIA_MAX_DIM; already RENDER_SCALE'd */
    int fps;               /* 1..MEDIA_MAX_FPS: output frame rate (frames dropped/duplicated) */
    const char *preset;    /* x264 preset; NULL: "veryfast" (TRANSCODE_PRESET) */
    int crf;               /* 0..51 (TRANSCODE_CRF, 23) */
    int threads; /* codec threads (decoder and libx264); 0: automatic, as the ffmpeg CLI */
    const char *x264_params; /* x264 options "key=value:..." (config_x264_params_ok); NULL:
                                MEDIA_X264_PARAMS; "": x264's own defaults for the preset */
};

/*
 * Transcodes the first video stream (and the first audio stream, or silence) of input to the
 * output described at the top: scaled to fit width x height with the aspect ratio kept (square
 * pixels, the input's sample aspect ratio honoured), centred and padded with black, resampled to
 * fps. The output lasts as long as the input's video (within one output frame); the audio is
 * trimmed or padded with silence to that length.
 * A truncated input (what it decodes ends before the length its container declares, by more
 * than a frame or two and 2 %) or one with incomplete packets, or with more than a tenth of its
 * video packets undecodable, fails with ERR_MEDIATYPE rather than giving a short output; lesser
 * damage is concealed by the decoders. Frames without timestamps (raw elementary streams) are
 * timed by the stream's frame rate. Progress is the input's video time done over its
 * duration. Worker thread; blocking.
 */
int media_transcode(const struct media_transcode_opts *opts, media_progress_fn progress, void *ud,
                    buf_t *err);

/* ---- thumbnail ---------------------------------------------------------------------------------
 */

/*
 * Writes a JPEG (full-range yuvj420p, the video's display size) of the first frame at or after
 * 1 s into the video, or at half its duration when that is shorter than 2 s (so: min(1 s,
 * duration / 2)); the last frame when seeking finds nothing later. Worker thread; blocking.
 */
int media_thumbnail(const char *input, const char *output_jpg, buf_t *err);

/* ---- render ------------------------------------------------------------------------------------
 */

struct media_render_clip {
    const char *path;    /* an input as for media_transcode */
    const char *overlay; /* optional (NULL or ""): text burned over this clip for its whole
                            length (UTF-8, at most MEDIA_MAX_OVERLAY bytes; drawn literally, no
                            %-expansion), centred in the lower third, white on a dark box */
};

struct media_render_opts {
    const struct media_render_clip *clips; /* in output order */
    size_t nclips;                         /* 1..MEDIA_MAX_RENDER_CLIPS */
    const char *output;                    /* .mp4 */
    const char *thumbnail;                 /* optional: JPEG of the output (media_thumbnail) */
    int width, height, fps;                /* as for media_transcode; already RENDER_SCALE'd */
    const char *preset;                    /* NULL: "veryfast" */
    int crf;
    int threads;
    const char *x264_params; /* as for media_transcode */
    const char *font;        /* RENDER_FONT: a TrueType file. NULL, or a path that is not a readable
                                file: the render still succeeds, without overlays */
    bool *overlays_drawn;    /* optional out: set to whether the overlays were burned */
};

/*
 * Concatenates the clips in order into one output (format at the top): each clip scaled and
 * padded to width x height and resampled to fps as in media_transcode, with its overlay text,
 * its audio (or silence for its length) kept. The duration is the sum of the clips' durations
 * (each rounded to whole output frames). Any clip failing fails the whole render (its index and
 * reason in err). Progress covers all clips. Worker thread; blocking.
 */
int media_render(const struct media_render_opts *opts, media_progress_fn progress, void *ud,
                 buf_t *err);

/* ---- probe -------------------------------------------------------------------------------------
 */

struct media_info {
    char format[64];       /* demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
    char video_codec[32];  /* e.g. "h264"; "" when there is no video stream */
    char audio_codec[32];  /* e.g. "aac"; "" when has_audio is false */
    char pix_fmt[32];      /* e.g. "yuv420p" */
    int width, height;     /* of the first video stream */
    double fps;            /* its average frame rate (0 when unknown) */
    double duration;       /* of the container, seconds (0 when unknown) */
    double video_duration; /* end of the last video packet minus the start, seconds */
    int64_t video_frames;  /* video packets read */
    double audio_duration; /* the same for the first audio stream (0 without one) */
    bool has_video, has_audio;
    int sample_rate, channels;
    int64_t bit_rate; /* of the container, bits/s (0 when unknown) */
    bool faststart;   /* MP4/MOV: a top-level moov box comes before the first mdat */
};

/*
 * Opens path, reads its headers and every packet (no decoding beyond the libraries' stream
 * probing) and fills *out (untouched on failure). Fails (ERR_MEDIATYPE) for inputs with no
 * video stream, as media_transcode would: a download validated by media_probe is transcodable
 * unless its packets are corrupt. Worker thread; blocking (reads the whole file).
 */
int media_probe(const char *path, struct media_info *out, buf_t *err);

/* ---- helpers -----------------------------------------------------------------------------------
 */

/*
 * RENDER_SCALE for callers: *ow x *oh = w x h times scale, rounded to even numbers, at least
 * MEDIA_MIN_DIM, at most MEDIA_MAX_DIM (the aspect ratio kept within the rounding). Any thread.
 */
void media_scaled_size(int w, int h, double scale, int *ow, int *oh);

/* Parses "WxH" (e.g. FAKE_CLIP_SIZE "360x640"). Returns 0 or ERR_INVAL. Any thread. */
int media_parse_size(const char *s, int *w, int *h);

/*
 * Removes the temp files that interrupted calls left under dir (a process killed mid-encode):
 * hidden names of the form ".<name>.tmp-<16 hex>" (see the top), at most 8 directories deep,
 * last modified more than older_than_s seconds ago (a running encode writes its temp file all
 * the time, so a fresh one may belong to another process and is kept). Symlinks are not
 * followed. Returns the number removed. Worker thread; blocking (walks the directory).
 */
int media_sweep_temp(const char *dir, int older_than_s);

/* "libavformat 59.27.100, libavcodec 59.37.100, ..." for `myloware version`. Any thread. */
const char *media_versions(void);

#endif
