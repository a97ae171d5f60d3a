/*
 * The run-store contract: the store ops behind runs, run events, artifacts, provider tasks,
 * the webhook inbox, idempotency keys and feedback, against a real database. Every backend
 * must pass it: MYLOWARE_TEST_DATABASE_URL when set, else a fresh SQLite file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/mem.h"
#include "db/store.h"
#include "support/pgtest.h"

static config_t cfg;
static store_t *st;
static char dir[64];

static void setup(void) {
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    const char *url = getenv("MYLOWARE_TEST_DATABASE_URL");
    char local[1200];
    if (url && *url) {
        pgtest_isolate(url, local, sizeof local); /* a fresh schema: an empty database per test */
        url = local;
    } else {
        snprintf(dir, sizeof dir, "/tmp/myloware-runs-XXXXXX");
        cr_assert(mkdtemp(dir));
        snprintf(local, sizeof local, "sqlite:%s/db.sqlite", dir);
        url = local;
    }
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.data);
    cr_assert_str_eq(store_backend(st), pgtest_is_pg(url) ? "postgres" : "sqlite");
    int from, to;
    cr_assert_eq(store_migrate(st, &from, &to, &err), 0, "%s", err.data);
    buf_release(&err);
}

static void teardown(void) {
    store_close(st);
    config_release(&cfg);
}

TestSuite(run_store, .init = setup, .fini = teardown, .timeout = 30);

/* One generic unit: a function pointer taking the ops and an argument block. */
struct call {
    int (*fn)(store_tx_t *tx, struct call *c);
    run_t run;
    run_t runs[16];
    int n;
    struct run_filter f;
    const char *s1, *s2, *s3;
    int64_t i1, i2;
    bool flag;
    artifact_t art, arts[16];
    run_event_t ev, evs[16];
    inbox_item_t w, ws[8];
    struct idem_result idem;
    feedback_t fb, fbs[8];
    char run_id[RUN_ID_LEN];
    int index;
};

static int unit(store_tx_t *tx, void *arg) {
    struct call *c = arg;
    return c->fn(tx, c);
}

static int call(struct call *c) { return store_call(st, unit, c); }

static run_t new_run(const char *workflow, const char *status, int64_t created) {
    run_t r;
    memset(&r, 0, sizeof r);
    crypto_uuid4(r.id);
    snprintf(r.workflow, sizeof r.workflow, "%s", workflow);
    snprintf(r.status, sizeof r.status, "%s", status);
    r.brief = "a brief";
    r.created_at = r.updated_at = created;
    return r;
}

static int f_insert(store_tx_t *tx, struct call *c) { return tx->s->ops->run_insert(tx, &c->run); }
static int f_get(store_tx_t *tx, struct call *c) {
    return tx->s->ops->run_get(tx, c->s1, true, &c->run);
}
static int f_update(store_tx_t *tx, struct call *c) {
    return tx->s->ops->run_update(tx, &c->run, c->s1);
}
static int f_list(store_tx_t *tx, struct call *c) {
    c->n = 16;
    return tx->s->ops->run_list(tx, &c->f, c->runs, &c->n);
}
static int f_count(store_tx_t *tx, struct call *c) {
    return tx->s->ops->run_count_since(tx, c->i1, &c->i2);
}

static void insert(run_t *r) {
    struct call c = {.fn = f_insert, .run = *r};
    cr_assert_eq(call(&c), 0);
}

static run_t get(const char *id) {
    struct call c = {.fn = f_get, .s1 = id};
    cr_assert_eq(call(&c), 0, "run %s not found", id);
    return c.run;
}

