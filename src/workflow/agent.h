/*
 * agent: one agent turn (workflow.md §4): a chat-completions conversation with tools, at most
 * max_turns (AGENT_MAX_TURNS) requests: send; execute each tool call through the caller's tool
 * code; append the results; repeat until the model answers without tool calls. A tool call's
 * arguments are parsed and validated against the tool's JSON schema first; invalid arguments
 * go back to the model as a tool error (and cost a turn). The transcript (messages, tool
 * results) is kept for the step's artifact; it never holds a secret (we never put one in).
 *
 * Loop thread only (the LLM calls are asynchronous, providers.h).
 */
#ifndef MYLOWARE_WORKFLOW_AGENT_H
#define MYLOWARE_WORKFLOW_AGENT_H

#include <jansson.h>
#include <stdbool.h>

#include "providers/providers.h"

typedef struct agent agent_t;

struct tool_def {
    const char *name;
    const char *description;
    const char *schema; /* JSON Schema of the arguments (jsonschema.h subset) */
};

/* Runs a validated tool call. Must end, now or later, in exactly one agent_tool_done() (the
 * result goes to the model) or agent_abort() (the agent stops with that outcome). */
typedef void (*agent_tool_fn)(agent_t *a, const struct tool_def *t, json_t *args, void *ud);
/* The agent finished (agent_outcome tells how). Called once, never inside agent_start. */
typedef void (*agent_done_fn)(agent_t *a, void *ud);

struct agent_opts {
    uv_loop_t *loop;
    providers_t *providers;
    const char *model;  /* NULL: LLM_MODEL */
    const char *system; /* instructions (plus facts) */
    const char *user;   /* the task message */
    const struct tool_def *tools;
    int ntools;
    int max_turns;
    agent_tool_fn tool;
    agent_done_fn done;
    void *ud;
};

/* Starts the conversation; done runs later, exactly once. Returns NULL (nothing runs) only
 * when the first request cannot be made (bad options). */
agent_t *agent_start(const struct agent_opts *o);
/* Tool result (stolen): appended as the tool message for the pending call. */
void agent_tool_done(agent_t *a, json_t *result);
/* Stops the agent with outcome (PROV_RETRY or PROV_PERMANENT) and error. */
void agent_abort(agent_t *a, enum prov_outcome outcome, int retry_after_s, const char *error);
/* Frees (cancels a request in flight; done will not run). */
void agent_free(agent_t *a);

enum prov_outcome agent_outcome(const agent_t *a); /* PROV_OK when the model finished */
const char *agent_error(const agent_t *a);         /* "" when none */
int agent_retry_after(const agent_t *a);
/* The last assistant text (NULL when none). */
const char *agent_content(const agent_t *a);
/* Successful executions of the named tool (its tool_done calls). */
int agent_tool_runs(const agent_t *a, const char *name);
/* The conversation so far (borrowed). */
json_t *agent_transcript(const agent_t *a);
int agent_turns(const agent_t *a);

#endif
