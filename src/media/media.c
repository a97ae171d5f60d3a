/*
 * media: the shared pieces (safe input opening, error sentences, temp files), probe, thumbnail
 * and the small helpers. Transcode and render are in transcode.c, the output writer in
 * output.c, clip synthesis in synth.c. Worker threads unless a comment says otherwise.
 */
#include "media/ff.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/dir.h"
#include "core/err.h"
#include "media/internal.h"

/* Demuxers of plain media files. Everything else (hls, dash, concat, image2 patterns, tty,
 * subtitles, device and network formats) can reach other files or URLs, or turn text into
 * "video", and is refused. */
static const char *const demuxers[] = {
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "ogg",
    "asf",
    "gif",
    "h264",
    "hevc",
    "m4v",
    "mjpeg",
    "ivf",
    "nut",
    "yuv4mpegpipe",
    "dv",
    "mxf",
    "wav",
    "mp3",
    "aac",
    "flac",
    "obu",
    "av1",
};
#define DEMUXER_LIST                                                                               \
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,gif,h264,hevc,m4v,mjpeg,"   \
    "ivf,nut,yuv4mpegpipe,dv,mxf,wav,mp3,aac,flac,obu,av1"

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init_once(void) {
    if (ff_load(NULL) == 0)
        av_log_set_level(AV_LOG_QUIET);
}

int media_lib_init(buf_t *err) {
    pthread_once(&lib_once, lib_init_once);
    return ff_load(err);
}

static int vfail(buf_t *err, int code, int averr, const char *fmt, va_list ap) {
    if (!err)
        return code;
    if (err->len)
        buf_puts(err, "; ");
    buf_vprintf(err, fmt, ap);
    if (averr) {
        char why[AV_ERROR_MAX_STRING_SIZE] = "";
        av_strerror(averr, why, sizeof why);
        buf_printf(err, ": %s", why);
    }
    return code;
}

int media_fail_av(buf_t *err, int code, int averr, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(err, code, averr, fmt, ap);
    va_end(ap);
    return code;
}

int media_fail(buf_t *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(err, code, 0, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- inputs ------------------------------------------------------------------------------------
 */

static bool demuxer_allowed(const char *name) {
    for (size_t i = 0; i < sizeof demuxers / sizeof demuxers[0]; i++)
        if (strcmp(name, demuxers[i]) == 0)
            return true;
    return false;
}

static AVDictionary *safe_opts(void) {
    AVDictionary *d = NULL;
    av_dict_set(&d, "protocol_whitelist", "file", 0);
    return d;
}

int media_input_open(const char *path, AVFormatContext **out, buf_t *err) {
    int lrc = media_lib_init(err);
    if (lrc)
        return lrc;
    AVIOContext *pb = NULL;
    AVFormatContext *ic = NULL;
    AVDictionary *opts = NULL;
    const AVInputFormat *fmt = NULL;
    char url[4096 + 8];
    int rc, ret;
    struct stat st;

    if (!path || !*path)
        return media_fail(err, ERR_INVAL, "no input path");
    if (stat(path, &st) != 0)
        return media_fail(err, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot open '%s': %s",
                          path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return media_fail(err, ERR_MEDIATYPE, "cannot open '%s': not a regular file", path);
    if (st.st_size == 0)
        return media_fail(err, ERR_MEDIATYPE, "cannot open '%s': empty file", path);
    if (snprintf(url, sizeof url, "file:%s", path) >= (int)sizeof url)
        return media_fail(err, ERR_INVAL, "input path too long");

    opts = safe_opts();
    ret = avio_open2(&pb, url, AVIO_FLAG_READ, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0)
        return media_fail_av(err, ERR_IO, ret, "cannot open '%s'", path);
    ret = av_probe_input_buffer2(pb, &fmt, url, NULL, 0, 0);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_MEDIATYPE, ret, "cannot open '%s'", path);
        goto out;
    }
    if (!demuxer_allowed(fmt->name)) {
        rc = media_fail(err, ERR_MEDIATYPE, "cannot open '%s': unsupported input format '%s'", path,
                        fmt->name);
        goto out;
    }
    ic = avformat_alloc_context();
    if (!ic)
        abort();
    ic->pb = pb;
    ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    opts = safe_opts();
    av_dict_set(&opts, "format_whitelist", DEMUXER_LIST, 0);
    ret = avformat_open_input(&ic, url, fmt, &opts); /* frees ic on failure */
    av_dict_free(&opts);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_MEDIATYPE, ret, "cannot open '%s'", path);
        goto out;
    }
    ret = avformat_find_stream_info(ic, NULL);
    if (ret < 0) {
        rc = media_fail_av(err, ERR_MEDIATYPE, ret, "cannot read the streams of '%s'", path);
        goto out;
    }
    *out = ic;
    return 0;
