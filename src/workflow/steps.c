/*
 * steps: the run's steps as job types (workflow.md §2). A loop step reads its run in a unit,
 * does its provider work on the loop (the agent, provider calls), then finishes; its
 * on_complete (database thread, the job's completion transaction) re-reads the run under the
 * row lock and, when the run is still where the step expects it, commits the step's effects
 * and the run's next status and job. A run that moved meanwhile (cancelled, failed) makes the
 * step a no-op. Pool steps (transcode, render) run FFmpeg on a worker and commit the same way.
 *
 *   type            kind  provider/group  expects                         next
 *   run.ideate      loop  llm             pending / running:ideation      gate ideation |
 * run.produce run.produce     loop  llm             running:production awaiting_video_generation
 *   webhook.sora    loop  sora            awaiting_video_generation       clip.transcode (or
 * failed) sora.poll       loop  sora            awaiting_video_generation       webhook.sora per
 * ready video (real provider; no webhook came) clip.transcode  pool  media
 * awaiting_video_generation       the last clip: run.edit run.edit        loop  llm
 * awaiting_render:editing         render.local render.local    pool  media awaiting_render gate
 * publish | run.publish run.publish     loop  llm, publish    running:publishing completed
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "media/jobs.h"
#include "media/media.h"
#include "providers/providers.h"
#include "queue/dispatcher.h"
#include "storage/storage.h"
#include "workflow/agent.h"
#include "workflow/engine.h"
#include "workflow/safety.h"

/* ---- the step state ----------------------------------------------------------------------------
 */

struct step {
    struct job_ctx *ctx;
    workflow_t *w;
    app_t *app;
    json_t *payload;
    run_t run;
    bool have_run, stale;
    const project_t *proj;
    json_t *art; /* the run's artifacts view as read */
    agent_t *agent;
    char *fail;  /* the run fails with this message */
    json_t *res; /* what on_complete commits (per step) */
    int pending; /* provider calls in flight inside a tool */
    bool tool_failed;
    enum prov_outcome call_outcome;
    int call_retry_after;
    char *call_error;
};

static struct step *step_of(struct job_ctx *ctx) {
    if (!ctx->data) {
        struct step *s = xcalloc(1, sizeof *s);
        s->ctx = ctx;
        s->app = ctx->app;
        s->w = s->app->workflow;
        s->payload = json_loads(ctx->job.payload ? ctx->job.payload : "{}", 0, NULL);
        if (!json_is_object(s->payload)) {
            json_decref(s->payload);
            s->payload = json_object();
        }
        s->res = json_object();
        ctx->data = s;
    }
    return ctx->data;
}

static void step_release(struct job_ctx *ctx) {
    struct step *s = ctx->data;
    if (!s)
        return;
    agent_free(s->agent);
    if (s->have_run)
        run_release(&s->run);
    json_decref(s->art);
    json_decref(s->payload);
    json_decref(s->res);
    free(s->fail);
    free(s->call_error);
    free(s);
    ctx->data = NULL;
}

static const char *pstr(const struct step *s, const char *key) {
    return json_string_value(json_object_get(s->payload, key));
}

static int pint(const struct step *s, const char *key, int def) {
    json_t *v = json_object_get(s->payload, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static void step_fail(struct step *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step_fail(struct step *s, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(s->fail);
    s->fail = xstrdup(msg);
}

/* The agent or a provider call ended: the job's outcome. PROV_PERMANENT fails the run. */
static void finish_with(struct step *s, enum prov_outcome o, int retry_after, const char *error) {
    if (o == PROV_RETRY || o == PROV_CANCELLED) {
        job_set_error(s->ctx, JO_RETRY, "%s", error && *error ? error : "provider unavailable");
        s->ctx->retry_after_s = retry_after > 0 ? retry_after : 0;
    } else if (o == PROV_PERMANENT) {
        step_fail(s, "%s", error && *error ? error : "provider error");
    }
    job_finish(s->ctx);
}

/* ---- reading the run before a loop step
 * ---------------------------------------------------------- */

typedef void (*step_start_fn)(struct step *s);

struct load {
    struct step *s;
    step_start_fn start;
    enum run_status want;
    enum run_step want_step; /* RSTEP__COUNT: any */
    bool mark_running;       /* run.ideate: pending -> running/ideation */
};

static int load_unit(store_tx_t *tx, void *arg) {
    struct load *l = arg;
    struct step *s = l->s;
    const char *run_id = s->ctx->job.run_id;
    struct rtx x;
    int rc = rtx_load(tx, run_id, &x);
    if (rc == ERR_NOTFOUND) {
        s->stale = true;
        return 0;
    }
    if (rc)
        return rc;
    bool ok = x.status == l->want && (l->want_step == RSTEP__COUNT || x.step == l->want_step);
    if (l->mark_running && x.status == RS_PENDING) {
        rtx_move(&x, RS_RUNNING, RSTEP_IDEATION);
        rc = rtx_save(&x, "Ideation started");
        ok = rc == 0;
    } else if (l->mark_running && x.status == RS_RUNNING && x.step == RSTEP_IDEATION) {
        ok = true; /* a retry of the step */
    }
    if (rc == 0 && ok) {
        s->run = x.r;
        x.loaded = false;
        s->have_run = true;
        s->art = json_incref(x.art);
    } else {
        s->stale = true;
    }
    rtx_release(&x);
    return rc;
}

static void load_done(void *arg, int rc) {
    struct load *l = arg;
    struct step *s = l->s;
    step_start_fn start = l->start;
    free(l);
    if (rc) {
        job_set_error(s->ctx, JO_RETRY, "cannot read the run (%s)", err_name(rc));
        job_finish(s->ctx);
        return;
    }
    if (s->stale) {
        log_info("workflow", "step skipped: the run is not waiting for it",
                 LF_S("run_id", s->ctx->job.run_id), LF_S("type", s->ctx->type->name));
        job_finish(s->ctx);
        return;
    }
    s->proj = workflow_project(s->w, s->run.workflow);
    if (!s->proj) {
        step_fail(s, "Project not found: %s", s->run.workflow);
        job_finish(s->ctx);
        return;
    }
    start(s);
}

static void load_then(struct job_ctx *ctx, enum run_status want, enum run_step want_step,
                      bool mark_running, step_start_fn start) {
    struct step *s = step_of(ctx);
    struct load *l = xcalloc(1, sizeof *l);
    *l = (struct load){s, start, want, want_step, mark_running};
    store_submit(s->app->store, load_unit, l, load_done);
}

/* on_complete's common head: the run, still where the step left it? 1: go on; 0: no-op. */
static int complete_head(store_tx_t *tx, struct job_ctx *ctx, struct rtx *x, enum run_status want,
                         enum run_step want_step) {
    struct step *s = ctx->data;
    if (!s || s->stale)
        return 0;
    int rc = rtx_load(tx, ctx->job.run_id, x);
    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (x->status != want || (want_step != RSTEP__COUNT && x->step != want_step)) {
        rtx_release(x);
        return 0;
    }
    return 1;
}

/* Fails the run with the step's message (a permanent error): 0 or an ERR_*. */
static int complete_fail(struct rtx *x, struct step *s) {
    rtx_fail(x, s->fail, s->ctx->type->name);
    log_warn("workflow", "step failed", LF_S("run_id", x->r.id), LF_S("type", s->ctx->type->name),
             LF_S("error", s->fail));
    int rc = rtx_save(x, s->fail);
    rtx_release(x);
    return rc;
}

/* on_complete's common tail: saves the run unless rc is already an error, releases it: 0 or an
 * ERR_*. */
static int save_release(struct rtx *x, int rc) {
    if (rc == 0)
        rc = rtx_save(x, NULL);
    rtx_release(x);
    return rc;
}

static char *transcript_text(struct step *s) {
    if (!s->agent)
        return xstrdup("[]");
    char *t = json_dumps(agent_transcript(s->agent), JSON_COMPACT);
    return t ? t : xstrdup("[]");
}

/* "<instructions>\n\n```json\n<facts>\n```" */
static char *with_facts(const char *text, json_t *facts) {
    char *f = json_dumps(facts, JSON_INDENT(1));
    buf_t b;
    buf_init(&b, 1 << 22);
    buf_printf(&b, "%s\n\n```json\n%s\n```", text, f ? f : "{}");
    free(f);
    json_decref(facts);
    return buf_steal(&b, NULL);
}

/* What every agent is told about its project (workflow.md §3: every field is used). */
static json_t *project_facts(const project_t *p) {
    char res[32];
    snprintf(res, sizeof res, "%dx%d", p->width, p->height);
    return json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:i,s:{s:s,s:s},s:s,s:O}", "project", p->name,
                     "title", p->title, "description", p->description ? p->description : "",
                     "video_count", p->video_count, "clip_seconds", p->clip_seconds, "aspect_ratio",
                     p->aspect_ratio, "resolution", res, "fps", p->fps, "overlay", "position",
                     p->overlay_position, "style", p->overlay_style, "caption_template",
                     p->caption_template, "tags", p->tags);
}

static void start_agent(struct step *s, enum agent_role role, char *system, char *user,
                        const struct tool_def *tools, int ntools, agent_tool_fn tool,
                        agent_done_fn done) {
    struct agent_opts o = {
        .loop = &s->app->loop,
        .providers = s->app->providers,
        .model = s->proj->agents[role].model,
        .system = system,
        .user = user,
        .tools = tools,
        .ntools = ntools,
        .max_turns = (int)config_int(s->app->cfg, S_AGENT_MAX_TURNS),
        .tool = tool,
        .done = done,
        .ud = s,
    };
    s->agent = agent_start(&o);
    free(system);
    free(user);
    if (!s->agent) {
        job_set_error(s->ctx, JO_RETRY, "the agent could not start (providers not ready)");
        job_finish(s->ctx);
    }
}

/* ---- moderation of agent outputs (SAFETY_PROVIDER=openai)
 * ------------------------------------------ */

/* A tool-using agent's end: its error, or the step fails unless it ran its tool at least once. */
static void tool_agent_done(struct step *s, agent_t *a, const char *who, const char *tool) {
    if (agent_outcome(a) != PROV_OK) {
        finish_with(s, agent_outcome(a), agent_retry_after(a), agent_error(a));
        return;
    }
    if (agent_tool_runs(a, tool) == 0)
        step_fail(s, "%s did not execute %s tool.", who, tool);
    job_finish(s->ctx);
}

static void output_moderated(const struct safety_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome != PROV_OK) { /* fail-closed: the step waits for the moderation to answer */
        finish_with(s, PROV_RETRY, r->st.retry_after_s,
                    r->st.error && *r->st.error ? r->st.error : "safety check unavailable");
        return;
    }
    if (r->flagged)
        step_fail(s, "Safety check failed at %s: moderation:%s",
                  json_string_value(json_object_get(s->res, "_at")),
                  r->category ? r->category : "flagged");
    job_finish(s->ctx);
}

