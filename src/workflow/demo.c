/* demo: a whole run in-process with a progress display (see demo.h). Loop thread. */
#include "workflow/demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "core/err.h"
#include "core/mem.h"
#include "storage/storage.h"
#include "workflow/workflow.h"

#define POLL_MS 150

struct demo {
    app_t *app;
    struct demo_opts o;
    const project_t *project;
    char run_id[RUN_ID_LEN];
    run_t run;
    bool have_run;
    char last[160];
    bool tty, asking, bar_open;
    uv_timer_t timer;
    uv_async_t answer_async;
    pthread_mutex_t mu;
    char answer[64];
    bool answered;
    bool finished;
    int closed;
};

static void tick(uv_timer_t *t);
static void closed(uv_handle_t *h);

/* ---- units -------------------------------------------------------------------------------------
 */

struct op {
    struct demo *d;
    int kind; /* 0 start, 1 read, 2 approve, 3 reject */
    char gate[16];
    run_t run;
};

static int op_unit(store_tx_t *tx, void *arg) {
    struct op *o = arg;
    struct demo *d = o->d;
    switch (o->kind) {
    case 0: {
        struct wf_start_req q = {.project = d->project, .brief = d->o.brief};
        return wf_start(tx, &q, &o->run);
    }
    case 1: return tx->s->ops->run_get(tx, d->run_id, false, &o->run);
    default: return wf_gate(tx, d->run_id, o->gate, o->kind == 2, NULL, "demo", &o->run);
    }
}

static void show(struct demo *d);

static void op_done(void *arg, int rc) {
    struct op *o = arg;
    struct demo *d = o->d;
    if (rc && o->kind == 0) {
        fprintf(stderr, "myloware demo: cannot start the run (%s)\n", err_name(rc));
        d->finished = true;
        d->app->exit_code = 1;
        uv_close((uv_handle_t *)&d->timer, closed);
        uv_close((uv_handle_t *)&d->answer_async, closed);
        app_stop(d->app, "demo failed");
        free(o);
        return;
    }
    if (rc == 0) {
        if (o->kind == 0) {
            memcpy(d->run_id, o->run.id, sizeof d->run_id);
            printf("run %s started (%s): %s\n", d->run_id, d->project->name, d->o.brief);
            fflush(stdout);
            workflow_kick(d->app->workflow);
        }
        if (o->kind >= 2)
            workflow_kick(d->app->workflow);
        if (d->have_run)
            run_release(&d->run);
        d->run = o->run;
        d->have_run = true;
        show(d);
    }
    free(o);
    if (!d->finished && !d->asking)
        uv_timer_start(&d->timer, tick, POLL_MS, 0);
}

static void submit(struct demo *d, int kind, const char *gate) {
    struct op *o = xcalloc(1, sizeof *o);
    o->d = d;
    o->kind = kind;
    if (gate)
        snprintf(o->gate, sizeof o->gate, "%s", gate);
    store_submit(d->app->store, op_unit, o, op_done);
}

/* ---- the question ------------------------------------------------------------------------------
 */

static void *reader_main(void *arg) {
    struct demo *d = arg;
    char line[64];
    const char *got = fgets(line, sizeof line, stdin);
    pthread_mutex_lock(&d->mu);
    snprintf(d->answer, sizeof d->answer, "%s", got ? line : "n");
    d->answered = true;
    pthread_mutex_unlock(&d->mu);
    uv_async_send(&d->answer_async);
    return NULL;
}

static void answer_cb(uv_async_t *a) {
    struct demo *d = a->data;
    pthread_mutex_lock(&d->mu);
    bool got = d->answered;
    char ans = d->answer[0];
    d->answered = false;
    pthread_mutex_unlock(&d->mu);
    if (!got || !d->asking)
        return;
    d->asking = false;
    bool yes = ans == '\n' || ans == 'y' || ans == 'Y' || ans == '\0';
    const char *gate =
        strcmp(d->run.status, "awaiting_ideation_approval") == 0 ? "ideation" : "publish";
    printf("%s %s\n", gate, yes ? "approved" : "rejected");
    submit(d, yes ? 2 : 3, gate);
}

static void ask(struct demo *d, const char *gate) {
    if (d->o.yes) {
        printf("%s gate: approved (--yes)\n", gate);
        fflush(stdout);
        d->asking = true; /* no poll until the decision is in */
        submit(d, 2, gate);
        d->asking = false;
        return;
    }
    d->asking = true;
    if (strcmp(gate, "ideation") == 0) {
        json_t *art = json_loads(d->run.artifacts ? d->run.artifacts : "{}", 0, NULL);
        const char *ideas = json_string_value(json_object_get(art, "ideas"));
        printf("\n%s\n\n", ideas ? ideas : "(no ideas)");
        json_decref(art);
        printf("Approve these ideas? [Y/n] ");
    } else {
        json_t *art = json_loads(d->run.artifacts ? d->run.artifacts : "{}", 0, NULL);
        printf("\nThe video is rendered: %s\nPublish it? [Y/n] ",
               json_string_value(json_object_get(art, "video_url"))
                   ? json_string_value(json_object_get(art, "video_url"))
                   : "?");
        json_decref(art);
    }
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, reader_main, d) == 0)
        pthread_detach(t);
}

