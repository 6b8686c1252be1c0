/*
 * stats.c - the stats groups: "" (default), memory, hash, config, tasks,
 * vbucket, vbucket-states, collections, scopes, manifest, warmup, timings, progress.
 * Reporting takes locks one stripe at a time and never blocks the data path for longer
 * than that.
 */
#include "stats.h"
#include "compactor/compactor.h"
#include "core/core.h"
#include "evict/evict.h"
#include "flusher/flusher.h"
#include "warmup/warmup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stat_sink {
    engine_add_stat_fn add;
    void *ctx;
} stat_sink;

static void add_str(const char *key, const char *val, void *ctx)
{
    stat_sink *k = ctx;
    k->add(key, (uint16_t)strlen(key), val, (uint32_t)strlen(val), k->ctx);
}

static void add_u64(stat_sink *k, const char *key, uint64_t v)
{
    char val[24];
    snprintf(val, sizeof(val), "%" PRIu64, v);
    add_str(key, val, k);
}

static void add_hex(stat_sink *k, const char *key, uint64_t v)
{
    char val[24];
    snprintf(val, sizeof(val), "%" PRIx64, v);
    add_str(key, val, k);
}

static void add_u64_cb(const char *key, uint64_t v, void *ctx)
{
    add_u64(ctx, key, v);
}

static const char *warm_state_name(ep_engine *e)
{
    switch (atomic_load(&e->warm_state)) {
    case EP_WARM_DONE:
        return e->store ? "done" : "none";
    case EP_WARM_FAILED:
        return "failed";
    default:
        return "running";
    }
}

static void stats_warmup(ep_engine *e, stat_sink *k)
{
    warmup_figures w;
    warmup_figures_get(e->warmup, &w);
    add_str("ep_warmup_state", warm_state_name(e), k);
    add_u64(k, "ep_warmup_shards", e->store ? kvs_shards(e->store) : 0);
    add_u64(k, "ep_warmup_shards_done", w.shards_done);
    add_u64(k, "ep_warmup_records", w.records);
    add_u64(k, "ep_warmup_bytes", w.bytes);
    add_u64(k, "ep_warmup_items_loaded", w.loaded);
    add_u64(k, "ep_warmup_tombstones", w.tombstones);
    add_u64(k, "ep_warmup_skipped_dropped", w.skipped_dropped);
    add_u64(k, "ep_warmup_skipped_expired", w.skipped_expired);
    add_u64(k, "ep_warmup_skipped_older", w.skipped_older);
    add_u64(k, "ep_warmup_skipped_invalid", w.skipped_invalid);
    add_u64(k, "ep_warmup_torn_segments", w.torn_segments);
    add_u64(k, "ep_warmup_torn_bytes", w.torn_bytes);
    uint64_t us = w.duration_us;
    add_u64(k, "ep_warmup_duration_us", us);
    add_u64(k, "ep_warmup_items_per_sec", us ? w.records * 1000000u / us : 0);
}

/* Value eviction and background fetches (zero without a data directory). */
static void add_eviction(ep_engine *e, stat_sink *k)
{
    evict_figures v;
    evict_figures_get(e->evictor, &v);
    uint64_t fetched = v.fetched, failed = v.fetch_failed, us = v.fetch_us;
    add_u64(k, "ep_mem_high_wat", e->cfg.max_size * e->cfg.mem_high_wat_pct / 100);
    add_u64(k, "ep_mem_low_wat", e->cfg.max_size * e->cfg.mem_low_wat_pct / 100);
    add_u64(k, "ep_item_pager_runs", v.runs);
    add_u64(k, "ep_num_value_ejects", v.ejects);
    add_u64(k, "ep_num_non_resident", ep_load(&e->non_resident));
    add_u64(k, "ep_bg_fetched", fetched);
    add_u64(k, "ep_bg_fetched_inline", v.fetched_inline);
    add_u64(k, "ep_bg_fetch_failed", failed);
    add_u64(k, "ep_bg_fetch_avg_us", fetched + failed ? us / (fetched + failed) : 0);
}

