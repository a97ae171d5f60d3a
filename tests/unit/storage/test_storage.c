/*
 * test_storage: the storage interface on the local backend (atomic puts, moves, stat, delete,
 * get, retention), key rules, media paths and URLs, the signed media URL helpers, and the s3
 * backend's configuration checks and presigned URL shape (its signatures are compared with the
 * AWS SDK in tests/integration/test_s3.c). Real files in a fresh temp directory.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "storage/storage.h"

static config_t cfg;
static buf_t err;
static char dir[64];
static char media[128];
static storage_t *st;

static void set(const char *name, const char *value) {
    cr_assert_eq(config_set(&cfg, name, value, CS_FLAG, &err), 0, "%s", err.data);
}

static void setup(void) {
    for (int i = 0; i < S__COUNT; i++)
        unsetenv(config_settings[i].name);
    config_init(&cfg);
    buf_init(&err, 4096);
    snprintf(dir, sizeof dir, "/tmp/myloware-storage-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(media, sizeof media, "%s/media", dir);
    set("MEDIA_DIR", media);
    st = NULL;
}

static void teardown(void) {
    storage_free(st);
    config_release(&cfg);
    buf_release(&err);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void open_storage(void) {
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(storage_open(&cfg, &st, &err), 0, "%s", err.data);
}

static void write_at(const char *path, const char *content) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(content, f);
    fclose(f);
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Names in a directory other than . and .. (to see leftover temp files). */
static int entries(const char *d) {
    DIR *dp = opendir(d);
    if (!dp)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dp);
    return n;
}

static void age(const char *path, long seconds) {
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= seconds;
    tv[1] = tv[0];
    cr_assert_eq(utimes(path, tv), 0);
}

TestSuite(storage, .init = setup, .fini = teardown);

Test(storage, key_and_name_rules) {
    cr_assert(storage_key_valid("transcoded/clip_1f2e_0.mp4"));
    cr_assert(storage_key_valid("renders/abc.mp4"));
    cr_assert(storage_key_valid("a/b/c/d"));
    cr_assert_not(storage_key_valid("a/b/c/d/e"), "at most four segments");
    cr_assert_not(storage_key_valid(""));
    cr_assert_not(storage_key_valid(NULL));
    cr_assert_not(storage_key_valid("/abs"));
    cr_assert_not(storage_key_valid("trailing/"));
    cr_assert_not(storage_key_valid("a//b"));
    cr_assert_not(storage_key_valid("../x"));
    cr_assert_not(storage_key_valid("a/../x"));
    cr_assert_not(storage_key_valid("a/.hidden"));
    cr_assert_not(storage_key_valid("a/x..y"));
    cr_assert_not(storage_key_valid("a/x y"));
    cr_assert_not(storage_key_valid("a/x%2e"));
    cr_assert_not(storage_key_valid("a\\b"));
    char name[200];
    memset(name, 'x', 129);
    name[129] = '\0';
    cr_assert(storage_name_valid(name, 128));
    cr_assert_not(storage_name_valid(name, 129));
    cr_assert_not(storage_name_valid(name, 0));
    cr_assert_not(storage_name_valid("-x", 2));
    cr_assert_not(storage_name_valid("_x", 2));
    cr_assert(storage_name_valid("x-_.y", 5));
}

Test(storage, opens_the_local_backend_and_creates_the_media_directory) {
    open_storage();
    cr_assert_str_eq(storage_backend(st), "local");
    cr_assert(storage_is_local(st));
    struct stat s;
    cr_assert_eq(stat(media, &s), 0);
    cr_assert(S_ISDIR(s.st_mode));
    char *real = realpath(media, NULL);
    cr_assert_str_eq(storage_local_root(st), real);
    free(real);
    char p[512];
    cr_assert_eq(storage_local_path(st, "transcoded/a.mp4", p, sizeof p), 0);
    char want[512];
    snprintf(want, sizeof want, "%s/transcoded/a.mp4", media);
    cr_assert_str_eq(p, want);
    cr_assert_eq(storage_local_path(st, "../a.mp4", p, sizeof p), ERR_INVAL);
    cr_assert_eq(storage_local_path(st, "transcoded/a.mp4", p, 10), ERR_TOOBIG);
    cr_assert_eq(storage_presign(st, "transcoded/a.mp4", 0, 60, p, sizeof p), ERR_INVAL,
                 "no presign on local");
}

