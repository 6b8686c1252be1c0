/*
 * sweep.h - drops the items a predicate selects from a stripe, under its lock:
 * the flush operation, the expiry pager and the dropped-collection purger.
 */
#ifndef EP_KV_SWEEP_H
#define EP_KV_SWEEP_H

#include "../core/core.h"

/* A sweep over one stripe: which items to drop, and what to count. */
typedef struct kv_sweep {
    ep_engine *e;
    const coll_manifest *m; /* the stripe's view, set per stripe */
    engine_rel_time now;
    uint64_t dropped;
    bool (*select)(const struct kv_sweep *w, const ep_item *it);
    bool count_out;       /* take dropped items out of their collection's counters */
    bool persist_deletes; /* write a tombstone for each dropped item (flush) */
} kv_sweep;

/* ht_for_each_stripe's callback (ctx: a kv_sweep): drops the stripe's
 * selected items, counting them in `dropped`. */
void kv_sweep_stripe(ep_ht *ht, ht_stripe *s, void *ctx);

#endif
