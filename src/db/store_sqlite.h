/*
 * store_sqlite: what the SQLite backend shows beyond the store ops: its WAL checkpointer's
 * thresholds (tests make them small) and counters (tests, diagnostics). See store_sqlite.c,
 * "the checkpointer".
 */
#ifndef MYLOWARE_DB_STORE_SQLITE_H
#define MYLOWARE_DB_STORE_SQLITE_H

#include <stdint.h>

#include "db/store.h"

/* WAL lengths in frames (one page each). */
struct sqlite_wal_tuning {
    int ckpt_frames;    /* frames not yet copied into the database file that start a pass */
    int restart_frames; /* a WAL at least this long is made to start over */
    int tail_frames;    /* the writer copies at most this many itself, then the WAL restarts */
    int hard_frames;    /* past this the writer checkpoints itself */
    int idle_ms;        /* no commit for this long: the WAL file is truncated */
};

struct sqlite_wal_stats {
    int wal_frames,
        backfilled;        /* now: the WAL's length after the last commit, and how much is copied */
    int max_frames;        /* the longest the WAL was after a commit */
    int64_t passes;        /* checkpoints by the checkpointer thread */
    int64_t synced_passes; /* of those, the ones that copied frames (the database file synced) */
    int64_t
        writer_checkpoints; /* checkpoints by the database thread (the tail, or past hard_frames) */
    int64_t restarts;       /* times the WAL started over from its beginning */
    int64_t truncates;      /* idle truncations */
};

/* Sets the thresholds of stores opened afterwards (process-wide). Before store_open. */
void store_sqlite_wal_tune(const struct sqlite_wal_tuning *t);
/* The checkpointer's counters; ERR_INVAL when s is not a SQLite store in WAL mode with a
 * checkpointer. Any thread. */
int store_sqlite_wal_stats(store_t *s, struct sqlite_wal_stats *out);

#endif
