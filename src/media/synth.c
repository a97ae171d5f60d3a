/*
 * synth: media_synth_clip, the fake video provider's clips and the tests' input generator. The
 * picture is libavfilter's testsrc2 (colour bars, a moving gradient and a frame counter, so every
 * frame differs) with the clip number drawn big in the middle by built-in digits (no font
 * needed); the sound a sine tone whose pitch follows the clip number. Worker thread; blocking.
 */
#include "media/ff.h"
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "media/internal.h"

/* 5x7 digits, one byte per row, bit 4 the leftmost pixel */
static const unsigned char digits[10][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
};

static void fill_rect(AVFrame *f, const AVPixFmtDescriptor *d, int x0, int y0, int w, int h, int y,
                      int uv) {
    for (int p = 0; p < 3; p++) {
        int sx = p ? d->log2_chroma_w : 0, sy = p ? d->log2_chroma_h : 0;
        int v = p ? uv : y;
        int xa = x0 >> sx, xb = (x0 + w + (1 << sx) - 1) >> sx;
        int ya = y0 >> sy, yb = (y0 + h + (1 << sy) - 1) >> sy;
        int pw = AV_CEIL_RSHIFT(f->width, sx), ph = AV_CEIL_RSHIFT(f->height, sy);
        xb = xb > pw ? pw : xb;
        yb = yb > ph ? ph : yb;
        for (int r = ya; r < yb; r++)
            if (xb > xa)
                memset(f->data[p] + (ptrdiff_t)r * f->linesize[p] + xa, v, (size_t)(xb - xa));
    }
}

/* Draws n in white on a black box in the middle (8-bit planar YUV only; others are left as is). */
static void draw_number(AVFrame *f, int n) {
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get((enum AVPixelFormat)f->format);
    if (!d || (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) ||
        !(d->flags & AV_PIX_FMT_FLAG_PLANAR) || d->nb_components < 3 || d->comp[0].depth != 8)
        return;
    char s[16];
    int len = snprintf(s, sizeof s, "%d", n);
    int cell = 6, s1 = f->width * 7 / 10 / (len * cell), s2 = f->height * 3 / 10 / 7;
    int sc = s1 < s2 ? s1 : s2;
    if (sc < 1)
        sc = 1;
    int tw = (len * cell - 1) * sc, th = 7 * sc, pad = sc * 2;
    int x0 = (f->width - tw) / 2, y0 = (f->height - th) / 2;
    fill_rect(f, d, x0 - pad, y0 - pad, tw + 2 * pad, th + 2 * pad, 16, 128);
    for (int i = 0; i < len; i++)
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (digits[s[i] - '0'][row] >> (4 - col) & 1)
                    fill_rect(f, d, x0 + (i * cell + col) * sc, y0 + row * sc, sc, sc, 235, 128);
}

