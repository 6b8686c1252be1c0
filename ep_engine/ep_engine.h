/*
 * ep_engine.h - the engine instance, shared by engine.c (lifecycle, vtable,
 * collections calls), kv.c (data operations and their background sweeps) and
 * stats.c (stats groups). Nothing outside ep_engine/ includes it; the host sees
 * only engine_api.h.
 *
 * All state lives in the instance: two engines in one process share nothing.
 */
#ifndef EP_ENGINE_H
#define EP_ENGINE_H

#include "../engine_api.h"
#include "arena.h"
#include "collections/manager.h"
#include "collections/manifest.h"
#include "config.h"
#include "executor/executor.h"
#include "flusher.h"
#include "hashtable.h"
#include "io/io.h"
#include "item.h"
#include "kvstore/kvstore.h"
#include "waiter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define EP_VERSION "0.4.0"

/* Warmup states (ep_engine.warm_state). Data is served only when DONE. */
enum { EP_WARM_RUNNING = 0, EP_WARM_DONE = 1, EP_WARM_FAILED = 2 };

/* Counters kept per hash-table stripe (ht_stripe.stat), under its lock: no
 * shared cache line is written on the hot path. */
enum ep_stat {
    ST_GET_HITS,
    ST_GET_MISSES,
    ST_STORES,      /* successful stores of any kind */
    ST_STORE_FAILS, /* stores refused (exists, not stored, CAS mismatch ...) */
    ST_CAS_HITS,    /* stores with a compare CAS that matched */
    ST_CAS_BADVAL,  /* compare CAS did not match */
    ST_CAS_MISSES,  /* compare CAS on a missing key */
    ST_DELETE_HITS,
    ST_DELETE_MISSES,
    ST_EXPIRED_ACCESS, /* expired items found by an operation */
    ST_EXPIRED_PAGER,  /* expired items removed by the pager */
    ST_TOTAL_ITEMS,    /* items ever linked */
    ST_PURGED,         /* items of dropped collections freed (purger or access) */
};

typedef struct ep_engine {
    engine_handle iface; /* must stay first: the host's handle points here */
    const engine_server_api *sapi;
    engine_info info;
    ep_config cfg;
    bool init_called;     /* initialize runs at most once */
    _Atomic bool closing; /* destroy has begun */
    bool initialized;     /* written by initialize, before any data call */

    ep_io *io;
    ep_waiters *waiters; /* the records left on cookies (waiter.h) */
    exec_pool *pool;
    ep_ht *ht; /* each stripe's `view` is the manifest its operations see */
    coll_manager *coll;
    exec_task *pager;   /* expiry pager, nonio */
    exec_task *resizer; /* hash table growth, nonio, woken by the table */
    bool ht_recount;    /* the resizer's: its next run ends a delay (engine.c) */
    exec_task *purger;  /* frees items of dropped collections, nonio */
    struct warm_shard *warm_shards;  /* one reader task per shard loads it at start */
    struct warm_filter *warm_filter; /* keys seen so far, while warming up */
    ep_arena *arena; /* warmup's items, or NULL; set before warmup, freed with e */
    uint64_t warm_t0;
    _Atomic bool warm_failed;
    exec_task *compactor; /* rewrites fragmented shards, auxio */
    struct {
        _Atomic uint64_t runs, failures, last_before, last_after, last_us;
    } compact_stats;
    _Atomic uint8_t *compacting; /* per shard: a compaction is placing its items */
    exec_task *evictor;          /* the item pager: evicts values, nonio */
    uint64_t evict_cursor;       /* the stripe the evictor goes on from */
    _Atomic bool evict_asked;
    struct ep_bg_queue *bg; /* background fetches waiting for the reader task */
    struct {
        _Atomic uint64_t runs, ejects, non_resident, fetched, fetch_failed, fetch_us;
    } evict_stats;
    kvs *store;          /* NULL without a data directory */
    ep_flusher *flusher; /* NULL without a data directory */
    _Atomic int warm_state;
    struct {
        _Atomic uint64_t shards_done, records, bytes, loaded, tombstones, skipped_dropped,
            skipped_expired, skipped_older, skipped_invalid, torn_segments, torn_bytes,
            duration_us;
    } warm_stats;
    _Atomic uint8_t *vb_state; /* engine_vbucket_state per vbucket */

    /* The engine's memory stays until the host has released every item: one
     * reference for the handle, one per live item. */
    _Atomic uint64_t refs;
    _Atomic uint64_t mem_used; /* bytes of live items, counted against max_size */
    _Atomic uint64_t cas_seq;  /* the last CAS handed out */

    /* Counters outside the stripes. */
    _Atomic uint64_t oom_errors;
    _Atomic uint64_t too_big_errors;
    _Atomic uint64_t pager_runs;
    _Atomic uint64_t purger_runs;
    _Atomic uint64_t flushes;
    _Atomic uint64_t items_allocated;
    _Atomic uint64_t locks_held; /* item locks in the stripes (kv.c); 0: no look */

    /* The writer gate (testing.c's "hold_writer"): one task per writer
     * thread, each blocking its thread until released or destroy. */
    struct {
        pthread_mutex_t lock; /* guards parked and released */
        pthread_cond_t cond;
        unsigned parked; /* gate tasks holding a writer thread */
        bool released;
        exec_task *tasks[64]; /* as many as num_writer_threads can be */
        unsigned ntasks;
    } gate;
} ep_engine;