Test(run_store, insert_get_round_trip) {
    run_t r = new_run("aismr", "pending", clock_now_ms());
    r.user_id = "u1";
    r.artifacts = "{\"ideas\":\"x\"}";
    insert(&r);
    run_t g = get(r.id);
    cr_assert_str_eq(g.workflow, "aismr");
    cr_assert_str_eq(g.status, "pending");
    cr_assert_str_eq(g.step, "");
    cr_assert_str_eq(g.brief, "a brief");
    cr_assert_str_eq(g.user_id, "u1");
    cr_assert_null(g.telegram_chat_id);
    cr_assert_str_eq(g.artifacts, "{\"ideas\":\"x\"}");
    cr_assert_str_eq(g.context, "{}");
    cr_assert_null(g.error);
    cr_assert_eq(g.created_at, r.created_at);
    run_release(&g);
    struct call c = {.fn = f_get, .s1 = "00000000-0000-4000-8000-000000000000"};
    cr_assert_eq(call(&c), ERR_NOTFOUND);
}

Test(run_store, unknown_status_or_step_is_refused) {
    run_t r = new_run("aismr", "exploded", clock_now_ms());
    struct call c = {.fn = f_insert, .run = r};
    cr_assert_neq(call(&c), 0);
    r = new_run("aismr", "running", clock_now_ms());
    snprintf(r.step, sizeof r.step, "dancing");
    c.run = r;
    cr_assert_neq(call(&c), 0);
}

Test(run_store, update_is_guarded_by_the_status_read) {
    run_t r = new_run("aismr", "awaiting_ideation_approval", clock_now_ms());
    insert(&r);
    run_t a = get(r.id);
    snprintf(a.status, sizeof a.status, "running");
    snprintf(a.step, sizeof a.step, "production");
    struct call c = {.fn = f_update, .run = a, .s1 = "awaiting_ideation_approval"};
    cr_assert_eq(call(&c), 0);
    /* a second decision based on the same (now stale) read loses */
    snprintf(a.status, sizeof a.status, "rejected");
    c.run = a;
    cr_assert_eq(call(&c), ERR_CONFLICT);
    run_t g = get(r.id);
    cr_assert_str_eq(g.status, "running");
    cr_assert_str_eq(g.step, "production");
    run_release(&g);
    run_release(&a);
    run_t gone = new_run("aismr", "running", 1);
    c.run = gone;
    c.s1 = "running";
    cr_assert_eq(call(&c), ERR_NOTFOUND);
}

Test(run_store, list_is_newest_first_with_filters_and_a_cursor) {
    int64_t t = clock_now_ms();
    char ids[5][RUN_ID_LEN];
    for (int i = 0; i < 5; i++) {
        run_t r =
            new_run(i % 2 ? "motivational" : "aismr", i == 4 ? "completed" : "pending", t + i);
        memcpy(ids[i], r.id, RUN_ID_LEN);
        insert(&r);
    }
    struct call c = {.fn = f_list, .f = {.limit = 2}};
    cr_assert_eq(call(&c), 0);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.runs[0].id, ids[4]);
    cr_assert_str_eq(c.runs[1].id, ids[3]);
    char cursor_id[RUN_ID_LEN];
    memcpy(cursor_id, c.runs[1].id, RUN_ID_LEN);
    int64_t cursor_at = c.runs[1].created_at;
    for (int i = 0; i < c.n; i++)
        run_release(&c.runs[i]);
    struct call d = {.fn = f_list,
                     .f = {.limit = 10, .before_id = cursor_id, .before_created = cursor_at}};
    cr_assert_eq(call(&d), 0);
    cr_assert_eq(d.n, 3);
    cr_assert_str_eq(d.runs[0].id, ids[2]);
    cr_assert_str_eq(d.runs[2].id, ids[0]);
    for (int i = 0; i < d.n; i++)
        run_release(&d.runs[i]);
    struct call e = {.fn = f_list, .f = {.limit = 10, .workflow = "motivational"}};
    cr_assert_eq(call(&e), 0);
    cr_assert_eq(e.n, 2);
    for (int i = 0; i < e.n; i++) {
        cr_assert_str_eq(e.runs[i].workflow, "motivational");
        run_release(&e.runs[i]);
    }
    struct call g = {.fn = f_list, .f = {.limit = 10, .status = "completed"}};
    cr_assert_eq(call(&g), 0);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.runs[0].id, ids[4]);
    run_release(&g.runs[0]);
    struct call k = {.fn = f_count, .i1 = t + 3};
    cr_assert_eq(call(&k), 0);
    cr_assert_eq(k.i2, 2);
}

