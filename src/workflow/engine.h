/*
 * engine: what the workflow's files share (not for other layers): the workflow struct, the
 * read-modify-write of one run inside a transaction (rtx_*), and the step job types.
 *
 * rtx: rtx_load reads a run for update and parses its artifacts view and context; the caller
 * changes them and rtx_move()s the status; rtx_save writes it back guarded by the status read
 * (ERR_CONFLICT if someone moved the run in between: with the row lock this only happens
 * across processes without one, never silently) and appends a run event for every change of
 * status or step. rtx_artifact and rtx_enqueue join the same transaction.
 * Database thread.
 */
#ifndef MYLOWARE_WORKFLOW_ENGINE_H
#define MYLOWARE_WORKFLOW_ENGINE_H

#include <jansson.h>

#include "db/store.h"
#include "queue/queue.h"
#include "workflow/project.h"
#include "workflow/run.h"
#include "workflow/workflow.h"

struct app;

struct workflow {
    struct app *app;
    const config_t *cfg;
    projects_t *projects;
    struct queue_policy pol;
    char tmp_dir[4096]; /* MEDIA_DIR/.tmp: downloads before their transcode */
};

/* The process's workflow (set by workflow_new; the queue hooks have no user data). */
extern workflow_t *wf_global;

struct rtx {
    store_tx_t *tx;
    run_t r;
    json_t *art, *ctx; /* parsed artifacts view and context (owned) */
    enum run_status status, read_status;
    enum run_step step, read_step;
    bool loaded;
};

int rtx_load(store_tx_t *tx, const char *run_id, struct rtx *x);
void rtx_move(struct rtx *x, enum run_status s, enum run_step step);
/* Writes the run (event message NULL: a default from the status). */
int rtx_save(struct rtx *x, const char *message);
/* Moves the run to failed with error, remembering where it was (for resume and replay). */
void rtx_fail(struct rtx *x, const char *error, const char *job_type);
/* Adds an artifact (content and metadata_json may be NULL; metadata stolen) and its event.
 * *existed (may be NULL) when dedupe was taken. */
int rtx_artifact(struct rtx *x, const char *type, const char *persona, const char *content,
                 const char *uri, json_t *metadata, const char *dedupe, bool *existed);
/* Enqueues a job for the run (payload stolen; run_id added). */
int rtx_enqueue(struct rtx *x, const char *type, json_t *payload, const char *idem_key);
/* Same, to run at run_at (ms; 0: now); *existed (may be NULL) when an unfinished job held the key.
 */
int rtx_enqueue_at(struct rtx *x, const char *type, json_t *payload, const char *idem_key,
                   int64_t run_at, bool *existed);
void rtx_release(struct rtx *x);
const project_t *rtx_project(const struct rtx *x);
/* Appends an audit record about this run. */
int rtx_audit(struct rtx *x, const char *actor, const char *action, json_t *detail);
/* The gate of publish: awaiting approval, or auto-approved (audited) and publishing queued. */
int rtx_publish_gate(struct rtx *x);

/* Maps video tasks ([{task_id, video_index}]) to the run and applies the deliveries that came
 * before (the webhook inbox's 'early' ones within WEBHOOK_EARLY_TTL_S). */
int rtx_register_tasks(struct rtx *x, json_t *tasks);

/* steps.c: the job types. */
void steps_register(workflow_t *w, struct dispatcher *d);

#endif
