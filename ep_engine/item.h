/*
 * item.h - the engine's items: one allocation holding metadata, key and value.
 *
 * An item is immutable once stored; a new value is a new item. It is reference
 * counted: the hash table holds one reference while the item is linked, and
 * each engine_item handed to the host holds one. It never frees memory that a
 * reference can still reach.
 */
#ifndef EP_ITEM_H
#define EP_ITEM_H

#include "../engine_api.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ep_item {
    struct ep_item *next;  /* hash chain; guarded by the item's stripe lock */
    uint64_t cas;          /* before store: the compare CAS; after: the item's CAS */
    uint32_t hash;         /* low 32 bits of ht_hash (tables have <= 2^32 buckets) */
    _Atomic uint32_t refs; /* references: the table's, the host's, the flusher's */
    uint32_t flags;
    engine_rel_time exptime; /* 0 = never */
    uint32_t collection;
    uint32_t nvalue;
    uint16_t vbucket;
    uint16_t nkey;
    _Atomic uint8_t stored; /* set once by the store that consumes the item */
    uint8_t datatype;
    char data[]; /* nkey key bytes, then nvalue value bytes */
} ep_item;

_Static_assert(sizeof(ep_item) == 48, "ep_item grew: memory per item is a budget");

/** Bytes an item of this shape occupies, as counted against the quota. */
static inline size_t item_footprint(size_t nkey, size_t nvalue)
{
    return sizeof(ep_item) + nkey + nvalue;
}

static inline char *item_value(ep_item *it)
{
    return it->data + it->nkey;
}

static inline bool item_expired(const ep_item *it, engine_rel_time now)
{
    return it->exptime != 0 && it->exptime <= now;
}

static inline void item_ref(ep_item *it)
{
    atomic_fetch_add_explicit(&it->refs, 1, memory_order_relaxed);
}

/** Drops a reference; true if it was the last (the caller then frees). */
static inline bool item_unref(ep_item *it)
{
    return atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1;
}

#endif