static int f_event(store_tx_t *tx, struct call *c) { return tx->s->ops->run_event_add(tx, &c->ev); }
static int f_events(store_tx_t *tx, struct call *c) {
    c->n = 16;
    return tx->s->ops->run_event_list(tx, c->s1, c->i1, c->flag, c->evs, &c->n);
}

Test(run_store, events_are_numbered_and_replayed_after_an_id) {
    run_t r = new_run("aismr", "pending", clock_now_ms());
    insert(&r);
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        struct call c = {.fn = f_event};
        memcpy(c.ev.run_id, r.id, RUN_ID_LEN);
        snprintf(c.ev.kind, sizeof c.ev.kind, "run");
        snprintf(c.ev.status, sizeof c.ev.status, "running");
        c.ev.message = i == 1 ? "second" : NULL;
        c.ev.at = clock_now_ms();
        cr_assert_eq(call(&c), 0);
        ids[i] = c.ev.id;
        cr_assert(i == 0 || ids[i] > ids[i - 1]);
    }
    struct call l = {.fn = f_events, .s1 = r.id, .i1 = ids[0]};
    cr_assert_eq(call(&l), 0);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.evs[0].id, ids[1]);
    cr_assert_str_eq(l.evs[0].message, "second");
    cr_assert_str_eq(l.evs[0].data, "{}");
    for (int i = 0; i < l.n; i++)
        run_event_release(&l.evs[i]);
    struct call n = {.fn = f_events, .s1 = r.id, .i1 = 0, .flag = true};
    cr_assert_eq(call(&n), 0);
    cr_assert_eq(n.n, 3);
    cr_assert_eq(n.evs[0].id, ids[2]);
    for (int i = 0; i < n.n; i++)
        run_event_release(&n.evs[i]);
}

static int f_art(store_tx_t *tx, struct call *c) {
    return tx->s->ops->artifact_add(tx, &c->art, &c->flag);
}
static int f_arts(store_tx_t *tx, struct call *c) {
    c->n = 16;
    return tx->s->ops->artifact_list(tx, c->s1, c->s2, c->arts, &c->n);
}
static int f_artcount(store_tx_t *tx, struct call *c) {
    return tx->s->ops->artifact_count(tx, c->s1, c->s2, &c->n);
}

static bool add_artifact(const char *run_id, const char *type, const char *dedupe) {
    struct call c = {.fn = f_art};
    crypto_uuid4(c.art.id);
    memcpy(c.art.run_id, run_id, RUN_ID_LEN);
    snprintf(c.art.type, sizeof c.art.type, "%s", type);
    snprintf(c.art.persona, sizeof c.art.persona, "producer");
    c.art.content = "content";
    c.art.dedupe = (char *)dedupe;
    c.art.created_at = clock_now_ms();
    cr_assert_eq(call(&c), 0);
    return !c.flag;
}

Test(run_store, artifacts_keep_order_and_dedupe_per_run) {
    run_t r = new_run("aismr", "pending", clock_now_ms());
    run_t r2 = new_run("aismr", "pending", clock_now_ms());
    insert(&r);
    insert(&r2);
    cr_assert(add_artifact(r.id, "ideas", NULL));
    cr_assert(add_artifact(r.id, "video_clip", "clip:0"));
    cr_assert_not(add_artifact(r.id, "video_clip", "clip:0"), "a second clip 0 is refused");
    cr_assert(add_artifact(r.id, "video_clip", "clip:1"));
    cr_assert(add_artifact(r2.id, "video_clip", "clip:0"), "the key is per run");
    struct call l = {.fn = f_arts, .s1 = r.id};
    cr_assert_eq(call(&l), 0);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.arts[0].type, "ideas");
    cr_assert_str_eq(l.arts[1].dedupe, "clip:0");
    cr_assert_str_eq(l.arts[2].dedupe, "clip:1");
    cr_assert_str_eq(l.arts[0].metadata, "{}");
    for (int i = 0; i < l.n; i++)
        artifact_release(&l.arts[i]);
    struct call t = {.fn = f_arts, .s1 = r.id, .s2 = "video_clip"};
    cr_assert_eq(call(&t), 0);
    cr_assert_eq(t.n, 2);
    for (int i = 0; i < t.n; i++)
        artifact_release(&t.arts[i]);
    struct call k = {.fn = f_artcount, .s1 = r.id, .s2 = "video_clip"};
    cr_assert_eq(call(&k), 0);
    cr_assert_eq(k.n, 2);
}