static void moderate_then_finish(struct step *s, const char *text, const char *at) {
    if (!s->app->providers || !providers_safety_enabled(s->app->providers) || !text) {
        job_finish(s->ctx);
        return;
    }
    json_object_set_new(s->res, "_at", json_string(at));
    if (provider_safety_check(s->app->providers, text, output_moderated, s, NULL) != 0)
        finish_with(s, PROV_RETRY, -1, "safety check unavailable");
}

/* ---- ideation
 * ------------------------------------------------------------------------------------- */

/* The first ```json fenced block of text (or the whole text) as a JSON object. */
static json_t *json_block(const char *text) {
    if (!text)
        return NULL;
    const char *p = strstr(text, "```json");
    if (p) {
        p += 7;
        const char *e = strstr(p, "```");
        if (!e)
            return NULL;
        json_t *j = json_loadb(p, (size_t)(e - p), 0, NULL);
        if (json_is_object(j))
            return j;
        json_decref(j);
        return NULL;
    }
    json_t *j = json_loads(text, 0, NULL);
    if (json_is_object(j))
        return j;
    json_decref(j);
    return NULL;
}

static void ideate_done(agent_t *a, void *ud) {
    struct step *s = ud;
    if (agent_outcome(a) != PROV_OK) {
        finish_with(s, agent_outcome(a), agent_retry_after(a), agent_error(a));
        return;
    }
    const char *content = agent_content(a);
    json_t *block = json_block(content);
    json_t *ideas = json_object_get(block, "ideas");
    const char *topic = json_string_value(json_object_get(block, "topic"));
    bool ok = block && topic && json_is_array(ideas) &&
              (int)json_array_size(ideas) == s->proj->video_count;
    size_t i;
    json_t *idea;
    json_array_foreach(ideas, i, idea) ok = ok && json_is_object(idea) &&
                                            json_is_string(json_object_get(idea, "title")) &&
                                            json_is_string(json_object_get(idea, "visual"));
    char entry[128];
    if (!ok) {
        step_fail(
            s, "Ideator output has no valid ideas block (%d ideas with title and visual expected)",
            s->proj->video_count);
    } else if (safety_blocked(config_str(s->app->cfg, S_SAFETY_BLOCKLIST), content, entry,
                              sizeof entry)) {
        step_fail(s, "Safety check failed at ideation: matched_keyword:%s", entry);
    } else {
        json_t *overlays = json_array();
        json_array_foreach(ideas, i, idea) {
            const char *ov = json_string_value(json_object_get(idea, "overlay"));
            json_array_append_new(
                overlays,
                json_pack("{s:O,s:i,s:i,s:s,s:O?}", "identifier", json_object_get(idea, "title"),
                          "start_s", (int)i * s->proj->clip_seconds, "end_s",
                          (int)(i + 1) * s->proj->clip_seconds, "text",
                          ov ? ov : json_string_value(json_object_get(idea, "title")), "voice_over",
                          json_object_get(idea, "voice_over")));
        }
        json_object_set_new(s->res, "ideas", json_string(content));
        json_object_set_new(s->res, "ideas_structured", json_incref(block));
        json_object_set_new(s->res, "overlays", overlays);
        json_decref(block);
        moderate_then_finish(s, content, "ideation");
        return;
    }
    json_decref(block);
    job_finish(s->ctx);
}

static void ideate_start(struct step *s) {
    char user[12000];
    snprintf(user, sizeof user, "Brief:\n%s", s->run.brief);
    start_agent(s, AGENT_IDEATOR,
                with_facts(s->proj->agents[AGENT_IDEATOR].instructions, project_facts(s->proj)),
                xstrdup(user), NULL, 0, NULL, ideate_done);
}

static void ideate_run(struct job_ctx *ctx) {
    load_then(ctx, RS_RUNNING, RSTEP_IDEATION, true, ideate_start);
}

static int ideate_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_RUNNING, RSTEP_IDEATION);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    json_t *res = s->res;
    char *structured = json_dumps(json_object_get(res, "ideas_structured"), JSON_COMPACT);
    char *overlays = json_dumps(json_object_get(res, "overlays"), JSON_COMPACT);
    int rc = rtx_artifact(&x, "ideas", "ideator", json_string_value(json_object_get(res, "ideas")),
                          NULL, NULL, NULL, NULL);
    if (rc == 0)
        rc = rtx_artifact(&x, "ideas_structured", "ideator", structured, NULL,
                          json_pack("{s:s}", "type", "ideas_structured"), NULL, NULL);
    if (rc == 0)
        rc = rtx_artifact(&x, "overlays", "ideator", overlays, NULL, NULL, NULL, NULL);
    free(structured);
    free(overlays);
    json_object_set(x.art, "ideas", json_object_get(res, "ideas"));
    json_object_set(x.art, "ideas_structured", json_object_get(res, "ideas_structured"));
    json_object_set(x.art, "overlays", json_object_get(res, "overlays"));
    const project_t *p = rtx_project(&x);
    if (rc == 0 && (!p || p->gate_ideation)) {
        rtx_move(&x, RS_AWAIT_IDEATION, RSTEP_IDEATION);
    } else if (rc == 0) {
        rc = rtx_audit(&x, "system", "gate.auto_approved", json_pack("{s:s}", "gate", "ideation"));
        json_object_set_new(x.ctx, "ideas_approved", json_true());
        rtx_move(&x, RS_RUNNING, RSTEP_PRODUCTION);
        if (rc == 0)
            rc = rtx_enqueue(&x, "run.produce", NULL, NULL);
    }
    return save_release(&x, rc);
}

/* ---- sora.poll: clips whose webhook never came (a real video provider)
 * ------------------------------ */

/* With a real video provider and SORA_POLL_MS > 0: a sora.poll job for tasks
 * ([{task_id, video_index}]), SORA_POLL_MS from now (the fakes deliver their webhooks, and the
 * clips the webhooks bring are not polled for). tag makes the key unique per submission. */
static int schedule_sora_poll(struct rtx *x, json_t *tasks, const char *tag) {
    int64_t every = config_int(wf_global->cfg, S_SORA_POLL_MS);
    app_t *app = wf_global->app;
    if (every <= 0 || json_array_size(tasks) == 0 || !app->providers ||
        providers_is_fake(app->providers, PK_SORA))
        return 0;
    char key[160];
    snprintf(key, sizeof key, "sora_poll:%s:%s", x->r.id, tag);
    return rtx_enqueue_at(x, "sora.poll", json_pack("{s:O,s:i}", "tasks", tasks, "round", 1), key,
                          clock_now_ms() + every, NULL);
}

/* ---- production
 * ----------------------------------------------------------------------------------- */

static const struct tool_def sora_tool = {
    "sora_generate",
    "Submit one video generation request per idea. Call once with every video.",
    "{\"type\":\"object\",\"required\":[\"videos\"],\"properties\":{\"videos\":{\"type\":\"array\","
    "\"minItems\":1,"
    "\"maxItems\":32,\"items\":{\"type\":\"object\",\"required\":[\"video_index\",\"visual_"
    "prompt\"],\"properties\":{"
    "\"video_index\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":31},"
    "\"visual_prompt\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":4000},"
    "\"voice_over\":{\"type\":\"string\",\"maxLength\":1000}}}}}}",
};

static const char *sora_size(const project_t *p) {
    return strcmp(p->aspect_ratio, "16:9") == 0 ? "1280x720" : "720x1280";
}

struct submit {
    struct step *s;
    agent_t *a;
    int index;
};