out:
    avformat_close_input(&ic);
    avio_closep(&pb);
    return rc;
}

void media_input_close(AVFormatContext **ic) {
    if (!*ic)
        return;
    AVIOContext *pb = (*ic)->pb;
    avformat_close_input(ic);
    avio_closep(&pb);
}

int media_decoder_open(AVFormatContext *ic, int idx, int threads, AVCodecContext **out,
                       buf_t *err) {
    AVStream *st = ic->streams[idx];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
        return media_fail(err, ERR_MEDIATYPE, "no decoder for codec '%s'",
                          avcodec_get_name(st->codecpar->codec_id));
    AVCodecContext *c = avcodec_alloc_context3(codec);
    if (!c)
        abort();
    int ret = avcodec_parameters_to_context(c, st->codecpar);
    if (ret >= 0) {
        c->pkt_timebase = st->time_base;
        c->thread_count = threads;
        c->max_pixels = MEDIA_MAX_INPUT_PIXELS;
        ret = avcodec_open2(c, codec, NULL);
    }
    if (ret < 0) {
        avcodec_free_context(&c);
        return media_fail_av(err, ERR_MEDIATYPE, ret, "cannot open the %s decoder", codec->name);
    }
    *out = c;
    return 0;
}

double media_stream_seconds(const AVFormatContext *ic, int idx) {
    const AVStream *st = idx >= 0 ? ic->streams[idx] : NULL;
    if (st && st->duration > 0 && st->duration != AV_NOPTS_VALUE)
        return (double)st->duration * av_q2d(st->time_base);
    if (ic->duration > 0 && ic->duration != AV_NOPTS_VALUE)
        return (double)ic->duration / AV_TIME_BASE;
    return 0;
}

/* ---- temp files --------------------------------------------------------------------------------
 */

int media_temp_name(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    unsigned char rnd[8];
    crypto_random(rnd, sizeof rnd);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    if (!*base)
        return ERR_INVAL;
    int w = snprintf(out, n, "%.*s.%s.tmp-%s", dirlen, path, base, hex);
    return w < 0 || (size_t)w >= n ? ERR_INVAL : 0;
}