int media_synth_clip(const struct media_synth_opts *o, buf_t *err) {
    int lrc = media_lib_init(err);
    if (lrc)
        return lrc;
    if (!o || !o->output || !*o->output)
        return media_fail(err, ERR_INVAL, "an output path is required");
    if (o->width < MEDIA_MIN_DIM || o->width > MEDIA_MAX_DIM || o->height < MEDIA_MIN_DIM ||
        o->height > MEDIA_MAX_DIM)
        return media_fail(err, ERR_INVAL, "clip size %dx%d: %d to %d", o->width, o->height,
                          MEDIA_MIN_DIM, MEDIA_MAX_DIM);
    if (o->fps < 1 || o->fps > MEDIA_MAX_FPS)
        return media_fail(err, ERR_INVAL, "frame rate %d: 1 to %d", o->fps, MEDIA_MAX_FPS);
    if (!(o->seconds > 0) || o->seconds > MEDIA_MAX_SECONDS)
        return media_fail(err, ERR_INVAL, "clip length %g s: more than 0, at most %g", o->seconds,
                          MEDIA_MAX_SECONDS);
    if (o->clip_number < 0 || o->clip_number > 9999)
        return media_fail(err, ERR_INVAL, "clip number %d: 0 to 9999", o->clip_number);

    int64_t nframes = llrint(o->seconds * o->fps);
    if (nframes < 1)
        nframes = 1;
    /* variable rate: frame durations alternate 1 and 3 ticks of 1/(2 fps) */
    AVRational tb = o->variable_fps ? (AVRational){1, 2 * o->fps} : (AVRational){1, o->fps};
    struct mout_opts mo = {.path = o->output,
                           .width = o->width,
                           .height = o->height,
                           .time_base = tb,
                           .frame_rate = {o->fps, 1},
                           .video_codec = o->video_codec,
                           .preset = "veryfast",
                           .crf = 23,
                           .threads = 1,
                           .audio = !o->no_audio};
    struct mout *m = NULL;
    AVFilterGraph *g = NULL;
    AVFilterContext *src = NULL, *fmt = NULL, *sink = NULL;
    AVFrame *f = av_frame_alloc();
    float *tone[MEDIA_CHANNELS] = {NULL, NULL};
    int rc = mout_open(&m, &mo, err), ret = 0;
    if (!f)
        abort();
    if (rc)
        goto out;

    g = avfilter_graph_alloc();
    if (!g)
        abort();
    char args[256];
    snprintf(args, sizeof args, "size=%dx%d:rate=%d", o->width, o->height, o->fps);
    ret =
        avfilter_graph_create_filter(&src, avfilter_get_by_name("testsrc2"), "src", args, NULL, g);
    snprintf(args, sizeof args, "pix_fmts=%s", av_get_pix_fmt_name(mout_pix_fmt(m)));
    if (ret >= 0)
        ret = avfilter_graph_create_filter(&fmt, avfilter_get_by_name("format"), "format", args,
                                           NULL, g);
    if (ret >= 0)
        ret = avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "sink", NULL,
                                           NULL, g);
    if (ret >= 0)
        ret = avfilter_link(src, 0, fmt, 0);
    if (ret >= 0)
        ret = avfilter_link(fmt, 0, sink, 0);
    if (ret >= 0)
        ret = avfilter_graph_config(g, NULL);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the test pattern");
        goto out;
    }

    if (o->audio_seconds < 0 || o->audio_seconds > MEDIA_MAX_SECONDS) {
        rc = media_fail(err, ERR_INVAL, "audio length %g s: 0 to %g", o->audio_seconds,
                        MEDIA_MAX_SECONDS);
        goto out;
    }
    int64_t audio_total = o->audio_seconds > 0 ? llrint(o->audio_seconds * MEDIA_RATE)
                                               : av_rescale(nframes, MEDIA_RATE, o->fps);
    double hz = 440.0 + 40.0 * (o->clip_number % 12);
    int64_t samples_done = 0;
    int per_frame = MEDIA_RATE / o->fps + 2;
    for (int c = 0; c < MEDIA_CHANNELS; c++)
        tone[c] = av_malloc_array((size_t)per_frame, sizeof(float));
    if (!tone[0] || !tone[1])
        abort();
    for (int64_t i = 0; i < nframes; i++) {
        if ((ret = av_buffersink_get_frame(sink, f)) < 0) {
            rc = media_fail_av(err, ERR_INTERNAL, ret, "cannot draw the test pattern");
            goto out;
        }
        if (av_frame_make_writable(f) < 0)
            abort();
        draw_number(f, o->clip_number);
        f->pts = o->variable_fps ? 4 * (i / 2) + (i % 2) : i;
        f->pict_type = AV_PICTURE_TYPE_NONE;
        rc = mout_video(m, f, err);
        av_frame_unref(f);
        if (rc)
            goto out;
        if (!o->no_audio) {
            int64_t upto = av_rescale(i + 1, MEDIA_RATE, o->fps);
            if (i == nframes - 1 || upto > audio_total)
                upto = audio_total; /* the rest at the end, or a tone that stops early */
            int n = (int)(upto - samples_done);
            while (n > 0) {
                int k = n < per_frame ? n : per_frame;
                for (int j = 0; j < k; j++) {
                    float v =
                        (float)(0.3 * sin(2 * M_PI * hz * (double)(samples_done + j) / MEDIA_RATE));
                    tone[0][j] = tone[1][j] = v;
                }
                if ((rc = mout_audio(m, (const float *const *)tone, k, err)) != 0 ||
                    (rc = mout_audio_allow(m, samples_done + k, err)) != 0)
                    goto out;
                samples_done += k;
                n -= k;
            }
        }
    }
    rc = mout_finish(m, NULL, err);
out:
    for (int c = 0; c < MEDIA_CHANNELS; c++)
        av_free(tone[c]);
    av_frame_free(&f);
    avfilter_graph_free(&g);
    mout_free(m);
    return rc;
}
