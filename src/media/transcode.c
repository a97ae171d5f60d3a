/*
 * transcode: media_transcode and media_render, one pipeline. Each input clip is demuxed and
 * decoded, its video goes through a filter graph (fps, scale to fit with the aspect kept, pad,
 * square pixels, yuv420p, optional drawtext) and its audio through libswresample (planar float
 * stereo 48 kHz); both feed one output writer. A transcode is a render of one clip without
 * overlay. Clip boundaries are exact: each clip's audio is trimmed or padded with silence to its
 * video's length (whole output frames), so the clips stay in sync however many are joined.
 * Worker thread; blocking.
 */
#include "media/ff.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"
#include "media/internal.h"

static const char *const presets[] = {"ultrafast", "superfast", "veryfast", "faster",   "fast",
                                      "medium",    "slow",      "slower",   "veryslow", "placebo"};

/* the whole call */
struct run {
    struct mout *m;
    int W, H, fps;
    int threads;
    const char *font; /* NULL: no overlays */
    media_progress_fn progress;
    void *ud;
    double last_progress;
    size_t nclips, clip;
    int64_t frames; /* video frames written */
    AVFrame *filt;
};

/* one input clip */
struct clip {
    const char *path;
    const char *overlay;
    AVFormatContext *ic;
    int vi, ai;
    AVCodecContext *vdec, *adec;
    AVFilterGraph *graph;
    AVFilterContext *src, *sink;
    int gw, gh, gfmt;
    AVRational gsar;
    SwrContext *swr;
    AVChannelLayout swr_layout;
    int swr_rate, swr_fmt;
    float *ab[MEDIA_CHANNELS];
    int abcap;
    AVPacket *pkt;
    AVFrame *frame;
    AVFrame *last;          /* the last decoded video frame (a reference) */
    int64_t frames, limit;  /* video frames written for this clip; at most limit */
    double declared;        /* the video stream's length, else the container's (seconds) */
    bool declared_is_video; /* false: the container's, which audio may outlast the video in */
    double start;           /* the container's start */
    double vstart, vend;    /* covered by decoded video */
    int64_t next_ts;        /* where the next frame starts when it has no timestamp */
    double aend;            /* end of the last audio packet */
    bool have_start, corrupt;
    int64_t vpackets, verrors, vframes;
    int last_err;
};

static int64_t audio_at(const struct run *r, int64_t frames) {
    return av_rescale(frames, MEDIA_RATE, r->fps);
}

static int report(struct run *r, double clip_done) {
    if (!r->progress)
        return 0;
    double p = ((double)r->clip + fmin(1, fmax(0, clip_done))) / (double)r->nclips;
    if (p < 1 && p < r->last_progress + 0.01)
        return 0;
    if (p > 1)
        p = 1;
    r->last_progress = p;
    return r->progress(p, r->ud);
}

/* ---- the video filter graph ---- */

static AVFilterContext *add_filter(AVFilterGraph *g, const char *name, const char *args, int *ret) {
    AVFilterContext *f = NULL;
    if (*ret >= 0)
        *ret = avfilter_graph_create_filter(&f, avfilter_get_by_name(name), name, args, NULL, g);
    return f;
}

/* Cuts text into lines of at most per_line characters (UTF-8 aware), at spaces when possible. */
static void wrap_text(const char *in, int per_line, buf_t *out) {
    int col = 0;
    const char *p = in;
    while (*p) {
        /* the next word */
        const char *w = p;
        while (*w == ' ')
            w++;
        const char *e = w;
        int chars = 0;
        while (*e && *e != ' ' && *e != '\n') {
            if (((unsigned char)*e & 0xC0) != 0x80)
                chars++;
            e++;
        }
        if (*w == '\n') {
            buf_puts(out, "\n");
            col = 0;
            p = w + 1;
            continue;
        }
        if (w == e) {
            p = e;
            continue;
        }
        if (col > 0 && col + 1 + chars > per_line) {
            buf_puts(out, "\n");
            col = 0;
        } else if (col > 0) {
            buf_puts(out, " ");
            col++;
        }
        /* a word longer than a line is cut */
        for (const char *c = w; c < e;) {
            const char *n = c + 1;
            while (n < e && ((unsigned char)*n & 0xC0) == 0x80)
                n++;
            if (col >= per_line) {
                buf_puts(out, "\n");
                col = 0;
            }
            buf_append(out, c, (size_t)(n - c));
            col++;
            c = n;
        }
        p = e;
    }
}

