/*
 * hashtable.h - the engine's item index: a chained hash table with lock stripes
 * that grows without stopping the world.
 *
 * Bucket b of a table is guarded by stripe (b & (nstripes-1)); since every table
 * has at least nstripes buckets and sizes are powers of two, a key's stripe is
 * the same in the old and the new table. Growth migrates one stripe at a time
 * under that stripe's lock, so an operation waits at most for one stripe's
 * buckets to move, never for the whole table.
 *
 * Callers lock the key's stripe (ht_lock), then find / link / unlink under it,
 * then unlock. The table holds one reference on each linked item.
 */
#ifndef EP_HASHTABLE_H
#define EP_HASHTABLE_H

#include "item.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Counters the engine keeps per stripe, under the stripe lock (no atomics on the
 * hot path). Indexes are the engine's; the table only sums and clears them. */
#define HT_STAT_SLOTS 16

typedef struct ht_stripe {
    pthread_mutex_t lock; /* guards the stripe's buckets, count, stat, tab */
    unsigned tab;         /* which of the two tables holds this stripe's keys */
    const void *view;     /* the owner's per-stripe view (ep_engine: the collections
                             manifest), read and written under the lock */
    void *locks;          /* the owner's item locks of this stripe (ep_engine:
                             kv/locks.c), read and written under the lock */
    uint64_t count;       /* linked items in this stripe */
    uint64_t stat[HT_STAT_SLOTS];
} __attribute__((aligned(64))) ht_stripe;

typedef struct ep_ht ep_ht;

/** Asks the owner to run ht_grow soon; called at most once per growth (or per
 * ht_grow_rearm), under a stripe lock, so it must only wake a task. */
typedef void (*ht_grow_fn)(void *ctx);

/** Zeroed memory for a large array (bucket arrays, warmup's filter). From 2 MiB
 * up it is mapped on its own and asked for huge pages: random access to it
 * then does not need a page walk per touch (dearer still in a VM). Freed with
 * ht_large_free and the same size. */
void *ht_large_calloc(size_t bytes);
void ht_large_free(void *p, size_t bytes);

ep_ht *ht_create(size_t buckets, size_t stripes, ht_grow_fn need_grow, void *ctx);
/** Frees the table; linked items lose the table's reference (free_item is
 * called for those whose last reference it was). */
void ht_destroy(ep_ht *ht, void (*free_item)(ep_item *, void *), void *ctx);

uint64_t ht_hash(uint16_t vbucket, uint32_t collection, const void *key, size_t nkey);

ht_stripe *ht_lock(ep_ht *ht, uint64_t hash);
void ht_unlock(ht_stripe *s);

/** Starts fetching the bucket a hash falls in, without a lock: for a caller
 * that will look up several keys in a row (warmup). Only a hint. */
void ht_prefetch(ep_ht *ht, uint64_t hash);

/** Under the stripe lock: the link that points to the matching item (*link is
 * the item), or to the chain's terminating NULL if there is none. `hash` is
 * ht_hash of the key. */
ep_item **ht_find(ep_ht *ht, ht_stripe *s, uint64_t hash, uint16_t vbucket,
                  uint32_t collection, const void *key, size_t nkey);

/** Under the stripe lock: the head link of the bucket a hash falls in, for
 * inserting a key known not to be in the table without searching its chain. */
ep_item **ht_bucket(ep_ht *ht, ht_stripe *s, uint64_t hash);

/** Under the stripe lock: links `it` at *link; the caller gives the table one
 * reference on it (a new one, or its own). With `replace`, *link is the old
 * item, which is unlinked and returned with the table's reference for the
 * caller to drop; without, `it` is inserted before *link (any position in the
 * right chain will do) and NULL is returned. */
ep_item *ht_put(ep_ht *ht, ht_stripe *s, ep_item **link, ep_item *it, bool replace);

/** Under the stripe lock: unlinks *link and returns it with the table's reference. */
ep_item *ht_unlink(ht_stripe *s, ep_item **link);

/** Visits every stripe in turn, calling fn with that stripe locked; fn may unlink
 * items through ht_visit_remove. */
typedef void (*ht_visit_fn)(ep_ht *ht, ht_stripe *s, void *ctx);
void ht_for_each_stripe(ep_ht *ht, ht_visit_fn fn, void *ctx);

/** How many lock stripes the table has (fixed at creation). */
uint64_t ht_stripes(const ep_ht *ht);

/** Calls fn with stripe `index` locked; false if there is no such stripe. */
bool ht_visit_stripe(ep_ht *ht, uint64_t index, ht_visit_fn fn, void *ctx);

/** Within ht_for_each_stripe: calls fn on each item of the locked stripe; an item
 * for which fn returns true is unlinked and handed to `drop` (after fn). */
void ht_stripe_scan(ep_ht *ht, ht_stripe *s, bool (*fn)(ep_item *, void *),
                    void (*drop)(ep_item *, void *), void *ctx);

/** Within a stripe visit: calls fn with the link to each item of the locked
 * stripe; fn may replace *link by another item of the same key (ht_put with
 * replace) but not unlink it. Stops early when fn returns false. */
void ht_stripe_walk(ep_ht *ht, ht_stripe *s, bool (*fn)(ep_item **link, void *),
                    void *ctx);

/** Doubles the table if it is over its load factor; runs stripe by stripe.
 * Returns 1 if it grew, 0 if not needed, -1 on out of memory. Only one caller at
 * a time (the owner's resizer task). After 0 the stripes ask no more until
 * ht_grow_rearm: near its limit one stripe or another is over its share long
 * before the table is, and each count locks every stripe, so the owner spaces
 * the counts out. */
int ht_grow(ep_ht *ht);
void ht_grow_rearm(ep_ht *ht);

typedef struct ht_info {
    uint64_t items;
    uint64_t buckets;
    uint64_t stripes;
    uint64_t resizes;
    uint64_t max_chain;
    uint64_t stat[HT_STAT_SLOTS];
} ht_info;

/** Sums the stripes (locking each in turn); with max_chain walks every bucket. */
void ht_get_info(ep_ht *ht, ht_info *out, bool max_chain);
void ht_reset_stats(ep_ht *ht);

#endif
