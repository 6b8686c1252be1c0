/*
 * kv.c - the data operations (allocate, get, store, remove, flush) and the
 * sweeps that clean up after them (expiry pager, dropped-collection purger).
 *
 * Every operation locks its key's stripe and judges the key's collection
 * against that stripe's manifest view under the lock, so a manifest change is
 * seen whole by each operation. An item is visible only if its collection is in
 * the manifest and it was stored in the collection's current incarnation
 * (CAS above the incarnation's start_cas).
 */
#include "ep_engine.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- items ---- */

void ep_item_free(ep_item *it, void *engine)
{
    ep_engine *e = engine;
    if (item_evicted(it))
        atomic_fetch_sub_explicit(&e->evict_stats.non_resident, 1, memory_order_relaxed);
    size_t mem = item_mem(it);
    atomic_fetch_sub_explicit(&e->mem_used, mem, memory_order_relaxed);
    if (arena_owns(e->arena, it))
        arena_free(e->arena, it, mem); /* never a stub: those are malloc's */
    else
        free(it);
    ep_engine_unref(e);
}

void ep_item_put(ep_engine *e, ep_item *it)
{
    if (item_unref(it))
        ep_item_free(it, e);
}

/* A new item's header and key, its one reference the caller's. */
static ep_item *item_init(ep_item *it, const engine_doc_key *key, size_t nvalue)
{
    memset(it, 0, sizeof(*it));
    atomic_init(&it->refs, 1);
    it->nkey = key->len;
    it->collection = key->collection;
    it->nvalue = (uint32_t)nvalue;
    memcpy(it->data, key->bytes, key->len);
    return it;
}

ep_item *ep_item_alloc(ep_engine *e, const void *cookie, const engine_doc_key *key,
                       size_t nvalue, engine_errc *rc)
{
    size_t size = item_footprint(key->len, nvalue);
    uint64_t used = atomic_fetch_add_explicit(&e->mem_used, size, memory_order_relaxed);
    if (used + size > e->cfg.max_size) {
        atomic_fetch_sub_explicit(&e->mem_used, size, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->oom_errors, 1, memory_order_relaxed);
        if (e->evictor != NULL) {
            /* Values on disk can make room: ask for it, and for a retry. */
            ep_evict_wake(e, used);
            *rc = ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                          "memory quota reached: %" PRIu64 " bytes used, item needs %zu, "
                          "max_size is %" PRIu64 "; values are being evicted, retry",
                          used, size, e->cfg.max_size);
            return NULL;
        }
        *rc = ep_fail(e, cookie, ENGINE_NO_MEMORY,
                      "memory quota reached: %" PRIu64 " bytes used, item needs %zu, "
                      "max_size is %" PRIu64,
                      used, size, e->cfg.max_size);
        return NULL;
    }
    ep_item *it = malloc(size);
    if (it == NULL) {
        atomic_fetch_sub_explicit(&e->mem_used, size, memory_order_relaxed);
        *rc = ep_fail(e, cookie, ENGINE_NO_MEMORY, "out of memory allocating %zu bytes",
                      size);
        return NULL;
    }
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->items_allocated, 1, memory_order_relaxed);
    ep_evict_wake(e, used + size);
    return item_init(it, key, nvalue);
}

ep_item *ep_item_alloc_credit(ep_engine *e, const engine_doc_key *key, size_t nvalue,
                              ep_alloc_credit *cr, engine_errc *rc)
{
    size_t size = item_footprint(key->len, nvalue);
    if (cr->mem < size) {
        uint64_t block = size > EP_CREDIT_BYTES ? size : EP_CREDIT_BYTES;
        uint64_t used =
            atomic_fetch_add_explicit(&e->mem_used, block, memory_order_relaxed);
        if (used + block > e->cfg.max_size) {
            /* Near the quota: item by item, with its errors and eviction. */
            atomic_fetch_sub_explicit(&e->mem_used, block, memory_order_relaxed);
            return ep_item_alloc(e, NULL, key, nvalue, rc);
        }
        cr->mem += block;
        ep_evict_wake(e, used + block);
    }
    ep_item *it = cr->cursor != NULL ? arena_alloc(e->arena, cr->cursor, size) : NULL;
    if (it == NULL)
        it = malloc(size);
    if (it == NULL) {
        *rc = ep_fail(e, NULL, ENGINE_NO_MEMORY, "out of memory allocating %zu bytes",
                      size);
        return NULL;
    }
    cr->mem -= size;
    if (cr->refs == 0) {
        atomic_fetch_add_explicit(&e->refs, EP_CREDIT_REFS, memory_order_relaxed);
        cr->refs = EP_CREDIT_REFS;
    }
    cr->refs--;
    cr->allocated++;
    return item_init(it, key, nvalue);
}

void ep_alloc_credit_return(ep_engine *e, ep_alloc_credit *cr)
{
    atomic_fetch_sub_explicit(&e->mem_used, cr->mem, memory_order_relaxed);
    /* The handle holds a reference of its own: this never drops the last. */
    atomic_fetch_sub_explicit(&e->refs, cr->refs, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->items_allocated, cr->allocated, memory_order_relaxed);
    *cr = (ep_alloc_credit){.cursor = cr->cursor};
}

/* ---- collections under the stripe lock ---- */

static const coll_manifest *view(const ht_stripe *s)
{
    return s->view;
}

