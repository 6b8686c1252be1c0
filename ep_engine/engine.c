/*
 * engine.c - ep_engine's entry point: create_instance, the vtable, config and
 * lifecycle, the KV operations over the hash table, and the stats groups.
 *
 * Every vtable function checks its input at the boundary and answers bad input
 * with an error code and a reason (error context); it never trusts the host's
 * pointers, lengths or ids further than the header's contract allows.
 */
#include "../engine_api.h"
#include "collections/manifest.h"
#include "config.h"
#include "executor/executor.h"
#include "hashtable.h"
#include "item.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EP_VERSION "0.1.0"

/* Counters kept per hash table stripe (ht_stripe.stat), under its lock. */
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
};

typedef struct ep_engine {
    engine_handle iface; /* must stay first: the host's handle points here */
    const engine_server_api *sapi;
    engine_info info;
    ep_config cfg;
    bool init_called; /* initialize runs at most once */
    bool initialized; /* written by initialize, before any data call */

    exec_pool *pool;
    ep_ht *ht;
    exec_task *pager;   /* expiry pager, nonio */
    exec_task *resizer; /* hash table growth, nonio, woken by the table */
    coll_manifest *manifest;

    /* The engine's memory stays until the host has released every item: one
     * reference for the handle, one per live item. */
    _Atomic uint64_t refs;
    _Atomic uint64_t mem_used; /* bytes of live items, counted against max_size */
    _Atomic uint64_t cas_seq;

    /* Counters outside the hash table's stripes. */
    _Atomic uint64_t oom_errors;
    _Atomic uint64_t too_big_errors;
    _Atomic uint64_t pager_runs;
    _Atomic uint64_t flushes;
    _Atomic uint64_t items_allocated;
} ep_engine;

static inline ep_engine *eng(engine_handle *h)
{
    return (ep_engine *)h;
}

/* ---- errors ---- */

/* Leaves a reason for the host (when there is a client) and returns rc. */
__attribute__((format(printf, 4, 5))) static engine_errc
fail(ep_engine *e, const void *cookie, engine_errc rc, const char *fmt, ...)
{
    if (cookie == NULL || e->sapi->cookie.set_error_context == NULL)
        return rc;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    e->sapi->cookie.set_error_context(cookie, reason);
    return rc;
}

static engine_errc not_initialized(ep_engine *e, const void *cookie)
{
    return fail(e, cookie, ENGINE_FAILED, "engine is not initialized");
}

/* ---- items ---- */

static void engine_unref(ep_engine *e);

static void item_free(ep_item *it, void *ctx)
{
    ep_engine *e = ctx;
    atomic_fetch_sub_explicit(&e->mem_used, item_footprint(it->nkey, it->nvalue),
                              memory_order_relaxed);
    free(it);
    engine_unref(e);
}

static void item_put(ep_engine *e, ep_item *it)
{
    if (item_unref(it))
        item_free(it, e);
}

/* Allocates an item with the quota checked; NULL with *rc set on failure. */
static ep_item *item_alloc(ep_engine *e, const void *cookie, const engine_doc_key *key,
                           size_t nvalue, engine_errc *rc)
{
    size_t size = item_footprint(key->len, nvalue);
    uint64_t used = atomic_fetch_add_explicit(&e->mem_used, size, memory_order_relaxed);
    if (used + size > e->cfg.max_size) {
        atomic_fetch_sub_explicit(&e->mem_used, size, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->oom_errors, 1, memory_order_relaxed);
        *rc =
            fail(e, cookie, ENGINE_NO_MEMORY,
                 "memory quota reached: %" PRIu64 " bytes used, item needs %zu, max_size "
                 "is %" PRIu64,
                 used, size, e->cfg.max_size);
        return NULL;
    }
    ep_item *it = malloc(size);
    if (it == NULL) {
        atomic_fetch_sub_explicit(&e->mem_used, size, memory_order_relaxed);
        *rc =
            fail(e, cookie, ENGINE_NO_MEMORY, "out of memory allocating %zu bytes", size);
        return NULL;
    }
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->items_allocated, 1, memory_order_relaxed);
    memset(it, 0, sizeof(*it));
    atomic_init(&it->refs, 1);
    it->nkey = key->len;
    it->collection = key->collection;
    it->nvalue = (uint32_t)nvalue;
    memcpy(it->data, key->bytes, key->len);
    return it;
}

