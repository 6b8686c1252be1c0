/*
 * ewouldblock_engine - an interposer engine for testing hosts: it loads a real
 * engine and passes every call through, except that it can turn calls into
 * would_block with a notify of its choosing.
 *
 * Its own configuration keys come first in the config string; the rest goes to
 * the real engine:
 *   ewb_engine=PATH     the real engine .so (required)
 *   ewb_mode=MODE       pass (default) | delay | status | never | fail
 *   ewb_ms=N            delay: answer would_block, notify success after N ms,
 *                       and pass the host's re-call to the real engine
 *   ewb_status=HEX      status: answer would_block, then notify this status
 *                       (the host must not re-call); fail: return it directly
 *   ewb_every=N         status / never / fail: only every Nth call (default 1)
 *   ewb_only=N          only the Nth call (counting the calls of ewb_ops)
 *   ewb_ops=LIST        which calls: manifest,get,store,remove,allocate,durable
 *                       (default manifest; allocate takes fail only; durable is
 *                       store_durable and remove_durable, with ewb_version=2)
 *   ewb_version=N       the interface it offers: 1 (default: poses as an engine
 *                       without durable writes) or 2 (passes durable writes and
 *                       vbucket states through, not interposed). Set at
 *                       initialize, so only for a host that reads the version
 *                       after it (kvhost reads it per command), and only when
 *                       the host asked for 2 or more.
 *   ewb_double=1        delay / status: notify twice (a broken engine)
 *   ewb_log_disconnect=1  logs "ewb: disconnect" (info) for each disconnect
 * "never" answers would_block and never notifies: a broken engine, for testing
 * that a host survives one (its client can only disconnect).
 */
#include "../../engine_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum mode { M_PASS, M_DELAY, M_STATUS, M_NEVER, M_FAIL };
enum {
    OP_MANIFEST = 1,
    OP_GET = 2,
    OP_STORE = 4,
    OP_REMOVE = 8,
    OP_ALLOCATE = 16,
    OP_DURABLE = 32
};

typedef struct ewb {
    engine_handle vt; /* first */
    engine_handle *real;
    const engine_server_api *sapi;
    enum mode mode;
    unsigned ms, every, only, ops;
    uint64_t version; /* ewb_version: applied at initialize */
    uint64_t asked;   /* the version the host asked for */
    engine_errc status;
    bool twice, log_disconnect;
    _Atomic unsigned calls;
} ewb;

/* What a delayed call leaves on the cookie until the host's re-call. */
typedef struct pending {
    uint32_t magic;
    void *real_specific; /* the real engine's own cookie data, kept aside */
} pending;
#define PENDING_MAGIC 0xE3B1D00Du

/* The host's server API, handed on to the real engine (a host has one). */
static const engine_server_api *real_sapi;
static const engine_info no_engine = {"ewouldblock_engine (no engine loaded yet)", 0,
                                      250};

static ewb *E(engine_handle *h)
{
    return (ewb *)h;
}

typedef struct later {
    const engine_server_api *sapi;
    const void *cookie;
    engine_errc status;
    unsigned ms;
    bool twice;
} later;

