/* Integration: commands, exit codes, configuration refusals, migrations. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/harness.h"

static char out[1 << 16];

Test(cli, help_and_usage_exit_codes) {
    const char *help[] = {"--help", NULL};
    cr_assert_eq(run_cmd(help, NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "serve"));
    const char *serve_help[] = {"serve", "--help", NULL};
    cr_assert_eq(run_cmd(serve_help, NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "SIGTERM"));
    const char *cmds[][4] = {{"migrate", "--help"},
                             {"version", "--help"},
                             {"config", "show", "--help"},
                             {"config", "check", "--help"}};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(run_cmd(cmds[i], NULL, out, sizeof out), 0, "%s --help", cmds[i][0]);
    const char *bad[] = {"frobnicate", NULL};
    cr_assert_eq(run_cmd(bad, NULL, out, sizeof out), 2);
    const char *badopt[] = {"serve", "--no-such-option", NULL};
    cr_assert_eq(run_cmd(badopt, NULL, out, sizeof out), 2);
    cr_assert(strstr(out, "--no-such-option"));
    const char *none[] = {NULL};
    cr_assert_eq(run_cmd(none, NULL, out, sizeof out), 2);
    const char *version[] = {"version", NULL};
    cr_assert_eq(run_cmd(version, NULL, out, sizeof out), 0);
    cr_assert(strstr(out, "libavformat"));
    cr_assert(strstr(out, "sqlite"));
}

/* Every command listed by --help has its own --help (exit 0, its usage line), and refuses an
 * argument it does not know (exit 2), without starting anything. */
Test(cli, every_command_has_help_and_refuses_unknown_arguments) {
    static char list[1 << 16];
    const char *help[] = {"--help", NULL};
    cr_assert_eq(run_cmd(help, NULL, list, sizeof list), 0);
    int seen = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  ", 2) != 0)
            continue;
        /* "  config show [--config FILE]": the command is the words before the first option */
        char words[2][64] = {"", ""};
        int nw = sscanf(line, "%63s %63s", words[0], words[1]);
        if (nw < 1 || !(words[0][0] >= 'a' && words[0][0] <= 'z'))
            continue;
        const char *args[4] = {words[0], NULL, NULL, NULL};
        int n = 1;
        if (nw == 2 && words[1][0] >= 'a' && words[1][0] <= 'z' && !strchr(words[1], '|'))
            args[n++] = words[1];
        args[n] = "--help";
        cr_assert_eq(run_cmd(args, NULL, out, sizeof out), 0, "%s %s --help: %s", args[0],
                     n > 1 ? args[1] : "", out);
        cr_assert(strstr(out, "usage: myloware "), "%s --help: %s", args[0], out);
        /* the unknown-flag check only for the foundation's commands (others' are theirs to test) */
        static const char *const own[] = {"serve",  "worker", "migrate", "version",
                                          "config", "routes", "backup"};
        bool mine = false;
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            mine |= strcmp(own[i], args[0]) == 0;
        seen++;
        if (!mine)
            continue;
        args[n] = "--no-such-flag-xyz";
        cr_assert_eq(run_cmd(args, NULL, out, sizeof out), 2, "%s %s --no-such-flag-xyz: %s",
                     args[0], n > 1 ? args[1] : "", out);
    }
    cr_assert_geq(seen, 8, "the command list was read (%d commands)", seen);
    const char *extra[][4] = {{"config", "table", "extra"},
                              {"routes", "extra"},
                              {"version", "extra"},
                              {"config", "nosuch"}};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        cr_assert_eq(run_cmd(extra[i], NULL, out, sizeof out), 2, "%s %s", extra[i][0],
                     extra[i][1]);
}