Test(storage, put_copies_atomically_and_replaces) {
    open_storage();
    char src[256], path[512];
    snprintf(src, sizeof src, "%s/src.mp4", dir);
    write_at(src, "first version");
    cr_assert_eq(storage_put_file(st, "transcoded/clip_r_0.mp4", src, NULL, 0), 0);
    cr_assert_eq(storage_local_path(st, "transcoded/clip_r_0.mp4", path, sizeof path), 0);
    cr_assert_str_eq(read_all(path), "first version");
    cr_assert_str_eq(read_all(src), "first version", "a copy leaves the source");
    write_at(src, "second");
    cr_assert_eq(storage_put_file(st, "transcoded/clip_r_0.mp4", src, NULL, 0), 0);
    cr_assert_str_eq(read_all(path), "second");
    char tdir[300];
    snprintf(tdir, sizeof tdir, "%s/transcoded", media);
    cr_assert_eq(entries(tdir), 1, "no temp file left behind");
    struct storage_stat ss;
    cr_assert_eq(storage_stat(st, "transcoded/clip_r_0.mp4", &ss), 0);
    cr_assert_eq(ss.size, 6);
    cr_assert(ss.etag[0] == '"' && strstr(ss.etag, "6-") == ss.etag + 1, "%s", ss.etag);
    cr_assert(storage_exists(st, "transcoded/clip_r_0.mp4"));
}

Test(storage, put_move_renames_and_the_source_is_gone) {
    open_storage();
    char tmp[512], path[512];
    cr_assert_eq(storage_tmp_path(st, "clip.mp4", tmp, sizeof tmp), 0);
    cr_assert(strstr(tmp, "/.tmp/") && strstr(tmp, "-clip.mp4"), "%s", tmp);
    write_at(tmp, "encoded output");
    struct stat before;
    cr_assert_eq(stat(tmp, &before), 0);
    cr_assert_eq(storage_put_file(st, "renders/run.mp4", tmp, "video/mp4", STORAGE_PUT_MOVE), 0);
    cr_assert_eq(access(tmp, F_OK), -1, "moved away");
    cr_assert_eq(storage_local_path(st, "renders/run.mp4", path, sizeof path), 0);
    struct stat after;
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "a rename on one file system, not a copy");
    cr_assert_str_eq(read_all(path), "encoded output");
}

Test(storage, failed_puts_change_nothing) {
    open_storage();
    char src[256];
    snprintf(src, sizeof src, "%s/missing.mp4", dir);
    cr_assert_eq(storage_put_file(st, "transcoded/x.mp4", src, NULL, 0), ERR_NOTFOUND);
    cr_assert_eq(storage_put_file(st, "transcoded/x.mp4", src, NULL, STORAGE_PUT_MOVE),
                 ERR_NOTFOUND);
    cr_assert_not(storage_exists(st, "transcoded/x.mp4"));
    write_at(src, "x");
    cr_assert_eq(storage_put_file(st, "../escape.mp4", src, NULL, 0), ERR_INVAL);
    cr_assert_eq(storage_put_file(st, "transcoded/x.mp4", "", NULL, 0), ERR_INVAL);
    cr_assert_eq(storage_put_file(st, "transcoded/x.mp4", dir, NULL, 0), ERR_INVAL,
                 "a directory is no file");
    char esc[256];
    snprintf(esc, sizeof esc, "%s/escape.mp4", dir);
    cr_assert_eq(access(esc, F_OK), -1);
}

