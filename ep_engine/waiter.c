/*
 * waiter.c - the per-cookie record of a would_block call (waiter.h).
 *
 * Two references: the cookie slot's (dropped by whichever host call takes the
 * record off the cookie) and the engine thread's (dropped by waiter_finish).
 * While a record is on a cookie it is also in its engine's registry, which
 * frees what is left at destroy.
 * The outcome is published with a release store before the notify, so the
 * host's re-call, which follows the notify, reads it whole.
 */
#include "waiter.h"

#include "../common/utf8.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAITER_MAGIC 0x57a17e55u

enum { W_WAITING = 0, W_SUCCEEDED = 1, W_FAILED = 2 };

struct ep_waiters {
    const engine_server_api *api;
    pthread_mutex_t lock; /* guards the list */
    ep_waiter *first;     /* records on cookies */
};

struct ep_waiter {
    uint32_t magic;
    ep_waiters *ws;
    ep_waiter *prev, *next; /* in ws, while on the cookie */
    _Atomic uint32_t refs;
    _Atomic int state; /* W_*: set once, by waiter_finish */
    uint64_t cas;
    const engine_server_api *api;
    const void *cookie;
    waiter_call call;
    uint16_t vbucket;
    uint32_t collection;
    uint64_t detail;
    void *kept; /* waiter_begin_keep's bytes, for the re-call */
    size_t nkept;
    size_t nkey, nvalue;
    unsigned char bytes[]; /* the key, then the value */
};

static void unref(ep_waiter *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        w->magic = 0;
        free(w->kept);
        free(w);
    }
}

static bool matches(const ep_waiter *w, const waiter_match *m)
{
    return w->call == m->call && w->vbucket == m->vbucket &&
           w->collection == m->collection && w->detail == m->detail &&
           w->nkey == m->nkey && w->nvalue == m->nvalue &&
           memcmp(w->bytes, m->key, m->nkey) == 0 &&
           (m->nvalue == 0 || memcmp(w->bytes + m->nkey, m->value, m->nvalue) == 0);
}

ep_waiters *waiters_create(const engine_server_api *api)
{
    ep_waiters *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    ws->api = api;
    pthread_mutex_init(&ws->lock, NULL);
    return ws;
}

void waiters_destroy(ep_waiters *ws)
{
    if (ws == NULL)
        return;
    while (ws->first != NULL) {
        ep_waiter *w = ws->first;
        ws->first = w->next;
        ws->api->cookie.store_engine_specific(w->cookie, NULL);
        w->magic = 0;
        free(w->kept);
        free(w);
    }
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

/* The record on the cookie, if any. */
static ep_waiter *on_cookie(ep_waiters *ws, const void *cookie)
{
    ep_waiter *w = ws->api->cookie.get_engine_specific(cookie);
    return w != NULL && w->magic == WAITER_MAGIC ? w : NULL;
}

static void put_on(ep_waiter *w)
{
    ep_waiters *ws = w->ws;
    pthread_mutex_lock(&ws->lock);
    w->prev = NULL;
    w->next = ws->first;
    if (ws->first != NULL)
        ws->first->prev = w;
    ws->first = w;
    pthread_mutex_unlock(&ws->lock);
    ws->api->cookie.store_engine_specific(w->cookie, w);
}

static void take_off(ep_waiter *w)
{
    ep_waiters *ws = w->ws;
    ws->api->cookie.store_engine_specific(w->cookie, NULL);
    pthread_mutex_lock(&ws->lock);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        ws->first = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&ws->lock);
    unref(w);
}

ep_waiter *waiter_begin(ep_waiters *ws, const void *cookie, const waiter_match *m)
{
    return waiter_begin_keep(ws, cookie, m, NULL, 0);
}