int media_commit_file(const char *tmp, const char *path, buf_t *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return media_fail(err, ERR_IO, "cannot sync '%s': %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return media_fail(err, ERR_IO, "cannot rename to '%s': %s", path, strerror(errno));
    return 0;
}

/* ".<name>.tmp-<16 hex>" */
static bool is_temp_name(const char *base) {
    size_t n = strlen(base);
    if (base[0] != '.' || n < 1 + 1 + 5 + 16)
        return false;
    const char *t = base + n - 16 - 5;
    if (memcmp(t, ".tmp-", 5) != 0)
        return false;
    for (int i = 0; i < 16; i++)
        if (!((t[5 + i] >= '0' && t[5 + i] <= '9') || (t[5 + i] >= 'a' && t[5 + i] <= 'f')))
            return false;
    return true;
}

static int sweep_dir(const char *dir, int depth, time_t cutoff) {
    DIR *d = dir_open(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 8)
            removed += sweep_dir(p, depth + 1, cutoff);
        else if (S_ISREG(st.st_mode) && is_temp_name(e->d_name) && st.st_mtime < cutoff &&
                 unlink(p) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int media_sweep_temp(const char *dir, int older_than_s) {
    return dir && *dir ? sweep_dir(dir, 0, time(NULL) - older_than_s) : 0;
}

/* ---- probe -------------------------------------------------------------------------------------
 */

/* Walks the top-level boxes of an MP4/MOV file: true when moov comes before the first mdat. */
static bool moov_first(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool first = false;
    for (int i = 0; i < 4096; i++) {
        unsigned char h[16];
        if (fread(h, 1, 8, f) != 8)
            break;
        uint64_t size = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        uint64_t head = 8;
        if (size == 1) {
            if (fread(h + 8, 1, 8, f) != 8)
                break;
            size = 0;
            for (int k = 8; k < 16; k++)
                size = size << 8 | h[k];
            head = 16;
        }
        if (memcmp(h + 4, "moov", 4) == 0) {
            first = true;
            break;
        }
        if (memcmp(h + 4, "mdat", 4) == 0 || size == 0 || size < head || size - head > INT64_MAX)
            break;
        if (fseeko(f, (off_t)(size - head), SEEK_CUR) != 0)
            break;
    }
    fclose(f);
    return first;
}

int media_probe(const char *path, struct media_info *out, buf_t *err) {
    AVFormatContext *ic = NULL;
    AVPacket *pkt = NULL;
    struct media_info mi;
    int rc = media_input_open(path, &ic, err);
    if (rc)
        return rc;
    memset(&mi, 0, sizeof mi);
    int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    int ai = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (vi < 0) {
        rc = media_fail(err, ERR_MEDIATYPE, "'%s' has no video stream", path);
        goto out;
    }
    snprintf(mi.format, sizeof mi.format, "%s", ic->iformat->name);
    AVStream *vs = ic->streams[vi];
    mi.has_video = true;
    snprintf(mi.video_codec, sizeof mi.video_codec, "%s", avcodec_get_name(vs->codecpar->codec_id));
    const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)vs->codecpar->format);
    snprintf(mi.pix_fmt, sizeof mi.pix_fmt, "%s", pf ? pf : "");
    mi.width = vs->codecpar->width;
    mi.height = vs->codecpar->height;
    if (vs->avg_frame_rate.num > 0 && vs->avg_frame_rate.den > 0)
        mi.fps = av_q2d(vs->avg_frame_rate);
    if (ic->duration > 0 && ic->duration != AV_NOPTS_VALUE)
        mi.duration = (double)ic->duration / AV_TIME_BASE;
    mi.bit_rate = ic->bit_rate > 0 ? ic->bit_rate : 0;
    if (ai >= 0) {
        AVCodecParameters *ap = ic->streams[ai]->codecpar;
        mi.has_audio = true;
        snprintf(mi.audio_codec, sizeof mi.audio_codec, "%s", avcodec_get_name(ap->codec_id));
        mi.sample_rate = ap->sample_rate;
        mi.channels = ap->ch_layout.nb_channels;
    }
    pkt = av_packet_alloc();
    if (!pkt)
        abort();
    int64_t first[2] = {AV_NOPTS_VALUE, AV_NOPTS_VALUE}, end[2] = {AV_NOPTS_VALUE, AV_NOPTS_VALUE};
    int ret;
    while ((ret = av_read_frame(ic, pkt)) >= 0) {
        int k = pkt->stream_index == vi ? 0 : pkt->stream_index == ai ? 1 : -1;
        int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
        if (k == 0)
            mi.video_frames++;
        if (k >= 0 && t != AV_NOPTS_VALUE) {
            if (first[k] == AV_NOPTS_VALUE || t < first[k])
                first[k] = t;
            if (end[k] == AV_NOPTS_VALUE || t + pkt->duration > end[k])
                end[k] = t + pkt->duration;
        }
        av_packet_unref(pkt);
    }
    if (ret != AVERROR_EOF) {
        rc = media_fail_av(err, ERR_MEDIATYPE, ret, "cannot read '%s'", path);
        goto out;
    }
    if (first[0] != AV_NOPTS_VALUE)
        mi.video_duration = (double)(end[0] - first[0]) * av_q2d(vs->time_base);
    if (ai >= 0 && first[1] != AV_NOPTS_VALUE)
        mi.audio_duration = (double)(end[1] - first[1]) * av_q2d(ic->streams[ai]->time_base);
    if (strstr(mi.format, "mp4") || strstr(mi.format, "mov"))
        mi.faststart = moov_first(path);
    *out = mi;
out:
    av_packet_free(&pkt);
    media_input_close(&ic);
    return rc;
}

/* ---- thumbnail ---------------------------------------------------------------------------------
 */

static int write_jpeg(const AVFrame *src, const char *output, buf_t *err) {
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *c = NULL;
    struct SwsContext *sws = NULL;
    AVFrame *f = NULL;
    AVPacket *pkt = NULL;
    FILE *fp = NULL;
    char tmp[4200];
    bool made = false;
    int rc = 0, ret;

    if (!codec)
        return media_fail(err, ERR_INTERNAL, "no JPEG encoder");
    if (media_temp_name(output, tmp, sizeof tmp) != 0)
        return media_fail(err, ERR_INVAL, "thumbnail path too long");
    /* the display size: non-square pixels widened or narrowed, even sizes */
    int w = src->width, h = src->height;
    AVRational sar = src->sample_aspect_ratio;
    if (sar.num > 0 && sar.den > 0 && av_cmp_q(sar, (AVRational){1, 1}) != 0)
        w = (int)lrint(w * av_q2d(sar));
    w = FFMAX(2, w & ~1);
    h = FFMAX(2, h & ~1);
    if (w > 8192)
        w = 8192;

    c = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!c || !f || !pkt)
        abort();
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_YUVJ420P;
    c->time_base = (AVRational){1, 25};
    c->flags |= AV_CODEC_FLAG_QSCALE;
    c->global_quality = FF_QP2LAMBDA * 3;
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        rc = media_fail_av(err, ERR_INTERNAL, ret, "cannot open the JPEG encoder");
        goto out;
    }
    sws = sws_getContext(src->width, src->height, (enum AVPixelFormat)src->format, w, h,
                         AV_PIX_FMT_YUVJ420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (!sws) {
        rc = media_fail(err, ERR_MEDIATYPE, "cannot convert the frame for the thumbnail");
        goto out;
    }
    f->width = w;
    f->height = h;
    f->format = AV_PIX_FMT_YUVJ420P;
    if ((ret = av_frame_get_buffer(f, 0)) < 0) {
        rc = media_fail_av(err, ERR_NOMEM, ret, "cannot allocate a frame");
        goto out;
    }
    sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, f->data,
              f->linesize);
    f->pts = 0;
    if ((ret = avcodec_send_frame(c, f)) < 0 || (ret = avcodec_send_frame(c, NULL)) < 0 ||
        (ret = avcodec_receive_packet(c, pkt)) < 0) {
        rc = media_fail_av(err, ERR_INTERNAL, ret, "cannot encode the thumbnail");
        goto out;
    }
    fp = fopen(tmp, "wbx");
    if (!fp) {
        rc = media_fail(err, ERR_IO, "cannot write '%s': %s", output, strerror(errno));
        goto out;
    }
    made = true;
    if (fwrite(pkt->data, 1, (size_t)pkt->size, fp) != (size_t)pkt->size || fflush(fp) != 0) {
        rc = media_fail(err, ERR_IO, "cannot write '%s': %s", output, strerror(errno));
        goto out;
    }
    fclose(fp);
    fp = NULL;
    rc = media_commit_file(tmp, output, err);
    if (rc == 0)
        made = false;
