/*
 * fakes: the fakes object, its state directory and the helpers every fake uses (see
 * internal.h). Loop thread, except the saver's pool work.
 */
#include "fakes/fakes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "fakes/internal.h"

int fake_mkdirs(const char *path) {
    char tmp[FAKE_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

char *fake_read_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    buf_t b;
    buf_init(&b, 1u << 20);
    char chunk[8192];
    size_t n;
    bool ok = true;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        if (buf_append(&b, chunk, n) != 0) {
            ok = false;
            break;
        }
    fclose(fp);
    if (!ok) {
        buf_release(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

void fake_hold(struct fakes *f) { f->busy++; }

void fake_unhold(struct fakes *f) {
    if (--f->busy > 0 || !f->closing)
        return;
    if (!f->freeing) { /* nothing pending: release the objects (their handles close first) */
        f->freeing = true;
        f->busy++;
        fake_videos_free(f);
        fake_renders_free(f);
        fake_uploads_free(f);
        fake_unhold(f);
        return;
    }
    void (*cb)(void *) = f->close_cb;
    void *ud = f->close_ud;
    free(f);
    if (cb)
        cb(ud);
}

static void on_fake_timer(uv_timer_t *h) {
    struct fake_timer *t = h->data;
    t->on = false;
    fake_unhold(t->f);
    t->fire(t->ud);
}

void fake_timer_init(struct fake_timer *t, struct fakes *f, void (*fire)(void *ud), void *ud) {
    *t = (struct fake_timer){.f = f, .fire = fire, .ud = ud};
    uv_timer_init(f->loop, &t->handle);
    t->handle.data = t;
}

void fake_timer_start(struct fake_timer *t, uint64_t ms) {
    if (t->on || t->f->closing)
        return;
    t->on = true;
    fake_hold(t->f);
    uv_timer_start(&t->handle, on_fake_timer, ms, 0);
}

void fake_timer_stop(struct fake_timer *t) {
    if (!t->on)
        return;
    uv_timer_stop(&t->handle);
    t->on = false;
    fake_unhold(t->f);
}

static void on_fake_timer_closed(uv_handle_t *h) {
    struct fake_timer *t = h->data;
    struct fakes *f = t->f;
    t->closed(t->ud);
    fake_unhold(f);
}

void fake_timer_close(struct fake_timer *t, void (*closed)(void *ud)) {
    t->closed = closed;
    fake_hold(t->f); /* released in the close callback */
    uv_close((uv_handle_t *)&t->handle, on_fake_timer_closed);
}

/* ---- state files --------------------------------------------------------------------------- */

void fake_saver_init(struct fake_saver *s, struct fakes *f, const char *path) {
    memset(s, 0, sizeof *s);
    s->f = f;
    snprintf(s->path, sizeof s->path, "%s", path);
    s->work.data = s;
}

/* Pool thread: temp file, fsync, rename. */
static void save_work(uv_work_t *w) {
    struct fake_saver *s = w->data;
    char tmp[FAKE_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->path);
    s->rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    size_t n = strlen(s->writing), off = 0;
    while (off < n) {
        ssize_t k = write(fd, s->writing + off, n - off);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    bool ok = off == n && fsync(fd) == 0;
    close(fd);
    if (ok && rename(tmp, s->path) == 0)
        s->rc = 0;
    else
        unlink(tmp);
}

static void save_start(struct fake_saver *s);

static void save_done(uv_work_t *w, int status) {
    struct fake_saver *s = w->data;
    struct fakes *f = s->f;
    if (s->rc != 0)
        log_warn("fakes", "cannot write a state file", LF_S("path", s->path));
    free(s->writing);
    s->writing = NULL;
    s->busy = false;
    if (s->writing_cb) {
        void (*cb)(void *) = s->writing_cb;
        s->writing_cb = NULL;
        cb(s->writing_ud);
    }
    if (s->next)
        save_start(s);
    else if (s->oneshot)
        free(s);
    fake_unhold(f);
}

static void save_start(struct fake_saver *s) {
    s->writing = s->next;
    s->next = NULL;
    s->writing_cb = s->next_cb;
    s->writing_ud = s->next_ud;
    s->next_cb = NULL;
    s->busy = true;
    fake_hold(s->f);
    uv_queue_work(s->f->loop, &s->work, save_work, save_done);
}

void fake_save(struct fake_saver *s, char *text) {
    free(s->next);
    s->next = text;
    if (!s->busy)
        save_start(s);
}

void fake_save_json(struct fake_saver *s, const json_t *j) {
    char *t = json_dumps(j, JSON_COMPACT);
    if (t)
        fake_save(s, t);
}

void fake_save_json_then(struct fake_saver *s, const json_t *j, void (*cb)(void *ud), void *ud) {
    if (s->next_cb) { /* one waiter per pending state: the older one is answered now */
        void (*old)(void *) = s->next_cb;
        s->next_cb = NULL;
        old(s->next_ud);
    }
    char *t = json_dumps(j, JSON_COMPACT);
    if (!t) {
        cb(ud);
        return;
    }
    free(s->next);
    s->next = t;
    s->next_cb = cb;
    s->next_ud = ud;
    if (!s->busy)
        save_start(s);
}

/* ---- answers ------------------------------------------------------------------------------- */

void fake_error(http_req_t *req, int status, const char *type, const char *message) {
    http_respond_json(
        req, status,
        json_pack("{s:{s:s,s:s,s:n}}", "error", "message", message, "type", type, "code"));
}

void fake_hash_id(const char *prefix, const char *text, size_t n, char *out, size_t cap) {
    uint8_t h[32];
    crypto_sha256(text, strlen(text), h);
    char hex[65];
    crypto_hex(h, sizeof h, hex);
    if (n > 64)
        n = 64;
    snprintf(out, cap, "%s%.*s", prefix, (int)n, hex);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int fakes_new(uv_loop_t *loop, const config_t *cfg, http_client_t *client, const char *self_base,
              const char *webhook_base, fakes_t **out) {
    struct fakes *f = xcalloc(1, sizeof *f);
    f->loop = loop;
    f->cfg = cfg;
    f->client = client;
    snprintf(f->self, sizeof f->self, "%s/_fake", self_base);
    size_t n = strlen(webhook_base);
    while (n > 0 && webhook_base[n - 1] == '/')
        n--;
    snprintf(f->webhook, sizeof f->webhook, "%.*s/v1/webhooks/sora", (int)n, webhook_base);
    snprintf(f->dir, sizeof f->dir, "%s/fakes", config_str(cfg, S_MEDIA_DIR));
    static const char *subs[] = {"videos", "renders", "uploads"};
    for (size_t i = 0; i < 3; i++) {
        char d[FAKE_PATH_MAX + 16];
        snprintf(d, sizeof d, "%s/%s", f->dir, subs[i]);
        if (fake_mkdirs(d) != 0) {
            log_error("fakes", "cannot create the state directory", LF_S("dir", d),
                      LF_S("error", strerror(errno)));
            free(f);
            return ERR_IO;
        }
    }
    f->busy = 1; /* released by fakes_close */
    fake_videos_resume(f);
    fake_renders_resume(f);
    fake_uploads_resume(f);
    log_info("fakes", "provider fakes mounted", LF_S("base", f->self), LF_S("state", f->dir),
             LF_S("webhooks", f->webhook));
    *out = f;
    return 0;
}

int fakes_busy(const fakes_t *f) { return f->busy - (f->closing ? 0 : 1); }

void fakes_close(fakes_t *f, void (*cb)(void *ud), void *ud) {
    if (f->closing)
        return;
    f->closing = true;
    atomic_store(&f->stopping, true);
    f->close_cb = cb;
    f->close_ud = ud;
    fake_videos_close(f);
    fake_renders_close(f);
    fake_unhold(f);
}
