/*
 * The FFmpeg libraries are loaded on the first media work (src/media/ff.c), not at start: an idle
 * server has none of them mapped, a transcode job maps them, and when one cannot be loaded the
 * media work fails with a sentence naming it while the rest of the server carries on.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libavfilter/version.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "media/media.h"
#include "support/harness.h"
#include "support/mediajobs.h"

#define STR2(x) #x
#define STR(x) STR2(x)
#define AVFILTER_SONAME "libavfilter.so." STR(LIBAVFILTER_VERSION_MAJOR)

static char out[1 << 16];

/* Whether /proc/<pid>/maps has a mapping whose path contains name. */
static bool maps_have(pid_t pid, const char *name) {
    char p[64], line[1024];
    snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(p, "r");
    cr_assert(f, "%s", p);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

static void synth_into(const struct server *s, const char *name) {
    char p[400];
    snprintf(p, sizeof p, "%s/media/%s", s->dir, name);
    struct media_synth_opts o = {
        .output = p, .width = 64, .height = 64, .fps = 10, .seconds = 0.5, .clip_number = 3};
    buf_t err;
    buf_init(&err, 1024);
    cr_assert_eq(media_synth_clip(&o, &err), 0, "%s", err.data);
    buf_release(&err);
}

static void health_ok(int port) {
    struct resp r;
    cr_assert(h_request(port, "GET", "/health", NULL, NULL, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

Test(media_load, an_idle_server_maps_no_ffmpeg_library_until_a_media_job_runs, .timeout = 120) {
    static const char *env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=50", "JOB_MAX_ATTEMPTS=1", NULL};
    struct server s;
    server_start(&s, env);
    health_ok(s.port);
    const char *libs[] = {"libavcodec.so", "libavformat.so", "libavfilter.so",
                          "libavutil.so",  "libswscale.so",  "libswresample.so"};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
        cr_expect(!maps_have(s.pid, libs[i]), "%s is mapped by an idle server", libs[i]);
    synth_into(&s, "in.mp4");
    char id[64];
    mj_enqueue(s.port,
               json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "in.mp4", "output", "out.mp4", "width",
                         32, "height", 32, "fps", 10),
               id, sizeof id);
    json_t *j = mj_wait_job(s.port, id, 90000);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_string_value(json_object_get(j, "last_error")));
    json_decref(j);
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
        cr_expect(maps_have(s.pid, libs[i]), "%s is not mapped after a transcode", libs[i]);
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
}

/* A directory with a broken AVFILTER_SONAME first on LD_LIBRARY_PATH: dlopen finds it and fails. */
static void broken_lib_dir(char *dir, size_t n, char *env_var, size_t en) {
    snprintf(dir, n, "/tmp/myloware-ffload-XXXXXX");
    cr_assert(mkdtemp(dir));
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, AVFILTER_SONAME);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs("not a shared library\n", f);
    fclose(f);
    snprintf(env_var, en, "LD_LIBRARY_PATH=%s", dir);
}

static void remove_lib_dir(const char *dir) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, AVFILTER_SONAME);
    unlink(p);
    rmdir(dir);
}

Test(media_load, a_library_that_cannot_be_loaded_fails_the_job_with_its_name, .timeout = 120) {
    char dir[64], ld[128];
    broken_lib_dir(dir, sizeof dir, ld, sizeof ld);
    const char *env[] = {"ENVIRONMENT=test", "QUEUE_POLL_MS=50", "JOB_MAX_ATTEMPTS=1", ld, NULL};
    struct server s;
    server_start(&s, env);
    health_ok(s.port);
    synth_into(&s, "in.mp4"); /* in this process: the libraries load fine here */
    char id[64];
    mj_enqueue(s.port,
               json_pack("{s:s,s:s,s:i,s:i,s:i}", "input", "in.mp4", "output", "out.mp4", "width",
                         32, "height", 32, "fps", 10),
               id, sizeof id);
    json_t *j = mj_wait_job(s.port, id, 60000);
    cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "dead");
    const char *e = json_string_value(json_object_get(j, "last_error"));
    cr_expect(e && strstr(e, "cannot load the FFmpeg library " AVFILTER_SONAME), "last_error: %s",
              e ? e : "(none)");
    json_decref(j);
    char p[400];
    snprintf(p, sizeof p, "%s/media/out.mp4", s.dir);
    struct stat st;
    cr_expect(stat(p, &st) != 0, "no output");
    health_ok(s.port); /* the server carries on */
    cr_assert_eq(server_stop(&s, SIGTERM, 20000), 0);
    remove_lib_dir(dir);
}

Test(media_load, the_media_commands_name_the_library_that_cannot_be_loaded) {
    char dir[64], ld[128];
    broken_lib_dir(dir, sizeof dir, ld, sizeof ld);
    char clip[128];
    snprintf(clip, sizeof clip, "%s/clip.mp4", dir);
    const char *env[] = {ld, NULL};
    const char *synth[] = {"media", "synth", clip, "--size", "64x64", "--seconds", "0.5", NULL};
    int rc = run_cmd(synth, env, out, sizeof out);
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect(strstr(out, "cannot load the FFmpeg library " AVFILTER_SONAME), "%s", out);
    struct stat st;
    cr_expect(stat(clip, &st) != 0, "no output");
    const char *probe[] = {"media", "probe", clip, NULL};
    rc = run_cmd(probe, env, out, sizeof out);
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect(strstr(out, "cannot load the FFmpeg library " AVFILTER_SONAME), "%s", out);
    /* version needs no library: it prints the versions compiled against */
    const char *version[] = {"version", NULL};
    cr_expect_eq(run_cmd(version, env, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "libavcodec"), "%s", out);
    remove_lib_dir(dir);
}