static int add_drawtext(struct run *r, struct clip *c, AVFilterContext **last, buf_t *err) {
    const AVFilter *dt = avfilter_get_by_name("drawtext");
    if (!dt)
        return 0; /* libavfilter without freetype: no overlays, as without a font */
    int size = r->H / 22 > 8 ? r->H / 22 : 8;
    int per_line = (int)(r->W * 0.9 / (size * 0.55));
    buf_t text;
    buf_init(&text, MEDIA_MAX_OVERLAY * 2 + 64);
    wrap_text(c->overlay, per_line > 4 ? per_line : 4, &text);
    AVFilterContext *f = avfilter_graph_alloc_filter(c->graph, dt, "drawtext");
    if (!f)
        abort();
    char num[32];
    int ret = av_opt_set(f, "fontfile", r->font, AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "text", text.data ? text.data : "", AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "expansion", "none", AV_OPT_SEARCH_CHILDREN);
    snprintf(num, sizeof num, "%d", size);
    if (ret >= 0)
        ret = av_opt_set(f, "fontsize", num, AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "fontcolor", "white", AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "box", "1", AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "boxcolor", "black@0.55", AV_OPT_SEARCH_CHILDREN);
    snprintf(num, sizeof num, "%d", size / 3);
    if (ret >= 0)
        ret = av_opt_set(f, "boxborderw", num, AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "x", "(w-text_w)/2", AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = av_opt_set(f, "y", "h*0.72-text_h/2", AV_OPT_SEARCH_CHILDREN);
    if (ret >= 0)
        ret = avfilter_init_str(f, NULL);
    if (ret >= 0)
        ret = avfilter_link(*last, 0, f, 0);
    buf_release(&text);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the overlay");
    *last = f;
    return 0;
}

static int build_graph(struct run *r, struct clip *c, const AVFrame *fr, buf_t *err) {
    AVStream *st = c->ic->streams[c->vi];
    AVRational sar = fr->sample_aspect_ratio;
    if (sar.num <= 0 || sar.den <= 0)
        sar = (AVRational){1, 1};
    /* fit the display size into W x H, even sizes, centred on even offsets */
    double dar = (double)fr->width * av_q2d(sar) / (double)fr->height;
    int sw, sh;
    if ((double)r->W / r->H > dar) {
        sh = r->H;
        sw = (int)lrint(r->H * dar / 2) * 2;
    } else {
        sw = r->W;
        sh = (int)lrint(r->W / dar / 2) * 2;
    }
    sw = sw < 2 ? 2 : sw > r->W ? r->W : sw;
    sh = sh < 2 ? 2 : sh > r->H ? r->H : sh;
    int px = (r->W - sw) / 2 & ~1, py = (r->H - sh) / 2 & ~1;

    c->graph = avfilter_graph_alloc();
    if (!c->graph)
        abort();
    c->graph->nb_threads = r->threads;
    char args[512];
    int ret = 0;
    snprintf(args, sizeof args, "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d",
             fr->width, fr->height, fr->format, st->time_base.num, st->time_base.den, sar.num,
             sar.den);
    c->src = add_filter(c->graph, "buffer", args, &ret);
    snprintf(args, sizeof args, "fps=%d", r->fps);
    AVFilterContext *fps = add_filter(c->graph, "fps", args, &ret);
    snprintf(args, sizeof args, "w=%d:h=%d:flags=bicubic", sw, sh);
    AVFilterContext *scale = add_filter(c->graph, "scale", args, &ret);
    snprintf(args, sizeof args, "width=%d:height=%d:x=%d:y=%d:color=black", r->W, r->H, px, py);
    AVFilterContext *pad = add_filter(c->graph, "pad", args, &ret);
    AVFilterContext *setsar = add_filter(c->graph, "setsar", "sar=1", &ret);
    snprintf(args, sizeof args, "pix_fmts=%s", av_get_pix_fmt_name(mout_pix_fmt(r->m)));
    AVFilterContext *format = add_filter(c->graph, "format", args, &ret);
    c->sink = add_filter(c->graph, "buffersink", NULL, &ret);
    if (ret >= 0)
        ret = avfilter_link(c->src, 0, fps, 0);
    if (ret >= 0)
        ret = avfilter_link(fps, 0, scale, 0);
    if (ret >= 0)
        ret = avfilter_link(scale, 0, pad, 0);
    if (ret >= 0)
        ret = avfilter_link(pad, 0, setsar, 0);
    if (ret >= 0)
        ret = avfilter_link(setsar, 0, format, 0);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the video filters");
    AVFilterContext *last = format;
    if (r->font && c->overlay && *c->overlay) {
        int rc = add_drawtext(r, c, &last, err);
        if (rc)
            return rc;
    }
    if ((ret = avfilter_link(last, 0, c->sink, 0)) < 0 ||
        (ret = avfilter_graph_config(c->graph, NULL)) < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the video filters");
    c->gw = fr->width;
    c->gh = fr->height;
    c->gfmt = fr->format;
    c->gsar = fr->sample_aspect_ratio;
    return 0;
}

/* Takes what the graph has ready to the encoder. */
static int pull_video(struct run *r, struct clip *c, buf_t *err) {
    for (;;) {
        int ret = av_buffersink_get_frame(c->sink, r->filt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return media_fail_av(err, ERR_INTERNAL, ret, "cannot filter video");
        if (c->frames >= c->limit) { /* past the clip's end (the end marker's own frame) */
            av_frame_unref(r->filt);
            continue;
        }
        c->frames++;
        r->filt->pts = r->frames;
        r->filt->pict_type =
            AV_PICTURE_TYPE_NONE; /* the encoder places its key frames, as the CLI */
        int rc = mout_video(r->m, r->filt, err);
        av_frame_unref(r->filt);
        if (rc)
            return rc;
        r->frames++;
        if (c->ai < 0 &&
            (rc = mout_audio(r->m, NULL, (int)(audio_at(r, r->frames) - mout_audio_queued(r->m)),
                             err)))
            return rc;
        if ((rc = mout_audio_allow(r->m, audio_at(r, r->frames), err)) != 0)
            return rc;
    }
}

/* Ends the graph. With end_time (at the clip's end), the last frame is given again at the end
 * time of the video first, so that the fps filter emits frames up to the clip's full length
 * (it would stop at the last frame's start otherwise, a frame short per clip); the frame count
 * is then capped to the length rounded to whole frames. */
static int flush_graph(struct run *r, struct clip *c, bool end_time, buf_t *err) {
    if (!c->graph)
        return 0;
    int ret = 0;
    if (end_time && c->last->buf[0]) {
        AVStream *st = c->ic->streams[c->vi];
        int64_t end = llrint(c->vend / av_q2d(st->time_base));
        c->limit = llrint((c->vend - c->vstart) * r->fps);
        if (c->limit < 1)
            c->limit = 1;
        if (end > c->last->pts) {
            c->last->pts = end;
            ret = av_buffersrc_add_frame_flags(c->src, c->last, 0);
        }
    }
    if (ret >= 0)
        ret = av_buffersrc_add_frame_flags(c->src, NULL, 0);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot filter video");
    int rc = pull_video(r, c, err);
    avfilter_graph_free(&c->graph);
    return rc;
}

static int on_video_frame(struct run *r, struct clip *c, AVFrame *fr, buf_t *err) {
    AVStream *st = c->ic->streams[c->vi];
    int rc;
    c->vframes++;
    /* the frame's length in stream ticks: its packet's, else the nominal rate's, else 1/25 s */
    AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate
                      : st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0   ? st->r_frame_rate
                                                                             : (AVRational){25, 1};
    int64_t dur =
        fr->pkt_duration > 0 ? fr->pkt_duration : av_rescale_q(1, av_inv_q(rate), st->time_base);
    if (dur < 1)
        dur = 1;
    int64_t ts = fr->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) /* raw streams carry no timestamps: count frames */
        ts = c->have_start ? c->next_ts : 0;
    c->next_ts = ts + dur;
    double t = (double)ts * av_q2d(st->time_base), d = (double)dur * av_q2d(st->time_base);
    if (!c->have_start || t < c->vstart) {
        c->vstart = t;
        c->have_start = true;
    }
    if (t + d > c->vend)
        c->vend = t + d;
    fr->pts = ts;
    if (c->graph && (fr->width != c->gw || fr->height != c->gh || fr->format != c->gfmt ||
                     av_cmp_q(fr->sample_aspect_ratio, c->gsar) != 0)) {
        if ((rc = flush_graph(r, c, false, err)) !=
            0) /* the size changed mid-stream: a new graph */
            return rc;
    }
    if (!c->graph && (rc = build_graph(r, c, fr, err)) != 0)
        return rc;
    av_frame_unref(c->last);
    if (av_frame_ref(c->last, fr) < 0)
        abort();
    int ret = av_buffersrc_add_frame_flags(c->src, fr, 0);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot filter video");
    if ((rc = pull_video(r, c, err)) != 0)
        return rc;
    if (c->declared > 0 && c->have_start && report(r, (c->vend - c->vstart) / c->declared))
        return media_fail(err, ERR_UNAVAIL, "cancelled");
    return 0;
}

static int decode_video(struct run *r, struct clip *c, const AVPacket *pkt, buf_t *err) {
    int ret = avcodec_send_packet(c->vdec, pkt);
    if (ret < 0 && ret != AVERROR_EOF) {
        c->verrors++; /* a damaged packet: the decoder resynchronises on the next ones */
        c->last_err = ret;
        if (ret != AVERROR(EAGAIN))
            return 0;
    }
    for (;;) {
        ret = avcodec_receive_frame(c->vdec, c->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0) {
            c->verrors++;
            c->last_err = ret;
            if (!pkt)
                return 0;
            continue;
        }
        int rc = on_video_frame(r, c, c->frame, err);
        av_frame_unref(c->frame);
        if (rc)
            return rc;
    }
}

/* ---- audio ---- */

static int resample(struct run *r, struct clip *c, const AVFrame *in, buf_t *err) {
    int n = in ? in->nb_samples : 0;
    int out_max = swr_get_out_samples(c->swr, n);
    if (out_max <= 0)
        return 0;
    if (out_max > c->abcap) {
        for (int ch = 0; ch < MEDIA_CHANNELS; ch++)
            c->ab[ch] = xrealloc(c->ab[ch], (size_t)out_max * sizeof(float));
        c->abcap = out_max;
    }
    int got = swr_convert(c->swr, (uint8_t **)c->ab, out_max,
                          in ? (const uint8_t **)in->extended_data : NULL, n);
    if (got < 0)
        return media_fail_av(err, ERR_MEDIATYPE, got, "cannot resample the audio of '%s'", c->path);
    return mout_audio(r->m, (const float *const *)c->ab, got, err);
}

static int on_audio_frame(struct run *r, struct clip *c, AVFrame *fr, buf_t *err) {
    AVChannelLayout layout;
    int rc;
    if (fr->nb_samples <= 0 || fr->sample_rate <= 0 || fr->ch_layout.nb_channels <= 0)
        return 0;
    if (fr->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&layout, fr->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&layout, &fr->ch_layout) < 0)
        return media_fail(err, ERR_NOMEM, "cannot copy a channel layout");
    if (c->swr && (av_channel_layout_compare(&layout, &c->swr_layout) != 0 ||
                   fr->sample_rate != c->swr_rate || fr->format != c->swr_fmt)) {
        if ((rc = resample(r, c, NULL, err)) != 0) { /* the format changed: drain, start again */
            av_channel_layout_uninit(&layout);
            return rc;
        }
        swr_free(&c->swr);
        av_channel_layout_uninit(&c->swr_layout);
    }
    if (!c->swr) {
        AVChannelLayout out;
        av_channel_layout_default(&out, MEDIA_CHANNELS);
        int ret = swr_alloc_set_opts2(&c->swr, &out, AV_SAMPLE_FMT_FLTP, MEDIA_RATE, &layout,
                                      fr->format, fr->sample_rate, 0, NULL);
        if (ret >= 0)
            ret = swr_init(c->swr);
        if (ret < 0) {
            swr_free(&c->swr);
            av_channel_layout_uninit(&layout);
            return media_fail_av(err, ERR_MEDIATYPE, ret, "cannot resample the audio of '%s'",
                                 c->path);
        }
        c->swr_layout = layout;
        c->swr_rate = fr->sample_rate;
        c->swr_fmt = fr->format;
    } else {
        av_channel_layout_uninit(&layout);
    }
    return resample(r, c, fr, err);
}

static int decode_audio(struct run *r, struct clip *c, const AVPacket *pkt, buf_t *err) {
    int ret = avcodec_send_packet(c->adec, pkt);
    if (ret < 0 && ret != AVERROR(EAGAIN))
        return 0; /* damaged audio is skipped: the clip-end padding keeps the sync */
    for (;;) {
        ret = avcodec_receive_frame(c->adec, c->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0) {
            if (!pkt)
                return 0;
            continue;
        }
        int rc = on_audio_frame(r, c, c->frame, err);
        av_frame_unref(c->frame);
        if (rc)
            return rc;
    }
}

/* ---- one clip ---- */

static int open_clip(struct run *r, struct clip *c, buf_t *err) {
    int rc = media_input_open(c->path, &c->ic, err);
    if (rc)
        return rc;
    c->vi = c->ai = -1;
    for (unsigned i = 0; i < c->ic->nb_streams; i++) {
        AVStream *st = c->ic->streams[i];
        st->discard = AVDISCARD_ALL;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
            !(st->disposition & AV_DISPOSITION_ATTACHED_PIC) && c->vi < 0)
            c->vi = (int)i;
    }
    if (c->vi < 0)
        return media_fail(err, ERR_MEDIATYPE, "'%s' has no video stream", c->path);
    c->ai = av_find_best_stream(c->ic, AVMEDIA_TYPE_AUDIO, -1, c->vi, NULL, 0);
    if (c->ai < 0)
        c->ai = -1;
    AVCodecParameters *vp = c->ic->streams[c->vi]->codecpar;
    if (vp->width <= 0 || vp->height <= 0 || vp->width > 8192 || vp->height > 8192 ||
        (int64_t)vp->width * vp->height > MEDIA_MAX_INPUT_PIXELS)
        return media_fail(err, ERR_MEDIATYPE, "'%s' has an unusable video size %dx%d", c->path,
                          vp->width, vp->height);
    if ((rc = media_decoder_open(c->ic, c->vi, r->threads, &c->vdec, err)) != 0)
        return rc;
    c->ic->streams[c->vi]->discard = AVDISCARD_DEFAULT;
    if (c->ai >= 0) {
        buf_t ignored;
        buf_init(&ignored, 256);
        if (media_decoder_open(c->ic, c->ai, 1, &c->adec, &ignored) == 0)
            c->ic->streams[c->ai]->discard = AVDISCARD_DEFAULT;
        else
            c->ai = -1; /* an audio codec we cannot decode: silence instead */
        buf_release(&ignored);
    }
    AVStream *vs = c->ic->streams[c->vi];
    c->declared_is_video = vs->duration > 0 && vs->duration != AV_NOPTS_VALUE;
    c->declared = media_stream_seconds(c->ic, c->vi);
    c->start = c->ic->start_time != AV_NOPTS_VALUE ? (double)c->ic->start_time / AV_TIME_BASE : 0;
    c->pkt = av_packet_alloc();
    c->frame = av_frame_alloc();
    c->last = av_frame_alloc();
    if (!c->pkt || !c->frame || !c->last)
        abort();
    c->limit = INT64_MAX;
    return 0;
}

