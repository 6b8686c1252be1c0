/*
 * kv.c - the data operations of the vtable: allocate, get, store, remove,
 * flush, durable writes, vbucket states, item locks. The sweeps that clean up
 * after them are pager.c and purger.c; kv.h says how operations see
 * collections.
 */
#include "kv.h"
#include "../evict/evict.h"
#include "../flusher/flusher.h"
#include "../subdoc/xattr.h"
#include "locks.h"
#include "ops.h"
#include "sweep.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

engine_errc kv_check_key(ep_engine *e, const void *cookie, const engine_doc_key *key,
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
    if (!ep_current_incarnation(c, it)) {
        s->stat[ST_PURGED]++;
    } else if (it->exptime != 0 && item_expired(it, ep_now(e))) {
        s->stat[ST_EXPIRED_ACCESS]++;
        ep_account(s->view, it, false, NULL);
    } else {
        return it;
    }
    ep_item_put(e, ht_unlink(s, link));
    return NULL;
}

/* Locks the key's stripe and finds its live item; on an unknown collection the
 * stripe is unlocked again and the error returned. */
static engine_errc find_live(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket, uint64_t hash, key_place *p)
{
    uint64_t uid = 0;
    p->s = ht_lock(e->ht, hash);
    p->c = ep_collection_locked(p->s, key->collection, &uid);
    if (p->c == NULL) {
        ht_unlock(p->s);
        return ep_unknown_collection(e, cookie, key->collection, uid);
    }
    p->link = ht_find(e->ht, p->s, hash, vbucket, key->collection, key->bytes, key->len);
    p->it = live_item(e, p->s, p->link, p->c);
    return ENGINE_SUCCESS;
}

/* ---- allocate / release / info ---- */

static engine_errc check_out_and_key(ep_engine *e, const void *cookie, engine_item **out,
                                     const engine_doc_key *key, uint16_t vbucket)
{
    if (out == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item out-parameter is NULL");
    return kv_check_key(e, cookie, key, vbucket);
}

engine_errc kv_allocate(engine_handle *h, const void *cookie, engine_item **out,
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
    bool known = ep_collection_locked(s, key->collection, &uid) != NULL;
    ht_unlock(s);
    if (!known)
        return ep_unknown_collection(e, cookie, key->collection, uid);

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

void kv_release(engine_handle *h, engine_item *item)
{
    if (item != NULL)
        ep_item_put(eng(h), (ep_item *)item);
}

engine_errc kv_get_item_info(engine_handle *h, const engine_item *item,
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
        if (*link != NULL && (*link)->cas == it->cas && kv_lock_of(e, s, *link) != NULL)
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

void kv_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas)
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
engine_errc kv_find_resident(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket, uint64_t hash, key_place *p)
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
        rc = evict_bg_fetch(e->evictor, cookie, vbucket, key->collection, key->bytes,
                            key->len);
        if (rc != ENGINE_SUCCESS)
            return rc;
    }
}