static int f_task_add(store_tx_t *tx, struct call *c) {
    return tx->s->ops->task_add(tx, "sora", c->s1, c->s2, c->index);
}
static int f_task_find(store_tx_t *tx, struct call *c) {
    return tx->s->ops->task_find(tx, "sora", c->s1, c->run_id, &c->index);
}

Test(run_store, tasks_map_to_their_run_once) {
    run_t r = new_run("aismr", "pending", clock_now_ms());
    insert(&r);
    struct call a = {.fn = f_task_add, .s1 = "video_1", .s2 = r.id, .index = 3};
    cr_assert_eq(call(&a), 0);
    cr_assert_eq(call(&a), ERR_CONFLICT);
    struct call f = {.fn = f_task_find, .s1 = "video_1"};
    cr_assert_eq(call(&f), 0);
    cr_assert_str_eq(f.run_id, r.id);
    cr_assert_eq(f.index, 3);
    struct call u = {.fn = f_task_find, .s1 = "video_2"};
    cr_assert_eq(call(&u), ERR_NOTFOUND);
}

static int f_inbox_add(store_tx_t *tx, struct call *c) {
    return tx->s->ops->inbox_add(tx, &c->w, &c->flag);
}
static int f_inbox_early(store_tx_t *tx, struct call *c) {
    c->n = 8;
    return tx->s->ops->inbox_early(tx, "sora", c->s1, c->i1, c->ws, &c->n);
}
static int f_inbox_set(store_tx_t *tx, struct call *c) {
    return tx->s->ops->inbox_set(tx, c->i1, c->s1, c->s2);
}

static struct call delivery(const char *id, const char *task, const char *status, int64_t at) {
    struct call c = {.fn = f_inbox_add};
    snprintf(c.w.provider, sizeof c.w.provider, "sora");
    snprintf(c.w.delivery_id, sizeof c.w.delivery_id, "%s", id);
    snprintf(c.w.event_type, sizeof c.w.event_type, "video.completed");
    snprintf(c.w.task_id, sizeof c.w.task_id, "%s", task);
    snprintf(c.w.status, sizeof c.w.status, "%s", status);
    c.w.payload = "{}";
    c.w.received_at = at;
    return c;
}

Test(run_store, inbox_dedupes_forever_and_keeps_early_deliveries) {
    int64_t now = clock_now_ms();
    struct call a = delivery("msg_1", "video_9", "early", now);
    cr_assert_eq(call(&a), 0);
    cr_assert_not(a.flag);
    int64_t first = a.w.id;
    struct call dup = delivery("msg_1", "video_9", "accepted", now);
    cr_assert_eq(call(&dup), 0);
    cr_assert(dup.flag, "the same delivery id is a duplicate");
    struct call old = delivery("msg_0", "video_9", "early", now - 700000);
    cr_assert_eq(call(&old), 0);
    struct call other = delivery("msg_2", "video_8", "early", now);
    cr_assert_eq(call(&other), 0);
    struct call e = {.fn = f_inbox_early, .s1 = "video_9", .i1 = now - 600000};
    cr_assert_eq(call(&e), 0);
    cr_assert_eq(e.n, 1, "only the early delivery within the window, for that task");
    cr_assert_eq(e.ws[0].id, first);
    cr_assert_str_eq(e.ws[0].payload, "{}");
    inbox_item_release(&e.ws[0]);
    run_t r = new_run("aismr", "pending", now);
    insert(&r);
    struct call s = {.fn = f_inbox_set, .i1 = first, .s1 = "applied", .s2 = r.id};
    cr_assert_eq(call(&s), 0);
    cr_assert_eq(call(&e), 0);
    cr_assert_eq(e.n, 0, "applied deliveries are not early any more");
}

