/* agent: the chat-with-tools loop (see agent.h). Loop thread. */
#include "workflow/agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "workflow/jsonschema.h"

#define MAX_CALLS_PER_TURN 16

struct pending_call {
    char *id, *name, *arguments;
};

struct agent {
    struct agent_opts o;
    json_t *messages, *tools, **schemas;
    prov_call_t *call;
    int turns;
    struct pending_call calls[MAX_CALLS_PER_TURN];
    int ncalls, next_call;
    bool in_tool, finished, aborted;
    int *tool_runs;
    enum prov_outcome outcome;
    int retry_after;
    char *error, *content;
    uv_timer_t *defer; /* finishing without an LLM answer still calls done later, never inline */
};

static void send_turn(agent_t *a);
static void next_tool(agent_t *a);

static void clear_calls(agent_t *a) {
    for (int i = 0; i < a->ncalls; i++) {
        free(a->calls[i].id);
        free(a->calls[i].name);
        free(a->calls[i].arguments);
    }
    a->ncalls = a->next_call = 0;
}

static void defer_cb(uv_timer_t *t) {
    agent_t *a = t->data;
    a->o.done(a, a->o.ud);
}

static void close_free(uv_handle_t *h) { free(h); }

static void finish(agent_t *a, enum prov_outcome o, int retry_after, const char *error) {
    if (a->finished)
        return;
    a->finished = true;
    a->outcome = o;
    a->retry_after = retry_after;
    free(a->error);
    a->error = xstrdup(error ? error : "");
    uv_timer_start(a->defer, defer_cb, 0, 0);
}

static void add_tool_message(agent_t *a, const char *id, json_t *content) {
    char *text = json_dumps(content, JSON_COMPACT);
    json_array_append_new(a->messages, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id",
                                                 id ? id : "", "content", text ? text : "{}"));
    free(text);
    json_decref(content);
}

static void llm_done(const struct llm_result *r, void *ud) {
    agent_t *a = ud;
    a->call = NULL;
    if (r->st.outcome != PROV_OK) {
        finish(a, r->st.outcome == PROV_CANCELLED ? PROV_RETRY : r->st.outcome, r->st.retry_after_s,
               r->st.error);
        return;
    }
    a->turns++;
    json_array_append(a->messages, r->message);
    free(a->content);
    a->content = r->content ? xstrdup(r->content) : NULL;
    if (r->ntool_calls == 0) {
        finish(a, PROV_OK, -1, NULL);
        return;
    }
    clear_calls(a);
    for (size_t i = 0; i < r->ntool_calls && a->ncalls < MAX_CALLS_PER_TURN; i++) {
        struct pending_call *c = &a->calls[a->ncalls++];
        c->id = xstrdup(r->tool_calls[i].id ? r->tool_calls[i].id : "");
        c->name = xstrdup(r->tool_calls[i].name ? r->tool_calls[i].name : "");
        c->arguments = xstrdup(r->tool_calls[i].arguments ? r->tool_calls[i].arguments : "");
    }
    next_tool(a);
}

/* Runs the pending calls one after the other; after the last, the next turn. */
static void next_tool(agent_t *a) {
    while (!a->finished && a->next_call < a->ncalls) {
        struct pending_call *c = &a->calls[a->next_call];
        int k = -1;
        for (int i = 0; i < a->o.ntools; i++)
            if (strcmp(a->o.tools[i].name, c->name) == 0)
                k = i;
        char why[400];
        if (k < 0) {
            snprintf(why, sizeof why, "unknown tool: %.100s", c->name);
            add_tool_message(a, c->id, json_pack("{s:s}", "error", why));
            a->next_call++;
            continue;
        }
        json_error_t je;
        json_t *args = json_loads(c->arguments, 0, &je);
        if (!args || !json_is_object(args)) {
            snprintf(why, sizeof why, "invalid arguments: not a JSON object");
            json_decref(args);
            add_tool_message(a, c->id, json_pack("{s:s}", "error", why));
            a->next_call++;
            continue;
        }
        char verr[300];
        if (!jsonschema_validate(a->schemas[k], args, verr, sizeof verr)) {
            snprintf(why, sizeof why, "invalid arguments: %s", verr);
            json_decref(args);
            add_tool_message(a, c->id, json_pack("{s:s}", "error", why));
            log_info("agent", "tool arguments refused", LF_S("tool", c->name),
                     LF_S("reason", verr));
            a->next_call++;
            continue;
        }
        a->in_tool = true;
        a->o.tool(a, &a->o.tools[k], args, a->o.ud); /* ends in agent_tool_done or agent_abort */
        json_decref(args);
        return;
    }
    if (a->finished)
        return;
    if (a->turns >= a->o.max_turns) {
        finish(a, PROV_OK, -1, NULL); /* out of turns: the step checks what was done */
        return;
    }
    send_turn(a);
}

