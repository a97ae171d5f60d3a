/*
 * runs: `myloware runs list|get|start|approve|reject|resume|cancel|watch|artifacts`, clients of
 * the run routes (api.md §4) at MYLOWARE_URL with MYLOWARE_API_KEY (cli/client.h). Lists print
 * one tab-separated line per item under a header; single objects print their JSON; `watch`
 * follows the run's event stream and prints one line per event until the run ends.
 */
#include "cli/runs.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

/* The run id argument (and the options, by the caller's table). */
static bool take_id(const char *cmd, const char *arg, const char **id, int *rc) {
    if (*id) {
        *rc = cli_usage(cmd, "unexpected argument", arg);
        return false;
    }
    if (!cli_id_ok(arg)) {
        *rc = cli_usage(cmd, "not a run id", arg);
        return false;
    }
    *id = arg;
    return true;
}

static void print_run_line(json_t *r) {
    json_t *p = json_object_get(r, "progress");
    printf("%s\t%s\t%s\t%s\t%lld/%lld\t%s\n", cli_str(r, "run_id"), cli_str(r, "workflow_name"),
           cli_str(r, "status"), cli_str(r, "current_step"),
           (long long)json_integer_value(json_object_get(p, "clips_ready")),
           (long long)json_integer_value(json_object_get(p, "clips_expected")),
           cli_str(r, "created_at"));
}

int cli_runs_list(config_t *cfg, int argc, char **argv) {
    const char *cmd = "runs list";
    char path[2048] = "/v1/runs";
    bool as_json;
    static const char *const opts[][2] = {{"--status", "status"},
                                          {"--workflow", "workflow"},
                                          {"--limit", "limit"},
                                          {"--cursor", "cursor"}};
    struct cli_resp r;
    int rc = cli_list(cfg, cmd, argc, argv, opts, sizeof opts / sizeof opts[0], path, sizeof path,
                      &as_json, &r);
    if (rc)
        return rc;
    if (as_json) {
        cli_print_json(r.json);
    } else {
        printf("RUN_ID\tWORKFLOW\tSTATUS\tSTEP\tCLIPS\tCREATED\n");
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(r.json, "runs"), i, x) print_run_line(x);
        json_t *next = json_object_get(r.json, "next_cursor");
        if (json_is_string(next))
            printf("more: --cursor %s\n", json_string_value(next));
    }
    cli_resp_release(&r);
    return CLI_OK;
}

/* GET-style commands on one run: get (the run), artifacts. */
static int one_run(config_t *cfg, const char *cmd, const char *suffix, int argc, char **argv) {
    const char *id = NULL;
    bool as_json = false;
    int rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (argv[i][0] == '-')
            return cli_usage(cmd, "unknown option", argv[i]);
        else if (!take_id(cmd, argv[i], &id, &rc))
            return rc;
    }
    if (!id)
        return cli_usage(cmd, "a run id is required", NULL);
    char path[256];
    snprintf(path, sizeof path, "/v1/runs/%s%s", id, suffix);
    struct cli_resp r;
    if ((rc = cli_call(cfg, cmd, "GET", path, NULL, &r)) != 0)
        return rc;
    if (as_json || !*suffix) {
        cli_print_json(r.json);
    } else {
        printf("TYPE\tPERSONA\tSIZE\tURI\tCREATED\n");
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(r.json, "artifacts"), i, a) {
            const char *content = json_string_value(json_object_get(a, "content"));
            printf("%s\t%s\t%zu\t%s\t%s\n", cli_str(a, "type"), cli_str(a, "persona"),
                   content ? strlen(content) : 0, cli_str(a, "uri"), cli_str(a, "created_at"));
        }
        printf("%lld artifact(s)\n",
               (long long)json_integer_value(json_object_get(r.json, "count")));
    }
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_runs_get(config_t *cfg, int argc, char **argv) {
    return one_run(cfg, "runs get", "", argc, argv);
}
int cli_runs_artifacts(config_t *cfg, int argc, char **argv) {
    return one_run(cfg, "runs artifacts", "/artifacts", argc, argv);
}