static void sora_tool_result(struct step *s, agent_t *a) {
    if (s->call_outcome != PROV_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "Failed to submit video generation jobs: %s",
                 s->call_error ? s->call_error : "");
        agent_abort(a, s->call_outcome, s->call_retry_after, msg);
        return;
    }
    json_t *ids = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s->res, "tasks"), i, t)
        json_array_append(ids, json_object_get(t, "task_id"));
    agent_tool_done(a, json_pack("{s:b,s:o,s:s,s:i,s:s}", "success", 1, "task_ids", ids, "status",
                                 "submitted", "task_count", (int)i, "run_id", s->run.id));
}

static void sora_created(const struct sora_result *r, void *ud) {
    struct submit *sub = ud;
    struct step *s = sub->s;
    if (r->st.outcome == PROV_OK) {
        json_array_append_new(
            json_object_get(s->res, "tasks"),
            json_pack("{s:s,s:i}", "task_id", r->video.id, "video_index", sub->index));
    } else if (s->call_outcome == PROV_OK || r->st.outcome == PROV_PERMANENT) {
        s->call_outcome = r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome;
        s->call_retry_after = r->st.retry_after_s;
        free(s->call_error);
        s->call_error = xstrdup(r->st.error ? r->st.error : "");
    }
    agent_t *a = sub->a;
    free(sub);
    if (--s->pending == 0)
        sora_tool_result(s, a);
}

static void produce_tool(agent_t *a, const struct tool_def *t, json_t *args, void *ud) {
    struct step *s = ud;
    json_t *videos = json_object_get(args, "videos");
    int n = (int)json_array_size(videos);
    bool seen[32] = {false}, ok = n == s->proj->video_count;
    size_t i;
    json_t *v;
    json_array_foreach(videos, i, v) {
        int k = (int)json_integer_value(json_object_get(v, "video_index"));
        ok = ok && k >= 0 && k < n && !seen[k];
        if (k >= 0 && k < 32)
            seen[k] = true;
    }
    if (!ok) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "invalid arguments: expected %d videos with video_index 0..%d, each once",
                 s->proj->video_count, s->proj->video_count - 1);
        agent_tool_done(a, json_pack("{s:s}", "error", msg));
        return;
    }
    json_object_set_new(s->res, "tasks", json_array());
    json_object_set(s->res, "videos", videos);
    s->call_outcome = PROV_OK;
    s->pending = n;
    json_array_foreach(videos, i, v) {
        const char *prompt = json_string_value(json_object_get(v, "visual_prompt"));
        const char *vo = json_string_value(json_object_get(v, "voice_over"));
        int k = (int)json_integer_value(json_object_get(v, "video_index"));
        char *full = NULL;
        if (vo && *vo) {
            size_t len = strlen(prompt) + strlen(vo) + 64;
            full = xmalloc(len);
            snprintf(full, len, "%s\n\nVoice over narration: \"%s\"", prompt, vo);
        }
        char key[80];
        snprintf(key, sizeof key, "%s:%d", s->run.id, k);
        struct sora_create_req req = {.prompt = full ? full : prompt,
                                      .seconds = s->proj->clip_seconds,
                                      .size = sora_size(s->proj),
                                      .idempotency_key = key,
                                      .video_index = k};
        struct submit *sub = xcalloc(1, sizeof *sub);
        *sub = (struct submit){s, a, k};
        if (provider_sora_create(s->app->providers, &req, sora_created, sub, NULL) != 0) {
            free(sub);
            s->call_outcome = PROV_PERMANENT;
            free(s->call_error);
            s->call_error = xstrdup("the video request could not be made");
            s->pending--;
        }
        free(full);
    }
    if (s->pending == 0)
        sora_tool_result(s, a);
}

static void produce_done(agent_t *a, void *ud) {
    tool_agent_done(ud, a, "Producer", "sora_generate");
}

static void produce_start(struct step *s) {
    json_t *structured = json_object_get(s->art, "ideas_structured");
    json_t *facts = project_facts(s->proj);
    json_object_set(facts, "topic", json_object_get(structured, "topic"));
    json_object_set(facts, "ideas", json_object_get(structured, "ideas"));
    char *ideas = json_dumps(structured ? structured : json_object(), JSON_INDENT(1));
    char user[1 << 16];
    snprintf(user, sizeof user, "Produce one video per approved idea:\n\n```json\n%s\n```",
             ideas ? ideas : "{}");
    free(ideas);
    start_agent(s, AGENT_PRODUCER, with_facts(s->proj->agents[AGENT_PRODUCER].instructions, facts),
                xstrdup(user), &sora_tool, 1, produce_tool, produce_done);
}

static void produce_run(struct job_ctx *ctx) {
    load_then(ctx, RS_RUNNING, RSTEP_PRODUCTION, false, produce_start);
}

static int produce_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_RUNNING, RSTEP_PRODUCTION);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    const project_t *p = rtx_project(&x);
    json_t *tasks = json_object_get(s->res, "tasks");
    json_t *manifest = json_object(), *pending = json_array();
    char seconds[8];
    snprintf(seconds, sizeof seconds, "%d", p ? p->clip_seconds : 8);
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        const char *id = json_string_value(json_object_get(t, "task_id"));
        int k = (int)json_integer_value(json_object_get(t, "video_index"));
        json_object_set_new(manifest, id,
                            json_pack("{s:i,s:s,s:s}", "video_index", k, "size",
                                      p ? sora_size(p) : "720x1280", "seconds", seconds));
        json_array_append_new(pending, json_string(id));
    }
    int rc = rtx_register_tasks(&x, tasks);
    json_object_set(x.ctx, "videos", json_object_get(s->res, "videos"));
    char *transcript = transcript_text(s);
    char *man = json_dumps(manifest, JSON_COMPACT);
    if (rc == 0)
        rc = rtx_artifact(&x, "producer_output", "producer", transcript, NULL,
                          json_pack("{s:i}", "turns", agent_turns(s->agent)), NULL, NULL);
    if (rc == 0)
        rc = rtx_artifact(
            &x, "clip_manifest", "producer", man, NULL,
            json_pack("{s:s,s:i}", "type", "task_metadata_mapping", "task_count", (int)i), NULL,
            NULL);
    free(transcript);
    free(man);
    json_decref(manifest);
    json_object_set_new(x.art, "pending_task_ids", pending);
    json_object_set_new(
        x.art, "sora_progress",
        json_pack("{s:i,s:i,s:i}", "expected", (int)i, "ready", 0, "progress_percent", 0));
    x.r.clips_expected = (int)i;
    x.r.clips_ready = 0;
    if (rc == 0)
        rc = schedule_sora_poll(&x, tasks, "produce");
    rtx_move(&x, RS_AWAIT_VIDEOS, RSTEP_WAIT_VIDEOS);
    return save_release(&x, rc);
}

/* ---- resubmitting missing clips (resume "videos")
 * ------------------------------------------------- */

struct resub {
    struct step *s;
    int index;
};

static void resub_created(const struct sora_result *r, void *ud) {
    struct resub *rs = ud;
    struct step *s = rs->s;
    if (r->st.outcome == PROV_OK) {
        json_array_append_new(
            json_object_get(s->res, "tasks"),
            json_pack("{s:s,s:i}", "task_id", r->video.id, "video_index", rs->index));
    } else if (s->call_outcome == PROV_OK || r->st.outcome == PROV_PERMANENT) {
        s->call_outcome = r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome;
        s->call_retry_after = r->st.retry_after_s;
        free(s->call_error);
        s->call_error = xstrdup(r->st.error ? r->st.error : "");
    }
    free(rs);
    if (--s->pending == 0) {
        if (s->call_outcome == PROV_OK)
            job_finish(s->ctx);
        else {
            char msg[1200];
            snprintf(msg, sizeof msg, "Failed to submit video generation jobs: %s",
                     s->call_error ? s->call_error : "");
            finish_with(s, s->call_outcome, s->call_retry_after, msg);
        }
    }
}

static void resubmit_start(struct step *s) {
    json_t *ctxj = json_loads(s->run.context ? s->run.context : "{}", 0, NULL);
    json_t *videos = json_object_get(ctxj, "videos"),
           *indexes = json_object_get(s->payload, "indexes");
    json_object_set_new(s->res, "tasks", json_array());
    s->call_outcome = PROV_OK;
    s->pending = 1; /* held until every request is made */
    size_t i, k;
    json_t *ix, *v;
    json_array_foreach(indexes, i, ix) {
        int want = (int)json_integer_value(ix);
        json_array_foreach(videos, k, v) {
            if (json_integer_value(json_object_get(v, "video_index")) != want)
                continue;
            char key[100];
            snprintf(key, sizeof key, "%s:%d:%s", s->run.id, want, s->ctx->job.id);
            struct sora_create_req req = {
                .prompt = json_string_value(json_object_get(v, "visual_prompt")),
                .seconds = s->proj->clip_seconds,
                .size = sora_size(s->proj),
                .idempotency_key = key,
                .video_index = want};
            struct resub *rs = xcalloc(1, sizeof *rs);
            *rs = (struct resub){s, want};
            s->pending++;
            if (!req.prompt ||
                provider_sora_create(s->app->providers, &req, resub_created, rs, NULL) != 0) {
                free(rs);
                s->pending--;
                s->call_outcome = PROV_PERMANENT;
                free(s->call_error);
                s->call_error = xstrdup("the video request could not be made");
            }
        }
    }
    json_decref(ctxj);
    if (--s->pending == 0) { /* nothing was asked, or every call failed at once */
        if (s->call_outcome == PROV_OK)
            job_finish(s->ctx);
        else
            finish_with(s, s->call_outcome, -1, s->call_error);
    }
}

