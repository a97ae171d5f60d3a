/*
 * The media.transcode job inside the real server: enqueued through POST /_test/jobs (its test.*
 * alias), run on the pool, progress and result visible in GET /v1/jobs/{id}, the output a real
 * MP4; bad payloads and inputs end dead with the reason and leave nothing behind.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "media/media.h"
#include "support/harness.h"
#include "support/mediajobs.h"

static const char *test_env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=50", "JOB_MAX_ATTEMPTS=1",
                                 NULL};

static void synth_into(const struct server *s, const char *name, double seconds) {
    char p[400];
    snprintf(p, sizeof p, "%s/media/%s", s->dir, name);
    struct media_synth_opts o = {
        .output = p, .width = 120, .height = 212, .fps = 30, .seconds = seconds, .clip_number = 1};
    buf_t err;
    buf_init(&err, 1024);
    cr_assert_eq(media_synth_clip(&o, &err), 0, "%s", err.data);
    buf_release(&err);
}

Test(media_it, transcode_job_runs_on_the_pool_and_reports_progress, .timeout = 120) {
    struct server s;
    server_start(&s, test_env);
    synth_into(&s, "in.mp4", 2);
    char id[64];
    mj_enqueue(s.port,
               json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "input", "in.mp4", "output", "out.mp4",
                         "thumbnail", "out.jpg", "width", 90, "height", 160, "fps", 25),
               id, sizeof id);
    json_t *j = mj_wait_job(s.port, id, 90000);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_string_value(json_object_get(j, "last_error")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "result_url")), "out.mp4");
    json_decref(j);
    char p[400];
    snprintf(p, sizeof p, "%s/media/out.mp4", s.dir);
    struct media_info mi;
    buf_t err;
    buf_init(&err, 1024);
    cr_assert_eq(media_probe(p, &mi, &err), 0, "%s", err.data);
    buf_release(&err);
    cr_expect_str_eq(mi.video_codec, "h264");
    cr_expect_str_eq(mi.audio_codec, "aac");
    cr_expect(mi.width == 90 && mi.height == 160 && fabs(mi.fps - 25) < 0.01);
    cr_expect(fabs(mi.video_duration - 2.0) <= 0.04 + 1e-6, "%f", mi.video_duration);
    cr_expect(mi.faststart);
    snprintf(p, sizeof p, "%s/media/out.jpg", s.dir);
    struct stat st;
    cr_expect(stat(p, &st) == 0 && st.st_size > 100, "thumbnail");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* Two at once (the media cap group allows TRANSCODE_MAX_CONCURRENCY=2): under the TSan build of
 * the server this is where the media code would race. */
Test(media_it, two_transcodes_at_once, .timeout = 180) {
    struct server s;
    server_start(&s, test_env);
    synth_into(&s, "in.mp4", 1.5);
    char id[2][64];
    for (int i = 0; i < 2; i++) {
        char out[32];
        snprintf(out, sizeof out, "out%d.mp4", i);
        mj_enqueue(s.port,
                   json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "in.mp4", "output", out, "width", 64,
                             "height", 112, "fps", 30),
                   id[i], sizeof id[i]);
    }
    for (int i = 0; i < 2; i++) {
        json_t *j = mj_wait_job(s.port, id[i], 150000);
        cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                         json_string_value(json_object_get(j, "last_error")));
        json_decref(j);
    }
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

Test(media_it, bad_transcode_jobs_die_with_the_reason, .timeout = 120) {
    struct server s;
    server_start(&s, test_env);
    char p[400];
    snprintf(p, sizeof p, "%s/media/junk.mp4", s.dir);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 5000; i++)
        fputc((i * 7919) & 255, f);
    fclose(f);
    struct {
        json_t *payload;
        const char *reason;
    } cases[] = {
        {json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "../db.sqlite", "output", "o.mp4", "width", 90,
                   "height", 160, "fps", 30),
         "inside the media directory"},
        {json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "junk.mp4", "output", "../o.mp4", "width", 90,
                   "height", 160, "fps", 30),
         "inside the media directory"},
        {json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "junk.mp4", "output", "o.mp4", "width", 91,
                   "height", 160, "fps", 30),
         "even integers"},
        {json_pack("{s:s,s:i,s:i,s:i}", "input", "junk.mp4", "width", 90, "height", 160, "fps", 30),
         "required"},
        {json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "junk.mp4", "output", "o.mp4", "width", 90,
                   "height", 160, "fps", 30),
         "cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[64];
        mj_enqueue(s.port, cases[i].payload, id, sizeof id);
        json_t *j = mj_wait_job(s.port, id, 60000);
        cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "dead", "case %zu", i);
        const char *e = json_string_value(json_object_get(j, "last_error"));
        cr_expect(e && strstr(e, cases[i].reason), "case %zu: '%s' should mention '%s'", i,
                  e ? e : "", cases[i].reason);
        json_decref(j);
    }
    snprintf(p, sizeof p, "%s/media/o.mp4", s.dir);
    struct stat st;
    cr_expect(stat(p, &st) != 0, "no output");
    snprintf(p, sizeof p, "%s/o.mp4", s.dir);
    cr_expect(stat(p, &st) != 0, "nothing outside the media directory");
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}
