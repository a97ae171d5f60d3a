/*
 * impl: what the provider files share (not for callers outside src/providers/): the ops tables,
 * the providers object, and one call helper that sends a request through the HTTP client,
 * turns a failed answer into a prov_result with a clean error sentence, and frees the call
 * after the user's callback. Loop thread.
 */
#ifndef MYLOWARE_PROVIDERS_IMPL_H
#define MYLOWARE_PROVIDERS_IMPL_H

#include "providers/providers.h"

#define PROV_MAX_JSON (1u << 20) /* cap of every JSON answer */
#define PROV_URL_MAX 2048

/* One ops table per kind; each real client file defines one (registry in providers.c). */
struct llm_ops {
    const char *name;
    int (*chat)(providers_t *p, const struct llm_request *req, llm_cb cb, void *ud,
                prov_call_t **out);
};
struct sora_ops {
    const char *name;
    int (*create)(providers_t *p, const struct sora_create_req *req, sora_cb cb, void *ud,
                  prov_call_t **out);
    int (*status)(providers_t *p, const char *id, sora_cb cb, void *ud, prov_call_t **out);
    int (*download)(providers_t *p, const char *id, const char *path, download_cb cb, void *ud,
                    prov_call_t **out);
};
struct render_ops {
    const char *name;
    int (*submit)(providers_t *p, const struct render_submit_req *req, render_cb cb, void *ud,
                  prov_call_t **out);
    int (*status)(providers_t *p, const char *job_id, render_cb cb, void *ud, prov_call_t **out);
};
struct publish_ops {
    const char *name;
    int (*upload)(providers_t *p, const struct publish_req *req, publish_cb cb, void *ud,
                  prov_call_t **out);
    int (*status)(providers_t *p, const char *request_id, publish_cb cb, void *ud,
                  prov_call_t **out);
};
struct safety_ops {
    const char *name;
    int (*check)(providers_t *p, const char *text, safety_cb cb, void *ud, prov_call_t **out);
};
struct notify_ops {
    const char *name;
    int (*send)(providers_t *p, const char *chat_id, const char *text, notify_cb cb, void *ud,
                prov_call_t **out);
};

extern const struct llm_ops llm_openai_ops;
extern const struct sora_ops sora_openai_ops;
extern const struct render_ops render_remotion_ops;
extern const struct publish_ops publish_uploadpost_ops;
extern const struct safety_ops safety_openai_ops;
extern const struct notify_ops notify_telegram_ops;

struct providers {
    uv_loop_t *loop;
    const config_t *cfg;
    http_client_t *client;
    char self[PROV_URL_MAX];
    char base[PK__COUNT][PROV_URL_MAX];
    const char *mode[PK__COUNT];
    bool fake[PK__COUNT];
    const struct llm_ops *llm;
    const struct sora_ops *sora;
    const struct render_ops *render;
    const struct publish_ops *publish;
    const struct safety_ops *safety;
    const struct notify_ops *notify;
    int calls; /* in flight */
};

/*
 * Called with the HTTP answer of a call: parse r (r->outcome HC_OK) and call the user's
 * callback; on a failed answer, st is already filled (error sentence, retry_after) and the
 * handler only has to pass it on. Exactly one user callback per call.
 */
typedef void (*prov_answer_fn)(prov_call_t *pc, const struct http_response *r,
                               struct prov_result *st);

struct prov_call {
    providers_t *p;
    enum provider_kind kind;
    http_call_t *http;
    prov_answer_fn answer;
    void *cb, *ud;    /* the user's callback (cast by the kind) and its data */
    char *arg;        /* a copy of the call's id argument (errors, "Job not found: <id>") */
    uv_timer_t later; /* failures known before sending are delivered on the next turn */
    struct prov_result early;
    char early_error[256];
    bool cancelled, pending_early;
};

/* The "Authorization: ..." etc. header lines of a call (NULL-terminated, up to 8). */
struct prov_headers {
    char lines[8][600];
    const char *v[9];
    int n;
};
void prov_header(struct prov_headers *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts a call: req->provider is set to the kind's name; arg (may be NULL) is copied. */
int prov_send(providers_t *p, enum provider_kind kind, struct http_request *req,
              prov_answer_fn answer, void *cb, void *ud, const char *arg, prov_call_t **out);
/* A call that fails before sending (off, not configured): the callback runs on the next loop
 * turn with PROV_PERMANENT and this message. */
int prov_fail(providers_t *p, enum provider_kind kind, prov_answer_fn answer, void *cb, void *ud,
              const char *message, prov_call_t **out);
/* Frees a call after its user callback ran (the answer functions call it last). */
void prov_done(prov_call_t *pc);

/* Parses a JSON object answer; NULL (and st set to a permanent "<kind>: <what>") when the body
 * is not a JSON object. */
json_t *prov_json(prov_call_t *pc, const struct http_response *r, struct prov_result *st, char *err,
                  size_t cap);
/* Sets st to PROV_PERMANENT with "<kind>: <message>" (formatted into err). */
void prov_permanent(prov_call_t *pc, struct prov_result *st, char *err, size_t cap, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
/* The key for a kind: the configured one, or "fake" in fake mode; NULL when real and unset. */
const char *prov_key(providers_t *p, enum provider_kind kind, enum setting_id id);
/* True when s is 1-128 chars of [A-Za-z0-9_.:-] (ids put into URL paths). */
bool prov_id_ok(const char *s);
/* Removes every configured secret from s in place (replaced by ***). */
void prov_scrub(const providers_t *p, char *s);

#endif