/* ---- boundary checks ---- */

static engine_errc check_collection(ep_engine *e, const void *cookie, uint32_t cid)
{
    if (coll_find_collection(e->manifest, cid) != NULL)
        return ENGINE_SUCCESS;
    if (cookie != NULL && e->sapi->cookie.set_error_manifest_uid != NULL)
        e->sapi->cookie.set_error_manifest_uid(cookie, e->manifest->uid);
    return fail(e, cookie, ENGINE_UNKNOWN_COLLECTION,
                "unknown collection 0x%" PRIx32 " in manifest uid %" PRIx64, cid,
                e->manifest->uid);
}

static engine_errc check_key(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket)
{
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (key == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key is NULL");
    if (key->len == 0)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key is empty");
    if (key->bytes == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key bytes are NULL");
    if (key->len > ENGINE_KEY_MAX_LEN)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                    "key is %u bytes; the limit is %d", key->len, ENGINE_KEY_MAX_LEN);
    if (vbucket >= e->cfg.max_vbuckets)
        return fail(e, cookie, ENGINE_NOT_MY_VBUCKET,
                    "vbucket %u is out of range (max_vbuckets=%" PRIu64 ")", vbucket,
                    e->cfg.max_vbuckets);
    return check_collection(e, cookie, key->collection);
}

static engine_rel_time now(ep_engine *e)
{
    return e->sapi->core.get_current_time();
}

/* Under the stripe lock: the live item at *link, unlinking it if expired. */
static ep_item *live_item(ep_engine *e, ht_stripe *s, ep_item **link)
{
    ep_item *it = *link;
    /* Read the clock only for items that can expire: it is the host's call. */
    if (it == NULL || it->exptime == 0 || !item_expired(it, now(e)))
        return it;
    ht_unlink(s, link);
    s->stat[ST_EXPIRED_ACCESS]++;
    item_put(e, it);
    return NULL;
}

/* ---- vtable: info and lifecycle ---- */

static engine_errc ep_get_info(engine_handle *h, const engine_info **out)
{
    if (out == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    *out = &eng(h)->info;
    return ENGINE_SUCCESS;
}

static int64_t pager_run(exec_task *task, void *arg);
static int64_t resizer_run(exec_task *task, void *arg);

static void ask_grow(void *ctx)
{
    ep_engine *e = ctx;
    exec_wake(e->resizer);
}

static engine_errc ep_initialize(engine_handle *h, const char *config)
{
    ep_engine *e = eng(h);
    char err[256] = "";
    if (e->init_called) {
        e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: initialize called twice");
        return ENGINE_FAILED;
    }
    e->init_called = true;
    ep_config cfg;
    ep_config_defaults(&cfg);
    if (ep_config_parse(&cfg, config, err, sizeof(err)) != 0) {
        e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: %s", err);
        return ENGINE_INVALID_ARGUMENTS;
    }
    e->cfg = cfg;

    exec_config xc = {{(int)cfg.num_reader_threads, (int)cfg.num_writer_threads,
                       (int)cfg.num_auxio_threads, (int)cfg.num_nonio_threads}};
    e->manifest = coll_manifest_epoch();
    if (e->manifest == NULL)
        goto err_oom;
    e->ht = ht_create(cfg.ht_size, cfg.ht_locks, ask_grow, e);
    if (e->ht == NULL)
        goto err_oom;
    e->pool = exec_pool_create(&xc);
    if (e->pool == NULL) {
        snprintf(err, sizeof(err), "cannot start executor threads");
        goto err;
    }
    e->pager = exec_task_new(e->pool, "expiry_pager", EXEC_NONIO, 10, pager_run, NULL, e);
    e->resizer =
        exec_task_new(e->pool, "ht_resizer", EXEC_NONIO, 5, resizer_run, NULL, e);
    if (e->pager == NULL || e->resizer == NULL)
        goto err_oom;
    if (!exec_schedule(e->pager, (int64_t)cfg.exp_pager_interval_ms) ||
        !exec_schedule(e->resizer, EXEC_FOREVER))
        goto err_oom;
    e->initialized = true;
    return ENGINE_SUCCESS;

err_oom:
    snprintf(err, sizeof(err), "out of memory");
err:
    /* destroy() frees what was made; the engine stays uninitialized. */
    e->sapi->log(ENGINE_LOG_ERROR, "ep_engine: initialize failed: %s", err);
    return ENGINE_FAILED;
}

static void engine_unref(ep_engine *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

static void ep_destroy(engine_handle *h, bool force)
{
    (void)force; /* nothing is dirty until persistence exists */
    ep_engine *e = eng(h);
    /* The pool first: after it is gone no task touches the table. */
    exec_pool_destroy(e->pool);
    e->pool = NULL;
    exec_task_put(e->pager);
    exec_task_put(e->resizer);
    e->pager = e->resizer = NULL;
    ht_destroy(e->ht, item_free, e);
    e->ht = NULL;
    coll_manifest_unref(e->manifest);
    e->manifest = NULL;
    e->initialized = false;
    engine_unref(e); /* the handle's reference; items the host holds keep the rest */
}

/* ---- vtable: items ---- */

static engine_errc ep_allocate(engine_handle *h, const void *cookie, engine_item **out,
                               const engine_doc_key *key, size_t nbytes, uint32_t flags,
                               uint32_t exptime, uint8_t datatype, uint16_t vbucket)
{
    ep_engine *e = eng(h);
    if (out == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item out-parameter is NULL");
    engine_errc rc = check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (nbytes > e->cfg.max_item_size) {
        atomic_fetch_add_explicit(&e->too_big_errors, 1, memory_order_relaxed);
        return fail(e, cookie, ENGINE_TOO_BIG,
                    "value is %zu bytes; max_item_size is %" PRIu64, nbytes,
                    e->cfg.max_item_size);
    }
    if (datatype & ~0x07u)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "unknown datatype bits 0x%02x",
                    datatype);
    ep_item *it = item_alloc(e, cookie, key, nbytes, &rc);
    if (it == NULL)
        return rc;
    it->flags = flags;
    it->exptime = exptime ? e->sapi->core.realtime(exptime) : 0;
    it->datatype = datatype;
    it->vbucket = vbucket;
    it->hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    *out = (engine_item *)it;
    return ENGINE_SUCCESS;
}

static void ep_release(engine_handle *h, engine_item *item)
{
    if (item != NULL)
        item_put(eng(h), (ep_item *)item);
}

static engine_errc ep_get(engine_handle *h, const void *cookie, engine_item **out,
                          const engine_doc_key *key, uint16_t vbucket)
{
    ep_engine *e = eng(h);
    if (out == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item out-parameter is NULL");
    engine_errc rc = check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    ht_stripe *s = ht_lock(e->ht, hash);
    ep_item **link =
        ht_find(e->ht, s, hash, vbucket, key->collection, key->bytes, key->len);
    ep_item *it = live_item(e, s, link);
    if (it != NULL) {
        item_ref(it);
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

/* Builds the item an append/prepend stores: the old value and the new, the old
 * item's metadata. */
static ep_item *concat_item(ep_engine *e, const void *cookie, const ep_item *old,
                            const ep_item *add, bool append, engine_errc *rc)
{
    size_t n = (size_t)old->nvalue + add->nvalue;
    if (n > e->cfg.max_item_size) {
        *rc = fail(e, cookie, ENGINE_TOO_BIG,
                   "appended value would be %zu bytes; max_item_size is %" PRIu64, n,
                   e->cfg.max_item_size);
        return NULL;
    }
    engine_doc_key key = {old->collection, old->nkey, old->data};
    ep_item *it = item_alloc(e, cookie, &key, n, rc);
    if (it == NULL)
        return NULL;
    it->flags = old->flags;
    it->exptime = old->exptime;
    it->datatype = old->datatype & add->datatype;
    it->vbucket = old->vbucket;
    it->hash = old->hash;
    const ep_item *first = append ? old : add, *second = append ? add : old;
    memcpy(item_value(it), first->data + first->nkey, first->nvalue);
    memcpy(item_value(it) + first->nvalue, second->data + second->nkey, second->nvalue);
    atomic_store_explicit(&it->stored, 1, memory_order_relaxed);
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

static engine_errc ep_store(engine_handle *h, const void *cookie, engine_item *item,
                            uint64_t *cas_out, engine_store_op op)
{
    ep_engine *e = eng(h);
    ep_item *it = (ep_item *)item;
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (it == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item is NULL");
    if (op < ENGINE_STORE_ADD || op > ENGINE_STORE_CAS)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "unknown store operation %d",
                    op);
    if (op == ENGINE_STORE_ADD && it->cas != 0)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "add takes no CAS");
    if (op == ENGINE_STORE_CAS && it->cas == 0)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                    "CAS store needs a non-zero CAS");
    if (atomic_exchange_explicit(&it->stored, 1, memory_order_acq_rel))
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "item was already stored");
    engine_errc rc = check_collection(e, cookie, it->collection);
    if (rc != ENGINE_SUCCESS)
        goto out_unstore;

    const uint64_t cmp_cas = it->cas;
    ep_item *fresh = NULL, *old = NULL;
    ht_stripe *s = ht_lock(e->ht, it->hash);
    ep_item **link =
        ht_find(e->ht, s, it->hash, it->vbucket, it->collection, it->data, it->nkey);
    ep_item *cur = live_item(e, s, link);
    rc = store_allowed(s, op, cur, cmp_cas);
    if (rc == ENGINE_SUCCESS) {
        ep_item *put = it;
        if (op == ENGINE_STORE_APPEND || op == ENGINE_STORE_PREPEND) {
            fresh = concat_item(e, cookie, cur, it, op == ENGINE_STORE_APPEND, &rc);
            put = fresh;
        }
        if (put != NULL) {
            put->cas =
                atomic_fetch_add_explicit(&e->cas_seq, 1, memory_order_relaxed) + 1;
            if (put != it)
                it->cas = put->cas;
            old = ht_replace(e->ht, s, link, put);
            s->stat[ST_STORES]++;
            s->stat[ST_TOTAL_ITEMS]++;
            if (cas_out != NULL)
                *cas_out = put->cas;
        }
    }
    if (rc != ENGINE_SUCCESS)
        s->stat[ST_STORE_FAILS]++;
    ht_unlock(s);
    if (old != NULL)
        item_put(e, old);
    if (fresh != NULL)
        item_put(e, fresh); /* the table holds it now */
    if (rc == ENGINE_SUCCESS)
        return rc;
    if (rc == ENGINE_KEY_EXISTS)
        rc = fail(e, cookie, rc, op == ENGINE_STORE_ADD ? "key exists" : "CAS mismatch");
    else if (rc == ENGINE_NOT_STORED)
        rc = fail(e, cookie, rc, "key does not exist");
    else if (rc == ENGINE_NO_SUCH_KEY)
        rc = fail(e, cookie, rc, "key does not exist (CAS given)");
out_unstore:
    /* Nothing was stored: the host may try the same item again. */
    atomic_store_explicit(&it->stored, 0, memory_order_release);
    return rc;
}

static engine_errc ep_remove(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                             uint64_t *cas_out)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    ep_item *gone = NULL;
    ht_stripe *s = ht_lock(e->ht, hash);
    ep_item **link =
        ht_find(e->ht, s, hash, vbucket, key->collection, key->bytes, key->len);
    ep_item *cur = live_item(e, s, link);
    if (cur == NULL) {
        rc = ENGINE_NO_SUCH_KEY;
        s->stat[ST_DELETE_MISSES]++;
    } else if (cas != 0 && cur->cas != cas) {
        rc = ENGINE_KEY_EXISTS;
        s->stat[ST_CAS_BADVAL]++;
    } else {
        gone = ht_unlink(s, link);
        s->stat[ST_DELETE_HITS]++;
        if (cas_out != NULL)
            *cas_out =
                atomic_fetch_add_explicit(&e->cas_seq, 1, memory_order_relaxed) + 1;
    }
    ht_unlock(s);
    if (gone != NULL)
        item_put(e, gone);
    if (rc == ENGINE_KEY_EXISTS)
        return fail(e, cookie, rc, "CAS mismatch");
    return rc;
}

static bool match_all(ep_item *it, void *ctx)
{
    (void)it;
    (void)ctx;
    return true;
}

static void drop_item(ep_item *it, void *ctx)
{
    item_put(ctx, it);
}

static void flush_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    ht_stripe_scan(ht, s, match_all, drop_item, ctx);
}

static engine_errc ep_flush(engine_handle *h, const void *cookie)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return not_initialized(e, cookie);
    ht_for_each_stripe(e->ht, flush_stripe, e);
    atomic_fetch_add_explicit(&e->flushes, 1, memory_order_relaxed);
    return ENGINE_SUCCESS;
}

static engine_errc ep_get_item_info(engine_handle *h, const engine_item *item,
                                    engine_item_info *info)
{
    ep_engine *e = eng(h);
    const ep_item *it = (const ep_item *)item;
    if (it == NULL || info == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    info->cas = atomic_load_explicit(&it->stored, memory_order_acquire) ? it->cas : 0;
    info->exptime = it->exptime ? e->sapi->core.abstime(it->exptime) : 0;
    info->flags = it->flags;
    info->datatype = it->datatype;
    info->vbucket = it->vbucket;
    info->key.collection = it->collection;
    info->key.len = it->nkey;
    info->key.bytes = it->data;
    info->value.iov_base = (void *)(it->data + it->nkey);
    info->value.iov_len = it->nvalue;
    return ENGINE_SUCCESS;
}

static void ep_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas)
{
    (void)h;
    ep_item *it = (ep_item *)item;
    if (it != NULL && !atomic_load_explicit(&it->stored, memory_order_acquire))
        it->cas = cas;
}

/* ---- background tasks ---- */

typedef struct expire_ctx {
    ep_engine *e;
    engine_rel_time now;
    uint64_t expired;
} expire_ctx;

static bool is_expired(ep_item *it, void *ctx)
{
    expire_ctx *x = ctx;
    return item_expired(it, x->now);
}

static void drop_expired(ep_item *it, void *ctx)
{
    expire_ctx *x = ctx;
    x->expired++;
    item_put(x->e, it);
}

static void expire_stripe(ep_ht *ht, ht_stripe *s, void *ctx)
{
    expire_ctx *x = ctx;
    x->expired = 0;
    ht_stripe_scan(ht, s, is_expired, drop_expired, x);
    s->stat[ST_EXPIRED_PAGER] += x->expired;
}

static int64_t pager_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    expire_ctx x = {e, now(e), 0};
    ht_for_each_stripe(e->ht, expire_stripe, &x);
    atomic_fetch_add_explicit(&e->pager_runs, 1, memory_order_relaxed);
    return (int64_t)e->cfg.exp_pager_interval_ms;
}

