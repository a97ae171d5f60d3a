/* main: argv to a command; nothing else. Exit codes: 0 ok, 1 failure, 2 usage. */
#include <curl/curl.h>
#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <llhttp.h>
#include <mbedtls/version.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/api.h"
#include "app.h"
#include "cli/jobs.h"
#include "cli/runs.h"
#include "core/config.h"
#include "core/log.h"
#include "media/cli.h"
#include "workflow/demo.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct command {
    const char *name, *sub;
    int (*run)(config_t *cfg, int argc, char **argv);
    const char *usage, *help;
};

static bool wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int usage_error(const char *cmd, const char *msg, const char *arg) {
    fprintf(stderr, "myloware %s: %s%s%s\nTry 'myloware %s --help'.\n", cmd, msg, arg ? ": " : "",
            arg ? arg : "", cmd);
    return EXIT_USAGE;
}

static int cmd_serve(config_t *cfg, int argc, char **argv) {
    struct app_opts o = {.role = "all"};
    for (int i = 0; i < argc; i++) {
        const char *role = strncmp(argv[i], "--role=", 7) == 0              ? argv[i] + 7
                           : strcmp(argv[i], "--role") == 0 && i + 1 < argc ? argv[++i]
                                                                            : NULL;
        if (!role)
            return usage_error("serve", "unknown option", argv[i]);
        if (strcmp(role, "all") != 0 && strcmp(role, "api") != 0)
            return usage_error("serve", "--role must be all or api", role);
        o.role = role;
    }
    return app_run(cfg, &o);
}

static int cmd_worker_run(config_t *cfg, int argc, char **argv) {
    struct app_opts o = {.role = "worker"};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            o.once = true;
            continue;
        }
        const char *n = strncmp(argv[i], "--concurrency=", 14) == 0             ? argv[i] + 14
                        : strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc ? argv[++i]
                                                                                : NULL;
        if (!n)
            return usage_error("worker run", "unknown option", argv[i]);
        char *end;
        long v = strtol(n, &end, 10);
        if (*n == '\0' || *end || v < 1 || v > 256)
            return usage_error("worker run", "--concurrency must be from 1 to 256", n);
        o.concurrency = (int)v;
    }
    return app_run(cfg, &o);
}

static int cmd_demo(config_t *cfg, int argc, char **argv) {
    struct demo_opts d = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
            d.yes = true;
        else if (strcmp(argv[i], "--project") == 0 && i + 1 < argc)
            d.project = argv[++i];
        else if (strncmp(argv[i], "--project=", 10) == 0)
            d.project = argv[i] + 10;
        else if (argv[i][0] == '-' || d.brief)
            return usage_error("demo", "unexpected argument", argv[i]);
        else
            d.brief = argv[i];
    }
    /* the demo's server only serves itself (the fakes, the webhooks): any free port, quiet logs */
    buf_t err;
    buf_init(&err, 1024);
    if (cfg->source[S_PORT] == CS_DEFAULT)
        config_set(cfg, "PORT", "0", CS_DERIVED, &err);
    if (cfg->source[S_LOG_LEVEL] == CS_DEFAULT)
        config_set(cfg, "LOG_LEVEL", "warn", CS_DERIVED, &err);
    int rc = config_finish(cfg, &err);
    if (rc) {
        fprintf(stderr, "myloware demo: %s\n", err.data ? err.data : "invalid configuration");
        buf_release(&err);
        return EXIT_FAIL;
    }
    buf_release(&err);
    log_set_level((enum log_level)log_level_parse(config_str(cfg, S_LOG_LEVEL)));
    struct app_opts o = {.role = "all", .demo = &d};
    return app_run(cfg, &o) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int cmd_migrate(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("migrate", "unknown option", argv[0]);
    store_t *s = NULL;
    if (app_migrate(cfg, &s) != 0)
        return EXIT_FAIL;
    int v = 0;
    store_schema_version(s, &v);
    printf("schema version %d (%s)\n", v, store_backend(s));
    store_close(s);
    return EXIT_OK;
}