/* Under the stripe lock: the collection, or NULL with the manifest uid in *uid. */
static const coll_collection *collection_locked(const ht_stripe *s, uint32_t cid,
                                                uint64_t *uid)
{
    const coll_manifest *m = view(s);
    const coll_collection *c = coll_find_collection(m, cid);
    if (c == NULL)
        *uid = m->uid;
    return c;
}

static engine_errc unknown_collection(ep_engine *e, const void *cookie, uint32_t cid,
                                      uint64_t uid)
{
    if (cookie != NULL)
        e->sapi->cookie.set_error_manifest_uid(cookie, uid);
    return ep_fail(e, cookie, ENGINE_UNKNOWN_COLLECTION,
                   "unknown collection 0x%" PRIx32 " in manifest uid %" PRIx64, cid, uid);
}

static bool current_incarnation(const coll_collection *c, const ep_item *it)
{
    return it->cas > c->state->start_cas;
}

/* Adds a tally slot's counts to its state's counters and lets the state go. */
static void tally_slot_flush(ep_tally_slot *slot)
{
    if (slot->state == NULL)
        return;
    /* Two's complement: adding a negative count as uint64_t subtracts it. */
    atomic_fetch_add_explicit(&slot->state->items, (uint64_t)slot->items,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->state->mem, (uint64_t)slot->mem,
                              memory_order_relaxed);
    coll_state_unref(slot->state);
    *slot = (ep_tally_slot){0};
}

void ep_coll_tally_flush(ep_coll_tally *t)
{
    for (int i = 0; i < EP_TALLY_SLOTS; i++)
        tally_slot_flush(&t->slot[i]);
}

/* The tally slot for a collection state: the one it has, or the one its id
 * maps to, taken over (the slot's old state gets its counts first). Under the
 * stripe lock, where the state is alive; the slot holds a reference. */
static ep_tally_slot *tally_slot(ep_coll_tally *t, coll_state *st, uint32_t cid)
{
    ep_tally_slot *slot = &t->slot[cid % EP_TALLY_SLOTS];
    if (slot->state != st) {
        tally_slot_flush(slot);
        slot->state = coll_state_ref(st);
    }
    return slot;
}

/* Under the stripe lock: moves the item in or out of its collection's counters
 * if it belongs to the current incarnation (into the tally when there is one). */
static void account(const coll_manifest *m, const ep_item *it, bool in, ep_coll_tally *t)
{
    const coll_collection *c = coll_find_collection(m, it->collection);
    if (c == NULL || !current_incarnation(c, it))
        return;
    int64_t fp = (int64_t)item_mem(it), n = in ? 1 : -1;
    if (t != NULL) {
        ep_tally_slot *slot = tally_slot(t, c->state, c->id);
        slot->items += n;
        slot->mem += n * fp;
        return;
    }
    atomic_fetch_add_explicit(&c->state->items, (uint64_t)n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->state->mem, (uint64_t)(n * fp), memory_order_relaxed);
}

ep_item *ep_link_new_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                          bool replace, ep_coll_tally *t)
{
    ep_item *old = ht_put(e->ht, s, link, it, replace);
    if (old != NULL)
        account(view(s), old, false, t);
    account(view(s), it, true, t);
    return old;
}

ep_item *ep_link_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_item *it,
                      bool replace, ep_coll_tally *t)
{
    item_ref(it); /* the table's */
    return ep_link_new_item(e, s, link, it, replace, t);
}

ep_item *ep_unlink_item(ep_engine *e, ht_stripe *s, ep_item **link, ep_coll_tally *t)
{
    (void)e;
    account(view(s), *link, false, t);
    return ht_unlink(s, link);
}

/* ---- boundary checks ---- */

static const char *const vb_state_names[] = {"?", "active", "replica", "pending", "dead"};

/* Whether data operations on this vbucket are served now. */
static engine_errc serving(ep_engine *e, const void *cookie, uint16_t vbucket)
{
    int ws = atomic_load_explicit(&e->warm_state, memory_order_acquire);
    if (ws != EP_WARM_DONE)
        return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                       ws == EP_WARM_FAILED ? "warmup failed; the engine serves no data "
                                              "(see the log)"
                                            : "the engine is warming up");
    if (vbucket >= e->cfg.max_vbuckets)
        return ep_fail(e, cookie, ENGINE_NOT_MY_VBUCKET,
                       "vbucket %u is out of range (max_vbuckets=%" PRIu64 ")", vbucket,
                       e->cfg.max_vbuckets);
    uint8_t st = atomic_load_explicit(&e->vb_state[vbucket], memory_order_relaxed);
    if (st != ENGINE_VBUCKET_ACTIVE)
        return ep_fail(e, cookie, ENGINE_NOT_MY_VBUCKET, "vbucket %u is %s", vbucket,
                       vb_state_names[st < 5 ? st : 0]);
    return ENGINE_SUCCESS;
}