Test(cli, invalid_setting_stops_startup_naming_it) {
    const char *args[] = {"serve", "--port", "99999", NULL};
    cr_assert_eq(run_cmd(args, NULL, out, sizeof out), 1);
    cr_assert(strstr(out, "PORT"), "%s", out);
    const char *env[] = {"HTTP_IDLE_TIMEOUT_MS=soon", NULL};
    const char *check[] = {"config", "check", NULL};
    cr_assert_eq(run_cmd(check, env, out, sizeof out), 1);
    cr_assert(strstr(out, "HTTP_IDLE_TIMEOUT_MS"), "%s", out);
#ifndef WITH_POSTGRES /* a Postgres build accepts the URL (tests/integration/test_postgres.c) */
    const char *pg[] = {"DATABASE_URL=postgres://u:pw@localhost/db", NULL};
    cr_assert_eq(run_cmd(check, pg, out, sizeof out), 1);
    cr_assert(strstr(out, "WITH_POSTGRES"), "%s", out);
    cr_assert_null(strstr(out, "pw@"), "the password leaked: %s", out);
#endif
}

Test(cli, production_refuses_unsafe_settings) {
    const char *check[] = {"config", "check", NULL};
    const char *dev[] = {"ENVIRONMENT=production", NULL};
    cr_assert_eq(run_cmd(check, dev, out, sizeof out), 1);
    cr_assert(strstr(out, "dev-api-key"), "%s", out);
    const char *fake[] = {"ENVIRONMENT=production", "API_KEY=s3cret-prod-key", "PROVIDERS=fake",
                          NULL};
    cr_assert_eq(run_cmd(check, fake, out, sizeof out), 1);
    cr_assert(strstr(out, "fake"), "%s", out);
    cr_assert_null(strstr(out, "s3cret-prod-key"));
    const char *nohook[] = {"ENVIRONMENT=production", "API_KEY=s3cret-prod-key", "PROVIDERS=real",
                            NULL};
    cr_assert_eq(run_cmd(check, nohook, out, sizeof out), 1);
    cr_assert(strstr(out, "OPENAI_WEBHOOK_SECRET"), "%s", out);
    const char *http[] = {
        "ENVIRONMENT=production",          "API_KEY=s3cret-prod-key",          "PROVIDERS=real",
        "OPENAI_WEBHOOK_SECRET=whsec_abc", "PUBLIC_BASE_URL=http://x.example", NULL};
    cr_assert_eq(run_cmd(check, http, out, sizeof out), 1);
    cr_assert(strstr(out, "PUBLIC_BASE_URL"), "%s", out);
    const char *ok[] = {
        "ENVIRONMENT=production",          "API_KEY=s3cret-prod-key",           "PROVIDERS=real",
        "OPENAI_WEBHOOK_SECRET=whsec_abc", "PUBLIC_BASE_URL=https://x.example", NULL};
    cr_assert_eq(run_cmd(check, ok, out, sizeof out), 0, "%s", out);
}

Test(cli, config_show_masks_secrets_and_names_sources) {
    char path[] = "/tmp/myloware-cfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nexport LOG_FORMAT=text\nOPENAI_API_KEY=\"sk-file-secret\"\nPORT=7000\n");
    fclose(f);
    const char *args[] = {"config", "show", "--config", path, "--port", "7100", NULL};
    const char *env[] = {"API_KEYS=key-one,key-two", "PORT=7050", NULL};
    cr_assert_eq(run_cmd(args, env, out, sizeof out), 0, "%s", out);
    unlink(path);
    cr_assert(strstr(out, "PORT=7100  (flag)"), "%s", out);
    cr_assert(strstr(out, "LOG_FORMAT=text  (file)"), "%s", out);
    cr_assert(strstr(out, "OPENAI_API_KEY=***  (file)"), "%s", out);
    cr_assert(strstr(out, "API_KEYS=***  (env)"), "%s", out);
    cr_assert_null(strstr(out, "sk-file-secret"));
    cr_assert_null(strstr(out, "key-one"));
    cr_assert(strstr(out, "SORA_PROVIDER=fake  (derived)"), "%s", out);
}