Test(storage, stat_get_and_delete) {
    open_storage();
    char src[256], dst[256];
    snprintf(src, sizeof src, "%s/a.jpg", dir);
    snprintf(dst, sizeof dst, "%s/back.jpg", dir);
    write_at(src, "jpeg bytes");
    struct storage_stat ss = {.size = -5};
    cr_assert_eq(storage_stat(st, "thumbnails/a.jpg", &ss), ERR_NOTFOUND);
    cr_assert_eq(ss.size, -5, "untouched on failure");
    cr_assert_eq(storage_get_file(st, "thumbnails/a.jpg", dst), ERR_NOTFOUND);
    cr_assert_eq(storage_put_file(st, "thumbnails/a.jpg", src, NULL, 0), 0);
    cr_assert_eq(storage_get_file(st, "thumbnails/a.jpg", dst), 0);
    cr_assert_str_eq(read_all(dst), "jpeg bytes");
    cr_assert_eq(storage_delete(st, "thumbnails/a.jpg"), 0);
    cr_assert_not(storage_exists(st, "thumbnails/a.jpg"));
    cr_assert_eq(storage_delete(st, "thumbnails/a.jpg"), 0, "deleting an absent key is fine");
    cr_assert_eq(storage_delete(st, "nodir/a.jpg"), 0);
    cr_assert_eq(storage_delete(st, "../a.jpg"), ERR_INVAL);
}

static bool keep_run_b(const char *key, void *ud) {
    (*(int *)ud)++;
    return strstr(key, "_runb_") != NULL;
}

Test(storage, retention_removes_old_clips_but_keeps_what_keep_says_and_new_ones) {
    set("MEDIA_RETENTION_HOURS", "2");
    open_storage();
    char src[256], path[512];
    snprintf(src, sizeof src, "%s/src", dir);
    write_at(src, "clip");
    const char *keys[] = {"transcoded/clip_runa_0.mp4", "transcoded/clip_runa_1.mp4",
                          "transcoded/clip_runb_0.mp4", "transcoded/clip_runc_0.mp4"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(storage_put_file(st, keys[i], src, NULL, 0), 0);
    /* three hours old, except runc's (new) */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(storage_local_path(st, keys[i], path, sizeof path), 0);
        age(path, 3 * 3600);
    }
    /* an abandoned temp file of a crashed put, and a foreign file that is not a key */
    char stale[512], foreign[512], wtmp[512];
    snprintf(stale, sizeof stale, "%s/transcoded/.clip_runa_9.mp4.0011223344556677.tmp", media);
    snprintf(foreign, sizeof foreign, "%s/transcoded/not a key", media);
    write_at(stale, "partial");
    write_at(foreign, "x");
    age(stale, 3 * 3600);
    age(foreign, 3 * 3600);
    cr_assert_eq(storage_tmp_path(st, "x.mp4", wtmp, sizeof wtmp), 0);
    write_at(wtmp, "abandoned worker output");
    age(wtmp, 3 * 3600);

    int64_t now = time(NULL);
    int64_t cutoff = storage_retention_cutoff(st, now);
    cr_assert_eq(cutoff, now - 2 * 3600);
    int asked = 0, removed = -1;
    cr_assert_eq(storage_cleanup(st, "transcoded/", cutoff, keep_run_b, &asked, &removed), 0);
    cr_assert_eq(removed, 4, "runa's two clips, the stale temp file, the abandoned worker file");
    cr_assert_eq(asked, 3, "keep is asked about the old keys only");
    cr_assert_not(storage_exists(st, keys[0]));
    cr_assert_not(storage_exists(st, keys[1]));
    cr_assert(storage_exists(st, keys[2]), "kept: keep said so");
    cr_assert(storage_exists(st, keys[3]), "kept: too new");
    cr_assert_eq(access(stale, F_OK), -1);
    cr_assert_eq(access(wtmp, F_OK), -1);
    cr_assert_eq(access(foreign, F_OK), 0, "files that are not keys are left alone");

    /* no keep callback: every old one goes */
    cr_assert_eq(storage_cleanup(st, "transcoded", cutoff, NULL, NULL, &removed), 0);
    cr_assert_eq(removed, 1);
    cr_assert_not(storage_exists(st, keys[2]));
    cr_assert_eq(storage_cleanup(st, "../x", cutoff, NULL, NULL, &removed), ERR_INVAL);
    cr_assert_eq(storage_cleanup(st, "absent", cutoff, NULL, NULL, &removed), 0);
    cr_assert_eq(removed, 0);
}

