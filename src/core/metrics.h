/*
 * metrics: the process-wide Prometheus registry (text format 0.0.4). Every family is declared
 * once in METRICS(X) below; later modules add their families there. Series are created on
 * first use, keyed by their label text. Thread-safe (one mutex; the critical sections are a
 * hash lookup and an add).
 *
 * Labels are passed already rendered, e.g. `method="GET",route="/health",status="200"`;
 * use metrics_label() to escape values that come from outside.
 */
#ifndef MYLOWARE_CORE_METRICS_H
#define MYLOWARE_CORE_METRICS_H

#include <stddef.h>

#include "core/buf.h"

enum metric_kind { MK_COUNTER, MK_GAUGE, MK_HISTOGRAM };

/* X(ID, name, kind, buckets (histograms; NULL: default), help) */
#define METRICS(X)                                                                                 \
    X(HTTP_REQUESTS, "myloware_http_requests_total", MK_COUNTER, NULL,                             \
      "HTTP requests answered, by method, route pattern and status")                               \
    X(HTTP_DURATION, "myloware_http_request_duration_seconds", MK_HISTOGRAM, NULL,                 \
      "Time from a complete request to its response, by route pattern")                            \
    X(HTTP_CONNECTIONS, "myloware_http_connections", MK_GAUGE, NULL, "Open HTTP connections")      \
    X(RUNS, "myloware_runs_total", MK_COUNTER, NULL, "Runs by workflow and final status")          \
    X(JOBS, "myloware_jobs_total", MK_COUNTER, NULL, "Job attempts by type and outcome")           \
    X(JOB_DURATION, "myloware_job_duration_seconds", MK_HISTOGRAM, NULL,                           \
      "Job attempt time by type")                                                                  \
    X(QUEUE_JOBS, "myloware_queue_jobs", MK_GAUGE, NULL, "Jobs by state")                          \
    X(QUEUE_OLDEST, "myloware_queue_oldest_ready_age_seconds", MK_GAUGE, NULL,                     \
      "Age of the oldest ready job")                                                               \
    X(WEBHOOKS, "myloware_webhooks_total", MK_COUNTER, NULL, "Webhook deliveries by outcome")      \
    X(PROVIDER_REQUESTS, "myloware_provider_requests_total", MK_COUNTER, NULL,                     \
      "Provider calls by provider and outcome")                                                    \
    X(PROVIDER_CIRCUIT, "myloware_provider_circuit_open", MK_GAUGE, NULL,                          \
      "1 while a provider's circuit is open")                                                      \
    X(TRANSCODE, "myloware_transcode_seconds", MK_HISTOGRAM, metrics_slow_buckets,                 \
      "Transcode time")                                                                            \
    X(DB_TRANSACTIONS, "myloware_db_transaction_seconds", MK_HISTOGRAM, NULL,                      \
      "Group transactions of the database thread, BEGIN to the end of COMMIT")                     \
    X(DB_TRANSACTION_UNITS, "myloware_db_transaction_units", MK_HISTOGRAM, metrics_count_buckets,  \
      "Units (requests, jobs' steps) per group transaction")                                       \
    X(DB_CHECKPOINTS, "myloware_db_checkpoints_total", MK_COUNTER, NULL,                           \
      "SQLite WAL checkpoints by who ran them: checkpointer, writer (a short tail), idle")         \
    X(RSS, "process_resident_memory_bytes", MK_GAUGE, NULL, "Resident memory size in bytes")       \
    X(FDS, "process_open_fds", MK_GAUGE, NULL, "Number of open file descriptors")                  \
    X(START_TIME, "process_start_time_seconds", MK_GAUGE, NULL, "Start time since the epoch")      \
    X(CPU, "process_cpu_seconds_total", MK_COUNTER, NULL, "User and system CPU time")

extern const double metrics_slow_buckets[];
extern const double metrics_count_buckets[];

enum metric_id {
#define X(id, ...) M_##id,
    METRICS(X)
#undef X
        M__COUNT
};

/* Resets the registry and records the start time. Call once before threads start. */
void metrics_init(void);
void metrics_release(void);
void metrics_add(enum metric_id id, const char *labels, double v);
void metrics_set(enum metric_id id, const char *labels, double v);
void metrics_observe(enum metric_id id, const char *labels, double v);
/* A series handle, stable until metrics_release(): skips label building and lookup on hot
 * paths. */
struct series;
struct series *metrics_series(enum metric_id id, const char *labels);
void metrics_series_add(struct series *s, double v);
void metrics_series_observe(enum metric_id id, struct series *s, double v);
/* Current value of a counter or gauge series (0 when absent). For tests. */
double metrics_get(enum metric_id id, const char *labels);
/* Appends `key="escaped value"` to b (with a leading comma when b is not empty). */
void metrics_label(buf_t *b, const char *key, const char *value);
/* Refreshes the process gauges and renders every family into out. */
void metrics_render(buf_t *out);

#endif
