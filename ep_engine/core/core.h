/*
 * core.h - the floor every subsystem of the engine stands on: the engine
 * instance, the error helper, and the life of an item (allocate, reference,
 * link into the table, put) with the collection counters it moves. It calls
 * nothing above it: what it needs from above (eviction, when memory is short)
 * it gets through a hook the subsystem sets. Nothing outside ep_engine/
 * includes it; the host sees only engine_api.h.
 *
 * All state lives in the instance: two engines in one process share nothing.
 */
#ifndef EP_CORE_H
#define EP_CORE_H

#include "../../engine_api.h"
#include "../arena.h"
#include "../collections/manager.h"
#include "../collections/manifest.h"
#include "../config.h"
#include "../executor/executor.h"
#include "../hashtable.h"
#include "../io/io.h"
#include "../item.h"
#include "../kvstore/kvstore.h"
#include "../waiter.h"

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

/* The subsystems, each behind its own header (engine.c makes and ends them);
 * the rest of the engine sees them only through those headers. */
typedef struct ep_flusher ep_flusher;
typedef struct ep_evictor ep_evictor;
typedef struct ep_warmup ep_warmup;
typedef struct ep_compactor ep_compactor;
typedef struct ep_gate ep_gate;

/*
 * The engine instance: what every floor above this one shares. Each
 * subsystem keeps its own state (and its lock) in its own struct.
 *
 * Locking: the plain fields are written by create_instance, initialize or
 * destroy (the host calls no data operation before initialize returns or
 * after destroy begins) and read without a lock, but for ht_recount, which
 * only the resizer task touches. warm_state (set by warmup's last shard),
 * vb_state and compacting (set by the compactor) are atomics. The counters
 * are atomics updated with relaxed order: they count, they order nothing.
 * Per-key state is in the hash table, under its stripe locks.
 */
typedef struct ep_engine {
    engine_handle iface; /* must stay first: the host's handle points here */
    const engine_server_api *sapi;
    engine_info info;
    ep_config cfg;
    bool init_called;     /* initialize runs at most once */
    bool initialized;     /* written by initialize, before any data call */
    _Atomic bool closing; /* destroy has begun */

    ep_io *io;
    ep_waiters *waiters; /* the records left on cookies (waiter.h) */
    exec_pool *pool;
    ep_ht *ht; /* each stripe's `view` is the manifest its operations see */
    coll_manager *coll;
    kvs *store;      /* NULL without a data directory */
    ep_arena *arena; /* warmup's items, or NULL; set before warmup, freed with e */
    _Atomic uint8_t *vb_state;   /* engine_vbucket_state per vbucket */
    _Atomic int warm_state;      /* EP_WARM_*: set by warmup, read by every call */
    _Atomic uint8_t *compacting; /* per shard: a compaction is placing its items
                                  * (set by the compactor; the evictor and the
                                  * background fetch leave such a shard's
                                  * locations alone) */

    ep_flusher *flusher;     /* NULL without a data directory */
    ep_evictor *evictor;     /* NULL without a data directory */
    ep_warmup *warmup;       /* NULL without a data directory */
    ep_compactor *compactor; /* NULL without a data directory */
    ep_gate *gate;           /* the writer gate, a test hook's */
    exec_task *pager;        /* expiry pager, nonio (kv/pager.c) */
    exec_task *resizer;      /* hash table growth, nonio, woken by the table */
    bool ht_recount;         /* the resizer's own: its next run ends a delay */
    exec_task *purger;       /* frees items of dropped collections (kv/purger.c) */

    /* Memory pressure: ep_item_alloc calls it with the bytes in use after each
     * allocation and when the quota refuses one. Set by the evictor (NULL
     * without one: the quota then refuses with no_memory). */
    void (*pressure)(void *ctx, uint64_t used);
    void *pressure_ctx;

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
    _Atomic uint64_t non_resident; /* stubs: items whose value is only on disk */
    _Atomic uint64_t locks_held; /* item locks in the stripes (kv/locks.c); 0: no look */
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

/* Drops one reference to the engine's memory; frees it with the last. */
void ep_engine_unref(ep_engine *e);

/* The engine's clock (the host's, in relative seconds). */
engine_rel_time ep_now(ep_engine *e);

/* ---- items ---- */

/* Drops an item reference; frees the item (and maybe the engine) with the last. */
void ep_item_put(ep_engine *e, ep_item *it);
/* ht_destroy's callback: frees an item whose last reference is gone. */
void ep_item_free(ep_item *it, void *engine);
/* An item for the key with room for nvalue bytes, its one reference the
 * caller's; checks the quota (NULL with *rc and the reason on the cookie). */
ep_item *ep_item_alloc(ep_engine *e, const void *cookie, const engine_doc_key *key,
                       size_t nvalue, engine_errc *rc);
/* An item the engine makes itself from `like` (its metadata and key, `bytes`
 * in all): a stub or a value read back. Counted like ep_item_alloc's but never
 * refused by the quota: it replaces what was there. NULL on out of memory. */
ep_item *ep_item_copy_meta(ep_engine *e, const ep_item *like, size_t bytes);
/* Whether a record read back from disk is this item's. */
bool ep_record_is(const kvs_record *r, const ep_item *it);

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

/* ---- collections under the stripe lock ---- */

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

/* Under the stripe lock: the collection, or NULL with the manifest uid in *uid. */
const coll_collection *ep_collection_locked(const ht_stripe *s, uint32_t cid,
                                            uint64_t *uid);
/* The unknown-collection error, with the manifest uid for the host. */
engine_errc ep_unknown_collection(ep_engine *e, const void *cookie, uint32_t cid,
                                  uint64_t uid);
/* Whether the item was stored in the collection's current incarnation. */
static inline bool ep_current_incarnation(const coll_collection *c, const ep_item *it)
{
    return it->cas > c->state->start_cas;
}
/* Under the stripe lock: moves the item in or out of its collection's counters
 * if it belongs to the current incarnation of a collection of `m` (into the
 * tally when there is one). */
void ep_account(const coll_manifest *m, const ep_item *it, bool in, ep_coll_tally *t);

/* Under the stripe lock: link and unlink keep the collection counters (into
 * the tally t, or the shared counters when t is NULL); they return the item
 * the table let go of, whose reference is now the caller's. */
ep_item *ep_link_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                      bool replace, ep_coll_tally *t);
/* As ep_link_item, but the caller's reference on `it` becomes the table's (no
 * locked operation to take one): for a new item that nobody else can see. */
ep_item *ep_link_new_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                          bool replace, ep_coll_tally *t);
ep_item *ep_unlink_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_coll_tally *t);

/* Makes `m` the manifest of every stripe, one stripe at a time. */
void ep_publish_manifest(ep_engine *e, const coll_manifest *m);

#endif
