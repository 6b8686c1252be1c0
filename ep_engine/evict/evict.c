/*
 * evict.c - value eviction at the memory quota, and the background fetch that
 * brings a value back.
 *
 * An item is clean once its record is durable: it then carries the record's
 * location (item.h). When memory use passes mem_high_wat_pct of max_size, the
 * item pager (a nonio task) goes round the stripes from where it last stopped
 * and replaces clean items by stubs: the same metadata and key, the location,
 * no value. An item read since the last round only loses its "referenced" mark
 * (a second chance, the clock algorithm), so what is read often stays. It
 * stops once use is below mem_low_wat_pct, or after one round, and goes on
 * every few ms while use stays above the high watermark.
 * Keys and metadata stay resident, so misses, CAS checks, adds and deletes
 * never touch the disk.
 *
 * A get (or an append/prepend) that meets a stub first reads the record on the
 * caller's thread if that cannot wait for the disk: through a file the store
 * already holds open and only if the page cache holds the whole record
 * (kvs_read_cached). Otherwise it hands the key to the reader
 * task and parks its cookie (would_block); the task reads the record at the
 * stub's location, checks that it is that item's (key, CAS, checksum), links a
 * whole item in place of the stub if the stub is still there, and notifies the
 * cookie; the host's re-call finds the value in memory. With no cookie, or a
 * host of ABI v1 (which does not expect would_block from get), the read happens
 * in the call. A compaction that moves records updates the locations before it
 * deletes the old files, so a read that lost that race (the file is gone) looks
 * at the item's location again and retries.
 */
#include "evict.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Values up to this size are read on the caller's thread when the page cache
 * holds them; larger ones always in the background (a copy of megabytes is
 * not for a host's front-end thread). */
#define FETCH_INLINE_MAX (256u * 1024u)

_Static_assert(KVS_LOC_BITS + ITEM_LOC_SHIFT <= 64,
               "a location must fit an item's state");

typedef struct bg_req {
    struct bg_req *next;
    const void *cookie; /* reserved until notified */
    uint64_t t0;
    uint32_t collection;
    uint16_t vbucket;
    uint16_t nkey;
    char key[];
} bg_req;

struct ep_evictor {
    ep_engine *e;
    pthread_mutex_t evict_lock; /* one eviction pass at a time; guards cursor */
    uint64_t cursor;            /* the stripe the next pass starts from */
    _Atomic bool asked;         /* a wake-up is pending or a pass runs */
    exec_task *pager;           /* the item pager: evicts values, nonio */
    pthread_mutex_t lock;       /* guards head and tail */
    bg_req *head, **tail;       /* background fetches waiting for the reader */
    exec_task *reader;          /* the background fetcher, reader */
    struct {
        _Atomic uint64_t runs, ejects, fetched, fetched_inline, fetch_failed, fetch_us;
    } stats;
    hist fetch_latency; /* from the request to the value in memory (or failure) */
};

/* max_size <= 2^46 and pct <= 100: no overflow. */
static uint64_t pct_of(uint64_t v, uint64_t pct)
{
    return v * pct / 100;
}

/* ---- eviction ---- */

typedef struct evicting {
    ep_engine *e;
    ht_stripe *s;
    uint64_t low; /* stop below this; 0 = evict everything clean */
    uint64_t ejected;
    bool stop;
} evicting;

/* ht_stripe_walk callback: replaces one clean item by a stub. */
static bool evict_one(ep_item **link, void *ctx)
{
    evicting *v = ctx;
    ep_engine *e = v->e;
    if (v->low != 0 &&
        atomic_load_explicit(&e->mem_used, memory_order_relaxed) < v->low) {
        v->stop = true;
        return false;
    }
    ep_item *it = *link;
    uint64_t loc = item_loc(it);
    unsigned shard = kvs_shard_of(kvs_shards(e->store), it->vbucket);
    if (item_evicted(it) || it->nvalue == 0 || loc == 0 ||
        atomic_load(&e->compacting[shard]))
        return true;
    /* Read since the last pass: a second chance (the clock algorithm). */
    if (v->low != 0 && item_untouch(it))
        return true;
    ep_item *stub = ep_item_copy_meta(e, it, sizeof(ep_item) + it->nkey);
    if (stub == NULL) {
        v->stop = true;
        return false;
    }
    uint64_t keep = atomic_load(&it->state) & (ITEM_STORED | ITEM_DATATYPE_MASK);
    atomic_store(&stub->state, keep | ITEM_EVICTED | loc << ITEM_LOC_SHIFT);
    ep_item *old = ep_link_item(e, v->s, link, stub, true, NULL);
    ep_item_put(e, stub); /* the table holds it */
    ep_item_put(e, old);
    atomic_fetch_add_explicit(&e->non_resident, 1, memory_order_relaxed);
    v->ejected++;
    return true;
}

static void evict_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    evicting *v = ctx;
    v->s = s;
    ht_stripe_walk(ht, s, evict_one, v);
}

