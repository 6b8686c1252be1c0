/*
 * manager.h - the collections manager: the current manifest, the one pending
 * update, its persistence on a writer task, and warmup of the manifest file.
 *
 * The state machine (docs/design.md) in one place. Every exit path of an update -
 * success, bad input, not a successor, identical, persistence failure, client
 * gone, engine shut down - leaves the manager with no pending update.
 */
#ifndef EP_COLL_MANAGER_H
#define EP_COLL_MANAGER_H

#include "../../engine_api.h"
#include "../../common/hist.h"
#include "../executor/executor.h"
#include "../io/io.h"
#include "../waiter.h"
#include "manifest.h"

#include <stdint.h>

typedef struct coll_manager coll_manager;

/** What the manager needs from the engine. */
typedef struct coll_env {
    const engine_server_api *sapi;
    exec_pool *pool;
    ep_io *io;
    ep_waiters *waiters; /* the cookies' records */
    const char *dir;     /* data directory; "" = keep the manifest in memory only */
    coll_limits limits;
    void *ctx;
    /* Makes `m` the manifest every data operation sees (the engine switches its
     * hash-table stripes one at a time); on return no operation still uses the
     * previous one. */
    void (*publish)(void *ctx, const coll_manifest *m);
    /* The engine's latest CAS: items at or below it predate a new incarnation. */
    uint64_t (*cas_now)(void *ctx);
    /* A manifest that dropped collections was applied: purge their items. */
    void (*dropped)(void *ctx);
    /* True once the engine is being destroyed: the host cannot re-call any more,
     * so an update finishing now is answered with temporary_failure. */
    bool (*closing)(void *ctx);
} coll_env;

/**
 * Warmup: reads the manifest file from env->dir (a missing file is the epoch
 * manifest; a leftover temp file is removed). NULL with a reason in why if the
 * file is corrupt or unreadable. *max_cas receives the largest start CAS on file.
 */
coll_manager *coll_manager_create(const coll_env *env, uint64_t *max_cas, char *why,
                                  size_t whylen);

/** Frees the manager. Call after the executor is gone (no task left). */
void coll_manager_destroy(coll_manager *m);

/** engine_handle.set_collection_manifest. */
engine_errc coll_manager_set(coll_manager *m, const void *cookie, const char *json,
                             size_t len);

/** The current manifest with a reference (drop with coll_manifest_unref). */
coll_manifest *coll_manager_get(coll_manager *m);

typedef struct coll_manager_stats {
    uint64_t updates;   /* manifests applied */
    uint64_t identical; /* updates that matched the current manifest */
    uint64_t rejected;  /* invalid or not a successor */
    uint64_t busy;      /* refused while another update was pending */
    uint64_t persist_failures;
    uint64_t cancelled; /* pending at shutdown */
    uint64_t last_persist_us;
    int pending; /* 1 while an update is in flight */
} coll_manager_stats;

void coll_manager_stats_get(coll_manager *m, coll_manager_stats *out);

/** The latencies of applied updates, from the call to the manifest applied. */
const hist *coll_manager_update_latency(const coll_manager *m);

/** Name of the manifest file inside the data directory. */
#define COLL_MANIFEST_FILE "collections.manifest"

#endif