Test(storage, run_ids_of_intermediate_keys) {
    char id[37] = "untouched";
    cr_assert_eq(
        storage_key_run_id("transcoded/clip_0b9e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b_3.mp4", id), 0);
    cr_assert_str_eq(id, "0b9e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    cr_assert_eq(
        storage_key_run_id("thumbnails/thumb_0B9E6F3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B_0.jpg", id), 0);
    cr_assert_str_eq(id, "0B9E6F3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
    strcpy(id, "untouched");
    cr_assert_eq(storage_key_run_id("renders/0b9e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b.mp4", id),
                 ERR_INVAL);
    cr_assert_eq(storage_key_run_id("transcoded/clip_r1_0.mp4", id), ERR_INVAL);
    cr_assert_eq(
        storage_key_run_id("transcoded/clip_0b9e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5bX3.mp4", id),
        ERR_INVAL);
    cr_assert_eq(storage_key_run_id("transcoded/clip_0b9e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b_/x", id),
                 ERR_INVAL);
    cr_assert_str_eq(id, "untouched");
}

Test(storage, retention_zero_keeps_everything) {
    set("MEDIA_RETENTION_HOURS", "0");
    open_storage();
    cr_assert_eq(storage_retention_cutoff(st, 1700000000), 0);
}

Test(storage, media_paths_of_keys) {
    char p[256];
    cr_assert_eq(storage_media_path("transcoded/clip_r_0.mp4", p, sizeof p), 0);
    cr_assert_str_eq(p, "/v1/media/transcoded/clip_r_0.mp4");
    cr_assert_eq(storage_media_path("thumbnails/thumb_r_0.jpg", p, sizeof p), 0);
    cr_assert_str_eq(p, "/v1/media/thumbnails/thumb_r_0.jpg");
    cr_assert_eq(storage_media_path("renders/6f1c.mp4", p, sizeof p), 0);
    cr_assert_str_eq(p, "/v1/media/video/6f1c");
    cr_assert_eq(storage_media_path("renders/6f1c.mov", p, sizeof p), ERR_INVAL);
    cr_assert_eq(storage_media_path("other/x.mp4", p, sizeof p), ERR_INVAL);
    cr_assert_eq(storage_media_path("transcoded/a/b.mp4", p, sizeof p), ERR_INVAL);
    cr_assert_eq(storage_media_path("transcoded", p, sizeof p), ERR_INVAL);
    cr_assert_eq(storage_media_path("transcoded/clip_r_0.mp4", p, 8), ERR_TOOBIG);
}

Test(storage, local_urls_use_the_base_url_and_are_signed_with_the_token) {
    set("PUBLIC_BASE_URL", "https://media.example.com/");
    open_storage();
    char url[1024];
    cr_assert_eq(storage_url(st, "transcoded/c.mp4", 1700000000, url, sizeof url), 0);
    cr_assert_str_eq(url, "https://media.example.com/v1/media/transcoded/c.mp4");
    cr_assert_eq(storage_url(st, "misc/c.mp4", 1700000000, url, sizeof url), ERR_INVAL);
    storage_free(st);
    st = NULL;

    set("MEDIA_ACCESS_TOKEN", "tok");
    set("MEDIA_URL_TTL_S", "600");
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(storage_open(&cfg, &st, &err), 0, "%s", err.data);
    cr_assert_str_eq(storage_media_token(st), "tok");
    cr_assert_eq(storage_url(st, "renders/r1.mp4", 1700000000, url, sizeof url), 0);
    char sig[65], want[1024];
    storage_media_sign("tok", 3, "/v1/media/video/r1", 1700000600, sig);
    snprintf(want, sizeof want,
             "https://media.example.com/v1/media/video/r1?expires=1700000600&sig=%s", sig);
    cr_assert_str_eq(url, want);
    cr_assert_eq(
        storage_media_verify("tok", 3, "/v1/media/video/r1", "1700000600", sig, 1700000000), 0);
}

Test(storage, default_base_url_is_the_listening_address) {
    set("HOST", "127.0.0.1");
    set("PORT", "0");
    open_storage();
    storage_set_port(st, 43210);
    char url[256];
    cr_assert_eq(storage_url(st, "thumbnails/t.jpg", 0, url, sizeof url), 0);
    cr_assert_str_eq(url, "http://127.0.0.1:43210/v1/media/thumbnails/t.jpg");
}

Test(storage, media_signatures) {
    /* a known answer: HMAC-SHA256("key", "/v1/media/transcoded/a.mp4" + "1700000000"), computed
     * independently with: printf %s '/v1/media/transcoded/a.mp41700000000' | openssl dgst
     * -sha256 -hmac key */
    char sig[65];
    storage_media_sign("key", 3, "/v1/media/transcoded/a.mp4", 1700000000, sig);
    FILE *p = popen(
        "printf %s '/v1/media/transcoded/a.mp41700000000' | openssl dgst -sha256 -hmac key", "r");
    cr_assert(p);
    char line[256] = "";
    cr_assert(fgets(line, sizeof line, p));
    pclose(p);
    char *eq = strstr(line, "= ");
    cr_assert(eq, "openssl output: %s", line);
    eq[2 + 64] = '\0';
    cr_assert_str_eq(sig, eq + 2);

    const char *path = "/v1/media/transcoded/a.mp4";
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", sig, 1699999999), 0);
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", sig, 1700000000), 0,
                 "valid through its second");
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", sig, 1700000001), ERR_UNAUTH,
                 "expired");
    cr_assert_eq(storage_media_verify("kez", 3, path, "1700000000", sig, 0), ERR_UNAUTH,
                 "another token");
    cr_assert_eq(storage_media_verify("key", 3, "/v1/media/transcoded/b.mp4", "1700000000", sig, 0),
                 ERR_UNAUTH);
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000001", sig, 0), ERR_UNAUTH,
                 "another expiry");
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (sig[i] >= 'a' && sig[i] <= 'f') ? (char)(sig[i] - 32) : sig[i];
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", upper, 0), 0,
                 "hex case is free");
    char bad[65];
    memcpy(bad, sig, 65);
    bad[63] = bad[63] == '0' ? '1' : '0';
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", bad, 0), ERR_UNAUTH);
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", "abc", 0), ERR_UNAUTH, "short");
    bad[0] = 'g';
    cr_assert_eq(storage_media_verify("key", 3, path, "1700000000", bad, 0), ERR_UNAUTH, "not hex");
    cr_assert_eq(storage_media_verify("key", 3, path, "", sig, 0), ERR_UNAUTH);
    cr_assert_eq(storage_media_verify("key", 3, path, "17e8", sig, 0), ERR_UNAUTH);
    cr_assert_eq(storage_media_verify("key", 3, path, "-1", sig, 0), ERR_UNAUTH);
    cr_assert_eq(storage_media_verify("key", 3, path, "99999999999999999999999", sig, 0),
                 ERR_UNAUTH);
    cr_assert_eq(storage_media_verify(NULL, 0, path, "1", sig, 0), ERR_UNAUTH);
}