static int64_t resizer_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    if (ht_grow(e->ht) < 0)
        e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: hash table growth: out of memory");
    return EXEC_FOREVER;
}

/* ---- stats ---- */

typedef struct stat_sink {
    engine_add_stat_fn add;
    void *ctx;
} stat_sink;

static void add_str(const char *key, const char *val, void *ctx)
{
    stat_sink *k = ctx;
    k->add(key, (uint16_t)strlen(key), val, (uint32_t)strlen(val), k->ctx);
}

static void add_u64(stat_sink *k, const char *key, uint64_t v)
{
    char val[24];
    snprintf(val, sizeof(val), "%" PRIu64, v);
    add_str(key, val, k);
}

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void stats_default(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, false);
    add_str("ep_version", EP_VERSION, k);
    add_u64(k, "curr_items", hi.items);
    add_u64(k, "total_items", hi.stat[ST_TOTAL_ITEMS]);
    add_u64(k, "mem_used", load(&e->mem_used));
    add_u64(k, "ep_max_size", e->cfg.max_size);
    add_u64(k, "cmd_get", hi.stat[ST_GET_HITS] + hi.stat[ST_GET_MISSES]);
    add_u64(k, "get_hits", hi.stat[ST_GET_HITS]);
    add_u64(k, "get_misses", hi.stat[ST_GET_MISSES]);
    add_u64(k, "cmd_set", hi.stat[ST_STORES] + hi.stat[ST_STORE_FAILS]);
    add_u64(k, "store_failures", hi.stat[ST_STORE_FAILS]);
    add_u64(k, "cas_hits", hi.stat[ST_CAS_HITS]);
    add_u64(k, "cas_badval", hi.stat[ST_CAS_BADVAL]);
    add_u64(k, "cas_misses", hi.stat[ST_CAS_MISSES]);
    add_u64(k, "delete_hits", hi.stat[ST_DELETE_HITS]);
    add_u64(k, "delete_misses", hi.stat[ST_DELETE_MISSES]);
    add_u64(k, "expired_access", hi.stat[ST_EXPIRED_ACCESS]);
    add_u64(k, "expired_pager", hi.stat[ST_EXPIRED_PAGER]);
    add_u64(k, "ep_expired_total",
            hi.stat[ST_EXPIRED_ACCESS] + hi.stat[ST_EXPIRED_PAGER]);
    add_u64(k, "ep_pager_runs", load(&e->pager_runs));
    add_u64(k, "ep_oom_errors", load(&e->oom_errors));
    add_u64(k, "ep_too_big_errors", load(&e->too_big_errors));
    add_u64(k, "ep_flushes", load(&e->flushes));
    add_u64(k, "ep_max_vbuckets", e->cfg.max_vbuckets);
    add_u64(k, "ep_manifest_uid", e->manifest->uid);
}

