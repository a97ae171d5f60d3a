/* testjobs: job types for tests (ENVIRONMENT=test only): test.noop, test.effect, test.latency
 * (records its start time, for the benchmark), test.sleep,
 * test.fail, test.provider (test.fail behind provider "test"), test.media (test.sleep in the
 * "media" cap group). */
#ifndef MYLOWARE_QUEUE_TESTJOBS_H
#define MYLOWARE_QUEUE_TESTJOBS_H

#include "queue/dispatcher.h"

void testjobs_register(dispatcher_t *d);

#endif
