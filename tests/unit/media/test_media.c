/*
 * media: real encodes of real media, generated here with the libraries (media_synth_clip), then
 * transcoded, rendered, thumbnailed and probed. Sizes are small (64x112 to 320x180, 1-2 s) so
 * the file runs in seconds, also under ASan. Every output is checked by probing it (codecs,
 * size, rate, durations within a frame, moov before mdat) and, where it matters, by decoding
 * pixels (the padding of a 16:9 clip in a 9:16 frame).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "media/jobs.h"
#include "media/media.h"

static char dir[64];
static buf_t err;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    return remove(p);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/myloware-media-XXXXXX");
    cr_assert(mkdtemp(dir));
    buf_init(&err, 4096);
}

static void teardown(void) {
    buf_release(&err);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(media, .init = setup, .fini = teardown, .timeout = 120);

static const char *path(const char *name) {
    static char p[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Files in dir, hidden ones included (temp files are hidden). */
static int count_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void synth(const char *name, int w, int h, int fps, double s, const char *codec,
                  bool no_audio, bool vfr) {
    struct media_synth_opts o = {.output = path(name),
                                 .width = w,
                                 .height = h,
                                 .fps = fps,
                                 .seconds = s,
                                 .clip_number = 7,
                                 .video_codec = codec,
                                 .no_audio = no_audio,
                                 .variable_fps = vfr};
    buf_reset(&err);
    cr_assert_eq(media_synth_clip(&o, &err), 0, "synth %s: %s", name, err.data);
}

static struct media_info probe(const char *p) {
    struct media_info mi;
    buf_reset(&err);
    cr_assert_eq(media_probe(p, &mi, &err), 0, "probe %s: %s", p, err.data);
    return mi;
}

/* The contract of every transcode/render output. */
static void check_output(const char *p, int w, int h, int fps, double seconds) {
    struct media_info mi = probe(p);
    cr_expect_str_eq(mi.video_codec, "h264");
    cr_expect_str_eq(mi.pix_fmt, "yuv420p");
    cr_expect_str_eq(mi.audio_codec, "aac");
    cr_expect(mi.has_audio);
    cr_expect_eq(mi.sample_rate, 48000);
    cr_expect_eq(mi.channels, 2);
    cr_expect_eq(mi.width, w);
    cr_expect_eq(mi.height, h);
    cr_expect(fabs(mi.fps - fps) < 0.01, "fps %f, want %d", mi.fps, fps);
    double frame = 1.0 / fps;
    cr_expect(fabs(mi.video_duration - seconds) <= frame + 1e-6, "video %f s, want %f",
              mi.video_duration, seconds);
    cr_expect(fabs(mi.duration - seconds) <= frame + 1e-6, "duration %f s, want %f", mi.duration,
              seconds);
    cr_expect(fabs(mi.audio_duration - seconds) <= frame + 1e-6, "audio %f s, want %f",
              mi.audio_duration, seconds);
    cr_expect(fabs((double)mi.video_frames - seconds * fps) <= 1.0, "%lld frames",
              (long long)mi.video_frames);
    cr_expect(mi.faststart, "moov must come before mdat in %s", p);
}

struct prog {
    int calls;
    double last;
    bool monotonic;
    int stop_at; /* calls; 0: never */
};

static int on_progress(double done, void *ud) {
    struct prog *p = ud;
    if (done < p->last || done < 0 || done > 1)
        p->monotonic = false;
    p->last = done;
    p->calls++;
    return p->stop_at && p->calls >= p->stop_at;
}

static int transcode(const char *in, const char *out, int w, int h, int fps, struct prog *pr) {
    struct media_transcode_opts o = {.input = path(in),
                                     .output = path(out),
                                     .width = w,
                                     .height = h,
                                     .fps = fps,
                                     .preset = "veryfast",
                                     .crf = 23};
    buf_reset(&err);
    return media_transcode(&o, pr ? on_progress : NULL, pr, &err);
}

/* Decodes the frame nearest t seconds into luma rows; returns the mean luma of row y. */
struct picture {
    int w, h;
    unsigned char *y; /* w*h */
};

