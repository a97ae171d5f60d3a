/*
 * output: the writer behind every media output. Owns the video encoder (libx264 unless told
 * otherwise), the audio encoder (AAC; Opus in WebM), the muxer writing a hidden temp file, and
 * the queue of audio samples that are only encoded once the video has reached them (so a clip's
 * audio can still be trimmed to its video's length). mout_finish writes the trailer (+faststart:
 * the muxer moves moov to the front), syncs and renames; mout_free removes what is left.
 * Worker thread; one writer per call.
 */
#include "media/ff.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "media/internal.h"

/* Audio not yet encoded may run this far ahead of the video; more is dropped (see mout_audio). */
#define AUDIO_QUEUE_MAX (MEDIA_RATE * 30)

struct mout {
    AVFormatContext *oc;
    AVCodecContext *venc, *aenc;
    AVStream *vst, *ast;
    AVPacket *pkt;
    AVFrame *aframe;
    SwrContext *swr; /* canonical -> the audio encoder's sample format, when they differ */
    float *q[MEDIA_CHANNELS];
    int64_t qlen, qcap; /* samples in q */
    int64_t queued;     /* samples queued since the start (encoded ones included) */
    int64_t encoded;    /* samples given to the encoder: the next audio pts */
    int64_t allowed;
    int frame_size;
    bool small_last;
    bool tmp_made, finished;
    char path[4096];
    char tmp[4200];
};

static int write_packets(struct mout *m, AVCodecContext *enc, AVStream *st, buf_t *err) {
    for (;;) {
        int ret = avcodec_receive_packet(enc, m->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return media_fail_av(err, ERR_INTERNAL, ret, "cannot encode %s", enc->codec->name);
        m->pkt->stream_index = st->index;
        av_packet_rescale_ts(m->pkt, enc->time_base, st->time_base);
        ret = av_interleaved_write_frame(m->oc, m->pkt); /* takes the packet's reference */
        if (ret < 0)
            return media_fail_av(err, ERR_IO, ret, "cannot write '%s'", m->path);
    }
}

static int open_video(struct mout *m, const struct mout_opts *o, buf_t *err) {
    const char *name = o->video_codec ? o->video_codec : "libx264";
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec || codec->type != AVMEDIA_TYPE_VIDEO)
        return media_fail(err, ERR_INTERNAL, "no video encoder '%s'", name);
    AVCodecContext *c = m->venc = avcodec_alloc_context3(codec);
    if (!c)
        abort();
    c->width = o->width;
    c->height = o->height;
    c->time_base = o->time_base;
    c->framerate = o->frame_rate;
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->pix_fmt = AV_PIX_FMT_NONE;
    for (const enum AVPixelFormat *p = codec->pix_fmts; p && *p != AV_PIX_FMT_NONE; p++) {
        if (c->pix_fmt == AV_PIX_FMT_NONE)
            c->pix_fmt = *p;
        if (*p == AV_PIX_FMT_YUV420P) {
            c->pix_fmt = *p;
            break;
        }
    }
    if (c->pix_fmt == AV_PIX_FMT_NONE)
        c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->thread_count = o->threads;
    if (m->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary *d = NULL;
    if (strcmp(codec->name, "libx264") == 0) {
        av_dict_set(&d, "preset", o->preset ? o->preset : "veryfast", 0);
        av_dict_set_int(&d, "crf", o->crf, 0);
        if (o->x264_params && *o->x264_params)
            av_dict_set(&d, "x264-params", o->x264_params, 0);
    } else if (strcmp(codec->name, "libvpx-vp9") == 0) {
        av_dict_set(&d, "deadline", "realtime", 0);
        av_dict_set(&d, "cpu-used", "8", 0);
        c->bit_rate = 300000;
    } else {
        c->bit_rate = 300000;
    }
    int ret = avcodec_open2(c, codec, &d);
    av_dict_free(&d);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot open the %s encoder", codec->name);
    m->vst = avformat_new_stream(m->oc, NULL);
    if (!m->vst)
        abort();
    m->vst->time_base = c->time_base;
    m->vst->avg_frame_rate = o->frame_rate;
    m->vst->sample_aspect_ratio = c->sample_aspect_ratio;
    if ((ret = avcodec_parameters_from_context(m->vst->codecpar, c)) < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the video stream");
    return 0;
}

static int open_audio(struct mout *m, buf_t *err) {
    bool webm = strcmp(m->oc->oformat->name, "webm") == 0;
    const AVCodec *codec =
        webm ? avcodec_find_encoder_by_name("libopus") : avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!codec)
        return media_fail(err, ERR_INTERNAL, "no %s encoder", webm ? "Opus" : "AAC");
    AVCodecContext *c = m->aenc = avcodec_alloc_context3(codec);
    if (!c)
        abort();
    c->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    for (const enum AVSampleFormat *p = codec->sample_fmts; p && *p != AV_SAMPLE_FMT_NONE; p++)
        if (*p == AV_SAMPLE_FMT_FLTP || *p == AV_SAMPLE_FMT_FLT) {
            c->sample_fmt = *p;
            break;
        }
    c->sample_rate = MEDIA_RATE;
    av_channel_layout_default(&c->ch_layout, MEDIA_CHANNELS);
    c->bit_rate = 128000;
    c->time_base = (AVRational){1, MEDIA_RATE};
    if (m->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int ret = avcodec_open2(c, codec, NULL);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot open the %s encoder", codec->name);
    m->frame_size = c->frame_size > 0 ? c->frame_size : 1024;
    m->small_last = (codec->capabilities &
                     (AV_CODEC_CAP_SMALL_LAST_FRAME | AV_CODEC_CAP_VARIABLE_FRAME_SIZE)) != 0;
    if (c->sample_fmt != AV_SAMPLE_FMT_FLTP) {
        ret = swr_alloc_set_opts2(&m->swr, &c->ch_layout, c->sample_fmt, MEDIA_RATE, &c->ch_layout,
                                  AV_SAMPLE_FMT_FLTP, MEDIA_RATE, 0, NULL);
        if (ret >= 0)
            ret = swr_init(m->swr);
        if (ret < 0)
            return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the audio conversion");
    }
    m->aframe = av_frame_alloc();
    if (!m->aframe)
        abort();
    m->ast = avformat_new_stream(m->oc, NULL);
    if (!m->ast)
        abort();
    m->ast->time_base = c->time_base;
    if ((ret = avcodec_parameters_from_context(m->ast->codecpar, c)) < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot set up the audio stream");
    return 0;
}

int mout_open(struct mout **out, const struct mout_opts *o, buf_t *err) {
    int lrc = media_lib_init(err);
    if (lrc)
        return lrc;
    struct mout *m = xcalloc(1, sizeof *m);
    char url[4300];
    AVDictionary *d = NULL;
    int rc, ret;

    if (snprintf(m->path, sizeof m->path, "%s", o->path) >= (int)sizeof m->path ||
        media_temp_name(o->path, m->tmp, sizeof m->tmp) != 0) {
        rc = media_fail(err, ERR_INVAL, "output path too long");
        goto fail;
    }
    snprintf(url, sizeof url, "file:%s", m->tmp);
    const char *format = o->format;
    if (!format) {
        const AVOutputFormat *g = av_guess_format(NULL, o->path, NULL);
        if (!g) {
            rc = media_fail(err, ERR_INVAL, "no container for '%s'", o->path);
            goto fail;
        }
        format = g->name;
    }
    ret = avformat_alloc_output_context2(&m->oc, NULL, format, url);
    if (ret < 0 || !m->oc) {
        rc = media_fail_av(err, ERR_INTERNAL, ret, "no muxer '%s'", format);
        goto fail;
    }
    m->oc->protocol_whitelist = av_strdup("file"); /* the +faststart pass reopens the file */
    if ((rc = open_video(m, o, err)) != 0)
        goto fail;
    if (o->audio && (rc = open_audio(m, err)) != 0)
        goto fail;
    m->pkt = av_packet_alloc();
    if (!m->pkt)
        abort();
    av_dict_set(&d, "protocol_whitelist", "file", 0);
    ret = avio_open2(&m->oc->pb, url, AVIO_FLAG_WRITE, NULL, &d);
    av_dict_free(&d);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_IO, ret, "cannot write '%s'", o->path);
        goto fail;
    }
    m->tmp_made = true;
    if (strstr(m->oc->oformat->name, "mp4") || strstr(m->oc->oformat->name, "mov"))
        av_dict_set(&d, "movflags", "+faststart", 0);
    ret = avformat_write_header(m->oc, &d);
    av_dict_free(&d);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_IO, ret, "cannot write '%s'", o->path);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    mout_free(m);
    return rc;
}