engine_errc kv_get(engine_handle *h, const void *cookie, engine_item **out,
                   const engine_doc_key *key, uint16_t vbucket)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_out_and_key(e, cookie, out, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = kv_find_resident(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    return got(p.s, p.c, p.it, out, e->evictor != NULL);
}

engine_errc kv_get_locked(engine_handle *h, const void *cookie, engine_item **out,
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
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = kv_find_resident(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (p.it != NULL && kv_lock_of(e, p.s, p.it) != NULL) {
        ht_unlock(p.s);
        return ep_fail(e, cookie, ENGINE_LOCKED, "the document is locked already");
    }
    if (p.it != NULL && !kv_lock_add(e, p.s, p.it, lock_timeout_s, lock_cas)) {
        ht_unlock(p.s);
        return ep_fail(e, cookie, ENGINE_NO_MEMORY, "out of memory for a lock");
    }
    return got(p.s, p.c, p.it, out, e->evictor != NULL);
}

engine_errc kv_unlock(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint16_t vbucket, uint64_t lock_cas)
{
    ep_engine *e = eng(h);
    engine_errc rc = kv_check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    key_place p;
    rc = find_live(e, cookie, key, vbucket, hash, &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    kv_lock *lock = kv_lock_of(e, p.s, p.it);
    if (p.it == NULL)
        rc = ENGINE_NO_SUCH_KEY;
    else if (lock == NULL)
        rc = ENGINE_NOT_LOCKED;
    else if (lock->lock_cas != lock_cas)
        rc = ENGINE_LOCKED;
    else
        kv_lock_end(e, p.s, p.it);
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

/* The extended attributes of a resident item: the section's size (0: none). */
static size_t xattr_len(const ep_item *it)
{
    return item_datatype(it) & ENGINE_DATATYPE_XATTR
               ? xa_size(it->data + it->nkey, it->nvalue)
               : 0;
}

/* Whether a store of `it` over `cur` builds a new item from both: an
 * append/prepend (the old value and the new), or a plain store over a
 * document with attributes (they are kept, as a host's plain set keeps them). */
static bool store_merges(const ep_item *cur, const ep_item *it, engine_store_op op)
{
    if (op == ENGINE_STORE_APPEND || op == ENGINE_STORE_PREPEND)
        return true;
    return cur != NULL && op != ENGINE_STORE_ADD &&
           (item_datatype(cur) & ENGINE_DATATYPE_XATTR) &&
           !(item_datatype(it) & ENGINE_DATATYPE_XATTR);
}

/* Builds the item a merging store puts in place of `old`: the old value's
 * attribute section, then for an append/prepend its body and the new bytes
 * joined (the old item's metadata), for a plain store the new body (the new
 * item's metadata). NULL with the reason in *rc when it cannot be built. */
static ep_item *merged_item(ep_engine *e, const void *cookie, const ep_item *old,
                            const ep_item *add, engine_store_op op, engine_errc *rc)
{
    const char *oval = old->data + old->nkey, *aval = add->data + add->nkey;
    size_t oxlen = xattr_len(old), obody = old->nvalue - oxlen;
    bool concat = op == ENGINE_STORE_APPEND || op == ENGINE_STORE_PREPEND;
    size_t n = oxlen + (concat ? obody : 0) + add->nvalue;
    if (n > e->cfg.max_item_size) {
        *rc = ep_fail(e, cookie, ENGINE_TOO_BIG,
                      "%s would be %zu bytes; max_item_size is %" PRIu64,
                      concat ? "the joined value" : "the value with the kept attributes",
                      n, e->cfg.max_item_size);
        return NULL;
    }
    engine_doc_key key = {old->collection, old->nkey, old->data};
    ep_item *it = ep_item_alloc(e, cookie, &key, n, rc);
    if (it == NULL)
        return NULL;
    const ep_item *meta = concat ? old : add;
    it->flags = meta->flags;
    it->exptime = meta->exptime;
    it->vbucket = old->vbucket;
    /* Joined, the body is JSON only if both parts were. */
    uint8_t body = concat ? item_datatype(old) & item_datatype(add) : item_datatype(add);
    item_init_datatype(it, (body & ENGINE_DATATYPE_JSON) |
                               (item_datatype(old) & ENGINE_DATATYPE_XATTR));
    char *w = item_value(it);
    memcpy(w, oval, oxlen);
    w += oxlen;
    if (!concat) {
        memcpy(w, aval, add->nvalue);
    } else if (op == ENGINE_STORE_APPEND) {
        memcpy(w, oval + oxlen, obody);
        memcpy(w + obody, aval, add->nvalue);
    } else {
        memcpy(w, aval, add->nvalue);
        memcpy(w + add->nvalue, oval + oxlen, obody);
    }
    item_mark_stored(it);
    return it;
}

/* Writes the item's CAS where ${Mutation.CAS} asked for it: 16 lowercase hex
 * digits of the CAS's bytes reversed (kv_engine's form, which clients read
 * back byte-swapped). */
static void write_cas_macros(ep_item *it, const kv_store_extra *extra)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = __builtin_bswap64(it->cas);
    for (unsigned i = 0; i < extra->ncas_at; i++) {
        char *w = item_value(it) + extra->cas_at[i];
        for (int d = 15; d >= 0; d--)
            w[15 - d] = hex[(v >> (d * 4)) & 0xf];
    }
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
    engine_rel_time cap = ep_now(e) + c->max_ttl;
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
        return kv_locked(e, cookie);
    default:
        return rc; /* the reason is already set */
    }
}

/* store(), with an optional durable waiter (the flusher finishes it once the
 * write is on disk). */
engine_errc kv_do_store(ep_engine *e, const void *cookie, ep_item *it, uint64_t *cas_out,
                        engine_store_op op, ep_waiter *waiter,
                        const kv_store_extra *extra)
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
    if ((item_datatype(it) & ENGINE_DATATYPE_XATTR) && extra == NULL) {
        size_t xlen;
        const char *why;
        if (op == ENGINE_STORE_APPEND || op == ENGINE_STORE_PREPEND)
            return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                           "an append or prepend takes no attribute section");
        if (!xa_check(it->data + it->nkey, it->nvalue, &xlen, &why))
            return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                           "the value's attribute section is invalid: %s", why);
    }
    if (item_mark_stored(it))
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item was already stored");
    int fetches = 0;
