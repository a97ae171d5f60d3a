/* project: loading and validating the project files (see project.h). */
#include "workflow/project.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dir.h"
#include "core/err.h"
#include "core/mem.h"
#include "workflow/jsonschema.h"

const char *const agent_role_names[AGENT__COUNT] = {"ideator", "producer", "editor", "publisher"};

#define MAX_PROJECTS 64

struct projects {
    project_t items[MAX_PROJECTS];
    int n;
};

static const char project_schema[] =
    "{\"type\":\"object\",\"required\":[\"name\",\"title\",\"description\",\"video_count\",\"clip_"
    "seconds\","
    "\"aspect_ratio\",\"resolution\",\"fps\",\"hitl_gates\",\"overlay\",\"caption_template\","
    "\"tags\",\"agents\"],"
    "\"properties\":{"
    "\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9_]{1,64}$\"},"
    "\"title\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
    "\"description\":{\"type\":\"string\",\"maxLength\":2000},"
    "\"video_count\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":32},"
    "\"clip_seconds\":{\"type\":\"integer\",\"enum\":[4,8,12]},"
    "\"aspect_ratio\":{\"type\":\"string\",\"enum\":[\"9:16\",\"16:9\",\"1:1\"]},"
    "\"resolution\":{\"type\":\"string\",\"pattern\":\"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$\"},"
    "\"fps\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":60},"
    "\"hitl_gates\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"string\",\"enum\":["
    "\"ideation\","
    "\"publish\"]}},"
    "\"overlay\":{\"type\":\"object\",\"required\":[\"position\",\"style\"],\"properties\":{"
    "\"position\":{\"type\":\"string\",\"enum\":[\"top\",\"center\",\"bottom\"]},"
    "\"style\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64}}},"
    "\"caption_template\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":500},"
    "\"tags\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":8,\"items\":{\"type\":\"string\","
    "\"pattern\":\"^[^#[:space:]]{1,64}$\"}},"
    "\"agents\":{\"type\":\"object\",\"required\":[\"ideator\",\"producer\",\"editor\","
    "\"publisher\"],"
    "\"properties\":{"
    "\"ideator\":{\"$ref\":\"agent\"},\"producer\":{\"$ref\":\"agent\"},\"editor\":{\"$ref\":"
    "\"agent\"},"
    "\"publisher\":{\"$ref\":\"agent\"}}}}}";

static const char agent_schema[] =
    "{\"type\":\"object\",\"required\":[\"instructions\"],\"properties\":{"
    "\"instructions\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":20000},"
    "\"model\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200}}}";

int project_parse(json_t *json, const char *name, project_t *p, buf_t *err) {
    char why[300];
    json_t *schema = json_loads(project_schema, 0, NULL),
           *agent = json_loads(agent_schema, 0, NULL);
    int rc = ERR_INVAL;
    memset(p, 0, sizeof *p);
    if (!jsonschema_validate(schema, json, why, sizeof why)) {
        buf_puts(err, why);
        goto out;
    }
    json_t *agents = json_object_get(json, "agents");
    for (int i = 0; i < AGENT__COUNT; i++) {
        json_t *a = json_object_get(agents, agent_role_names[i]);
        char aw[300];
        if (!jsonschema_validate(agent, a, aw, sizeof aw)) {
            buf_printf(err, "agents.%s.%s", agent_role_names[i], aw);
            goto out;
        }
        p->agents[i].instructions = json_string_value(json_object_get(a, "instructions"));
        p->agents[i].model = json_string_value(json_object_get(a, "model"));
    }
    p->name = json_string_value(json_object_get(json, "name"));
    if (name && strcmp(p->name, name) != 0) {
        buf_printf(err, "name: '%s' does not match the file name '%s'", p->name, name);
        goto out;
    }
    p->title = json_string_value(json_object_get(json, "title"));
    p->description = json_string_value(json_object_get(json, "description"));
    p->video_count = (int)json_integer_value(json_object_get(json, "video_count"));
    p->clip_seconds = (int)json_integer_value(json_object_get(json, "clip_seconds"));
    p->aspect_ratio = json_string_value(json_object_get(json, "aspect_ratio"));
    p->fps = (int)json_integer_value(json_object_get(json, "fps"));
    sscanf(json_string_value(json_object_get(json, "resolution")), "%dx%d", &p->width, &p->height);
    int aw = 9, ah = 16;
    sscanf(p->aspect_ratio, "%d:%d", &aw, &ah);
    if ((long)p->width * ah != (long)p->height * aw || p->width % 2 || p->height % 2 ||
        p->width > 4096 || p->height > 4096) {
        buf_printf(err, "resolution: %dx%d is not an even size of aspect ratio %s up to 4096",
                   p->width, p->height, p->aspect_ratio);
        goto out;
    }
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(json, "hitl_gates"), i, g) {
        if (strcmp(json_string_value(g), "ideation") == 0)
            p->gate_ideation = true;
        else
            p->gate_publish = true;
    }
    json_t *ov = json_object_get(json, "overlay");
    p->overlay_position = json_string_value(json_object_get(ov, "position"));
    p->overlay_style = json_string_value(json_object_get(ov, "style"));
    p->caption_template = json_string_value(json_object_get(json, "caption_template"));
    p->tags = json_object_get(json, "tags");
    p->json = json;
    rc = 0;
out:
    json_decref(schema);
    json_decref(agent);
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const project_t *)a)->name, ((const project_t *)b)->name);
}

int projects_load(const char *dir, projects_t **out, buf_t *err) {
    DIR *d = dir_open(dir);
    if (!d) {
        buf_printf(err, "%s: cannot open the projects directory", dir);
        return ERR_IO;
    }
    projects_t *ps = xcalloc(1, sizeof *ps);
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        char path[4096], name[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
        if (ps->n >= MAX_PROJECTS) {
            buf_printf(err, "%s: more than %d projects", path, MAX_PROJECTS);
            rc = ERR_INVAL;
            break;
        }
        json_error_t je;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!j) {
            buf_printf(err, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
            rc = ERR_INVAL;
            break;
        }
        buf_t why;
        buf_init(&why, 1024);
        if (project_parse(j, name, &ps->items[ps->n], &why) != 0) {
            buf_printf(err, "%s: %s", path, why.data ? why.data : "invalid");
            json_decref(j);
            rc = ERR_INVAL;
        } else {
            ps->n++;
        }
        buf_release(&why);
    }
    closedir(d);
    if (rc == 0 && ps->n == 0) {
        buf_printf(err, "%s: no project (*.json) found", dir);
        rc = ERR_INVAL;
    }
    if (rc) {
        projects_free(ps);
        return rc;
    }
    qsort(ps->items, (size_t)ps->n, sizeof ps->items[0], by_name);
    *out = ps;
    return 0;
}

void projects_free(projects_t *ps) {
    if (!ps)
        return;
    for (int i = 0; i < ps->n; i++)
        json_decref(ps->items[i].json);
    free(ps);
}

const project_t *projects_find(const projects_t *ps, const char *name) {
    for (int i = 0; ps && name && i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            return &ps->items[i];
    return NULL;
}

int projects_count(const projects_t *ps) { return ps ? ps->n : 0; }

void project_scaled_size(const project_t *p, double scale, int *w, int *h) {
    int sw = (int)lround(p->width * scale), sh = (int)lround(p->height * scale);
    sw -= sw % 2;
    sh -= sh % 2;
    *w = sw < 2 ? 2 : sw;
    *h = sh < 2 ? 2 : sh;
}