static void resubmit_run(struct job_ctx *ctx) {
    load_then(ctx, RS_AWAIT_VIDEOS, RSTEP__COUNT, false, resubmit_start);
}

static int resubmit_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_VIDEOS, RSTEP__COUNT);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    json_t *tasks = json_object_get(s->res, "tasks");
    json_t *pending = json_object_get(x.art, "pending_task_ids");
    if (!json_is_array(pending)) {
        pending = json_array();
        json_object_set_new(x.art, "pending_task_ids", pending);
    }
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) json_array_append(pending, json_object_get(t, "task_id"));
    int rc = rtx_register_tasks(&x, tasks);
    if (rc == 0)
        rc = schedule_sora_poll(&x, tasks, s->ctx->job.id);
    return save_release(&x, rc);
}

/* The video index has its clip in the run's artifacts view. */
static bool clip_ready(json_t *art, int index) {
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(art, "clips"), i,
                       c) if (json_integer_value(json_object_get(c, "video_index")) ==
                              index) return true;
    return false;
}

struct poll_one {
    struct step *s;
    int index;
    char task[128];
};

/* Every status answered: the poll's outcome. A failed video fails the run; completed ones are
 * fetched like a webhook's (webhook.sora, in on_complete); still processing: look again later
 * without using an attempt. A status that could not be read counts as still processing. */
static void sora_poll_finish(struct step *s) {
    int64_t every = config_int(s->app->cfg, S_SORA_POLL_MS);
    if (every <= 0)
        every = 30000;
    size_t done = json_array_size(json_object_get(s->res, "completed"));
    int waiting = (int)json_integer_value(json_object_get(s->res, "waiting"));
    if (!s->fail && done == 0 && waiting > 0) {
        s->ctx->outcome = JO_RESCHEDULE;
        s->ctx->reschedule_at = clock_now_ms() + every;
    }
    job_finish(s->ctx);
}

static void sora_polled(const struct sora_result *r, void *ud) {
    struct poll_one *p = ud;
    struct step *s = p->s;
    const char *st = r->st.outcome == PROV_OK ? r->video.status : NULL;
    if (st && strcmp(st, "completed") == 0) {
        json_array_append_new(json_object_get(s->res, "completed"),
                              json_pack("{s:s,s:i}", "task_id", p->task, "video_index", p->index));
    } else if (st && strcmp(st, "failed") == 0) {
        if (!s->fail)
            step_fail(s, "OpenAI Sora error: %s",
                      r->video.error && *r->video.error ? r->video.error : "video.failed");
    } else if (r->st.outcome == PROV_PERMANENT && r->st.http_status == 404) {
        if (!s->fail)
            step_fail(s, "OpenAI Sora error: video %s not found", p->task);
    } else {
        if (r->st.outcome != PROV_OK)
            log_info("workflow", "video status poll failed, will look again",
                     LF_S("run_id", s->run.id), LF_S("task_id", p->task),
                     LF_S("error", r->st.error));
        json_object_set_new(
            s->res, "waiting",
            json_integer(json_integer_value(json_object_get(s->res, "waiting")) + 1));
    }
    free(p);
    if (--s->pending == 0)
        sora_poll_finish(s);
}

static void sora_poll_start(struct step *s) {
    json_object_set_new(s->res, "completed", json_array());
    json_object_set_new(s->res, "waiting", json_integer(0));
    s->pending = 1; /* held until every request is made */
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s->payload, "tasks"), i, t) {
        const char *id = json_string_value(json_object_get(t, "task_id"));
        int index = (int)json_integer_value(json_object_get(t, "video_index"));
        if (!id || strlen(id) >= sizeof((struct poll_one *)0)->task || clip_ready(s->art, index))
            continue;
        struct poll_one *p = xcalloc(1, sizeof *p);
        p->s = s;
        p->index = index;
        snprintf(p->task, sizeof p->task, "%s", id);
        s->pending++;
        if (provider_sora_status(s->app->providers, id, sora_polled, p, NULL) != 0) {
            free(p);
            s->pending--;
            json_object_set_new(
                s->res, "waiting",
                json_integer(json_integer_value(json_object_get(s->res, "waiting")) + 1));
        }
    }
    if (--s->pending == 0)
        sora_poll_finish(s);
}

static void sora_poll_run(struct job_ctx *ctx) {
    load_then(ctx, RS_AWAIT_VIDEOS, RSTEP__COUNT, false, sora_poll_start);
}

/* Completed videos: a webhook.sora job each (the same download and transcode as a delivery);
 * clips still missing: the next poll. */
static int sora_poll_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_VIDEOS, RSTEP__COUNT);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    int rc = 0;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s->res, "completed"), i, t) {
        char key[200];
        snprintf(key, sizeof key, "sora_poll:%s", json_string_value(json_object_get(t, "task_id")));
        if (rc == 0)
            rc = rtx_enqueue(&x, "webhook.sora",
                             json_pack("{s:O,s:O,s:s}", "task_id", json_object_get(t, "task_id"),
                                       "video_index", json_object_get(t, "video_index"), "source",
                                       "sora_poll"),
                             key);
        if (rc == 0)
            log_info("workflow", "video found by polling", LF_S("run_id", x.r.id),
                     LF_S("task_id", json_string_value(json_object_get(t, "task_id"))));
    }
    if (rc == 0 && json_integer_value(json_object_get(s->res, "waiting")) > 0) {
        int64_t every = config_int(wf_global->cfg, S_SORA_POLL_MS);
        int round = pint(s, "round", 1) + 1;
        char key[160];
        snprintf(key, sizeof key, "sora_poll:%s:%s:%d", x.r.id, ctx->job.id, round);
        rc = rtx_enqueue_at(
            &x, "sora.poll",
            json_pack("{s:O,s:i}", "tasks", json_object_get(s->payload, "tasks"), "round", round),
            key, clock_now_ms() + (every > 0 ? every : 30000), NULL);
    }
    rtx_release(&x);
    return rc;
}

/* ---- a clip: download (webhook.sora)
 * ------------------------------------------------------------------ */

static void clip_downloaded(const struct download_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome == PROV_OK) {
        json_object_set_new(s->res, "input", json_string(r->path));
        job_finish(s->ctx);
        return;
    }
    if (r->st.outcome == PROV_PERMANENT && r->st.http_status == 409) {
        /* "not completed yet": a delivery that came before the video was ready; try again */
        finish_with(s, PROV_RETRY, 1, r->st.error);
        return;
    }
    if (r->st.outcome == PROV_PERMANENT) {
        step_fail(s, "OpenAI video download failed: %s", r->st.error ? r->st.error : "");
        job_finish(s->ctx);
        return;
    }
    finish_with(s, PROV_RETRY, r->st.retry_after_s, r->st.error);
}

static void sora_webhook_run(struct job_ctx *ctx) {
    struct step *s = step_of(ctx);
    const char *task = pstr(s, "task_id");
    if (json_is_true(json_object_get(s->payload, "failed"))) {
        step_fail(s, "OpenAI Sora error: video.failed");
        job_finish(ctx);
        return;
    }
    if (!task || !*task || strlen(task) > 120) {
        job_set_error(ctx, JO_PERMANENT, "webhook.sora: the payload has no task_id");
        job_finish(ctx);
        return;
    }
    char path[4200], rnd[9];
    uint8_t b[4];
    crypto_random(b, sizeof b);
    crypto_hex(b, sizeof b, rnd);
    snprintf(path, sizeof path, "%s/dl-%s-%d-%s.mp4", s->w->tmp_dir, ctx->job.run_id,
             pint(s, "video_index", 0), rnd);
    const char *url = pstr(s, "result_url"); /* legacy envelopes name the file */
    int rc =
        url ? provider_download_url(s->app->providers, PK_SORA, url, path, clip_downloaded, s, NULL)
            : provider_sora_download(s->app->providers, task, path, clip_downloaded, s, NULL);
    if (rc != 0 && url) {
        step_fail(s, "OpenAI video download failed: the result URL was refused");
        job_finish(ctx);
    } else if (rc != 0) {
        job_set_error(ctx, JO_PERMANENT, "webhook.sora: the download could not be made");
        job_finish(ctx);
    }
}

static int sora_webhook_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    struct step *s = ctx->data;
    const char *input = s ? json_string_value(json_object_get(s->res, "input")) : NULL;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_VIDEOS, RSTEP__COUNT);
    if (h <= 0) {
        if (h == 0 && input)
            unlink(input); /* the run moved on: the download is not needed */
        return h;
    }
    if (s->fail)
        return complete_fail(&x, s);
    const project_t *p = rtx_project(&x);
    int w = 360, hh = 640;
    if (p)
        media_scaled_size(p->width, p->height, config_num(wf_global->cfg, S_RENDER_SCALE), &w, &hh);
    char key[100];
    snprintf(key, sizeof key, "clip:%s:%d", x.r.id, pint(s, "video_index", 0));
    bool existed = false;
    int rc = rtx_enqueue_at(&x, "clip.transcode",
                            json_pack("{s:s,s:s,s:i,s:i,s:i,s:i}", "task_id", pstr(s, "task_id"),
                                      "input", input, "video_index", pint(s, "video_index", 0),
                                      "width", w, "height", hh, "fps", p ? p->fps : 30),
                            key, 0, &existed);
    if (rc == 0 && existed && input)
        unlink(input); /* the same clip is already being transcoded (a webhook and a poll both found
                          it) */
    rtx_release(&x);
    return rc;
}

