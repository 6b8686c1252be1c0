/*
 * sweep.c - drops the items a predicate selects from a stripe (sweep.h).
 */
#include "sweep.h"

#include "../flusher/flusher.h"

static bool sweep_select(ep_item *it, void *ctx)
{
    kv_sweep *w = ctx;
    return w->select(w, it);
}

static void sweep_drop(ep_item *it, void *ctx)
{
    kv_sweep *w = ctx;
    if (w->count_out)
        ep_account(w->m, it, false, NULL);
    if (w->persist_deletes)
        flusher_enqueue_delete(w->e->flusher, it, atomic_fetch_add(&w->e->cas_seq, 1) + 1,
                               NULL);
    w->dropped++;
    ep_item_put(w->e, it);
}

void kv_sweep_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    kv_sweep *w = ctx;
    w->m = s->view;
    ht_stripe_scan(ht, s, sweep_select, sweep_drop, w);
}