static void stats_memory(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, false);
    add_u64(k, "mem_used", load(&e->mem_used));
    add_u64(k, "ep_max_size", e->cfg.max_size);
    add_u64(k, "ep_max_item_size", e->cfg.max_item_size);
    add_u64(k, "ep_items_allocated", load(&e->items_allocated));
    add_u64(k, "ep_item_overhead_bytes", sizeof(ep_item));
    add_u64(k, "ep_ht_memory",
            hi.buckets * sizeof(void *) + hi.stripes * sizeof(ht_stripe));
}

static void stats_hash(ep_engine *e, stat_sink *k)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, true);
    add_u64(k, "ht_items", hi.items);
    add_u64(k, "ht_buckets", hi.buckets);
    add_u64(k, "ht_stripes", hi.stripes);
    add_u64(k, "ht_resizes", hi.resizes);
    add_u64(k, "ht_max_chain", hi.max_chain);
}

static void stats_vbucket(ep_engine *e, stat_sink *k)
{
    char key[32];
    for (uint64_t vb = 0; vb < e->cfg.max_vbuckets; vb++) {
        snprintf(key, sizeof(key), "vb_%" PRIu64, vb);
        add_str(key, "active", k);
    }
}

static engine_errc ep_get_stats(engine_handle *h, const void *cookie, const char *group,
                                engine_add_stat_fn add_stat, void *ctx)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (add_stat == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "add_stat callback is NULL");
    stat_sink k = {add_stat, ctx};
    if (group == NULL || group[0] == '\0')
        stats_default(e, &k);
    else if (strcmp(group, "memory") == 0)
        stats_memory(e, &k);
    else if (strcmp(group, "hash") == 0)
        stats_hash(e, &k);
    else if (strcmp(group, "config") == 0)
        ep_config_stats(&e->cfg, add_str, &k);
    else if (strcmp(group, "tasks") == 0)
        exec_stats(e->pool, add_str, &k);
    else if (strcmp(group, "vbucket") == 0)
        stats_vbucket(e, &k);
    else
        return fail(e, cookie, ENGINE_NO_SUCH_KEY,
                    "unknown stats group '%.64s' (groups: \"\", memory, hash, config, "
                    "tasks, vbucket)",
                    group);
    return ENGINE_SUCCESS;
}

