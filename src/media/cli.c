/*
 * media cli: `myloware media transcode|render|probe|synth|thumbnail`, thin wrappers over
 * media.h for operators, the benchmark (scripts/bench/transcode.sh) and debugging. The settings
 * give the defaults (TRANSCODE_PRESET, TRANSCODE_CRF, RENDER_SCALE, RENDER_FONT, FAKE_CLIP_*).
 * Main thread (a command runs alone, blocking is fine). Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include "media/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/err.h"
#include "media/media.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static int usage(const char *cmd, const char *msg, const char *arg) {
    fprintf(stderr, "myloware media %s: %s%s%s\nTry 'myloware media %s --help'.\n", cmd, msg,
            arg ? ": " : "", arg ? arg : "", cmd);
    return EXIT_USAGE;
}

static int fail(const char *what, buf_t *err) {
    fprintf(stderr, "myloware media %s: %s\n", what, err->data ? err->data : "failed");
    buf_release(err);
    return EXIT_FAIL;
}

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

int media_cmd_transcode(config_t *cfg, int argc, char **argv) {
    struct media_transcode_opts o = {.preset = config_str(cfg, S_TRANSCODE_PRESET),
                                     .crf = (int)config_int(cfg, S_TRANSCODE_CRF),
                                     .x264_params = config_str(cfg, S_TRANSCODE_X264_PARAMS),
                                     .fps = 30};
    int w = 0, h = 0;
    const char *pos[2] = {NULL, NULL}, *v;
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--size"))) {
            if (media_parse_size(v, &w, &h) != 0)
                return usage("transcode", "--size must be WxH", v);
        } else if ((v = cli_opt(argc, argv, &i, "--fps"))) {
            if (!parse_int(v, 1, MEDIA_MAX_FPS, &o.fps))
                return usage("transcode", "--fps must be 1 to 120", v);
        } else if ((v = cli_opt(argc, argv, &i, "--threads"))) {
            if (!parse_int(v, 0, 64, &o.threads))
                return usage("transcode", "--threads must be 0 (automatic) to 64", v);
        } else if ((v = cli_opt(argc, argv, &i, "--x264-params"))) {
            o.x264_params = v;
        } else if ((v = cli_opt(argc, argv, &i, "--thumbnail"))) {
            o.thumbnail = v;
        } else if (argv[i][0] == '-' || npos == 2) {
            return usage("transcode", "unexpected argument", argv[i]);
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos != 2 || !w)
        return usage("transcode", "needs IN OUT --size WxH", NULL);
    media_scaled_size(w, h, config_num(cfg, S_RENDER_SCALE), &o.width, &o.height);
    o.input = pos[0];
    o.output = pos[1];
    buf_t err;
    buf_init(&err, 4096);
    if (media_transcode(&o, NULL, NULL, &err) != 0)
        return fail("transcode", &err);
    buf_release(&err);
    return EXIT_OK;
}

int media_cmd_render(config_t *cfg, int argc, char **argv) {
    struct media_render_opts o = {.preset = config_str(cfg, S_TRANSCODE_PRESET),
                                  .crf = (int)config_int(cfg, S_TRANSCODE_CRF),
                                  .x264_params = config_str(cfg, S_TRANSCODE_X264_PARAMS),
                                  .fps = 30,
                                  .font = config_str(cfg, S_RENDER_FONT)};
    struct media_render_clip *clips = calloc((size_t)argc + 1, sizeof *clips);
    int w = 0, h = 0, rc = EXIT_USAGE;
    const char *v;
    bool drawn = false;
    o.overlays_drawn = &drawn;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--size"))) {
            if (media_parse_size(v, &w, &h) != 0) {
                rc = usage("render", "--size must be WxH", v);
                goto out;
            }
        } else if ((v = cli_opt(argc, argv, &i, "--fps"))) {
            if (!parse_int(v, 1, MEDIA_MAX_FPS, &o.fps)) {
                rc = usage("render", "--fps must be 1 to 120", v);
                goto out;
            }
        } else if ((v = cli_opt(argc, argv, &i, "--overlay"))) {
            if (o.nclips == 0) {
                rc = usage("render", "--overlay follows its clip", v);
                goto out;
            }
            clips[o.nclips - 1].overlay = v;
        } else if ((v = cli_opt(argc, argv, &i, "--thumbnail"))) {
            o.thumbnail = v;
        } else if ((v = cli_opt(argc, argv, &i, "--output"))) {
            o.output = v;
        } else if (argv[i][0] == '-') {
            rc = usage("render", "unexpected argument", argv[i]);
            goto out;
        } else {
            clips[o.nclips++].path = argv[i];
        }
    }
    if (!o.nclips || !o.output || !w) {
        rc = usage("render", "needs CLIP... --output OUT --size WxH", NULL);
        goto out;
    }
    media_scaled_size(w, h, config_num(cfg, S_RENDER_SCALE), &o.width, &o.height);
    o.clips = clips;
    buf_t err;
    buf_init(&err, 4096);
    if (media_render(&o, NULL, NULL, &err) != 0) {
        rc = fail("render", &err);
        goto out;
    }
    buf_release(&err);
    printf("rendered %zu clips%s\n", o.nclips, drawn ? " with overlays" : "");
    rc = EXIT_OK;
out:
    free(clips);
    return rc;
}

int media_cmd_probe(config_t *cfg, int argc, char **argv) {
    if (argc != 1)
        return usage("probe", "needs one FILE", NULL);
    struct media_info mi;
    buf_t err;
    buf_init(&err, 4096);
    if (media_probe(argv[0], &mi, &err) != 0)
        return fail("probe", &err);
    buf_release(&err);
    printf("{\"format\": \"%s\", \"video_codec\": \"%s\", \"pix_fmt\": \"%s\", \"width\": %d, "
           "\"height\": %d, "
           "\"fps\": %.3f, \"duration\": %.3f, \"video_duration\": %.3f, \"video_frames\": %lld, "
           "\"has_audio\": %s, \"audio_codec\": \"%s\", \"sample_rate\": %d, \"channels\": %d, "
           "\"bit_rate\": %lld, \"faststart\": %s}\n",
           mi.format, mi.video_codec, mi.pix_fmt, mi.width, mi.height, mi.fps, mi.duration,
           mi.video_duration, (long long)mi.video_frames, mi.has_audio ? "true" : "false",
           mi.audio_codec, mi.sample_rate, mi.channels, (long long)mi.bit_rate,
           mi.faststart ? "true" : "false");
    return EXIT_OK;
}

int media_cmd_synth(config_t *cfg, int argc, char **argv) {
    struct media_synth_opts o = {.fps = 30, .seconds = config_num(cfg, S_FAKE_CLIP_SECONDS)};
    const char *v;
    if (media_parse_size(config_str(cfg, S_FAKE_CLIP_SIZE), &o.width, &o.height) != 0)
        return usage("synth", "FAKE_CLIP_SIZE must be WxH", config_str(cfg, S_FAKE_CLIP_SIZE));
    for (int i = 0; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--size"))) {
            if (media_parse_size(v, &o.width, &o.height) != 0)
                return usage("synth", "--size must be WxH", v);
        } else if ((v = cli_opt(argc, argv, &i, "--fps"))) {
            if (!parse_int(v, 1, MEDIA_MAX_FPS, &o.fps))
                return usage("synth", "--fps must be 1 to 120", v);
        } else if ((v = cli_opt(argc, argv, &i, "--seconds"))) {
            char *end;
            o.seconds = strtod(v, &end);
            if (*end || !(o.seconds > 0) || o.seconds > MEDIA_MAX_SECONDS)
                return usage("synth", "--seconds must be more than 0, at most 600", v);
        } else if ((v = cli_opt(argc, argv, &i, "--number"))) {
            if (!parse_int(v, 0, 9999, &o.clip_number))
                return usage("synth", "--number must be 0 to 9999", v);
        } else if ((v = cli_opt(argc, argv, &i, "--codec"))) {
            o.video_codec = v;
        } else if (strcmp(argv[i], "--no-audio") == 0) {
            o.no_audio = true;
        } else if (argv[i][0] == '-' || o.output) {
            return usage("synth", "unexpected argument", argv[i]);
        } else {
            o.output = argv[i];
        }
    }
    if (!o.output)
        return usage("synth", "needs OUT", NULL);
    buf_t err;
    buf_init(&err, 4096);
    if (media_synth_clip(&o, &err) != 0)
        return fail("synth", &err);
    buf_release(&err);
    return EXIT_OK;
}

int media_cmd_thumbnail(config_t *cfg, int argc, char **argv) {
    if (argc != 2)
        return usage("thumbnail", "needs IN OUT.jpg", NULL);
    buf_t err;
    buf_init(&err, 4096);
    if (media_thumbnail(argv[0], argv[1], &err) != 0)
        return fail("thumbnail", &err);
    buf_release(&err);
    return EXIT_OK;
}