Test(cli, unknown_key_in_config_file_names_file_and_line) {
    char path[] = "/tmp/myloware-cfg-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "PORT=7000\nPROT=7001\n");
    fclose(f);
    const char *args[] = {"config", "check", "--config", path, NULL};
    cr_assert_eq(run_cmd(args, NULL, out, sizeof out), 2);
    unlink(path);
    cr_assert(strstr(out, ":2:"), "%s", out);
    cr_assert(strstr(out, "PROT"), "%s", out);
}

Test(cli, migrate_is_idempotent_and_a_newer_database_is_refused, .timeout = 60) {
    char dir[] = "/tmp/myloware-mig-XXXXXX";
    cr_assert(mkdtemp(dir));
    char url[400], dbpath[300];
    snprintf(dbpath, sizeof dbpath, "%s/sub/db.sqlite", dir);
    snprintf(url, sizeof url, "DATABASE_URL=sqlite:%s", dbpath);
    const char *env[] = {url, NULL};
    const char *mig[] = {"migrate", NULL};
    cr_assert_eq(run_cmd(mig, env, out, sizeof out), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "schema version %d", latest_schema_version());
    cr_assert(strstr(out, want), "%s", out);
    cr_assert_eq(run_cmd(mig, env, out, sizeof out), 0, "%s", out);
    cr_assert_null(strstr(out, "schema migrated"), "second run migrated again: %s", out);

    sqlite3 *db;
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 'future', 'x')", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(run_cmd(mig, env, out, sizeof out), 1);
    cr_assert(strstr(out, "newer than this binary"), "%s", out);

    const char *serve[] = {"serve", "--port", "0", NULL};
    cr_assert_eq(run_cmd(serve, env, out, sizeof out), 1, "serve must refuse too: %s", out);
}

Test(cli, api_keys_rotation_accepts_every_listed_key, .timeout = 60) {
    struct server s;
    const char *env[] = {"API_KEYS=old-key, new-key", NULL};
    server_start(&s, env);
    struct resp r;
    cr_assert(h_request(s.port, "GET", "/admin/log-level", "X-API-Key: old-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert(h_request(s.port, "GET", "/admin/log-level", "X-API-Key: new-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert(h_request(s.port, "GET", "/admin/log-level", "X-API-Key: dev-api-key\r\n", NULL, &r));
    cr_assert_eq(r.status, 401, "the default key must not join an explicit list");
    resp_free(&r);
    cr_assert_eq(server_stop(&s, SIGTERM, 10000), 0);
}

Test(cli, metrics_token_is_required_when_set, .timeout = 60) {
    struct server s;
    const char *env[] = {"METRICS_TOKEN=tok-123", NULL};
    server_start(&s, env);
    struct resp r;
    cr_assert(h_request(s.port, "GET", "/metrics", NULL, NULL, &r));
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    cr_assert(h_request(s.port, "GET", "/metrics", "Authorization: Bearer nope\r\n", NULL, &r));
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    cr_assert(h_request(s.port, "GET", "/metrics", "Authorization: Bearer tok-123\r\n", NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    char *log = server_log(&s);
    cr_assert_null(strstr(log, "tok-123"), "a secret reached the log");
    free(log);
    cr_assert_eq(server_stop(&s, SIGTERM, 10000), 0);
}

Test(cli, health_is_503_when_the_database_cannot_be_written, .timeout = 60) {
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    cr_assert(h_request(s.port, "GET", "/health", NULL, NULL, &r));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* make the database read-only under the server: the next probe (a write) must fail */
    char path[400];
    snprintf(path, sizeof path, "%s/db.sqlite", s.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    int64_t deadline = h_now_ms() + 20000;
    int status = 0;
    while (h_now_ms() < deadline) {
        cr_assert(h_request(s.port, "GET", "/health", NULL, NULL, &r));
        status = r.status;
        if (status == 503) {
            cr_assert(strstr(r.body, "\"status\":\"down\""), "%s", r.body);
            resp_free(&r);
            break;
        }
        resp_free(&r);
    }
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    cr_assert_eq(status, 503, "health stayed %d while the database was locked", status);
    cr_assert_eq(server_stop(&s, SIGTERM, 10000), 0);
}
