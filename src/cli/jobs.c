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

/* One line of text from an error that may hold newlines or tabs. */
static void print_field(const char *s, size_t max) {
    for (size_t i = 0; s[i] && i < max; i++)
        putchar(s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i]);
}

/* ---- jobs ---------------------------------------------------------------------------------------
 */

int cli_jobs_list(config_t *cfg, int argc, char **argv) {
    const char *cmd = "jobs list";
    char path[2048] = "/admin/jobs";
    bool as_json;
    static const char *const opts[][2] = {
        {"--state", "state"}, {"--type", "type"}, {"--run-id", "run_id"}, {"--limit", "limit"}};
    struct cli_resp r;
    int rc = cli_list(cfg, cmd, argc, argv, opts, sizeof opts / sizeof opts[0], path, sizeof path,
                      &as_json, &r);
    if (rc)
        return rc;
    if (as_json) {
        cli_print_json(r.json);
    } else {
        json_t *jobs = json_object_get(r.json, "jobs");
        printf("ID\tTYPE\tSTATE\tATTEMPTS\tRUN_AT\tLAST_ERROR\n");
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j) {
            printf("%s\t%s\t%s\t%lld/%lld\t%s\t", cli_str(j, "id"), cli_str(j, "type"),
                   cli_str(j, "state"),
                   (long long)json_integer_value(json_object_get(j, "attempts")),
                   (long long)json_integer_value(json_object_get(j, "max_attempts")),
                   cli_str(j, "run_at"));
            print_field(cli_str(j, "last_error"), 120);
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
            return cli_usage(cmd, "unknown option", argv[i]);
        if (*id)
            return cli_usage(cmd, "one ID only", argv[i]);
        *id = argv[i];
    }
    if (!*id)
        return cli_usage(cmd, "missing ID", NULL);
    if (!cli_id_ok(*id))
        return cli_usage(cmd, "not a valid ID", *id);
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
    if ((rc = cli_call(cfg, "jobs show", "GET", path, NULL, &r)))
        return rc;
    cli_print_json(r.json);
    cli_resp_release(&r);
    return CLI_OK;
}

/* ---- dead letters -------------------------------------------------------------------------------
 */

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
        else if ((v = cli_opt(argc, argv, &i, "--source"))) {
            if (!cli_query_add(path, sizeof path, "source", v))
                return cli_usage(cmd, "option value too long", "--source");
        } else if ((v = cli_opt(argc, argv, &i, "--limit"))) {
            if (!cli_query_add(path, sizeof path, "limit", v))
                return cli_usage(cmd, "option value too long", "--limit");
        } else
            return cli_usage(cmd, "unknown option", argv[i]);
    }
    cli_query_add(path, sizeof path, "unresolved_only", all ? "false" : "true");
    struct cli_resp r;
    int rc = cli_call(cfg, cmd, "GET", path, NULL, &r);
    if (rc)
        return rc;
    if (as_json) {
        cli_print_json(r.json);
    } else {
        printf("ID\tJOB_TYPE\tRUN_ID\tATTEMPTS\tLAST_ATTEMPT_AT\tRESOLVED_AT\tERROR\n");
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(r.json, "dead_letters"), i, d) {
            printf("%s\t%s\t%s\t%lld\t%s\t%s\t", cli_str(d, "id"), cli_str(d, "job_type"),
                   cli_str(d, "run_id"),
                   (long long)json_integer_value(json_object_get(d, "attempts")),
                   cli_str(d, "last_attempt_at"), cli_str(d, "resolved_at"));
            print_field(cli_str(d, "error"), 120);
            putchar('\n');
        }
        printf("%lld dead letter(s)\n",
               (long long)json_integer_value(json_object_get(r.json, "count")));
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
    if ((rc = cli_call(cfg, "dlq show", "GET", path, NULL, &r)))
        return rc;
    cli_print_json(r.json);
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
    if ((rc = cli_call(cfg, cmd, "POST", path, NULL, &r)))
        return rc;
    const char *status = cli_str(r.json, "status");
    if (strcmp(status, "replayed") == 0)
        printf("dead letter %s replayed as job %s\n", id, cli_str(r.json, "job_id"));
    else if (strcmp(status, "already_resolved") == 0)
        printf("dead letter %s was already resolved at %s\n", id, cli_str(r.json, "resolved_at"));
    else
        printf("dead letter %s %s\n", id, status);
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_dlq_replay(config_t *cfg, int argc, char **argv) {
    return dlq_post(cfg, argc, argv, "dlq replay", "replay");
}
int cli_dlq_resolve(config_t *cfg, int argc, char **argv) {
    return dlq_post(cfg, argc, argv, "dlq resolve", "resolve");
}
