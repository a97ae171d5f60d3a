/*
 * idle_conns: opens N keep-alive connections to HOST:PORT, sends one request on each, reads
 * each answer completely (head + Content-Length body), then holds every connection open,
 * idle, until it gets SIGTERM/SIGINT or HOLD_S seconds pass. Used by scripts/bench/http.sh to
 * measure a server's memory with many idle keep-alive connections.
 *
 *   idle_conns HOST PORT N PATH READY_FILE [HOLD_S]
 *
 * When all answers are in, it writes "<ok> <failed>" to READY_FILE (written to a temporary
 * name and renamed, so a reader never sees half a line). Exit status: 0 when every connection
 * got a 2xx answer and was still open at the end, 1 otherwise, 2 on a usage error.
 * Build: cc -O2 -o idle_conns idle_conns.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 8192

struct conn {
    int fd;
    int state; /* 0 connecting/sending, 1 reading, 2 done (idle), -1 failed */
    size_t sent, got;
    char buf[RBUF];
};

static volatile sig_atomic_t stop;
static void on_sig(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 when buf holds a complete answer, 0 when more is needed, -1 when it is not 2xx/unusable. */
static int answer_complete(const char *buf, size_t n) {
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return n >= RBUF - 1 ? -1 : 0;
    if (n < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[9] != '2')
        return -1;
    size_t head = (size_t)(end - buf) + 4;
    long clen = 0;
    for (const char *p = buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
            clen = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (clen < 0 || head + (size_t)clen > RBUF - 1)
        return -1;
    return n >= head + (size_t)clen ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT N PATH READY_FILE [HOLD_S]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[4], *ready = argv[5];
    int port = atoi(argv[2]), n = atoi(argv[3]);
    double hold = argc > 6 ? atof(argv[6]) : 120;
    if (n < 1 || port < 1 || port > 65535) {
        fprintf(stderr, "idle_conns: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: HOST must be an IPv4 address\n");
        return 2;
    }
    char req[512];
    int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: idle_conns\r\n\r\n",
                          path, host, port);

    struct conn *c = calloc((size_t)n, sizeof *c);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    if (!c || !pf)
        return 2;
    for (int i = 0; i < n; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c[i].fd < 0) {
            fprintf(stderr, "idle_conns: socket %d: %s\n", i, strerror(errno));
            c[i].state = -1;
            continue;
        }
        int one = 1;
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c[i].fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
            fprintf(stderr, "idle_conns: connect %d: %s\n", i, strerror(errno));
            close(c[i].fd);
            c[i].fd = -1;
            c[i].state = -1;
        }
    }

    /* Send the requests and read the answers, all connections at once, with a deadline. */
    double deadline = now_s() + 30;
    int pending = 0;
    for (;;) {
        pending = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = (c[i].state == 0 || c[i].state == 1) ? c[i].fd : -1;
            pf[i].events = c[i].state == 0 ? POLLOUT : POLLIN;
            pf[i].revents = 0;
            if (pf[i].fd >= 0)
                pending++;
        }
        if (!pending || stop || now_s() > deadline)
            break;
        int r = poll(pf, (nfds_t)n, 200);
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n && r > 0; i++) {
            if (!pf[i].revents)
                continue;
            struct conn *k = &c[i];
            if (k->state == 0) {
                ssize_t w = send(k->fd, req + k->sent, (size_t)reqlen - k->sent, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    k->state = -1;
                    continue;
                }
                if (w > 0 && (k->sent += (size_t)w) == (size_t)reqlen)
                    k->state = 1;
                continue;
            }
            ssize_t g = recv(k->fd, k->buf + k->got, RBUF - 1 - k->got, 0);
            if (g == 0 || (g < 0 && errno != EAGAIN && errno != EINTR)) {
                k->state = -1;
                continue;
            }
            if (g > 0) {
                k->got += (size_t)g;
                int done = answer_complete(k->buf, k->got);
                if (done)
                    k->state = done > 0 ? 2 : -1;
            }
        }
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].state == 2)
            ok++;
        else
            failed++;
    }
    if (pending && !stop)
        fprintf(stderr, "idle_conns: %d connections got no complete answer in 30 s\n", pending);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%d %d\n", ok, failed);
        fclose(f);
        rename(tmp, ready);
    }

    /* Hold: watch for connections the server closes, until told to stop. */
    double until = now_s() + hold;
    int closed = 0;
    while (!stop && now_s() < until) {
        for (int i = 0; i < n; i++) {
            pf[i].fd = c[i].state == 2 ? c[i].fd : -1;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
        }
        int r = poll(pf, (nfds_t)n, 200);
        for (int i = 0; i < n && r > 0; i++) {
            if (!pf[i].revents)
                continue;
            char b[512];
            ssize_t g = recv(c[i].fd, b, sizeof b, 0);
            if (g <= 0 && !(g < 0 && (errno == EAGAIN || errno == EINTR))) {
                c[i].state = -1;
                closed++;
            }
        }
    }
    if (closed)
        fprintf(stderr, "idle_conns: the server closed %d idle connections while they were held\n", closed);
    for (int i = 0; i < n; i++)
        if (c[i].fd >= 0)
            close(c[i].fd);
    free(c);
    free(pf);
    return failed == 0 && closed == 0 ? 0 : 1;
}
