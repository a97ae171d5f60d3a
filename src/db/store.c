/*
 * store: backend choice, the database thread with group commit, and the backend-neutral parts
 * (the migration list, job helpers). No SQL here.
 */
#include "db/store.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

extern const struct store_ops store_sqlite_ops;
#ifdef WITH_POSTGRES
extern const struct store_ops store_pg_ops;
#endif

static bool is_postgres_url(const char *url) {
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

#define GROUP_MAX 512 /* units per transaction: bounds the time a unit waits behind others */

struct unit {
    store_fn fn;
    void *arg;
    store_done done; /* async: called on the loop */
    int rc;
    bool sync, finished;
    struct unit *next;
};

struct store_thread {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, sync_cv;
    struct unit *head, *tail;           /* waiting for the thread */
    struct unit *done_head, *done_tail; /* finished async units, for the loop */
    bool stop;
    uv_async_t *async;
    /* loop thread only: */
    int pending;
    struct unit *lhead, *ltail; /* submitted, not yet handed to the thread (flush) */
    uv_prepare_t *prepare;
    uv_check_t *check;
    void (*idle_cb)(void *);
    void *idle_ud;
};

/* ---- the database thread -------------------------------------------------------------------- */

static void run_group(store_t *s, struct unit *list) {
    store_tx_t tx = {s};
    int begin_rc = s->ops->begin(s);
    for (struct unit *u = list; u; u = u->next) {
        if (begin_rc) {
            u->rc = begin_rc;
            continue;
        }
        if (s->ops->savepoint(s) != 0) {
            u->rc = ERR_DB;
            continue;
        }
        u->rc = u->fn(&tx, u->arg);
        if (u->rc)
            s->ops->rollback_to(s);
        s->ops->release(s);
    }
    if (begin_rc == 0 && s->ops->commit(s) != 0) {
        s->ops->rollback(s);
        for (struct unit *u = list; u; u = u->next)
            if (u->rc == 0)
                u->rc = ERR_DB;
    }
}

int store_nested(store_tx_t *tx, store_fn fn, void *arg) {
    store_t *s = tx->s;
    if (s->ops->savepoint(s) != 0)
        return ERR_DB;
    int rc = fn(tx, arg);
    if (rc)
        s->ops->rollback_to(s);
    s->ops->release(s);
    return rc;
}

#define BUSY_STREAK_NS 50000000ull /* after 50 ms of back-to-back transactions... */
#define YIELD_NS 1000000L          /* ...pause 1 ms so writers in other processes get a turn */

static void enqueue(struct store_thread *t, struct unit *u);

static void *thread_main(void *arg) {
    store_t *s = arg;
    struct store_thread *t = s->th;
    uint64_t streak_start = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (!t->head)
            streak_start = 0;
        while (!t->head && !t->stop)
            pthread_cond_wait(&t->work_cv, &t->mu);
        if (!t->head)
            break; /* stopping, nothing left */
        struct unit *list = t->head, *last = list;
        int n = 1;
        while (last->next && n < GROUP_MAX) {
            last = last->next;
            n++;
        }
        t->head = last->next;
        if (!t->head)
            t->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&t->mu);

        uint64_t now = clock_mono_ns();
        if (!streak_start) {
            streak_start = now;
        } else if (now - streak_start > BUSY_STREAK_NS) {
            struct timespec ts = {0, YIELD_NS};
            nanosleep(&ts, NULL);
            streak_start = clock_mono_ns();
        }
        uint64_t t0 = clock_mono_ns();
        run_group(s, list);
        metrics_observe(M_DB_TRANSACTIONS, "", (double)(clock_mono_ns() - t0) / 1e9);
        metrics_observe(M_DB_TRANSACTION_UNITS, "", n);

        pthread_mutex_lock(&t->mu);
        bool wake_loop = false;
        for (struct unit *u = list, *next; u; u = next) {
            next = u->next;
            u->next = NULL;
            if (u->sync) {
                u->finished = true;
            } else {
                if (t->done_tail)
                    t->done_tail->next = u;
                else
                    t->done_head = u;
                t->done_tail = u;
                wake_loop = true;
            }
        }
        pthread_cond_broadcast(&t->sync_cv);
        if (wake_loop && t->async)
            uv_async_send(t->async);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Appends the list u..last to the thread's queue. Under t->mu. */
static void enqueue_list(struct store_thread *t, struct unit *u, struct unit *last) {
    if (t->tail)
        t->tail->next = u;
    else
        t->head = u;
    t->tail = last;
    pthread_cond_signal(&t->work_cv);
}

static void enqueue(struct store_thread *t, struct unit *u) { enqueue_list(t, u, u); }

/* ---- the loop side -------------------------------------------------------------------------- */

/* The units the loop submitted since the last flush go to the thread together, so that one
 * group takes every request one loop iteration read (store_submit from each read callback,
 * one at a time, woke the thread for the first alone: a whole commit for one unit). Runs
 * before the loop polls (prepare) and after its I/O callbacks (check). Loop thread. */
static void flush(struct store_thread *t) {
    if (!t->lhead)
        return;
    pthread_mutex_lock(&t->mu);
    enqueue_list(t, t->lhead, t->ltail);
    pthread_mutex_unlock(&t->mu);
    t->lhead = t->ltail = NULL;
}

static void prepare_cb(uv_prepare_t *h) { flush(h->data); }
static void check_cb(uv_check_t *h) { flush(h->data); }

static void async_cb(uv_async_t *a) {
    store_t *s = a->data;
    struct store_thread *t = s->th;
    pthread_mutex_lock(&t->mu);
    struct unit *list = t->done_head;
    t->done_head = t->done_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    for (struct unit *u = list, *next; u; u = next) {
        next = u->next;
        t->pending--;
        if (u->done)
            u->done(u->arg, u->rc);
        free(u);
    }
    if (t->pending == 0 && t->idle_cb) {
        void (*cb)(void *) = t->idle_cb;
        t->idle_cb = NULL;
        cb(t->idle_ud);
    }
}

int store_pending(const store_t *s) { return s->th->pending; }

void store_when_idle(store_t *s, void (*cb)(void *), void *ud) {
    if (s->th->pending == 0) {
        cb(ud);
        return;
    }
    s->th->idle_cb = cb;
    s->th->idle_ud = ud;
}

static void free_handle(uv_handle_t *h) { free(h); }

int store_attach_loop(store_t *s, uv_loop_t *loop) {
    struct store_thread *t = s->th;
    uv_async_t *a = xcalloc(1, sizeof *a);
    if (uv_async_init(loop, a, async_cb) != 0) {
        free(a);
        return ERR_IO;
    }
    a->data = s;
    t->prepare = xcalloc(1, sizeof *t->prepare);
    t->check = xcalloc(1, sizeof *t->check);
    uv_prepare_init(loop, t->prepare);
    uv_check_init(loop, t->check);
    t->prepare->data = t->check->data = t;
    uv_prepare_start(t->prepare, prepare_cb);
    uv_check_start(t->check, check_cb);
    uv_unref((uv_handle_t *)t->prepare); /* they never keep the loop alive */
    uv_unref((uv_handle_t *)t->check);
    pthread_mutex_lock(&t->mu);
    t->async = a;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

void store_detach_loop(store_t *s) {
    struct store_thread *t = s->th;
    flush(t);
    if (t->prepare) {
        uv_close((uv_handle_t *)t->prepare, free_handle);
        uv_close((uv_handle_t *)t->check, free_handle);
        t->prepare = NULL;
        t->check = NULL;
    }
    pthread_mutex_lock(&t->mu);
    uv_async_t *a = t->async;
    t->async = NULL;
    pthread_mutex_unlock(&t->mu);
    if (a)
        uv_close((uv_handle_t *)a, free_handle);
}

void store_submit(store_t *s, store_fn fn, void *arg, store_done done) {
    struct store_thread *t = s->th;
    struct unit *u = xcalloc(1, sizeof *u);
    u->fn = fn;
    u->arg = arg;
    u->done = done;
    t->pending++;
    if (!t->prepare) { /* no loop attached: nothing would flush */
        pthread_mutex_lock(&t->mu);
        enqueue(t, u);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    if (t->ltail)
        t->ltail->next = u;
    else
        t->lhead = u;
    t->ltail = u;
}

int store_call(store_t *s, store_fn fn, void *arg) {
    struct unit u = {.fn = fn, .arg = arg, .sync = true};
    struct store_thread *t = s->th;
    pthread_mutex_lock(&t->mu);
    enqueue(t, &u);
    while (!u.finished)
        pthread_cond_wait(&t->sync_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return u.rc;
}

/* ---- opening and closing -------------------------------------------------------------------- */

int store_backup(const config_t *cfg, const char *dest, struct store_backup_info *info,
                 buf_t *err) {
    const char *url = config_str(cfg, S_DATABASE_URL);
    const struct store_ops *ops = strncmp(url, "sqlite:", 7) == 0 ? &store_sqlite_ops : NULL;
    if (!ops || !ops->backup) {
        buf_puts(err, "DATABASE_URL: 'myloware backup' copies SQLite databases only (use the "
                      "database's own tools)");
        return ERR_INVAL;
    }
    return ops->backup(cfg, dest, info, err);
}

static int open_with(const config_t *cfg, store_t **out, buf_t *err, bool reader) {
    const char *url = config_str(cfg, S_DATABASE_URL);
    const struct store_ops *ops = NULL;
    if (strncmp(url, "sqlite:", 7) == 0)
        ops = &store_sqlite_ops;
#ifdef WITH_POSTGRES
    else if (is_postgres_url(url))
        ops = &store_pg_ops;
#endif
    if (!ops) {
        buf_puts(err, is_postgres_url(url)
                          ? "DATABASE_URL: this binary was built without Postgres support "
                            "(rebuild with make WITH_POSTGRES=1)"
                          : "DATABASE_URL: no backend for this URL in this build");
        return ERR_INVAL;
    }
    /* The database thread allocates and frees SQLite's temporary page caches (RETURNING, sorts)
     * all the time; glibc's default trims its arena back to the OS at every such free (an
     * madvise, then page faults on the next use), which doubled the thread's CPU per job. Keep
     * up to 32 MiB of freed memory instead. Process-wide; set once. */
    static bool trim_set;
    if (!trim_set) {
        trim_set = true;
        mallopt(M_TRIM_THRESHOLD, 32 << 20);
    }
    if (reader && !ops->open_reader)
        return ERR_NOTSUP;
    store_t *s = NULL;
    int rc = reader ? ops->open_reader(cfg, &s, err) : ops->open(cfg, &s, err);
    if (rc)
        return rc;
    struct store_thread *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->sync_cv, NULL);
    s->th = t;
    if (pthread_create(&t->tid, NULL, thread_main, s) != 0) {
        buf_puts(err, "cannot start the database thread");
        s->th = NULL;
        free(t);
        ops->close(s);
        return ERR_INTERNAL;
    }
    *out = s;
    return 0;
}

int store_open(const config_t *cfg, store_t **out, buf_t *err) {
    return open_with(cfg, out, err, false);
}

int store_open_reader(const config_t *cfg, store_t **out, buf_t *err) {
    return open_with(cfg, out, err, true);
}

void store_close(store_t *s) {
    if (!s)
        return;
    struct store_thread *t = s->th;
    if (t) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->work_cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->tid, NULL);
        /* async units finished after the loop went away: their owners are gone too */
        for (struct unit *u = t->done_head, *next; u; u = next) {
            next = u->next;
            free(u);
        }
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->work_cv);
        pthread_cond_destroy(&t->sync_cv);
        free(t);
        s->th = NULL;
    }
    s->ops->close(s);
}