static int f_idem_begin(store_tx_t *tx, struct call *c) {
    return tx->s->ops->idem_begin(tx, c->s1, c->s2, c->s3, c->i1, 1000, &c->idem);
}
static int f_idem_finish(store_tx_t *tx, struct call *c) {
    return tx->s->ops->idem_finish(tx, c->s1, c->s2, 200, "{\"ok\":true}");
}
static int f_idem_abort(store_tx_t *tx, struct call *c) {
    return tx->s->ops->idem_abort(tx, c->s1, c->s2);
}

static enum idem_state idem(const char *scope, const char *key, const char *hash, int64_t now,
                            struct call *out) {
    struct call c = {.fn = f_idem_begin, .s1 = scope, .s2 = key, .s3 = hash, .i1 = now};
    cr_assert_eq(call(&c), 0);
    if (out)
        *out = c;
    else
        free(c.idem.body);
    return c.idem.state;
}

Test(run_store, idempotency_keys_replay_refuse_and_expire) {
    int64_t now = clock_now_ms();
    cr_assert_eq(idem("key:a", "k1", "h1", now, NULL), IDEM_NEW);
    cr_assert_eq(idem("key:a", "k1", "h1", now, NULL), IDEM_INFLIGHT);
    cr_assert_eq(idem("key:a", "k1", "h2", now, NULL), IDEM_MISMATCH);
    cr_assert_eq(idem("key:b", "k1", "h2", now, NULL), IDEM_NEW, "keys are scoped per API key");
    struct call f = {.fn = f_idem_finish, .s1 = "key:a", .s2 = "k1"};
    cr_assert_eq(call(&f), 0);
    struct call r;
    cr_assert_eq(idem("key:a", "k1", "h1", now, &r), IDEM_REPLAY);
    cr_assert_eq(r.idem.status, 200);
    cr_assert_str_eq(r.idem.body, "{\"ok\":true}");
    free(r.idem.body);
    cr_assert_eq(idem("key:a", "k1", "h2", now + 2000, NULL), IDEM_NEW,
                 "an expired key is free again");
    struct call a = {.fn = f_idem_abort, .s1 = "key:a", .s2 = "k1"};
    cr_assert_eq(call(&a), 0);
    cr_assert_eq(idem("key:a", "k1", "h3", now + 2000, NULL), IDEM_NEW,
                 "an aborted key is free again");
}

static int f_fb_add(store_tx_t *tx, struct call *c) { return tx->s->ops->feedback_add(tx, &c->fb); }
static int f_fb_list(store_tx_t *tx, struct call *c) {
    c->n = 8;
    return tx->s->ops->feedback_list(tx, c->s1, c->fbs, &c->n);
}

Test(run_store, feedback_is_listed_newest_first_and_ratings_are_checked) {
    run_t r = new_run("aismr", "completed", clock_now_ms());
    insert(&r);
    for (int i = 0; i < 2; i++) {
        struct call c = {.fn = f_fb_add};
        crypto_uuid4(c.fb.id);
        memcpy(c.fb.run_id, r.id, RUN_ID_LEN);
        c.fb.rating = i ? 5 : 1;
        c.fb.comment = i ? "great" : NULL;
        c.fb.created_at = clock_now_ms() + i;
        cr_assert_eq(call(&c), 0);
    }
    struct call bad = {.fn = f_fb_add};
    crypto_uuid4(bad.fb.id);
    memcpy(bad.fb.run_id, r.id, RUN_ID_LEN);
    bad.fb.rating = 3;
    cr_assert_neq(call(&bad), 0);
    struct call l = {.fn = f_fb_list, .s1 = r.id};
    cr_assert_eq(call(&l), 0);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.fbs[0].rating, 5);
    cr_assert_str_eq(l.fbs[0].comment, "great");
    cr_assert_null(l.fbs[1].comment);
    for (int i = 0; i < l.n; i++)
        feedback_release(&l.fbs[i]);
}