uint64_t evict_pass(ep_evictor *ev)
{
    ep_engine *e = ev->e;
    pthread_mutex_lock(&ev->evict_lock);
    evicting v = {e, NULL, pct_of(e->cfg.max_size, e->cfg.mem_low_wat_pct), 0, false};
    if (v.low == 0)
        v.low = 1;
    uint64_t n = ht_stripes(e->ht), i = ev->cursor % n;
    for (uint64_t done = 0; done < n && !v.stop && !atomic_load(&e->closing); done++) {
        ht_visit_stripe(e->ht, i, evict_stripe, &v);
        if (!v.stop)
            i = (i + 1) % n;
    }
    ev->cursor = i;
    pthread_mutex_unlock(&ev->evict_lock);
    atomic_fetch_add(&ev->stats.runs, 1);
    atomic_fetch_add(&ev->stats.ejects, v.ejected);
    return v.ejected;
}

/* While memory stays over the high watermark (values not yet on disk cannot
 * go) it runs every few ms, and wake-ups are not asked for meanwhile: one
 * pass at a time, not one per store. */
static int64_t evictor_run(exec_task *task, void *arg)
{
    (void)task;
    ep_evictor *ev = arg;
    ep_engine *e = ev->e;
    uint64_t high = pct_of(e->cfg.max_size, e->cfg.mem_high_wat_pct);
    if (atomic_load(&e->mem_used) > high)
        evict_pass(ev);
    if (atomic_load(&e->mem_used) > high && !atomic_load(&e->closing))
        return 5;
    atomic_store(&ev->asked, false);
    return EXEC_FOREVER;
}

/* The engine's memory-pressure hook (core.h): asks for a pass when `used` is
 * over the high watermark. */
static void evict_wake(void *ctx, uint64_t used)
{
    ep_evictor *ev = ctx;
    if (used > pct_of(ev->e->cfg.max_size, ev->e->cfg.mem_high_wat_pct) &&
        !atomic_exchange(&ev->asked, true))
        exec_wake(ev->pager);
}

static void evict_all_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    evict_stripe(ht, s, ctx);
}

uint64_t evict_all(ep_evictor *ev)
{
    ep_engine *e = ev->e;
    evicting v = {e, NULL, 0, 0, false};
    ht_for_each_stripe(e->ht, evict_all_stripe, &v);
    atomic_fetch_add(&ev->stats.runs, 1);
    atomic_fetch_add(&ev->stats.ejects, v.ejected);
    return v.ejected;
}

/* ---- background fetch ---- */

/* Reads the value of the stub now linked for this key and links the whole
 * item in its place (*read set). ENGINE_SUCCESS also when there is no stub
 * any more (the caller looks again; *read left false); else an error with
 * the reason in why. With cached, a read that never waits for the disk
 * (kvs_read_cached), tried once: ENGINE_WOULD_BLOCK when it could not be done
 * that way, for whatever reason (the background read then does it, or
 * reports why not); why is not used. */