/* ---- a clip: transcode (pool)
 * ------------------------------------------------------------------------ */

struct pool_res {
    json_t *payload;
    char clip_key[200], thumb_key[200];
    char *fail; /* the run fails with this */
    bool done;
};

static void pool_release(struct job_ctx *ctx) {
    struct pool_res *r = ctx->data;
    if (!r)
        return;
    json_decref(r->payload);
    free(r->fail);
    free(r);
    ctx->data = NULL;
}

/* A pool step's on_complete head: the run, still in want? 1: go on (r is the step's result); 0 or
 * an ERR_*: return that (nothing to do, or the run failed with the step's message). */
static int pool_head(store_tx_t *tx, struct job_ctx *ctx, struct rtx *x, enum run_status want) {
    struct pool_res *r = ctx->data;
    if (!r)
        return 0;
    int rc = rtx_load(tx, ctx->job.run_id, x);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    if (x->status != want) {
        rtx_release(x);
        return 0;
    }
    if (r->fail) {
        rtx_fail(x, r->fail, ctx->type->name);
        rc = rtx_save(x, r->fail);
        rtx_release(x);
        return rc;
    }
    return 1;
}

static int progress_cb(double done, void *ud) {
    struct job_ctx *ctx = ud;
    ctx->progress = done;
    return 0;
}

/* Worker thread. */
static void transcode_run(struct job_ctx *ctx) {
    app_t *app = ctx->app;
    struct pool_res *r = xcalloc(1, sizeof *r);
    ctx->data = r;
    r->payload = json_loads(ctx->job.payload ? ctx->job.payload : "{}", 0, NULL);
    const char *input = json_string_value(json_object_get(r->payload, "input"));
    int index = (int)json_integer_value(json_object_get(r->payload, "video_index"));
    if (!input) {
        job_set_error(ctx, JO_PERMANENT, "clip.transcode: the payload has no input");
        return;
    }
    snprintf(r->clip_key, sizeof r->clip_key, "transcoded/clip_%s_%d.mp4", ctx->job.run_id, index);
    snprintf(r->thumb_key, sizeof r->thumb_key, "thumbnails/thumb_%s_%d.jpg", ctx->job.run_id,
             index);
    char out[4200], thumb[4200];
    if (storage_tmp_path(app->storage, "clip.mp4", out, sizeof out) != 0 ||
        storage_tmp_path(app->storage, "thumb.jpg", thumb, sizeof thumb) != 0) {
        job_set_error(ctx, JO_RETRY, "clip.transcode: no temp path in the media directory");
        return;
    }
    struct media_transcode_opts o = {
        .input = input,
        .output = out,
        .thumbnail = thumb,
        .width = (int)json_integer_value(json_object_get(r->payload, "width")),
        .height = (int)json_integer_value(json_object_get(r->payload, "height")),
        .fps = (int)json_integer_value(json_object_get(r->payload, "fps")),
        .preset = config_str(app->cfg, S_TRANSCODE_PRESET),
        .crf = (int)config_int(app->cfg, S_TRANSCODE_CRF),
        .threads = media_jobs_threads(),
        .x264_params = config_str(app->cfg, S_TRANSCODE_X264_PARAMS),
    };
    buf_t err;
    buf_init(&err, 1024);
    int64_t t0 = clock_now_ms();
    int rc = media_transcode(&o, progress_cb, ctx, &err);
    metrics_observe(M_TRANSCODE, "", (double)(clock_now_ms() - t0) / 1000.0);
    if (rc == ERR_MEDIATYPE || rc == ERR_INVAL || rc == ERR_NOTFOUND) {
        char msg[1200];
        snprintf(msg, sizeof msg, "Transcode failed: %s", err.data ? err.data : err_name(rc));
        r->fail = xstrdup(msg);
        unlink(input);
    } else if (rc) {
        job_set_error(ctx, JO_RETRY, "transcode: %s", err.data ? err.data : err_name(rc));
    } else if ((rc = storage_put_file(app->storage, r->clip_key, out, "video/mp4",
                                      STORAGE_PUT_MOVE)) != 0 ||
               (rc = storage_put_file(app->storage, r->thumb_key, thumb, "image/jpeg",
                                      STORAGE_PUT_MOVE)) != 0) {
        job_set_error(ctx, JO_RETRY, "cannot store the clip (%s)", err_name(rc));
    } else {
        r->done = true;
        unlink(input);
    }
    unlink(out);
    unlink(thumb);
    buf_release(&err);
}

static int clip_view_cmp(const void *a, const void *b) {
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return (int)(json_integer_value(json_object_get(x, "video_index")) -
                 json_integer_value(json_object_get(y, "video_index")));
}

static void media_url(const char *key, char *out, size_t cap) {
    if (storage_url(wf_global->app->storage, key, clock_now_ms() / 1000, out, cap) != 0)
        snprintf(out, cap, "%s", key);
}

static int transcode_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int rc = pool_head(tx, ctx, &x, RS_AWAIT_VIDEOS);
    if (rc <= 0)
        return rc;
    struct pool_res *r = ctx->data;
    int index = (int)json_integer_value(json_object_get(r->payload, "video_index"));
    char url[STORAGE_URL_MAX], thumb[STORAGE_URL_MAX], dedupe[32];
    media_url(r->clip_key, url, sizeof url);
    media_url(r->thumb_key, thumb, sizeof thumb);
    snprintf(dedupe, sizeof dedupe, "clip:%d", index);
    bool existed = false;
    rc = rtx_artifact(&x, "video_clip", "producer", NULL, url,
                      json_pack("{s:s?,s:i,s:s,s:s,s:s}", "task_id",
                                json_string_value(json_object_get(r->payload, "task_id")),
                                "video_index", index, "thumbnail_url", thumb, "key", r->clip_key,
                                "source", "sora"),
                      dedupe, &existed);
    if (rc || existed) { /* the same clip again: exactly one counts */
        rtx_release(&x);
        return rc;
    }
    json_t *clips = json_object_get(x.art, "clips");
    if (!json_is_array(clips)) {
        clips = json_array();
        json_object_set_new(x.art, "clips", clips);
    }
    json_array_append_new(clips, json_pack("{s:i,s:s,s:s}", "video_index", index, "url", url,
                                           "thumbnail_url", thumb));
    size_t n = json_array_size(clips);
    json_t **items = xcalloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(clips, i));
    qsort(items, n, sizeof *items, clip_view_cmp);
    json_array_clear(clips);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(clips, items[i]);
    free(items);
    x.r.clips_ready++;
    int expected = x.r.clips_expected;
    json_object_set_new(x.art, "sora_progress",
                        json_pack("{s:i,s:i,s:i}", "expected", expected, "ready", x.r.clips_ready,
                                  "progress_percent",
                                  expected ? x.r.clips_ready * 100 / expected : 100));
    if (x.r.clips_ready >= expected) { /* the last clip: the run moves on exactly once */
        rtx_move(&x, RS_AWAIT_RENDER, RSTEP_EDITING);
        char key[80];
        snprintf(key, sizeof key, "edit:%s", x.r.id);
        rc = rtx_enqueue(&x, "run.edit", NULL, key);
    }
    return save_release(&x, rc);
}

/* ---- editing
 * ------------------------------------------------------------------------------------------ */

static const struct tool_def render_tool = {
    "remotion_render",
    "Render the final video from the clips, in index order, with the overlay texts.",
    "{\"type\":\"object\",\"required\":[\"clips\",\"template\",\"duration_seconds\"],"
    "\"properties\":{"
    "\"clips\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":64,\"items\":{\"type\":\"string\","
    "\"minLength\":1,"
    "\"maxLength\":4096}},"
    "\"template\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64},"
    "\"texts\":{\"type\":\"array\",\"maxItems\":64,\"items\":{\"type\":\"string\",\"maxLength\":"
    "512}},"
    "\"duration_seconds\":{\"type\":\"number\",\"minimum\":0.1,\"maximum\":3600}}}",
};

/* RENDER_PROVIDER=remotion: the render service renders and calls back (webhooks.c). */
static void render_submitted(const struct render_result *r, void *ud) {
    struct step *s = ud;
    agent_t *a = s->agent;
    if (r->st.outcome != PROV_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "Render submission failed: %s", r->st.error ? r->st.error : "");
        agent_abort(a, r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome,
                    r->st.retry_after_s, msg);
        return;
    }
    json_object_set_new(s->res, "render_job_id", json_string(r->job.job_id));
    json_object_set_new(s->res, "remote", json_true());
    agent_tool_done(a, json_pack("{s:b,s:s,s:s}", "success", 1, "render_job_id", r->job.job_id,
                                 "status", r->job.status ? r->job.status : "queued"));
}

