/*
 * core.c - the engine's floor: errors for the host, the engine's references,
 * and the life of an item (allocate, link, unlink, put) with the collection
 * counters it moves.
 */
#include "core.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

engine_errc ep_fail(ep_engine *e, const void *cookie, engine_errc rc, const char *fmt,
                    ...)
{
    if (cookie == NULL)
        return rc;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    cookie_set_reason(e->sapi, cookie, reason);
    return rc;
}

void ep_engine_unref(ep_engine *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    arena_destroy(e->arena); /* the last item held the last reference */
    free(e);
}

engine_errc ep_not_initialized(ep_engine *e, const void *cookie)
{
    return ep_fail(e, cookie, ENGINE_FAILED, "engine is not initialized");
}

engine_rel_time ep_now(ep_engine *e)
{
    return e->sapi->core.get_current_time();
}

/* ---- items ---- */

void ep_item_free(ep_item *it, void *engine)
{
    ep_engine *e = engine;
    if (item_evicted(it))
        atomic_fetch_sub_explicit(&e->non_resident, 1, memory_order_relaxed);
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
        if (e->pressure != NULL) {
            /* Values on disk can make room: ask for it, and for a retry. */
            e->pressure(e->pressure_ctx, used);
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
    if (e->pressure != NULL)
        e->pressure(e->pressure_ctx, used + size);
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
        if (e->pressure != NULL)
            e->pressure(e->pressure_ctx, used + block);
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

const coll_collection *ep_collection_locked(const ht_stripe *s, uint32_t cid,
                                            uint64_t *uid)
{
    const coll_manifest *m = s->view;
    const coll_collection *c = coll_find_collection(m, cid);
    if (c == NULL)
        *uid = m->uid;
    return c;
}

engine_errc ep_unknown_collection(ep_engine *e, const void *cookie, uint32_t cid,
                                  uint64_t uid)
{
    if (cookie != NULL)
        e->sapi->cookie.set_error_manifest_uid(cookie, uid);
    return ep_fail(e, cookie, ENGINE_UNKNOWN_COLLECTION,
                   "unknown collection 0x%" PRIx32 " in manifest uid %" PRIx64, cid, uid);
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

void ep_account(const coll_manifest *m, const ep_item *it, bool in, ep_coll_tally *t)
{
    const coll_collection *c = coll_find_collection(m, it->collection);
    if (c == NULL || !ep_current_incarnation(c, it))
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
        ep_account(s->view, old, false, t);
    ep_account(s->view, it, true, t);
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
    ep_account(s->view, *link, false, t);
    return ht_unlink(s, link);
}

bool ep_record_is(const kvs_record *r, const ep_item *it)
{
    return r->type == KVS_SET && r->cas == it->cas && r->vbucket == it->vbucket &&
           r->collection == it->collection && r->nkey == it->nkey &&
           r->nvalue == it->nvalue && memcmp(r->key, it->data, it->nkey) == 0;
}

ep_item *ep_item_copy_meta(ep_engine *e, const ep_item *like, size_t bytes)
{
    ep_item *it = malloc(bytes);
    if (it == NULL)
        return NULL;
    atomic_fetch_add_explicit(&e->mem_used, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->items_allocated, 1, memory_order_relaxed);
    memset(it, 0, sizeof(*it));
    atomic_init(&it->refs, 1);
    it->cas = like->cas;
    it->flags = like->flags;
    it->exptime = like->exptime;
    it->collection = like->collection;
    it->nvalue = like->nvalue;
    it->vbucket = like->vbucket;
    it->nkey = like->nkey;
    memcpy(it->data, like->data, like->nkey);
    return it;
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