static void close_clip(struct clip *c) {
    avfilter_graph_free(&c->graph);
    swr_free(&c->swr);
    av_channel_layout_uninit(&c->swr_layout);
    for (int ch = 0; ch < MEDIA_CHANNELS; ch++)
        free(c->ab[ch]);
    av_packet_free(&c->pkt);
    av_frame_free(&c->frame);
    av_frame_free(&c->last);
    avcodec_free_context(&c->vdec);
    avcodec_free_context(&c->adec);
    media_input_close(&c->ic);
}

/* The clip's video must cover what its container declares, with whole packets. */
static int check_clip(const struct clip *c, buf_t *err) {
    char why[AV_ERROR_MAX_STRING_SIZE] = "no frame";
    if (c->last_err)
        av_strerror(c->last_err, why, sizeof why);
    if (c->vframes == 0)
        return media_fail(err, ERR_MEDIATYPE, "no decodable video in '%s': %s", c->path, why);
    if (c->corrupt)
        return media_fail(err, ERR_MEDIATYPE, "'%s' is truncated or corrupt (incomplete packets)",
                          c->path);
    if (c->verrors > c->vpackets / 10 + 1)
        return media_fail(err, ERR_MEDIATYPE,
                          "'%s' is corrupt: %lld of %lld video packets did not decode: %s", c->path,
                          (long long)c->verrors, (long long)c->vpackets, why);
    if (c->declared > 0) {
        /* against the container's length, the audio may be what reaches it */
        double covered =
            c->declared_is_video ? c->vend - c->vstart : fmax(c->vend, c->aend) - c->start;
        /* a frame or two of slack for rounding and edit lists, no more: a cut in the last
         * seconds of a file is still a cut */
        AVRational fr = c->ic->streams[c->vi]->avg_frame_rate;
        double frame = fr.num > 0 && fr.den > 0 ? 1 / av_q2d(fr) : 0.04;
        double tol = fmax(0.1, 0.02 * c->declared) + frame;
        if (covered < c->declared - tol)
            return media_fail(err, ERR_MEDIATYPE,
                              "'%s' is truncated: it ends at %.2f s of the %.2f s it declares",
                              c->path, covered, c->declared);
    }
    return 0;
}