Test(storage, a_media_dir_that_cannot_be_created_is_refused) {
    char file[256], sub[300];
    snprintf(file, sizeof file, "%s/plainfile", dir);
    write_at(file, "x");
    snprintf(sub, sizeof sub, "%s/media", file);
    set("MEDIA_DIR", sub);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    cr_assert_eq(storage_open(&cfg, &st, &err), ERR_IO);
    cr_assert(strstr(err.data, "MEDIA_DIR"), "%s", err.data);
    cr_assert_null(st);
}

/* ---- s3 configuration (requests are tested against s3rver in tests/integration/test_s3.c) -- */

static void s3_base(void) {
    set("STORAGE_BACKEND", "s3");
    set("S3_BUCKET", "media-bucket");
    set("S3_REGION", "eu-west-3");
    set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
}

static int s3_open_err(const char *name, const char *value) {
    if (name)
        set(name, value);
    cr_assert_eq(config_finish(&cfg, &err), 0, "%s", err.data);
    buf_reset(&err);
    return storage_open(&cfg, &st, &err);
}

Test(storage, s3_settings_are_validated_without_leaking_the_secret) {
    s3_base();
    cr_assert_eq(s3_open_err("S3_BUCKET", "Bad_Bucket"), ERR_INVAL);
    cr_assert(strstr(err.data, "S3_BUCKET"), "%s", err.data);
    cr_assert_null(strstr(err.data, "wJalr"));
    set("S3_BUCKET", "media-bucket");
    cr_assert_eq(s3_open_err("S3_ENDPOINT", "ftp://x"), ERR_INVAL);
    cr_assert(strstr(err.data, "S3_ENDPOINT"), "%s", err.data);
    cr_assert_eq(s3_open_err("S3_ENDPOINT", "http://host:9000/path"), ERR_INVAL);
    cr_assert_eq(s3_open_err("S3_ENDPOINT", "http://{region}.host"), ERR_INVAL);
    cr_assert_eq(s3_open_err("S3_ENDPOINT", "http://h o st"), ERR_INVAL);
    set("S3_ENDPOINT", "");
    cr_assert_eq(s3_open_err("S3_PREFIX", "a/../b"), ERR_INVAL);
    cr_assert(strstr(err.data, "S3_PREFIX"), "%s", err.data);
    set("S3_PREFIX", "");
    cr_assert_eq(s3_open_err("AWS_SECRET_ACCESS_KEY", ""), ERR_INVAL);
    cr_assert(strstr(err.data, "AWS_SECRET_ACCESS_KEY"), "%s", err.data);
    set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    cr_assert_eq(s3_open_err(NULL, NULL), 0, "%s", err.data);
    cr_assert_str_eq(storage_backend(st), "s3");
    cr_assert_not(storage_is_local(st));
    cr_assert_null(storage_local_root(st));
    char p[64];
    cr_assert_eq(storage_local_path(st, "transcoded/a.mp4", p, sizeof p), ERR_INVAL);
}

