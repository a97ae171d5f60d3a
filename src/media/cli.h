/* media cli: the `myloware media ...` commands (see cli.c). Main thread; blocking. */
#ifndef MYLOWARE_MEDIA_CLI_H
#define MYLOWARE_MEDIA_CLI_H

#include "core/config.h"

int media_cmd_transcode(config_t *cfg, int argc, char **argv);
int media_cmd_render(config_t *cfg, int argc, char **argv);
int media_cmd_probe(config_t *cfg, int argc, char **argv);
int media_cmd_synth(config_t *cfg, int argc, char **argv);
int media_cmd_thumbnail(config_t *cfg, int argc, char **argv);

#endif