static void stats_default(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, false);
    coll_manifest *m = coll_manager_get(e->coll);
    add_str("ep_version", EP_VERSION, k);
    add_u64(k, "curr_items", hi.items);
    add_u64(k, "total_items", hi.stat[ST_TOTAL_ITEMS]);
    add_u64(k, "mem_used", ep_load(&e->mem_used));
    add_u64(k, "ep_max_size", e->cfg.max_size);
    add_u64(k, "cmd_get", hi.stat[ST_GET_HITS] + hi.stat[ST_GET_MISSES]);
    add_u64(k, "get_hits", hi.stat[ST_GET_HITS]);
    add_u64(k, "get_misses", hi.stat[ST_GET_MISSES]);
    add_u64(k, "cmd_set", hi.stat[ST_STORES] + hi.stat[ST_STORE_FAILS]);
    add_u64(k, "store_failures", hi.stat[ST_STORE_FAILS]);
    add_u64(k, "cas_hits", hi.stat[ST_CAS_HITS]);
    add_u64(k, "cas_badval", hi.stat[ST_CAS_BADVAL]);
    add_u64(k, "cas_misses", hi.stat[ST_CAS_MISSES]);
    add_u64(k, "delete_hits", hi.stat[ST_DELETE_HITS]);
    add_u64(k, "delete_misses", hi.stat[ST_DELETE_MISSES]);
    add_u64(k, "expired_access", hi.stat[ST_EXPIRED_ACCESS]);
    add_u64(k, "expired_pager", hi.stat[ST_EXPIRED_PAGER]);
    add_u64(k, "ep_expired_total",
            hi.stat[ST_EXPIRED_ACCESS] + hi.stat[ST_EXPIRED_PAGER]);
    add_u64(k, "ep_pager_runs", ep_load(&e->pager_runs));
    add_u64(k, "ep_collections_purged_items", hi.stat[ST_PURGED]);
    add_u64(k, "ep_collections_purger_runs", ep_load(&e->purger_runs));
    add_u64(k, "ep_oom_errors", ep_load(&e->oom_errors));
    add_u64(k, "ep_too_big_errors", ep_load(&e->too_big_errors));
    add_u64(k, "ep_flushes", ep_load(&e->flushes));
    add_u64(k, "ep_max_vbuckets", e->cfg.max_vbuckets);
    add_hex(k, "ep_manifest_uid", m->uid);
    coll_manifest_unref(m);
    if (e->flusher != NULL)
        flusher_stats(e->flusher, add_u64_cb, k);
    add_str("ep_warmup_state", warm_state_name(e), k);
    compactor_figures c;
    compactor_figures_get(e->compactor, &c);
    add_u64(k, "ep_compactions", c.runs);
    add_u64(k, "ep_compaction_failures", c.failures);
    add_u64(k, "ep_compaction_last_bytes_before", c.last_before);
    add_u64(k, "ep_compaction_last_bytes_after", c.last_after);
    add_u64(k, "ep_compaction_last_us", c.last_us);
    add_eviction(e, k);
}

static void stats_memory(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, false);
    add_u64(k, "mem_used", ep_load(&e->mem_used));
    add_u64(k, "ep_max_size", e->cfg.max_size);
    add_u64(k, "ep_max_item_size", e->cfg.max_item_size);
    add_u64(k, "ep_items_allocated", ep_load(&e->items_allocated));
    add_u64(k, "ep_item_overhead_bytes", sizeof(ep_item));
    add_u64(k, "ep_ht_memory",
            hi.buckets * sizeof(void *) + hi.stripes * sizeof(ht_stripe));
    /* Warmup's arena (zeros without one): its blocks in memory, the items still
     * in them, and the blocks given back once their items were all freed. */
    arena_stats as;
    arena_get_stats(e->arena, &as);
    add_u64(k, "ep_arena_reserved_bytes", as.reserved_bytes);
    add_u64(k, "ep_arena_resident_bytes", as.resident_bytes);
    add_u64(k, "ep_arena_items", as.live_allocs);
    add_u64(k, "ep_arena_released_blocks", as.released_blocks);
    add_eviction(e, k);
}

