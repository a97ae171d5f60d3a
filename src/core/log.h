/*
 * log: one structured line per event on stderr: JSON by default (`ts`, `level`, `module`,
 * `msg`, then the fields), or `LOG_FORMAT=text` for people. Each line is written with one
 * write(2), so lines from different threads never interleave. Never pass a secret.
 *
 *   log_info("http", "listening", LF_S("host", host), LF_I("port", port));
 */
#ifndef MYLOWARE_CORE_LOG_H
#define MYLOWARE_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_ftype { LFT_END, LFT_BEGIN, LFT_STR, LFT_INT, LFT_NUM, LFT_BOOL };

struct log_field {
    int type;
    const char *key;
    const char *s;
    long long i;
    double d;
};

#define LF_S(k, v) ((struct log_field){LFT_STR, (k), (v), 0, 0})
#define LF_I(k, v) ((struct log_field){LFT_INT, (k), NULL, (long long)(v), 0})
#define LF_D(k, v) ((struct log_field){LFT_NUM, (k), NULL, 0, (double)(v)})
#define LF_B(k, v) ((struct log_field){LFT_BOOL, (k), NULL, !!(v), 0})

/* Sets the threshold and the format. Call before any thread starts. */
void log_setup(enum log_level level, bool json);
/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level level);
/* Changes the threshold; any thread. */
void log_set_level(enum log_level level);
/* Batching for the calling thread (the loop): debug and info lines are kept and written
 * together by log_flush() (the app calls it at most 10 ms after a line) or when 64 KiB have
 * piled up; warn and error lines flush at once. log_batch_end() flushes and stops. */
void log_batch_begin(void);
void log_flush(void);
/* Whether batched lines wait for log_flush(). */
bool log_pending(void);
void log_batch_end(void);
/* Writes one line. fields ends with an LFT_END entry; a NULL string value is skipped. */
void log_write(enum log_level level, const char *module, const char *msg,
               const struct log_field *fields);

/*
 * The access log line of one HTTP request, at info level: the same line as
 *   log_info("http", "request", LF_S("request_id", id), LF_S("method", method),
 *            LF_S("route", route), LF_I("status", status), LF_I("bytes", bytes),
 *            LF_D("duration_ms", ms))
 * built without the generic field formatter (one per request: the hot path). Loop thread.
 */
void log_http_request(const char *request_id, const char *method, const char *route, int status,
                      long long bytes, double ms);

#define LOG_AT_(lvl, mod, msg, ...)                                                                \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, mod, msg,                                                               \
                      (const struct log_field[]){                                                  \
                          {LFT_BEGIN, 0, 0, 0, 0}, ##__VA_ARGS__, {LFT_END, 0, 0, 0, 0}});         \
    } while (0)
#define log_debug(mod, msg, ...) LOG_AT_(LOG_DEBUG, mod, msg, ##__VA_ARGS__)
#define log_info(mod, msg, ...) LOG_AT_(LOG_INFO, mod, msg, ##__VA_ARGS__)
#define log_warn(mod, msg, ...) LOG_AT_(LOG_WARN, mod, msg, ##__VA_ARGS__)
#define log_error(mod, msg, ...) LOG_AT_(LOG_ERROR, mod, msg, ##__VA_ARGS__)

#endif
