/*
 * compactor.c - rewrites a shard's live data into a base file when too much of
 * the shard is dead (overwritten or deleted versions, tombstones, items of
 * dropped collections), on an auxio task.
 *
 * Live data is taken from memory, one stripe at a time: under a stripe lock it
 * only takes references on the shard's live items (items never change once
 * stored) and writes them with no lock held, so a front-end operation waits at
 * most for one stripe's references. An evicted item's value is read back from
 * its record. Once the base is in force, every item written gets its place in
 * the base as its location, and only then are the old files deleted: a reader
 * holding an old location finds either the old file or, on a retry, the new
 * location. While a shard compacts, no value of it is evicted (a new stub would
 * keep a location the compaction does not know about). Writes that arrive meanwhile go to
 * segments above the base (kvs_compact_begin sealed the shard): the newest version of
 * every key stays in force, and a crash at any step leaves either the old
 * segments or the new base in force, never a mix.
 */
#include "compactor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ep_compactor {
    ep_engine *e;
    exec_task *task;      /* the periodic run, auxio */
    ep_progress progress; /* the shard being compacted: stripes of the table */
    char what[48];        /* "compaction of shard N" */
    struct {
        _Atomic uint64_t runs, failures, last_before, last_after, last_us;
    } stats;
};

typedef struct collect {
    ep_engine *e;
    engine_rel_time now;
    const coll_manifest *m; /* the stripe's view, set per stripe */
    unsigned nshards;
    unsigned shard; /* the shard whose items are taken */
    uint64_t *live; /* when measuring: live record bytes per shard */
    ep_item **v;    /* when taking: referenced live items of one stripe */
    size_t n, cap;
    bool oom;
} collect;

static bool is_live(const collect *c, const ep_item *it)
{
    if (item_expired(it, c->now))
        return false;
    const coll_collection *col = coll_find_collection(c->m, it->collection);
    return col != NULL && it->cas > col->state->start_cas;
}

static size_t item_record_bytes(const ep_item *it)
{
    kvs_record r = {.nkey = it->nkey, .nvalue = it->nvalue};
    return kvs_record_size(&r);
}

/* ht_stripe_scan callback: measures or takes; never unlinks. */
static bool visit(ep_item *it, void *ctx)
{
    collect *c = ctx;
    if (!is_live(c, it))
        return false;
    unsigned shard = kvs_shard_of(c->nshards, it->vbucket);
    if (c->live != NULL) {
        c->live[shard] += item_record_bytes(it);
        return false;
    }
    if (shard != c->shard)
        return false;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        ep_item **v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL) {
            c->oom = true;
            return false;
        }
        c->v = v;
        c->cap = cap;
    }
    item_ref(it);
    c->v[c->n++] = it;
    return false;
}

static void never_dropped(ep_item *it, void *ctx)
{
    (void)it;
    (void)ctx;
}

static void visit_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    collect *c = ctx;
    c->m = s->view;
    ht_stripe_scan(ht, s, visit, never_dropped, c);
}

/* Live record bytes per shard, from memory (one stripe lock at a time). */
static void measure(ep_engine *e, uint64_t *live)
{
    collect c = {e,    e->sapi->core.get_current_time(),
                 NULL, kvs_shards(e->store),
                 0,    live,
                 NULL, 0,
                 0,    false};
    ht_for_each_stripe(e->ht, visit_stripe, &c);
}

typedef struct placed {
    ep_item *it; /* a reference */
    uint64_t loc;
} placed;

/* Writes one item to the compaction; an evicted one's value comes from disk. */
static int add_item(ep_engine *e, kvs_compaction *k, unsigned shard, ep_item *it,
                    uint64_t *loc, char *why, size_t whylen)
{
    kvs_record r = {KVS_SET,
                    item_datatype(it),
                    it->vbucket,
                    it->collection,
                    it->cas,
                    it->flags,
                    0,
                    it->nkey,
                    it->nvalue,
                    it->data,
                    it->data + it->nkey,
                    0};
    if (it->exptime != 0)
        r.exptime = (uint32_t)e->sapi->core.abstime(it->exptime);
    void *buf = NULL;
    if (item_evicted(it)) {
        kvs_record disk;
        int rc = kvs_read(e->store, shard, item_loc(it), &disk, &buf, why, whylen);
        if (rc == 0 && !ep_record_is(&disk, it)) {
            snprintf(why, whylen, "the record of an evicted item does not match it");
            rc = -EBADMSG;
        }
        if (rc != 0) {
            free(buf);
            return rc;
        }
        r.value = disk.value;
    }
    int rc = kvs_compact_add(k, &r, loc, why, whylen);
    free(buf);
    return rc;
}

static void release_placed(ep_engine *e, placed *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ep_item_put(e, v[i].it);
    free(v);
}