static engine_errc check_key(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket)
{
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (key == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key is NULL");
    if (key->len == 0)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key is empty");
    if (key->bytes == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key bytes are NULL");
    if (key->len > ENGINE_KEY_MAX_LEN)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                       "key is %u bytes; the limit is %d", key->len, ENGINE_KEY_MAX_LEN);
    return serving(e, cookie, vbucket);
}

static engine_rel_time now(ep_engine *e)
{
    return e->sapi->core.get_current_time();
}

/*
 * Under the stripe lock: the live item at *link, or NULL. An item of an earlier
 * incarnation of the collection, or an expired one, is unlinked and freed on
 * the way; *link then points to the next item of the chain, which is still a
 * valid place to insert (ht_put without replace).
 */
static ep_item *live_item(ep_engine *e, ht_stripe *s, ep_item **link,
                          const coll_collection *c)
{
    ep_item *it = *link;
    if (it == NULL)
        return NULL;
    if (!current_incarnation(c, it)) {
        s->stat[ST_PURGED]++;
    } else if (it->exptime != 0 && item_expired(it, now(e))) {
        s->stat[ST_EXPIRED_ACCESS]++;
        account(view(s), it, false, NULL);
    } else {
        return it;
    }
    ep_item_put(e, ht_unlink(s, link));
    return NULL;
}

/* A key's place under its stripe lock: the collection, the link and the live
 * item (NULL if none). */
typedef struct key_place {
    ht_stripe *s; /* locked */
    const coll_collection *c;
    ep_item **link;
    ep_item *it;
} key_place;

/* Locks the key's stripe and finds its live item; on an unknown collection the
 * stripe is unlocked again and the error returned. */
static engine_errc find_live(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket, uint64_t hash, key_place *p)
{
    uint64_t uid = 0;
    p->s = ht_lock(e->ht, hash);
    p->c = collection_locked(p->s, key->collection, &uid);
    if (p->c == NULL) {
        ht_unlock(p->s);
        return unknown_collection(e, cookie, key->collection, uid);
    }
    p->link = ht_find(e->ht, p->s, hash, vbucket, key->collection, key->bytes, key->len);
    p->it = live_item(e, p->s, p->link, p->c);
    return ENGINE_SUCCESS;
}

/* ---- item locks (get_locked and unlock, ABI v3) ----
 * A lock is an entry in its key's stripe (under the stripe lock), naming the
 * version it locks by CAS: it holds while that version is the live item and
 * its time has not run out. Evicting or reading back a value keeps the CAS,
 * so the lock too; any other replacement ends it. Locks are rare: while the
 * engine holds none, no operation looks (one relaxed load). */

#define LOCK_DEFAULT_S 15
#define LOCK_MAX_S     30

typedef struct ep_lock {
    struct ep_lock *next;
    uint64_t item_cas; /* the locked version */
    uint64_t lock_cas;
    engine_rel_time until;
    uint32_t collection;
    uint16_t vbucket, nkey;
    char key[];
} ep_lock;

/* Under the stripe lock: the link to a key's lock entry, or NULL. */
static ep_lock **lock_link(ht_stripe *s, uint16_t vbucket, uint32_t collection,
                           const void *key, size_t nkey)
{
    for (ep_lock **l = (ep_lock **)&s->locks; *l != NULL; l = &(*l)->next)
        if ((*l)->vbucket == vbucket && (*l)->collection == collection &&
            (*l)->nkey == nkey && memcmp((*l)->key, key, nkey) == 0)
            return l;
    return NULL;
}

static void lock_drop(ep_engine *e, ep_lock **l)
{
    ep_lock *gone = *l;
    *l = gone->next;
    free(gone);
    atomic_fetch_sub_explicit(&e->locks_held, 1, memory_order_relaxed);
}

static engine_rel_time now(ep_engine *e);

/* Under the stripe lock: the lock holding `it` now, or NULL (an entry whose
 * lock has ended is dropped on the way). */
static ep_lock *lock_of(ep_engine *e, ht_stripe *s, const ep_item *it)
{
    if (it == NULL || atomic_load_explicit(&e->locks_held, memory_order_relaxed) == 0)
        return NULL;
    ep_lock **l = lock_link(s, it->vbucket, it->collection, it->data, it->nkey);
    if (l == NULL)
        return NULL;
    if ((*l)->item_cas == it->cas && (*l)->until > now(e))
        return *l;
    lock_drop(e, l);
    return NULL;
}

/* Under the stripe lock: ends the lock of the key of `it`, if any. */
static void lock_end(ep_engine *e, ht_stripe *s, const ep_item *it)
{
    ep_lock **l = lock_link(s, it->vbucket, it->collection, it->data, it->nkey);
    if (l != NULL)
        lock_drop(e, l);
}

static void free_stripe_locks(ep_ht *ht, ht_stripe *s, void *ctx)
{
    (void)ht;
    ep_engine *e = ctx;
    while (s->locks != NULL)
        lock_drop(e, (ep_lock **)&s->locks);
}

void ep_locks_free(ep_engine *e)
{
    if (e->ht != NULL && atomic_load(&e->locks_held) > 0)
        ht_for_each_stripe(e->ht, free_stripe_locks, e);
}

static engine_errc locked(ep_engine *e, const void *cookie)
{
    return ep_fail(e, cookie, ENGINE_LOCKED,
                   "the document is locked: write with its lock CAS, unlock it, or "
                   "wait for the lock to time out");
}

/* ---- allocate / release / info ---- */

static engine_errc check_out_and_key(ep_engine *e, const void *cookie, engine_item **out,
                                     const engine_doc_key *key, uint16_t vbucket)
{
    if (out == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item out-parameter is NULL");
    return check_key(e, cookie, key, vbucket);
}

engine_errc ep_allocate(engine_handle *h, const void *cookie, engine_item **out,
                        const engine_doc_key *key, size_t nbytes, uint32_t flags,
                        uint32_t exptime, uint8_t datatype, uint16_t vbucket)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_out_and_key(e, cookie, out, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (nbytes > e->cfg.max_item_size) {
        atomic_fetch_add_explicit(&e->too_big_errors, 1, memory_order_relaxed);
        return ep_fail(e, cookie, ENGINE_TOO_BIG,
                       "value is %zu bytes; max_item_size is %" PRIu64, nbytes,
                       e->cfg.max_item_size);
    }
    if (datatype & ~0x07u)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                       "unknown datatype bits 0x%02x", datatype);
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len), uid = 0;
    ht_stripe *s = ht_lock(e->ht, hash);
    bool known = collection_locked(s, key->collection, &uid) != NULL;
    ht_unlock(s);
    if (!known)
        return unknown_collection(e, cookie, key->collection, uid);

    ep_item *it = ep_item_alloc(e, cookie, key, nbytes, &rc);
    if (it == NULL)
        return rc;
    it->flags = flags;
    it->exptime = exptime ? e->sapi->core.realtime(exptime) : 0;
    item_init_datatype(it, datatype);
    it->vbucket = vbucket;
    *out = (engine_item *)it;
    return ENGINE_SUCCESS;
}