static void stats_hash(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, true);
    add_u64(k, "ht_items", hi.items);
    add_u64(k, "ht_buckets", hi.buckets);
    add_u64(k, "ht_stripes", hi.stripes);
    add_u64(k, "ht_resizes", hi.resizes);
    add_u64(k, "ht_max_chain", hi.max_chain);
}

typedef struct vb_count {
    uint64_t *items; /* per vbucket */
    uint64_t n;
} vb_count;

static bool count_item(ep_item **link, void *ctx)
{
    vb_count *v = ctx;
    if ((*link)->vbucket < v->n)
        v->items[(*link)->vbucket]++;
    return true;
}

static void count_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    ht_stripe_walk(ht, s, count_item, ctx);
}

/* Each vbucket's state, and its items (vb_N:items, for those that hold any):
 * counted by a walk of the table, one stripe locked at a time. */
static void stats_vbucket(ep_engine *e, stat_sink *k)
{
    static const char *const names[] = {"?", "active", "replica", "pending", "dead"};
    vb_count v = {calloc(e->cfg.max_vbuckets, sizeof(uint64_t)), e->cfg.max_vbuckets};
    if (v.items != NULL)
        ht_for_each_stripe(e->ht, count_stripe, &v);
    char key[32];
    for (uint64_t vb = 0; vb < e->cfg.max_vbuckets; vb++) {
        uint8_t st = atomic_load(&e->vb_state[vb]);
        snprintf(key, sizeof(key), "vb_%" PRIu64, vb);
        add_str(key, names[st < 5 ? st : 0], k);
        if (v.items != NULL && v.items[vb] > 0) {
            snprintf(key, sizeof(key), "vb_%" PRIu64 ":items", vb);
            add_u64(k, key, v.items[vb]);
        }
    }
    free(v.items);
}

static void add_keyed(stat_sink *k, const char *prefix, const char *field, uint64_t v)
{
    char key[128];
    snprintf(key, sizeof(key), "%s:%s", prefix, field);
    add_u64(k, key, v);
}

/* Per collection: keyed "0x<scope id>:0x<collection id>:<field>". */
static void stats_collections(ep_engine *e, stat_sink *k)
{
    coll_manifest *m = coll_manager_get(e->coll);
    char prefix[64], key[128];
    add_hex(k, "manifest_uid", m->uid);
    for (size_t i = 0; i < m->ncollections; i++) {
        const coll_collection *c = &m->collections[i];
        const coll_scope *s = coll_find_scope(m, c->scope_id);
        snprintf(prefix, sizeof(prefix), "0x%" PRIx32 ":0x%" PRIx32, c->scope_id, c->id);
        snprintf(key, sizeof(key), "%s:name", prefix);
        add_str(key, c->name, k);
        snprintf(key, sizeof(key), "%s:scope_name", prefix);
        add_str(key, s ? s->name : "", k);
        add_keyed(k, prefix, "items", ep_load(&c->state->items));
        add_keyed(k, prefix, "mem_used", ep_load(&c->state->mem));
        add_keyed(k, prefix, "ops_get", ep_load(&c->state->ops_get));
        add_keyed(k, prefix, "ops_store", ep_load(&c->state->ops_store));
        add_keyed(k, prefix, "ops_delete", ep_load(&c->state->ops_delete));
        if (c->has_max_ttl)
            add_keyed(k, prefix, "maxTTL", c->max_ttl);
    }
    coll_manifest_unref(m);
}