/* A unit that goes on after one of its statements failed (it treats the refusal as an answer,
 * as the callers of task_add or job hand-backs do with ERR_CONFLICT) and returns 0: the store
 * says committed exactly when the unit's other write is there. Postgres aborts the whole
 * transaction on a failed statement and answers COMMIT with ROLLBACK: that must not be
 * reported as a commit. */
static int f_insert_then_refused(store_tx_t *tx, struct call *c) {
    int rc = tx->s->ops->run_insert(tx, &c->run);
    if (rc)
        return rc;
    c->i1 = tx->s->ops->feedback_add(tx, &c->fb); /* no such run: refused */
    return 0;
}

Test(run_store, a_commit_reported_is_a_commit_made) {
    run_t r = new_run("aismr", "pending", clock_now_ms());
    struct call c = {.fn = f_insert_then_refused, .run = r};
    crypto_uuid4(c.fb.id);
    crypto_uuid4(c.fb.run_id); /* a run that does not exist */
    c.fb.rating = 5;
    c.fb.created_at = clock_now_ms();
    int rc = call(&c);
    cr_assert_neq(c.i1, 0, "feedback for an unknown run was accepted");
    struct call g = {.fn = f_get, .s1 = r.id};
    int grc = call(&g);
    if (grc == 0)
        run_release(&g.run);
    cr_assert_eq(rc == 0, grc == 0, "store_call said %d but the run is %s", rc,
                 grc == 0 ? "there" : "missing");
    /* and the store goes on working afterwards */
    run_t r2 = new_run("aismr", "pending", clock_now_ms());
    insert(&r2);
    run_t got = get(r2.id);
    run_release(&got);
}

/* A malformed Postgres URL: libpq's complaint quotes the URL or the part it could not parse,
 * the error must not show the password (any build: without Postgres the error is the build's). */
static void open_fails_without(const char *url, const char *secret) {
    config_t c;
    config_init(&c);
    buf_t err;
    buf_init(&err, 4096);
    store_t *s = NULL;
    if (config_set(&c, "DATABASE_URL", url, CS_FLAG, &err) == 0 && config_finish(&c, &err) == 0) {
        cr_assert_neq(store_open(&c, &s, &err), 0, "%s opened", url);
        cr_assert_null(s);
    }
    cr_assert(err.len > 0);
    cr_expect_null(strstr(err.data, secret), "the error shows the password: %s", err.data);
    buf_release(&err);
    config_release(&c);
}

Test(store_open, a_bad_postgres_url_never_shows_its_password) {
    open_fails_without("postgres://u:s3cr%zzet@127.0.0.1:1/db", "s3cr");
    open_fails_without("postgres://u:s3cretpw@[::1]x/db", "s3cretpw");
    open_fails_without("postgres://u:s3c@retpw@127.0.0.1:1/db", "retpw");
    open_fails_without("postgres://u:s3cpw/ret@127.0.0.1:1/db", "s3cpw");
    open_fails_without("postgresql://u@127.0.0.1:1/db?password=pa%zzss", "pa%zzss");
}

static int f_stale(store_tx_t *tx, struct call *c) {
    static const char *const waits[] = {"awaiting_render", "awaiting_publish", NULL};
    return tx->s->ops->run_stale(tx, waits, c->i1, c->runs, &c->n);
}

Test(run_store, stale_runs_are_the_oldest_first_and_at_most_the_room_given) {
    int64_t t0 = clock_now_ms() - 100000;
    const char *statuses[] = {"awaiting_render", "completed", "awaiting_publish",
                              "awaiting_render"};
    run_t rs[4];
    for (int i = 0; i < 4; i++) {
        rs[i] = new_run("aismr", statuses[i], t0 + i);
        insert(&rs[i]);
    }
    struct call c = {.fn = f_stale, .i1 = t0 + 10, .n = 2};
    cr_assert_eq(call(&c), 0);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.runs[0].id, rs[0].id);
    cr_assert_str_eq(c.runs[1].id, rs[2].id);
    for (int i = 0; i < c.n; i++)
        run_release(&c.runs[i]);
}