const char *store_backend(const store_t *s) { return s->ops->name; }

int store_watch_jobs(store_t *s, uv_loop_t *loop, void (*cb)(void *ud, const char *type),
                     void *ud) {
    return s->ops->watch ? s->ops->watch(s, loop, cb, ud) : ERR_INVAL;
}

void store_unwatch_jobs(store_t *s) {
    if (s && s->ops->unwatch)
        s->ops->unwatch(s);
}

struct migrate_arg {
    int from, to;
    buf_t *err;
};

static int migrate_unit(store_tx_t *tx, void *arg) {
    struct migrate_arg *m = arg;
    return tx->s->ops->migrate(tx->s, &m->from, &m->to, m->err);
}

int store_migrate(store_t *s, int *from, int *to, buf_t *err) {
    struct migrate_arg m = {0, 0, err};
    int rc = store_call(s, migrate_unit, &m);
    if (rc == 0) {
        *from = m.from;
        *to = m.to;
    } else if (err->len == 0) {
        buf_printf(err, "migration failed (%s)", err_name(rc));
    }
    return rc;
}

static int version_unit(store_tx_t *tx, void *arg) { return tx->s->ops->schema_version(tx, arg); }

int store_schema_version(store_t *s, int *out) { return store_call(s, version_unit, out); }