void ep_release(engine_handle *h, engine_item *item)
{
    if (item != NULL)
        ep_item_put(eng(h), (ep_item *)item);
}

engine_errc ep_get_item_info(engine_handle *h, const engine_item *item,
                             engine_item_info *info)
{
    ep_engine *e = eng(h);
    const ep_item *it = (const ep_item *)item;
    if (it == NULL || info == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    info->cas = item_stored(it) ? it->cas : 0;
    if (info->cas != 0 &&
        atomic_load_explicit(&e->locks_held, memory_order_relaxed) > 0) {
        /* A locked item's CAS is the locker's to know. */
        uint64_t hash = ht_hash(it->vbucket, it->collection, it->data, it->nkey);
        ht_stripe *s = ht_lock(e->ht, hash);
        ep_item **link =
            ht_find(e->ht, s, hash, it->vbucket, it->collection, it->data, it->nkey);
        if (*link != NULL && (*link)->cas == it->cas && lock_of(e, s, *link) != NULL)
            info->cas = UINT64_MAX;
        ht_unlock(s);
    }
    info->exptime = it->exptime ? e->sapi->core.abstime(it->exptime) : 0;
    info->flags = it->flags;
    info->datatype = item_datatype(it);
    info->vbucket = it->vbucket;
    info->key.collection = it->collection;
    info->key.len = it->nkey;
    info->key.bytes = it->data;
    info->value.iov_base = (void *)(it->data + it->nkey);
    info->value.iov_len = it->nvalue;
    return ENGINE_SUCCESS;
}

void ep_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas)
{
    (void)h;
    ep_item *it = (ep_item *)item;
    if (it != NULL && !item_stored(it))
        it->cas = cas;
}

/* ---- get ---- */

/* Under the stripe lock, which it releases: the end of a get. */
static engine_errc got(ht_stripe *s, const coll_collection *c, ep_item *it,
                       engine_item **out, bool evicting)
{
    atomic_fetch_add_explicit(&c->state->ops_get, 1, memory_order_relaxed);
    if (it != NULL) {
        item_ref(it);
        if (evicting)
            item_touch(it); /* for the item pager's second chance */
        s->stat[ST_GET_HITS]++;
    } else {
        s->stat[ST_GET_MISSES]++;
    }
    ht_unlock(s);
    if (it == NULL)
        return ENGINE_NO_SUCH_KEY;
    *out = (engine_item *)it;
    return ENGINE_SUCCESS;
}

/* find_live, with a value that is on disk only read back first: success
 * with p's stripe locked and p->it resident (or NULL), else the error or
 * would_block of the read (nothing locked). */
static engine_errc find_resident(ep_engine *e, const void *cookie,
                                 const engine_doc_key *key, uint16_t vbucket,
                                 uint64_t hash, key_place *p)
{
    for (int fetches = 0;; fetches++) {
        engine_errc rc = find_live(e, cookie, key, vbucket, hash, p);
        if (rc != ENGINE_SUCCESS || p->it == NULL || !item_evicted(p->it))
            return rc;
        ht_unlock(p->s);
        if (fetches == 3)
            return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                           "the value was evicted again as soon as it was read; "
                           "memory is short, retry");
        rc = ep_bg_fetch(e, cookie, vbucket, key->collection, key->bytes, key->len);
        if (rc != ENGINE_SUCCESS)
            return rc;
    }
}