static int cmd_version(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("version", "unknown option", argv[0]);
    printf("myloware %s\n", MYLOWARE_VERSION);
#ifdef WITH_POSTGRES
    printf("databases: sqlite %s, postgres\n", sqlite3_libversion());
#else
    printf("databases: sqlite %s (built without postgres)\n", sqlite3_libversion());
#endif
    printf("ffmpeg: libavformat %s, libavcodec %s, libavutil %s\n",
           AV_STRINGIFY(LIBAVFORMAT_VERSION), AV_STRINGIFY(LIBAVCODEC_VERSION),
           AV_STRINGIFY(LIBAVUTIL_VERSION));
    printf("libuv %s, llhttp %d.%d.%d, libcurl %s, mbedtls %s, jansson %s\n", uv_version_string(),
           LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH,
           curl_version_info(CURLVERSION_NOW)->version, MBEDTLS_VERSION_STRING, JANSSON_VERSION);
    return EXIT_OK;
}

static int cmd_config_show(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("config show", "unknown option", argv[0]);
    config_show(cfg, stdout);
    return EXIT_OK;
}

static int cmd_config_check(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("config check", "unknown option", argv[0]);
    printf("configuration ok\n");
    return EXIT_OK;
}

static int cmd_config_table(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("config table", "unknown option", argv[0]);
    config_table_markdown(stdout);
    return EXIT_OK;
}

