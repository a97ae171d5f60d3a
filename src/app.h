/*
 * app: owns the loop and every component of `serve`; starts them in order and shuts them
 * down in reverse (signals, HTTP drain, store). Handlers reach the components through the
 * app pointer in each request.
 */
#ifndef MYLOWARE_APP_H
#define MYLOWARE_APP_H

#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "db/store.h"
#include "http/server.h"

struct health;
struct dispatcher;
struct storage;
struct http_client;
struct providers;
struct fakes;
struct workflow;

typedef struct app {
    uv_loop_t loop;
    const config_t *cfg;
    store_t *store;
    http_server_t *http;
    ratelimit_t *limiters[HTTP_MAX_RATE_CLASSES];
    struct health *health;
    struct dispatcher *dispatcher; /* NULL with --role api */
    struct storage *storage;       /* media files (storage/storage.h); shared with the workers */
    /* providers (src/providers/providers.h): created after the HTTP server listens */
    struct http_client *client;    /* the one outgoing HTTP client */
    struct providers *providers;   /* provider calls, real or pointed at the fakes */
    struct fakes *fakes;           /* /_fake/... routes; NULL in production */
    int providers_closing;         /* fakes and client closes under way */
    struct workflow *workflow;     /* the run engine and the projects (workflow/workflow.h) */
    uv_signal_t sigterm, sigint;
    uv_prepare_t log_prepare;
    uv_timer_t log_timer;
    int signals_seen;
    const char *role;     /* all, api, worker */
    bool stopping, finished, dispatcher_drained;
    int64_t started_ms;
    int exit_code;
} app_t;

struct app_opts {
    const char *role; /* "all" (serve), "api" (serve --role api), "worker" (worker run) */
    int concurrency;  /* worker threads; 0: WORKER_CONCURRENCY */
    bool once;        /* worker: exit when no job is ready */
    const struct demo_opts *demo; /* `myloware demo`: one whole run in-process (workflow/demo.h) */
};

/* Runs until SIGTERM/SIGINT (or, with once, until no job is left). Returns the exit code. */
int app_run(const config_t *cfg, const struct app_opts *opts);
/* Stops the app as a first SIGTERM would (drain, then exit with app->exit_code). Loop thread. */
void app_stop(app_t *app, const char *why);
/* Called when the health probe has nothing in flight (shutdown waits for it). Loop thread. */
void app_health_idle(app_t *app);
/* `myloware fakes serve`: the provider fakes alone on HOST:port (PORT when port < 0), their
 * video events sent to MYLOWARE_URL. Until SIGTERM/SIGINT; returns the exit code. */
int app_fakes_serve(const config_t *cfg, int port);
/* Opens the database and applies pending migrations; logs what it did. Returns 0 or ERR_*. */
int app_migrate(const config_t *cfg, store_t **out);

#endif
