/*
 * retention: finished runs' intermediate media (the transcoded clips "transcoded/clip_<run>_<i>"
 * and their thumbnails "thumbnails/thumb_<run>_<i>") are removed MEDIA_RETENTION_HOURS after
 * the run finished (runtime.md §4; 0 keeps everything). Final renders and their thumbnails stay.
 *
 * Every process that runs jobs sweeps the storage (storage_cleanup) RETENTION_FIRST_S after
 * start and every RETENTION_EVERY_S after that (every second with ENVIRONMENT=test), on libuv's
 * pool; not a queue job: no rows, and sweeps of several processes sharing the media are
 * harmless, deletes being idempotent. An object goes when its file is older than the cutoff and
 * its run is terminal (run.h) with updated_at before the cutoff, or its run no longer exists;
 * objects whose names carry no run id are left alone.
 *
 * Threads: retention_start on the loop; the sweep on a pool thread (blocking storage calls and
 * store_call).
 */
#ifndef MYLOWARE_WORKFLOW_RETENTION_H
#define MYLOWARE_WORKFLOW_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "db/store.h"
#include "storage/storage.h"

#define RETENTION_FIRST_S 60
#define RETENTION_EVERY_S 3600

struct app;

/* Starts the periodic sweep (nothing when MEDIA_RETENTION_HOURS is 0). Its timer does not keep
 * the loop alive and is closed with the loop's other handles at exit (static storage: one per
 * process). Loop thread, once. */
void retention_start(struct app *app);

/*
 * One sweep, as the job does it: removes the intermediate objects of runs finished before
 * cutoff (Unix seconds; storage_retention_cutoff) and of runs that no longer exist. *removed gets
 * the count. Worker thread (blocking: storage and store_call). 0 or the first ERR_* of a sweep.
 */
int retention_sweep(storage_t *st, store_t *store, int64_t cutoff, int *removed);

#endif
