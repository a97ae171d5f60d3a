/*
 * project: the project files projects/<name>.json (workflow.md §3), loaded and validated once
 * at start-up (a bad file stops start-up with its path and the reason), then read-only and
 * shared by every thread. Every field is used: video_count and clip_seconds by production,
 * aspect_ratio/resolution/fps by transcode and render, hitl_gates by the gates, overlay by the
 * render, caption_template and tags by publishing, agents by each step's agent.
 */
#ifndef MYLOWARE_WORKFLOW_PROJECT_H
#define MYLOWARE_WORKFLOW_PROJECT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"

enum agent_role { AGENT_IDEATOR, AGENT_PRODUCER, AGENT_EDITOR, AGENT_PUBLISHER, AGENT__COUNT };
extern const char *const agent_role_names[AGENT__COUNT];

struct agent_cfg {
    const char *instructions; /* never empty */
    const char *model;        /* NULL: LLM_MODEL */
};

typedef struct project {
    const char *name, *title, *description;
    int video_count;          /* 1..32 */
    int clip_seconds;         /* 4, 8 or 12 */
    const char *aspect_ratio; /* "9:16", "16:9", "1:1" */
    int width, height, fps;   /* resolution "WxH" of the aspect ratio; fps 1..60 */
    bool gate_ideation, gate_publish;
    const char *overlay_position, *overlay_style;
    const char *caption_template; /* "{topic}" is replaced */
    const json_t *tags;           /* array of 3..8 strings without '#' */
    struct agent_cfg agents[AGENT__COUNT];
    json_t *json; /* the file; the strings above point into it */
} project_t;

typedef struct projects projects_t;

/* Loads every *.json of dir. Returns 0, or ERR_INVAL/ERR_IO with "<path>: <reason>" in err
 * (nothing is kept). A directory without any project is an error. */
int projects_load(const char *dir, projects_t **out, buf_t *err);
/* Validates one parsed file whose file name gives name; pure (for tests). 0 or ERR_INVAL. */
int project_parse(json_t *json, const char *name, project_t *out, buf_t *err);
void projects_free(projects_t *ps);
/* NULL when no project has that name. */
const project_t *projects_find(const projects_t *ps, const char *name);
int projects_count(const projects_t *ps);

/* "9:16" and the project's resolution scaled by RENDER_SCALE (even sizes, at least 2). */
void project_scaled_size(const project_t *p, double scale, int *w, int *h);

#endif
