/* metrics: registry and exposition. Any thread. */
#include "core/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/dir.h"
#include "core/mem.h"

#define MAX_BUCKETS 16

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,   0.5,   1,      2.5,   5,    10,    -1};
const double metrics_slow_buckets[] = {0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, -1};
const double metrics_count_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, -1};

struct series {
    char *labels;
    uint64_t hash;
    double value; /* counter/gauge; histogram: sum */
    uint64_t count;
    uint64_t buckets[MAX_BUCKETS];
    struct series *next;  /* hash chain */
    struct series *order; /* insertion order, for stable output */
};

struct family {
    const char *name;
    enum metric_kind kind;
    const double *bounds;
    int nbounds;
    const char *help;
    struct series *table[64];
    struct series *first, *last;
};

static struct family families[M__COUNT] = {
#define X(id, nm, kd, bk, hp) {.name = nm, .kind = kd, .bounds = bk, .help = hp},
    METRICS(X)
#undef X
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double start_time_s;

void metrics_init(void) {
    metrics_release();
    for (int i = 0; i < M__COUNT; i++) {
        struct family *f = &families[i];
        if (!f->bounds)
            f->bounds = default_buckets;
        f->nbounds = 0;
        while (f->nbounds < MAX_BUCKETS && f->bounds[f->nbounds] >= 0)
            f->nbounds++;
    }
    start_time_s = (double)clock_now_ms() / 1000.0;
}

void metrics_release(void) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < M__COUNT; i++) {
        struct family *f = &families[i];
        for (struct series *s = f->first, *n; s; s = n) {
            n = s->order;
            free(s->labels);
            free(s);
        }
        memset(f->table, 0, sizeof f->table);
        f->first = f->last = NULL;
    }
    pthread_mutex_unlock(&mu);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Called with mu held. */
static struct series *find(struct family *f, const char *labels, int create) {
    uint64_t h = hash_str(labels);
    struct series **slot = &f->table[h & 63];
    for (struct series *s = *slot; s; s = s->next)
        if (s->hash == h && strcmp(s->labels, labels) == 0)
            return s;
    if (!create)
        return NULL;
    struct series *s = xcalloc(1, sizeof *s);
    s->labels = xstrdup(labels);
    s->hash = h;
    s->next = *slot;
    *slot = s;
    if (f->last)
        f->last->order = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

void metrics_add(enum metric_id id, const char *labels, double v) {
    pthread_mutex_lock(&mu);
    find(&families[id], labels ? labels : "", 1)->value += v;
    pthread_mutex_unlock(&mu);
}

void metrics_set(enum metric_id id, const char *labels, double v) {
    pthread_mutex_lock(&mu);
    find(&families[id], labels ? labels : "", 1)->value = v;
    pthread_mutex_unlock(&mu);
}

/* Called with mu held. */
static void observe_locked(struct family *f, struct series *s, double v) {
    s->value += v;
    s->count++;
    for (int i = 0; i < f->nbounds; i++)
        if (v <= f->bounds[i])
            s->buckets[i]++;
}

void metrics_observe(enum metric_id id, const char *labels, double v) {
    pthread_mutex_lock(&mu);
    observe_locked(&families[id], find(&families[id], labels ? labels : "", 1), v);
    pthread_mutex_unlock(&mu);
}

struct series *metrics_series(enum metric_id id, const char *labels) {
    pthread_mutex_lock(&mu);
    struct series *s = find(&families[id], labels ? labels : "", 1);
    pthread_mutex_unlock(&mu);
    return s;
}

void metrics_series_add(struct series *s, double v) {
    pthread_mutex_lock(&mu);
    s->value += v;
    pthread_mutex_unlock(&mu);
}

void metrics_series_observe(enum metric_id id, struct series *s, double v) {
    pthread_mutex_lock(&mu);
    observe_locked(&families[id], s, v);
    pthread_mutex_unlock(&mu);
}

double metrics_get(enum metric_id id, const char *labels) {
    pthread_mutex_lock(&mu);
    struct series *s = find(&families[id], labels ? labels : "", 0);
    double v = s ? (families[id].kind == MK_HISTOGRAM ? (double)s->count : s->value) : 0;
    pthread_mutex_unlock(&mu);
    return v;
}

void metrics_label(buf_t *b, const char *key, const char *value) {
    if (b->len)
        buf_puts(b, ",");
    buf_printf(b, "%s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '"')
            buf_puts(b, "\\\"");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, p, 1);
    }
    buf_puts(b, "\"");
}

static void process_gauges(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    metrics_set(M_RSS, "", (double)rss * (double)sysconf(_SC_PAGESIZE));
    int fds = 0;
    DIR *d = dir_open("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    metrics_set(M_FDS, "", fds);
    metrics_set(M_START_TIME, "", start_time_s);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    metrics_set(M_CPU, "",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
}

static void series_name(buf_t *out, const char *name, const char *suffix, const char *labels,
                        const char *extra) {
    buf_printf(out, "%s%s", name, suffix);
    if (*labels || extra) {
        buf_printf(out, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
    }
}

void metrics_render(buf_t *out) {
    static const char *kinds[] = {"counter", "gauge", "histogram"};
    process_gauges();
    pthread_mutex_lock(&mu);
    for (int i = 0; i < M__COUNT; i++) {
        struct family *f = &families[i];
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, kinds[f->kind]);
        for (struct series *s = f->first; s; s = s->order) {
            if (f->kind != MK_HISTOGRAM) {
                series_name(out, f->name, "", s->labels, NULL);
                buf_printf(out, " %.17g\n", s->value);
                continue;
            }
            for (int b = 0; b < f->nbounds; b++) {
                char le[48];
                snprintf(le, sizeof le, "le=\"%g\"", f->bounds[b]);
                series_name(out, f->name, "_bucket", s->labels, le);
                buf_printf(out, " %llu\n", (unsigned long long)s->buckets[b]);
            }
            series_name(out, f->name, "_bucket", s->labels, "le=\"+Inf\"");
            buf_printf(out, " %llu\n", (unsigned long long)s->count);
            series_name(out, f->name, "_sum", s->labels, NULL);
            buf_printf(out, " %.17g\n", s->value);
            series_name(out, f->name, "_count", s->labels, NULL);
            buf_printf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&mu);
}
