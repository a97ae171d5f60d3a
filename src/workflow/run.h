/*
 * run: the run state machine (workflow.md §1-§2). A run is a row (db/store.h run_t); every
 * step is a job (queue/queue.h); a step's effects (artifacts, the artifacts view, provider
 * task ids) and the run's next status, with the next job, are committed in ONE transaction
 * (the step's on_complete), so a crash anywhere resumes from the last committed step. Waits
 * (gates, provider webhooks) hold no thread and no job. Every move is a guarded update
 * (run_update ... WHERE status = <the status read>), so of two racing decisions one wins and
 * the other sees ERR_CONFLICT (the API's 409).
 *
 *   workflow_start ----> pending ---------------- run.ideate (mark_running) ------+
 *                                                                                 v
 *                                                                      running/ideation
 *                                                      ideate_complete |  (ideator agent,
 *                                       gate ideation in hitl_gates?   |   safety on output)
 *                      yes <-------------------------------------------+--------> no (audit:
 *                       v                                                    auto-approved)
 *   awaiting_ideation_approval/ideation --workflow_gate approve--> running/production
 *                       |                                               | run.produce
 *                       +--reject--> rejected                           v (producer agent,
 *                                             awaiting_video_generation/wait_for_videos
 *                                                 sora_generate, tasks registered, early
 *                                                 webhooks applied)
 *      webhook.sora (download) -> clip.transcode (pool) -> clip_complete: clip artifact;
 *      the LAST clip (clips_ready == clips_expected, status still awaiting_video_generation)
 *      moves the run exactly once:            |
 *                                             v
 *                                 awaiting_render/editing --run.edit (editor agent,
 *                                             |               remotion_render tool)
 *                 local: render.local (pool)  |  remotion: submit -> awaiting_render/
 *                                             |            wait_for_render -> callback
 *                                             v
 *         gate publish in hitl_gates? yes: awaiting_publish_approval/publish_approval
 *                                     no: (audit: auto-approved)      |
 *                                                                     v approve (reject ->
 * rejected) running/publishing --run.publish (publisher agent, upload_post, safety on caption) | |
 *                          (processing) awaiting_publish/publishing         v
 *                                                +-----------------> completed/completed
 *
 *   any step fails for good (provider permanent error, video.failed, missing tool call,
 *   safety hit, a job out of attempts via the dead-letter hook) -> failed (error set)
 *   workflow_cancel from any non-terminal status -> cancelled (queued jobs cancelled)
 *   workflow_resume (v2 resume, workflow.md §5): failed -> the failed step again, etc.
 *
 * Guarantees per state: pending and running have exactly one unfinished step job; the
 * awaiting_* statuses have none but a provider task (clips, render) or a person (gates) to wait
 * for; terminal statuses (completed, failed, rejected, cancelled) never change again, and
 * webhooks or late job results for them are stored and ignored. The SQL CHECK constraints in
 * schema.sql use the same names.
 */
#ifndef MYLOWARE_WORKFLOW_RUN_H
#define MYLOWARE_WORKFLOW_RUN_H

#include <stdbool.h>

#define RUN_STATUSES(X)                                                                            \
    X(PENDING, "pending", false)                                                                   \
    X(RUNNING, "running", false)                                                                   \
    X(AWAIT_IDEATION, "awaiting_ideation_approval", false)                                         \
    X(AWAIT_VIDEOS, "awaiting_video_generation", false)                                            \
    X(AWAIT_RENDER, "awaiting_render", false)                                                      \
    X(AWAIT_PUBLISH_APPROVAL, "awaiting_publish_approval", false)                                  \
    X(AWAIT_PUBLISH, "awaiting_publish", false)                                                    \
    X(COMPLETED, "completed", true)                                                                \
    X(FAILED, "failed", true)                                                                      \
    X(REJECTED, "rejected", true)                                                                  \
    X(CANCELLED, "cancelled", true)

enum run_status {
#define X(id, name, terminal) RS_##id,
    RUN_STATUSES(X)
#undef X
        RS__COUNT
};

#define RUN_STEPS(X)                                                                               \
    X(NONE, "")                                                                                    \
    X(IDEATION, "ideation")                                                                        \
    X(PRODUCTION, "production")                                                                    \
    X(WAIT_VIDEOS, "wait_for_videos")                                                              \
    X(EDITING, "editing")                                                                          \
    X(WAIT_RENDER, "wait_for_render")                                                              \
    X(PUBLISH_APPROVAL, "publish_approval")                                                        \
    X(PUBLISHING, "publishing")                                                                    \
    X(COMPLETED, "completed")

enum run_step {
#define X(id, name) RSTEP_##id,
    RUN_STEPS(X)
#undef X
        RSTEP__COUNT
};

const char *run_status_name(enum run_status s);
/* -1 when unknown. */
int run_status_parse(const char *s);
bool run_status_terminal(enum run_status s);
/* True when the status name is terminal (unknown names: false). */
bool run_status_name_terminal(const char *s);
const char *run_step_name(enum run_step s);
int run_step_parse(const char *s);

#endif