static inline ep_engine *eng(engine_handle *h)
{
    return (ep_engine *)h;
}

static inline uint64_t ep_load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Leaves a reason for the host (when there is a client) and returns rc. */
engine_errc ep_fail(ep_engine *e, const void *cookie, engine_errc rc, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
engine_errc ep_not_initialized(ep_engine *e, const void *cookie);

/* The writer gate: occupies every writer thread with a task that waits for
 * ep_release_writers or destroy (0, or -1 with a reason); for the test
 * variant's hook (testing.c). */
int ep_hold_writers(ep_engine *e, char *why, size_t whylen);
void ep_release_writers(ep_engine *e);

/* Drops one reference to the engine's memory; frees it with the last. */
void ep_engine_unref(ep_engine *e);

/* Drops an item reference; frees the item (and maybe the engine) with the last. */
void ep_item_put(ep_engine *e, ep_item *it);
/* ht_destroy's callback: frees an item whose last reference is gone. */
void ep_item_free(ep_item *it, void *engine);

/* For a thread that links many items in a row (warmup): the collections'
 * item and memory counters are gathered here, a few collection states at a
 * time (each slot holds a reference to its state), and added to the shared
 * counters by ep_coll_tally_flush, instead of two shared atomic operations per
 * item on a line every such thread writes. Until a flush the shared counters
 * lag by what the tally holds. */
#define EP_TALLY_SLOTS 4
typedef struct ep_tally_slot {
    coll_state *state;
    int64_t items, mem;
} ep_tally_slot;
typedef struct ep_coll_tally {
    ep_tally_slot slot[EP_TALLY_SLOTS];
} ep_coll_tally;
void ep_coll_tally_flush(ep_coll_tally *t);

/* kv.c: items and links shared with warmup. ep_item_alloc checks the quota
 * (NULL with *rc); ep_link_item / ep_unlink_item keep the collection counters
 * (under the stripe lock; into the tally t, or the shared counters when t is
 * NULL; they return the item the table let go of). */
ep_item *ep_item_alloc(ep_engine *e, const void *cookie, const engine_doc_key *key,
                       size_t nvalue, engine_errc *rc);
ep_item *ep_link_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                      bool replace, ep_coll_tally *t);
/* As ep_link_item, but the caller's reference on `it` becomes the table's (no
 * locked operation to take one): for a new item that nobody else can see. */
ep_item *ep_link_new_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                          bool replace, ep_coll_tally *t);

/* For a thread that allocates many items in a row (warmup): the engine-wide
 * counters (quota bytes, engine references, items allocated) are taken in
 * blocks and kept here, instead of three shared atomic operations per item.
 * mem_used counts a block ahead (at most EP_CREDIT_BYTES per holder). Near
 * the quota ep_item_alloc_credit allocates as ep_item_alloc does. With a
 * cursor, items come from e->arena (from malloc when it has no room).
 * ep_alloc_credit_return gives back what is left (the cursor stays). */
#define EP_CREDIT_BYTES (256u << 10)
#define EP_CREDIT_REFS  1024u
typedef struct ep_alloc_credit {
    uint64_t mem, refs, allocated;
    arena_cursor *cursor; /* items from e->arena through it, or NULL: malloc */
} ep_alloc_credit;
ep_item *ep_item_alloc_credit(ep_engine *e, const engine_doc_key *key, size_t nvalue,
                              ep_alloc_credit *cr, engine_errc *rc);
