/*
 * purger.c - the dropped-collection purger: a nonio task, woken when a
 * manifest drops a collection, that frees the items of collections no longer
 * in the manifest (or of an earlier incarnation of a re-added id). Until it
 * has run, such items are invisible: every operation judges an item against
 * its stripe's manifest view.
 */
#include "kv.h"
#include "sweep.h"

/* An item of a dropped collection, or of an earlier incarnation of its id. */
static bool select_orphan(const kv_sweep *w, const ep_item *it)
{
    const coll_collection *c = coll_find_collection(w->m, it->collection);
    return c == NULL || !ep_current_incarnation(c, it);
}

static void purge_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    kv_sweep *w = ctx;
    w->dropped = 0;
    kv_sweep_stripe(ht, s, w);
    s->stat[ST_PURGED] += w->dropped;
}

int64_t kv_purger_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    kv_sweep w = {e, NULL, 0, 0, select_orphan, false, false};
    ht_for_each_stripe(e->ht, purge_stripe, &w);
    atomic_fetch_add_explicit(&e->purger_runs, 1, memory_order_relaxed);
    return EXEC_FOREVER;
}
