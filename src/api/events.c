/*
 * events: GET /v1/runs/{id}/events, the run's events as server-sent events (api.md §4.1):
 * `id: <n>`, `event: run|artifact`, `data: <JSON>`; the events after Last-Event-ID first, then
 * new ones as they are committed (read every EVENTS_POLL_MS in a unit: no thread waits), a
 * `: keepalive` comment every 15 s, and the end after a terminal status. A slow client never
 * holds the server: writes stop at the stream's high-water mark until the socket drains (the
 * server closes a client that stops reading), and each read takes at most EVENTS_BATCH events.
 * Loop thread (the reads are units on the database thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/mem.h"
#include "workflow/workflow.h"

#define EVENTS_POLL_MS 200
#define EVENTS_BATCH 100
#define KEEPALIVE_MS 15000

struct sse {
    http_req_t *req;
    app_t *app;
    char run_id[RUN_ID_LEN];
    int64_t last_id;
    uv_timer_t timer;
    bool reading, waiting, started, gone, ending;
    int64_t last_write_ms;
    /* the batch read by the unit */
    run_event_t evs[EVENTS_BATCH];
    int n;
    bool exists;
};

static void sse_tick(uv_timer_t *t);

static void timer_closed(uv_handle_t *h) {
    struct sse *s = h->data;
    free(s);
}

/* Frees the stream once no unit is out. */
static void sse_release(struct sse *s) {
    s->gone = true;
    if (s->reading)
        return; /* the unit's completion comes back and releases */
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static int read_unit(store_tx_t *tx, void *arg) {
    struct sse *s = arg;
    s->n = EVENTS_BATCH;
    if (!s->started) {
        run_t r;
        int rc = tx->s->ops->run_get(tx, s->run_id, false, &r);
        if (rc) {
            s->n = 0;
            return rc;
        }
        run_release(&r);
        s->exists = true;
    }
    return tx->s->ops->run_event_list(tx, s->run_id, s->last_id, false, s->evs, &s->n);
}

static void stream_cb(http_req_t *req, int status, void *ud) {
    struct sse *s = ud;
    if (status == ERR_IO) { /* the client went away; req is freed after this */
        s->req = NULL;
        sse_release(s);
        return;
    }
    s->waiting = false;
    if (!s->reading && !s->gone)
        uv_timer_start(&s->timer, sse_tick, 0, 0);
}

static void end_stream(struct sse *s) {
    if (s->req)
        http_stream_end(s->req, true);
    s->req = NULL;
    sse_release(s);
}

/* Writes text; false when the stream is gone. */
static bool write_text(struct sse *s, char *text, size_t len) {
    int rc = http_stream_write(s->req, text, len);
    s->last_write_ms = clock_now_ms();
    if (rc == HTTP_STREAM_WAIT)
        s->waiting = true;
    return rc >= 0;
}

static void read_done(void *arg, int rc) {
    struct sse *s = arg;
    s->reading = false;
    if (s->gone) {
        for (int i = 0; i < s->n; i++)
            run_event_release(&s->evs[i]);
        sse_release(s);
        return;
    }
    if (!s->started) {
        if (rc == ERR_NOTFOUND || rc) {
            if (rc == ERR_NOTFOUND)
                http_respond_error(s->req, 404, "not_found", "Run not found", NULL, NULL);
            else
                http_respond_err(s->req, ERR_INTERNAL, "Internal server error");
            s->req = NULL;
            for (int i = 0; i < s->n; i++)
                run_event_release(&s->evs[i]);
            sse_release(s);
            return;
        }
        s->started = true;
        if (http_stream_begin(s->req, 200, "text/event-stream", HTTP_STREAM_CHUNKED,
                              "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n", stream_cb,
                              s) != 0) {
            s->req = NULL;
            for (int i = 0; i < s->n; i++)
                run_event_release(&s->evs[i]);
            sse_release(s);
            return;
        }
        s->last_write_ms = clock_now_ms();
    }
    bool terminal = false, ok = true;
    if (rc == 0) {
        buf_t b;
        buf_init(&b, 8u << 20);
        for (int i = 0; i < s->n; i++) {
            run_event_t *e = &s->evs[i];
            buf_printf(&b, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)e->id, e->kind,
                       e->data ? e->data : "{}");
            s->last_id = e->id;
            terminal |= strcmp(e->kind, "run") == 0 && run_status_name_terminal(e->status);
        }
        if (b.len) {
            size_t len;
            char *text = buf_steal(&b, &len);
            ok = write_text(s, text, len);
        }
        buf_release(&b);
    }
    bool full = s->n == EVENTS_BATCH;
    for (int i = 0; i < s->n; i++)
        run_event_release(&s->evs[i]);
    s->n = 0;
    if (!ok) { /* the connection is going: stream_cb(ERR_IO) follows */
        return;
    }
    if (terminal || s->app->stopping) {
        end_stream(s);
        return;
    }
    if (clock_now_ms() - s->last_write_ms >= KEEPALIVE_MS &&
        !write_text(s, xstrdup(": keepalive\n\n"), 13))
        return;
    if (!s->waiting)
        uv_timer_start(&s->timer, sse_tick, full ? 0 : EVENTS_POLL_MS, 0);
}

static void sse_tick(uv_timer_t *t) {
    struct sse *s = t->data;
    if (s->gone || s->reading || s->waiting)
        return;
    s->reading = true;
    store_submit(s->app->store, read_unit, s, read_done);
}

void api_run_events(http_req_t *req) {
    app_t *app = req->app;
    struct sse *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->app = app;
    int n = http_param(req, 0, s->run_id, sizeof s->run_id);
    if (n <= 0 || !crypto_is_uuid(s->run_id, (size_t)n)) {
        free(s);
        http_respond_error(req, 404, "not_found", "Run not found", NULL, NULL);
        return;
    }
    for (char *p = s->run_id; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    size_t vlen = 0;
    const char *last = http_header(req, "Last-Event-ID", &vlen);
    if (last && vlen) {
        char v[24];
        if (vlen >= sizeof v) {
            free(s);
            api_field_error(req, "Last-Event-ID", "must be an event id");
            return;
        }
        memcpy(v, last, vlen);
        v[vlen] = '\0';
        char *end;
        long long id = strtoll(v, &end, 10);
        if (*end || id < 0) {
            free(s);
            api_field_error(req, "Last-Event-ID", "must be an event id");
            return;
        }
        s->last_id = id;
    }
    uv_timer_init(&app->loop, &s->timer);
    s->timer.data = s;
    s->reading = true;
    store_submit(app->store, read_unit, s, read_done);
}
