/*
 * providers: the outside services a run talks to (runtime.md §3), one ops table per kind, each
 * real client in its own file (llm_openai.c, sora_openai.c, render_remotion.c,
 * publish_uploadpost.c, safety_openai.c, notify_telegram.c), chosen from the configuration:
 *
 *   kind     setting             modes                 calls
 *   llm      LLM_PROVIDER        fake | openai         POST {LLM_BASE_URL}/chat/completions
 *   sora     SORA_PROVIDER       fake | openai         POST/GET
 * {OPENAI_BASE_URL}/v1/videos[/{id}[/content]] render   RENDER_PROVIDER     local | remotion
 * POST/GET {REMOTION_SERVICE_URL}/api/render[/{id}] publish  PUBLISH_PROVIDER    fake | upload_post
 * POST {UPLOAD_POST_API_URL}/api/upload (multipart), GET .../api/uploadposts/status?request_id=
 *   safety   SAFETY_PROVIDER     off | openai          POST {OPENAI_BASE_URL}/v1/moderations
 *   notify   TELEGRAM_BOT_TOKEN  off | telegram        POST
 * https://api.telegram.org/bot<t>/sendMessage
 *
 * Fake mode runs the same real client code: only the base URL changes, to the fakes mounted in
 * the server itself under <self>/_fake (src/fakes/): llm <self>/_fake/openai/v1, sora and
 * safety <self>/_fake/openai, publish <self>/_fake/upload-post, and, when PROVIDERS=fake,
 * render (remotion) <self>/_fake/remotion and notify <self>/_fake/telegram. <self> is
 * PUBLIC_BASE_URL, else http://127.0.0.1:<port> (providers_self_base_url). Keys are sent as
 * configured (fake mode sends "fake" when a key is empty; the fakes accept any).
 * "local" render is not an HTTP call: the workflow renders on the pool with src/media/media.h;
 * providers_render_mode() tells which.
 *
 * Every call is asynchronous on the loop and ends in exactly one callback on the loop, with a
 * struct prov_result: PROV_OK, PROV_RETRY (timeouts, connection errors, 408, 429, 5xx; with
 * retry_after_s from Retry-After, else -1), PROV_PERMANENT (other 4xx, an answer that is not
 * the documented JSON or lacks a field, an answer over its cap, a provider that is off or not
 * configured), or PROV_CANCELLED (the client closed under it). error is one sentence naming
 * the provider and the reason, never a key, token or signature ("llm: HTTP 401 from
 * https://api.openai.com/v1/chat/completions: Incorrect API key provided" is fine: the text of
 * an error answer is kept, cut to 300 chars, minus anything that looks like our key).
 * Answers are capped (1 MiB JSON; downloads MAX_DOWNLOAD_BYTES) and validated.
 *
 * Function contract: returns 0 and the callback runs later (never inside the call), or
 * ERR_INVAL for bad arguments and then the callback never runs. All pointers in a result are
 * valid only during the callback (json_incref / copy to keep them).
 *
 * Loop thread only (functions and callbacks).
 */
#ifndef MYLOWARE_PROVIDERS_PROVIDERS_H
#define MYLOWARE_PROVIDERS_PROVIDERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "http/client.h"

typedef struct providers providers_t;
typedef struct prov_call prov_call_t; /* one call in flight (opaque) */

/* The names match the dispatcher's provider names (job_type.provider) and /health. */
enum provider_kind { PK_LLM, PK_SORA, PK_RENDER, PK_PUBLISH, PK_SAFETY, PK_NOTIFY, PK__COUNT };
extern const char *const provider_kind_names[PK__COUNT]; /* "llm", "sora", "render", ... */

enum prov_outcome { PROV_OK, PROV_RETRY, PROV_PERMANENT, PROV_CANCELLED };

struct prov_result {
    enum prov_outcome outcome;
    int http_status;   /* 0 when no answer */
    int retry_after_s; /* -1 when the provider gave none */
    const char *error; /* "" on PROV_OK */
};

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* <self>: PUBLIC_BASE_URL without a trailing '/', else "http://127.0.0.1:<port>". */
void providers_self_base_url(const config_t *cfg, int port, char *out, size_t cap);

/*
 * Creates the providers over client (borrowed; must outlive them). self_base_url is this
 * server's base (providers_self_base_url); the fakes' base "<self>/_fake" is trusted by the
 * client's URL guard. Returns 0 or ERR_INVAL (message in err: a mode whose settings are
 * unusable, e.g. RENDER_PROVIDER=remotion without REMOTION_SERVICE_URL in real mode).
 */
int providers_new(uv_loop_t *loop, const config_t *cfg, http_client_t *client,
                  const char *self_base_url, providers_t **out, buf_t *err);
/* Frees; every call must have completed or been cancelled (close the client first). */
void providers_free(providers_t *p);

