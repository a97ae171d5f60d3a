/*
 * args: the argument and output helpers every command shares (cli/jobs.c, cli/runs.c,
 * media/cli.c): options as "--name value" or "--name=value", the usage message, tab-separated
 * list fields and indented JSON. Main thread (command-line processes only).
 */
#ifndef MYLOWARE_CLI_ARGS_H
#define MYLOWARE_CLI_ARGS_H

#include <jansson.h>

/* Exit codes of every command (runtime.md §7). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* "--name value" or "--name=value" at argv[*i]: the value, *i advanced past it; NULL when argv[*i]
 * is not --name (or --name is last, without a value). */
const char *cli_opt(int argc, char **argv, int *i, const char *name);
/* Prints "myloware <cmd>: <msg>[: <arg>]" and "Try 'myloware <cmd> --help'." on stderr; returns
 * CLI_USAGE. arg may be NULL. */
int cli_usage(const char *cmd, const char *msg, const char *arg);
/* o[key] when it is a string, else "-" (a list column). */
const char *cli_str(json_t *o, const char *key);
/* j as indented JSON (keys in order) and a newline on stdout. */
void cli_print_json(json_t *j);

#endif