/* Per scope, the sums of its collections: keyed "0x<scope id>:<field>". */
static void stats_scopes(ep_engine *e, stat_sink *k)
{
    coll_manifest *m = coll_manager_get(e->coll);
    char prefix[32], key[64];
    add_hex(k, "manifest_uid", m->uid);
    for (size_t i = 0; i < m->nscopes; i++) {
        const coll_scope *s = &m->scopes[i];
        uint64_t items = 0, mem = 0, gets = 0, stores = 0, deletes = 0;
        for (size_t j = 0; j < m->ncollections; j++) {
            const coll_collection *c = &m->collections[j];
            if (c->scope_id != s->id)
                continue;
            items += ep_load(&c->state->items);
            mem += ep_load(&c->state->mem);
            gets += ep_load(&c->state->ops_get);
            stores += ep_load(&c->state->ops_store);
            deletes += ep_load(&c->state->ops_delete);
        }
        snprintf(prefix, sizeof(prefix), "0x%" PRIx32, s->id);
        snprintf(key, sizeof(key), "%s:name", prefix);
        add_str(key, s->name, k);
        add_keyed(k, prefix, "collections", s->ncollections);
        add_keyed(k, prefix, "items", items);
        add_keyed(k, prefix, "mem_used", mem);
        add_keyed(k, prefix, "ops_get", gets);
        add_keyed(k, prefix, "ops_store", stores);
        add_keyed(k, prefix, "ops_delete", deletes);
    }
    coll_manifest_unref(m);
}

static void stats_manifest(ep_engine *e, stat_sink *k)
{
    coll_manifest *m = coll_manager_get(e->coll);
    coll_manager_stats st;
    coll_manager_stats_get(e->coll, &st);
    add_hex(k, "manifest_uid", m->uid);
    add_u64(k, "manifest_scopes", m->nscopes);
    add_u64(k, "manifest_collections", m->ncollections);
    add_u64(k, "manifest_updates", st.updates);
    add_u64(k, "manifest_identical", st.identical);
    add_u64(k, "manifest_rejected", st.rejected);
    add_u64(k, "manifest_busy", st.busy);
    add_u64(k, "manifest_persist_failures", st.persist_failures);
    add_u64(k, "manifest_cancelled", st.cancelled);
    add_u64(k, "manifest_pending", (uint64_t)st.pending);
    add_u64(k, "manifest_last_persist_us", st.last_persist_us);
    coll_manifest_unref(m);
}

static void stats_tasks(ep_engine *e, stat_sink *k)
{
    exec_stats(e->pool, add_str, k);
}

static void stats_config(ep_engine *e, stat_sink *k)
{
    ep_config_stats(&e->cfg, add_str, k);
}

/* A latency histogram as "<name>_count", "<name>_sum_ns" and one
 * "<name>_le_<ns>" per bucket, cumulative (the last: "_le_inf"). */
static void add_hist(stat_sink *k, const char *name, const hist *h)
{
    char key[96];
    uint64_t count = 0; /* cumulative: at the end, every observation */
    for (int i = 0; i <= HIST_BUCKETS; i++) {
        if (h != NULL)
            count += atomic_load_explicit(&((hist *)h)->bucket[i], memory_order_relaxed);
        if (i < HIST_BUCKETS)
            snprintf(key, sizeof(key), "%s_le_%" PRIu64, name, hist_bound_ns(i));
        else
            snprintf(key, sizeof(key), "%s_le_inf", name);
        add_u64(k, key, count);
    }
    uint64_t sum =
        h != NULL ? atomic_load_explicit(&((hist *)h)->sum_ns, memory_order_relaxed) : 0;
    snprintf(key, sizeof(key), "%s_count", name);
    add_u64(k, key, count);
    snprintf(key, sizeof(key), "%s_sum_ns", name);
    add_u64(k, key, sum);
}

/* How many vbuckets are in each state (no walk of the items, unlike
 * "vbucket"): for a scrape. */
static void stats_vbucket_states(ep_engine *e, stat_sink *k)
{
    static const char *const names[] = {"?", "active", "replica", "pending", "dead"};
    uint64_t n[5] = {0};
    for (uint64_t vb = 0; vb < e->cfg.max_vbuckets; vb++) {
        uint8_t st = atomic_load(&e->vb_state[vb]);
        n[st < 5 ? st : 0]++;
    }
    for (int s = 1; s < 5; s++)
        add_u64(k, names[s], n[s]);
}