static void ep_reset_stats(engine_handle *h, const void *cookie)
{
    (void)cookie;
    ep_engine *e = eng(h);
    if (!e->initialized)
        return;
    ht_reset_stats(e->ht);
    exec_stats_reset(e->pool);
    atomic_store(&e->oom_errors, 0);
    atomic_store(&e->too_big_errors, 0);
    atomic_store(&e->pager_runs, 0);
    atomic_store(&e->flushes, 0);
}

/* ---- collections ---- */

static engine_errc ep_set_collection_manifest(engine_handle *h, const void *cookie,
                                              const char *json, size_t len)
{
    (void)json;
    (void)len;
    ep_engine *e = eng(h);
    return fail(e, cookie, ENGINE_NOT_SUPPORTED,
                "this ep_engine build cannot change the collections manifest");
}

static engine_errc ep_get_collection_manifest(engine_handle *h, const void *cookie,
                                              engine_output_fn out, void *ctx)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (out == NULL)
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "output callback is NULL");
    char *json = coll_manifest_to_json(e->manifest);
    if (json == NULL)
        return fail(e, cookie, ENGINE_NO_MEMORY, "out of memory printing the manifest");
    out(json, strlen(json), ctx);
    free(json);
    return ENGINE_SUCCESS;
}

static engine_errc resolved(ep_engine *e, const void *cookie, engine_errc rc,
                            const char *why, const char *path, size_t len)
{
    if (rc == ENGINE_SUCCESS)
        return rc;
    if ((rc == ENGINE_UNKNOWN_SCOPE || rc == ENGINE_UNKNOWN_COLLECTION) &&
        cookie != NULL && e->sapi->cookie.set_error_manifest_uid != NULL)
        e->sapi->cookie.set_error_manifest_uid(cookie, e->manifest->uid);
    int shown = path == NULL ? 0 : (int)(len > 100 ? 100 : len);
    return fail(e, cookie, rc, "%s: '%.*s'", why, shown, path ? path : "");
}

