/*
 * testjobs: job types that exist only with ENVIRONMENT=test, for the crash, concurrency, drain
 * benchmark and circuit tests. test.effect records its side effect under a unique key in the same
 * transaction as its completion, so a job done twice would break the key.
 */
#include "queue/testjobs.h"

#include <jansson.h>
#include <time.h>

#include "core/clock.h"

static json_int_t payload_int(const struct job_ctx *ctx, const char *key, json_int_t def) {
    json_t *p = json_loads(ctx->job.payload, 0, NULL);
    json_int_t v = def;
    if (p && json_is_integer(json_object_get(p, key)))
        v = json_integer_value(json_object_get(p, key));
    json_decref(p);
    return v;
}

static void run_now(struct job_ctx *ctx) { job_finish(ctx); }

static int record_effect(store_tx_t *tx, struct job_ctx *ctx) {
    return tx->s->ops->test_effect(tx, ctx->job.id, clock_now_ms());
}

/* test.latency: records when its handler started (CLOCK_MONOTONIC microseconds, comparable with
 * a client's {"t_us"} taken just before its enqueue on the same host) as its effect's time. */
static int record_start(store_tx_t *tx, struct job_ctx *ctx) {
    return tx->s->ops->test_effect(tx, ctx->job.id, (int64_t)(ctx->started_ns / 1000u));
}

/* Pool thread: sleeps {"ms": N} in small steps, reporting progress. */
static void run_sleep(struct job_ctx *ctx) {
    json_int_t ms = payload_int(ctx, "ms", 100);
    for (json_int_t done = 0; done < ms; done += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        ctx->progress = (double)done / (double)ms;
    }
    ctx->progress = 1;
}

/* Fails {"fail_times": N} attempts (retryable), or always when {"permanent": 1}. */
static void run_fail(struct job_ctx *ctx) {
    if (payload_int(ctx, "permanent", 0))
        job_set_error(ctx, JO_PERMANENT, "test failure (permanent)");
    else if (ctx->job.attempts <= payload_int(ctx, "fail_times", 1))
        job_set_error(ctx, JO_RETRY, "test failure %d", ctx->job.attempts);
    job_finish(ctx);
}

static const struct job_type types[] = {
    {.name = "test.noop", .kind = JK_LOOP, .concurrency = 512, .run_loop = run_now},
    {.name = "test.effect",
     .kind = JK_LOOP,
     .concurrency = 512,
     .run_loop = run_now,
     .on_complete = record_effect},
    {.name = "test.latency",
     .kind = JK_LOOP,
     .concurrency = 64,
     .run_loop = run_now,
     .on_complete = record_start},
    {.name = "test.sleep", .kind = JK_POOL, .run_pool = run_sleep},
    {.name = "test.fail", .kind = JK_LOOP, .run_loop = run_fail},
    /* test.fail behind provider "test": its failures open the provider's circuit */
    {.name = "test.provider", .kind = JK_LOOP, .run_loop = run_fail, .provider = "test"},
    /* test.sleep in the "media" cap group (TRANSCODE_MAX_CONCURRENCY) */
    {.name = "test.media", .kind = JK_POOL, .run_pool = run_sleep, .cap_group = "media"},
};

void testjobs_register(dispatcher_t *d) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        dispatcher_register(d, &types[i]);
}