engine_errc ep_get(engine_handle *h, const void *cookie, engine_item **out,
                   const engine_doc_key *key, uint16_t vbucket)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_out_and_key(e, cookie, out, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = find_resident(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    return got(p.s, p.c, p.it, out, e->evictor != NULL);
}

engine_errc ep_get_locked(engine_handle *h, const void *cookie, engine_item **out,
                          const engine_doc_key *key, uint16_t vbucket,
                          uint32_t lock_timeout_s, uint64_t *lock_cas)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_out_and_key(e, cookie, out, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (lock_cas == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                       "lock CAS out-parameter is NULL");
    uint32_t secs = lock_timeout_s == 0           ? LOCK_DEFAULT_S
                    : lock_timeout_s > LOCK_MAX_S ? LOCK_MAX_S
                                                  : lock_timeout_s;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = find_resident(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (p.it != NULL && lock_of(e, p.s, p.it) != NULL) {
        ht_unlock(p.s);
        return ep_fail(e, cookie, ENGINE_LOCKED, "the document is locked already");
    }
    if (p.it != NULL) {
        ep_lock *lk = malloc(sizeof(*lk) + key->len);
        if (lk == NULL) {
            ht_unlock(p.s);
            return ep_fail(e, cookie, ENGINE_NO_MEMORY, "out of memory for a lock");
        }
        *lk = (ep_lock){.next = p.s->locks,
                        .item_cas = p.it->cas,
                        .lock_cas = atomic_fetch_add(&e->cas_seq, 1) + 1,
                        .until = now(e) + secs,
                        .collection = key->collection,
                        .vbucket = vbucket,
                        .nkey = key->len};
        memcpy(lk->key, key->bytes, key->len);
        p.s->locks = lk;
        atomic_fetch_add_explicit(&e->locks_held, 1, memory_order_relaxed);
        *lock_cas = lk->lock_cas;
    }
    return got(p.s, p.c, p.it, out, e->evictor != NULL);
}

engine_errc ep_unlock(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint16_t vbucket, uint64_t lock_cas)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = find_live(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    ep_lock *lock = lock_of(e, p.s, p.it);
    if (p.it == NULL)
        rc = ENGINE_NO_SUCH_KEY;
    else if (lock == NULL)
        rc = ENGINE_NOT_LOCKED;
    else if (lock->lock_cas != lock_cas)
        rc = ENGINE_LOCKED;
    else
        lock_end(e, p.s, p.it);
    ht_unlock(p.s);
    switch (rc) {
    case ENGINE_NO_SUCH_KEY:
        return ep_fail(e, cookie, rc, "key does not exist");
    case ENGINE_NOT_LOCKED:
        return ep_fail(e, cookie, rc, "the document is not locked");
    case ENGINE_LOCKED:
        return ep_fail(e, cookie, rc, "the document is locked with another CAS");
    default:
        return rc;
    }
}

/* ---- store ---- */

/* Builds the item an append/prepend stores: the old value and the new, the old
 * item's metadata. */
static ep_item *concat_item(ep_engine *e, const void *cookie, const ep_item *old,
                            const ep_item *add, bool append, engine_errc *rc)
{
    size_t n = (size_t)old->nvalue + add->nvalue;
    if (n > e->cfg.max_item_size) {
        *rc = ep_fail(e, cookie, ENGINE_TOO_BIG,
                      "appended value would be %zu bytes; max_item_size is %" PRIu64, n,
                      e->cfg.max_item_size);
        return NULL;
    }
    engine_doc_key key = {old->collection, old->nkey, old->data};
    ep_item *it = ep_item_alloc(e, cookie, &key, n, rc);
    if (it == NULL)
        return NULL;
    it->flags = old->flags;
    it->exptime = old->exptime;
    item_init_datatype(it, item_datatype(old) & item_datatype(add));
    it->vbucket = old->vbucket;
    const ep_item *first = append ? old : add, *second = append ? add : old;
    memcpy(item_value(it), first->data + first->nkey, first->nvalue);
    memcpy(item_value(it) + first->nvalue, second->data + second->nkey, second->nvalue);
    item_mark_stored(it);
    return it;
}

/* Under the stripe lock: decides whether `op` may store over `old`. */
static engine_errc store_allowed(ht_stripe *s, engine_store_op op, const ep_item *old,
                                 uint64_t cas)
{
    if (op == ENGINE_STORE_ADD)
        return old ? ENGINE_KEY_EXISTS : ENGINE_SUCCESS;
    if (cas != 0) {
        if (old == NULL) {
            s->stat[ST_CAS_MISSES]++;
            return ENGINE_NO_SUCH_KEY;
        }
        if (old->cas != cas) {
            s->stat[ST_CAS_BADVAL]++;
            return ENGINE_KEY_EXISTS;
        }
        s->stat[ST_CAS_HITS]++;
        return ENGINE_SUCCESS;
    }
    if (old == NULL && op != ENGINE_STORE_SET)
        return ENGINE_NOT_STORED;
    return ENGINE_SUCCESS;
}

/* Caps a new item's expiry at the collection's maxTTL (0 = no cap). */
static void apply_max_ttl(ep_engine *e, const coll_collection *c, ep_item *it)
{
    if (!c->has_max_ttl || c->max_ttl == 0)
        return;
    engine_rel_time cap = now(e) + c->max_ttl;
    if (it->exptime == 0 || it->exptime > cap)
        it->exptime = cap;
}

static engine_errc store_refused(ep_engine *e, const void *cookie, engine_errc rc,
                                 engine_store_op op)
{
    switch (rc) {
    case ENGINE_KEY_EXISTS:
        return ep_fail(e, cookie, rc,
                       op == ENGINE_STORE_ADD ? "key exists" : "CAS mismatch");
    case ENGINE_NOT_STORED:
        return ep_fail(e, cookie, rc, "key does not exist");
    case ENGINE_NO_SUCH_KEY:
        return ep_fail(e, cookie, rc, "key does not exist (CAS given)");
    case ENGINE_LOCKED:
        return locked(e, cookie);
    default:
        return rc; /* the reason is already set */
    }
}

/* store(), with an optional durable waiter (the flusher finishes it once the
 * write is on disk). */
static engine_errc do_store(ep_engine *e, const void *cookie, ep_item *it,
                            uint64_t *cas_out, engine_store_op op, ep_waiter *waiter)
{
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (it == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item is NULL");
    if (op < ENGINE_STORE_ADD || op > ENGINE_STORE_CAS)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "unknown store operation %d",
                       op);
    if (op == ENGINE_STORE_ADD && it->cas != 0)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "add takes no CAS");
    if (op == ENGINE_STORE_CAS && it->cas == 0)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                       "CAS store needs a non-zero CAS");
    engine_errc rc = serving(e, cookie, it->vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (item_mark_stored(it))
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item was already stored");
    int fetches = 0;
again:;
    const uint64_t cmp_cas = it->cas;
    uint64_t uid = 0;
    ep_item *fresh = NULL, *old = NULL;
    uint64_t hash = ht_hash(it->vbucket, it->collection, it->data, it->nkey);
    ht_stripe *s = ht_lock(e->ht, hash);
    const coll_collection *c = collection_locked(s, it->collection, &uid);
    if (c == NULL) {
        ht_unlock(s);
        rc = unknown_collection(e, cookie, it->collection, uid);
        goto out_unstore;
    }
    ep_item **link =
        ht_find(e->ht, s, hash, it->vbucket, it->collection, it->data, it->nkey);
    ep_item *cur = live_item(e, s, link, c);
    ep_lock *lock = op == ENGINE_STORE_ADD ? NULL : lock_of(e, s, cur);
    /* The lock's CAS stands for the version it locks. */
    rc = lock != NULL && cmp_cas != lock->lock_cas
             ? ENGINE_LOCKED
             : store_allowed(s, op, cur, lock != NULL ? cur->cas : cmp_cas);
    ep_item *put = it;
    bool concat = op == ENGINE_STORE_APPEND || op == ENGINE_STORE_PREPEND;
    if (rc == ENGINE_SUCCESS && concat && item_evicted(cur)) {
        /* The old value is on disk only: bring it back, then store. */
        ht_unlock(s);
        rc = fetches++ == 3 ? ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                                      "the value was evicted again as soon as it was "
                                      "read; memory is short, retry")
                            : ep_bg_fetch(e, cookie, it->vbucket, it->collection,
                                          it->data, it->nkey);
        if (rc == ENGINE_SUCCESS)
            goto again;
        goto out_unstore;
    }
    if (rc == ENGINE_SUCCESS && concat) {
        fresh = concat_item(e, cookie, cur, it, op == ENGINE_STORE_APPEND, &rc);
        put = fresh;
    } else if (rc == ENGINE_SUCCESS) {
        apply_max_ttl(e, c, it);
    }
    if (rc == ENGINE_SUCCESS) {
        put->cas = atomic_fetch_add_explicit(&e->cas_seq, 1, memory_order_relaxed) + 1;
        it->cas = put->cas;
        /* Queued for disk before it is linked, both under the stripe lock: each
         * key's versions reach the queue in CAS order, and a write the queue
         * cannot take is not applied at all. (Nothing of the item changes once
         * it is queued: the writer thread reads it from then on.) */
        if (e->flusher != NULL && !flusher_enqueue_set(e->flusher, put, cur, waiter)) {
            put->cas = it->cas = cmp_cas;
            rc = ep_fail(e, cookie, ENGINE_NO_MEMORY,
                         "out of memory queueing the write for disk; nothing was "
                         "stored");
        }
    }
    if (rc == ENGINE_SUCCESS) {
        if (lock != NULL)
            lock_end(e, s, cur); /* the write with the lock's CAS ends it */
        old = ep_link_item(e, s, link, put, cur != NULL, NULL);
        atomic_fetch_add_explicit(&c->state->ops_store, 1, memory_order_relaxed);
        s->stat[ST_STORES]++;
        s->stat[ST_TOTAL_ITEMS]++;
        if (cas_out != NULL)
            *cas_out = put->cas;
    } else {
        s->stat[ST_STORE_FAILS]++;
    }
    ht_unlock(s);
    if (old != NULL)
        ep_item_put(e, old);
    if (fresh != NULL)
        ep_item_put(e, fresh); /* the table holds it now */
    if (rc == ENGINE_SUCCESS)
        return rc;
    rc = store_refused(e, cookie, rc, op);
out_unstore:
    /* Nothing was stored: the host may try the same item again. */
    item_unmark_stored(it);
    return rc;
}