static engine_errc ep_get_collection_id(engine_handle *h, const void *cookie,
                                        const char *path, size_t len,
                                        uint64_t *manifest_uid, uint32_t *collection_id)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (manifest_uid == NULL || collection_id == NULL || (path == NULL && len > 0))
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "NULL argument");
    const char *why = "";
    *manifest_uid = e->manifest->uid;
    engine_errc rc = coll_resolve_collection(e->manifest, path, len, collection_id, &why);
    return resolved(e, cookie, rc, why, path, len);
}

static engine_errc ep_get_scope_id(engine_handle *h, const void *cookie, const char *path,
                                   size_t len, uint64_t *manifest_uid, uint32_t *scope_id)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return not_initialized(e, cookie);
    if (manifest_uid == NULL || scope_id == NULL || (path == NULL && len > 0))
        return fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "NULL argument");
    const char *why = "";
    *manifest_uid = e->manifest->uid;
    engine_errc rc = coll_resolve_scope(e->manifest, path, len, scope_id, &why);
    return resolved(e, cookie, rc, why, path, len);
}

static void ep_disconnect(engine_handle *h, const void *cookie)
{
    /* Nothing is kept on a cookie by this engine's synchronous calls. */
    (void)h;
    (void)cookie;
}

/* ---- entry point ---- */

