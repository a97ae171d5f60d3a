/*
 * queue_client: the load side of scripts/bench/queue.sh. Speaks HTTP/1.1 keep-alive to a
 * MyloWare server on 127.0.0.1 (ENVIRONMENT=test: POST /_test/jobs) and prints its figures as
 * "key value" lines. Built by the script into its temporary directory; not part of the product.
 *
 *   queue_client enqueue PORT N BATCH CONNS      (QC_TYPE: the job type, default test.noop)
 *       enqueues N jobs of QC_TYPE in requests of BATCH jobs over CONNS connections (one thread
 *       each), then waits until myloware_jobs_total{type=TYPE,outcome="succeeded"} (GET
 *       /metrics) reaches N. Prints start_ms (CLOCK_REALTIME, before the first request),
 *       enqueue_s (until the last enqueue was acknowledged), done_s (as seen by polling).
 *   queue_client latency PORT SAMPLES
 *       one test.latency job at a time on an idle queue: waits a random 2-20 ms gap, takes
 *       CLOCK_MONOTONIC into the payload ({"t_us"}), enqueues; the job records when its handler
 *       started. The script reads both from the database. Prints samples.
 *   queue_client health PORT STOPFILE
 *       GET /health every 2 ms on one connection until STOPFILE exists; prints n, p50_ms,
 *       p99_ms, max_ms, errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;

static int64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int connect_local(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends req and reads one Content-Length framed answer into buf (cap). Returns the status, or
 * -1 on a broken connection. *body points into buf. */
static int roundtrip(int fd, const char *req, size_t len, char *buf, size_t cap, char **body) {
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, req + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        size_t want = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
        size_t head = (size_t)(end + 4 - buf);
        if (head + want >= cap)
            return -1;
        while (got < head + want) {
            n = read(fd, buf + got, cap - 1 - got);
            if (n <= 0)
                return -1;
            got += (size_t)n;
        }
        buf[head + want] = '\0';
        if (body)
            *body = buf + head;
        return atoi(buf + 9);
    }
}

static int post_jobs(int fd, const char *json, char *buf, size_t cap) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /_test/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: dev-api-key\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(json), json);
    return roundtrip(fd, req, (size_t)n, buf, cap, NULL);
}

/* ---- enqueue ------------------------------------------------------------------------------------ */

static const char *etype;
static int ebatch;
static atomic_long requests_left;

static void *producer(void *arg) {
    int fd = connect_local();
    char json[256], buf[4096];
    snprintf(json, sizeof json, "{\"type\": \"%s\", \"count\": %d, \"per_unit\": %d}", etype, ebatch,
             ebatch < 1000 ? ebatch : 1000);
    while (atomic_fetch_sub(&requests_left, 1) > 0) {
        int st = post_jobs(fd, json, buf, sizeof buf);
        if (st != 200) {
            fprintf(stderr, "enqueue failed: status %d: %s\n", st, buf);
            exit(1);
        }
    }
    close(fd);
    return NULL;
}

static double succeeded(int fd, const char *type) {
    static char buf[1 << 22];
    const char *req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char *body;
    if (roundtrip(fd, req, strlen(req), buf, sizeof buf, &body) != 200)
        return -1;
    char needle[200];
    snprintf(needle, sizeof needle, "myloware_jobs_total{type=\"%s\",outcome=\"succeeded\"} ", type);
    char *p = strstr(body, needle);
    return p ? strtod(p + strlen(needle), NULL) : 0;
}

static int cmd_enqueue(long n, int batch, int conns) {
    etype = getenv("QC_TYPE") ? getenv("QC_TYPE") : "test.noop";
    ebatch = batch;
    atomic_store(&requests_left, (n + batch - 1) / batch);
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    printf("start_ms %lld\n", (long long)(now_ns(CLOCK_REALTIME) / 1000000));
    pthread_t th[256];
    for (int i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, producer, NULL);
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    printf("enqueue_s %.3f\n", (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9);
    int fd = connect_local();
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + 600 * 1000000000LL;
    double done;
    while ((done = succeeded(fd, etype)) < (double)n) {
        if (done < 0 || now_ns(CLOCK_MONOTONIC) > deadline) {
            fprintf(stderr, "jobs did not finish: %.0f of %ld\n", done, n);
            return 1;
        }
        pause_us(100000); /* seldom: the figure comes from the database, this only waits */
    }
    printf("done_s %.3f\n", (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9);
    close(fd);
    return 0;
}

/* ---- latency ------------------------------------------------------------------------------------ */

static int cmd_latency(int samples) {
    int fd = connect_local();
    char json[256], buf[4096];
    srand((unsigned)getpid());
    for (int i = 0; i < samples; i++) {
        pause_us(2000 + rand() % 18000);
        snprintf(json, sizeof json, "{\"type\": \"test.latency\", \"payload\": {\"t_us\": %lld}}",
                 (long long)(now_ns(CLOCK_MONOTONIC) / 1000));
        /* the payload's time is taken before the request is written */
        if (post_jobs(fd, json, buf, sizeof buf) != 200) {
            fprintf(stderr, "enqueue failed: %s\n", buf);
            return 1;
        }
    }
    printf("samples %d\n", samples);
    close(fd);
    return 0;
}

/* ---- health ------------------------------------------------------------------------------------- */

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static int cmd_health(const char *stopfile) {
    int fd = connect_local();
    size_t cap = 1 << 20, n = 0;
    long long *lat = malloc(cap * sizeof *lat);
    char buf[8192];
    const char *req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int errors = 0;
    while (access(stopfile, F_OK) != 0 && n < cap) {
        int64_t t = now_ns(CLOCK_MONOTONIC);
        int st = roundtrip(fd, req, strlen(req), buf, sizeof buf, NULL);
        int64_t d = now_ns(CLOCK_MONOTONIC) - t;
        if (st < 0) {
            close(fd);
            fd = connect_local();
            errors++;
            continue;
        }
        if (st != 200)
            errors++;
        lat[n++] = d;
        pause_us(2000);
    }
    qsort(lat, n, sizeof *lat, cmp_ll);
    printf("n %zu\n", n);
    if (n) {
        printf("p50_ms %.3f\n", (double)lat[n / 2] / 1e6);
        printf("p99_ms %.3f\n", (double)lat[(n * 99) / 100] / 1e6);
        printf("max_ms %.3f\n", (double)lat[n - 1] / 1e6);
    }
    printf("errors %d\n", errors);
    free(lat);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: queue_client enqueue|latency|health PORT ...\n");
        return 2;
    }
    port = atoi(argv[2]);
    if (strcmp(argv[1], "enqueue") == 0 && argc == 6)
        return cmd_enqueue(atol(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (strcmp(argv[1], "latency") == 0 && argc == 4)
        return cmd_latency(atoi(argv[3]));
    if (strcmp(argv[1], "health") == 0 && argc == 4)
        return cmd_health(argv[3]);
    fprintf(stderr, "usage: queue_client enqueue PORT N BATCH CONNS | latency PORT SAMPLES | health PORT STOPFILE\n");
    return 2;
}
