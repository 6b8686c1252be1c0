/*
 * locks.h - item locks (get_locked and unlock, ABI v3), kept in the hash
 * table's stripes.
 *
 * A lock is an entry in its key's stripe (under the stripe lock), naming the
 * version it locks by CAS: it holds while that version is the live item and
 * its time has not run out. Evicting or reading back a value keeps the CAS,
 * so the lock too; any other replacement ends it. Locks are rare: while the
 * engine holds none, no operation looks (one relaxed load).
 */
#ifndef EP_KV_LOCKS_H
#define EP_KV_LOCKS_H

#include "../core/core.h"

typedef struct kv_lock {
    struct kv_lock *next;
    uint64_t item_cas; /* the locked version */
    uint64_t lock_cas;
    engine_rel_time until;
    uint32_t collection;
    uint16_t vbucket, nkey;
    char key[];
} kv_lock;

/* Under the stripe lock: the lock holding `it` now, or NULL (an entry whose
 * lock has ended is dropped on the way). */
kv_lock *kv_lock_of(ep_engine *e, ht_stripe *s, const ep_item *it);
/* Under the stripe lock: locks `it` for timeout_s seconds (0: the default,
 * capped at the most), the lock's CAS in *lock_cas. false on out of memory. */
bool kv_lock_add(ep_engine *e, ht_stripe *s, const ep_item *it, uint32_t timeout_s,
                 uint64_t *lock_cas);
/* Under the stripe lock: ends the lock of the key of `it`, if any. */
void kv_lock_end(ep_engine *e, ht_stripe *s, const ep_item *it);
/* Under the stripe lock: drops the locks that ran out before `now` (the expiry
 * pager's, for keys nobody touched since). */
void kv_locks_expire(ep_engine *e, ht_stripe *s, engine_rel_time now);
/* Frees every stripe's item locks (destroy, before the table goes). */
void kv_locks_free(ep_engine *e);
/* The locked error, with its reason for the host. */
engine_errc kv_locked(ep_engine *e, const void *cookie);

#endif
