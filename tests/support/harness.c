/* harness: process and socket helpers for the integration tests. */
#include "support/harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *bin(void) {
    const char *b = getenv("MYLOWARE_BIN");
    return b && *b ? b : "./myloware";
}

char *server_log(const struct server *s) {
    FILE *f = fopen(s->log, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    size_t got = fread(p, 1, (size_t)n, f);
    p[got] = '\0';
    fclose(f);
    return p;
}

char *server_log_wait(const struct server *s, const char *needle, int ms) {
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        char *log = server_log(s);
        if (strstr(log, needle) || h_now_ms() > deadline)
            return log;
        free(log);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
}

void server_check_log(const struct server *s) {
    static const char *bad[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                "runtime error:", "WARNING: ThreadSanitizer", "fatal:"};
    char *log = server_log(s);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(strstr(log, bad[i]), "the server reported '%s':\n%s", bad[i], log);
    free(log);
}

/* Extra arguments after serve's own (server_start_with); later ones win over the defaults. */
static const char *const *serve_extra;

void harness_die_with_parent(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* it ended before prctl */
        _exit(127);
}

static void spawn_cmd(struct server *s, bool fakes, const char *const *env) {
    char db[400], media[400];
    snprintf(db, sizeof db, "--database-url=sqlite:%s/db.sqlite", s->dir);
    snprintf(media, sizeof media, "--media-dir=%s/media", s->dir);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    char *before = server_log(s); /* a restart appends: look only past what is there */
    size_t skip = strlen(before);
    free(before);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        harness_die_with_parent(parent);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        unsetenv("PORT");
        unsetenv("API_KEYS");
        unsetenv("ENVIRONMENT");
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        if (fakes)
            execl(bin(), bin(), "fakes", "serve", "--host=127.0.0.1", "--port=0", media,
                  (char *)NULL);
        else if (!serve_extra)
            execl(bin(), bin(), "serve", "--host=127.0.0.1", "--port=0", db, media, (char *)NULL);
        const char *argv[40] = {bin(), "serve", "--host=127.0.0.1", "--port=0", db, media};
        for (int i = 0; serve_extra && serve_extra[i] && i + 7 < 40; i++)
            argv[6 + i] = serve_extra[i];
        execv(bin(), (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    /* wait for the "listening" line and take the port from it */
    int64_t deadline = h_now_ms() + 15000;
    while (h_now_ms() < deadline) {
        char *log = server_log(s);
        char *p = strlen(log) > skip ? strstr(log + skip, "\"msg\":\"listening\"") : NULL;
        char *port = p ? strstr(p, "\"port\":") : NULL;
        if (port) {
            s->port = atoi(port + 7);
            free(log);
            return;
        }
        free(log);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *l = server_log(s);
            cr_assert_fail("server exited during start-up: %s", l);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    kill(pid, SIGKILL);
    cr_assert_fail("server did not start within 15 s");
}

static void spawn(struct server *s, const char *const *env) { spawn_cmd(s, false, env); }

void fakes_start_in(struct server *s, const char *dir, const char *const *env) {
    char keep[256];
    snprintf(keep, sizeof keep, "%s", dir ? dir : "");
    memset(s, 0, sizeof *s);
    if (dir) {
        snprintf(s->dir, sizeof s->dir, "%s", keep);
    } else {
        snprintf(s->dir, sizeof s->dir, "/tmp/myloware-test-XXXXXX");
        cr_assert(mkdtemp(s->dir) != NULL);
    }
    spawn_cmd(s, true, env);
}

void server_start(struct server *s, const char *const *env) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/myloware-test-XXXXXX");
    cr_assert(mkdtemp(s->dir) != NULL);
    spawn(s, env);
}

void server_start_in(struct server *s, const char *dir, const char *const *env) {
    char keep[256];
    snprintf(keep, sizeof keep, "%s", dir);
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", keep);
    spawn(s, env);
}

void server_start_with(struct server *s, const char *dir, const char *const *args,
                       const char *const *env) {
    char keep[256];
    snprintf(keep, sizeof keep, "%s", dir ? dir : "");
    memset(s, 0, sizeof *s);
    if (dir) {
        snprintf(s->dir, sizeof s->dir, "%s", keep);
    } else {
        snprintf(s->dir, sizeof s->dir, "/tmp/myloware-test-XXXXXX");
        cr_assert(mkdtemp(s->dir) != NULL);
    }
    serve_extra = args;
    spawn(s, env);
    serve_extra = NULL;
}

int server_wait(struct server *s, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    int status;
    while (h_now_ms() < deadline) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            server_check_log(s);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    server_check_log(s);
    return -1;
}

int server_stop(struct server *s, int sig, int timeout_ms) {
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    return server_wait(s, timeout_ms);
}

bool server_alive(struct server *s) {
    int status;
    return s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == 0;
}

int run_cmd(const char *const *args, const char *const *env, char *out, size_t cap) {
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        const char *argv[32];
        int n = 0;
        argv[n++] = bin();
        for (const char *const *a = args; *a && n < 31; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        execv(bin(), (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t k = 0;
    ssize_t r;
    while ((r = read(p[0], out + k, cap - 1 - k)) > 0 && k < cap - 1)
        k += (size_t)r;
    out[k] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int h_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool h_send(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

bool h_sendf(int fd, const char *fmt, ...) {
    char buf[65536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < sizeof buf && h_send(fd, buf, (size_t)n);
}

/* Reads at least one byte into p within the deadline; returns bytes, 0 on EOF, -1 on timeout. */
static ssize_t read_some(int fd, char *p, size_t cap, int64_t deadline) {
    for (;;) {
        int left = (int)(deadline - h_now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, p, cap, 0);
        if (r < 0 && errno == ECONNRESET)
            return 0;
        return r;
    }
}

bool h_read(int fd, struct resp *r, int timeout_ms) {
    memset(r, 0, sizeof *r);
    int64_t deadline = h_now_ms() + timeout_ms;
    size_t n = 0;
    char *end = NULL;
    /* read byte by byte up to the blank line, so nothing of a following response is taken */
    while (!end) {
        if (n + 1 >= sizeof r->head)
            return false;
        ssize_t k = read_some(fd, r->head + n, 1, deadline);
        if (k <= 0)
            return false;
        n += (size_t)k;
        r->head[n] = '\0';
        if (n >= 4 && memcmp(r->head + n - 4, "\r\n\r\n", 4) == 0)
            end = r->head + n;
    }
    r->status = atoi(r->head + 9);
    char cl[32];
    size_t len = resp_header(r, "Content-Length", cl, sizeof cl) ? (size_t)atol(cl) : 0;
    r->body = malloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t k = read_some(fd, r->body + got, len - got, deadline);
        if (k <= 0) {
            free(r->body);
            r->body = NULL;
            return false;
        }
        got += (size_t)k;
    }
    r->body[len] = '\0';
    r->body_len = len;
    return true;
}

bool h_closed(int fd, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    char tmp[4096];
    for (;;) {
        ssize_t k = read_some(fd, tmp, sizeof tmp, deadline);
        if (k == 0)
            return true;
        if (k < 0)
            return false;
    }
}

void resp_free(struct resp *r) {
    free(r->body);
    r->body = NULL;
}

bool resp_header(const struct resp *r, const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

bool h_request(int port, const char *method, const char *path, const char *headers,
               const char *body, struct resp *r) {
    int fd = h_connect(port);
    if (fd < 0)
        return false;
    size_t blen = body ? strlen(body) : 0;
    bool ok = h_sendf(fd, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n", method,
                      path, headers ? headers : "", blen) &&
              (!blen || h_send(fd, body, blen)) &&
              h_read(fd, r, 60000); /* sanitizer builds are slow */
    close(fd);
    return ok;
}

bool h_recv_until(int fd, char *buf, size_t cap, const char *needle, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    size_t n = 0;
    buf[0] = '\0';
    while (!strstr(buf, needle)) {
        if (n + 1 >= cap)
            return false;
        ssize_t k = read_some(fd, buf + n, cap - 1 - n, deadline);
        if (k <= 0)
            return false;
        n += (size_t)k;
        buf[n] = '\0';
    }
    return true;
}

int latest_schema_version(void) {
    FILE *f = fopen(MYLOWARE_SRCDIR "/schema.sql", "r");
    cr_assert(f, "cannot read schema.sql");
    char line[512];
    int v = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "-- migration ", 13) == 0 && atoi(line + 13) > v)
            v = atoi(line + 13);
    fclose(f);
    return v;
}