enum AVPixelFormat mout_pix_fmt(const struct mout *m) { return m->venc->pix_fmt; }

int mout_video(struct mout *m, AVFrame *frame, buf_t *err) {
    int ret = avcodec_send_frame(m->venc, frame);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot encode video");
    return write_packets(m, m->venc, m->vst, err);
}

/* Encodes n queued samples (n <= qlen; n < frame_size only for the last frame). */
static int encode_audio(struct mout *m, int n, buf_t *err) {
    AVFrame *f = m->aframe;
    int fs = n < m->frame_size && !m->small_last ? m->frame_size : n; /* padded with silence */
    av_frame_unref(f);
    f->nb_samples = fs;
    f->format = m->aenc->sample_fmt;
    f->sample_rate = MEDIA_RATE;
    int ret = av_channel_layout_copy(&f->ch_layout, &m->aenc->ch_layout);
    if (ret >= 0)
        ret = av_frame_get_buffer(f, 0);
    if (ret < 0)
        return media_fail_av(err, ERR_NOMEM, ret, "cannot allocate audio");
    if (fs > n) /* zero the tail: copy the samples to a padded scratch first */
        for (int c = 0; c < MEDIA_CHANNELS; c++)
            memset(m->q[c] + n, 0, (size_t)(fs - n) * sizeof(float));
    if (m->swr) {
        const uint8_t *in[MEDIA_CHANNELS];
        for (int c = 0; c < MEDIA_CHANNELS; c++)
            in[c] = (const uint8_t *)m->q[c];
        ret = swr_convert(m->swr, f->extended_data, fs, in, fs);
        if (ret < 0)
            return media_fail_av(err, ERR_INTERNAL, ret, "cannot convert audio");
    } else {
        for (int c = 0; c < MEDIA_CHANNELS; c++)
            memcpy(f->extended_data[c], m->q[c], (size_t)fs * sizeof(float));
    }
    f->pts = m->encoded;
    m->encoded += n;
    m->qlen -= n;
    for (int c = 0; c < MEDIA_CHANNELS; c++)
        memmove(m->q[c], m->q[c] + n, (size_t)m->qlen * sizeof(float));
    ret = avcodec_send_frame(m->aenc, f);
    if (ret < 0)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot encode audio");
    return write_packets(m, m->aenc, m->ast, err);
}

