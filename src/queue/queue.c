/* queue: transitions on top of the store (no SQL here). */
#include "queue/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"

static queue_dead_hook dead_hook;

void queue_set_dead_hook(queue_dead_hook fn) { dead_hook = fn; }

static queue_replay_hook replay_hook;

void queue_set_replay_hook(queue_replay_hook fn) { replay_hook = fn; }

void queue_policy_from_config(struct queue_policy *p, const config_t *cfg) {
    p->lease_s = (int)config_int(cfg, S_JOB_LEASE_S);
    p->retry_base_s = config_num(cfg, S_JOB_RETRY_BASE_S);
    p->retry_max_s = config_num(cfg, S_JOB_RETRY_MAX_S);
    p->max_attempts = (int)config_int(cfg, S_JOB_MAX_ATTEMPTS);
    p->retention_ms = config_int(cfg, S_JOB_RETENTION_HOURS) * 3600 * 1000;
}

bool queue_type_valid(const char *type) {
    size_t n = type ? strlen(type) : 0;
    if (n < 1 || n >= JOB_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = type[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int64_t queue_backoff_ms(int attempt, double base_s, double max_s, double rand01) {
    if (attempt < 1)
        attempt = 1;
    double d = attempt > 60 ? max_s : fmin(max_s, base_s * ldexp(1.0, attempt - 1));
    if (rand01 < 0)
        rand01 = 0;
    if (rand01 > 1)
        rand01 = 1;
    return (int64_t)llround(d * (0.5 + rand01 / 2.0) * 1000.0);
}

/* ---- owners -----------------------------------------------------------------------------------
 */

static char owner_id[128], host_prefix[80];

/* Field 22 of /proc/PID/stat: the start time in clock ticks (tells a reused pid apart). */
static bool proc_start(long pid, unsigned long long *ticks) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return false;
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return sscanf(p, "%llu", ticks) == 1;
}

static void owner_init(void) {
    if (owner_id[0])
        return;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    unsigned long long start = 0;
    proc_start((long)getpid(), &start);
    snprintf(host_prefix, sizeof host_prefix, "%s:", host);
    snprintf(owner_id, sizeof owner_id, "%s:%ld:%llu", host, (long)getpid(), start);
}

const char *queue_owner_id(void) {
    owner_init();
    return owner_id;
}

const char *queue_host_prefix(void) {
    owner_init();
    return host_prefix;
}

bool queue_owner_dead(const char *owner) {
    owner_init();
    size_t hp = strlen(host_prefix);
    if (strncmp(owner, host_prefix, hp) != 0)
        return false; /* another host: only its lease can tell */
    long pid = 0;
    unsigned long long start = 0, now_start = 0;
    if (sscanf(owner + hp, "%ld:%llu", &pid, &start) != 2)
        return false;
    if (strcmp(owner, owner_id) == 0)
        return false;
    return !proc_start(pid, &now_start) || now_start != start;
}

/* ---- transitions ------------------------------------------------------------------------------
 */

int queue_enqueue(store_tx_t *tx, const struct queue_policy *p, const struct queue_new *n,
                  job_t *out, bool *existed) {
    if (!queue_type_valid(n->type) || (n->run_id && strlen(n->run_id) >= JOB_ID_LEN) ||
        (n->idempotency_key &&
         (strlen(n->idempotency_key) < 1 || strlen(n->idempotency_key) > 255)))
        return ERR_INVAL;
    job_t j;
    memset(&j, 0, sizeof j);
    int64_t now = clock_now_ms();
    crypto_uuid7(j.id, now); /* time-ordered: the primary key index grows at its right edge */
    snprintf(j.type, sizeof j.type, "%s", n->type);
    snprintf(j.run_id, sizeof j.run_id, "%s", n->run_id ? n->run_id : "");
    j.payload = xstrdup(n->payload ? n->payload : "{}");
    j.state = JOB_QUEUED;
    j.priority = n->priority;
    j.max_attempts = n->max_attempts > 0 ? n->max_attempts : p->max_attempts;
    j.run_at = n->run_at > 0 ? n->run_at : now;
    j.created_at = j.updated_at = now;
    j.progress = -1;
    j.idempotency_key = n->idempotency_key ? xstrdup(n->idempotency_key) : NULL;
    int rc = tx->s->ops->job_insert(tx, &j, existed);
    if (rc) {
        job_release(&j);
        return rc;
    }
    *out = j;
    return 0;
}

int queue_claim(store_tx_t *tx, const struct queue_policy *p, const char *type, int limit,
                job_t *out, int *n) {
    int64_t now = clock_now_ms();
    return tx->s->ops->job_claim(tx, type, limit, now, now + (int64_t)p->lease_s * 1000,
                                 queue_owner_id(), out, n);
}

int queue_complete(store_tx_t *tx, job_t *j, const char *result_url) {
    job_t t = *j;
    int64_t now = clock_now_ms();
    t.state = JOB_SUCCEEDED;
    t.finished_at = t.updated_at = now;
    t.progress = 1;
    t.last_error = NULL;
    t.result_url = (char *)result_url;
    int rc = tx->s->ops->job_finish(tx, &t);
    if (rc == 0)
        j->state = JOB_SUCCEEDED;
    return rc;
}

int queue_fail(store_tx_t *tx, const struct queue_policy *p, job_t *j, const char *error,
               bool permanent, int retry_after_s, bool *dead) {
    job_t t = *j;
    int64_t now = clock_now_ms();
    *dead = permanent || j->attempts >= j->max_attempts;
    t.state = *dead ? JOB_DEAD : JOB_QUEUED;
    t.updated_at = now;
    t.finished_at = *dead ? now : 0;
    t.last_error = (char *)(error ? error : "failed");
    t.result_url = NULL;
    t.progress = -1;
    if (!*dead) {
        double r;
        uint32_t rnd;
        crypto_random(&rnd, sizeof rnd);
        r = (double)rnd / 4294967295.0;
        int64_t delay = queue_backoff_ms(j->attempts, p->retry_base_s, p->retry_max_s, r);
        if ((int64_t)retry_after_s * 1000 > delay)
            delay = (int64_t)retry_after_s * 1000;
        t.run_at = now + delay;
    }
    int rc = tx->s->ops->job_finish(tx, &t);
    if (rc)
        return rc;
    j->state = t.state;
    j->run_at = t.run_at;
    if (*dead && dead_hook)
        rc = dead_hook(tx, j);
    return rc;
}

static int requeue_uncounted(store_tx_t *tx, job_t *j, int64_t run_at) {
    job_t t = *j;
    t.state = JOB_QUEUED;
    t.attempts = j->attempts > 0 ? j->attempts - 1 : 0; /* the attempt is given back */
    t.run_at = run_at;
    t.updated_at = clock_now_ms();
    t.finished_at = 0;
    t.last_error = NULL;
    t.result_url = NULL;
    int rc = tx->s->ops->job_finish(tx, &t);
    if (rc == 0) {
        j->state = JOB_QUEUED;
        j->attempts = t.attempts;
        j->run_at = run_at;
    }
    return rc;
}

int queue_reschedule(store_tx_t *tx, job_t *j, int64_t run_at) {
    return requeue_uncounted(tx, j, run_at);
}

int queue_hand_back(store_tx_t *tx, job_t *j) { return requeue_uncounted(tx, j, clock_now_ms()); }

int queue_renew(store_tx_t *tx, const struct queue_policy *p, job_t *j, double progress) {
    int64_t until = clock_now_ms() + (int64_t)p->lease_s * 1000;
    int rc = tx->s->ops->job_renew(tx, j->id, j->lease_token, until, progress);
    if (rc == 0)
        j->lease_expires_at = until;
    return rc;
}

int queue_cancel(store_tx_t *tx, const char *id) {
    return tx->s->ops->job_cancel(tx, id, clock_now_ms());
}

int queue_replay(store_tx_t *tx, const char *id) {
    int rc = tx->s->ops->job_replay(tx, id, clock_now_ms());
    if (rc == 0 && replay_hook) {
        job_t j;
        memset(&j, 0, sizeof j);
        rc = tx->s->ops->job_get(tx, id, &j);
        if (rc == 0)
            rc = replay_hook(tx, &j);
        job_release(&j);
    }
    return rc;
}

int queue_resolve(store_tx_t *tx, const char *id, int64_t *resolved_at) {
    return tx->s->ops->job_resolve(tx, id, clock_now_ms(), resolved_at);
}

int queue_rescue(store_tx_t *tx, job_t *out, int *n) {
    int rc =
        tx->s->ops->job_rescue(tx, clock_now_ms(), queue_host_prefix(), queue_owner_dead, out, n);
    for (int i = 0; rc == 0 && i < *n; i++) {
        log_warn("queue", "job rescued", LF_S("job_id", out[i].id), LF_S("type", out[i].type),
                 LF_S("state", job_state_name(out[i].state)), LF_I("attempts", out[i].attempts));
        if (out[i].state == JOB_DEAD && dead_hook)
            rc = dead_hook(tx, &out[i]);
    }
    return rc;
}

int queue_purge(store_tx_t *tx, const struct queue_policy *p, int *deleted) {
    return tx->s->ops->job_purge(tx, clock_now_ms() - p->retention_ms, deleted);
}
