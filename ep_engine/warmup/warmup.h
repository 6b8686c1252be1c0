/*
 * warmup.h - rebuilds the hash table from disk after initialize, one reader
 * task per shard, before the engine serves data (warmup.c says how). The last
 * shard to finish sets the engine's warm_state (core.h).
 */
#ifndef EP_WARMUP_H
#define EP_WARMUP_H

#include "../core/core.h"
#include "../progress.h"

/* Needs e->store. NULL on out of memory. */
ep_warmup *warmup_create(ep_engine *e);
/* Starts the shard tasks (and picks the item arena, e->arena). false if the
 * executor refused; warmup_free still frees what was made. */
bool warmup_start(ep_warmup *wu);
/* After the executor is gone. */
void warmup_free(ep_warmup *wu);

typedef struct warmup_figures {
    uint64_t shards_done, records, bytes, loaded, tombstones, skipped_dropped,
        skipped_expired, skipped_older, skipped_invalid, torn_segments, torn_bytes,
        duration_us;
} warmup_figures;
/* The progress of warmup while it runs, and its last figures after (NULL
 * for NULL: no data directory). */
const ep_progress *warmup_progress(const ep_warmup *wu);
/* Warmup's counters so far (zero for NULL: no data directory). */
void warmup_figures_get(ep_warmup *wu, warmup_figures *f);

#endif
