/*
 * test_retention: the media sweep on a real SQLite store and real files: intermediate clips and
 * thumbnails of runs finished before the cutoff (and of runs that are gone) are removed; those of
 * live runs, of runs finished after the cutoff, renders, render thumbnails and new files stay.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "db/store.h"
#include "storage/storage.h"
#include "workflow/retention.h"

static config_t cfg;
static store_t *db;
static storage_t *st;
static char dir[64];

static void setup(void) {
    for (int i = 0; i < S__COUNT; i++)
        unsetenv(config_settings[i].name);
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 1024);
    snprintf(dir, sizeof dir, "/tmp/myloware-retention-XXXXXX");
    cr_assert(mkdtemp(dir));
    char url[200], media[200];
    snprintf(url, sizeof url, "sqlite:%s/db.sqlite", dir);
    snprintf(media, sizeof media, "%s/media", dir);
    cr_assert_eq(config_set(&cfg, "DATABASE_URL", url, CS_FLAG, &err), 0);
    cr_assert_eq(config_set(&cfg, "MEDIA_DIR", media, CS_FLAG, &err), 0);
    cr_assert_eq(config_set(&cfg, "MEDIA_RETENTION_HOURS", "2", CS_FLAG, &err), 0);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(store_open(&cfg, &db, &err), 0, "%s", err.data);
    int from, to;
    cr_assert_eq(store_migrate(db, &from, &to, &err), 0, "%s", err.data);
    cr_assert_eq(storage_open(&cfg, &st, &err), 0, "%s", err.data);
    buf_release(&err);
}

static void teardown(void) {
    storage_free(st);
    store_close(db);
    config_release(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 30);

static int insert_unit(store_tx_t *tx, void *arg) { return tx->s->ops->run_insert(tx, arg); }

/* A run in status, last updated hours_ago hours ago; its id into id. */
static void add_run(const char *status, double hours_ago, char id[37]) {
    run_t r;
    memset(&r, 0, sizeof r);
    crypto_uuid4(r.id);
    snprintf(r.workflow, sizeof r.workflow, "aismr");
    snprintf(r.status, sizeof r.status, "%s", status);
    r.brief = "a brief";
    r.created_at = r.updated_at = clock_now_ms() - (int64_t)(hours_ago * 3600 * 1000);
    cr_assert_eq(store_call(db, insert_unit, &r), 0);
    memcpy(id, r.id, 37);
}

/* Stores key with a file mtime hours_ago hours ago. */
static void put(const char *key, double hours_ago) {
    char src[256], path[512];
    snprintf(src, sizeof src, "%s/src", dir);
    FILE *f = fopen(src, "w");
    fputs(key, f);
    fclose(f);
    cr_assert_eq(storage_put_file(st, key, src, NULL, STORAGE_PUT_MOVE), 0);
    cr_assert_eq(storage_local_path(st, key, path, sizeof path), 0);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= (time_t)(hours_ago * 3600);
    tv[1] = tv[0];
    cr_assert_eq(utimes(path, tv), 0);
}

static void keys_of(const char *id, char clip[128], char thumb[128]) {
    snprintf(clip, 128, "transcoded/clip_%s_0.mp4", id);
    snprintf(thumb, 128, "thumbnails/thumb_%s_0.jpg", id);
}

Test(retention, finished_runs_lose_their_intermediate_media_after_the_retention) {
    char old_done[37], old_failed[37], recent_done[37], live[37], gone[37];
    add_run("completed", 5, old_done);
    add_run("failed", 3, old_failed);
    add_run("completed", 1, recent_done);           /* finished after the cutoff */
    add_run("awaiting_ideation_approval", 9, live); /* not terminal, however old */
    crypto_uuid4(gone);                             /* no such run */
    const char *ids[] = {old_done, old_failed, recent_done, live, gone};
    char clips[5][128], thumbs[5][128];
    for (int i = 0; i < 5; i++) {
        keys_of(ids[i], clips[i], thumbs[i]);
        put(clips[i], 6);
        put(thumbs[i], 6);
    }
    /* finals stay, whatever their run */
    char render[128], render_thumb[128], fresh[128];
    snprintf(render, sizeof render, "renders/%s.mp4", old_done);
    snprintf(render_thumb, sizeof render_thumb, "thumbnails/render_%s.jpg", old_done);
    put(render, 6);
    put(render_thumb, 6);
    /* a clip of the finished run written a moment ago (file newer than the cutoff) stays too */
    snprintf(fresh, sizeof fresh, "transcoded/clip_%s_9.mp4", old_done);
    put(fresh, 0);

    int64_t cutoff = storage_retention_cutoff(st, clock_now_ms() / 1000);
    int removed = -1;
    cr_assert_eq(retention_sweep(st, db, cutoff, &removed), 0);
    cr_assert_eq(removed, 6, "old_done, old_failed and gone: a clip and a thumbnail each");
    bool expect_gone[5] = {true, true, false, false, true};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(storage_exists(st, clips[i]), !expect_gone[i], "%s", clips[i]);
        cr_assert_eq(storage_exists(st, thumbs[i]), !expect_gone[i], "%s", thumbs[i]);
    }
    cr_assert(storage_exists(st, render));
    cr_assert(storage_exists(st, render_thumb));
    cr_assert(storage_exists(st, fresh));
    /* a second sweep finds nothing more */
    cr_assert_eq(retention_sweep(st, db, cutoff, &removed), 0);
    cr_assert_eq(removed, 0);
}
