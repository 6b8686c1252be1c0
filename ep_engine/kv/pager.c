/*
 * pager.c - the expiry pager: a nonio task that removes expired items (and
 * item locks that ran out) every exp_pager_interval_ms, one stripe at a time.
 */
#include "kv.h"
#include "locks.h"
#include "sweep.h"

static bool select_expired(const kv_sweep *w, const ep_item *it)
{
    return item_expired(it, w->now);
}

static void expire_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    kv_sweep *w = ctx;
    /* Locks that timed out on keys nobody touched since. */
    kv_locks_expire(w->e, s, w->now);
    w->dropped = 0;
    kv_sweep_stripe(ht, s, w);
    s->stat[ST_EXPIRED_PAGER] += w->dropped;
}

int64_t kv_pager_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    kv_sweep w = {e, NULL, ep_now(e), 0, select_expired, true, false};
    ht_for_each_stripe(e->ht, expire_stripe, &w);
    atomic_fetch_add_explicit(&e->pager_runs, 1, memory_order_relaxed);
    return (int64_t)e->cfg.exp_pager_interval_ms;
}