static void render_remote(struct step *s, agent_t *a, json_t *args) {
    size_t n = json_array_size(json_object_get(s->art, "clips"));
    const char **clips = xcalloc(n + 1, sizeof *clips);
    for (size_t i = 0; i < n; i++)
        clips[i] = json_string_value(
            json_object_get(json_array_get(json_object_get(s->art, "clips"), i), "url"));
    json_t *texts = json_object_get(s->res, "texts");
    size_t nt = json_array_size(texts);
    const char **tv = xcalloc(nt + 1, sizeof *tv);
    for (size_t i = 0; i < nt; i++)
        tv[i] = json_string_value(json_array_get(texts, i));
    int w, h;
    media_scaled_size(s->proj->width, s->proj->height, config_num(s->app->cfg, S_RENDER_SCALE), &w,
                      &h);
    char cb[2048];
    snprintf(cb, sizeof cb, "%s/v1/webhooks/remotion?run_id=%s",
             providers_self_url(s->app->providers), s->run.id);
    double secs = json_number_value(json_object_get(args, "duration_seconds"));
    struct render_submit_req req = {.run_id = s->run.id,
                                    .clips = clips,
                                    .nclips = n,
                                    .duration_frames = (int)(secs * s->proj->fps + 0.5),
                                    .fps = s->proj->fps,
                                    .width = w,
                                    .height = h,
                                    .callback_url = cb,
                                    .template_name =
                                        json_string_value(json_object_get(args, "template")),
                                    .texts = tv,
                                    .ntexts = nt};
    if (provider_render_submit(s->app->providers, &req, render_submitted, s, NULL) != 0)
        agent_abort(a, PROV_PERMANENT, -1,
                    "Render submission failed: the request could not be made");
    free(clips);
    free(tv);
}

static void edit_tool(agent_t *a, const struct tool_def *t, json_t *args, void *ud) {
    struct step *s = ud;
    json_t *clips = json_object_get(args, "clips");
    int expected = s->run.clips_expected;
    if ((int)json_array_size(clips) != expected) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid arguments: clips must list the %d clips in index order",
                 expected);
        agent_tool_done(a, json_pack("{s:s}", "error", msg));
        return;
    }
    json_object_set(s->res, "texts",
                    json_object_get(args, "texts") ? json_object_get(args, "texts") : json_array());
    json_object_set(s->res, "template", json_object_get(args, "template"));
    if (providers_render_mode(s->app->providers) == RENDER_REMOTION) {
        render_remote(s, a, args);
        return;
    }
    char job_id[64];
    snprintf(job_id, sizeof job_id, "local-%s", s->run.id);
    json_object_set_new(s->res, "render_job_id", json_string(job_id));
    agent_tool_done(
        a, json_pack("{s:b,s:s,s:s}", "success", 1, "render_job_id", job_id, "status", "queued"));
}

static void edit_done(agent_t *a, void *ud) { tool_agent_done(ud, a, "Editor", "remotion_render"); }

static void edit_start(struct step *s) {
    json_t *facts = project_facts(s->proj);
    json_t *clips = json_array(), *texts = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(s->art, "clips"), i, c)
        json_array_append(clips, json_object_get(c, "url"));
    json_array_foreach(json_object_get(s->art, "overlays"), i, c)
        json_array_append(texts, json_object_get(c, "text"));
    json_object_set_new(facts, "template", json_string(s->proj->name));
    json_object_set_new(facts, "duration_seconds",
                        json_integer((json_int_t)s->run.clips_expected * s->proj->clip_seconds));
    json_object_set(facts, "topic",
                    json_object_get(json_object_get(s->art, "ideas_structured"), "topic"));
    /* the ideas carry the overlay lines the editor puts in `texts` */
    json_object_set(facts, "ideas",
                    json_object_get(json_object_get(s->art, "ideas_structured"), "ideas"));
    json_t *task =
        json_pack("{s:o,s:o,s:s,s:I}", "clips", clips, "texts", texts, "template", s->proj->name,
                  "duration_seconds", (json_int_t)s->run.clips_expected * s->proj->clip_seconds);
    json_object_set(facts, "clips", json_object_get(task, "clips"));
    char *t = json_dumps(task, JSON_INDENT(1));
    json_decref(task);
    char *user = with_facts("Render the final video from these clips and overlay texts:",
                            json_loads(t, 0, NULL));
    free(t);
    start_agent(s, AGENT_EDITOR, with_facts(s->proj->agents[AGENT_EDITOR].instructions, facts),
                user, &render_tool, 1, edit_tool, edit_done);
}

static void edit_run(struct job_ctx *ctx) {
    load_then(ctx, RS_AWAIT_RENDER, RSTEP_EDITING, false, edit_start);
}

static int edit_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_RENDER, RSTEP_EDITING);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    const char *job_id = json_string_value(json_object_get(s->res, "render_job_id"));
    char *transcript = transcript_text(s);
    int rc = rtx_artifact(&x, "editor_output", "editor", transcript, NULL,
                          json_pack("{s:s,s:s,s:i}", "step", "editing", "render_job_id", job_id,
                                    "clip_count", x.r.clips_expected),
                          NULL, NULL);
    free(transcript);
    json_object_set_new(x.ctx, "render_job_id", json_string(job_id));
    json_object_set(x.ctx, "render_texts", json_object_get(s->res, "texts"));
    json_object_set_new(
        x.art, "render_progress",
        json_pack("{s:s,s:s,s:i}", "job_id", job_id, "status", "queued", "progress_percent", 0));
    if (json_is_true(json_object_get(s->res, "remote"))) { /* the callback finishes the render */
        if (rc == 0)
            rc = tx->s->ops->task_add(tx, "render", job_id, x.r.id, 0);
        rtx_move(&x, RS_AWAIT_RENDER, RSTEP_WAIT_RENDER);
        if (rc == 0)
            rc = rtx_save(&x, "Render submitted");
        rtx_release(&x);
        return rc;
    }
    const project_t *p = rtx_project(&x);
    int w = 360, hh = 640;
    if (p)
        media_scaled_size(p->width, p->height, config_num(wf_global->cfg, S_RENDER_SCALE), &w, &hh);
    char key[80];
    snprintf(key, sizeof key, "render:%s", x.r.id);
    if (rc == 0)
        rc = rtx_enqueue(&x, "render.local",
                         json_pack("{s:i,s:O,s:i,s:i,s:i}", "clips", x.r.clips_expected, "texts",
                                   json_object_get(s->res, "texts"), "width", w, "height", hh,
                                   "fps", p ? p->fps : 30),
                         key);
    if (rc == 0)
        rc = rtx_save(&x, "Render started");
    rtx_release(&x);
    return rc;
}

/* ---- render (pool)
 * -------------------------------------------------------------------------------------- */

/* Worker thread. */
static void render_run(struct job_ctx *ctx) {
    app_t *app = ctx->app;
    struct pool_res *r = xcalloc(1, sizeof *r);
    ctx->data = r;
    r->payload = json_loads(ctx->job.payload ? ctx->job.payload : "{}", 0, NULL);
    int n = (int)json_integer_value(json_object_get(r->payload, "clips"));
    json_t *texts = json_object_get(r->payload, "texts");
    if (n < 1 || n > MEDIA_MAX_RENDER_CLIPS) {
        job_set_error(ctx, JO_PERMANENT, "render.local: bad clip count");
        return;
    }
    snprintf(r->clip_key, sizeof r->clip_key, "renders/%s.mp4", ctx->job.run_id);
    snprintf(r->thumb_key, sizeof r->thumb_key, "thumbnails/render_%s.jpg", ctx->job.run_id);
    struct media_render_clip *clips = xcalloc((size_t)n, sizeof *clips);
    char(*paths)[4200] = xcalloc((size_t)n, sizeof *paths);
    bool local = storage_is_local(app->storage), ok = true;
    for (int i = 0; i < n && ok; i++) {
        char key[200];
        snprintf(key, sizeof key, "transcoded/clip_%s_%d.mp4", ctx->job.run_id, i);
        if (local)
            ok = storage_local_path(app->storage, key, paths[i], sizeof paths[i]) == 0;
        else
            ok = storage_tmp_path(app->storage, "in.mp4", paths[i], sizeof paths[i]) == 0 &&
                 storage_get_file(app->storage, key, paths[i]) == 0;
        clips[i].path = paths[i];
        clips[i].overlay = json_string_value(json_array_get(texts, (size_t)i));
    }
    char out[4200], thumb[4200];
    if (!ok || storage_tmp_path(app->storage, "render.mp4", out, sizeof out) != 0 ||
        storage_tmp_path(app->storage, "render.jpg", thumb, sizeof thumb) != 0) {
        job_set_error(ctx, JO_RETRY, "render.local: cannot reach the clips");
        goto out;
    }
    bool drawn = false;
    struct media_render_opts o = {
        .clips = clips,
        .nclips = (size_t)n,
        .output = out,
        .thumbnail = thumb,
        .width = (int)json_integer_value(json_object_get(r->payload, "width")),
        .height = (int)json_integer_value(json_object_get(r->payload, "height")),
        .fps = (int)json_integer_value(json_object_get(r->payload, "fps")),
        .preset = config_str(app->cfg, S_TRANSCODE_PRESET),
        .crf = (int)config_int(app->cfg, S_TRANSCODE_CRF),
        .threads = media_jobs_threads(),
        .x264_params = config_str(app->cfg, S_TRANSCODE_X264_PARAMS),
        .font = config_str(app->cfg, S_RENDER_FONT),
        .overlays_drawn = &drawn,
    };
    buf_t err;
    buf_init(&err, 1024);
    int rc = media_render(&o, progress_cb, ctx, &err);
    if (rc == ERR_MEDIATYPE || rc == ERR_INVAL || rc == ERR_NOTFOUND) {
        char msg[1200];
        snprintf(msg, sizeof msg, "Render failed: %s", err.data ? err.data : err_name(rc));
        r->fail = xstrdup(msg);
    } else if (rc) {
        job_set_error(ctx, JO_RETRY, "render: %s", err.data ? err.data : err_name(rc));
    } else if ((rc = storage_put_file(app->storage, r->clip_key, out, "video/mp4",
                                      STORAGE_PUT_MOVE)) != 0 ||
               (rc = storage_put_file(app->storage, r->thumb_key, thumb, "image/jpeg",
                                      STORAGE_PUT_MOVE)) != 0) {
        job_set_error(ctx, JO_RETRY, "cannot store the render (%s)", err_name(rc));
    } else {
        r->done = true;
    }
    buf_release(&err);
    unlink(out);
    unlink(thumb);
out:
    if (!local)
        for (int i = 0; i < n; i++)
            if (paths[i][0])
                unlink(paths[i]);
    free(clips);
    free(paths);
}