static int run_clip(struct run *r, struct clip *c, buf_t *err) {
    int rc, ret;
    if ((rc = open_clip(r, c, err)) != 0)
        return rc;
    /* the previous clip left the audio exactly at the video's time */
    while ((ret = av_read_frame(c->ic, c->pkt)) >= 0) {
        if (c->pkt->flags & AV_PKT_FLAG_CORRUPT)
            c->corrupt = true;
        if (c->pkt->stream_index == c->vi) {
            c->vpackets++;
            rc = decode_video(r, c, c->pkt, err);
        } else if (c->pkt->stream_index == c->ai) {
            AVStream *as = c->ic->streams[c->ai];
            if (c->pkt->pts != AV_NOPTS_VALUE)
                c->aend =
                    fmax(c->aend, (double)(c->pkt->pts + c->pkt->duration) * av_q2d(as->time_base));
            rc = decode_audio(r, c, c->pkt, err);
        }
        av_packet_unref(c->pkt);
        if (rc)
            return rc;
    }
    if (ret != AVERROR_EOF)
        return media_fail_av(err, ERR_MEDIATYPE, ret, "cannot read '%s'", c->path);
    if ((rc = decode_video(r, c, NULL, err)) != 0)
        return rc;
    if (c->adec && (rc = decode_audio(r, c, NULL, err)) != 0)
        return rc;
    if (c->swr && (rc = resample(r, c, NULL, err)) != 0)
        return rc;
    if ((rc = check_clip(c, err)) != 0)
        return rc;
    if ((rc = flush_graph(r, c, true, err)) != 0)
        return rc;
    /* the clip's audio: exactly as long as its video */
    int64_t want = audio_at(r, r->frames);
    mout_audio_truncate(r->m, want);
    if ((rc = mout_audio_allow(r->m, want, err)) != 0)
        return rc;
    /* silence for the rest, a second at a time (each encoded at once: the queue stays small) */
    for (int64_t have = mout_audio_queued(r->m); have < want; have = mout_audio_queued(r->m))
        if ((rc = mout_audio(r->m, NULL, (int)FFMIN(want - have, MEDIA_RATE), err)) != 0)
            return rc;
    return 0;
}

