/*
 * flusher.h - makes accepted writes durable: a dirty queue per on-disk shard,
 * drained by one writer task per shard in batches with one fsync each (group
 * commit), and the cookies of durable writes waiting for their batch.
 *
 * Writes are queued under their hash-table stripe lock, so every key's versions
 * reach the queue - and the disk - in CAS order.
 */
#ifndef EP_FLUSHER_H
#define EP_FLUSHER_H

#include "item.h"

#include <stdbool.h>
#include <stdint.h>

struct ep_engine;
typedef struct ep_flusher ep_flusher;

/** Makes the flusher and its tasks (not started). NULL on out of memory. */
ep_flusher *flusher_create(struct ep_engine *e);
/** Starts the writer tasks. false if the executor refused. */
bool flusher_start(ep_flusher *f);
/**
 * Ends the flusher after the executor is gone: with `drain`, writes what is
 * still queued first (on the caller's thread). Every durable waiter still
 * queued is notified with temporary_failure (the host cannot re-call a
 * destroyed engine), the reason telling whether its write reached the disk,
 * and released; then everything is freed.
 */
void flusher_destroy(ep_flusher *f, bool drain);

/** Under the item's stripe lock: queues a stored item (a reference is taken);
 * `replaced` is the item it took the place of, or NULL. A non-NULL cookie
 * (already reserved) is notified when the item is durable. */
void flusher_enqueue_set(ep_flusher *f, ep_item *it, const ep_item *replaced,
                         const void *cookie);
/** Under the key's stripe lock: queues a deletion with its CAS. */
bool flusher_enqueue_delete(ep_flusher *f, const ep_item *gone, uint64_t cas,
                            const void *cookie);

typedef void (*flusher_stat_fn)(const char *key, uint64_t v, void *ctx);
void flusher_stats(ep_flusher *f, flusher_stat_fn add, void *ctx);

#endif
