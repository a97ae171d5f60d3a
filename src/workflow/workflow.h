/*
 * workflow: the run engine (run.h has the state machine). It owns the projects, registers the
 * step job types with the dispatcher (workflow_register) and offers the decisions the API and
 * the demo make as database-thread operations (wf_*: each runs inside the caller's store unit,
 * so a route's idempotency record, the decision and the next job commit together).
 *
 * Threads: workflow_new/free on the main thread at start-up and shutdown; wf_* on the database
 * thread (inside a unit); the job handlers as their kinds say (loop or pool).
 */
#ifndef MYLOWARE_WORKFLOW_WORKFLOW_H
#define MYLOWARE_WORKFLOW_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "db/store.h"
#include "workflow/project.h"
#include "workflow/run.h"

typedef struct workflow workflow_t;
struct app;
struct dispatcher;

/* Loads and validates the projects of PROJECTS_DIR (a bad file: ERR_INVAL, "<path>: <reason>"
 * in err). app is borrowed (its store, storage, providers are used once they exist). */
int workflow_new(struct app *app, workflow_t **out, buf_t *err);
void workflow_free(workflow_t *w);
/* Registers the step job types, the media cap group and the dead-letter and replay hooks. */
void workflow_register(workflow_t *w, struct dispatcher *d);
const projects_t *workflow_projects(const workflow_t *w);
const project_t *workflow_project(const workflow_t *w, const char *name);

/* The run object of api.md §4 (with_artifacts false: the listing's form). Any thread. */
json_t *wf_run_json(const run_t *r, bool with_artifacts);
/* The interrupts of a run in its status (workflow.md §2): an array, or NULL when none. */
json_t *wf_interrupts(const run_t *r);

/* ---- decisions (database thread, inside a unit) -----------------------------------------------
 */

struct wf_start_req {
    const project_t *project;
    const char *brief, *user_id, *telegram_chat_id;
    const char *public_token; /* public demo runs */
    int64_t public_expires_at;
};
/* The run budget (api.md §3): 0, or ERR_BUDGET with the answer's detail. */
int wf_budget(store_tx_t *tx, char *detail, size_t cap);
/* A pending run and its run.ideate job (the caller checked the budget). out gets the run. */
int wf_start(store_tx_t *tx, const struct wf_start_req *q, run_t *out);

/* Approve or reject gate ("ideation", "publish"). ERR_NOTFOUND; ERR_CONFLICT when the run is
 * not awaiting that gate. The decision is audited (actor: the API key's id). out gets the run
 * after the decision. */
int wf_gate(store_tx_t *tx, const char *run_id, const char *gate, bool approved,
            const char *comment, const char *actor, run_t *out);
/* Cancels a run that is not terminal and its queued jobs. ERR_NOTFOUND; ERR_CONFLICT. */
int wf_cancel(store_tx_t *tx, const char *run_id, const char *reason, const char *actor,
              run_t *out);

/* A verified video-provider delivery: stored in the inbox (w's fields in; status and run_id
 * set), and, when its task is known and its run live, a webhook.sora job enqueued. result_url
 * (legacy envelopes) is downloaded instead of the provider's content endpoint; for_run (legacy
 * ?run_id=) must be the task's run, else the delivery is ignored (WF_IGNORED_UNKNOWN). */
enum wf_ack { WF_ACCEPTED, WF_DUPLICATE, WF_IGNORED_UNKNOWN, WF_IGNORED_TERMINAL, WF_IGNORED_TYPE };
int wf_sora_delivery(store_tx_t *tx, inbox_item_t *w, bool failed, const char *result_url,
                     const char *for_run, enum wf_ack *ack, int *video_index, char *run_status,
                     size_t cap);

/* The v2 state object (api.md §4) and the next steps (an array, or JSON null when done). */
json_t *wf_state_json(const run_t *r);
json_t *wf_next(const run_t *r);
/* Resume actions (workflow.md §5): action is auto, retry, videos, render or publish (the caller
 * refuses others). chosen gets the action taken ("" when none), message the answer's message.
 * out gets the run after it. ERR_NOTFOUND. */
int wf_resume(store_tx_t *tx, const char *run_id, const char *action, bool approve_publish,
              bool force, const char *actor, run_t *out, char *chosen, size_t ccap, char *message,
              size_t mcap);

/* A verified render callback for run_id (api.md §6). ERR_NOTFOUND (run), ERR_INVAL (job_id is
 * not the run's render job), ERR_CONFLICT (not awaiting a render, not past it, not over: a
 * cancelled, rejected or failed run's callback is 0 with ack->ignored). A repeat is 0 with
 * ack->repeat and the stored output URL. ok: the output is fetched (webhook.remotion); else the
 * run fails. ack->status gets the run's status as read. */
struct wf_render_ack {
    bool repeat;
    bool ignored; /* the run is cancelled, rejected or failed: stored, nothing else */
    char output_url[2048];
    char status[RUN_STATUS_MAX];
};
int wf_render_callback(store_tx_t *tx, const char *run_id, const char *job_id, bool ok,
                       const char *output_url, const char *error, const char *body,
                       struct wf_render_ack *ack);

/* Marks a stuck run failed with the given error (POST /health/cleanup-stuck-runs). */
int wf_fail_run(store_tx_t *tx, const char *run_id, const char *error);

/* Called after an in-process commit that enqueued work (wakes the dispatcher). Loop thread. */
void workflow_kick(workflow_t *w);

#endif
