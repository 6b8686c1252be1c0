/*
 * warmup.c - rebuilds the hash table from disk on a reader task after
 * initialize, shard by shard, before the engine serves data (data operations
 * answer temporary_failure until it is done).
 *
 * For each record in write order: the newest version of a key wins (by CAS),
 * a tombstone removes older versions, and records of dropped collections (or
 * of an earlier incarnation of a re-added id) and expired items are skipped. A
 * torn tail is dropped and reported. It never links an item that is not the
 * newest version on disk.
 */
#include "ep_engine.h"
#include "kvstore/kvstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct warm_ctx {
    ep_engine *e;
    engine_rel_time now;
    char error[256];
} warm_ctx;

static void warn(const char *msg, void *ctx)
{
    warm_ctx *w = ctx;
    w->e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: warmup: %s", msg);
}

/* Applies one record under its stripe lock. */
static int apply(const kvs_record *r, void *ctx)
{
    warm_ctx *w = ctx;
    ep_engine *e = w->e;
    if (r->vbucket >= e->cfg.max_vbuckets || r->nkey == 0 ||
        r->nkey > ENGINE_KEY_MAX_LEN) {
        atomic_fetch_add(&e->warm_stats.skipped_invalid, 1);
        return 0;
    }
    uint64_t cas = atomic_load(&e->cas_seq);
    while (r->cas > cas && !atomic_compare_exchange_weak(&e->cas_seq, &cas, r->cas))
        ;
    engine_rel_time exptime = r->exptime ? e->sapi->core.realtime(r->exptime) : 0;
    bool is_set = r->type == KVS_SET && !(exptime != 0 && exptime <= w->now);
    ep_item *it = NULL;
    if (is_set) {
        engine_doc_key key = {r->collection, r->nkey, r->key};
        engine_errc rc;
        it = ep_item_alloc(e, NULL, &key, r->nvalue, &rc);
        /* More data than memory: values loaded so far are clean, evict some. */
        for (bool evicted = true;
             it == NULL && rc == ENGINE_TEMPORARY_FAILURE && evicted;) {
            /* Another shard's pass may have made the room: try again after
             * each pass; give up when a pass finds nothing left to evict. */
            evicted = ep_evict_pass(e) > 0;
            it = ep_item_alloc(e, NULL, &key, r->nvalue, &rc);
        }
        if (it == NULL) {
            snprintf(w->error, sizeof(w->error),
                     "the data does not fit in max_size (%" PRIu64 " bytes)",
                     e->cfg.max_size);
            return -1;
        }
        it->flags = r->flags;
        it->exptime = exptime;
        item_init_datatype(it, r->datatype);
        it->vbucket = r->vbucket;
        it->cas = r->cas;
        if (r->nvalue > 0)
            memcpy(item_value(it), r->value, r->nvalue);
        item_mark_stored(it);
        item_set_loc(it, r->loc); /* clean: its value may be evicted */
    }
    uint64_t hash = ht_hash(r->vbucket, r->collection, r->key, r->nkey);
    ep_item *old = NULL;
    ht_stripe *s = ht_lock(e->ht, hash);
    const coll_collection *c = coll_find_collection(s->view, r->collection);
    ep_item **link = ht_find(e->ht, s, hash, r->vbucket, r->collection, r->key, r->nkey);
    ep_item *cur = *link;
    if (c == NULL || r->cas <= c->state->start_cas) {
        atomic_fetch_add(&e->warm_stats.skipped_dropped, 1);
    } else if (cur != NULL && cur->cas >= r->cas) {
        atomic_fetch_add(&e->warm_stats.skipped_older, 1);
    } else if (it != NULL) {
        old = ep_link_item(e, s, link, it, cur != NULL);
        atomic_fetch_add(&e->warm_stats.loaded, 1);
    } else {
        if (cur != NULL)
            old = ep_unlink_item(e, s, link);
        atomic_fetch_add(r->type == KVS_SET ? &e->warm_stats.skipped_expired
                                            : &e->warm_stats.tombstones,
                         1);
    }
    ht_unlock(s);
    if (old != NULL)
        ep_item_put(e, old);
    if (it != NULL)
        ep_item_put(e, it); /* the table has its own reference, if linked */
    return 0;
}

/* One shard's warmup task. */
typedef struct warm_shard {
    ep_engine *e;
    unsigned shard;
    exec_task *task;
} warm_shard;

/* The last shard to finish declares the engine warm (or failed). */
static void shard_finished(ep_engine *e, bool failed)
{
    if (failed)
        atomic_store(&e->warm_failed, true);
    unsigned n = kvs_shards(e->store);
    if (atomic_fetch_add(&e->warm_stats.shards_done, 1) + 1 != n)
        return;
    atomic_store(&e->warm_stats.duration_us, (exec_now_ns() - e->warm_t0) / 1000);
    if (atomic_load(&e->warm_failed)) {
        atomic_store(&e->warm_state, EP_WARM_FAILED);
        return;
    }
    e->sapi->log(ENGINE_LOG_INFO,
                 "ep_engine: warmup done: %" PRIu64 " records, %" PRIu64
                 " items loaded in %" PRIu64 " ms; %" PRIu64 " torn bytes dropped",
                 atomic_load(&e->warm_stats.records), atomic_load(&e->warm_stats.loaded),
                 atomic_load(&e->warm_stats.duration_us) / 1000,
                 atomic_load(&e->warm_stats.torn_bytes));
    atomic_store(&e->warm_state, EP_WARM_DONE);
}

static int64_t warm_shard_run(exec_task *task, void *arg)
{
    (void)task;
    warm_shard *ws = arg;
    ep_engine *e = ws->e;
    warm_ctx w = {e, e->sapi->core.get_current_time(), ""};
    char why[512] = "";
    kvs_scan_stats st = {0};
    int rc = kvs_scan(e->store, ws->shard, apply, &w, &st, warn, why, sizeof(why));
    atomic_fetch_add(&e->warm_stats.records, st.records);
    atomic_fetch_add(&e->warm_stats.bytes, st.bytes);
    atomic_fetch_add(&e->warm_stats.torn_segments, st.torn_segments);
    atomic_fetch_add(&e->warm_stats.torn_bytes, st.torn_bytes);
    if (rc != 0)
        e->sapi->log(ENGINE_LOG_ERROR, "ep_engine: warmup of shard %u failed: %s",
                     ws->shard, w.error[0] ? w.error : why);
    shard_finished(e, rc != 0);
    return EXEC_DONE;
}

static void warm_shard_cancel(exec_task *task, void *arg)
{
    (void)task;
    warm_shard *ws = arg;
    shard_finished(ws->e, true); /* shut down before it ran */
}

bool ep_warmup_start(ep_engine *e)
{
    unsigned n = kvs_shards(e->store);
    warm_shard *ws = calloc(n, sizeof(*ws));
    if (ws == NULL)
        return false;
    e->warm_shards = ws;
    e->warm_t0 = exec_now_ns();
    for (unsigned i = 0; i < n; i++) {
        ws[i] = (warm_shard){e, i, NULL};
        ws[i].task = exec_task_new(e->pool, "warmup", EXEC_READER, 0, warm_shard_run,
                                   warm_shard_cancel, &ws[i]);
        if (ws[i].task == NULL || !exec_schedule(ws[i].task, 0))
            return false;
    }
    return true;
}

void ep_warmup_free(ep_engine *e)
{
    warm_shard *ws = e->warm_shards;
    for (unsigned i = 0; ws != NULL && e->store != NULL && i < kvs_shards(e->store); i++)
        exec_task_put(ws[i].task);
    free(ws);
    e->warm_shards = NULL;
}