void agent_tool_done(agent_t *a, json_t *result) {
    if (!a->in_tool) {
        json_decref(result);
        return;
    }
    a->in_tool = false;
    struct pending_call *c = &a->calls[a->next_call];
    for (int i = 0; i < a->o.ntools; i++)
        if (strcmp(a->o.tools[i].name, c->name) == 0 && !json_object_get(result, "error"))
            a->tool_runs[i]++;
    add_tool_message(a, c->id, result);
    a->next_call++;
    next_tool(a);
}

void agent_abort(agent_t *a, enum prov_outcome outcome, int retry_after_s, const char *error) {
    a->in_tool = false;
    finish(a, outcome, retry_after_s, error);
}

static void send_turn(agent_t *a) {
    struct llm_request req = {.model = a->o.model, .messages = a->messages, .tools = a->tools};
    if (provider_llm_chat(a->o.providers, &req, llm_done, a, &a->call) != 0)
        finish(a, PROV_PERMANENT, -1, "llm: the request could not be made");
}

agent_t *agent_start(const struct agent_opts *o) {
    if (!o->providers || !o->loop || !o->done || !o->user || (o->ntools && !o->tool))
        return NULL;
    agent_t *a = xcalloc(1, sizeof *a);
    a->o = *o;
    if (a->o.max_turns < 1)
        a->o.max_turns = 1;
    a->messages = json_array();
    if (o->system)
        json_array_append_new(a->messages,
                              json_pack("{s:s,s:s}", "role", "system", "content", o->system));
    json_array_append_new(a->messages, json_pack("{s:s,s:s}", "role", "user", "content", o->user));
    a->tool_runs = xcalloc((size_t)(o->ntools + 1), sizeof(int));
    a->schemas = xcalloc((size_t)(o->ntools + 1), sizeof(json_t *));
    if (o->ntools) {
        a->tools = json_array();
        for (int i = 0; i < o->ntools; i++) {
            a->schemas[i] = json_loads(o->tools[i].schema, 0, NULL);
            if (!a->schemas[i])
                a->schemas[i] = json_object();
            json_array_append_new(a->tools,
                                  json_pack("{s:s,s:{s:s,s:s,s:O}}", "type", "function", "function",
                                            "name", o->tools[i].name, "description",
                                            o->tools[i].description, "parameters", a->schemas[i]));
        }
    }
    a->defer = xcalloc(1, sizeof *a->defer);
    uv_timer_init(o->loop, a->defer);
    a->defer->data = a;
    send_turn(a);
    return a;
}

void agent_free(agent_t *a) {
    if (!a)
        return;
    if (a->call)
        prov_call_cancel(a->call);
    clear_calls(a);
    json_decref(a->messages);
    json_decref(a->tools);
    for (int i = 0; i < a->o.ntools; i++)
        json_decref(a->schemas[i]);
    free(a->schemas);
    free(a->tool_runs);
    free(a->error);
    free(a->content);
    uv_timer_stop(a->defer);
    uv_close((uv_handle_t *)a->defer, close_free);
    free(a);
}

enum prov_outcome agent_outcome(const agent_t *a) { return a->outcome; }
const char *agent_error(const agent_t *a) { return a->error ? a->error : ""; }
int agent_retry_after(const agent_t *a) { return a->retry_after; }
const char *agent_content(const agent_t *a) { return a->content; }
json_t *agent_transcript(const agent_t *a) { return a->messages; }
int agent_turns(const agent_t *a) { return a->turns; }

int agent_tool_runs(const agent_t *a, const char *name) {
    for (int i = 0; i < a->o.ntools; i++)
        if (strcmp(a->o.tools[i].name, name) == 0)
            return a->tool_runs[i];
    return 0;
}
