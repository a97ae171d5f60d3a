/* runs: the `runs` client commands (see runs.c). Each takes the arguments after the
 * subcommand and returns CLI_OK, CLI_FAIL (refused, unreachable; `watch`: the run did not
 * complete) or CLI_USAGE. */
#ifndef MYLOWARE_CLI_RUNS_H
#define MYLOWARE_CLI_RUNS_H

#include "core/config.h"

int cli_runs_list(config_t *cfg, int argc, char **argv);
int cli_runs_get(config_t *cfg, int argc, char **argv);
int cli_runs_start(config_t *cfg, int argc, char **argv);
int cli_runs_approve(config_t *cfg, int argc, char **argv);
int cli_runs_reject(config_t *cfg, int argc, char **argv);
int cli_runs_resume(config_t *cfg, int argc, char **argv);
int cli_runs_cancel(config_t *cfg, int argc, char **argv);
int cli_runs_watch(config_t *cfg, int argc, char **argv);
int cli_runs_artifacts(config_t *cfg, int argc, char **argv);

#endif
