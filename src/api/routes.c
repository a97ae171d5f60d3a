/* routes: every route of the service, on one screen (api.md). */
#include "api/api.h"

const struct route api_routes[] = {
    /* method  pattern             handler            flags           rate class */
    {"GET", "/health", api_health, 0, RL_NONE},
    {"GET", "/health/db", api_health_db, 0, RL_NONE},
    {"GET", "/metrics", api_metrics, 0, RL_NONE},
    {"GET", "/openapi.json", api_openapi, 0, RL_NONE},
    {"GET", "/admin/log-level", api_log_level_get, R_AUTH, RL_NONE},
    {"PUT", "/admin/log-level", api_log_level_put, R_AUTH | R_JSON, RL_NONE},
    {"GET", "/v1/jobs/{id}", api_job_get, R_AUTH, RL_NONE},
    {"GET", "/admin/jobs", api_jobs_list, R_AUTH, RL_NONE},
    {"GET", "/admin/dlq", api_dlq_list, R_AUTH, RL_NONE},
    {"GET", "/admin/dlq/{id}", api_dlq_get, R_AUTH, RL_NONE},
    {"POST", "/admin/dlq/{id}/replay", api_dlq_replay, R_AUTH, RL_NONE},
    {"POST", "/admin/dlq/{id}/resolve", api_dlq_resolve, R_AUTH, RL_NONE},
    {"GET", "/v1/media/transcoded/{file}", api_media_transcoded, 0, RL_NONE},
    {"GET", "/v1/media/video/{id}", api_media_video, 0, RL_NONE},
    {"GET", "/v1/media/thumbnails/{file}", api_media_thumbnail, 0, RL_NONE},
    {"POST", "/v1/runs/start", api_run_start, R_AUTH | R_JSON, RL_RUN},
    {"GET", "/v1/runs", api_runs_list, R_AUTH, RL_NONE},
    {"GET", "/v1/runs/{id}", api_run_get, R_AUTH, RL_NONE},
    {"GET", "/v1/runs/{id}/artifacts", api_run_artifacts, R_AUTH, RL_NONE},
    {"POST", "/v1/runs/{id}/approve", api_run_approve, R_AUTH | R_JSON, RL_APPROVE},
    {"POST", "/v1/runs/{id}/cancel", api_run_cancel, R_AUTH | R_JSON, RL_APPROVE},
    {"POST", "/v1/runs/{id}/feedback", api_run_feedback_add, R_AUTH | R_JSON, RL_NONE},
    {"GET", "/v1/runs/{id}/feedback", api_run_feedback_list, R_AUTH, RL_NONE},
    {"POST", "/v1/webhooks/sora", api_webhook_sora, R_WEBHOOK | R_RAW, RL_NONE},
    {"POST", "/v1/webhooks/remotion", api_webhook_remotion, R_WEBHOOK | R_RAW, RL_NONE},
    {"POST", "/v2/runs/start", api_v2_run_start, R_AUTH | R_JSON, RL_RUN},
    {"GET", "/v2/runs/{id}", api_run_get, R_AUTH, RL_NONE},
    {"POST", "/v2/runs/{id}/approve", api_v2_run_approve, R_AUTH | R_JSON, RL_APPROVE},
    {"POST", "/v2/runs/{id}/approve/hitl", api_v2_run_approve, R_AUTH | R_JSON, RL_APPROVE},
    {"POST", "/v2/runs/{id}/reject", api_v2_run_reject, R_AUTH | R_JSON, RL_APPROVE},
    {"POST", "/v2/runs/{id}/resume", api_v2_run_resume, R_AUTH | R_JSON, RL_APPROVE},
    {"GET", "/v2/runs/{id}/state", api_v2_run_state, R_AUTH, RL_NONE},
    {"GET", "/v2/runs/{id}/history", api_v2_run_history, R_AUTH, RL_NONE},
    {"POST", "/_test/jobs", api_test_jobs, R_AUTH | R_JSON, RL_NONE}, /* ENVIRONMENT=test only */
    /* provider fakes (workflow.md §6): 404 with ENVIRONMENT=production */
    {"POST", "/_fake/openai/v1/chat/completions", api_fake_llm_chat, R_JSON, RL_NONE},
    {"POST", "/_fake/openai/v1/videos", api_fake_video_create, R_JSON, RL_NONE},
    {"GET", "/_fake/openai/v1/videos/{id}", api_fake_video_get, 0, RL_NONE},
    {"GET", "/_fake/openai/v1/videos/{id}/content", api_fake_video_content, 0, RL_NONE},
    {"POST", "/_fake/openai/v1/moderations", api_fake_moderation, R_JSON, RL_NONE},
    {"POST", "/_fake/remotion/api/render", api_fake_render_submit, R_JSON, RL_NONE},
    {"GET", "/_fake/remotion/api/render/{id}", api_fake_render_get, 0, RL_NONE},
    {"GET", "/_fake/remotion/output/{file}", api_fake_render_output, 0, RL_NONE},
    {"POST", "/_fake/upload-post/api/upload", api_fake_upload, R_RAW, RL_NONE},
    {"GET", "/_fake/upload-post/api/uploadposts/status", api_fake_upload_status, 0, RL_NONE},
    {"POST", "/_fake/telegram/{bot}/sendMessage", api_fake_telegram_send, R_JSON, RL_NONE},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