/* "fake", "openai", "local", "remotion", "upload_post", "off", "telegram". */
const char *providers_mode(const providers_t *p, enum provider_kind k);
/* True when the kind's base URL is one of our fakes. */
bool providers_is_fake(const providers_t *p, enum provider_kind k);
/* The base URL calls of this kind go to ("" for local render / off). */
const char *providers_base_url(const providers_t *p, enum provider_kind k);
/* This server's base URL (for callback and media URLs). */
const char *providers_self_url(const providers_t *p);
http_client_t *providers_client(providers_t *p);

/* Aborts a call: its callback never runs. The handle is invalid afterwards. */
void prov_call_cancel(prov_call_t *call);

/* ---- llm: OpenAI-compatible chat completions with tools ------------------------------------- */

/*
 * What the fake LLM reads (src/fakes/fake_llm.c), so the workflow must put it in the messages
 * (a real model needs the same facts):
 *   - the calling agent is recognised by the tools offered: no tools = ideator,
 *     "sora_generate" = producer, "remotion_render" = editor, "upload_post" = publisher;
 *     when the last message has role "tool" the agent is done and answers text only;
 *   - the ideator's user message is "Brief:\n<brief>" (workflow.md §2);
 *   - facts come from ```json fenced blocks (or a whole message that is a JSON object) in the
 *     system and user messages, merged key by key (later wins):
 *       project (string), video_count (int), clip_seconds (int), aspect_ratio (string),
 *       caption_template (string, "{topic}" replaced), tags (array of strings),
 *       topic (string), ideas (array of {index, title, visual, voice_over, overlay}),
 *       clips (array of URL strings), template (string), duration_seconds (number),
 *       video_url (string).
 * Answers are deterministic for the same messages and tools.
 */
struct llm_request {
    const char *model; /* NULL: LLM_MODEL (a project agent's model overrides) */
    json_t *messages;  /* array of {role, content[, tool_calls][, tool_call_id]} (borrowed) */
    json_t *tools;     /* array of {"type":"function","function":{name, description,
                          parameters}}, or NULL (borrowed) */
};

struct llm_tool_call {
    const char *id;
    const char *name;
    const char *arguments; /* the JSON text as the model sent it (not yet validated) */
};

struct llm_result {
    struct prov_result st;
    json_t *message;     /* the assistant message {role, content, tool_calls?}: append it as is */
    const char *content; /* NULL when the model sent none */
    const struct llm_tool_call *tool_calls;
    size_t ntool_calls;
    const char *finish_reason; /* "stop", "tool_calls", ... or "" */
    int64_t prompt_tokens, completion_tokens;
};

typedef void (*llm_cb)(const struct llm_result *r, void *ud);
/* POST {base}/chat/completions {model, messages, tools?}; timeout LLM_TIMEOUT_MS. The answer
 * must have choices[0].message with a string-or-null content and well-formed tool_calls
 * ({id, type:"function", function:{name, arguments: string}}), else PROV_PERMANENT. */
int provider_llm_chat(providers_t *p, const struct llm_request *req, llm_cb cb, void *ud,
                      prov_call_t **out);

/* ---- sora: OpenAI videos -------------------------------------------------------------------- */

struct sora_create_req {
    const char *prompt;          /* required */
    int seconds;                 /* 4, 8 or 12 (sent as a string) */
    const char *size;            /* "720x1280" or "1280x720" */
    const char *model;           /* NULL: "sora-2" */
    const char *idempotency_key; /* sent as Idempotency-Key (e.g. "<run_id>:<index>"), or NULL */
    int video_index;             /* sent as X-Myloware-Video-Index (the fake draws the number and
                                    applies FAKE_VIDEO_FAIL_INDEX); -1: not sent */
};

struct sora_video {
    const char *id;     /* "video_..." */
    const char *status; /* "queued", "in_progress", "completed", "failed" */
    int progress;       /* 0..100 */
    const char *error;  /* error.message, or NULL */
};

struct sora_result {
    struct prov_result st;
    struct sora_video video;
};

struct download_result {
    struct prov_result st;
    const char *path;
    uint64_t bytes;
};

typedef void (*sora_cb)(const struct sora_result *r, void *ud);
typedef void (*download_cb)(const struct download_result *r, void *ud);

/* POST {base}/v1/videos; the answer needs a string id. Timeout 60 s. */
int provider_sora_create(providers_t *p, const struct sora_create_req *req, sora_cb cb, void *ud,
                         prov_call_t **out);
/* GET {base}/v1/videos/{id}. */
int provider_sora_status(providers_t *p, const char *video_id, sora_cb cb, void *ud,
                         prov_call_t **out);
/* GET {base}/v1/videos/{id}/content, streamed to path (temp name, renamed when complete; capped
 * at MAX_DOWNLOAD_BYTES). Timeout 300 s. */