/* ---- the calls ---- */

static int check_common(int w, int h, int fps, const char *preset, int crf, int threads,
                        const char *x264_params, buf_t *err) {
    if (x264_params && config_x264_params_ok(x264_params, err) != 0)
        return ERR_INVAL;
    if (w < MEDIA_MIN_DIM || w > MEDIA_MAX_DIM || h < MEDIA_MIN_DIM || h > MEDIA_MAX_DIM ||
        (w | h) & 1)
        return media_fail(err, ERR_INVAL, "output size %dx%d: even sizes from %d to %d", w, h,
                          MEDIA_MIN_DIM, MEDIA_MAX_DIM);
    if (fps < 1 || fps > MEDIA_MAX_FPS)
        return media_fail(err, ERR_INVAL, "frame rate %d: 1 to %d", fps, MEDIA_MAX_FPS);
    if (crf < 0 || crf > 51)
        return media_fail(err, ERR_INVAL, "crf %d: 0 to 51", crf);
    if (threads < 0 || threads > 64)
        return media_fail(err, ERR_INVAL, "threads %d: 0 to 64", threads);
    if (preset) {
        size_t i = 0;
        while (i < sizeof presets / sizeof presets[0] && strcmp(presets[i], preset) != 0)
            i++;
        if (i == sizeof presets / sizeof presets[0])
            return media_fail(err, ERR_INVAL, "unknown x264 preset '%s'", preset);
    }
    return 0;
}

