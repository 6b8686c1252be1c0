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

#include "../item.h"
#include "../waiter.h"

#include <stdbool.h>
#include <stdint.h>

struct ep_engine;
typedef struct ep_flusher ep_flusher;

/** Makes the flusher and its tasks (not started). NULL on out of memory. */
ep_flusher *flusher_create(struct ep_engine *e);
/** Starts the writer tasks. false if the executor refused. */
bool flusher_start(ep_flusher *f);
/**
 * Shutdown, before the executor stops: from now on every waiter hears
 * temporary_failure (the host cannot re-call a destroyed engine), the reason
 * telling whether its write reached the disk. When the executor ends the shard
 * tasks (their cancel, on writer threads) they write what is still queued if
 * `drain`, then answer and drop the rest.
 */
void flusher_close(ep_flusher *f, bool drain);
/** Frees the flusher after the executor is gone. */
void flusher_destroy(ep_flusher *f);

/**
 * Under the item's stripe lock, before the item is linked: queues a stored
 * item (a reference is taken); `replaced` is the item it will take the place
 * of, or NULL. A non-NULL waiter is finished (from a writer thread) once the
 * item is durable. false on out of memory: nothing was queued, and the caller
 * must not apply the write (the waiter is still the caller's).
 */
bool flusher_enqueue_set(ep_flusher *f, ep_item *it, const ep_item *replaced,
                         ep_waiter *w);
/** Under the key's stripe lock, before the item is unlinked: queues a deletion
 * with its CAS. false as flusher_enqueue_set. */
bool flusher_enqueue_delete(ep_flusher *f, const ep_item *gone, uint64_t cas,
                            ep_waiter *w);
/** Test hook: the next `n` queue insertions fail as if out of memory. */
void flusher_fail_next_enqueues(ep_flusher *f, unsigned n);

typedef void (*flusher_stat_fn)(const char *key, uint64_t v, void *ctx);
void flusher_stats(ep_flusher *f, flusher_stat_fn add, void *ctx);

#endif
