/*
 * engine.c - ep_engine's entry point: create_instance, the vtable, initialize
 * and destroy, and the collections calls (which hand over to the collections
 * manager). It composes the subsystems (README.md in this folder); none of
 * them calls back into it. Data operations are in kv/, stats in stats.c.
 *
 * Every vtable function checks its input at the boundary and answers bad input
 * with an error code and a reason (error context); it never trusts the host's
 * pointers, lengths or ids further than the header's contract allows.
 */
#include "compactor/compactor.h"
#include "core/core.h"
#include "evict/evict.h"
#include "flusher/flusher.h"
#include "gate.h"
#include "kv/kv.h"
#include "kv/locks.h"
#include "stats.h"
#include "warmup/warmup.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- info and lifecycle ---- */

static engine_errc ep_get_info(engine_handle *h, const engine_info **out)
{
    if (out == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    *out = &eng(h)->info;
    return ENGINE_SUCCESS;
}

/* After a count that found no growth needed, the stripes' asks stay latched for
 * this long: in a warmup of 1M items one stripe or another asked again and
 * again through its last part, and every count locked all the stripes under
 * the readers. The delayed run re-arms the asks first and then counts again,
 * so inserts made while they were latched are in that count and later ones
 * ask anew: at most two counts per delay, and no growth is missed. */
#define HT_RECOUNT_DELAY_MS 10

static int64_t resizer_run(exec_task *task, void *arg)
{
    (void)task;
    ep_engine *e = arg;
    bool recount = e->ht_recount;
    e->ht_recount = false;
    if (recount)
        ht_grow_rearm(e->ht);
    int rc = ht_grow(e->ht);
    if (rc < 0)
        e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: hash table growth: out of memory");
    if (rc == 0 && !recount) {
        e->ht_recount = true;
        return HT_RECOUNT_DELAY_MS;
    }
    return EXEC_FOREVER;
}

static void ask_grow(void *ctx)
{
    ep_engine *e = ctx;
    exec_wake(e->resizer);
}

/* The collections manager's view of the engine. */
static void coll_publish(void *ctx, const coll_manifest *m)
{
    ep_publish_manifest(ctx, m);
}

static uint64_t coll_cas_now(void *ctx)
{
    ep_engine *e = ctx;
    return atomic_load(&e->cas_seq);
}

static bool coll_closing(void *ctx)
{
    ep_engine *e = ctx;
    return atomic_load(&e->closing);
}

static void coll_dropped(void *ctx)
{
    ep_engine *e = ctx;
    exec_wake(e->purger);
}

/* ---- the item-count hint ----
 * A clean (not forced) shutdown leaves the number of items in
 * <dbname>/ep_items.hint; the next start reads it, removes it (a crash later
 * leaves none to go stale) and sizes the hash table for that many, so warmup
 * does not grow it step by step (growing is a large part of warmup's time,
 * BENCHMARKS.md). Only a hint: missing, unreadable or too big to allocate,
 * the table starts at ht_size and grows as usual. */

#define ITEMS_HINT "ep_items.hint"

static uint64_t read_items_hint(ep_engine *e)
{
    char path[sizeof(e->cfg.dbname) + 32], buf[32] = "";
    snprintf(path, sizeof(path), "%s/%s", e->cfg.dbname, ITEMS_HINT);
    int fd = io_open(e->io, path, O_RDONLY, 0);
    if (fd < 0)
        return 0;
    ssize_t n = io_pread(e->io, fd, buf, sizeof(buf) - 1, 0);
    io_close(e->io, fd);
    io_unlink(e->io, path);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    return end != buf && *end == '\n' ? (uint64_t)v : 0;
}

static void write_items_hint(ep_engine *e)
{
    ht_info hi;
    ht_get_info(e->ht, &hi, false);
    char path[sizeof(e->cfg.dbname) + 32], buf[32];
    snprintf(path, sizeof(path), "%s/%s", e->cfg.dbname, ITEMS_HINT);
    int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", hi.items);
    int fd = io_open(e->io, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    if (io_write_all(e->io, fd, buf, (size_t)len) != 0)
        e->sapi->log(ENGINE_LOG_INFO, "ep_engine: could not write %s", path);
    io_close(e->io, fd);
}

/* ht_size, doubled until it holds `items` at a load of one, within what the
 * memory quota can hold (an evicted item takes at least 49 bytes). */
static uint64_t initial_buckets(const ep_config *cfg, uint64_t items)
{
    uint64_t b = cfg->ht_size, most = cfg->max_size / 49;
    while (b < items && b < most && b < (UINT64_C(1) << 32))
        b *= 2;
    return b;
}

static bool start_task(ep_engine *e, exec_task **slot, const char *name, int priority,
                       exec_run_fn run, int64_t first_delay_ms)
{
    *slot = exec_task_new(e->pool, name, EXEC_NONIO, priority, run, NULL, e);
    return *slot != NULL && exec_schedule(*slot, first_delay_ms);
}

static engine_errc ep_initialize(engine_handle *h, const char *config)
{
    ep_engine *e = eng(h);
    char err[1024] = "";
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
    uint64_t hint = e->io != NULL && cfg.dbname[0] != '\0' ? read_items_hint(e) : 0;
    e->ht = ht_create(initial_buckets(&cfg, hint), cfg.ht_locks, ask_grow, e);
    if (e->ht == NULL && hint != 0)
        e->ht = ht_create(cfg.ht_size, cfg.ht_locks, ask_grow, e);
    if (e->io == NULL || e->ht == NULL)
        goto err_oom;
    e->pool = exec_pool_create(&xc);
    if (e->pool == NULL) {
        snprintf(err, sizeof(err), "cannot start executor threads");
        goto err;
    }
    /* Before warmup: its reader tasks fill the table and ask it to grow. */
    if (!start_task(e, &e->resizer, "ht_resizer", 5, resizer_run, EXEC_FOREVER))
        goto err_oom;
    coll_env env = {
        .sapi = e->sapi,
        .pool = e->pool,
        .io = e->io,
        .waiters = e->waiters,
        .dir = e->cfg.dbname,
        .limits = {cfg.max_scopes, cfg.max_collections, 0},
        .ctx = e,
        .publish = coll_publish,
        .cas_now = coll_cas_now,
        .dropped = coll_dropped,
        .closing = coll_closing,
    };
    uint64_t max_cas = 0;
    e->coll = coll_manager_create(&env, &max_cas, err, sizeof(err));
    if (e->coll == NULL)
        goto err;
    /* Items stored from now on must be newer than every incarnation on file. */
    atomic_store(&e->cas_seq, max_cas);
    coll_manifest *m = coll_manager_get(e->coll);
    ep_publish_manifest(e, m);
    coll_manifest_unref(m);

    e->vb_state = calloc(cfg.max_vbuckets, sizeof(*e->vb_state));
    if (e->vb_state == NULL)
        goto err_oom;
    for (uint64_t vb = 0; vb < cfg.max_vbuckets; vb++)
        atomic_init(&e->vb_state[vb], (uint8_t)ENGINE_VBUCKET_ACTIVE);
    if (cfg.dbname[0] != '\0') {
        e->store = kvs_open(e->io, cfg.dbname, (unsigned)cfg.num_shards,
                            cfg.segment_max_bytes, err, sizeof(err));
        if (e->store == NULL)
            goto err;
        e->compacting = calloc(kvs_shards(e->store), sizeof(*e->compacting));
        e->flusher = flusher_create(e);
        e->compactor = compactor_create(e);
        e->evictor = evict_create(e);
        e->warmup = warmup_create(e);
        if (e->compacting == NULL || e->flusher == NULL || e->compactor == NULL ||
            e->evictor == NULL || e->warmup == NULL)
            goto err_oom;
        /* Before warmup: its items count against the quota and may be evicted. */
        if (!evict_start(e->evictor) || !flusher_start(e->flusher) ||
            !warmup_start(e->warmup) || !compactor_start(e->compactor))
            goto err_oom;
    } else {
        atomic_store(&e->warm_state, EP_WARM_DONE);
    }

    if (!start_task(e, &e->pager, "expiry_pager", 10, kv_pager_run,
                    (int64_t)cfg.exp_pager_interval_ms) ||
        !start_task(e, &e->purger, "collection_purger", 8, kv_purger_run, EXEC_FOREVER))
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

static void ep_destroy(engine_handle *h, bool force)
{
    ep_engine *e = eng(h);
    atomic_store(&e->closing, true);
    /* Every cookie still waiting is answered by an engine thread before the
     * pool is joined (rule 1 holds at shutdown too): the flusher's shard tasks
     * write what is queued (unless forced) and answer their waiters, the
     * manifest task and the background fetcher answer theirs, all as the pool
     * cancels them. Faults are cleared first so that last batch can be written;
     * then no task starts a run, and a held writer pool is let go. */
    flusher_close(e->flusher, !force && atomic_load(&e->warm_state) == EP_WARM_DONE);
    if (e->io != NULL) {
        char ignored[64];
        io_control(e->io, "clear", ignored, sizeof(ignored));
    }
    exec_pool_stop(e->pool);
    gate_release(e->gate);
    exec_pool_destroy(e->pool);
    e->pool = NULL;
    flusher_destroy(e->flusher);
    e->flusher = NULL;
    if (!force && e->store != NULL && e->ht != NULL &&
        atomic_load(&e->warm_state) == EP_WARM_DONE)
        write_items_hint(e);
    evict_destroy(e->evictor);
    e->evictor = NULL;
    warmup_free(e->warmup);
    e->warmup = NULL;
    compactor_free(e->compactor);
    e->compactor = NULL;
    kvs_close(e->store);
    e->store = NULL;
    free((void *)e->compacting);
    e->compacting = NULL;
    exec_task_put(e->pager);
    exec_task_put(e->resizer);
    exec_task_put(e->purger);
    e->pager = e->resizer = e->purger = NULL;
    gate_destroy(e->gate);
    e->gate = NULL;
    coll_manager_destroy(e->coll);
    e->coll = NULL;
    kv_locks_free(e);
    ht_destroy(e->ht, ep_item_free, e);
    e->ht = NULL;
    io_destroy(e->io);
    e->io = NULL;
    /* Every cookie's work is answered by now: what is left are records of
     * cookies the host never disconnected. */
    waiters_destroy(e->waiters);
    e->waiters = NULL;
    free((void *)e->vb_state);
    e->vb_state = NULL;
    e->initialized = false;
    ep_engine_unref(e); /* the handle's; items the host still holds keep the rest */
}

/* ---- collections ---- */

static engine_errc ep_set_collection_manifest(engine_handle *h, const void *cookie,
                                              const char *json, size_t len)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (cookie == NULL)
        return ENGINE_INVALID_ARGUMENTS; /* no one to notify */
    if (atomic_load(&e->warm_state) != EP_WARM_DONE)
        return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE, "the engine is warming up");
    return coll_manager_set(e->coll, cookie, json, len);
}

static engine_errc ep_get_collection_manifest(engine_handle *h, const void *cookie,
                                              engine_output_fn out, void *ctx)
{
    ep_engine *e = eng(h);
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (out == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "output callback is NULL");
    coll_manifest *m = coll_manager_get(e->coll);
    char *json = coll_manifest_to_json(m, false);
    coll_manifest_unref(m);
    if (json == NULL)
        return ep_fail(e, cookie, ENGINE_NO_MEMORY,
                       "out of memory printing the manifest");
    out(json, strlen(json), ctx);
    free(json);
    return ENGINE_SUCCESS;
}

typedef engine_errc (*resolve_fn)(const coll_manifest *m, const char *path, size_t len,
                                  uint32_t *id, const char **why);

/* get_collection_id and get_scope_id: resolve a path against the current
 * manifest, reporting the uid it was judged by. */
static engine_errc resolve_path(ep_engine *e, const void *cookie, resolve_fn resolve,
                                const char *path, size_t len, uint64_t *uid, uint32_t *id)
{
    if (!e->initialized)
        return ep_not_initialized(e, cookie);
    if (uid == NULL || id == NULL || (path == NULL && len > 0))
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "NULL argument");
    const char *why = "";
    coll_manifest *m = coll_manager_get(e->coll);
    *uid = m->uid;
    engine_errc rc = resolve(m, path, len, id, &why);
    coll_manifest_unref(m);
    if (rc == ENGINE_SUCCESS)
        return rc;
    if ((rc == ENGINE_UNKNOWN_SCOPE || rc == ENGINE_UNKNOWN_COLLECTION) && cookie != NULL)
        e->sapi->cookie.set_error_manifest_uid(cookie, *uid);
    int shown = path == NULL ? 0 : (int)(len > 100 ? 100 : len);
    return ep_fail(e, cookie, rc, "%s: '%.*s'", why, shown, path ? path : "");
}

