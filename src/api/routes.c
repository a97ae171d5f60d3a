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
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
