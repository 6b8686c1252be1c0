/*
 * locks.c - item locks in the stripes (locks.h).
 */
#include "locks.h"

#include <stdlib.h>
#include <string.h>

#define LOCK_DEFAULT_S 15
#define LOCK_MAX_S     30

/* Under the stripe lock: the link to a key's lock entry, or NULL. */
static kv_lock **lock_link(ht_stripe *s, uint16_t vbucket, uint32_t collection,
                           const void *key, size_t nkey)
{
    for (kv_lock **l = (kv_lock **)&s->locks; *l != NULL; l = &(*l)->next)
        if ((*l)->vbucket == vbucket && (*l)->collection == collection &&
            (*l)->nkey == nkey && memcmp((*l)->key, key, nkey) == 0)
            return l;
    return NULL;
}

static void lock_drop(ep_engine *e, kv_lock **l)
{
    kv_lock *gone = *l;
    *l = gone->next;
    free(gone);
    atomic_fetch_sub_explicit(&e->locks_held, 1, memory_order_relaxed);
}

kv_lock *kv_lock_of(ep_engine *e, ht_stripe *s, const ep_item *it)
{
    if (it == NULL || atomic_load_explicit(&e->locks_held, memory_order_relaxed) == 0)
        return NULL;
    kv_lock **l = lock_link(s, it->vbucket, it->collection, it->data, it->nkey);
    if (l == NULL)
        return NULL;
    if ((*l)->item_cas == it->cas && (*l)->until > ep_now(e))
        return *l;
    lock_drop(e, l);
    return NULL;
}

void kv_lock_end(ep_engine *e, ht_stripe *s, const ep_item *it)
{
    kv_lock **l = lock_link(s, it->vbucket, it->collection, it->data, it->nkey);
    if (l != NULL)
        lock_drop(e, l);
}

static void free_stripe_locks(ep_ht *ht, ht_stripe *s, void *ctx)
{
    (void)ht;
    ep_engine *e = ctx;
    while (s->locks != NULL)
        lock_drop(e, (kv_lock **)&s->locks);
}

void kv_locks_free(ep_engine *e)
{
    if (e->ht != NULL && atomic_load(&e->locks_held) > 0)
        ht_for_each_stripe(e->ht, free_stripe_locks, e);
}

engine_errc kv_locked(ep_engine *e, const void *cookie)
{
    return ep_fail(e, cookie, ENGINE_LOCKED,
                   "the document is locked: write with its lock CAS, unlock it, or "
                   "wait for the lock to time out");
}

bool kv_lock_add(ep_engine *e, ht_stripe *s, const ep_item *it, uint32_t timeout_s,
                 uint64_t *lock_cas)
{
    uint32_t secs = timeout_s == 0           ? LOCK_DEFAULT_S
                    : timeout_s > LOCK_MAX_S ? LOCK_MAX_S
                                             : timeout_s;
    kv_lock *lk = malloc(sizeof(*lk) + it->nkey);
    if (lk == NULL)
        return false;
    *lk = (kv_lock){.next = s->locks,
                    .item_cas = it->cas,
                    .lock_cas = atomic_fetch_add(&e->cas_seq, 1) + 1,
                    .until = ep_now(e) + secs,
                    .collection = it->collection,
                    .vbucket = it->vbucket,
                    .nkey = it->nkey};
    memcpy(lk->key, it->data, it->nkey);
    s->locks = lk;
    atomic_fetch_add_explicit(&e->locks_held, 1, memory_order_relaxed);
    *lock_cas = lk->lock_cas;
    return true;
}

void kv_locks_expire(ep_engine *e, ht_stripe *s, engine_rel_time now)
{
    for (kv_lock **l = (kv_lock **)&s->locks; *l != NULL;) {
        if ((*l)->until <= now)
            lock_drop(e, l);
        else
            l = &(*l)->next;
    }
}