static engine_errc ep_get_collection_id(engine_handle *h, const void *cookie,
                                        const char *path, size_t len,
                                        uint64_t *manifest_uid, uint32_t *collection_id)
{
    return resolve_path(eng(h), cookie, coll_resolve_collection, path, len, manifest_uid,
                        collection_id);
}

static engine_errc ep_get_scope_id(engine_handle *h, const void *cookie, const char *path,
                                   size_t len, uint64_t *manifest_uid, uint32_t *scope_id)
{
    return resolve_path(eng(h), cookie, coll_resolve_scope, path, len, manifest_uid,
                        scope_id);
}

static void ep_disconnect(engine_handle *h, const void *cookie)
{
    ep_engine *e = eng(h);
    if (!e->initialized || cookie == NULL)
        return;
    waiter_disconnect(e->waiters, cookie);
}

/* ---- entry point ---- */

/* The first member of the server API that a v1 host must fill in and did not
 * (every member is required: the engine calls each of them unchecked), or
 * NULL if it is whole. */
static const char *server_api_missing(const engine_server_api *a)
{
    if (a == NULL)
        return "everything (get_server_api returned NULL)";
    if (a->interface_version < 1)
        return "a version (interface_version is 0)";
    const struct {
        const char *name;
        bool present;
    } members[] = {
        {"core.get_current_time", a->core.get_current_time != NULL},
        {"core.realtime", a->core.realtime != NULL},
        {"core.abstime", a->core.abstime != NULL},
        {"log", a->log != NULL},
        {"cookie.store_engine_specific", a->cookie.store_engine_specific != NULL},
        {"cookie.get_engine_specific", a->cookie.get_engine_specific != NULL},
        {"cookie.notify_io_complete", a->cookie.notify_io_complete != NULL},
        {"cookie.reserve", a->cookie.reserve != NULL},
        {"cookie.release", a->cookie.release != NULL},
        {"cookie.set_error_context", a->cookie.set_error_context != NULL},
        {"cookie.set_error_manifest_uid", a->cookie.set_error_manifest_uid != NULL},
    };
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
        if (!members[i].present)
            return members[i].name;
    return NULL;
}