engine_errc ep_store(engine_handle *h, const void *cookie, engine_item *item,
                     uint64_t *cas_out, engine_store_op op)
{
    return do_store(eng(h), cookie, (ep_item *)item, cas_out, op, NULL);
}

/* ---- remove / flush ---- */

static engine_errc do_remove(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint64_t cas, uint16_t vbucket, uint64_t *cas_out,
                             ep_waiter *waiter)
{
    engine_errc rc = check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    ep_item *gone = NULL;
    key_place p;
    rc = find_live(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    ht_stripe *s = p.s;
    const coll_collection *c = p.c;
    ep_item **link = p.link, *cur = p.it;
    ep_lock *lock = lock_of(e, s, cur);
    if (cur == NULL) {
        rc = ENGINE_NO_SUCH_KEY;
        s->stat[ST_DELETE_MISSES]++;
    } else if (lock != NULL && cas != lock->lock_cas) {
        rc = ENGINE_LOCKED; /* only the lock's CAS gets past a lock */
    } else if (lock == NULL && cas != 0 && cur->cas != cas) {
        rc = ENGINE_KEY_EXISTS;
        s->stat[ST_CAS_BADVAL]++;
    } else {
        uint64_t del_cas =
            atomic_fetch_add_explicit(&e->cas_seq, 1, memory_order_relaxed) + 1;
        /* Queued before it is unlinked, as in do_store: a deletion the queue
         * cannot take is not applied. */
        if (e->flusher != NULL &&
            !flusher_enqueue_delete(e->flusher, cur, del_cas, waiter)) {
            rc = ENGINE_NO_MEMORY;
        } else {
            if (lock != NULL)
                lock_end(e, s, cur);
            gone = ep_unlink_item(e, s, link, NULL);
            atomic_fetch_add_explicit(&c->state->ops_delete, 1, memory_order_relaxed);
            s->stat[ST_DELETE_HITS]++;
            if (cas_out != NULL)
                *cas_out = del_cas;
        }
    }
    ht_unlock(s);
    if (gone != NULL)
        ep_item_put(e, gone);
    if (rc == ENGINE_KEY_EXISTS)
        return ep_fail(e, cookie, rc, "CAS mismatch");
    if (rc == ENGINE_LOCKED)
        return locked(e, cookie);
    if (rc == ENGINE_NO_MEMORY)
        return ep_fail(e, cookie, rc,
                       "out of memory queueing the deletion for disk; nothing was "
                       "deleted");
    return rc;
}

engine_errc ep_remove(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint64_t cas, uint16_t vbucket, uint64_t *cas_out)
{
    return do_remove(eng(h), cookie, key, cas, vbucket, cas_out, NULL);
}

/* ---- durable writes ---- */

static engine_errc durable_allowed(ep_engine *e, const void *cookie, engine_durability d)
{
    if (d != ENGINE_DURABILITY_PERSIST)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "unknown durability level %d",
                       d);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (cookie == NULL)
        return ENGINE_INVALID_ARGUMENTS; /* no one to notify */
    if (e->flusher == NULL)
        return ep_fail(e, cookie, ENGINE_NOT_SUPPORTED,
                       "durable writes need a data directory (dbname)");
    return ENGINE_SUCCESS;
}