static bool font_usable(const char *font) {
    struct stat st;
    return font && *font && stat(font, &st) == 0 && S_ISREG(st.st_mode) && access(font, R_OK) == 0;
}

static int run_clips(const struct media_render_clip *clips, size_t n, const char *output,
                     const char *thumbnail, int w, int h, int fps, const char *preset, int crf,
                     int threads, const char *x264_params, const char *font,
                     media_progress_fn progress, void *ud, buf_t *err) {
    struct run r;
    memset(&r, 0, sizeof r);
    r.W = w;
    r.H = h;
    r.fps = fps;
    r.threads = threads;
    r.font = font;
    r.progress = progress;
    r.ud = ud;
    r.nclips = n;
    r.last_progress = -1;
    struct mout_opts mo = {.path = output,
                           .format = "mp4",
                           .width = w,
                           .height = h,
                           .time_base = {1, fps},
                           .frame_rate = {fps, 1},
                           .preset = preset ? preset : "veryfast",
                           .crf = crf,
                           .threads = threads,
                           .x264_params = x264_params ? x264_params : MEDIA_X264_PARAMS,
                           .audio = true};
    int rc = mout_open(&r.m, &mo, err);
    if (rc)
        return rc;
    r.filt = av_frame_alloc();
    if (!r.filt)
        abort();
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct clip c;
        memset(&c, 0, sizeof c);
        c.path = clips[i].path;
        c.overlay = clips[i].overlay;
        r.clip = i;
        size_t before = err ? err->len : 0;
        rc = run_clip(&r, &c, err);
        close_clip(&c);
        if (rc && n > 1 && err && err->len > before) {
            /* name the clip: "clip 3: <reason>" */
            buf_t t;
            buf_init(&t, err->max);
            buf_append(&t, err->data, before);
            buf_printf(&t, "clip %zu: %s", i, err->data + before);
            buf_release(err);
            *err = t;
        }
    }
    if (rc == 0 && r.frames == 0)
        rc = media_fail(err, ERR_MEDIATYPE, "no video frame to write");
    if (rc == 0)
        rc = mout_finish(r.m, thumbnail, err);
    if (rc == 0 && progress && r.last_progress < 1)
        progress(1.0, ud);
    av_frame_free(&r.filt);
    mout_free(r.m);
    return rc;
}