__attribute__((visibility("default"))) engine_errc
create_instance(uint64_t interface, engine_get_server_api_fn get_server_api,
                engine_handle **handle)
{
    if (handle == NULL || get_server_api == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    if (interface < ENGINE_API_VERSION_1)
        return ENGINE_NOT_SUPPORTED;
    const engine_server_api *sapi = get_server_api();
    const char *missing = server_api_missing(sapi);
    if (missing != NULL) {
        if (sapi != NULL && sapi->log != NULL)
            sapi->log(ENGINE_LOG_ERROR,
                      "ep_engine: the host's server API lacks %s, which every host "
                      "must provide (engine_api.h); refusing to start",
                      missing);
        return ENGINE_INVALID_ARGUMENTS;
    }

    ep_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ENGINE_NO_MEMORY;
    /* The file layer exists before initialize, so a test can arm a fault for
     * what initialize does (creating the data directory, reading the files). */
    e->io = io_create();
    e->waiters = waiters_create(sapi);
    e->gate = gate_create();
    if (e->io == NULL || e->waiters == NULL || e->gate == NULL) {
        io_destroy(e->io);
        waiters_destroy(e->waiters);
        gate_destroy(e->gate);
        free(e);
        return ENGINE_NO_MEMORY;
    }
    e->sapi = sapi;
    atomic_init(&e->refs, 1);
    ep_config_defaults(&e->cfg);
    e->info.description = "ep_engine " EP_VERSION;
    e->info.features =
        ENGINE_FEATURE_CAS | ENGINE_FEATURE_COLLECTIONS | ENGINE_FEATURE_PERSISTENT;
    e->info.max_key_len = ENGINE_KEY_MAX_LEN;

    engine_handle *v = &e->iface;
    /* The newest version we offer that the host knows. */
    v->interface = interface >= ENGINE_API_VERSION_4   ? ENGINE_API_VERSION_4
                   : interface >= ENGINE_API_VERSION_3 ? ENGINE_API_VERSION_3
                   : interface >= ENGINE_API_VERSION_2 ? ENGINE_API_VERSION_2
                                                       : ENGINE_API_VERSION_1;
    v->get_info = ep_get_info;
    v->initialize = ep_initialize;
    v->destroy = ep_destroy;
    v->allocate = kv_allocate;
    v->release = kv_release;
    v->get = kv_get;
    v->store = kv_store;
    v->remove = kv_remove;
    v->flush = kv_flush;
    v->get_stats = stats_get;
    v->reset_stats = stats_reset;
    v->get_item_info = kv_get_item_info;
    v->item_set_cas = kv_item_set_cas;
    v->set_collection_manifest = ep_set_collection_manifest;
    v->get_collection_manifest = ep_get_collection_manifest;
    v->get_collection_id = ep_get_collection_id;
    v->get_scope_id = ep_get_scope_id;
    v->disconnect = ep_disconnect;
    v->store_durable = kv_store_durable;
    v->remove_durable = kv_remove_durable;
    v->set_vbucket_state = kv_set_vbucket_state;
    v->get_locked = kv_get_locked;
    v->unlock = kv_unlock;
    v->subdoc_lookup = kv_subdoc_lookup;
    v->subdoc_mutate = kv_subdoc_mutate;
    *handle = v;
    return ENGINE_SUCCESS;
}