static struct picture decode_at(const char *p, double t) {
    AVFormatContext *ic = NULL;
    struct picture pic = {0};
    cr_assert_eq(avformat_open_input(&ic, p, NULL, NULL), 0);
    cr_assert_geq(avformat_find_stream_info(ic, NULL), 0);
    int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    cr_assert_geq(vi, 0);
    const AVCodec *codec = avcodec_find_decoder(ic->streams[vi]->codecpar->codec_id);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(c, ic->streams[vi]->codecpar);
    cr_assert_eq(avcodec_open2(c, codec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    double tb = av_q2d(ic->streams[vi]->time_base);
    bool got = false;
    while (!got && av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == vi && avcodec_send_packet(c, pkt) >= 0)
            while (!got && avcodec_receive_frame(c, f) >= 0) {
                if (f->best_effort_timestamp * tb + 1e-6 >= t) {
                    pic.w = f->width;
                    pic.h = f->height;
                    pic.y = malloc((size_t)pic.w * pic.h);
                    for (int r = 0; r < pic.h; r++)
                        memcpy(pic.y + (size_t)r * pic.w, f->data[0] + (size_t)r * f->linesize[0],
                               (size_t)pic.w);
                    got = true;
                }
                av_frame_unref(f);
            }
        av_packet_unref(pkt);
    }
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    avformat_close_input(&ic);
    cr_assert(got, "no frame at %f s in %s", t, p);
    return pic;
}

/* Range (max - min) of the luma on row y: 0 for a flat (padding) row. */
static int row_range(const struct picture *pic, int y) {
    int lo = 255, hi = 0;
    for (int x = 0; x < pic->w; x++) {
        int v = pic->y[(size_t)y * pic->w + x];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    return hi - lo;
}

static int row_mean(const struct picture *pic, int y) {
    long s = 0;
    for (int x = 0; x < pic->w; x++)
        s += pic->y[(size_t)y * pic->w + x];
    return (int)(s / pic->w);
}

static void write_file(const char *p, const void *data, size_t n) {
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void truncate_copy(const char *from, const char *to, double fraction) {
    FILE *f = fopen(from, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_file(to, b, (size_t)(n * fraction));
    free(b);
}

/* ---- synthesis ---- */

Test(media, synth_clip_is_the_fake_providers_h264_aac_mp4) {
    synth("clip.mp4", 180, 320, 30, 2, NULL, false, false);
    check_output(path("clip.mp4"), 180, 320, 30, 2.0);
    cr_expect_eq(probe(path("clip.mp4")).video_frames, 60);
    /* the pattern moves: two frames differ */
    struct picture a = decode_at(path("clip.mp4"), 0.0), b = decode_at(path("clip.mp4"), 1.0);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)a.w * a.h; i++)
        diff += a.y[i] != b.y[i];
    cr_expect_gt(diff, (size_t)a.w * a.h / 50, "frames 0 and 30 should differ");
    free(a.y);
    free(b.y);
    cr_expect_eq(count_files(), 1, "no temp file left");
}

Test(media, synth_rejects_bad_options) {
    struct media_synth_opts o = {
        .output = path("x.mp4"), .width = 8, .height = 320, .fps = 30, .seconds = 1};
    cr_expect_eq(media_synth_clip(&o, &err), ERR_INVAL);
    o.width = 180;
    o.fps = 0;
    cr_expect_eq(media_synth_clip(&o, &err), ERR_INVAL);
    o.fps = 30;
    o.seconds = 0;
    cr_expect_eq(media_synth_clip(&o, &err), ERR_INVAL);
    o.seconds = 1;
    o.video_codec = "no-such-encoder";
    cr_expect_eq(media_synth_clip(&o, &err), ERR_INTERNAL);
    cr_expect(strstr(err.data, "no-such-encoder"), "%s", err.data);
    cr_expect_eq(count_files(), 0);
}

/* ---- transcode ---- */

Test(media, transcode_h264_with_progress_and_thumbnail) {
    synth("in.mp4", 180, 320, 30, 2, NULL, false, false);
    struct prog pr = {.monotonic = true};
    struct media_transcode_opts o = {.input = path("in.mp4"),
                                     .output = path("out.mp4"),
                                     .thumbnail = path("out.jpg"),
                                     .width = 90,
                                     .height = 160,
                                     .fps = 24,
                                     .crf = 23};
    cr_assert_eq(media_transcode(&o, on_progress, &pr, &err), 0, "%s", err.data);
    check_output(path("out.mp4"), 90, 160, 24, 2.0);
    cr_expect(pr.monotonic);
    cr_expect_geq(pr.calls, 5);
    cr_expect_eq(pr.last, 1.0);
    struct picture t = {0};
    FILE *f = fopen(path("out.jpg"), "rb");
    cr_assert(f, "thumbnail written");
    unsigned char magic[3];
    cr_expect_eq(fread(magic, 1, 3, f), 3u);
    fclose(f);
    cr_expect(magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF, "a JPEG");
    t = decode_at(path("out.jpg"), 0);
    cr_expect_eq(t.w, 90);
    cr_expect_eq(t.h, 160);
    free(t.y);
    cr_expect_eq(count_files(), 3, "in, out, thumbnail; no temp file");
}

Test(media, transcode_mpeg4_part2_input) {
    synth("in.mkv", 176, 144, 25, 1.2, "mpeg4", false, false);
    cr_assert_str_eq(probe(path("in.mkv")).video_codec, "mpeg4");
    cr_assert_eq(transcode("in.mkv", "out.mp4", 64, 112, 25, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 64, 112, 25, 1.2);
}

Test(media, transcode_vp9_webm_input) {
    synth("in.webm", 160, 90, 30, 1, "libvpx-vp9", false, false);
    struct media_info in = probe(path("in.webm"));
    cr_assert_str_eq(in.video_codec, "vp9");
    cr_assert_str_eq(in.audio_codec, "opus");
    cr_assert_eq(transcode("in.webm", "out.mp4", 90, 160, 30, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 90, 160, 30, 1.0);
}

Test(media, transcode_adds_silence_when_input_has_no_audio) {
    synth("in.mp4", 120, 212, 30, 1.5, NULL, true, false);
    cr_assert_not(probe(path("in.mp4")).has_audio);
    cr_assert_eq(transcode("in.mp4", "out.mp4", 120, 212, 30, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 120, 212, 30, 1.5);
}

Test(media, transcode_16x9_into_9x16_keeps_aspect_and_pads) {
    synth("in.mp4", 320, 180, 30, 1, NULL, false, false);
    cr_assert_eq(transcode("in.mp4", "out.mp4", 180, 320, 30, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 180, 320, 30, 1.0);
    /* the picture is 180x~102 in the middle: black flat bars above and below */
    struct picture p = decode_at(path("out.mp4"), 0.5);
    cr_assert_eq(p.w, 180);
    for (int y = 0; y < 100; y += 10) {
        cr_expect_leq(row_range(&p, y), 4, "row %d should be padding", y);
        cr_expect_leq(row_mean(&p, y), 24, "row %d should be black", y);
        cr_expect_leq(row_range(&p, 319 - y), 4, "row %d should be padding", 319 - y);
    }
    cr_expect_gt(row_range(&p, 125), 60, "the picture (colour bars) is in the middle");
    free(p.y);
}

Test(media, transcode_raw_h264_stream_without_timestamps) {
    synth("in.h264", 96, 160, 25, 1.2, NULL, true, false); /* Annex B elementary stream */
    cr_assert_str_eq(probe(path("in.h264")).format, "h264");
    cr_assert_eq(transcode("in.h264", "out.mp4", 96, 160, 25, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 96, 160, 25, 1.2);
}

Test(media, transcode_odd_sized_input) {
    synth("in.mkv", 161, 287, 30, 1, "ffv1", true, false);
    struct media_info in = probe(path("in.mkv"));
    cr_assert_eq(in.width, 161);
    cr_assert_eq(in.height, 287);
    cr_assert_eq(transcode("in.mkv", "out.mp4", 180, 320, 30, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 180, 320, 30, 1.0);
}

Test(media, transcode_variable_frame_rate_input_to_constant_rate) {
    synth("vfr.mp4", 128, 224, 30, 2, NULL, false, true);
    cr_assert_eq(transcode("vfr.mp4", "out.mp4", 128, 224, 30, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 128, 224, 30, 2.0);
    synth("hi.mp4", 128, 224, 50, 1, NULL, false, false);
    cr_assert_eq(transcode("hi.mp4", "low.mp4", 128, 224, 15, NULL), 0, "%s", err.data);
    check_output(path("low.mp4"), 128, 224, 15, 1.0);
}

static void synth_audio(const char *name, double video_s, double audio_s) {
    struct media_synth_opts o = {.output = path(name),
                                 .width = 96,
                                 .height = 160,
                                 .fps = 30,
                                 .seconds = video_s,
                                 .clip_number = 2,
                                 .audio_seconds = audio_s};
    buf_reset(&err);
    cr_assert_eq(media_synth_clip(&o, &err), 0, "synth %s: %s", name, err.data);
    struct media_info mi = probe(path(name));
    cr_assert(fabs(mi.audio_duration - audio_s) < 0.05, "%s: audio %f s", name, mi.audio_duration);
}

Test(media, audio_longer_or_shorter_than_the_video_is_cut_or_padded) {
    /* Matroska declares no per-stream length: the container's (the audio's) is what the
     * truncation check sees, and a song outlasting the clip must not look like a cut file */
    synth_audio("long.mkv", 1.0, 3.0);
    cr_assert_eq(transcode("long.mkv", "a.mp4", 96, 160, 30, NULL), 0, "%s", err.data);
    check_output(path("a.mp4"), 96, 160, 30, 1.0);
    synth_audio("long.mp4", 1.0, 3.0);
    cr_assert_eq(transcode("long.mp4", "b.mp4", 96, 160, 30, NULL), 0, "%s", err.data);
    check_output(path("b.mp4"), 96, 160, 30, 1.0);
    synth_audio("short.mp4", 1.5, 0.5);
    cr_assert_eq(transcode("short.mp4", "c.mp4", 96, 160, 30, NULL), 0, "%s", err.data);
    check_output(path("c.mp4"), 96, 160, 30, 1.5);
}

Test(media, long_video_with_short_audio_gets_silence_to_the_end) {
    /* 35 s of video (longer than the 30 s the audio queue holds) with 1 s of tone */
    struct media_synth_opts o = {.output = path("in.mp4"),
                                 .width = 64,
                                 .height = 112,
                                 .fps = 5,
                                 .seconds = 35,
                                 .audio_seconds = 1};
    cr_assert_eq(media_synth_clip(&o, &err), 0, "%s", err.data);
    cr_assert_eq(transcode("in.mp4", "out.mp4", 64, 112, 5, NULL), 0, "%s", err.data);
    check_output(path("out.mp4"), 64, 112, 5, 35.0);
}

Test(media, transcode_rejects_odd_or_out_of_range_output) {
    synth("in.mp4", 64, 112, 30, 0.5, NULL, false, false);
    cr_expect_eq(transcode("in.mp4", "out.mp4", 63, 112, 30, NULL), ERR_INVAL);
    cr_expect_eq(transcode("in.mp4", "out.mp4", 64, 112, 0, NULL), ERR_INVAL);
    cr_expect_eq(transcode("in.mp4", "out.mp4", 8192, 112, 30, NULL), ERR_INVAL);
    struct media_transcode_opts o = {.input = path("in.mp4"),
                                     .output = path("out.mp4"),
                                     .width = 64,
                                     .height = 112,
                                     .fps = 30,
                                     .preset = "warp-speed",
                                     .crf = 23};
    cr_expect_eq(media_transcode(&o, NULL, NULL, &err), ERR_INVAL);
    o.preset = NULL;
    o.crf = 52;
    cr_expect_eq(media_transcode(&o, NULL, NULL, &err), ERR_INVAL);
    cr_expect_eq(count_files(), 1);
}

/* The x264 option string libx264 writes into the stream (its SEI user data), or "". */
static void x264_options_of(const char *p, char *out, size_t cap) {
    FILE *f = fopen(p, "rb");
    cr_assert(f);
    static char data[1 << 20];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    out[0] = '\0';
    for (size_t i = 0; i + 11 < n; i++)
        if (memcmp(data + i, "x264 - core", 11) == 0) {
            snprintf(out, cap, "%.*s", (int)strnlen(data + i, n - i), data + i);
            return;
        }
}

Test(media, transcode_bounds_x264_memory_by_default_and_takes_other_options) {
    synth("in.mp4", 64, 112, 30, 0.5, NULL, false, false);
    char opts[4096];
    cr_assert_eq(transcode("in.mp4", "out.mp4", 64, 112, 30, NULL), 0, "%s", err.data);
    x264_options_of(path("out.mp4"), opts, sizeof opts);
    /* MEDIA_X264_PARAMS: a one-frame lookahead, one B-frame, no pyramid */
    cr_assert(strstr(opts, " rc_lookahead=1 "), "%s", opts);
    cr_assert(strstr(opts, " bframes=1 "), "%s", opts);
    cr_assert(strstr(opts, " b_pyramid=0 "), "%s", opts);
    struct media_transcode_opts o = {.input = path("in.mp4"),
                                     .output = path("out2.mp4"),
                                     .width = 64,
                                     .height = 112,
                                     .fps = 30,
                                     .preset = "veryfast",
                                     .crf = 23,
                                     .threads = 1,
                                     .x264_params = "rc-lookahead=0:bframes=0"};
    buf_reset(&err);
    cr_assert_eq(media_transcode(&o, NULL, NULL, &err), 0, "%s", err.data);
    x264_options_of(path("out2.mp4"), opts, sizeof opts);
    cr_assert(strstr(opts, " bframes=0 "), "%s", opts);
    cr_assert(strstr(opts, " threads=1 "), "%s", opts);
    o.x264_params = ""; /* x264's own veryfast settings */
    o.output = path("out3.mp4");
    cr_assert_eq(media_transcode(&o, NULL, NULL, &err), 0, "%s", err.data);
    x264_options_of(path("out3.mp4"), opts, sizeof opts);
    cr_assert(strstr(opts, " rc_lookahead=10 "), "%s", opts);
    cr_assert(strstr(opts, " bframes=3 "), "%s", opts);
    /* an option x264 would silently ignore is refused before anything is written */
    o.x264_params = "rc-lookahead=1:no-such-option=1";
    o.output = path("out4.mp4");
    buf_reset(&err);
    cr_assert_eq(media_transcode(&o, NULL, NULL, &err), ERR_INVAL);
    cr_assert(strstr(err.data, "no-such-option"), "%s", err.data);
    cr_assert_not(exists(path("out4.mp4")));
    cr_assert_eq(count_files(), 4);
}

/* A failed transcode: a clear error from the library, nothing written, an old output kept. */
static void expect_clean_failure(const char *in, int want, const char *needle) {
    write_file(path("out.mp4"), "old", 3);
    int before = count_files();
    int rc = transcode(in, "out.mp4", 64, 112, 30, NULL);
    cr_expect_eq(rc, want, "%s: rc %d (%s)", in, rc, err.data);
    cr_expect(err.data && strlen(err.data) > 10, "a reason");
    if (needle)
        cr_expect(err.data && strstr(err.data, needle), "'%s' in '%s'", needle, err.data);
    cr_expect_eq(count_files(), before, "no temp file left after %s", in);
    struct stat st;
    cr_expect(stat(path("out.mp4"), &st) == 0 && st.st_size == 3, "the old output is untouched");
}

Test(media, truncated_inputs_fail_cleanly) {
    synth("in.mp4", 96, 160, 30, 2, NULL, false,
          false); /* faststart: moov first, so a cut keeps it */
    truncate_copy(path("in.mp4"), path("half.mp4"), 0.5);
    expect_clean_failure("half.mp4", ERR_MEDIATYPE, "truncated");
    truncate_copy(path("in.mp4"), path("head.mp4"), 0.02);
    expect_clean_failure("head.mp4", ERR_MEDIATYPE, NULL);
    synth("in.webm", 96, 160, 30, 2, "libvpx-vp9", false, false);
    truncate_copy(path("in.webm"), path("half.webm"), 0.5);
    expect_clean_failure("half.webm", ERR_MEDIATYPE, "truncated");
    /* and the thumbnail and probe do not crash on them */
    cr_expect_neq(media_thumbnail(path("head.mp4"), path("t.jpg"), &err), 0);
    cr_expect_not(exists(path("t.jpg")));
}

Test(media, garbage_and_non_video_inputs_fail_cleanly) {
    unsigned char junk[65536];
    srand(42);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rand();
    write_file(path("junk.mp4"), junk, sizeof junk);
    expect_clean_failure("junk.mp4", ERR_MEDIATYPE, "cannot open");
    write_file(path("text.txt"), "just some words, not a video at all\n", 36);
    expect_clean_failure("text.txt", ERR_MEDIATYPE, NULL);
    write_file(path("empty.mp4"), "", 0);
    expect_clean_failure("empty.mp4", ERR_MEDIATYPE, "empty");
    /* a playlist pointing at another file is not followed */
    synth("real.mp4", 64, 112, 30, 0.5, NULL, false, false);
    char m3u[512];
    snprintf(m3u, sizeof m3u, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n%s\n#EXT-X-ENDLIST\n",
             path("real.mp4"));
    write_file(path("list.m3u8"), m3u, strlen(m3u));
    expect_clean_failure("list.m3u8", ERR_MEDIATYPE, "unsupported input format");
    /* a ffmpeg concat script neither */
    snprintf(m3u, sizeof m3u, "ffconcat version 1.0\nfile '%s'\n", path("real.mp4"));
    write_file(path("list.ffconcat"), m3u, strlen(m3u));
    expect_clean_failure("list.ffconcat", ERR_MEDIATYPE, NULL);
    expect_clean_failure("missing.mp4", ERR_NOTFOUND, "No such file");
    expect_clean_failure(".", ERR_MEDIATYPE, "not a regular file");
    /* the header of a real file followed by garbage */
    FILE *f = fopen(path("real.mp4"), "rb");
    char head[4096];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    memcpy(junk, head, n);
    write_file(path("mixed.mp4"), junk, sizeof junk);
    expect_clean_failure("mixed.mp4", ERR_MEDIATYPE, NULL);
    struct media_info mi;
    cr_expect_eq(media_probe(path("junk.mp4"), &mi, &err), ERR_MEDIATYPE);
}

/* Damaged copies (bytes overwritten, a block of noise, cut anywhere): each either transcodes to
 * a valid output (the decoders conceal some damage) or fails with a reason and leaves nothing;
 * never a crash (ASan checks memory). */
Test(media, damaged_inputs_transcode_or_fail_cleanly) {
    synth("base.mp4", 96, 160, 30, 1, NULL, false, false);
    FILE *f = fopen(path("base.mp4"), "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *orig = malloc((size_t)n), *b = malloc((size_t)n);
    cr_assert_eq(fread(orig, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    srand(7);
    int ok = 0, failed = 0;
    for (int i = 0; i < 12; i++) {
        memcpy(b, orig, (size_t)n);
        long len = n;
        if (i % 3 == 0) {
            for (int k = 0; k < 20; k++)
                b[rand() % n] = (unsigned char)rand();
        } else if (i % 3 == 1) {
            long at = rand() % n;
            for (long k = at; k < n && k < at + 1500; k++)
                b[k] = (unsigned char)rand();
        } else {
            len = rand() % n;
        }
        write_file(path("d.mp4"), b, (size_t)len);
        int rc = transcode("d.mp4", "out.mp4", 64, 112, 30, NULL);
        if (rc == 0) {
            ok++;
            struct media_info mi = probe(path("out.mp4"));
            cr_expect(mi.faststart && mi.width == 64 && mi.height == 112, "variant %d", i);
            remove(path("out.mp4"));
        } else {
            failed++;
            cr_expect_eq(rc, ERR_MEDIATYPE, "variant %d: %s", i, err.data);
            cr_expect(err.data && *err.data, "variant %d has a reason", i);
            cr_expect_not(exists(path("out.mp4")));
        }
        cr_expect_eq(count_files(), 2, "variant %d left a temp file", i);
    }
    cr_expect_gt(failed, 0, "cut files must fail");
    free(orig);
    free(b);
}

Test(media, cancelled_transcode_removes_its_output) {
    synth("in.mp4", 96, 160, 30, 2, NULL, false, false);
    struct prog pr = {.monotonic = true, .stop_at = 3};
    cr_expect_eq(transcode("in.mp4", "out.mp4", 96, 160, 30, &pr), ERR_UNAVAIL);
    cr_expect(strstr(err.data, "cancelled"));
    cr_expect_not(exists(path("out.mp4")));
    cr_expect_eq(count_files(), 1);
}

Test(media, output_into_a_missing_directory_is_an_io_error) {
    synth("in.mp4", 64, 112, 30, 0.5, NULL, false, false);
    cr_expect_eq(transcode("in.mp4", "nodir/out.mp4", 64, 112, 30, NULL), ERR_IO, "%s", err.data);
}

/* ---- thumbnail ---- */

Test(media, thumbnail_of_short_and_long_clips) {
    synth("short.mp4", 64, 112, 30, 0.4, NULL, false, false);
    cr_assert_eq(media_thumbnail(path("short.mp4"), path("s.jpg"), &err), 0, "%s", err.data);
    struct picture p = decode_at(path("s.jpg"), 0);
    cr_expect_eq(p.w, 64);
    cr_expect_eq(p.h, 112);
    free(p.y);
    synth("long.mp4", 64, 112, 30, 3, NULL, false, false);
    cr_assert_eq(media_thumbnail(path("long.mp4"), path("l.jpg"), &err), 0, "%s", err.data);
    /* the frame at 1 s: compare with the decoded frame at 1.0 s of the clip */
    struct picture j = decode_at(path("l.jpg"), 0), v = decode_at(path("long.mp4"), 1.0),
                   v0 = decode_at(path("long.mp4"), 0.0);
    long d1 = 0, d0 = 0;
    for (size_t i = 0; i < (size_t)j.w * j.h; i++) {
        d1 += abs(j.y[i] - v.y[i]);
        d0 += abs(j.y[i] - v0.y[i]);
    }
    cr_expect_lt(d1, d0, "the thumbnail is the frame at 1 s, not the first");
    free(j.y);
    free(v.y);
    free(v0.y);
    cr_expect_eq(media_thumbnail(path("nope.mp4"), path("n.jpg"), &err), ERR_NOTFOUND);
    cr_expect_not(exists(path("n.jpg")));
}

/* ---- render ---- */

Test(media, render_concatenates_clips_durations_add_up) {
    synth("a.mp4", 180, 320, 30, 1, NULL, false, false);
    synth("b.mp4", 320, 180, 25, 0.8, NULL, true, false); /* other rate, 16:9, no audio */
    synth("c.webm", 160, 90, 30, 0.6, "libvpx-vp9", false, false);
    struct media_render_clip clips[] = {
        {path("a.mp4"), "first clip: 100% \"quoted\" text that wraps"},
        {path("b.mp4"), NULL},
        {path("c.webm"), "third"}};
    bool drawn = true;
    struct prog pr = {.monotonic = true};
    struct media_render_opts o = {.clips = clips,
                                  .nclips = 3,
                                  .output = path("r.mp4"),
                                  .thumbnail = path("r.jpg"),
                                  .width = 90,
                                  .height = 160,
                                  .fps = 30,
                                  .crf = 23,
                                  .font = "/nonexistent/font.ttf",
                                  .overlays_drawn = &drawn};
    cr_assert_eq(media_render(&o, on_progress, &pr, &err), 0, "%s", err.data);
    cr_expect_not(drawn, "no font: no overlay, and no failure");
    check_output(path("r.mp4"), 90, 160, 30, 1.0 + 0.8 + 0.6);
    cr_expect(pr.monotonic);
    cr_expect_eq(pr.last, 1.0);
    cr_expect(exists(path("r.jpg")));
}

Test(media, render_burns_overlays_when_the_font_exists) {
    const char *font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if (access(font, R_OK) != 0)
        cr_skip_test("no DejaVu font installed");
    synth("a.mp4", 90, 160, 30, 0.5, NULL, false, false);
    struct media_render_clip plain[] = {{path("a.mp4"), NULL}},
                             text[] = {{path("a.mp4"), "HELLO WORLD"}};
    bool drawn = false;
    struct media_render_opts o = {.clips = plain,
                                  .nclips = 1,
                                  .output = path("plain.mp4"),
                                  .width = 90,
                                  .height = 160,
                                  .fps = 30,
                                  .crf = 23,
                                  .font = font,
                                  .overlays_drawn = &drawn};
    cr_assert_eq(media_render(&o, NULL, NULL, &err), 0, "%s", err.data);
    cr_expect_not(drawn);
    o.clips = text;
    o.output = path("text.mp4");
    cr_assert_eq(media_render(&o, NULL, NULL, &err), 0, "%s", err.data);
    cr_expect(drawn);
    check_output(path("text.mp4"), 90, 160, 30, 0.5);
    /* the text changes the lower third (y ~ 0.72 h), not the top */
    struct picture a = decode_at(path("plain.mp4"), 0.2), b = decode_at(path("text.mp4"), 0.2);
    long top = 0, low = 0;
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 90; x++) {
            top += abs(a.y[y * 90 + x] - b.y[y * 90 + x]);
            low += abs(a.y[(105 + y) * 90 + x] - b.y[(105 + y) * 90 + x]);
        }
    cr_expect_gt(low, 20 * 90 * 10, "the overlay is visible (diff %ld)", low);
    cr_expect_gt(low, top * 4, "and sits in the lower third (top diff %ld)", top);
    free(a.y);
    free(b.y);
}

Test(media, render_fails_whole_on_a_bad_clip_and_names_it) {
    synth("a.mp4", 64, 112, 30, 0.5, NULL, false, false);
    write_file(path("bad.mp4"), "not a video, really not", 23);
    struct media_render_clip clips[] = {{path("a.mp4"), NULL}, {path("bad.mp4"), NULL}};
    struct media_render_opts o = {.clips = clips,
                                  .nclips = 2,
                                  .output = path("r.mp4"),
                                  .thumbnail = path("r.jpg"),
                                  .width = 64,
                                  .height = 112,
                                  .fps = 30,
                                  .crf = 23};
    cr_expect_eq(media_render(&o, NULL, NULL, &err), ERR_MEDIATYPE);
    cr_expect(strstr(err.data, "clip 1: "), "%s", err.data);
    cr_expect_not(exists(path("r.mp4")));
    cr_expect_not(exists(path("r.jpg")));
    cr_expect_eq(count_files(), 2);
    o.nclips = 0;
    cr_expect_eq(media_render(&o, NULL, NULL, &err), ERR_INVAL);
    char big[MEDIA_MAX_OVERLAY + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    clips[1].path = path("a.mp4");
    clips[1].overlay = big;
    o.nclips = 2;
    cr_expect_eq(media_render(&o, NULL, NULL, &err), ERR_INVAL);
}

/* ---- helpers ---- */

Test(media, scaled_size_keeps_aspect_and_even_sizes) {
    int w, h;
    media_scaled_size(1080, 1920, 1.0, &w, &h);
    cr_expect(w == 1080 && h == 1920);
    media_scaled_size(1080, 1920, 0.1, &w, &h);
    cr_expect(w == 108 && h == 192, "%dx%d", w, h);
    media_scaled_size(1080, 1920, 0.15, &w, &h);
    cr_expect(w % 2 == 0 && h % 2 == 0 && abs(w - 162) <= 1 && abs(h - 288) <= 1, "%dx%d", w, h);
    media_scaled_size(360, 640, 0.01, &w, &h);
    cr_expect(w == MEDIA_MIN_DIM && h >= MEDIA_MIN_DIM, "%dx%d", w, h);
    cr_expect_eq(media_parse_size("360x640", &w, &h), 0);
    cr_expect(w == 360 && h == 640);
    const char *bad[] = {"",         "360", "360x",      "x640",    "360x640x",
                         "-360x640", "1x1", "99999x640", "360X640", " 360x640"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(media_parse_size(bad[i], &w, &h), ERR_INVAL, "'%s'", bad[i]);
    cr_expect(strstr(media_versions(), "libavcodec "));
}

Test(media, job_paths_stay_inside_the_media_directory) {
    char out[4096], root[300];
    snprintf(root, sizeof root, "%s/media", dir);
    cr_assert_eq(mkdir(root, 0755), 0);
    cr_assert_eq(mkdir(path("media/clips"), 0755), 0);
    write_file(path("media/clips/a.mp4"), "x", 1);
    write_file(path("secret.txt"), "x", 1);
    cr_assert_eq(symlink(path("secret.txt"), path("media/link.mp4")), 0);
    cr_assert_eq(symlink(dir, path("media/up")), 0);
    char rroot[4096];
    cr_assert(realpath(root, rroot));
    cr_expect_eq(media_resolve_path(root, "clips/a.mp4", true, out, sizeof out), 0);
    char want[4200];
    snprintf(want, sizeof want, "%s/clips/a.mp4", rroot);
    cr_expect_str_eq(out, want);
    cr_expect_eq(media_resolve_path(root, want, true, out, sizeof out), 0, "absolute inside");
    cr_expect_eq(media_resolve_path(root, "clips/new.mp4", false, out, sizeof out), 0);
    cr_expect_eq(media_resolve_path(root, "new.mp4", false, out, sizeof out), 0);
    cr_expect_eq(media_resolve_path(root, "clips/missing.mp4", true, out, sizeof out),
                 ERR_NOTFOUND);
    const char *inputs[] = {"../secret.txt",
                            "clips/../../secret.txt",
                            "link.mp4",
                            "up/secret.txt",
                            "/etc/passwd",
                            path("secret.txt"),
                            "",
                            "clips/a.mp4\n",
                            ".",
                            "clips"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        int rc = media_resolve_path(root, inputs[i], true, out, sizeof out);
        bool is_dir_ok = strcmp(inputs[i], "clips") == 0; /* a directory below root resolves */
        if (!is_dir_ok)
            cr_expect_neq(rc, 0, "input '%s' must be refused", inputs[i]);
    }
    const char *outputs[] = {"../x.mp4",          "up/x.mp4", "clips/../../x.mp4", "/tmp/x.mp4",
                             "clips/.hidden.mp4", "clips/",   "clips/..",          ".",
                             "nodir/x.mp4",       "clips"};
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++)
        cr_expect_neq(media_resolve_path(root, outputs[i], false, out, sizeof out), 0,
                      "output '%s' must be refused", outputs[i]);
    char longp[1100];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    cr_expect_eq(media_resolve_path(root, longp, false, out, sizeof out), ERR_INVAL);
}

static void age(const char *p, int seconds) {
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= seconds;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

Test(media, sweep_removes_only_stale_temp_files) {
    cr_assert_eq(mkdir(path("m"), 0755), 0);
    cr_assert_eq(mkdir(path("m/sub"), 0755), 0);
    cr_assert_eq(mkdir(path("outside"), 0755), 0);
    const char *stale[] = {"m/.a.mp4.tmp-0123456789abcdef", "m/sub/.t.jpg.tmp-fedcba9876543210"};
    const char *kept[] = {
        "m/.b.mp4.tmp-00112233445566ff",                     /* fresh: maybe a live encode */
        "m/clip.mp4",                                        /* not a temp file */
        "m/.a.mp4.tmp-0123456789abcdeg",                     /* not our pattern */
        "m/.hidden", "outside/.c.mp4.tmp-0123456789abcdef"}; /* only reachable through a symlink */
    for (size_t i = 0; i < 2; i++) {
        write_file(path(stale[i]), "x", 1);
        age(path(stale[i]), 7200);
    }
    for (size_t i = 0; i < 5; i++) {
        write_file(path(kept[i]), "x", 1);
        if (i)
            age(path(kept[i]), 7200);
    }
    cr_assert_eq(symlink(path("outside"), path("m/link")), 0);
    cr_expect_eq(media_sweep_temp(path("m"), 3600), 2);
    for (size_t i = 0; i < 2; i++)
        cr_expect_not(exists(path(stale[i])), "%s removed", stale[i]);
    for (size_t i = 0; i < 5; i++)
        cr_expect(exists(path(kept[i])), "%s kept", kept[i]);
    cr_expect_eq(media_sweep_temp(path("nonexistent"), 3600), 0);
}