out:
    if (fp)
        fclose(fp);
    if (made)
        unlink(tmp);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return rc;
}

int media_thumbnail(const char *input, const char *output_jpg, buf_t *err) {
    AVFormatContext *ic = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL, *best = NULL;
    int rc, ret;

    if (!output_jpg || !*output_jpg)
        return media_fail(err, ERR_INVAL, "no thumbnail path");
    if ((rc = media_input_open(input, &ic, err)) != 0)
        return rc;
    int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (vi < 0) {
        rc = media_fail(err, ERR_MEDIATYPE, "'%s' has no video stream", input);
        goto out;
    }
    if ((rc = media_decoder_open(ic, vi, 1, &dec, err)) != 0)
        goto out;
    AVStream *st = ic->streams[vi];
    double dur = media_stream_seconds(ic, vi);
    double target = fmin(1.0, dur / 2);
    double start =
        st->start_time != AV_NOPTS_VALUE ? (double)st->start_time * av_q2d(st->time_base) : 0;
    if (target > 0) {
        int64_t ts = (int64_t)((start + target) / av_q2d(st->time_base));
        if (av_seek_frame(ic, vi, ts, AVSEEK_FLAG_BACKWARD) < 0)
            av_seek_frame(ic, vi, 0, AVSEEK_FLAG_BACKWARD);
    }
    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    best = av_frame_alloc();
    if (!pkt || !frame || !best)
        abort();
    bool have = false, done = false, eof = false;
    while (!done) {
        if (!eof) {
            ret = av_read_frame(ic, pkt);
            if (ret == AVERROR_EOF) {
                eof = true;
                avcodec_send_packet(dec, NULL);
            } else if (ret < 0) {
                rc = media_fail_av(err, ERR_MEDIATYPE, ret, "cannot read '%s'", input);
                goto out;
            } else {
                if (pkt->stream_index == vi)
                    avcodec_send_packet(dec, pkt); /* a bad packet: the next may decode */
                av_packet_unref(pkt);
            }
        }
        while ((ret = avcodec_receive_frame(dec, frame)) >= 0) {
            av_frame_unref(best);
            av_frame_move_ref(best, frame);
            have = true;
            int64_t t = best->best_effort_timestamp;
            if (t == AV_NOPTS_VALUE || (double)t * av_q2d(st->time_base) - start >= target - 1e-6) {
                done = true;
                break;
            }
        }
        if (eof || ret == AVERROR_EOF) /* drained after the flush */
            break;
    }
    if (!have) {
        rc = media_fail(err, ERR_MEDIATYPE, "no decodable frame in '%s'", input);
        goto out;
    }
    rc = write_jpeg(best, output_jpg, err);
out:
    av_frame_free(&best);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    media_input_close(&ic);
    return rc;
}

