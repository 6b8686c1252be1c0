/*
 * hostapi.c - kvhost's engine_server_api: the clock, logging, and the cookie
 * functions over connections.
 *
 * A notify is handed to the connection's worker thread, which resumes or
 * answers the parked command; for a closed connection it is dropped.
 */
#include "hostapi.h"

#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static host_clock clock_;

static engine_rel_time api_get_current_time(void)
{
    return host_clock_now(&clock_);
}

static engine_rel_time api_realtime(uint32_t exptime)
{
    return host_clock_realtime(&clock_, exptime);
}

static time_t api_abstime(engine_rel_time t)
{
    return host_clock_abstime(&clock_, t);
}

static void host_log(engine_log_level level, const char *fmt, ...)
{
    if (level < ENGINE_LOG_INFO && !host.verbose)
        return;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "kvhost [%s] %s\n", names[level & 3], line);
}

static conn *as_conn(const void *cookie)
{
    conn *c = (conn *)cookie;
    if (c == NULL || c->magic != CONN_MAGIC) {
        fprintf(stderr, "kvhost: the engine passed an invalid cookie %p\n", cookie);
        abort(); /* a broken engine must not be allowed to corrupt memory */
    }
    return c;
}

/* The slot is the engine's. The engine writes it only inside calls on this
 * connection (engine_api.h, rule 6); the lock keeps it whole for an engine
 * that reads it from another thread all the same. */
static void api_store_engine_specific(const void *cookie, void *data)
{
    conn *c = as_conn(cookie);
    pthread_mutex_lock(&c->lock);
    c->engine_data = data;
    pthread_mutex_unlock(&c->lock);
}

static void *api_get_engine_specific(const void *cookie)
{
    conn *c = as_conn(cookie);
    pthread_mutex_lock(&c->lock);
    void *data = c->engine_data;
    pthread_mutex_unlock(&c->lock);
    return data;
}

static void api_notify_io_complete(const void *cookie, engine_errc status)
{
    conn *c = as_conn(cookie);
    worker *w = c->w;
    pthread_mutex_lock(&w->lock);
    if (c->notify_queued) {
        /* A second notify before the worker took the first: an engine that
         * breaks the contract. Queuing it again would make the list a loop. */
        pthread_mutex_unlock(&w->lock);
        atomic_fetch_add(&host.notifies_duplicate, 1);
        return;
    }
    conn_ref(c); /* held until the worker has handled the notify */
    c->notify_queued = true;
    c->notify_status = status;
    c->notify_next = w->notify_head;
    w->notify_head = c;
    pthread_mutex_unlock(&w->lock);
    event_active(w->notify_ev, EV_READ, 0);
}

static engine_errc api_reserve(const void *cookie)
{
    conn_ref(as_conn(cookie));
    return ENGINE_SUCCESS;
}

static void api_release(const void *cookie)
{
    conn_unref(as_conn(cookie));
}

static void api_set_error_context(const void *cookie, const char *reason)
{
    conn *c = as_conn(cookie);
    pthread_mutex_lock(&c->lock);
    c->has_error_ctx = reason != NULL;
    snprintf(c->error_ctx, sizeof(c->error_ctx), "%s", reason ? reason : "");
    pthread_mutex_unlock(&c->lock);
}

static void api_set_error_manifest_uid(const void *cookie, uint64_t uid)
{
    conn *c = as_conn(cookie);
    pthread_mutex_lock(&c->lock);
    c->error_uid = uid;
    c->has_error_uid = true;
    pthread_mutex_unlock(&c->lock);
}

static const engine_server_api api = {
    .interface_version = ENGINE_SERVER_API_VERSION,
    .core = {api_get_current_time, api_realtime, api_abstime},
    .log = host_log,
    .cookie = {api_store_engine_specific, api_get_engine_specific, api_notify_io_complete,
               api_reserve, api_release, api_set_error_context,
               api_set_error_manifest_uid},
};

const engine_server_api *kvhost_server_api(void)
{
    static bool started;
    if (!started) {
        host_clock_init(&clock_, NULL, NULL);
        started = true;
    }
    return &api;
}
