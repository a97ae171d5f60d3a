/*
 * harness: integration-test helpers. Starts the real binary (MYLOWARE_BIN) on 127.0.0.1 with
 * port 0 and a fresh temp directory, finds its port in its log, and speaks HTTP/1.1 to it
 * over real sockets. Every wait has a deadline; nothing sleeps and hopes.
 */
#ifndef MYLOWARE_TESTS_HARNESS_H
#define MYLOWARE_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct server {
    pid_t pid;
    int port;
    char dir[256];
    char log[300];
};

struct resp {
    int status;
    char head[32768];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
};

/* In a child just forked by parent: the child gets SIGKILL when the test process ends (a crash, a
 * timeout, a failed assertion before the stop), so no test leaves a server running behind it. */
void harness_die_with_parent(pid_t parent);

/* The highest `-- migration N:` in the repository's schema.sql. */
int latest_schema_version(void);
/* Milliseconds on a monotonic clock. */
int64_t h_now_ms(void);
/* Starts `myloware serve` with extra NAME=VALUE env entries (NULL-terminated); asserts it is up. */
void server_start(struct server *s, const char *const *env);
/* Same, but in an existing dir (restart on the same database). */
void server_start_in(struct server *s, const char *dir, const char *const *env);
/* Same, in dir (NULL: a fresh temp dir), with args appended to serve's own ("--role=api",
 * "--database-url=..."; they win over the defaults). */
void server_start_with(struct server *s, const char *dir, const char *const *args,
                       const char *const *env);
/* Starts `myloware fakes serve` (port 0, MEDIA_DIR under dir) in dir, or a fresh temp dir when
 * dir is NULL; asserts it is up. */
void fakes_start_in(struct server *s, const char *dir, const char *const *env);
/* Sends sig and waits (up to timeout_ms) for the exit; returns the exit code, or -1 on timeout
 * (the process is then killed), or 128+signal when it died of a signal. */
int server_stop(struct server *s, int sig, int timeout_ms);
/* Waits for the process to exit by itself; same returns as server_stop. */
int server_wait(struct server *s, int timeout_ms);
/* Asserts the log holds no sanitizer report or fatal error (called on every exit). */
void server_check_log(const struct server *s);
/* True while the process runs. */
bool server_alive(struct server *s);
/* Runs the binary with args and env to completion; captures stdout+stderr into out (cap). */
int run_cmd(const char *const *args, const char *const *env, char *out, size_t cap);
/* The log file as a string (malloc'd). */
char *server_log(const struct server *s);
/* The log file once it holds needle, or at the deadline (ms from now) without it (malloc'd). */
char *server_log_wait(const struct server *s, const char *needle, int ms);

/* A connected blocking socket with a 10 s receive timeout, or -1. */
int h_connect(int port);
bool h_send(int fd, const void *data, size_t len);
bool h_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one response (Content-Length framed) within timeout_ms; false on EOF/timeout. */
bool h_read(int fd, struct resp *r, int timeout_ms);
/* True when the peer closed the connection (read returns 0) within timeout_ms. */
bool h_closed(int fd, int timeout_ms);
void resp_free(struct resp *r);
/* Receives into buf (NUL-terminated) until needle appears; false on EOF, timeout or full buf. */
bool h_recv_until(int fd, char *buf, size_t cap, const char *needle, int timeout_ms);
/* Header value from r->head (case-insensitive) into out; false when absent. */
bool resp_header(const struct resp *r, const char *name, char *out, size_t cap);
/* One request on a new connection: method, path, extra header lines ("A: b\r\n"), body. */
bool h_request(int port, const char *method, const char *path, const char *headers,
               const char *body, struct resp *r);

#endif