int cli_runs_start(config_t *cfg, int argc, char **argv) {
    const char *cmd = "runs start";
    const char *brief = NULL, *project = NULL;
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if ((v = cli_opt(argc, argv, &i, "--project")) != NULL)
            project = v;
        else if (argv[i][0] == '-' || brief)
            return cli_usage(cmd, "unexpected argument", argv[i]);
        else
            brief = argv[i];
    }
    if (!brief)
        return cli_usage(cmd, "a brief is required", NULL);
    json_t *b = json_pack("{s:s,s:s}", "brief", brief, "workflow", project ? project : "aismr");
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct cli_resp r;
    int rc = cli_call(cfg, cmd, "POST", "/v1/runs/start", body, &r);
    free(body);
    if (rc)
        return rc;
    if (as_json)
        cli_print_json(r.json);
    else
        printf("%s\n", cli_str(r.json, "run_id"));
    cli_resp_release(&r);
    return CLI_OK;
}

/* approve / reject: the gate given, else the run's pending gate. */
static int decide(config_t *cfg, const char *cmd, bool approved, int argc, char **argv) {
    const char *id = NULL, *gate = NULL, *comment = NULL;
    int rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--gate")) != NULL)
            gate = v;
        else if ((v = cli_opt(argc, argv, &i, "--comment")) != NULL)
            comment = v;
        else if (argv[i][0] == '-')
            return cli_usage(cmd, "unknown option", argv[i]);
        else if (!take_id(cmd, argv[i], &id, &rc))
            return rc;
    }
    if (!id)
        return cli_usage(cmd, "a run id is required", NULL);
    char path[256];
    struct cli_resp r;
    if (!gate) {
        snprintf(path, sizeof path, "/v1/runs/%s", id);
        if ((rc = cli_call(cfg, cmd, "GET", path, NULL, &r)) != 0)
            return rc;
        json_t *g = json_object_get(r.json, "pending_gate");
        static char pending[16];
        snprintf(pending, sizeof pending, "%s", json_is_string(g) ? json_string_value(g) : "");
        cli_resp_release(&r);
        if (!*pending) {
            fprintf(stderr, "myloware %s: run %s is not waiting at a gate\n", cmd, id);
            return CLI_FAIL;
        }
        gate = pending;
    }
    json_t *b = json_pack("{s:s,s:b,s:s?}", "gate", gate, "approved", approved, "comment", comment);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    snprintf(path, sizeof path, "/v1/runs/%s/approve", id);
    rc = cli_call(cfg, cmd, "POST", path, body, &r);
    free(body);
    if (rc)
        return rc;
    printf("%s %s: run %s is %s\n", gate, approved ? "approved" : "rejected", id,
           cli_str(r.json, "status"));
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_runs_approve(config_t *cfg, int argc, char **argv) {
    return decide(cfg, "runs approve", true, argc, argv);
}
int cli_runs_reject(config_t *cfg, int argc, char **argv) {
    return decide(cfg, "runs reject", false, argc, argv);
}

int cli_runs_resume(config_t *cfg, int argc, char **argv) {
    const char *cmd = "runs resume";
    const char *id = NULL, *action = "auto";
    bool approve_publish = false, force = false;
    int rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--action")) != NULL)
            action = v;
        else if (strcmp(argv[i], "--approve-publish") == 0)
            approve_publish = true;
        else if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (argv[i][0] == '-')
            return cli_usage(cmd, "unknown option", argv[i]);
        else if (!take_id(cmd, argv[i], &id, &rc))
            return rc;
    }
    if (!id)
        return cli_usage(cmd, "a run id is required", NULL);
    json_t *b = json_pack("{s:s,s:b,s:b}", "action", action, "approve_publish", approve_publish,
                          "force", force);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    char path[256];
    snprintf(path, sizeof path, "/v2/runs/%s/resume", id);
    struct cli_resp r;
    rc = cli_call(cfg, cmd, "POST", path, body, &r);
    free(body);
    if (rc)
        return rc;
    printf("%s (action %s); run %s is %s\n", cli_str(r.json, "message"), cli_str(r.json, "action"),
           id, cli_str(r.json, "status"));
    cli_resp_release(&r);
    return CLI_OK;
}

