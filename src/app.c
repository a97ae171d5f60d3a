/*
 * app: start order and reverse-order shutdown of `serve` and `worker run`. Main (loop) thread.
 *
 * Start: migrate, loop, store completions on the loop, HTTP (unless worker), dispatcher
 * (unless --role api), signals. Stop (first SIGTERM/SIGINT): the HTTP server drains and the
 * dispatcher drains, side by side; once both are done and no database unit is waiting for its
 * completion, the handles close and the loop ends. A second signal exits at once.
 */
#include "app.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/cpuprio.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sched.h"
#include "fakes/fakes.h"
#include "http/client.h"
#include "media/jobs.h"
#include "providers/providers.h"
#include "queue/dispatcher.h"
#include "queue/testjobs.h"
#include "storage/storage.h"
#include "workflow/demo.h"
#include "workflow/retention.h"
#include "workflow/workflow.h"

int app_migrate(const config_t *cfg, store_t **out) {
    buf_t err;
    buf_init(&err, 4096);
    store_t *s = NULL;
    int from = 0, to = 0;
    int rc = store_open(cfg, &s, &err);
    if (rc == 0)
        rc = store_migrate(s, &from, &to, &err);
    if (rc) {
        log_error("db", "cannot prepare the database", LF_S("error", err.data ? err.data : ""));
        store_close(s);
        buf_release(&err);
        return rc;
    }
    if (to != from)
        log_info("db", "schema migrated", LF_S("backend", store_backend(s)), LF_I("from", from),
                 LF_I("to", to));
    buf_release(&err);
    if (out)
        *out = s;
    else
        store_close(s);
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ---- shutdown -----------------------------------------------------------------------------------
 */

static void store_idle(void *ud);
static bool close_providers(app_t *app);

/* Batched log lines (info and debug: the access lines) reach stderr at most LOG_FLUSH_MS after
 * they were made, in one write: a write per loop turn was 10,000 syscalls a second on the loop
 * thread under load, and the p99 of GET /health with the access log on was nginx's plus 1-2%
 * (without it, 3% under). Warnings and errors are written at once (core/log.c); the rest are
 * flushed when the loop ends. */
#define LOG_FLUSH_MS 10
static void flush_timer_cb(uv_timer_t *t) {
    (void)t;
    log_flush();
}
static void flush_logs(uv_prepare_t *p) { /* before the loop polls */
    app_t *app = p->data;
    if (log_pending() && !uv_is_active((uv_handle_t *)&app->log_timer))
        uv_timer_start(&app->log_timer, flush_timer_cb, LOG_FLUSH_MS, 0);
}
static void log_flusher_start(app_t *app) {
    uv_prepare_init(&app->loop, &app->log_prepare);
    app->log_prepare.data = app;
    uv_prepare_start(&app->log_prepare, flush_logs);
    uv_timer_init(&app->loop, &app->log_timer);
    uv_unref((uv_handle_t *)&app->log_timer); /* it never keeps the loop alive */
}
static void log_flusher_close(app_t *app) { /* what is left is written by log_batch_end() */
    uv_close((uv_handle_t *)&app->log_prepare, NULL);
    uv_close((uv_handle_t *)&app->log_timer, NULL);
}

/* Every piece that was running has stopped: close the rest so the loop ends. */
static void finish(app_t *app) {
    if (app->finished || !app->stopping || app->http ||
        (app->dispatcher && !app->dispatcher_drained) || health_busy(app->health))
        return;
    if (store_pending(app->store) > 0) {
        store_when_idle(app->store, store_idle, app);
        return;
    }
    if (close_providers(app))
        return; /* finish runs again once the fakes and the client are closed */
    app->finished = true;
    if (app->dispatcher && dispatcher_running(app->dispatcher) > 0) {
        /* handed-back jobs still on pool threads: their leases are released; do not wait */
        log_info("app", "stopped (handed-back work abandoned)");
        log_batch_end();
        store_detach_loop(app->store);
        store_close(app->store);
        _exit(0);
    }
    store_detach_loop(app->store);
    if (app->dispatcher) {
        dispatcher_close(app->dispatcher);
        app->dispatcher = NULL;
    }
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    log_flusher_close(app);
    health_close(app->health); /* freed in its close callback */
    app->health = NULL;
}

static void store_idle(void *ud) { finish(ud); }

/* ---- providers: the HTTP client, the provider calls and the fakes -------------------------------
 */

static void fakes_finish(app_t *app);

static void on_fakes_closed(void *ud) {
    app_t *app = ud;
    app->providers_closing--;
    if (strcmp(app->role, "fakes") == 0)
        fakes_finish(app);
    else
        finish(app);
}

static void on_client_closed(void *ud) {
    app_t *app = ud;
    app->providers_closing--;
    if (strcmp(app->role, "fakes") == 0)
        fakes_finish(app);
    else
        finish(app);
}

/* Fakes first (their deliveries use the client), then the client. True while closing. */
static bool close_providers(app_t *app) {
    if (app->providers_closing > 0)
        return true;
    if (app->fakes) {
        fakes_t *f = app->fakes;
        app->fakes = NULL;
        app->providers_closing++;
        fakes_close(f, on_fakes_closed, app);
        return true;
    }
    if (app->client) {
        /* the client first: closing it completes the provider calls still in flight (their
         * callbacks use the providers), then the providers can go */
        http_client_t *c = app->client;
        app->client = NULL;
        app->providers_closing++;
        http_client_close(c, on_client_closed, app);
        providers_free(app->providers);
        app->providers = NULL;
        return true;
    }
    return false;
}

/* The client, the providers, and (unless production, and only with HTTP) the fakes, whose
 * webhooks go to webhook_base (NULL: this server). */
static int start_providers(app_t *app, bool mount_fakes, const char *webhook_base) {
    const config_t *cfg = app->cfg;
    int port = app->http ? http_server_port(app->http) : (int)config_int(cfg, S_PORT);
    char self[1024];
    providers_self_base_url(cfg, port, self, sizeof self);
    struct http_client_opts o = {.allow_private = config_bool(cfg, S_ALLOW_PRIVATE_URLS),
                                 .allowed_domains = config_str(cfg, S_ALLOWED_MEDIA_DOMAINS),
                                 .max_download = (uint64_t)config_int(cfg, S_MAX_DOWNLOAD_BYTES)};
    if (http_client_new(&app->loop, &o, &app->client) != 0) {
        log_error("app", "cannot create the HTTP client");
        return ERR_INTERNAL;
    }
    buf_t err;
    buf_init(&err, 1024);
    int rc = providers_new(&app->loop, cfg, app->client, self, &app->providers, &err);
    if (rc != 0) {
        log_error("app", "cannot set up the providers", LF_S("error", err.data ? err.data : ""));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    if (mount_fakes && strcmp(config_str(cfg, S_ENVIRONMENT), "production") != 0)
        return fakes_new(&app->loop, cfg, app->client, self, webhook_base ? webhook_base : self,
                         &app->fakes);
    return 0;
}

void app_health_idle(app_t *app) { finish(app); }

static void on_http_drained(http_server_t *s, void *ud) {
    app_t *app = ud;
    log_info("app", "http drained");
    http_server_close(s);
    app->http = NULL;
    finish(app);
}

static void on_dispatcher_drained(dispatcher_t *d, void *ud) {
    app_t *app = ud;
    log_info("app", "jobs drained", LF_I("completed", (long long)dispatcher_completed(d)));
    app->dispatcher_drained = true;
    finish(app);
}

static void stop(app_t *app, const char *why) {
    if (app->stopping)
        return;
    app->stopping = true;
    uint64_t grace = (uint64_t)config_int(app->cfg, S_SHUTDOWN_GRACE_S) * 1000;
    log_info("app", "shutting down", LF_S("reason", why), LF_I("grace_ms", (long long)grace),
             LF_I("connections", app->http ? http_server_connections(app->http) : 0),
             LF_I("running_jobs", app->dispatcher ? dispatcher_running(app->dispatcher) : 0));
    if (app->http)
        http_server_drain(app->http, grace, on_http_drained, app);
    store_unwatch_jobs(app->store);
    if (app->dispatcher)
        dispatcher_drain(app->dispatcher, grace, on_dispatcher_drained, app);
    finish(app);
}

void app_stop(app_t *app, const char *why) { stop(app, why); }

static void on_signal(uv_signal_t *sig, int signum) {
    app_t *app = sig->data;
    if (++app->signals_seen > 1) {
        log_warn("app", "second signal, exiting now", LF_I("signal", signum)); /* flushes */
        _exit(1);
    }
    stop(app, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_worker_idle(dispatcher_t *d, void *ud) { stop(ud, "no job left (--once)"); }

/* ---- start --------------------------------------------------------------------------------------
 */

static int start_http(app_t *app) {
    const config_t *cfg = app->cfg;
    static const enum setting_id rate_setting[RL__COUNT] = {
        0, S_RUN_RATE_LIMIT, S_APPROVE_RATE_LIMIT, S_PUBLIC_DEMO_RATE_LIMIT};
    http_server_opts_t o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < RL__COUNT; i++) {
        int64_t n;
        double per;
        config_rate(cfg, rate_setting[i], &n, &per);
        app->limiters[i] = ratelimit_new(n, per, 100000);
        o.limiters[i] = app->limiters[i];
    }
    o.host = config_str(cfg, S_HOST);
    o.port = (int)config_int(cfg, S_PORT);
    o.routes = api_routes;
    o.nroutes = api_nroutes;
    o.app = app;
    o.max_body = (size_t)config_int(cfg, S_MAX_BODY_BYTES);
    o.max_webhook_body = (size_t)config_int(cfg, S_WEBHOOK_MAX_BODY_BYTES);
    o.idle_timeout_ms = (uint64_t)config_int(cfg, S_HTTP_IDLE_TIMEOUT_MS);
    o.request_timeout_ms = (uint64_t)config_int(cfg, S_HTTP_REQUEST_TIMEOUT_MS);
    o.max_connections = (int)config_int(cfg, S_HTTP_MAX_CONNECTIONS);
    o.nkeys = config_api_keys(cfg, o.keys, o.key_lens, HTTP_MAX_KEYS);
    o.access_log = true;
    if (http_server_new(&app->loop, &o, &app->http) != 0)
        return ERR_IO;
    log_info("app", "listening", LF_S("host", o.host), LF_I("port", http_server_port(app->http)),
             LF_S("version", MYLOWARE_VERSION), LF_S("environment", config_str(cfg, S_ENVIRONMENT)),
             LF_S("database", store_backend(app->store)), LF_S("role", app->role));
    return 0;
}

/* Another process enqueued jobs of type, NULL: of any type (backends that notify: Postgres).
 * Loop thread. */
static void on_jobs_notified(void *ud, const char *type) {
    app_t *app = ud;
    if (!app->dispatcher || app->stopping)
        return;
    if (type)
        dispatcher_kick_type(app->dispatcher, type);
    else
        dispatcher_kick(app->dispatcher);
}

static void start_dispatcher(app_t *app, int workers, bool once) {
    app->dispatcher = dispatcher_new(&app->loop, app->store, app->cfg, workers, app);
    /* media work (transcode, render, clip synthesis) shares one cap */
    dispatcher_set_group_cap(app->dispatcher, "media",
                             (int)config_int(app->cfg, S_TRANSCODE_MAX_CONCURRENCY));
    /* ... and runs below the loop's CPU priority (core/cpuprio.h) */
    dispatcher_set_group_priority(app->dispatcher, "media",
                                  cpuprio_parse(config_str(app->cfg, S_TRANSCODE_PRIORITY)));
    media_jobs_register(app->dispatcher, app->cfg);
    if (strcmp(config_str(app->cfg, S_ENVIRONMENT), "test") == 0)
        testjobs_register(app->dispatcher);
    workflow_register(app->workflow, app->dispatcher);
    dispatcher_start(app->dispatcher, once, once ? on_worker_idle : NULL, app);
    store_watch_jobs(app->store, &app->loop, on_jobs_notified, app); /* SQLite: no-op, polling */
    if (!once)
        retention_start(app); /* finished runs' clips go after MEDIA_RETENTION_HOURS */
}

int app_run(const config_t *cfg, const struct app_opts *opts) {
    app_t app_storage, *app = &app_storage;
    memset(app, 0, sizeof *app);
    app->cfg = cfg;
    app->role = opts->role;
    app->started_ms = clock_now_ms();
    app->exit_code = 1;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    metrics_init();
    /* the worker count: --concurrency, else WORKER_CONCURRENCY, else the CPUs; it sizes
     * libuv's pool (read when the pool starts) and caps the pool job types */
    int workers =
        opts->concurrency > 0 ? opts->concurrency : (int)config_int(cfg, S_WORKER_CONCURRENCY);
    if (workers <= 0)
        workers = (int)uv_available_parallelism();
    char nthreads[24];
    /* + 2: file answers (http/file.c) and storage uv_fs_* calls share libuv's pool; the pool job
     * types are capped at `workers`, so these threads stay free for them while transcodes run */
    snprintf(nthreads, sizeof nthreads, "%d", workers + 2);
    setenv("UV_THREADPOOL_SIZE", nthreads, 1);

    if (app_migrate(cfg, &app->store) != 0)
        return 1;
    if (make_dirs(config_str(cfg, S_MEDIA_DIR)) != 0)
        log_warn("app", "cannot create the media directory",
                 LF_S("dir", config_str(cfg, S_MEDIA_DIR)), LF_S("error", strerror(errno)));
    buf_t serr;
    buf_init(&serr, 1024);
    if (storage_open(cfg, &app->storage, &serr) != 0) {
        log_error("app", "cannot open the media storage",
                  LF_S("error", serr.data ? serr.data : ""));
        buf_release(&serr);
        store_close(app->store);
        return 1;
    }
    buf_release(&serr);
    buf_t werr;
    buf_init(&werr, 4096);
    if (workflow_new(app, &app->workflow, &werr) != 0) {
        log_error("app", "cannot load the projects", LF_S("error", werr.data ? werr.data : ""));
        buf_release(&werr);
        storage_free(app->storage);
        store_close(app->store);
        return 1;
    }
    buf_release(&werr);
    uv_loop_init(&app->loop);
    log_batch_begin();
    log_flusher_start(app);
    app->health = health_new(app);
    store_attach_loop(app->store, &app->loop);

    bool worker = strcmp(opts->role, "worker") == 0;
    if (!worker && start_http(app) != 0)
        goto out;
    if (start_providers(app, !worker, NULL) != 0)
        goto out;
    if (app->http)
        storage_set_port(app->storage, http_server_port(app->http));
    if (strcmp(opts->role, "api") != 0)
        start_dispatcher(app, workers, opts->once);
    if (opts->demo && demo_start(app, opts->demo) != 0)
        goto out;
    if (worker)
        log_info("app", "worker started", LF_S("version", MYLOWARE_VERSION),
                 LF_B("once", opts->once));
    uv_signal_init(&app->loop, &app->sigterm);
    uv_signal_init(&app->loop, &app->sigint);
    app->sigterm.data = app->sigint.data = app;
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_signal, SIGINT);

    /* the loop thread: picked sooner after each wake-up on busy CPUs (HTTP p99, issue 2) */
    if (config_int(app->cfg, S_HTTP_LOOP_SLICE_US) > 0)
        sched_short_slice((unsigned)config_int(app->cfg, S_HTTP_LOOP_SLICE_US));
    uv_run(&app->loop, UV_RUN_DEFAULT);
    if (!opts->demo) /* the demo sets its own: 0 only when its run completed */
        app->exit_code = 0;
out:
    if (app->http) {
        http_server_close(app->http);
        app->http = NULL;
    }
    if (app->fakes) {
        fakes_close(app->fakes, NULL, NULL);
        app->fakes = NULL;
    }
    if (app->client) {
        http_client_close(app->client, NULL, NULL); /* before the providers: see close_providers */
        app->client = NULL;
        providers_free(app->providers);
        app->providers = NULL;
    }
    if (!app->finished)
        store_detach_loop(app->store);
    if (app->dispatcher)
        dispatcher_close(app->dispatcher);
    health_close(app->health);
    app->health = NULL;
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app->loop) != 0)
        log_warn("app", "loop closed with open handles");
    for (int i = 0; i < RL__COUNT; i++)
        ratelimit_free(app->limiters[i]);
    store_close(app->store);
    storage_free(app->storage);
    workflow_free(app->workflow);
    metrics_release();
    if (app->exit_code == 0)
        log_info("app", "stopped");
    log_batch_end();
    return app->exit_code;
}

