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

/*
 * An item's state word: bit 0 "stored" (set once by the store that consumes the
 * item), bits 1-3 the datatype, bit 4 "evicted" (a stub: the value is only on
 * disk), bit 5 "referenced" (read since the item pager last passed: it gets a
 * second chance), bits 6-63 where the item's record is on disk (0 = not
 * written yet; kvstore.h has the encoding). A location is set only once the record is
 * durable, so an item with one is clean and its value may be evicted.
 */
#define ITEM_STORED        UINT64_C(0x01)
#define ITEM_DATATYPE_MASK UINT64_C(0x0e)
#define ITEM_EVICTED       UINT64_C(0x10)
#define ITEM_REFERENCED    UINT64_C(0x20)
#define ITEM_LOC_SHIFT     6

typedef struct ep_item {
    struct ep_item *next;   /* hash chain; guarded by the item's stripe lock */
    uint64_t cas;           /* before store: the compare CAS; after: the item's CAS */
    _Atomic uint64_t state; /* see above */
    _Atomic uint32_t refs;  /* references: the table's, the host's, the flusher's */
    uint32_t flags;
    engine_rel_time exptime; /* 0 = never */
    uint32_t collection;
    uint32_t nvalue; /* the value's length, also for a stub */
    uint16_t vbucket;
    uint16_t nkey;
    char data[]; /* nkey key bytes, then nvalue value bytes (none in a stub) */
} ep_item;

_Static_assert(sizeof(ep_item) == 48, "ep_item grew: memory per item is a budget");

/** On a new item, before it is shared: sets its whole state at once (datatype,
 * stored, and where its record is on disk, 0 for nowhere). A plain store. */
static inline void item_init_state(ep_item *it, uint8_t datatype, bool stored,
                                   uint64_t loc)
{
    uint64_t st = ((uint64_t)datatype << 1 & ITEM_DATATYPE_MASK) |
                  (stored ? ITEM_STORED : 0) | loc << ITEM_LOC_SHIFT;
    atomic_store_explicit(&it->state, st, memory_order_relaxed);
}

static inline uint8_t item_datatype(const ep_item *it)
{
    uint64_t st = atomic_load_explicit(&((ep_item *)it)->state, memory_order_relaxed);
    return (uint8_t)((st & ITEM_DATATYPE_MASK) >> 1);
}

/** On a new item, before it is shared (nothing else is set in its state yet):
 * sets its datatype (bits 0-2 of the ABI's). A plain store, no locked op. */
static inline void item_init_datatype(ep_item *it, uint8_t datatype)
{
    atomic_store_explicit(&it->state, ((uint64_t)datatype << 1) & ITEM_DATATYPE_MASK,
                          memory_order_relaxed);
}

static inline bool item_stored(const ep_item *it)
{
    return atomic_load_explicit(&((ep_item *)it)->state, memory_order_acquire) &
           ITEM_STORED;
}

/** Marks the item stored; true if it already was. */
static inline bool item_mark_stored(ep_item *it)
{
    return atomic_fetch_or_explicit(&it->state, ITEM_STORED, memory_order_acq_rel) &
           ITEM_STORED;
}

static inline void item_unmark_stored(ep_item *it)
{
    atomic_fetch_and_explicit(&it->state, ~ITEM_STORED, memory_order_release);
}

static inline bool item_evicted(const ep_item *it)
{
    return atomic_load_explicit(&((ep_item *)it)->state, memory_order_relaxed) &
           ITEM_EVICTED;
}

/** Marks the item read (a plain load when it already is: hot items cost no
 * locked operation). */
static inline void item_touch(ep_item *it)
{
    if (!(atomic_load_explicit(&it->state, memory_order_relaxed) & ITEM_REFERENCED))
        atomic_fetch_or_explicit(&it->state, ITEM_REFERENCED, memory_order_relaxed);
}

/** Clears the referenced mark; whether it was set. */
static inline bool item_untouch(ep_item *it)
{
    return atomic_load_explicit(&it->state, memory_order_relaxed) & ITEM_REFERENCED &&
           atomic_fetch_and_explicit(&it->state, ~ITEM_REFERENCED, memory_order_relaxed) &
               ITEM_REFERENCED;
}

/** Where the item's record is on disk; 0 if it is not (yet). */
static inline uint64_t item_loc(const ep_item *it)
{
    return atomic_load_explicit(&((ep_item *)it)->state, memory_order_acquire) >>
           ITEM_LOC_SHIFT;
}

/** Records that the item's record is durable at `loc` (replacing any other). */
static inline void item_set_loc(ep_item *it, uint64_t loc)
{
    uint64_t st = atomic_load_explicit(&it->state, memory_order_relaxed), next;
    do {
        next = (st & ((UINT64_C(1) << ITEM_LOC_SHIFT) - 1)) | loc << ITEM_LOC_SHIFT;
    } while (!atomic_compare_exchange_weak_explicit(
        &it->state, &st, next, memory_order_release, memory_order_relaxed));
}

/** Bytes an item of this shape occupies, as counted against the quota. */
static inline size_t item_footprint(size_t nkey, size_t nvalue)
{
    return sizeof(ep_item) + nkey + nvalue;
}

/** Sets where the item's record is, unless something already did. */
static inline void item_set_loc_if_none(ep_item *it, uint64_t loc)
{
    uint64_t st = atomic_load_explicit(&it->state, memory_order_relaxed);
    while (st >> ITEM_LOC_SHIFT == 0 && !atomic_compare_exchange_weak_explicit(
                                            &it->state, &st, st | loc << ITEM_LOC_SHIFT,
                                            memory_order_release, memory_order_relaxed))
        ;
}

/** Bytes the item occupies now (a stub holds no value). */
static inline size_t item_mem(const ep_item *it)
{
    return sizeof(ep_item) + it->nkey + (item_evicted(it) ? 0 : it->nvalue);
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