int provider_sora_download(providers_t *p, const char *video_id, const char *path, download_cb cb,
                           void *ud, prov_call_t **out);

/*
 * Downloads a URL that came from outside (a legacy webhook's resultUrls, a Remotion
 * output_url) to path through the URL guard (client.h). kind labels the call.
 */
int provider_download_url(providers_t *p, enum provider_kind kind, const char *url,
                          const char *path, download_cb cb, void *ud, prov_call_t **out);

/* ---- render: Remotion service --------------------------------------------------------------- */

enum render_mode { RENDER_LOCAL, RENDER_REMOTION };
enum render_mode providers_render_mode(const providers_t *p);

struct render_submit_req {
    const char *run_id;
    const char *const *clips; /* clip URLs in index order */
    size_t nclips;
    int duration_frames, fps, width, height;
    const char *callback_url;  /* <self>/v1/webhooks/remotion?run_id=<run_id>, or NULL */
    const char *template_name; /* "aismr", "motivational" */
    const char *const *texts;  /* overlay lines, or NULL */
    size_t ntexts;
};

struct render_job {
    const char *job_id;
    const char *status;     /* "queued", "rendering", "done", "error" (as the service says) */
    double progress;        /* 0..1 */
    const char *output_url; /* or NULL */
    const char *error;      /* or NULL */
};

struct render_result {
    struct prov_result st;
    struct render_job job;
};

typedef void (*render_cb)(const struct render_result *r, void *ud);
/* POST {base}/api/render, Bearer REMOTION_API_SECRET (and x-api-key); 202/200 with a string
 * job_id. Timeout 30 s. PROV_PERMANENT when the mode is local. */
int provider_render_submit(providers_t *p, const struct render_submit_req *req, render_cb cb,
                           void *ud, prov_call_t **out);
/* GET {base}/api/render/{job_id}: status, progress, output_url, error. 404: PROV_PERMANENT
 * "Job not found: <id>". Timeout 10 s. */
int provider_render_status(providers_t *p, const char *job_id, render_cb cb, void *ud,
                           prov_call_t **out);

/* ---- publish: Upload-Post ------------------------------------------------------------------- */

struct publish_req {
    const char *video_url; /* public URL of the final video */
    const char *caption;   /* sent as title */
    const char *const *tags;
    size_t ntags;
    const char *user;     /* NULL: UPLOAD_POST_USER (empty: "myloware") */
    const char *platform; /* NULL: "tiktok" */
};

struct publish_result {
    struct prov_result st;
    const char *status;     /* "published" (url set), "processing" (request_id set), "failed" */
    const char *url;        /* the post URL, or NULL */
    const char *request_id; /* for provider_publish_status, or NULL */
};

typedef void (*publish_cb)(const struct publish_result *r, void *ud);
/* POST {base}/api/upload, multipart video, title, user, platform[], tags[];
 * Authorization: Apikey <key>. Timeout 60 s. An answer with success:false or a failed status is
 * PROV_PERMANENT with the provider's message. */
int provider_publish_upload(providers_t *p, const struct publish_req *req, publish_cb cb, void *ud,
                            prov_call_t **out);
/* GET {base}/api/uploadposts/status?request_id=<id>. Timeout 30 s. */
int provider_publish_status(providers_t *p, const char *request_id, publish_cb cb, void *ud,
                            prov_call_t **out);

/* ---- safety: OpenAI moderation -------------------------------------------------------------- */

struct safety_result {
    struct prov_result st;
    bool flagged;
    const char *category; /* first flagged category ("violence", "harassment", ...), or NULL */
};

typedef void (*safety_cb)(const struct safety_result *r, void *ud);
bool providers_safety_enabled(const providers_t *p); /* SAFETY_PROVIDER=openai */
/* POST {base}/v1/moderations {"input": text}; timeout SAFETY_TIMEOUT_MS. Off: PROV_PERMANENT
 * "safety provider is off". The caller is fail-closed: anything but PROV_OK is 503. */
int provider_safety_check(providers_t *p, const char *text, safety_cb cb, void *ud,
                          prov_call_t **out);

/* ---- notify: Telegram ----------------------------------------------------------------------- */

struct notify_result {
    struct prov_result st;
};

typedef void (*notify_cb)(const struct notify_result *r, void *ud);
bool providers_notify_enabled(const providers_t *p); /* TELEGRAM_BOT_TOKEN set */
/* POST {base}/bot<token>/sendMessage {chat_id, text}; the token never appears in errors or
 * logs. Timeout 10 s. Disabled: PROV_PERMANENT "telegram is not configured". */
int provider_notify_send(providers_t *p, const char *chat_id, const char *text, notify_cb cb,
                         void *ud, prov_call_t **out);

#endif
