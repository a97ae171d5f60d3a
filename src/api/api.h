/*
 * api: the route table and its thin handlers (validate, call, reply). One file per resource.
 * Handlers run on the loop thread and never block it.
 */
#ifndef MYLOWARE_API_API_H
#define MYLOWARE_API_API_H

#include <stdbool.h>
#include <stddef.h>

#include "http/server.h"

/* Rate-limit classes (indexes into app->limiters). */
enum { RL_NONE, RL_RUN, RL_APPROVE, RL_PUBLIC_DEMO, RL__COUNT };

extern const struct route api_routes[];
extern const size_t api_nroutes;

struct app;
/* health.c: the cached database probe behind /health and /health/db. */
struct health *health_new(struct app *app);
/* Closes its timer (the memory goes in the close callback). Loop thread. */
void health_close(struct health *h);
/* True while a probe is on the database thread. */
bool health_busy(const struct health *h);
/* Runs fn(req) once the probe's results (database, storage, queue counts and the queue gauges
 * of /metrics) are at most a second old: at once, or when the probe in flight ends. Loop
 * thread. */
void health_then(http_req_t *req, void (*fn)(http_req_t *req));

void api_health(http_req_t *req);
void api_health_db(http_req_t *req);
void api_metrics(http_req_t *req);
void api_openapi(http_req_t *req);
void api_log_level_get(http_req_t *req);
void api_log_level_put(http_req_t *req);

void api_job_get(http_req_t *req);
void api_jobs_list(http_req_t *req);
void api_dlq_list(http_req_t *req);
void api_dlq_get(http_req_t *req);
void api_dlq_replay(http_req_t *req);
void api_dlq_resolve(http_req_t *req);
void api_test_jobs(http_req_t *req);

/* media.c: the /v1/media routes (files from storage, api.md §7) */
void api_media_transcoded(http_req_t *req);
void api_media_video(http_req_t *req);
void api_media_thumbnail(http_req_t *req);

/* fakes.c: the /_fake/... routes (404 without app->fakes). */
void api_fake_llm_chat(http_req_t *req);
void api_fake_video_create(http_req_t *req);
void api_fake_video_get(http_req_t *req);
void api_fake_video_content(http_req_t *req);
void api_fake_moderation(http_req_t *req);
void api_fake_render_submit(http_req_t *req);
void api_fake_render_get(http_req_t *req);
void api_fake_render_output(http_req_t *req);
void api_fake_upload(http_req_t *req);
void api_fake_upload_status(http_req_t *req);
void api_fake_telegram_send(http_req_t *req);
/* runs.c: the v1 run routes (api.md §4); webhooks.c: provider deliveries (api.md §6) */
void api_run_start(http_req_t *req);
void api_runs_list(http_req_t *req);
void api_run_get(http_req_t *req);
void api_run_artifacts(http_req_t *req);
void api_run_approve(http_req_t *req);
void api_run_cancel(http_req_t *req);
void api_run_feedback_add(http_req_t *req);
void api_run_feedback_list(http_req_t *req);
void api_run_events(http_req_t *req); /* events.c: server-sent events */
void api_webhook_sora(http_req_t *req);
void api_webhook_remotion(http_req_t *req);
/* stuck.c: runs waiting too long for a provider (api.md §9) */
void api_stuck_runs(http_req_t *req);
void api_cleanup_stuck_runs(http_req_t *req);
void api_v2_run_start(http_req_t *req);
void api_v2_run_approve(http_req_t *req);
void api_v2_run_reject(http_req_t *req);
void api_v2_run_resume(http_req_t *req);
void api_v2_run_state(http_req_t *req);
void api_v2_run_history(http_req_t *req);
/* demo.c: the public demo (api.md §8) */
void api_demo_start(http_req_t *req);
void api_demo_get(http_req_t *req);
void api_demo_approve(http_req_t *req);
void api_demo_reject(http_req_t *req);
void api_demo_video(http_req_t *req);
void api_demo_options(http_req_t *req);

/* Answers 422 validation_error with one field error. */
void api_field_error(http_req_t *req, const char *field, const char *message);

#endif
