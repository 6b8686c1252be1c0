/*
 * ops.h - what the sub-document operations (subdoc.c) share with the data
 * operations (kv.c): the checks at the boundary, finding a key's item under
 * its stripe lock, and storing or removing an item with every rule of
 * store and remove (CAS, locks, the disk queue, durable waiters).
 */
#ifndef EP_KV_OPS_H
#define EP_KV_OPS_H

#include "../core/core.h"

/* A key's place under its stripe lock: the collection, the link and the live
 * item (NULL if none). */
typedef struct key_place {
    ht_stripe *s; /* locked */
    const coll_collection *c;
    ep_item **link;
    ep_item *it;
} key_place;

/* The key and vbucket are served here (initialized, sane key, warm, the
 * vbucket active): ENGINE_SUCCESS, or the error with its reason. */
engine_errc kv_check_key(ep_engine *e, const void *cookie, const engine_doc_key *key,
                         uint16_t vbucket);
/* Locks the key's stripe and finds its live item with its value in memory (an
 * evicted one is read back first: ENGINE_WOULD_BLOCK with a cookie of a v2+
 * host). On ENGINE_SUCCESS the stripe is locked; on an error it is not. */
engine_errc kv_find_resident(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket, uint64_t hash, key_place *p);
/* What a sub-document store asks beyond store() (its item is the whole new
 * value, no attributes of the old one kept, its attribute section built from
 * checked keys and values): at these offsets of its value the new CAS is
 * written as 16 hex digits of its bytes reversed (the ${Mutation.CAS} macro),
 * once the CAS is known and before anyone sees it. */
typedef struct kv_store_extra {
    unsigned ncas_at;
    uint32_t cas_at[16];
} kv_store_extra;

/* store() of `it` (the compare CAS in it->cas), with an optional durable
 * waiter and an optional extra (NULL: a plain store). */
engine_errc kv_do_store(ep_engine *e, const void *cookie, ep_item *it, uint64_t *cas_out,
                        engine_store_op op, ep_waiter *waiter,
                        const kv_store_extra *extra);
/* Whether a durable write may be asked for here (the level, a cookie to
 * notify, a data directory): ENGINE_SUCCESS or the refusal with its reason. */
engine_errc kv_durable_allowed(ep_engine *e, const void *cookie, engine_durability d);

/* remove(), with an optional durable waiter. */
engine_errc kv_do_remove(ep_engine *e, const void *cookie, const engine_doc_key *key,
                         uint64_t cas, uint16_t vbucket, uint64_t *cas_out,
                         ep_waiter *waiter);

#endif