Test(storage, s3_presigned_url_shape_for_each_addressing_style) {
    s3_base();
    set("S3_PREFIX", "/myloware/media/");
    cr_assert_eq(s3_open_err(NULL, NULL), 0, "%s", err.data);
    char url[4096];
    cr_assert_eq(storage_presign(st, "transcoded/c.mp4", 1700000000, 3600, url, sizeof url), 0);
    const char *want_prefix =
        "https://media-bucket.s3.eu-west-3.amazonaws.com/myloware/media/transcoded/c.mp4?"
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-3%2Fs3%2Faws4_request"
        "&X-Amz-Date=20231114T221320Z&X-Amz-Expires=3600&X-Amz-Signature=";
    const char *want_suffix = "&X-Amz-SignedHeaders=host&x-id=GetObject";
    cr_assert(strncmp(url, want_prefix, strlen(want_prefix)) == 0, "%s", url);
    cr_assert_eq(strlen(url), strlen(want_prefix) + 64 + strlen(want_suffix), "%s", url);
    cr_assert_str_eq(url + strlen(want_prefix) + 64, want_suffix);
    char url2[4096];
    cr_assert_eq(storage_url(st, "transcoded/c.mp4", 1700000000, url2, sizeof url2), 0);
    cr_assert(strstr(url2, "X-Amz-Expires=86400&"), "S3_PRESIGN_S is the default lifetime: %s",
              url2);
    cr_assert_eq(storage_presign(st, "transcoded/c.mp4", 1700000000, 0, url, sizeof url),
                 ERR_INVAL);
    cr_assert_eq(storage_presign(st, "transcoded/c.mp4", 1700000000, 604801, url, sizeof url),
                 ERR_INVAL);
    cr_assert_eq(storage_presign(st, "../c.mp4", 1700000000, 60, url, sizeof url), ERR_INVAL);
    cr_assert_eq(storage_presign(st, "transcoded/c.mp4", 1700000000, 60, url, 40), ERR_TOOBIG);
    storage_free(st);
    st = NULL;

    cr_assert_eq(s3_open_err("S3_ENDPOINT", "http://127.0.0.1:9000"), 0, "%s", err.data);
    cr_assert_eq(storage_presign(st, "renders/r.mp4", 1700000000, 60, url, sizeof url), 0);
    cr_assert(strncmp(url, "http://127.0.0.1:9000/media-bucket/myloware/media/renders/r.mp4?X-Amz-",
                      70) == 0,
              "%s", url);
    storage_free(st);
    st = NULL;
    cr_assert_eq(s3_open_err("S3_ENDPOINT", "https://{bucket}.objects.example.com:443/"), 0, "%s",
                 err.data);
    cr_assert_eq(storage_presign(st, "renders/r.mp4", 1700000000, 60, url, sizeof url), 0);
    cr_assert(strncmp(url, "https://media-bucket.objects.example.com/myloware/media/renders/r.mp4?",
                      69) == 0,
              "the default port is dropped: %s", url);
}