static int drain_audio(struct mout *m, buf_t *err) {
    while (m->qlen >= m->frame_size && m->encoded + m->frame_size <= m->allowed) {
        int rc = encode_audio(m, m->frame_size, err);
        if (rc)
            return rc;
    }
    return 0;
}

int mout_audio(struct mout *m, const float *const *ch, int n, buf_t *err) {
    if (!m->aenc || n <= 0)
        return 0;
    /* Audio this far past the video is audio that outlasts it (a song longer than the clip):
     * it would be trimmed at the clip's end anyway, so it is dropped now rather than held. */
    if (m->qlen + n > AUDIO_QUEUE_MAX)
        n = (int)(AUDIO_QUEUE_MAX - m->qlen);
    if (n <= 0)
        return 0;
    /* room for n more plus a frame of padding for a short last frame */
    int64_t need = m->qlen + n + m->frame_size;
    if (need > m->qcap) {
        int64_t cap = m->qcap ? m->qcap : 8192;
        while (cap < need)
            cap *= 2;
        for (int c = 0; c < MEDIA_CHANNELS; c++)
            m->q[c] = xrealloc(m->q[c], (size_t)cap * sizeof(float));
        m->qcap = cap;
    }
    for (int c = 0; c < MEDIA_CHANNELS; c++) {
        if (ch)
            memcpy(m->q[c] + m->qlen, ch[c], (size_t)n * sizeof(float));
        else
            memset(m->q[c] + m->qlen, 0, (size_t)n * sizeof(float));
    }
    m->qlen += n;
    m->queued += n;
    return drain_audio(m, err);
}

int64_t mout_audio_queued(const struct mout *m) { return m->queued; }

void mout_audio_truncate(struct mout *m, int64_t total) {
    if (m->queued <= total)
        return;
    int64_t drop = FFMIN(m->queued - total, m->qlen);
    m->qlen -= drop;
    m->queued -= drop;
}

int mout_audio_allow(struct mout *m, int64_t upto, buf_t *err) {
    if (!m->aenc)
        return 0;
    m->allowed = upto;
    return drain_audio(m, err);
}

static int flush_encoder(struct mout *m, AVCodecContext *enc, AVStream *st, buf_t *err) {
    int ret = avcodec_send_frame(enc, NULL);
    if (ret < 0 && ret != AVERROR_EOF)
        return media_fail_av(err, ERR_INTERNAL, ret, "cannot flush %s", enc->codec->name);
    return write_packets(m, enc, st, err);
}

int mout_finish(struct mout *m, const char *thumbnail, buf_t *err) {
    int rc, ret;
    if (m->aenc) {
        m->allowed = INT64_MAX;
        if ((rc = drain_audio(m, err)) != 0)
            return rc;
        if (m->qlen > 0 && (rc = encode_audio(m, (int)m->qlen, err)) != 0)
            return rc;
        if ((rc = flush_encoder(m, m->aenc, m->ast, err)) != 0)
            return rc;
    }
    if ((rc = flush_encoder(m, m->venc, m->vst, err)) != 0)
        return rc;
    if ((ret = av_write_trailer(m->oc)) < 0)
        return media_fail_av(err, ERR_IO, ret, "cannot finish '%s'", m->path);
    if ((ret = avio_closep(&m->oc->pb)) < 0)
        return media_fail_av(err, ERR_IO, ret, "cannot write '%s'", m->path);
    if (thumbnail && (rc = media_thumbnail(m->tmp, thumbnail, err)) != 0)
        return rc;
    if ((rc = media_commit_file(m->tmp, m->path, err)) != 0) {
        if (thumbnail)
            unlink(thumbnail);
        return rc;
    }
    m->finished = true;
    return 0;
}

void mout_free(struct mout *m) {
    if (!m)
        return;
    if (m->oc) {
        if (m->oc->pb)
            avio_closep(&m->oc->pb);
        avformat_free_context(m->oc);
    }
    if (m->tmp_made && !m->finished)
        unlink(m->tmp);
    avcodec_free_context(&m->venc);
    avcodec_free_context(&m->aenc);
    av_packet_free(&m->pkt);
    av_frame_free(&m->aframe);
    swr_free(&m->swr);
    for (int c = 0; c < MEDIA_CHANNELS; c++)
        free(m->q[c]);
    free(m);
}