int cli_runs_cancel(config_t *cfg, int argc, char **argv) {
    const char *cmd = "runs cancel";
    const char *id = NULL, *reason = NULL;
    int rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--reason")) != NULL)
            reason = v;
        else if (argv[i][0] == '-')
            return cli_usage(cmd, "unknown option", argv[i]);
        else if (!take_id(cmd, argv[i], &id, &rc))
            return rc;
    }
    if (!id)
        return cli_usage(cmd, "a run id is required", NULL);
    json_t *b = json_pack("{s:s?}", "reason", reason);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    char path[256];
    snprintf(path, sizeof path, "/v1/runs/%s/cancel", id);
    struct cli_resp r;
    rc = cli_call(cfg, cmd, "POST", path, body, &r);
    free(body);
    if (rc)
        return rc;
    printf("run %s is %s\n", id, cli_str(r.json, "status"));
    cli_resp_release(&r);
    return CLI_OK;
}

/* ---- watch: the event stream, printed as it comes
 * ------------------------------------------------ */

struct watch {
    char line[1 << 16];
    size_t n;
    char event[16];
    long long id;
    bool ended_ok, ended;
    char final_status[32];
};

/* One complete line of the stream. */
static void watch_line(struct watch *w, const char *l) {
    if (strncmp(l, "id: ", 4) == 0) {
        w->id = atoll(l + 4);
    } else if (strncmp(l, "event: ", 7) == 0) {
        snprintf(w->event, sizeof w->event, "%s", l + 7);
    } else if (strncmp(l, "data: ", 6) == 0) {
        json_t *d = json_loads(l + 6, 0, NULL);
        if (strcmp(w->event, "run") == 0) {
            printf("[%lld] %s%s%s: %s\n", w->id, cli_str(d, "status"),
                   json_is_string(json_object_get(d, "current_step")) ? " / " : "",
                   json_is_string(json_object_get(d, "current_step")) ? cli_str(d, "current_step")
                                                                      : "",
                   cli_str(d, "message"));
            snprintf(w->final_status, sizeof w->final_status, "%s", cli_str(d, "status"));
        } else {
            printf("[%lld] artifact %s%s%s\n", w->id, cli_str(d, "type"),
                   json_is_string(json_object_get(d, "uri")) ? " " : "",
                   json_is_string(json_object_get(d, "uri")) ? cli_str(d, "uri") : "");
        }
        fflush(stdout);
        json_decref(d);
    }
}

static size_t watch_write(char *p, size_t size, size_t nmemb, void *ud) {
    struct watch *w = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            w->line[w->n] = '\0';
            watch_line(w, w->line);
            w->n = 0;
        } else if (w->n + 1 < sizeof w->line) {
            w->line[w->n++] = p[i];
        }
    }
    return n;
}

int cli_runs_watch(config_t *cfg, int argc, char **argv) {
    const char *cmd = "runs watch";
    const char *id = NULL;
    int rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-')
            return cli_usage(cmd, "unknown option", argv[i]);
        if (!take_id(cmd, argv[i], &id, &rc))
            return rc;
    }
    if (!id)
        return cli_usage(cmd, "a run id is required", NULL);
    const char *base = config_str(cfg, S_MYLOWARE_URL);
    const char *key = *config_str(cfg, S_MYLOWARE_API_KEY) ? config_str(cfg, S_MYLOWARE_API_KEY)
                                                           : config_str(cfg, S_API_KEY);
    char url[4096], hdr[600];
    snprintf(url, sizeof url, "%s/v1/runs/%s/events", base, id);
    snprintf(hdr, sizeof hdr, "X-API-Key: %s", key);
    CURL *c = curl_easy_init();
    if (!c)
        return CLI_FAIL;
    struct watch *w = calloc(1, sizeof *w);
    struct curl_slist *h = curl_slist_append(NULL, hdr);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK) {
        fprintf(stderr, "myloware %s: %s: %s\n", cmd, base, curl_easy_strerror(cr));
        rc = CLI_FAIL;
    } else if (status != 200) {
        fprintf(stderr, "myloware %s: HTTP %ld\n", cmd, status);
        rc = CLI_FAIL;
    } else {
        rc = strcmp(w->final_status, "completed") == 0 ? CLI_OK : CLI_FAIL;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(w);
    return rc;
}