/* ---- jobs ----------------------------------------------------------------------------------- */

static const char *state_names[JOB__STATES] = {"queued", "running", "succeeded", "dead",
                                               "cancelled"};

const char *job_state_name(enum job_state st) {
    return (unsigned)st < JOB__STATES ? state_names[st] : "unknown";
}

int job_state_parse(const char *str) {
    for (int i = 0; i < JOB__STATES; i++)
        if (strcmp(str, state_names[i]) == 0)
            return i;
    return -1;
}

void job_release(job_t *j) {
    free(j->payload);
    free(j->last_error);
    free(j->result_url);
    free(j->idempotency_key);
    j->payload = j->last_error = j->result_url = j->idempotency_key = NULL;
}

/* ---- migrations ----------------------------------------------------------------------------- */

int store_migrations(struct migration *out, int max) {
    return store_migrations_in(embed_schema_sql, out, max);
}

int store_migrations_in(const char *schema, struct migration *out, int max) {
    static const char tag[] = "-- migration ";
    int n = 0;
    const char *p = schema;
    while ((p = strstr(p, tag)) != NULL) {
        if (p != schema && p[-1] != '\n') {
            p += sizeof tag - 1;
            continue;
        }
        const char *line_end = strchr(p, '\n');
        if (!line_end)
            line_end = p + strlen(p);
        int v = atoi(p + sizeof tag - 1);
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (n < max) {
            struct migration *m = &out[n];
            m->version = v;
            int dlen = colon ? (int)(line_end - colon) - 2 : 0;
            snprintf(m->description, sizeof m->description, "%.*s", dlen > 0 ? dlen : 0,
                     dlen > 0 ? colon + 2 : "");
            m->sql = line_end;
            const char *next = strstr(line_end, "\n-- migration ");
            m->len = next ? (size_t)(next - line_end) : strlen(line_end);
        }
        n++;
        p = line_end;
    }
    return n;
}

/* ---- runs and their companions ------------------------------------------------------------- */

void run_release(run_t *r) {
    free(r->brief);
    free(r->user_id);
    free(r->telegram_chat_id);
    free(r->artifacts);
    free(r->context);
    free(r->error);
    free(r->public_token);
    r->brief = r->user_id = r->telegram_chat_id = r->artifacts = r->context = r->error =
        r->public_token = NULL;
}

void run_event_release(run_event_t *e) {
    free(e->message);
    free(e->data);
    e->message = e->data = NULL;
}

void artifact_release(artifact_t *a) {
    free(a->content);
    free(a->uri);
    free(a->metadata);
    free(a->dedupe);
    a->content = a->uri = a->metadata = a->dedupe = NULL;
}

void inbox_item_release(inbox_item_t *w) {
    free(w->payload);
    w->payload = NULL;
}

void feedback_release(feedback_t *f) {
    free(f->comment);
    f->comment = NULL;
}