/* ---- helpers -----------------------------------------------------------------------------------
 */

static int even_clamp(double v) {
    int n = (int)lrint(v / 2) * 2;
    return n < MEDIA_MIN_DIM ? MEDIA_MIN_DIM : n > MEDIA_MAX_DIM ? MEDIA_MAX_DIM : n;
}

void media_scaled_size(int w, int h, double scale, int *ow, int *oh) {
    if (!(scale > 0))
        scale = 1;
    *ow = even_clamp(w * scale);
    *oh = even_clamp(h * scale);
}

int media_parse_size(const char *s, int *w, int *h) {
    char *end;
    if (!s || *s < '0' || *s > '9')
        return ERR_INVAL;
    long a = strtol(s, &end, 10);
    if (*end != 'x' || end[1] < '0' || end[1] > '9')
        return ERR_INVAL;
    long b = strtol(end + 1, &end, 10);
    if (*end || a < MEDIA_MIN_DIM || a > MEDIA_MAX_DIM || b < MEDIA_MIN_DIM || b > MEDIA_MAX_DIM)
        return ERR_INVAL;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

static char versions[256];
static pthread_once_t versions_once = PTHREAD_ONCE_INIT;

static void versions_init(void) {
    if (ff_load(NULL)) {
        snprintf(versions, sizeof versions, "%s", ff_error());
        return;
    }
    unsigned v[6] = {avformat_version(), avcodec_version(), avutil_version(),
                     avfilter_version(), swscale_version(), swresample_version()};
    snprintf(versions, sizeof versions,
             "libavformat %u.%u.%u, libavcodec %u.%u.%u, libavutil %u.%u.%u, libavfilter %u.%u.%u, "
             "libswscale %u.%u.%u, libswresample %u.%u.%u",
             v[0] >> 16, v[0] >> 8 & 255, v[0] & 255, v[1] >> 16, v[1] >> 8 & 255, v[1] & 255,
             v[2] >> 16, v[2] >> 8 & 255, v[2] & 255, v[3] >> 16, v[3] >> 8 & 255, v[3] & 255,
             v[4] >> 16, v[4] >> 8 & 255, v[4] & 255, v[5] >> 16, v[5] >> 8 & 255, v[5] & 255);
}

const char *media_versions(void) {
    pthread_once(&versions_once, versions_init);
    return versions;
}