int media_transcode(const struct media_transcode_opts *o, media_progress_fn progress, void *ud,
                    buf_t *err) {
    int lrc = media_lib_init(err);
    if (lrc)
        return lrc;
    if (!o || !o->input || !o->output || !*o->input || !*o->output)
        return media_fail(err, ERR_INVAL, "input and output paths are required");
    int rc = check_common(o->width, o->height, o->fps, o->preset, o->crf, o->threads,
                          o->x264_params, err);
    if (rc)
        return rc;
    struct media_render_clip clip = {.path = o->input, .overlay = NULL};
    return run_clips(&clip, 1, o->output, o->thumbnail, o->width, o->height, o->fps, o->preset,
                     o->crf, o->threads, o->x264_params, NULL, progress, ud, err);
}

int media_render(const struct media_render_opts *o, media_progress_fn progress, void *ud,
                 buf_t *err) {
    int lrc = media_lib_init(err);
    if (lrc)
        return lrc;
    if (!o || !o->output || !*o->output)
        return media_fail(err, ERR_INVAL, "an output path is required");
    if (!o->clips || o->nclips < 1 || o->nclips > MEDIA_MAX_RENDER_CLIPS)
        return media_fail(err, ERR_INVAL, "a render needs 1 to %d clips", MEDIA_MAX_RENDER_CLIPS);
    int rc = check_common(o->width, o->height, o->fps, o->preset, o->crf, o->threads,
                          o->x264_params, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < o->nclips; i++) {
        if (!o->clips[i].path || !*o->clips[i].path)
            return media_fail(err, ERR_INVAL, "clip %zu has no path", i);
        if (o->clips[i].overlay && strlen(o->clips[i].overlay) > MEDIA_MAX_OVERLAY)
            return media_fail(err, ERR_INVAL, "clip %zu: overlay longer than %d bytes", i,
                              MEDIA_MAX_OVERLAY);
    }
    const char *font = font_usable(o->font) ? o->font : NULL;
    if (o->overlays_drawn)
        *o->overlays_drawn = false;
    rc = run_clips(o->clips, o->nclips, o->output, o->thumbnail, o->width, o->height, o->fps,
                   o->preset, o->crf, o->threads, o->x264_params, font, progress, ud, err);
    if (rc == 0 && o->overlays_drawn) {
        bool any = false;
        for (size_t i = 0; i < o->nclips; i++)
            any |= o->clips[i].overlay && *o->clips[i].overlay;
        *o->overlays_drawn = font && any && avfilter_get_by_name("drawtext");
    }
    return rc;
}
