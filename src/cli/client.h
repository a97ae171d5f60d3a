/*
 * client: the HTTP client behind the client commands (`jobs`, `dlq`, and later `runs`): one
 * blocking request at a time to MYLOWARE_URL with MYLOWARE_API_KEY (API_KEY when it is empty),
 * through libcurl's easy interface. Only for command-line processes, never in `serve` (the loop
 * must not block). Answers are capped (CLI_MAX_BODY) and parsed as JSON when they are JSON.
 * The key is sent, never printed.
 */
#ifndef MYLOWARE_CLI_CLIENT_H
#define MYLOWARE_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/args.h"
#include "core/config.h"

#define CLI_MAX_BODY (16u << 20)

struct cli_resp {
    long status;
    char *body; /* NUL-terminated, owned */
    size_t len;
    json_t *json; /* NULL when the body is not JSON; owned */
};

/*
 * method and path ("/admin/dlq?unresolved_only=false"); body: JSON text or NULL. Returns 0
 * with *out filled whatever the HTTP status, or ERR_IO (the server could not be reached, the
 * answer was too big; a message is in err) and out untouched.
 */
int cli_request(const config_t *cfg, const char *method, const char *path, const char *body,
                struct cli_resp *out, char *err, size_t errcap);
void cli_resp_release(struct cli_resp *r);
/* Appends "&name=<escaped value>" (or "?name=" for the first) to path (cap bytes). False when
 * it does not fit. */
bool cli_query_add(char *path, size_t cap, const char *name, const char *value);
/* True when s can be one path segment (letters, digits, '-', '_', '.'; 1..64 chars). */
bool cli_id_ok(const char *s);
/*
 * The usual end of a command: 2xx -> CLI_OK; otherwise prints "myloware <cmd>: <detail>
 * (HTTP <status>)" on stderr (the server's detail when it gave one) and returns CLI_FAIL.
 */
int cli_check(const char *cmd, const struct cli_resp *r);
/*
 * A list command's request: argv holds "--json" (sets *as_json) and the options of opts
 * ({"--name", "query_name"}, n of them), each added to path (cap bytes) as a query parameter;
 * then cli_call GET. CLI_OK with *r filled, else the exit code (a usage error, or the call's).
 */
int cli_list(const config_t *cfg, const char *cmd, int argc, char **argv,
             const char *const opts[][2], size_t n, char *path, size_t cap, bool *as_json,
             struct cli_resp *r);
/*
 * cli_request + cli_check, and the answer must be JSON: CLI_OK with *r filled (release it), else
 * the exit code, the error printed as "myloware <cmd>: ..." and r released. body may be NULL.
 */
int cli_call(const config_t *cfg, const char *cmd, const char *method, const char *path,
             const char *body, struct cli_resp *r);

#endif
