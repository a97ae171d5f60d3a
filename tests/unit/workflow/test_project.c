/* project: the shipped projects load; a bad file names its path and the reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "workflow/project.h"

Test(project, shipped_projects_load_with_their_fields) {
    projects_t *ps = NULL;
    buf_t err;
    buf_init(&err, 4096);
    cr_assert_eq(projects_load(MYLOWARE_SRCDIR "/projects", &ps, &err), 0, "%s", err.data);
    cr_assert_eq(projects_count(ps), 2);
    const project_t *a = projects_find(ps, "aismr"), *m = projects_find(ps, "motivational");
    cr_assert_not_null(a);
    cr_assert_not_null(m);
    cr_assert_null(projects_find(ps, "nope"));
    cr_assert_eq(a->video_count, 12);
    cr_assert_eq(a->clip_seconds, 8);
    cr_assert_str_eq(a->aspect_ratio, "9:16");
    cr_assert_eq(a->width, 1080);
    cr_assert_eq(a->height, 1920);
    cr_assert_eq(a->fps, 30);
    cr_assert(a->gate_ideation && a->gate_publish);
    cr_assert_eq(m->video_count, 2);
    cr_assert(strstr(m->caption_template, "{topic}"));
    cr_assert_eq(json_array_size(m->tags), 5);
    for (int i = 0; i < AGENT__COUNT; i++)
        cr_assert(m->agents[i].instructions && *m->agents[i].instructions);
    int w, h;
    project_scaled_size(a, 0.1, &w, &h);
    cr_assert_eq(w, 108);
    cr_assert_eq(h, 192);
    project_scaled_size(a, 0.333, &w, &h);
    cr_assert(w % 2 == 0 && h % 2 == 0);
    projects_free(ps);
    buf_release(&err);
}

static const char *parse_error(const char *text) {
    static char msg[512];
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j, "bad test JSON");
    project_t p;
    buf_t err;
    buf_init(&err, 1024);
    int rc = project_parse(j, "x", &p, &err);
    snprintf(msg, sizeof msg, "%s", rc ? (err.data ? err.data : "?") : "");
    buf_release(&err);
    json_decref(j);
    return msg;
}

#define BASE                                                                                       \
    "\"title\":\"t\",\"description\":\"d\",\"clip_seconds\":8,\"aspect_ratio\":\"9:16\","          \
    "\"resolution\":\"1080x1920\",\"fps\":30,\"hitl_gates\":[\"ideation\"],"                       \
    "\"overlay\":{\"position\":\"top\",\"style\":\"s\"},\"caption_template\":\"{topic}\","         \
    "\"tags\":[\"a\",\"b\",\"c\"],\"agents\":{\"ideator\":{\"instructions\":\"i\"},"               \
    "\"producer\":{\"instructions\":\"p\"},\"editor\":{\"instructions\":\"e\"},"                   \
    "\"publisher\":{\"instructions\":\"u\"}}"

Test(project, invalid_fields_are_named) {
    cr_assert_str_eq(parse_error("{\"name\":\"x\",\"video_count\":2," BASE "}"), "");
    cr_assert_str_eq(parse_error("{\"name\":\"x\"," BASE "}"), "video_count: is required");
    cr_assert_str_eq(parse_error("{\"name\":\"x\",\"video_count\":0," BASE "}"),
                     "video_count: must be at least 1");
    cr_assert_str_eq(parse_error("{\"name\":\"y\",\"video_count\":2," BASE "}"),
                     "name: 'y' does not match the file name 'x'");
    const char *bad_res =
        "{\"name\":\"x\",\"video_count\":2,\"title\":\"t\",\"description\":\"d\",\"clip_seconds\":"
        "8,"
        "\"aspect_ratio\":\"16:9\",\"resolution\":\"1080x1920\",\"fps\":30,\"hitl_gates\":[],"
        "\"overlay\":{\"position\":\"top\",\"style\":\"s\"},\"caption_template\":\"c\","
        "\"tags\":[\"a\",\"b\",\"c\"],\"agents\":{\"ideator\":{\"instructions\":\"i\"},"
        "\"producer\":{\"instructions\":\"p\"},\"editor\":{\"instructions\":\"e\"},"
        "\"publisher\":{\"instructions\":\"\"}}}";
    cr_assert_str_eq(parse_error(bad_res),
                     "agents.publisher.instructions: must be at least 1 characters");
}

Test(project, a_bad_file_stops_loading_with_its_path) {
    char dir[] = "/tmp/myloware-projects-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"name\": \"broken\",", f);
    fclose(f);
    projects_t *ps = NULL;
    buf_t err;
    buf_init(&err, 4096);
    cr_assert_eq(projects_load(dir, &ps, &err), ERR_INVAL);
    cr_assert_null(ps);
    cr_assert(strstr(err.data, path), "%s", err.data);
    cr_assert(strstr(err.data, "invalid JSON"), "%s", err.data);
    buf_reset(&err);
    unlink(path);
    cr_assert_eq(projects_load(dir, &ps, &err), ERR_INVAL);
    cr_assert(strstr(err.data, "no project"), "%s", err.data);
    rmdir(dir);
    buf_release(&err);
}
