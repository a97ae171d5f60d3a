/*
 * fakes: the /_fake/... routes (workflow.md §6). Thin wrappers that hand the request to the
 * provider fakes of src/fakes/, or answer 404 when the app has none (ENVIRONMENT=production,
 * or a process without them). Loop thread.
 */
#include "fakes/fakes.h"
#include "api/api.h"
#include "app.h"

#define FAKE_ROUTE(name, fn)                                                                       \
    void name(http_req_t *req) {                                                                   \
        app_t *app = req->app;                                                                     \
        if (!app || !app->fakes) {                                                                 \
            http_respond_error(req, 404, "not_found", "Not found", NULL, NULL);                    \
            return;                                                                                \
        }                                                                                          \
        fn(app->fakes, req);                                                                       \
    }

FAKE_ROUTE(api_fake_llm_chat, fake_llm_chat)
FAKE_ROUTE(api_fake_video_create, fake_video_create)
FAKE_ROUTE(api_fake_video_get, fake_video_get)
FAKE_ROUTE(api_fake_video_content, fake_video_content)
FAKE_ROUTE(api_fake_moderation, fake_moderation)
FAKE_ROUTE(api_fake_render_submit, fake_render_submit)
FAKE_ROUTE(api_fake_render_get, fake_render_get)
FAKE_ROUTE(api_fake_render_output, fake_render_output)
FAKE_ROUTE(api_fake_upload, fake_upload)
FAKE_ROUTE(api_fake_upload_status, fake_upload_status)
FAKE_ROUTE(api_fake_telegram_send, fake_telegram_send)