/* Compacts one shard. 0, or -1 with the reason logged. */
static int compact_shard(ep_engine *e, unsigned shard)
{
    char why[512] = "";
    uint64_t before = kvs_shard_bytes(e->store, shard), t0 = exec_now_ns();
    placed *done = NULL;
    size_t ndone = 0, capdone = 0;
    /* Before any stripe is visited: evictions of this shard stop. */
    atomic_store(&e->compacting[shard], 1);
    kvs_compaction *k = kvs_compact_begin(e->store, shard, why, sizeof(why));
    if (k == NULL)
        goto err;
    collect c = {e,     e->sapi->core.get_current_time(),
                 NULL,  kvs_shards(e->store),
                 shard, NULL,
                 NULL,  0,
                 0,     false};
    int rc = 0;
    ep_compactor *cp = e->compactor;
    snprintf(cp->what, sizeof(cp->what), "compaction of shard %u", shard);
    cp->progress.quiet_ns = e->cfg.progress_log_after_ms * 1000000;
    progress_begin(&cp->progress, cp->what, ht_stripes(e->ht), t0);
    uint64_t written_before = 0;
    for (uint64_t i = 0;; i++) {
        /* One stripe at a time: take references under its lock, write without. */
        c.n = 0;
        if (!ht_visit_stripe(e->ht, i, visit_stripe, &c))
            break;
        for (size_t j = 0; j < c.n; j++) {
            ep_item *it = c.v[j];
            uint64_t loc = 0;
            if (rc == 0 && ndone == capdone) {
                size_t cap = capdone ? capdone * 2 : 1024;
                placed *grown = realloc(done, cap * sizeof(*done));
                if (grown == NULL)
                    c.oom = true;
                else
                    done = grown, capdone = cap;
            }
            if (rc == 0 && !c.oom)
                rc = add_item(e, k, shard, it, &loc, why, sizeof(why));
            if (rc == 0 && !c.oom)
                done[ndone++] = (placed){it, loc}; /* keeps the reference */
            else
                ep_item_put(e, it);
        }
        uint64_t written_now = kvs_compact_bytes(k);
        progress_add(&cp->progress, c.n, written_now - written_before, 1);
        written_before = written_now;
        progress_tick(&cp->progress, e->sapi, exec_now_ns());
        if (rc != 0 || c.oom)
            break;
    }
    free(c.v);
    if (c.oom) {
        kvs_compact_abort(k);
        snprintf(why, sizeof(why), "out of memory collecting live items");
        goto err;
    }
    if (rc != 0) {
        kvs_compact_abort(k);
        goto err;
    }
    uint64_t written = kvs_compact_bytes(k);
    if (kvs_compact_commit(k, why, sizeof(why)) != 0)
        goto err;
    for (size_t i = 0; i < ndone; i++)
        item_set_loc(done[i].it, done[i].loc);
    kvs_compact_finish(k);
    release_placed(e, done, ndone);
    atomic_store(&e->compacting[shard], 0);
    progress_end(&e->compactor->progress, true);
    atomic_fetch_add(&e->compactor->stats.runs, 1);
    atomic_store(&e->compactor->stats.last_before, before);
    atomic_store(&e->compactor->stats.last_after, kvs_shard_bytes(e->store, shard));
    atomic_store(&e->compactor->stats.last_us, (exec_now_ns() - t0) / 1000);
    e->sapi->log(ENGINE_LOG_INFO,
                 "ep_engine: compacted shard %u: %" PRIu64 " -> %" PRIu64
                 " bytes (%" PRIu64 " written) in %" PRIu64 " ms",
                 shard, before, kvs_shard_bytes(e->store, shard), written,
                 (exec_now_ns() - t0) / 1000000);
    return 0;
err:
    release_placed(e, done, ndone);
    atomic_store(&e->compacting[shard], 0);
    if (k != NULL) /* begun (another compaction's figures stay its own) */
        progress_end(&e->compactor->progress, false);
    atomic_fetch_add(&e->compactor->stats.failures, 1);
    e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: compaction of shard %u failed: %s",
                 shard, why);
    return -1;
}

void compactor_now(ep_compactor *cp, bool force)
{
    ep_engine *e = cp->e;
    unsigned n = kvs_shards(e->store);
    uint64_t *live = calloc(n, sizeof(uint64_t));
    if (live == NULL)
        return;
    measure(e, live);
    for (unsigned i = 0; i < n; i++) {
        uint64_t disk = kvs_shard_bytes(e->store, i);
        bool fragmented = disk > e->cfg.compaction_min_bytes &&
                          (disk - (live[i] < disk ? live[i] : disk)) * 100 >=
                              disk * e->cfg.compaction_threshold_pct;
        if (force || fragmented)
            compact_shard(e, i);
    }
    free(live);
}

static int64_t compactor_run(exec_task *task, void *arg)
{
    (void)task;
    ep_compactor *cp = arg;
    if (atomic_load(&cp->e->warm_state) == EP_WARM_DONE)
        compactor_now(cp, false);
    return (int64_t)cp->e->cfg.compaction_interval_ms;
}

ep_compactor *compactor_create(ep_engine *e)
{
    ep_compactor *cp = calloc(1, sizeof(*cp));
    if (cp == NULL)
        return NULL;
    cp->e = e;
    cp->task =
        exec_task_new(e->pool, "compactor", EXEC_AUXIO, 20, compactor_run, NULL, cp);
    if (cp->task == NULL) {
        compactor_free(cp);
        return NULL;
    }
    return cp;
}

bool compactor_start(ep_compactor *cp)
{
    return exec_schedule(cp->task, (int64_t)cp->e->cfg.compaction_interval_ms);
}

void compactor_free(ep_compactor *cp)
{
    if (cp == NULL)
        return;
    exec_task_put(cp->task);
    free(cp);
}

const ep_progress *compactor_progress(const ep_compactor *cp)
{
    return cp != NULL ? &cp->progress : NULL;
}

void compactor_figures_get(ep_compactor *cp, compactor_figures *f)
{
    *f = (compactor_figures){0};
    if (cp == NULL)
        return;
    f->runs = ep_load(&cp->stats.runs);
    f->failures = ep_load(&cp->stats.failures);
    f->last_before = ep_load(&cp->stats.last_before);
    f->last_after = ep_load(&cp->stats.last_after);
    f->last_us = ep_load(&cp->stats.last_us);
}
