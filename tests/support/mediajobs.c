/* mediajobs: helpers of the media job integration tests (see mediajobs.h). */
#include "support/mediajobs.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/harness.h"

#define MJ_KEY "X-API-Key: dev-api-key\r\nContent-Type: application/json\r\n"

void mj_enqueue(int port, json_t *payload, char *id, size_t n) {
    json_t *body = json_pack("{s:s,s:o}", "type", "test.media.transcode", "payload", payload);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct resp r;
    cr_assert(h_request(port, "POST", "/_test/jobs", MJ_KEY, text, &r));
    free(text);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(id, n, "%s", json_string_value(json_object_get(j, "first_id")));
    json_decref(j);
    resp_free(&r);
}

json_t *mj_wait_job(int port, const char *id, int ms) {
    char p[128];
    snprintf(p, sizeof p, "/v1/jobs/%s", id);
    int64_t deadline = h_now_ms() + ms;
    while (h_now_ms() < deadline) {
        struct resp r;
        cr_assert(h_request(port, "GET", p, MJ_KEY, NULL, &r));
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *j = json_loads(r.body, 0, NULL);
        resp_free(&r);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (st && strcmp(st, "queued") != 0 && strcmp(st, "running") != 0)
            return j;
        json_decref(j);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling interval of a deadline-bounded wait */
    }
    cr_assert_fail("job %s did not finish in %d ms", id, ms);
    return NULL;
}