/* ---- the display -------------------------------------------------------------------------------
 */

static int percent(const run_t *r) {
    static const struct {
        const char *status;
        int pct;
    } stages[] = {{"pending", 2},
                  {"running", 10},
                  {"awaiting_ideation_approval", 20},
                  {"awaiting_video_generation", 30},
                  {"awaiting_render", 75},
                  {"awaiting_publish_approval", 85},
                  {"awaiting_publish", 95},
                  {"completed", 100}};
    int p = 0;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        if (strcmp(stages[i].status, r->status) == 0)
            p = stages[i].pct;
    if (strcmp(r->status, "running") == 0 && strcmp(r->step, "production") == 0)
        p = 25;
    if (strcmp(r->status, "running") == 0 && strcmp(r->step, "publishing") == 0)
        p = 90;
    if (strcmp(r->status, "awaiting_video_generation") == 0 && r->clips_expected > 0)
        p = 30 + 45 * r->clips_ready / r->clips_expected;
    return p;
}

static void closed(uv_handle_t *h) {
    struct demo *d = h->data;
    if (++d->closed == 2) {
        if (d->have_run)
            run_release(&d->run);
        pthread_mutex_destroy(&d->mu);
        free(d);
    }
}

static void finish(struct demo *d) {
    d->finished = true;
    const run_t *r = &d->run;
    json_t *art = json_loads(r->artifacts ? r->artifacts : "{}", 0, NULL);
    if (strcmp(r->status, "completed") == 0) {
        char key[128], path[4096];
        snprintf(key, sizeof key, "renders/%s.mp4", r->id);
        if (storage_local_path(d->app->storage, key, path, sizeof path) == 0)
            printf("final video: %s\n", path);
        else
            printf("final video: %s\n", json_string_value(json_object_get(art, "video_url")));
        printf("published: %s\n", json_string_value(json_object_get(art, "published_url")));
        d->app->exit_code = 0;
    } else {
        printf("run %s ended %s%s%s\n", r->id, r->status, r->error ? ": " : "",
               r->error ? r->error : "");
        d->app->exit_code = 1;
    }
    fflush(stdout);
    json_decref(art);
    uv_close((uv_handle_t *)&d->timer, closed);
    uv_close((uv_handle_t *)&d->answer_async, closed);
    app_stop(d->app, "demo finished");
}

static void show(struct demo *d) {
    const run_t *r = &d->run;
    char line[160];
    snprintf(line, sizeof line, "%s%s%s (%d/%d clips)", r->status, *r->step ? " / " : "", r->step,
             r->clips_ready, r->clips_expected);
    int p = percent(r);
    if (d->tty) {
        char bar[31];
        int k = p * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < k ? '#' : '-';
        bar[30] = '\0';
        printf("\r[%s] %3d%% %-60.60s", bar, p, line);
        d->bar_open = true;
    } else if (strcmp(line, d->last) != 0) {
        printf("%3d%% %s\n", p, line);
    }
    fflush(stdout);
    bool changed = strcmp(line, d->last) != 0;
    snprintf(d->last, sizeof d->last, "%s", line);
    if (d->bar_open &&
        (changed && (strstr(r->status, "approval") || run_status_name_terminal(r->status)))) {
        printf("\n");
        d->bar_open = false;
    }
    if (run_status_name_terminal(r->status)) {
        finish(d);
    } else if (changed && strcmp(r->status, "awaiting_ideation_approval") == 0) {
        ask(d, "ideation");
    } else if (changed && strcmp(r->status, "awaiting_publish_approval") == 0) {
        ask(d, "publish");
    }
}

static void tick(uv_timer_t *t) {
    struct demo *d = t->data;
    if (!d->finished && !d->asking)
        submit(d, 1, NULL);
}

int demo_start(struct app *app, const struct demo_opts *o) {
    struct demo *d = xcalloc(1, sizeof *d);
    d->app = app;
    d->o = *o;
    if (!d->o.project)
        d->o.project = "motivational";
    if (!d->o.brief)
        d->o.brief = "Morning discipline: small wins before sunrise";
    d->project = workflow_project(app->workflow, d->o.project);
    if (!d->project) {
        fprintf(stderr, "myloware demo: no project '%s'\n", d->o.project);
        free(d);
        return ERR_NOTFOUND;
    }
    d->tty = isatty(1);
    pthread_mutex_init(&d->mu, NULL);
    app->exit_code = 1; /* until the run completes */
    uv_timer_init(&app->loop, &d->timer);
    d->timer.data = d;
    uv_async_init(&app->loop, &d->answer_async, answer_cb);
    d->answer_async.data = d;
    submit(d, 0, NULL);
    return 0;
}
