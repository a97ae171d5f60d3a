/*
 * mediajobs: helpers of the integration tests of media jobs in the real server (test_media_jobs,
 * test_media_load): enqueue a test.media.transcode job through POST /_test/jobs and wait, with
 * a deadline, for it to end.
 */
#ifndef MYLOWARE_TESTS_MEDIAJOBS_H
#define MYLOWARE_TESTS_MEDIAJOBS_H

#include <jansson.h>
#include <stddef.h>

/* Enqueues test.media.transcode with payload (stolen); the job's id into id (n bytes). */
void mj_enqueue(int port, json_t *payload, char *id, size_t n);
/* Polls GET /v1/jobs/{id} until the job leaves queued/running (fails after ms); returns its
 * JSON (caller frees). */
json_t *mj_wait_job(int port, const char *id, int ms);

#endif