/* ---- `myloware fakes serve` ---------------------------------------------------------------------
 */

static struct route fake_routes[64];
static size_t nfake_routes;

static void fakes_finish(app_t *app) {
    if (app->http || close_providers(app) || app->finished)
        return;
    app->finished = true;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    log_flusher_close(app);
}

static void on_fakes_http_drained(http_server_t *s, void *ud) {
    app_t *app = ud;
    http_server_close(s);
    app->http = NULL;
    fakes_finish(app);
}

static void on_fakes_signal(uv_signal_t *sig, int signum) {
    app_t *app = sig->data;
    if (++app->signals_seen > 1)
        _exit(1);
    app->stopping = true;
    log_info("app", "shutting down", LF_S("reason", signum == SIGTERM ? "SIGTERM" : "SIGINT"));
    http_server_drain(app->http, (uint64_t)config_int(app->cfg, S_SHUTDOWN_GRACE_S) * 1000,
                      on_fakes_http_drained, app);
}

int app_fakes_serve(const config_t *cfg, int port) {
    if (strcmp(config_str(cfg, S_ENVIRONMENT), "production") == 0) {
        log_error("app", "the provider fakes never run with ENVIRONMENT=production");
        return 1;
    }
    app_t app_storage, *app = &app_storage;
    memset(app, 0, sizeof *app);
    app->cfg = cfg;
    app->role = "fakes";
    app->started_ms = clock_now_ms();
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    metrics_init();
    if (make_dirs(config_str(cfg, S_MEDIA_DIR)) != 0)
        log_warn("app", "cannot create the media directory",
                 LF_S("dir", config_str(cfg, S_MEDIA_DIR)));
    nfake_routes = 0;
    for (size_t i = 0; i < api_nroutes && nfake_routes < sizeof fake_routes / sizeof fake_routes[0];
         i++)
        if (strncmp(api_routes[i].pattern, "/_fake/", 7) == 0)
            fake_routes[nfake_routes++] = api_routes[i];
    uv_loop_init(&app->loop);
    log_batch_begin();
    log_flusher_start(app);
    http_server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = config_str(cfg, S_HOST);
    o.port = port >= 0 ? port : (int)config_int(cfg, S_PORT);
    o.routes = fake_routes;
    o.nroutes = nfake_routes;
    o.app = app;
    o.max_body = (size_t)config_int(cfg, S_MAX_BODY_BYTES);
    o.max_webhook_body = (size_t)config_int(cfg, S_WEBHOOK_MAX_BODY_BYTES);
    o.idle_timeout_ms = (uint64_t)config_int(cfg, S_HTTP_IDLE_TIMEOUT_MS);
    o.request_timeout_ms = (uint64_t)config_int(cfg, S_HTTP_REQUEST_TIMEOUT_MS);
    o.max_connections = (int)config_int(cfg, S_HTTP_MAX_CONNECTIONS);
    o.access_log = true;
    int rc = 1;
    if (http_server_new(&app->loop, &o, &app->http) != 0)
        goto out;
    if (start_providers(app, true, config_str(cfg, S_MYLOWARE_URL)) != 0)
        goto out;
    log_info("app", "listening", LF_S("host", o.host), LF_I("port", http_server_port(app->http)),
             LF_S("version", MYLOWARE_VERSION), LF_S("role", "fakes"),
             LF_S("webhooks_to", config_str(cfg, S_MYLOWARE_URL)));
    uv_signal_init(&app->loop, &app->sigterm);
    uv_signal_init(&app->loop, &app->sigint);
    app->sigterm.data = app->sigint.data = app;
    uv_signal_start(&app->sigterm, on_fakes_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_fakes_signal, SIGINT);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (app->http)
        http_server_close(app->http);
    if (app->fakes)
        fakes_close(app->fakes, NULL, NULL);
    if (app->client) {
        http_client_close(app->client, NULL, NULL); /* before the providers: see close_providers */
        providers_free(app->providers);
    }
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app->loop) != 0)
        log_warn("app", "loop closed with open handles");
    metrics_release();
    if (rc == 0)
        log_info("app", "stopped");
    log_batch_end();
    return rc;
}
