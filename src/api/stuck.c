/*
 * stuck: GET /health/stuck-runs and POST /health/cleanup-stuck-runs (api.md §9, as the
 * original's §3.12): runs waiting for a provider (awaiting_video_generation, awaiting_render)
 * not updated for timeout_minutes; the cleanup (API key; dry_run by default) fails them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/mem.h"
#include "workflow/workflow.h"

#define STUCK_MAX 500

struct stuck {
    http_req_t *req;
    long minutes;
    bool cleanup, dry_run;
    json_t *out;
};

static int stuck_unit(store_tx_t *tx, void *arg) {
    struct stuck *s = arg;
    static const char *const waits[] = {"awaiting_video_generation", "awaiting_render", NULL};
    int64_t now = clock_now_ms();
    run_t *rs = xcalloc(STUCK_MAX, sizeof *rs);
    int n = STUCK_MAX;
    int rc = tx->s->ops->run_stale(tx, waits, now - (int64_t)s->minutes * 60000, rs, &n);
    json_t *list = json_array();
    for (int i = 0; rc == 0 && i < n; i++) {
        if (s->cleanup) {
            if (!s->dry_run) {
                char msg[300];
                snprintf(msg, sizeof msg,
                         "Run timed out after %ld minutes waiting in %s. External service webhook "
                         "may have been "
                         "missed or failed.",
                         s->minutes, rs[i].status);
                rc = wf_fail_run(tx, rs[i].id, msg);
            }
            json_array_append_new(list, json_string(rs[i].id));
        } else {
            char ts[CLOCK_ISO_LEN];
            clock_iso8601(rs[i].updated_at, ts);
            json_array_append_new(list,
                                  json_pack("{s:s,s:s,s:s,s:I}", "id", rs[i].id, "status",
                                            rs[i].status, "updated_at", ts, "stuck_for_minutes",
                                            (json_int_t)((now - rs[i].updated_at) / 60000)));
        }
    }
    for (int i = 0; i < n; i++)
        run_release(&rs[i]);
    free(rs);
    if (rc) {
        json_decref(list);
        return rc;
    }
    if (s->cleanup)
        s->out = json_pack("{s:I,s:b,s:o,s:I}", "timeout_minutes", (json_int_t)s->minutes,
                           "dry_run", s->dry_run, "timed_out_run_ids", list, "count",
                           (json_int_t)json_array_size(list));
    else
        s->out = json_pack("{s:I,s:o,s:I}", "timeout_minutes", (json_int_t)s->minutes, "stuck_runs",
                           list, "count", (json_int_t)json_array_size(list));
    return 0;
}

static void stuck_done(void *arg, int rc) {
    struct stuck *s = arg;
    if (rc)
        http_respond_err(s->req, ERR_INTERNAL, "Internal server error");
    else
        http_respond_json(s->req, 200, s->out);
    free(s);
}

static void stuck(http_req_t *req, bool cleanup) {
    app_t *app = req->app;
    struct stuck *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->minutes = 60;
    s->cleanup = cleanup;
    s->dry_run = true;
    char v[32];
    if (http_query(req, "timeout_minutes", v, sizeof v) >= 0) {
        char *end;
        long m = strtol(v, &end, 10);
        if (!*v || *end || m < 0 || m > 525600) {
            free(s);
            api_field_error(req, "timeout_minutes", "must be an integer from 0 to 525600");
            return;
        }
        s->minutes = m;
    }
    if (cleanup && http_query(req, "dry_run", v, sizeof v) >= 0) {
        if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            s->dry_run = false;
        else if (strcmp(v, "true") != 0 && strcmp(v, "1") != 0) {
            free(s);
            api_field_error(req, "dry_run", "must be true or false");
            return;
        }
    }
    store_submit(app->store, stuck_unit, s, stuck_done);
}

void api_stuck_runs(http_req_t *req) { stuck(req, false); }
void api_cleanup_stuck_runs(http_req_t *req) { stuck(req, true); }
