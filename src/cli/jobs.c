/*
 * jobs: `myloware jobs list|show` and `myloware dlq list|show|replay|resolve`, clients of the
 * routes of api.md §5 (GET /admin/jobs, GET /v1/jobs/{id}, GET /admin/dlq[/{id}],
 * POST /admin/dlq/{id}/replay|resolve). Lists print one line per item (tab-separated columns
 * under a header), single items print their JSON; --json prints the server's JSON as is.
 */
#include "cli/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

static int usage(const char *cmd, const char *msg, const char *arg) {
    fprintf(stderr, "myloware %s: %s%s%s\nTry 'myloware %s --help'.\n", cmd, msg, arg ? ": " : "", arg ? arg : "",
            cmd);
    return CLI_USAGE;
}

/* "--name value" or "--name=value" at argv[*i]; advances *i past the value. */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static const char *str(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "-";
}

/* One line of text from an error that may hold newlines or tabs. */
static void print_field(const char *s, size_t max) {
    for (size_t i = 0; s[i] && i < max; i++)
        putchar(s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i]);
}

/* Runs the request and prints errors; CLI_OK with *r filled, else the exit code. */
static int call(const config_t *cfg, const char *cmd, const char *method, const char *path, struct cli_resp *r) {
    char err[512];
    if (cli_request(cfg, method, path, NULL, r, err, sizeof err) != 0) {
        fprintf(stderr, "myloware %s: %s\n", cmd, err);
        return CLI_FAIL;
    }
    int rc = cli_check(cmd, r);
    if (rc == CLI_OK && !r->json) {
        fprintf(stderr, "myloware %s: the server's answer is not JSON\n", cmd);
        rc = CLI_FAIL;
    }
    if (rc != CLI_OK)
        cli_resp_release(r);
    return rc;
}

static void print_json(json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

/* ---- jobs --------------------------------------------------------------------------------------- */

int cli_jobs_list(config_t *cfg, int argc, char **argv) {
    const char *cmd = "jobs list";
    char path[2048] = "/admin/jobs";
    bool as_json = false;
    static const char *const opts[][2] = {{"--state", "state"}, {"--type", "type"}, {"--run-id", "run_id"},
                                          {"--limit", "limit"}};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
            continue;
        }
        const char *v = NULL;
        size_t k;
        for (k = 0; k < 4 && !v; k++)
            v = opt_value(argc, argv, &i, opts[k][0]);
        if (!v)
            return usage(cmd, "unknown option", argv[i]);
        if (!cli_query_add(path, sizeof path, opts[k - 1][1], v))
            return usage(cmd, "option value too long", opts[k - 1][0]);
    }
    struct cli_resp r;
    int rc = call(cfg, cmd, "GET", path, &r);
    if (rc)
        return rc;
    if (as_json) {
        print_json(r.json);
    } else {
        json_t *jobs = json_object_get(r.json, "jobs");
        printf("ID\tTYPE\tSTATE\tATTEMPTS\tRUN_AT\tLAST_ERROR\n");
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j) {
            printf("%s\t%s\t%s\t%lld/%lld\t%s\t", str(j, "id"), str(j, "type"), str(j, "state"),
                   (long long)json_integer_value(json_object_get(j, "attempts")),
                   (long long)json_integer_value(json_object_get(j, "max_attempts")), str(j, "run_at"));
            print_field(str(j, "last_error"), 120);
            putchar('\n');
        }
        printf("%lld job(s)\n", (long long)json_integer_value(json_object_get(r.json, "count")));
    }
    cli_resp_release(&r);
    return CLI_OK;
}

/* The one ID argument of a show/replay/resolve command. */
static int one_id(const char *cmd, int argc, char **argv, const char **id) {
    *id = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            return usage(cmd, "unknown option", argv[i]);
        if (*id)
            return usage(cmd, "one ID only", argv[i]);
        *id = argv[i];
    }
    if (!*id)
        return usage(cmd, "missing ID", NULL);
    if (!cli_id_ok(*id))
        return usage(cmd, "not a valid ID", *id);
    return CLI_OK;
}

int cli_jobs_show(config_t *cfg, int argc, char **argv) {
    const char *id;
    int rc = one_id("jobs show", argc, argv, &id);
    if (rc)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    struct cli_resp r;
    if ((rc = call(cfg, "jobs show", "GET", path, &r)))
        return rc;
    print_json(r.json);
    cli_resp_release(&r);
    return CLI_OK;
}

/* ---- dead letters ------------------------------------------------------------------------------- */

int cli_dlq_list(config_t *cfg, int argc, char **argv) {
    const char *cmd = "dlq list";
    char path[2048] = "/admin/dlq";
    bool as_json = false, all = false;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if ((v = opt_value(argc, argv, &i, "--source"))) {
            if (!cli_query_add(path, sizeof path, "source", v))
                return usage(cmd, "option value too long", "--source");
        } else if ((v = opt_value(argc, argv, &i, "--limit"))) {
            if (!cli_query_add(path, sizeof path, "limit", v))
                return usage(cmd, "option value too long", "--limit");
        } else
            return usage(cmd, "unknown option", argv[i]);
    }
    cli_query_add(path, sizeof path, "unresolved_only", all ? "false" : "true");
    struct cli_resp r;
    int rc = call(cfg, cmd, "GET", path, &r);
    if (rc)
        return rc;
    if (as_json) {
        print_json(r.json);
    } else {
        printf("ID\tJOB_TYPE\tRUN_ID\tATTEMPTS\tLAST_ATTEMPT_AT\tRESOLVED_AT\tERROR\n");
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(r.json, "dead_letters"), i, d) {
            printf("%s\t%s\t%s\t%lld\t%s\t%s\t", str(d, "id"), str(d, "job_type"), str(d, "run_id"),
                   (long long)json_integer_value(json_object_get(d, "attempts")), str(d, "last_attempt_at"),
                   str(d, "resolved_at"));
            print_field(str(d, "error"), 120);
            putchar('\n');
        }
        printf("%lld dead letter(s)\n", (long long)json_integer_value(json_object_get(r.json, "count")));
    }
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_dlq_show(config_t *cfg, int argc, char **argv) {
    const char *id;
    int rc = one_id("dlq show", argc, argv, &id);
    if (rc)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/admin/dlq/%s", id);
    struct cli_resp r;
    if ((rc = call(cfg, "dlq show", "GET", path, &r)))
        return rc;
    print_json(r.json);
    cli_resp_release(&r);
    return CLI_OK;
}

static int dlq_post(config_t *cfg, int argc, char **argv, const char *cmd, const char *action) {
    const char *id;
    int rc = one_id(cmd, argc, argv, &id);
    if (rc)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/admin/dlq/%s/%s", id, action);
    struct cli_resp r;
    if ((rc = call(cfg, cmd, "POST", path, &r)))
        return rc;
    const char *status = str(r.json, "status");
    if (strcmp(status, "replayed") == 0)
        printf("dead letter %s replayed as job %s\n", id, str(r.json, "job_id"));
    else if (strcmp(status, "already_resolved") == 0)
        printf("dead letter %s was already resolved at %s\n", id, str(r.json, "resolved_at"));
    else
        printf("dead letter %s %s\n", id, status);
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_dlq_replay(config_t *cfg, int argc, char **argv) { return dlq_post(cfg, argc, argv, "dlq replay", "replay"); }
int cli_dlq_resolve(config_t *cfg, int argc, char **argv) {
    return dlq_post(cfg, argc, argv, "dlq resolve", "resolve");
}
