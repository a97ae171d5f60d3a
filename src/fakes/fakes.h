/*
 * fakes: HTTP fakes of the provider APIs (workflow.md §6), one file per provider, mounted as
 * routes under /_fake/... of the server itself (never with ENVIRONMENT=production: fakes_new is
 * not called and the routes answer 404) and runnable alone (`myloware fakes serve`). The real
 * clients of src/providers/ talk to them over HTTP.
 *
 *   POST /_fake/openai/v1/chat/completions        fake_llm.c (deterministic for the messages)
 *   POST /_fake/openai/v1/videos                  fake_video.c: renders a real clip
 *   GET  /_fake/openai/v1/videos/{id}                (media_synth_clip on the pool), then after
 *   GET  /_fake/openai/v1/videos/{id}/content        FAKE_VIDEO_DELAY_MS POSTs a signed
 *                                                    video.completed / video.failed event
 *   POST /_fake/openai/v1/moderations             fake_moderation.c (flags forbidden-test-phrase)
 *   POST /_fake/remotion/api/render               fake_remotion.c: downloads the clips, renders
 *   GET  /_fake/remotion/api/render/{id}             (media_render), signed callback
 *   GET  /_fake/remotion/output/{file}
 *   POST /_fake/upload-post/api/upload            fake_uploadpost.c
 *   GET  /_fake/upload-post/api/uploadposts/status
 *   POST /_fake/telegram/{bot}/sendMessage        fake_telegram.c
 *
 * State (videos, renders, uploads) lives on disk under MEDIA_DIR/fakes/, written atomically
 * (temp + rename) from pool threads, so a restart loses nothing: fakes_new resumes unfinished
 * videos and renders and re-delivers undelivered webhooks.
 *
 * Webhooks go to <self>/v1/webhooks/sora signed with OPENAI_WEBHOOK_SECRET (Standard Webhooks);
 * render callbacks to the request's callback_url signed with REMOTION_WEBHOOK_SECRET
 * (X-Remotion-Signature). <self> is the server's own base URL; `myloware fakes serve` (app.c)
 * sends the webhooks to MYLOWARE_URL instead. Without a configured secret (outside production)
 * config_finish derives a random one per process, which is right when the fakes run inside the
 * server; a separate `fakes serve` needs the same secrets as the server it calls.
 *
 * Loop thread, except the pool work inside fake_video.c and fake_remotion.c.
 */
#ifndef MYLOWARE_FAKES_FAKES_H
#define MYLOWARE_FAKES_FAKES_H

#include <jansson.h>
#include <uv.h>

#include "core/config.h"
#include "http/client.h"
#include "http/server.h"

typedef struct fakes fakes_t;

/*
 * Creates the fakes: state under MEDIA_DIR/fakes (created), webhooks to webhook_base (the
 * server receiving them), their own URLs under self_base + "/_fake". Resumes unfinished work.
 * Returns 0 or ERR_IO (cannot create the state directory; message logged).
 */
int fakes_new(uv_loop_t *loop, const config_t *cfg, http_client_t *client, const char *self_base,
              const char *webhook_base, fakes_t **out);
/* Stops timers and waits for pool work in flight; cb runs when everything is closed and freed. */
void fakes_close(fakes_t *f, void (*cb)(void *ud), void *ud);
/* Work in flight (renders, pending deliveries): for tests and shutdown. */
int fakes_busy(const fakes_t *f);

/* Route handlers, called by the thin wrappers of src/api/fakes.c (which answer 404 when the
 * app has no fakes). Each answers req, at once or later. */
void fake_llm_chat(fakes_t *f, http_req_t *req);
void fake_video_create(fakes_t *f, http_req_t *req);
void fake_video_get(fakes_t *f, http_req_t *req);
void fake_video_content(fakes_t *f, http_req_t *req);
void fake_moderation(fakes_t *f, http_req_t *req);
void fake_render_submit(fakes_t *f, http_req_t *req);
void fake_render_get(fakes_t *f, http_req_t *req);
void fake_render_output(fakes_t *f, http_req_t *req);
void fake_upload(fakes_t *f, http_req_t *req);
void fake_upload_status(fakes_t *f, http_req_t *req);
void fake_telegram_send(fakes_t *f, http_req_t *req);

/* The deterministic chat completion for a request body {model, messages, tools} (what
 * POST /_fake/openai/v1/chat/completions answers, minus "created"). Returns a new object, or
 * NULL with a message in err (the 400 detail). Pure; any thread. */
json_t *fake_llm_answer(const json_t *request, char *err, size_t cap);

#endif