static void *notify_later(void *arg)
{
    later *l = arg;
    struct timespec ts = {l->ms / 1000, (long)(l->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    l->sapi->cookie.notify_io_complete(l->cookie, l->status);
    if (l->twice)
        l->sapi->cookie.notify_io_complete(l->cookie, l->status);
    l->sapi->cookie.release(l->cookie);
    free(l);
    return NULL;
}

static void notify_from_thread(ewb *e, const void *cookie, engine_errc status,
                               unsigned ms)
{
    later *l = malloc(sizeof(*l));
    pthread_t t;
    if (l == NULL)
        abort();
    *l = (later){e->sapi, cookie, status, ms, e->twice};
    e->sapi->cookie.reserve(cookie);
    if (pthread_create(&t, NULL, notify_later, l) != 0)
        abort();
    pthread_detach(t);
}

/* Decides what to do with a call of kind `op`: true with *rc when the
 * interposer answers instead of the real engine. delay: the first call answers
 * would_block and is notified later; the host's re-call goes to the real engine
 * (so out-parameters are filled by the call whose result the host uses). */
static bool intercept(ewb *e, const void *cookie, unsigned op, engine_errc *rc)
{
    if (cookie == NULL || !(e->ops & op) || e->mode == M_PASS)
        return false;
    pending *p = e->sapi->cookie.get_engine_specific(cookie);
    if (p != NULL && p->magic == PENDING_MAGIC) {
        e->sapi->cookie.store_engine_specific(cookie, p->real_specific);
        free(p);
        return false; /* the re-call after a delay: the real engine answers */
    }
    unsigned n = atomic_fetch_add(&e->calls, 1) + 1;
    if (e->only != 0 ? n != e->only : n % e->every != 0)
        return false;
    switch (e->mode) {
    case M_DELAY:
        p = malloc(sizeof(*p));
        if (p == NULL)
            return false;
        *p = (pending){PENDING_MAGIC, e->sapi->cookie.get_engine_specific(cookie)};
        e->sapi->cookie.store_engine_specific(cookie, p);
        notify_from_thread(e, cookie, ENGINE_SUCCESS, e->ms);
        *rc = ENGINE_WOULD_BLOCK;
        return true;
    case M_STATUS:
        notify_from_thread(e, cookie, e->status, e->ms);
        *rc = ENGINE_WOULD_BLOCK;
        return true;
    case M_NEVER:
        *rc = ENGINE_WOULD_BLOCK;
        return true;
    case M_FAIL:
        *rc = e->status;
        return true;
    default:
        return false;
    }
}

#define PASS(op, call)                                                                   \
    do {                                                                                 \
        engine_errc rc_;                                                                 \
        if (intercept(E(h), cookie, op, &rc_))                                           \
            return rc_;                                                                  \
        return (call);                                                                   \
    } while (0)

static engine_errc w_get_info(engine_handle *h, const engine_info **out)
{
    if (E(h)->real == NULL) {
        if (out == NULL)
            return ENGINE_INVALID_ARGUMENTS;
        *out = &no_engine;
        return ENGINE_SUCCESS;
    }
    return E(h)->real->get_info(E(h)->real, out);
}

static void w_destroy(engine_handle *h, bool force)
{
    if (E(h)->real)
        E(h)->real->destroy(E(h)->real, force);
    free(h);
}

static engine_errc w_allocate(engine_handle *h, const void *cookie, engine_item **out,
                              const engine_doc_key *key, size_t n, uint32_t flags,
                              uint32_t exptime, uint8_t datatype, uint16_t vb)
{
    if (E(h)->mode == M_FAIL)
        PASS(OP_ALLOCATE, E(h)->real->allocate(E(h)->real, cookie, out, key, n, flags,
                                               exptime, datatype, vb));
    return E(h)->real->allocate(E(h)->real, cookie, out, key, n, flags, exptime, datatype,
                                vb);
}

static engine_errc w_store_durable(engine_handle *h, const void *cookie, engine_item *it,
                                   uint64_t *cas, engine_store_op op, engine_durability d)
{
    PASS(OP_DURABLE, E(h)->real->store_durable(E(h)->real, cookie, it, cas, op, d));
}

static engine_errc w_remove_durable(engine_handle *h, const void *cookie,
                                    const engine_doc_key *key, uint64_t cas, uint16_t vb,
                                    uint64_t *cas_out, engine_durability d)
{
    PASS(OP_DURABLE,
         E(h)->real->remove_durable(E(h)->real, cookie, key, cas, vb, cas_out, d));
}

static engine_errc w_set_vbucket_state(engine_handle *h, const void *cookie, uint16_t vb,
                                       engine_vbucket_state state)
{
    return E(h)->real->set_vbucket_state(E(h)->real, cookie, vb, state);
}

static void w_release(engine_handle *h, engine_item *it)
{
    E(h)->real->release(E(h)->real, it);
}

static engine_errc w_get(engine_handle *h, const void *cookie, engine_item **out,
                         const engine_doc_key *key, uint16_t vb)
{
    PASS(OP_GET, E(h)->real->get(E(h)->real, cookie, out, key, vb));
}

static engine_errc w_store(engine_handle *h, const void *cookie, engine_item *it,
                           uint64_t *cas, engine_store_op op)
{
    PASS(OP_STORE, E(h)->real->store(E(h)->real, cookie, it, cas, op));
}

static engine_errc w_remove(engine_handle *h, const void *cookie,
                            const engine_doc_key *key, uint64_t cas, uint16_t vb,
                            uint64_t *cas_out)
{
    PASS(OP_REMOVE, E(h)->real->remove(E(h)->real, cookie, key, cas, vb, cas_out));
}

static engine_errc w_flush(engine_handle *h, const void *cookie)
{
    return E(h)->real->flush(E(h)->real, cookie);
}

static engine_errc w_get_stats(engine_handle *h, const void *cookie, const char *group,
                               engine_add_stat_fn add, void *ctx)
{
    return E(h)->real->get_stats(E(h)->real, cookie, group, add, ctx);
}

static void w_reset_stats(engine_handle *h, const void *cookie)
{
    E(h)->real->reset_stats(E(h)->real, cookie);
}

static engine_errc w_get_item_info(engine_handle *h, const engine_item *it,
                                   engine_item_info *info)
{
    return E(h)->real->get_item_info(E(h)->real, it, info);
}

static void w_item_set_cas(engine_handle *h, engine_item *it, uint64_t cas)
{
    E(h)->real->item_set_cas(E(h)->real, it, cas);
}

static engine_errc w_set_manifest(engine_handle *h, const void *cookie, const char *json,
                                  size_t len)
{
    PASS(OP_MANIFEST, E(h)->real->set_collection_manifest(E(h)->real, cookie, json, len));
}

static engine_errc w_get_manifest(engine_handle *h, const void *cookie,
                                  engine_output_fn out, void *ctx)
{
    return E(h)->real->get_collection_manifest(E(h)->real, cookie, out, ctx);
}

static engine_errc w_get_cid(engine_handle *h, const void *cookie, const char *path,
                             size_t len, uint64_t *uid, uint32_t *id)
{
    return E(h)->real->get_collection_id(E(h)->real, cookie, path, len, uid, id);
}

static engine_errc w_get_sid(engine_handle *h, const void *cookie, const char *path,
                             size_t len, uint64_t *uid, uint32_t *id)
{
    return E(h)->real->get_scope_id(E(h)->real, cookie, path, len, uid, id);
}

static void w_disconnect(engine_handle *h, const void *cookie)
{
    ewb *e = E(h);
    if (e->real == NULL)
        return;
    if (e->log_disconnect)
        e->sapi->log(ENGINE_LOG_INFO, "ewb: disconnect");
    pending *p = e->sapi->cookie.get_engine_specific(cookie);
    if (p != NULL && p->magic == PENDING_MAGIC) {
        e->sapi->cookie.store_engine_specific(cookie, p->real_specific);
        free(p);
    }
    e->real->disconnect(e->real, cookie);
}

/* Splits ours from the real engine's configuration. */
static int parse_config(ewb *e, const char *config, char *path, size_t pathlen,
                        char *rest, size_t restlen)
{
    e->mode = M_PASS;
    e->every = 1;
    e->version = ENGINE_API_VERSION_1;
    e->ops = OP_MANIFEST;
    e->status = ENGINE_TEMPORARY_FAILURE;
    path[0] = rest[0] = '\0';
    char *copy = strdup(config ? config : ""), *save = NULL;
    for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        const char *v = eq ? eq + 1 : "";
        if (strncmp(kv, "ewb_engine=", 11) == 0) {
            snprintf(path, pathlen, "%s", v);
        } else if (strncmp(kv, "ewb_mode=", 9) == 0) {
            e->mode = !strcmp(v, "delay")    ? M_DELAY
                      : !strcmp(v, "status") ? M_STATUS
                      : !strcmp(v, "never")  ? M_NEVER
                      : !strcmp(v, "fail")   ? M_FAIL
                                             : M_PASS;
        } else if (strncmp(kv, "ewb_ms=", 7) == 0) {
            e->ms = (unsigned)atoi(v);
        } else if (strncmp(kv, "ewb_status=", 11) == 0) {
            e->status = (engine_errc)strtol(v, NULL, 16);
        } else if (strncmp(kv, "ewb_only=", 9) == 0) {
            e->only = (unsigned)atoi(v);
        } else if (strncmp(kv, "ewb_version=", 12) == 0) {
            e->version = atoi(v) == 2 ? ENGINE_API_VERSION_2 : ENGINE_API_VERSION_1;
        } else if (strncmp(kv, "ewb_double=", 11) == 0) {
            e->twice = atoi(v) != 0;
        } else if (strncmp(kv, "ewb_log_disconnect=", 19) == 0) {
            e->log_disconnect = atoi(v) != 0;
        } else if (strncmp(kv, "ewb_every=", 10) == 0) {
            e->every = (unsigned)atoi(v) ? (unsigned)atoi(v) : 1;
        } else if (strncmp(kv, "ewb_ops=", 8) == 0) {
            e->ops = (strstr(v, "manifest") ? OP_MANIFEST : 0) |
                     (strstr(v, "get") ? OP_GET : 0) |
                     (strstr(v, "store") ? OP_STORE : 0) |
                     (strstr(v, "remove") ? OP_REMOVE : 0) |
                     (strstr(v, "allocate") ? OP_ALLOCATE : 0) |
                     (strstr(v, "durable") ? OP_DURABLE : 0);
        } else {
            size_t used = strlen(rest);
            snprintf(rest + used, restlen - used, "%s%s", used ? ";" : "", kv);
        }
    }
    free(copy);
    return path[0] ? 0 : -1;
}

static const engine_server_api *get_real_sapi(void)
{
    return real_sapi;
}

/* The real engine is created at initialize, when the config names it. */
static engine_errc w_initialize_real(engine_handle *h, const char *config)
{
    ewb *e = E(h);
    char path[1024], rest[4096];
    if (parse_config(e, config, path, sizeof(path), rest, sizeof(rest)) != 0) {
        e->sapi->log(ENGINE_LOG_WARNING,
                     "ewouldblock_engine: ewb_engine=PATH is required");
        return ENGINE_INVALID_ARGUMENTS;
    }
    if (e->version == ENGINE_API_VERSION_2 && e->asked >= ENGINE_API_VERSION_2) {
        e->vt.interface = ENGINE_API_VERSION_2;
        e->vt.store_durable = w_store_durable;
        e->vt.remove_durable = w_remove_durable;
        e->vt.set_vbucket_state = w_set_vbucket_state;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    engine_create_instance_fn create = NULL;
    if (dl != NULL)
        *(void **)&create = dlsym(dl, "create_instance");
    if (create == NULL ||
        create(e->vt.interface, get_real_sapi, &e->real) != ENGINE_SUCCESS) {
        e->sapi->log(ENGINE_LOG_WARNING, "ewouldblock_engine: cannot load %s", path);
        e->real = NULL;
        return ENGINE_FAILED;
    }
    engine_errc rc = e->real->initialize(e->real, rest);
    if (rc != ENGINE_SUCCESS) {
        e->real->destroy(e->real, true);
        e->real = NULL;
    }
    return rc;
}

__attribute__((visibility("default"))) engine_errc
create_instance(uint64_t interface, engine_get_server_api_fn get_server_api,
                engine_handle **handle)
{
    if (handle == NULL || get_server_api == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    if (interface < ENGINE_API_VERSION_1)
        return ENGINE_NOT_SUPPORTED;
    real_sapi = get_server_api();
    ewb *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ENGINE_NO_MEMORY;
    e->sapi = real_sapi;
    e->asked = interface;
    engine_handle *v = &e->vt;
    v->interface = ENGINE_API_VERSION_1; /* durable writes are not interposed */
    v->get_info = w_get_info;
    v->initialize = w_initialize_real;
    v->destroy = w_destroy;
    v->allocate = w_allocate;
    v->release = w_release;
    v->get = w_get;
    v->store = w_store;
    v->remove = w_remove;
    v->flush = w_flush;
    v->get_stats = w_get_stats;
    v->reset_stats = w_reset_stats;
    v->get_item_info = w_get_item_info;
    v->item_set_cas = w_item_set_cas;
    v->set_collection_manifest = w_set_manifest;
    v->get_collection_manifest = w_get_manifest;
    v->get_collection_id = w_get_cid;
    v->get_scope_id = w_get_sid;
    v->disconnect = w_disconnect;
    *handle = v;
    return ENGINE_SUCCESS;
}