static int render_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int rc = pool_head(tx, ctx, &x, RS_AWAIT_RENDER);
    if (rc <= 0)
        return rc;
    struct pool_res *r = ctx->data;
    char url[STORAGE_URL_MAX], thumb[STORAGE_URL_MAX];
    media_url(r->clip_key, url, sizeof url);
    media_url(r->thumb_key, thumb, sizeof thumb);
    rc = rtx_artifact(&x, "rendered_video", "editor", NULL, url,
                      json_pack("{s:s,s:s,s:s?}", "key", r->clip_key, "thumbnail_url", thumb,
                                "render_job_id",
                                json_string_value(json_object_get(x.ctx, "render_job_id"))),
                      "rendered_video", NULL);
    json_object_set_new(x.art, "video_url", json_string(url));
    json_object_set_new(x.art, "thumbnail_url", json_string(thumb));
    json_object_set_new(x.art, "render_progress",
                        json_pack("{s:s?,s:s,s:i}", "job_id",
                                  json_string_value(json_object_get(x.ctx, "render_job_id")),
                                  "status", "done", "progress_percent", 100));
    json_object_set_new(x.ctx, "video_key", json_string(r->clip_key));
    if (rc == 0)
        rc = rtx_publish_gate(&x);
    return save_release(&x, rc);
}

/* ---- a remote render's output: download (webhook.remotion), then store (render.fetch, pool)
 * -------- */

static void remote_downloaded(const struct download_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome == PROV_OK) {
        json_object_set_new(s->res, "input", json_string(r->path));
        job_finish(s->ctx);
    } else if (r->st.outcome == PROV_PERMANENT) {
        step_fail(s, "Render download failed: %s", r->st.error ? r->st.error : "");
        job_finish(s->ctx);
    } else {
        finish_with(s, PROV_RETRY, r->st.retry_after_s, r->st.error);
    }
}

static void remotion_webhook_run(struct job_ctx *ctx) {
    struct step *s = step_of(ctx);
    const char *url = pstr(s, "output_url");
    if (!url || !*url) {
        step_fail(s, "Render failed: the render service gave no output_url");
        job_finish(ctx);
        return;
    }
    char path[4200], rnd[9];
    uint8_t b[4];
    crypto_random(b, sizeof b);
    crypto_hex(b, sizeof b, rnd);
    snprintf(path, sizeof path, "%s/render-%s-%s.mp4", s->w->tmp_dir, ctx->job.run_id, rnd);
    if (provider_download_url(s->app->providers, PK_RENDER, url, path, remote_downloaded, s,
                              NULL) != 0) {
        step_fail(s, "Render download failed: the URL was refused");
        job_finish(ctx);
    }
}

static int remotion_webhook_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    struct step *s = ctx->data;
    const char *input = s ? json_string_value(json_object_get(s->res, "input")) : NULL;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_RENDER, RSTEP__COUNT);
    if (h <= 0) {
        if (h == 0 && input)
            unlink(input);
        return h;
    }
    if (s->fail)
        return complete_fail(&x, s);
    char key[80];
    snprintf(key, sizeof key, "render:%s", x.r.id);
    int rc = rtx_enqueue(&x, "render.fetch", json_pack("{s:s}", "input", input), key);
    rtx_release(&x);
    return rc;
}

/* Worker thread: the downloaded render is probed, thumbnailed and stored. */
static void fetch_run(struct job_ctx *ctx) {
    app_t *app = ctx->app;
    struct pool_res *r = xcalloc(1, sizeof *r);
    ctx->data = r;
    r->payload = json_loads(ctx->job.payload ? ctx->job.payload : "{}", 0, NULL);
    const char *input = json_string_value(json_object_get(r->payload, "input"));
    snprintf(r->clip_key, sizeof r->clip_key, "renders/%s.mp4", ctx->job.run_id);
    snprintf(r->thumb_key, sizeof r->thumb_key, "thumbnails/render_%s.jpg", ctx->job.run_id);
    char thumb[4200];
    buf_t err;
    buf_init(&err, 1024);
    struct media_info info;
    int rc;
    if (!input) {
        job_set_error(ctx, JO_PERMANENT, "render.fetch: the payload has no input");
    } else if ((rc = media_probe(input, &info, &err)) != 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "Render failed: the rendered file is not a video (%s)",
                 err.data ? err.data : "");
        r->fail = xstrdup(msg);
        unlink(input);
    } else if (storage_tmp_path(app->storage, "render.jpg", thumb, sizeof thumb) != 0 ||
               media_thumbnail(input, thumb, &err) != 0 ||
               storage_put_file(app->storage, r->thumb_key, thumb, "image/jpeg",
                                STORAGE_PUT_MOVE) != 0 ||
               storage_put_file(app->storage, r->clip_key, input, "video/mp4", STORAGE_PUT_MOVE) !=
                   0) {
        job_set_error(ctx, JO_RETRY, "render.fetch: cannot store the render");
    } else {
        r->done = true;
    }
    buf_release(&err);
}

/* ---- publishing
 * ----------------------------------------------------------------------------------------- */

static const struct tool_def publish_tool = {
    "upload_post",
    "Publish the final video to TikTok with a caption and tags.",
    "{\"type\":\"object\",\"required\":[\"video_url\",\"caption\",\"tags\"],\"properties\":{"
    "\"video_url\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":4096},"
    "\"caption\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":150},"
    "\"tags\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":8,\"items\":{\"type\":\"string\","
    "\"pattern\":\"^[^#[:space:]]{1,64}$\"}}}}",
};

static void published(const struct publish_result *r, void *ud) {
    struct step *s = ud;
    agent_t *a = s->agent;
    if (r->st.outcome != PROV_OK) {
        agent_abort(a, r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome,
                    r->st.retry_after_s, r->st.error);
        return;
    }
    if (!r->url && r->request_id) { /* the publisher is still processing: polled (publish.poll) */
        json_object_set_new(s->res, "request_id", json_string(r->request_id));
        agent_tool_done(a, json_pack("{s:b,s:s,s:s}", "success", 1, "status", "processing",
                                     "request_id", r->request_id));
        return;
    }
    if (!r->url) {
        agent_abort(a, PROV_PERMANENT, -1,
                    "Publishing did not return a published URL or status_url.");
        return;
    }
    json_object_set_new(s->res, "url", json_string(r->url));
    agent_tool_done(a,
                    json_pack("{s:b,s:s,s:s}", "success", 1, "url", r->url, "platform", "tiktok"));
}

static void start_upload(struct step *s) {
    agent_t *a = s->agent;
    /* the URL we publish is ours, whatever the model wrote */
    const char *video_url = json_string_value(json_object_get(s->art, "video_url"));
    json_t *tags = json_object_get(s->res, "tags");
    size_t n = json_array_size(tags);
    const char *tv[8];
    for (size_t i = 0; i < n && i < 8; i++)
        tv[i] = json_string_value(json_array_get(tags, i));
    struct publish_req req = {
        .video_url =
            video_url ? video_url : json_string_value(json_object_get(s->res, "model_url")),
        .caption = json_string_value(json_object_get(s->res, "caption")),
        .tags = tv,
        .ntags = n < 8 ? n : 8};
    if (provider_publish_upload(s->app->providers, &req, published, s, NULL) != 0)
        agent_abort(a, PROV_PERMANENT, -1, "publish: the upload request could not be made");
}

static void caption_moderated(const struct safety_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome != PROV_OK) {
        agent_abort(s->agent, PROV_RETRY, r->st.retry_after_s, "safety check unavailable");
    } else if (r->flagged) {
        char msg[200];
        snprintf(msg, sizeof msg, "Safety check failed at publishing: moderation:%s",
                 r->category ? r->category : "flagged");
        agent_abort(s->agent, PROV_PERMANENT, -1, msg);
    } else {
        start_upload(s);
    }
}

