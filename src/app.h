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

typedef struct app {
    uv_loop_t loop;
    const config_t *cfg;
    store_t *store;
    http_server_t *http;
    ratelimit_t *limiters[HTTP_MAX_RATE_CLASSES];
    struct health *health;
    uv_signal_t sigterm, sigint;
    int signals_seen;
    bool drained; /* HTTP drained: finish once the database work in flight is back */
    int64_t started_ms;
    int exit_code;
} app_t;

/* Runs `serve` until SIGTERM/SIGINT. Returns the process exit code. Main thread. */
int app_serve(const config_t *cfg);
/* Called when the health probe has nothing in flight (shutdown waits for it). Loop thread. */
void app_health_idle(app_t *app);
/* Opens the database and applies pending migrations; logs what it did. Returns 0 or ERR_*. */
int app_migrate(const config_t *cfg, store_t **out);

#endif
