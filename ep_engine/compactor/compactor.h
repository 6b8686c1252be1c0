/*
 * compactor.h - rewrites a shard's live data into a base file when too much of
 * the shard is dead, on an auxio task every compaction_interval_ms
 * (compactor.c says how). Only with a data directory.
 */
#ifndef EP_COMPACTOR_H
#define EP_COMPACTOR_H

#include "../core/core.h"
#include "../progress.h"

/* Needs e->store and e->pool. NULL on out of memory. */
ep_compactor *compactor_create(ep_engine *e);
/* Schedules the periodic run. false if the executor refused. */
bool compactor_start(ep_compactor *cp);
/* After the executor is gone. */
void compactor_free(ep_compactor *cp);
/* Compacts now, on the caller's thread: the fragmented shards, or every shard
 * (force). */
void compactor_now(ep_compactor *cp, bool force);

typedef struct compactor_figures {
    uint64_t runs, failures, last_before, last_after, last_us;
} compactor_figures;
/* The progress of the compaction running now, or the last one's figures
 * (NULL for NULL). */
const ep_progress *compactor_progress(const ep_compactor *cp);
/* The compactor's counters (zero for NULL: no data directory). */
void compactor_figures_get(ep_compactor *cp, compactor_figures *f);

#endif