void ep_alloc_credit_return(ep_engine *e, ep_alloc_credit *cr);
ep_item *ep_unlink_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_coll_tally *t);

/* warmup.c: starts one reader task per shard; the last to finish sets
 * warm_state. ep_warmup_free after the executor is gone. */
bool ep_warmup_start(ep_engine *e);
void ep_warmup_free(ep_engine *e);

/* compactor.c: the periodic task, and a compaction now (force: every shard,
 * whatever its fragmentation). */
int64_t ep_compactor_run(exec_task *task, void *arg);
void ep_compact_now(ep_engine *e, bool force);

/* evict.c: value eviction and background fetch (only with a data directory).
 * ep_evict_start creates the tasks; ep_evict_wake asks for eviction when `used`
 * is over the high watermark; ep_bg_fetch brings back the value of the stub
 * the caller just saw for this key (no lock held): ENGINE_WOULD_BLOCK when it
 * parked the cookie (it is notified once), ENGINE_SUCCESS when the value was
 * read in the call (look again), else an error with its reason.
 * Fetches still queued at shutdown are answered when the executor ends the
 * reader task; ep_evict_shutdown, after the executor is gone, finds none
 * (it would answer one from the destroying thread, which the contract does
 * not allow, so the reader task's cancel must have run). ep_record_is:
 * whether a record read back is this item's. */
bool ep_evict_start(ep_engine *e);
void ep_evict_wake(ep_engine *e, uint64_t used);
engine_errc ep_bg_fetch(ep_engine *e, const void *cookie, uint16_t vbucket,
                        uint32_t collection, const void *key, size_t nkey);
void ep_evict_shutdown(ep_engine *e);
bool ep_record_is(const kvs_record *r, const ep_item *it);
/* One eviction pass on the caller's thread, down to the low watermark (warmup
 * uses it when the data on disk is larger than the quota); how many values. */
uint64_t ep_evict_pass(ep_engine *e);
/* Evicts every clean value now (a test hook); returns how many. */
uint64_t ep_evict_all(ep_engine *e);

/* kv.c: the data operations of the vtable. */
engine_errc ep_allocate(engine_handle *h, const void *cookie, engine_item **out,
                        const engine_doc_key *key, size_t nbytes, uint32_t flags,
                        uint32_t exptime, uint8_t datatype, uint16_t vbucket);
void ep_release(engine_handle *h, engine_item *item);
engine_errc ep_get(engine_handle *h, const void *cookie, engine_item **out,
                   const engine_doc_key *key, uint16_t vbucket);
engine_errc ep_store(engine_handle *h, const void *cookie, engine_item *item,
                     uint64_t *cas_out, engine_store_op op);
engine_errc ep_remove(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint64_t cas, uint16_t vbucket, uint64_t *cas_out);
engine_errc ep_flush(engine_handle *h, const void *cookie);
engine_errc ep_store_durable(engine_handle *h, const void *cookie, engine_item *item,
                             uint64_t *cas_out, engine_store_op op, engine_durability d);
engine_errc ep_remove_durable(engine_handle *h, const void *cookie,
                              const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                              uint64_t *cas_out, engine_durability d);
engine_errc ep_set_vbucket_state(engine_handle *h, const void *cookie, uint16_t vbucket,
                                 engine_vbucket_state state);
engine_errc ep_get_locked(engine_handle *h, const void *cookie, engine_item **out,
                          const engine_doc_key *key, uint16_t vbucket,
                          uint32_t lock_timeout_s, uint64_t *lock_cas);
engine_errc ep_unlock(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint16_t vbucket, uint64_t lock_cas);
/* Frees every stripe's item locks (destroy, before the table goes). */
void ep_locks_free(ep_engine *e);
engine_errc ep_get_item_info(engine_handle *h, const engine_item *item,
                             engine_item_info *info);
void ep_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas);

/* kv.c: background sweeps (executor run functions, arg = the engine). */
int64_t ep_pager_run(exec_task *task, void *arg);
int64_t ep_purger_run(exec_task *task, void *arg);
/* kv.c: makes `m` the manifest of every stripe, one stripe at a time. */
void ep_publish_manifest(ep_engine *e, const coll_manifest *m);

/* stats.c */
engine_errc ep_get_stats(engine_handle *h, const void *cookie, const char *group,
                         engine_add_stat_fn add_stat, void *ctx);
void ep_reset_stats(engine_handle *h, const void *cookie);

#endif