again:;
    const uint64_t cmp_cas = it->cas;
    uint64_t uid = 0;
    ep_item *fresh = NULL, *old = NULL;
    uint64_t hash = ht_hash(it->vbucket, it->collection, it->data, it->nkey);
    ht_stripe *s = ht_lock(e->ht, hash);
    const coll_collection *c = ep_collection_locked(s, it->collection, &uid);
    if (c == NULL) {
        ht_unlock(s);
        rc = ep_unknown_collection(e, cookie, it->collection, uid);
        goto out_unstore;
    }
    ep_item **link =
        ht_find(e->ht, s, hash, it->vbucket, it->collection, it->data, it->nkey);
    ep_item *cur = live_item(e, s, link, c);
    kv_lock *lock = op == ENGINE_STORE_ADD ? NULL : kv_lock_of(e, s, cur);
    /* The lock's CAS stands for the version it locks. */
    rc = lock != NULL && cmp_cas != lock->lock_cas
             ? ENGINE_LOCKED
             : store_allowed(s, op, cur, lock != NULL ? cur->cas : cmp_cas);
    ep_item *put = it;
    bool merge = rc == ENGINE_SUCCESS && extra == NULL && store_merges(cur, it, op);
    if (merge && (item_datatype(it) & ENGINE_DATATYPE_SNAPPY)) {
        ht_unlock(s);
        rc = ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                     "a compressed value cannot be joined with the document's attributes "
                     "or body; store it uncompressed");
        goto out_unstore;
    }
    if (merge && item_evicted(cur)) {
        /* The old value is on disk only: bring it back, then store. */
        ht_unlock(s);
        rc = fetches++ == 3 ? ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                                      "the value was evicted again as soon as it was "
                                      "read; memory is short, retry")
                            : evict_bg_fetch(e->evictor, cookie, it->vbucket,
                                             it->collection, it->data, it->nkey);
        if (rc == ENGINE_SUCCESS)
            goto again;
        goto out_unstore;
    }
    if (merge) {
        fresh = merged_item(e, cookie, cur, it, op, &rc);
        put = fresh != NULL ? fresh : it;
    }
    if (rc == ENGINE_SUCCESS && op != ENGINE_STORE_APPEND && op != ENGINE_STORE_PREPEND)
        apply_max_ttl(e, c, put);
    if (rc == ENGINE_SUCCESS) {
        put->cas = atomic_fetch_add_explicit(&e->cas_seq, 1, memory_order_relaxed) + 1;
        it->cas = put->cas;
        if (extra != NULL)
            write_cas_macros(put, extra);
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
            kv_lock_end(e, s, cur); /* the write with the lock's CAS ends it */
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

engine_errc kv_store(engine_handle *h, const void *cookie, engine_item *item,
                     uint64_t *cas_out, engine_store_op op)
{
    return kv_do_store(eng(h), cookie, (ep_item *)item, cas_out, op, NULL, NULL);
}

/* ---- remove / flush ---- */

engine_errc kv_do_remove(ep_engine *e, const void *cookie, const engine_doc_key *key,
                         uint64_t cas, uint16_t vbucket, uint64_t *cas_out,
                         ep_waiter *waiter)
{
    engine_errc rc = kv_check_key(e, cookie, key, vbucket);
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
    kv_lock *lock = kv_lock_of(e, s, cur);
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
                kv_lock_end(e, s, cur);
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
        return kv_locked(e, cookie);
    if (rc == ENGINE_NO_MEMORY)
        return ep_fail(e, cookie, rc,
                       "out of memory queueing the deletion for disk; nothing was "
                       "deleted");
    return rc;
}

engine_errc kv_remove(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint64_t cas, uint16_t vbucket, uint64_t *cas_out)
{
    return kv_do_remove(eng(h), cookie, key, cas, vbucket, cas_out, NULL);
}

/* ---- durable writes ---- */

engine_errc kv_durable_allowed(ep_engine *e, const void *cookie, engine_durability d)
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
    *rc = kv_durable_allowed(e, cookie, d);
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

engine_errc kv_store_durable(engine_handle *h, const void *cookie, engine_item *item,
                             uint64_t *cas_out, engine_store_op op, engine_durability d)
{
    ep_engine *e = eng(h);
    ep_item *it = (ep_item *)item;
    if (d == ENGINE_DURABILITY_NONE || it == NULL)
        return kv_do_store(e, cookie, it, cas_out, op, NULL, NULL);
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
    return durable_result(w, kv_do_store(e, cookie, it, cas_out, op, w, NULL));
}

engine_errc kv_remove_durable(engine_handle *h, const void *cookie,
                              const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                              uint64_t *cas_out, engine_durability d)
{
    ep_engine *e = eng(h);
    if (d == ENGINE_DURABILITY_NONE || key == NULL || key->bytes == NULL)
        return kv_do_remove(e, cookie, key, cas, vbucket, cas_out, NULL);
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
    return durable_result(w, kv_do_remove(e, cookie, key, cas, vbucket, cas_out, w));
}

engine_errc kv_set_vbucket_state(engine_handle *h, const void *cookie, uint16_t vbucket,
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

static bool select_all(const kv_sweep *w, const ep_item *it)
{
    (void)w;
    (void)it;
    return true;
}

engine_errc kv_flush(engine_handle *h, const void *cookie)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    int ws = atomic_load(&e->warm_state);
    if (ws != EP_WARM_DONE)
        return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE, "the engine is warming up");
    kv_sweep w = {e, NULL, 0, 0, select_all, true, e->flusher != NULL};
    ht_for_each_stripe(e->ht, kv_sweep_stripe, &w);
    atomic_fetch_add_explicit(&e->flushes, 1, memory_order_relaxed);
    return ENGINE_SUCCESS;
}