ep_waiter *waiter_begin_keep(ep_waiters *ws, const void *cookie, const waiter_match *m,
                             const void *keep, size_t nkeep)
{
    const engine_server_api *api = ws->api;
    if (m->nkey > SIZE_MAX / 2 || m->nvalue > SIZE_MAX / 2 - sizeof(ep_waiter) - m->nkey)
        return NULL;
    void *kept = nkeep > 0 ? malloc(nkeep) : NULL;
    if (nkeep > 0 && kept == NULL)
        return NULL;
    ep_waiter *w = malloc(sizeof(*w) + m->nkey + m->nvalue);
    if (w == NULL) {
        free(kept);
        return NULL;
    }
    if (nkeep > 0)
        memcpy(kept, keep, nkeep);
    *w = (ep_waiter){
        .magic = WAITER_MAGIC,
        .ws = ws,
        .api = api,
        .cookie = cookie,
        .call = m->call,
        .vbucket = m->vbucket,
        .collection = m->collection,
        .detail = m->detail,
        .kept = kept,
        .nkept = nkeep,
        .nkey = m->nkey,
        .nvalue = m->nvalue,
    };
    atomic_init(&w->refs, 2);
    atomic_init(&w->state, W_WAITING);
    if (m->nkey > 0)
        memcpy(w->bytes, m->key, m->nkey);
    if (m->nvalue > 0)
        memcpy(w->bytes + m->nkey, m->value, m->nvalue);
    ep_waiter *old = on_cookie(ws, cookie);
    if (old != NULL)
        take_off(old);
    put_on(w);
    api->cookie.reserve(cookie);
    return w;
}

void waiter_abandon(ep_waiter *w)
{
    const engine_server_api *api = w->api;
    const void *cookie = w->cookie;
    take_off(w);
    api->cookie.release(cookie);
    unref(w); /* the engine's */
}

void waiter_finish(ep_waiter *w, engine_errc status, uint64_t cas, const char *why)
{
    const engine_server_api *api = w->api;
    const void *cookie = w->cookie;
    w->cas = cas;
    if (status != ENGINE_SUCCESS && why != NULL)
        cookie_set_reason(api, cookie, why);
    atomic_store_explicit(&w->state, status == ENGINE_SUCCESS ? W_SUCCEEDED : W_FAILED,
                          memory_order_release);
    /* The re-call may run (and free the record) as soon as the notify is made. */
    unref(w);
    api->cookie.notify_io_complete(cookie, status);
    api->cookie.release(cookie);
}

void cookie_set_reason(const engine_server_api *api, const void *cookie, const char *why)
{
    char valid[1024];
    utf8_sanitize(valid, sizeof(valid), why, strlen(why));
    api->cookie.set_error_context(cookie, valid);
}

const void *waiter_cookie(const ep_waiter *w)
{
    return w->cookie;
}

waiter_found waiter_collect(ep_waiters *ws, const void *cookie, const waiter_match *m,
                            engine_errc *status, uint64_t *cas)
{
    return waiter_collect_kept(ws, cookie, m, status, cas, NULL, NULL);
}

waiter_found waiter_collect_kept(ep_waiters *ws, const void *cookie,
                                 const waiter_match *m, engine_errc *status,
                                 uint64_t *cas, void **kept, size_t *nkept)
{
    ep_waiter *w = on_cookie(ws, cookie);
    if (w == NULL)
        return WAITER_NEW;
    int state = atomic_load_explicit(&w->state, memory_order_acquire);
    if (state == W_WAITING)
        return WAITER_PENDING;
    /* Only a success is collected: a failure's notify was the whole answer, so
     * the same request sent again is a new one. */
    bool done = state == W_SUCCEEDED && matches(w, m);
    if (done) {
        *status = ENGINE_SUCCESS;
        if (cas != NULL)
            *cas = w->cas;
        if (kept != NULL) {
            *kept = w->kept; /* the record's bytes pass to the caller */
            *nkept = w->nkept;
            w->kept = NULL;
        }
    }
    take_off(w);
    return done ? WAITER_DONE : WAITER_NEW;
}

void waiter_disconnect(ep_waiters *ws, const void *cookie)
{
    ep_waiter *w = on_cookie(ws, cookie);
    if (w != NULL)
        take_off(w);
}