/*
 * What store_durable and remove_durable share: the preconditions, the host's
 * re-call collecting a finished write (rule 3), and the cookie's record for a
 * new write. Returns true when *rc is the whole answer; false with *w the new
 * write's record, to be passed to the flusher (or abandoned if the write is
 * refused).
 */
static bool durable_begin(ep_engine *e, const void *cookie, engine_durability d,
                          const waiter_match *m, uint64_t *cas_out, engine_errc *rc,
                          ep_waiter **w)
{
    *rc = durable_allowed(e, cookie, d);
    if (*rc != ENGINE_SUCCESS)
        return true;
    switch (waiter_collect(e->waiters, cookie, m, rc, cas_out)) {
    case WAITER_DONE:
        return true;
    case WAITER_PENDING:
        *rc = ep_fail(e, cookie, ENGINE_TOO_BUSY,
                      "an earlier request on this connection is still waiting for its "
                      "notify");
        return true;
    case WAITER_NEW:
        break;
    }
    *w = waiter_begin(e->waiters, cookie, m);
    if (*w == NULL) {
        *rc = ep_fail(e, cookie, ENGINE_NO_MEMORY,
                      "out of memory recording the durable write");
        return true;
    }
    return false;
}

/* The arguments of a store besides its key and value: a call with other
 * flags, datatype or operation is another request. (Left out: the expiry,
 * which a host's re-call converts anew, and the compare CAS, which a store
 * replaces in the item it was given.) */
static uint64_t store_detail(const ep_item *it, engine_store_op op)
{
    return (uint64_t)it->flags << 32 | (uint64_t)item_datatype(it) << 8 | (uint8_t)op;
}

/* After the write: a refused write forgets its record; an accepted one waits
 * for the flusher. */
static engine_errc durable_result(ep_waiter *w, engine_errc rc)
{
    if (rc != ENGINE_SUCCESS) {
        waiter_abandon(w);
        return rc;
    }
    return ENGINE_WOULD_BLOCK;
}

engine_errc ep_store_durable(engine_handle *h, const void *cookie, engine_item *item,
                             uint64_t *cas_out, engine_store_op op, engine_durability d)
{
    ep_engine *e = eng(h);
    ep_item *it = (ep_item *)item;
    if (d == ENGINE_DURABILITY_NONE || it == NULL)
        return do_store(e, cookie, it, cas_out, op, NULL);
    waiter_match m = {.call = WAITER_STORE_DURABLE,
                      .vbucket = it->vbucket,
                      .collection = it->collection,
                      .key = it->data,
                      .nkey = it->nkey,
                      .value = item_value(it),
                      .nvalue = it->nvalue,
                      .detail = store_detail(it, op)};
    engine_errc rc;
    ep_waiter *w;
    if (durable_begin(e, cookie, d, &m, cas_out, &rc, &w))
        return rc;
    return durable_result(w, do_store(e, cookie, it, cas_out, op, w));
}