static void publish_tool_run(agent_t *a, const struct tool_def *t, json_t *args, void *ud) {
    struct step *s = ud;
    const char *caption = json_string_value(json_object_get(args, "caption"));
    char entry[128];
    if (safety_blocked(config_str(s->app->cfg, S_SAFETY_BLOCKLIST), caption, entry, sizeof entry)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Safety check failed at publishing: matched_keyword:%s", entry);
        agent_abort(a, PROV_PERMANENT, -1, msg);
        return;
    }
    json_object_set_new(s->res, "caption", json_string(caption));
    json_object_set(s->res, "tags", json_object_get(args, "tags"));
    json_object_set(s->res, "model_url", json_object_get(args, "video_url"));
    if (providers_safety_enabled(s->app->providers)) {
        if (provider_safety_check(s->app->providers, caption, caption_moderated, s, NULL) != 0)
            agent_abort(a, PROV_RETRY, -1, "safety check unavailable");
        return;
    }
    start_upload(s);
}

static void publish_done(agent_t *a, void *ud) {
    tool_agent_done(ud, a, "Publisher", "upload_post");
}

static void publish_start(struct step *s) {
    json_t *facts = project_facts(s->proj);
    const char *topic =
        json_string_value(json_object_get(json_object_get(s->art, "ideas_structured"), "topic"));
    json_object_set_new(facts, "topic", json_string(topic ? topic : s->run.brief));
    json_object_set(facts, "video_url", json_object_get(s->art, "video_url"));
    const char *url = json_string_value(json_object_get(s->art, "video_url"));
    char user[8192];
    snprintf(user, sizeof user,
             "Publish this video: %s\n\nTopic: %s\n\nCall upload_post to publish it, with a "
             "caption under 150 "
             "characters and 3-8 tags.",
             url ? url : "", topic ? topic : s->run.brief);
    start_agent(s, AGENT_PUBLISHER,
                with_facts(s->proj->agents[AGENT_PUBLISHER].instructions, facts), xstrdup(user),
                &publish_tool, 1, publish_tool_run, publish_done);
}

static void publish_run(struct job_ctx *ctx) {
    load_then(ctx, RS_RUNNING, RSTEP_PUBLISHING, false, publish_start);
}

static int published_url_commit(struct rtx *x, const char *url);

static int publish_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_RUNNING, RSTEP_PUBLISHING);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    const char *url = json_string_value(json_object_get(s->res, "url"));
    char *transcript = transcript_text(s);
    int rc = rtx_artifact(&x, "publisher_output", "publisher", transcript, NULL,
                          json_pack("{s:s?,s:O?}", "caption",
                                    json_string_value(json_object_get(s->res, "caption")), "tags",
                                    json_object_get(s->res, "tags")),
                          NULL, NULL);
    free(transcript);
    const char *request_id = json_string_value(json_object_get(s->res, "request_id"));
    if (!url && request_id) {
        json_object_set_new(x.ctx, "publish_request_id", json_string(request_id));
        rtx_move(&x, RS_AWAIT_PUBLISH, RSTEP_PUBLISHING);
        if (rc == 0)
            rc =
                rtx_enqueue(&x, "publish.poll", json_pack("{s:s}", "request_id", request_id), NULL);
        return save_release(&x, rc);
    }
    rc = rc ? rc : published_url_commit(&x, url);
    return save_release(&x, rc);
}

/* The published URL and the end of the run (publish_complete, publish.poll). */
static int published_url_commit(struct rtx *x, const char *url) {
    int rc = 0;
    if (rc == 0)
        rc = rtx_artifact(x, "published_url", "publisher", NULL, url,
                          json_pack("{s:s,s:s,s:O?}", "step", "publishing", "platform", "tiktok",
                                    "video_url", json_object_get(x->art, "video_url")),
                          "published_url", NULL);
    json_object_set_new(x->art, "published_url", json_string(url ? url : ""));
    rtx_move(x, RS_COMPLETED, RSTEP_COMPLETED);
    return rc;
}

/* ---- publish.poll: an upload the publisher is still processing
 * ----------------------------------- */

static void polled(const struct publish_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome != PROV_OK) {
        finish_with(s, r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome,
                    r->st.retry_after_s, r->st.error);
        return;
    }
    if (r->url) {
        json_object_set_new(s->res, "url", json_string(r->url));
    } else if (r->status && strcmp(r->status, "failed") == 0) {
        step_fail(s, "Publishing failed: the publisher reported a failure");
    } else { /* still processing: look again later without using an attempt */
        s->ctx->outcome = JO_RESCHEDULE;
        s->ctx->reschedule_at = clock_now_ms() + config_int(s->app->cfg, S_PUBLISH_POLL_MS);
    }
    job_finish(s->ctx);
}

static void publish_poll_start(struct step *s) {
    if (provider_publish_status(s->app->providers, pstr(s, "request_id"), polled, s, NULL) != 0) {
        step_fail(s, "Publishing failed: the status request could not be made");
        job_finish(s->ctx);
    }
}

static void publish_poll_run(struct job_ctx *ctx) {
    load_then(ctx, RS_AWAIT_PUBLISH, RSTEP__COUNT, false, publish_poll_start);
}

static int publish_poll_complete(store_tx_t *tx, struct job_ctx *ctx) {
    struct rtx x;
    int h = complete_head(tx, ctx, &x, RS_AWAIT_PUBLISH, RSTEP__COUNT);
    if (h <= 0)
        return h;
    struct step *s = ctx->data;
    if (s->fail)
        return complete_fail(&x, s);
    int rc = published_url_commit(&x, json_string_value(json_object_get(s->res, "url")));
    return save_release(&x, rc);
}

/* ---- notify.send (TELEGRAM_BOT_TOKEN)
 * ---------------------------------------------------------------- */

static void notified(const struct notify_result *r, void *ud) {
    struct step *s = ud;
    if (r->st.outcome == PROV_RETRY || r->st.outcome == PROV_CANCELLED) {
        finish_with(s, PROV_RETRY, r->st.retry_after_s, r->st.error);
        return;
    }
    if (r->st.outcome == PROV_PERMANENT) /* logged, not retried: a notification never fails a run */
        log_warn("workflow", "notification not sent", LF_S("run_id", pstr(s, "run")),
                 LF_S("error", r->st.error));
    job_finish(s->ctx);
}

static void notify_run(struct job_ctx *ctx) {
    struct step *s = step_of(ctx);
    const char *chat = pstr(s, "chat_id"), *text = pstr(s, "text");
    if (!chat || !text || !providers_notify_enabled(s->app->providers) ||
        provider_notify_send(s->app->providers, chat, text, notified, s, NULL) != 0)
        job_finish(ctx); /* nothing to send */
}

/* ---- registration
 * --------------------------------------------------------------------------------------- */

static const struct job_type types[] = {
    {.name = "run.ideate",
     .kind = JK_LOOP,
     .run_loop = ideate_run,
     .on_complete = ideate_complete,
     .release = step_release,
     .provider = "llm"},
    {.name = "run.produce",
     .kind = JK_LOOP,
     .run_loop = produce_run,
     .on_complete = produce_complete,
     .release = step_release,
     .provider = "llm"},
    {.name = "run.resubmit",
     .kind = JK_LOOP,
     .run_loop = resubmit_run,
     .on_complete = resubmit_complete,
     .release = step_release,
     .provider = "sora"},
    {.name = "webhook.sora",
     .kind = JK_LOOP,
     .run_loop = sora_webhook_run,
     .on_complete = sora_webhook_complete,
     .release = step_release,
     .provider = "sora"},
    {.name = "clip.transcode",
     .kind = JK_POOL,
     .run_pool = transcode_run,
     .on_complete = transcode_complete,
     .release = pool_release,
     .cap_group = "media"},
    {.name = "run.edit",
     .kind = JK_LOOP,
     .run_loop = edit_run,
     .on_complete = edit_complete,
     .release = step_release,
     .provider = "llm"},
    {.name = "render.local",
     .kind = JK_POOL,
     .run_pool = render_run,
     .on_complete = render_complete,
     .release = pool_release,
     .cap_group = "media"},
    {.name = "webhook.remotion",
     .kind = JK_LOOP,
     .run_loop = remotion_webhook_run,
     .on_complete = remotion_webhook_complete,
     .release = step_release,
     .provider = "render"},
    {.name = "render.fetch",
     .kind = JK_POOL,
     .run_pool = fetch_run,
     .on_complete = render_complete,
     .release = pool_release,
     .cap_group = "media"},
    {.name = "sora.poll",
     .kind = JK_LOOP,
     .run_loop = sora_poll_run,
     .on_complete = sora_poll_complete,
     .release = step_release,
     .provider = "sora"},
    {.name = "publish.poll",
     .kind = JK_LOOP,
     .run_loop = publish_poll_run,
     .on_complete = publish_poll_complete,
     .release = step_release,
     .provider = "publish"},
    {.name = "notify.send",
     .kind = JK_LOOP,
     .run_loop = notify_run,
     .release = step_release,
     .provider = "notify"},
    {.name = "run.publish",
     .kind = JK_LOOP,
     .run_loop = publish_run,
     .on_complete = publish_complete,
     .release = step_release,
     .provider = "llm"},
};

void steps_register(workflow_t *w, struct dispatcher *d) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        dispatcher_register(d, &types[i]);
}
