/* jobs: the `jobs` and `dlq` client commands (see jobs.c). Each takes the arguments after the
 * subcommand and returns an exit code: CLI_OK, CLI_FAIL (the server refused or could not be
 * reached), CLI_USAGE. */
#ifndef MYLOWARE_CLI_JOBS_H
#define MYLOWARE_CLI_JOBS_H

#include "core/config.h"

int cli_jobs_list(config_t *cfg, int argc, char **argv);
int cli_jobs_show(config_t *cfg, int argc, char **argv);
int cli_dlq_list(config_t *cfg, int argc, char **argv);
int cli_dlq_show(config_t *cfg, int argc, char **argv);
int cli_dlq_replay(config_t *cfg, int argc, char **argv);
int cli_dlq_resolve(config_t *cfg, int argc, char **argv);

#endif