static engine_errc fetch_value(ep_evictor *ev, uint16_t vbucket, uint32_t collection,
                               const void *key, size_t nkey, bool cached, bool *read,
                               char *why, size_t whylen)
{
    *read = false;
    ep_engine *e = ev->e;
    uint64_t hash = ht_hash(vbucket, collection, key, nkey);
    unsigned shard = kvs_shard_of(kvs_shards(e->store), vbucket);
    int rc = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        ht_stripe *s = ht_lock(e->ht, hash);
        ep_item *stub = *ht_find(e->ht, s, hash, vbucket, collection, key, nkey);
        if (stub == NULL || !item_evicted(stub)) {
            ht_unlock(s);
            return ENGINE_SUCCESS;
        }
        if (cached && stub->nvalue > FETCH_INLINE_MAX) {
            ht_unlock(s);
            return ENGINE_WOULD_BLOCK;
        }
        item_ref(stub);
        uint64_t loc = item_loc(stub);
        ht_unlock(s);

        kvs_record r;
        void *buf = NULL;
        if (cached)
            rc =
                kvs_read_cached(e->store, shard, loc, stub->nkey, stub->nvalue, &r, &buf);
        else
            rc = kvs_read(e->store, shard, loc, &r, &buf, why, whylen);
        if (cached && (rc != 0 || !ep_record_is(&r, stub))) {
            free(buf);
            ep_item_put(e, stub);
            return ENGINE_WOULD_BLOCK;
        }
        if (rc == 0 && !ep_record_is(&r, stub)) {
            snprintf(why, whylen,
                     "the record at the evicted item's location is not that item "
                     "(key or CAS differ)");
            rc = -EBADMSG;
        }
        ep_item *whole = NULL;
        if (rc == 0) {
            whole = ep_item_copy_meta(e, stub, item_footprint(stub->nkey, stub->nvalue));
            if (whole == NULL) {
                snprintf(why, whylen, "out of memory for a %" PRIu32 "-byte value",
                         stub->nvalue);
                rc = -ENOMEM;
            } else {
                memcpy(item_value(whole), r.value, r.nvalue);
                /* Asked for just now: referenced. */
                uint64_t keep =
                    atomic_load(&stub->state) & (ITEM_STORED | ITEM_DATATYPE_MASK);
                atomic_store(&whole->state, keep | ITEM_REFERENCED);
            }
        }
        free(buf);
        ep_item *old = NULL;
        if (whole != NULL) {
            s = ht_lock(e->ht, hash);
            ep_item **link = ht_find(e->ht, s, hash, vbucket, collection, key, nkey);
            if (*link == stub) {
                /* A shard that compacts now may move the record: then the item
                 * stays without a location (not evictable) rather than keep one
                 * that may go stale. */
                if (!atomic_load(&e->compacting[shard]))
                    item_set_loc(whole, item_loc(stub));
                old = ep_link_item(e, s, link, whole, true, NULL);
            }
            ht_unlock(s);
            ep_item_put(e, whole);
            if (old != NULL)
                ep_item_put(e, old);
            evict_wake(ev, atomic_load(&e->mem_used));
        }
        bool moved = rc == -ENOENT && item_loc(stub) != loc;
        ep_item_put(e, stub);
        if (rc == 0) {
            atomic_fetch_add(&ev->stats.fetched, 1);
            if (cached)
                atomic_fetch_add(&ev->stats.fetched_inline, 1);
            *read = true;
            return ENGINE_SUCCESS;
        }
        if (cached)
            return ENGINE_WOULD_BLOCK; /* out of memory: the background read says so */
        if (rc != -ENOENT)
            break;
        if (!moved) {
            /* The location may be about to move (a compaction places its items
             * just before it deletes the files): look once more after a pause. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(&ev->stats.fetch_failed, 1);
    e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: background fetch failed: %s", why);
    return rc == -EBADMSG ? ENGINE_FAILED : ENGINE_TEMPORARY_FAILURE;
}

/* Takes the whole queue. */
static bg_req *take_queue(ep_evictor *q)
{
    pthread_mutex_lock(&q->lock);
    bg_req *r = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->lock);
    return r;
}

static int64_t bg_run(exec_task *task, void *arg)
{
    (void)task;
    ep_evictor *ev = arg;
    ep_engine *e = ev->e;
    bg_req *r = take_queue(ev);
    const engine_server_api *api = e->sapi;
    while (r != NULL) {
        bg_req *next = r->next;
        char why[768] = "";
        bool read;
        engine_errc rc = fetch_value(ev, r->vbucket, r->collection, r->key, r->nkey,
                                     false, &read, why, sizeof(why));
        if (rc == ENGINE_SUCCESS && atomic_load(&e->closing)) {
            /* A re-call would reach an engine being destroyed. */
            rc = ENGINE_TEMPORARY_FAILURE;
            snprintf(why, sizeof(why), "the engine is shutting down");
        }
        uint64_t took = exec_now_ns() - r->t0;
        atomic_fetch_add(&ev->stats.fetch_us, took / 1000);
        hist_record(&ev->fetch_latency, took);
        if (rc != ENGINE_SUCCESS) {
            char reason[900];
            snprintf(reason, sizeof(reason), "background fetch of the value failed: %s",
                     why);
            cookie_set_reason(api, r->cookie, reason);
        }
        api->cookie.notify_io_complete(r->cookie, rc);
        api->cookie.release(r->cookie);
        free(r);
        r = next;
    }
    return EXEC_FOREVER;
}

/* Answers fetches that will not run: at shutdown, from the reader thread that
 * the executor ends the task on (never the thread that destroys the engine). */
static void answer_unread(ep_engine *e, bg_req *r)
{
    while (r != NULL) {
        bg_req *next = r->next;
        cookie_set_reason(e->sapi, r->cookie,
                          "the engine shut down before the evicted value was read");
        e->sapi->cookie.notify_io_complete(r->cookie, ENGINE_TEMPORARY_FAILURE);
        e->sapi->cookie.release(r->cookie);
        free(r);
        r = next;
    }
}

static void bg_cancel(exec_task *task, void *arg)
{
    (void)task;
    ep_evictor *ev = arg;
    answer_unread(ev->e, take_queue(ev));
}

engine_errc evict_bg_fetch(ep_evictor *ev, const void *cookie, uint16_t vbucket,
                           uint32_t collection, const void *key, size_t nkey)
{
    ep_engine *e = ev->e;
    if (cookie == NULL || e->iface.interface < ENGINE_API_VERSION_2) {
        char why[768] = "";
        bool read;
        engine_errc rc = fetch_value(ev, vbucket, collection, key, nkey, false, &read,
                                     why, sizeof(why));
        if (rc != ENGINE_SUCCESS)
            return ep_fail(e, cookie, rc, "reading the evicted value failed: %s", why);
        return rc;
    }
    /* What the page cache holds is read here, on the caller's thread. */
    uint64_t t0 = exec_now_ns();
    bool read;
    if (fetch_value(ev, vbucket, collection, key, nkey, true, &read, NULL, 0) ==
        ENGINE_SUCCESS) {
        if (read) { /* else the value was back already: nothing was read */
            uint64_t took = exec_now_ns() - t0;
            atomic_fetch_add(&ev->stats.fetch_us, took / 1000);
            hist_record(&ev->fetch_latency, took);
        }
        return ENGINE_SUCCESS;
    }
    bg_req *r = malloc(sizeof(*r) + nkey);
    if (r == NULL)
        return ep_fail(e, cookie, ENGINE_NO_MEMORY,
                       "out of memory queueing the read of an evicted value");
    *r = (bg_req){NULL, cookie, t0, collection, vbucket, (uint16_t)nkey};
    memcpy(r->key, key, nkey);
    e->sapi->cookie.reserve(cookie);
    pthread_mutex_lock(&ev->lock);
    *ev->tail = r;
    ev->tail = &r->next;
    pthread_mutex_unlock(&ev->lock);
    exec_wake(ev->reader);
    return ENGINE_WOULD_BLOCK;
}

/* ---- lifecycle ---- */

ep_evictor *evict_create(ep_engine *e)
{
    ep_evictor *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return NULL;
    ev->e = e;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_mutex_init(&ev->evict_lock, NULL);
    ev->tail = &ev->head;
    ev->reader =
        exec_task_new(e->pool, "bg_fetcher", EXEC_READER, 5, bg_run, bg_cancel, ev);
    ev->pager =
        exec_task_new(e->pool, "item_pager", EXEC_NONIO, 10, evictor_run, NULL, ev);
    if (ev->reader == NULL || ev->pager == NULL) {
        evict_destroy(ev);
        return NULL;
    }
    return ev;
}

bool evict_start(ep_evictor *ev)
{
    if (!exec_schedule(ev->reader, EXEC_FOREVER) ||
        !exec_schedule(ev->pager, EXEC_FOREVER))
        return false;
    ev->e->pressure = evict_wake;
    ev->e->pressure_ctx = ev;
    return true;
}

void evict_destroy(ep_evictor *ev)
{
    if (ev == NULL)
        return;
    /* Empty: the reader task's cancel answered what was queued. */
    answer_unread(ev->e, take_queue(ev));
    if (ev->e->pressure_ctx == ev)
        ev->e->pressure = NULL;
    exec_task_put(ev->reader);
    exec_task_put(ev->pager);
    pthread_mutex_destroy(&ev->lock);
    pthread_mutex_destroy(&ev->evict_lock);
    free(ev);
}

const hist *evict_fetch_latency(const ep_evictor *ev)
{
    return ev != NULL ? &ev->fetch_latency : NULL;
}

void evict_figures_get(ep_evictor *ev, evict_figures *f)
{
    *f = (evict_figures){0};
    if (ev == NULL)
        return;
    f->runs = ep_load(&ev->stats.runs);
    f->ejects = ep_load(&ev->stats.ejects);
    f->fetched = ep_load(&ev->stats.fetched);
    f->fetched_inline = ep_load(&ev->stats.fetched_inline);
    f->fetch_failed = ep_load(&ev->stats.fetch_failed);
    f->fetch_us = ep_load(&ev->stats.fetch_us);
}