engine_errc ep_remove_durable(engine_handle *h, const void *cookie,
                              const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                              uint64_t *cas_out, engine_durability d)
{
    ep_engine *e = eng(h);
    if (d == ENGINE_DURABILITY_NONE || key == NULL || key->bytes == NULL)
        return do_remove(e, cookie, key, cas, vbucket, cas_out, NULL);
    waiter_match m = {.call = WAITER_REMOVE_DURABLE,
                      .vbucket = vbucket,
                      .collection = key->collection,
                      .key = key->bytes,
                      .nkey = key->len,
                      .detail = cas};
    engine_errc rc;
    ep_waiter *w;
    if (durable_begin(e, cookie, d, &m, cas_out, &rc, &w))
        return rc;
    return durable_result(w, do_remove(e, cookie, key, cas, vbucket, cas_out, w));
}

engine_errc ep_set_vbucket_state(engine_handle *h, const void *cookie, uint16_t vbucket,
                                 engine_vbucket_state state)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (vbucket >= e->cfg.max_vbuckets)
        return ep_fail(e, cookie, ENGINE_NOT_MY_VBUCKET, "vbucket %u is out of range",
                       vbucket);
    if (state < ENGINE_VBUCKET_ACTIVE || state > ENGINE_VBUCKET_DEAD)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "unknown vbucket state %d",
                       state);
    atomic_store(&e->vb_state[vbucket], (uint8_t)state);
    return ENGINE_SUCCESS;
}

/* A sweep over one stripe: which items to drop, and what to count. */
typedef struct sweep {
    ep_engine *e;
    const coll_manifest *m; /* the stripe's view, set per stripe */
    engine_rel_time now;
    uint64_t dropped;
    bool (*select)(const struct sweep *w, const ep_item *it);
    bool count_out;       /* take dropped items out of their collection's counters */
    bool persist_deletes; /* write a tombstone for each dropped item (flush) */
} sweep;

static bool sweep_select(ep_item *it, void *ctx)
{
    sweep *w = ctx;
    return w->select(w, it);
}

static void sweep_drop(ep_item *it, void *ctx)
{
    sweep *w = ctx;
    if (w->count_out)
        account(w->m, it, false, NULL);
    if (w->persist_deletes)
        flusher_enqueue_delete(w->e->flusher, it, atomic_fetch_add(&w->e->cas_seq, 1) + 1,
                               NULL);
    w->dropped++;
    ep_item_put(w->e, it);
}

static void sweep_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    sweep *w = ctx;
    w->m = view(s);
    ht_stripe_scan(ht, s, sweep_select, sweep_drop, w);
}

static bool select_all(const sweep *w, const ep_item *it)
{
    (void)w;
    (void)it;
    return true;
}

engine_errc ep_flush(engine_handle *h, const void *cookie)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    int ws = atomic_load(&e->warm_state);
    if (ws != EP_WARM_DONE)
        return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE, "the engine is warming up");
    sweep w = {e, NULL, 0, 0, select_all, true, e->flusher != NULL};
    ht_for_each_stripe(e->ht, sweep_stripe, &w);
    atomic_fetch_add_explicit(&e->flushes, 1, memory_order_relaxed);
    return ENGINE_SUCCESS;
}

/* ---- background sweeps ---- */

static bool select_expired(const sweep *w, const ep_item *it)
{
    return item_expired(it, w->now);
}

static void expire_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    sweep *w = ctx;
    /* Locks that timed out on keys nobody touched since. */
    for (ep_lock **l = (ep_lock **)&s->locks; *l != NULL;) {
        if ((*l)->until <= w->now)
            lock_drop(w->e, l);
        else
            l = &(*l)->next;
    }
    w->dropped = 0;
    sweep_stripe(ht, s, w);
    s->stat[ST_EXPIRED_PAGER] += w->dropped;
}

int64_t ep_pager_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    sweep w = {e, NULL, now(e), 0, select_expired, true, false};
    ht_for_each_stripe(e->ht, expire_stripe, &w);
    atomic_fetch_add_explicit(&e->pager_runs, 1, memory_order_relaxed);
    return (int64_t)e->cfg.exp_pager_interval_ms;
}

/* An item of a dropped collection, or of an earlier incarnation of its id. */
static bool select_orphan(const sweep *w, const ep_item *it)
{
    const coll_collection *c = coll_find_collection(w->m, it->collection);
    return c == NULL || !current_incarnation(c, it);
}

static void purge_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    sweep *w = ctx;
    w->dropped = 0;
    sweep_stripe(ht, s, w);
    s->stat[ST_PURGED] += w->dropped;
}

int64_t ep_purger_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    sweep w = {e, NULL, 0, 0, select_orphan, false, false};
    ht_for_each_stripe(e->ht, purge_stripe, &w);
    atomic_fetch_add_explicit(&e->purger_runs, 1, memory_order_relaxed);
    return EXEC_FOREVER;
}

static void publish_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    (void)ht;
    s->view = ctx;
}

void ep_publish_manifest(ep_engine *e, const coll_manifest *m)
{
    ht_for_each_stripe(e->ht, publish_stripe, (void *)m);
}