__attribute__((visibility("default"))) engine_errc
create_instance(uint64_t interface, engine_get_server_api_fn get_server_api,
                engine_handle **handle)
{
    if (handle == NULL || get_server_api == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    if (interface < ENGINE_API_VERSION_1)
        return ENGINE_NOT_SUPPORTED;
    const engine_server_api *sapi = get_server_api();
    if (sapi == NULL || sapi->interface_version < 1 ||
        sapi->core.get_current_time == NULL || sapi->core.realtime == NULL ||
        sapi->core.abstime == NULL || sapi->log == NULL)
        return ENGINE_INVALID_ARGUMENTS;

    ep_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ENGINE_NO_MEMORY;
    e->sapi = sapi;
    atomic_init(&e->refs, 1);
    ep_config_defaults(&e->cfg);
    e->info.description = "ep_engine " EP_VERSION;
    e->info.features = ENGINE_FEATURE_CAS;
    e->info.max_key_len = ENGINE_KEY_MAX_LEN;

    engine_handle *v = &e->iface;
    v->interface = ENGINE_API_VERSION_1;
    v->get_info = ep_get_info;
    v->initialize = ep_initialize;
    v->destroy = ep_destroy;
    v->allocate = ep_allocate;
    v->release = ep_release;
    v->get = ep_get;
    v->store = ep_store;
    v->remove = ep_remove;
    v->flush = ep_flush;
    v->get_stats = ep_get_stats;
    v->reset_stats = ep_reset_stats;
    v->get_item_info = ep_get_item_info;
    v->item_set_cas = ep_item_set_cas;
    v->set_collection_manifest = ep_set_collection_manifest;
    v->get_collection_manifest = ep_get_collection_manifest;
    v->get_collection_id = ep_get_collection_id;
    v->get_scope_id = ep_get_scope_id;
    v->disconnect = ep_disconnect;
    *handle = v;
    return ENGINE_SUCCESS;
}
