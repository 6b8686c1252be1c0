/*
 * waiter.h - the one record the engine keeps on a host cookie: which call a
 * would_block is for and, once the background work is done, its outcome,
 * until the host's re-call collects it.
 *
 * The cookie's engine-specific slot has this one owner. It is written only on
 * the host's thread, inside a call that carries the cookie: the call that
 * returns would_block (waiter_begin), the re-call or any later call that looks
 * (waiter_collect), and disconnect (waiter_disconnect). An engine thread never
 * writes it; it holds a reference of its own and fills in the outcome
 * (waiter_finish). So nothing is stored on a cookie after its disconnect, and
 * a record nobody collects is freed by whichever side lets go last, or, for a
 * cookie still connected when the engine is destroyed, with its registry.
 *
 * A record names the request it completes, exactly: the call, the vbucket,
 * collection and key (or the manifest's bytes), the value and the other
 * arguments. A call that does not match a finished record discards it and is
 * served as a new request: a host that did not re-call after a success notify
 * (engine_api.h, rule 7) never gets an old outcome for another request. (The
 * same request sent again is the re-call as far as anyone can tell: it gets
 * the outcome, and the write is not applied twice.)
 */
#ifndef EP_WAITER_H
#define EP_WAITER_H

#include "../engine_api.h"

#include <stddef.h>
#include <stdint.h>

typedef enum waiter_call {
    WAITER_STORE_DURABLE = 1,
    WAITER_REMOVE_DURABLE = 2,
    WAITER_SET_MANIFEST = 3,
    WAITER_SUBDOC_DURABLE = 4,
} waiter_call;

/** The request a record completes. For a manifest, `key` is its JSON. The
 * record keeps a copy of key and value. */
typedef struct waiter_match {
    waiter_call call;
    uint16_t vbucket;
    uint32_t collection;
    const void *key;
    size_t nkey;
    const void *value;
    size_t nvalue;
    uint64_t detail; /* the rest of the arguments (flags, operation, CAS ...) */
} waiter_match;

typedef struct ep_waiter ep_waiter;

/** The records an engine has left on cookies (one registry per engine). */
typedef struct ep_waiters ep_waiters;

/** NULL on out of memory. */
ep_waiters *waiters_create(const engine_server_api *api);
/** At engine destroy, after every record was finished: takes the records
 * still on cookies off them and frees them. (A cookie that carries one was not
 * disconnected, so it is still the host's, rule 6.) */
void waiters_destroy(ep_waiters *ws);

/**
 * On the host's thread, in the call about to return would_block: makes the
 * record, leaves it on the cookie and reserves the cookie. Any record already
 * there is discarded first. NULL on out of memory (nothing changed).
 */
ep_waiter *waiter_begin(ep_waiters *ws, const void *cookie, const waiter_match *m);

/** waiter_begin, with bytes the re-call gets back with the outcome (a
 * sub-document mutation's results, known before the write waits). */
ep_waiter *waiter_begin_keep(ep_waiters *ws, const void *cookie, const waiter_match *m,
                             const void *keep, size_t nkeep);

/**
 * On the host's thread, when the call that made the record does not return
 * would_block after all: takes the record off the cookie, releases the cookie
 * and frees it. No notify.
 */
void waiter_abandon(ep_waiter *w);

/**
 * On an engine thread, exactly once per record from waiter_begin: records the
 * outcome (and a reason for a failure, copied to the cookie's error context),
 * notifies the cookie, releases it and drops the engine's reference.
 */
void waiter_finish(ep_waiter *w, engine_errc status, uint64_t cas, const char *why);

/** The cookie a record waits on (valid until waiter_finish). */
const void *waiter_cookie(const ep_waiter *w);

typedef enum waiter_found {
    WAITER_NEW,     /**< no record for this request: serve it as a new one */
    WAITER_DONE,    /**< its outcome is in *status and *cas; the record is gone */
    WAITER_PENDING, /**< a record on the cookie is still waiting for its notify */
} waiter_found;

/**
 * On the host's thread, at the start of a call that may complete a record:
 * collects a finished record that matches `m`, discards one that does not,
 * and reports a record still in flight (the host called before the notify).
 */
waiter_found waiter_collect(ep_waiters *ws, const void *cookie, const waiter_match *m,
                            engine_errc *status, uint64_t *cas);

/** waiter_collect, and for WAITER_DONE the bytes kept by waiter_begin_keep
 * in *kept (malloc'd, the caller frees; NULL when none). */
waiter_found waiter_collect_kept(ep_waiters *ws, const void *cookie,
                                 const waiter_match *m, engine_errc *status,
                                 uint64_t *cas, void **kept, size_t *nkept);

/** Leaves a reason for the host in the cookie's error context, made valid
 * UTF-8 first (it may quote a client's bytes; the host sends it in JSON). */
void cookie_set_reason(const engine_server_api *api, const void *cookie, const char *why);

/** engine_handle.disconnect: frees the cookie's record (the engine thread still
 * holding one lets go of its own reference later). */
void waiter_disconnect(ep_waiters *ws, const void *cookie);

#endif
