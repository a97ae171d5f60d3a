/* run: status and step names (the state machine is drawn in run.h). Pure. */
#include "workflow/run.h"

#include <string.h>

static const struct {
    const char *name;
    bool terminal;
} statuses[RS__COUNT] = {
#define X(id, name, terminal) {name, terminal},
    RUN_STATUSES(X)
#undef X
};

static const char *const steps[RSTEP__COUNT] = {
#define X(id, name) name,
    RUN_STEPS(X)
#undef X
};

const char *run_status_name(enum run_status s) {
    return (unsigned)s < RS__COUNT ? statuses[s].name : "unknown";
}

int run_status_parse(const char *s) {
    for (int i = 0; s && i < RS__COUNT; i++)
        if (strcmp(s, statuses[i].name) == 0)
            return i;
    return -1;
}

bool run_status_terminal(enum run_status s) {
    return (unsigned)s < RS__COUNT && statuses[s].terminal;
}

bool run_status_name_terminal(const char *s) {
    int k = run_status_parse(s);
    return k >= 0 && statuses[k].terminal;
}

const char *run_step_name(enum run_step s) { return (unsigned)s < RSTEP__COUNT ? steps[s] : ""; }

int run_step_parse(const char *s) {
    for (int i = 0; s && i < RSTEP__COUNT; i++)
        if (strcmp(s, steps[i]) == 0)
            return i;
    return -1;
}