static int cmd_fakes_serve(config_t *cfg, int argc, char **argv) {
    int port = -1;
    for (int i = 0; i < argc; i++) {
        const char *n = strncmp(argv[i], "--port=", 7) == 0              ? argv[i] + 7
                        : strcmp(argv[i], "--port") == 0 && i + 1 < argc ? argv[++i]
                                                                         : NULL;
        if (!n)
            return usage_error("fakes serve", "unknown option", argv[i]);
        char *end;
        long v = strtol(n, &end, 10);
        if (*n == '\0' || *end || v < 0 || v > 65535)
            return usage_error("fakes serve", "--port must be from 0 to 65535", n);
        port = (int)v;
    }
    return app_fakes_serve(cfg, port) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int cmd_routes(config_t *cfg, int argc, char **argv) {
    if (argc > 0)
        return usage_error("routes", "unknown option", argv[0]);
    for (size_t i = 0; i < api_nroutes; i++)
        printf("%-6s %-40s %s\n", api_routes[i].method, api_routes[i].pattern,
               (api_routes[i].flags & R_AUTH) ? "api-key" : "public");
    return EXIT_OK;
}

static int cmd_backup(config_t *cfg, int argc, char **argv) {
    if (argc != 1 || argv[0][0] == '-')
        return usage_error("backup", argc == 0 ? "the backup path is missing" : "one path expected",
                           argc > 0 ? argv[argc > 1 ? 1 : 0] : NULL);
    struct store_backup_info info;
    buf_t err;
    buf_init(&err, 4096);
    int rc = store_backup(cfg, argv[0], &info, &err);
    if (rc != 0)
        fprintf(stderr, "myloware backup: %s\n", err.data ? err.data : "failed");
    else
        printf("backup written to %s (%lld bytes, schema version %d, integrity ok)\n", argv[0],
               (long long)info.bytes, info.schema_version);
    buf_release(&err);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

static const struct command commands[] = {
    {"serve", NULL, cmd_serve, "serve [--role all|api] [--config FILE] [--SETTING VALUE ...]",
     "Runs the HTTP API (and, with the queue, the dispatcher and workers) until SIGTERM or "
     "SIGINT.\n"
     "A first signal drains in-flight requests (SHUTDOWN_GRACE_S); a second exits at once."},
    {"worker", "run", cmd_worker_run, "worker run [--once] [--concurrency N] [--config FILE]",
     "Runs jobs only (no HTTP), sharing the queue with other processes. --once exits when no job\n"
     "is ready; --concurrency sets the worker threads. SIGTERM drains like serve."},
    {"demo", NULL, cmd_demo, "demo [BRIEF] [--project P] [--yes] [--config FILE]",
     "Runs one whole run in-process (the providers as configured: the fakes by default) with a\n"
     "progress display, asks at each gate unless --yes, and prints the final video's path.\n"
     "P defaults to motivational. Exit 0 when the run completed, 1 otherwise."},
    {"migrate", NULL, cmd_migrate, "migrate [--config FILE]",
     "Applies pending schema migrations in one transaction and prints the schema version."},
    {"backup", NULL, cmd_backup, "backup PATH [--config FILE]",
     "Writes a consistent copy of the SQLite database to PATH (a new file) with SQLite's online\n"
     "backup API: safe while the server runs and writes. The copy is checked (integrity_check)\n"
     "and appears under PATH only once complete. Restore: stop the server, copy the backup over\n"
     "the DATABASE_URL file, delete that file's -wal and -shm files, start the server."},
    {"version", NULL, cmd_version, "version", "Prints the version and the build options."},
    {"config", "show", cmd_config_show, "config show [--config FILE]",
     "Prints the effective settings and where each comes from; secrets as ***."},
    {"config", "check", cmd_config_check, "config check [--config FILE]",
     "Validates the settings; exit 0 when valid, 1 (with the reason) when not."},
    {"config", "table", cmd_config_table, "config table",
     "Prints the settings table (markdown) of the README."},
    {"fakes", "serve", cmd_fakes_serve, "fakes serve [--port N] [--config FILE]",
     "Runs the provider fakes alone (the /_fake/... routes: OpenAI chat, videos and moderation,\n"
     "Remotion, Upload-Post, Telegram) on HOST and --port (default PORT; 0 picks a free port).\n"
     "Video events go to MYLOWARE_URL/v1/webhooks/sora, signed with OPENAI_WEBHOOK_SECRET (set "
     "the\n"
     "same secret on the server that receives them). State lives under MEDIA_DIR/fakes.\n"
     "Refused with ENVIRONMENT=production. Exit 0 after SIGTERM/SIGINT, 1 on failure, 2 on usage."},
    {"routes", NULL, cmd_routes, "routes",
     "Lists the HTTP routes: method, pattern, authentication."},
    {"media", "transcode", media_cmd_transcode,
     "media transcode IN OUT --size WxH [--fps N] [--threads N] [--thumbnail JPG]",
     "Transcodes IN to H.264/AAC MP4 (TRANSCODE_PRESET, TRANSCODE_CRF), scaled and padded to WxH\n"
     "times RENDER_SCALE, at N frames per second (30). --threads 0 (default): automatic."},
    {"media", "render", media_cmd_render,
     "media render CLIP [--overlay TEXT] ... --output OUT --size WxH [--fps N] [--thumbnail JPG]",
     "Concatenates the clips in order, each scaled and padded, with its overlay text "
     "(RENDER_FONT)."},
    {"media", "probe", media_cmd_probe, "media probe FILE",
     "Prints a media file's codecs, size, rate, durations and whether moov is before mdat (JSON)."},
    {"media", "synth", media_cmd_synth,
     "media synth OUT [--size WxH] [--fps N] [--seconds S] [--number N] [--codec C] [--no-audio]",
     "Writes a test clip (moving pattern, the number drawn on it, a tone): the fake provider's "
     "clips."},
    {"media", "thumbnail", media_cmd_thumbnail, "media thumbnail IN OUT.jpg",
     "Writes a JPEG of IN at 1 s (or the middle of shorter clips)."},
    /* client commands: MYLOWARE_URL, MYLOWARE_API_KEY (API_KEY when empty) */
    {"jobs", "list", cli_jobs_list,
     "jobs list [--state S] [--type T] [--run-id R] [--limit N] [--json]",
     "Lists jobs (newest first) through GET /admin/jobs of the server at MYLOWARE_URL."},
    {"jobs", "show", cli_jobs_show, "jobs show JOB_ID", "Prints one job (GET /v1/jobs/{id})."},
    {"runs", "list", cli_runs_list,
     "runs list [--status S] [--workflow W] [--limit N] [--cursor C] [--json]",
     "Lists runs, newest first (GET /v1/runs) at MYLOWARE_URL with MYLOWARE_API_KEY."},
    {"runs", "get", cli_runs_get, "runs get RUN_ID", "Prints one run (GET /v1/runs/{id})."},
    {"runs", "start", cli_runs_start, "runs start BRIEF [--project P] [--json]",
     "Starts a run (POST /v1/runs/start; P defaults to aismr) and prints its id."},
    {"runs", "approve", cli_runs_approve,
     "runs approve RUN_ID [--gate ideation|publish] [--comment C]",
     "Approves the run's pending gate (or the one given)."},
    {"runs", "reject", cli_runs_reject,
     "runs reject RUN_ID [--gate ideation|publish] [--comment C]",
     "Rejects the run's pending gate (or the one given)."},
    {"runs", "resume", cli_runs_resume,
     "runs resume RUN_ID [--action auto|retry|videos|render|publish] "
     "[--approve-publish] [--force]",
     "Operator resume (POST /v2/runs/{id}/resume)."},
    {"runs", "cancel", cli_runs_cancel, "runs cancel RUN_ID [--reason R]", "Cancels a run."},
    {"runs", "watch", cli_runs_watch, "runs watch RUN_ID",
     "Follows the run's event stream until it ends; exit 0 when it completed."},
    {"runs", "artifacts", cli_runs_artifacts, "runs artifacts RUN_ID [--json]",
     "Lists a run's artifacts."},
    {"dlq", "list", cli_dlq_list, "dlq list [--source S] [--all] [--limit N] [--json]",
     "Lists dead letters, newest first (GET /admin/dlq); unresolved ones only unless --all."},
    {"dlq", "show", cli_dlq_show, "dlq show ID",
     "Prints one dead letter with its payload (GET /admin/dlq/{id})."},
    {"dlq", "replay", cli_dlq_replay, "dlq replay ID",
     "Re-queues a dead job with its attempts reset (POST /admin/dlq/{id}/replay)."},
    {"dlq", "resolve", cli_dlq_resolve, "dlq resolve ID",
     "Marks a dead letter resolved without running it again (POST /admin/dlq/{id}/resolve)."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *out) {
    fprintf(out, "usage: myloware <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-44s\n", commands[i].usage);
    fprintf(out,
            "\nEvery setting (see 'myloware config show') is read from the environment, from\n"
            "--config FILE (KEY=VALUE lines) and from flags: PORT is --port, or --set PORT=...\n"
            "Run 'myloware <command> --help' for one command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        argv[1] = "version";
    const struct command *cmd = NULL;
    int skip = 2;
    for (size_t i = 0; i < NCOMMANDS && !cmd; i++) {
        if (strcmp(commands[i].name, argv[1]) != 0)
            continue;
        if (!commands[i].sub) {
            cmd = &commands[i];
        } else if (argc > 2 && strcmp(commands[i].sub, argv[2]) == 0) {
            cmd = &commands[i];
            skip = 3;
        }
    }
    if (!cmd) {
        bool group = false;
        for (size_t i = 0; i < NCOMMANDS; i++)
            group |= strcmp(commands[i].name, argv[1]) == 0;
        if (group && argc > 2 && wants_help(argc - 2, argv + 2) == false) {
            fprintf(stderr, "myloware %s: unknown subcommand '%s'\n", argv[1], argv[2]);
            return EXIT_USAGE;
        }
        if (group) {
            fprintf(group && argc > 2 ? stdout : stderr, "usage:\n");
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(commands[i].name, argv[1]) == 0)
                    fprintf(argc > 2 ? stdout : stderr, "  myloware %s\n", commands[i].usage);
            return argc > 2 ? EXIT_OK : EXIT_USAGE;
        }
        fprintf(stderr, "myloware: unknown command '%s'\n", argv[1]);
        print_help(stderr);
        return EXIT_USAGE;
    }
    int cargc = argc - skip;
    char **cargv = argv + skip;
    if (wants_help(cargc, cargv)) {
        printf("usage: myloware %s\n\n%s\n", cmd->usage, cmd->help);
        return EXIT_OK;
    }

    config_t cfg;
    config_init(&cfg);
    buf_t err;
    buf_init(&err, 4096);
    char **rest = calloc((size_t)cargc + 1, sizeof *rest);
    int nrest = 0, rc;
    if (config_from_args(&cfg, cargc, cargv, rest, &nrest, &err) != 0) {
        fprintf(stderr, "myloware: %s\n", err.data ? err.data : "invalid arguments");
        rc = EXIT_USAGE;
        goto out;
    }
    if (config_finish(&cfg, &err) != 0) {
        fprintf(stderr, "myloware: invalid configuration: %s\n", err.data ? err.data : "");
        rc = EXIT_FAIL;
        goto out;
    }
    log_setup((enum log_level)log_level_parse(config_str(&cfg, S_LOG_LEVEL)),
              strcmp(config_str(&cfg, S_LOG_FORMAT), "json") == 0);
    rc = cmd->run(&cfg, nrest, rest);
out:
    free(rest);
    buf_release(&err);
    config_release(&cfg);
    return rc;
}
