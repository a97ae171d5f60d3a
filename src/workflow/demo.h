/*
 * demo: `myloware demo [BRIEF] [--project P] [--yes]`: one whole run inside `serve` (the same
 * engine, fakes and HTTP server, on a free port), with a progress display (a bar on a
 * terminal, one line per change otherwise), a question at each gate unless --yes, and the
 * final video's path at the end. The process exits 0 when the run completed, 1 otherwise.
 * Loop thread (the question is read by a helper thread that posts the answer to the loop).
 */
#ifndef MYLOWARE_WORKFLOW_DEMO_H
#define MYLOWARE_WORKFLOW_DEMO_H

#include <stdbool.h>

struct app;

struct demo_opts {
    const char *brief;   /* NULL: a default brief */
    const char *project; /* NULL: "motivational" */
    bool yes;            /* approve every gate without asking */
};

/* Starts the run once the app is up. Returns 0, or ERR_NOTFOUND for an unknown project (the
 * message is printed). */
int demo_start(struct app *app, const struct demo_opts *o);

#endif