/* Latencies measured inside the engine: background fetches (request to value
 * in memory) and manifest updates (call to applied). */
static void stats_timings(ep_engine *e, stat_sink *k)
{
    add_hist(k, "bg_fetch", evict_fetch_latency(e->evictor));
    add_hist(k, "manifest_update", coll_manager_update_latency(e->coll));
}

static void add_progress(stat_sink *k, const char *name, const ep_progress *p)
{
    progress_view v = {0};
    if (p == NULL)
        return; /* no data directory: no warmup, no compaction */
    progress_read(p, exec_now_ns(), &v);
    char key[64], val[32];
    snprintf(key, sizeof(key), "%s_running", name);
    add_u64(k, key, v.running);
    snprintf(key, sizeof(key), "%s_records", name);
    add_u64(k, key, v.records);
    snprintf(key, sizeof(key), "%s_bytes", name);
    add_u64(k, key, v.bytes);
    snprintf(key, sizeof(key), "%s_fraction", name);
    snprintf(val, sizeof(val), "%.4f", v.fraction);
    add_str(key, val, k);
    snprintf(key, sizeof(key), "%s_bytes_per_sec", name);
    add_u64(k, key, (uint64_t)v.rate);
    snprintf(key, sizeof(key), "%s_seconds_left", name);
    snprintf(val, sizeof(val), "%.1f", v.running ? v.seconds_left : 0.0);
    add_str(key, val, k);
}

/* Long work while it runs (the last run's figures after): warmup, and the
 * compaction of a shard. */
static void stats_progress(ep_engine *e, stat_sink *k)
{
    add_progress(k, "warmup", warmup_progress(e->warmup));
    add_progress(k, "compaction", compactor_progress(e->compactor));
}

static const struct {
    const char *name;
    void (*report)(ep_engine *e, stat_sink *k);
} groups[] = {
    {"", stats_default},
    {"memory", stats_memory},
    {"hash", stats_hash},
    {"config", stats_config},
    {"tasks", stats_tasks},
    {"vbucket", stats_vbucket},
    {"collections", stats_collections},
    {"scopes", stats_scopes},
    {"manifest", stats_manifest},
    {"warmup", stats_warmup},
    {"vbucket-states", stats_vbucket_states},
    {"timings", stats_timings},
    {"progress", stats_progress},
};

engine_errc stats_get(engine_handle *h, const void *cookie, const char *group,
                      engine_add_stat_fn add_stat, void *ctx)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (add_stat == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "add_stat callback is NULL");
    stat_sink k = {add_stat, ctx};
    if (group == NULL)
        group = "";
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(group, groups[i].name) == 0) {
            groups[i].report(e, &k);
            return ENGINE_SUCCESS;
        }
    }
    return ep_fail(
        e, cookie, ENGINE_NO_SUCH_KEY,
        "unknown stats group '%.64s' (groups: \"\", memory, hash, config, tasks, "
        "vbucket, vbucket-states, collections, scopes, manifest, warmup, timings, "
        "progress)",
        group);
}

void stats_reset(engine_handle *h, const void *cookie)
{
    (void)cookie;
    ep_engine *e = eng(h);
    if (!e->initialized)
        return;
    ht_reset_stats(e->ht);
    exec_stats_reset(e->pool);
    atomic_store(&e->oom_errors, 0);
    atomic_store(&e->too_big_errors, 0);
    atomic_store(&e->pager_runs, 0);
    atomic_store(&e->purger_runs, 0);
    atomic_store(&e->flushes, 0);
    coll_manifest *m = coll_manager_get(e->coll);
    for (size_t i = 0; i < m->ncollections; i++) {
        coll_state *s = m->collections[i].state;
        atomic_store(&s->ops_get, 0);
        atomic_store(&s->ops_store, 0);
        atomic_store(&s->ops_delete, 0);
    }
    coll_manifest_unref(m);
}
