/*
 * evict.h - value eviction at the memory quota, and the background fetch that
 * brings an evicted value back (only with a data directory). evict.c says how.
 *
 * Lifecycle: evict_create makes the tasks, evict_start schedules them and
 * sets the engine's memory-pressure hook (core.h), so every allocation over
 * the high watermark asks for a pass. Fetches still queued at shutdown are
 * answered when the executor ends the reader task; evict_destroy, after the
 * executor is gone, finds none (it would answer one from the destroying
 * thread, which the contract does not allow, so the reader task's cancel must
 * have run).
 */
#ifndef EP_EVICT_H
#define EP_EVICT_H

#include "../../common/hist.h"
#include "../core/core.h"

ep_evictor *evict_create(ep_engine *e);
bool evict_start(ep_evictor *ev);
void evict_destroy(ep_evictor *ev);

/* Brings back the value of the stub the caller just saw for this key (no lock
 * held): ENGINE_WOULD_BLOCK when it parked the cookie (it is notified once),
 * ENGINE_SUCCESS when the value was read in the call (look again), else an
 * error with its reason. */
engine_errc evict_bg_fetch(ep_evictor *ev, const void *cookie, uint16_t vbucket,
                           uint32_t collection, const void *key, size_t nkey);

/* One eviction pass on the caller's thread, down to the low watermark, with
 * second chances (warmup uses it when the data on disk is larger than the
 * quota); how many values. */
uint64_t evict_pass(ep_evictor *ev);
/* Evicts every clean value now (a test hook); how many. */
uint64_t evict_all(ep_evictor *ev);

typedef struct evict_figures {
    uint64_t runs, ejects, fetched, fetched_inline, fetch_failed, fetch_us;
} evict_figures;
/* The latencies of background fetches (NULL for NULL). */
const hist *evict_fetch_latency(const ep_evictor *ev);
/* The evictor's counters (zero for NULL: no data directory). */
void evict_figures_get(ep_evictor *ev, evict_figures *f);

#endif
