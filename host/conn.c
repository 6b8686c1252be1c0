/*
 * conn.c - the connection's life and mechanics (conn.h): references, error
 * context, output, reading, close.
 *
 * A connection is freed only when its last reference goes: the socket's
 * (dropped when the client leaves) and one per engine reserve(), so an engine
 * thread may still notify and release a cookie whose client is gone.
 */
#include "conn.h"

#include "clock.h"
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

kvhost host;

/* Input a parked command lets pile up behind it before reading stops. */
#define PARKED_INPUT_MAX (64 * 1024)
/* Unread answers an unauthenticated connection may hold. */
#define UNAUTHENTICATED_OUTPUT_MAX (64 * 1024)

conn *conn_new(worker *w, int fd)
{
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->magic = CONN_MAGIC;
    c->w = w;
    c->fd = fd;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void conn_command_done(conn *c, host_op_kind kind)
{
    if (c->op_started_ns != 0)
        hist_record(&c->w->counts.latency[kind], host_now_ns() - c->op_started_ns);
    c->op_started_ns = 0;
}

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void host_counts_sum(host_counts *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < host.nworkers; i++) {
        host_counts *w = &host.workers[i].counts;
        out->bytes_in += load(&w->bytes_in);
        out->bytes_out += load(&w->bytes_out);
        for (int op = 0; op < 256; op++)
            out->commands[op] += load(&w->commands[op]);
        for (int k = 0; k < HOST_OP_KINDS; k++) {
            hist *h = &out->latency[k], *from = &w->latency[k];
            for (int b = 0; b <= HIST_BUCKETS; b++)
                h->bucket[b] += load(&from->bucket[b]);
            h->sum_ns += load(&from->sum_ns);
        }
    }
}

void conn_drop_parked_item(conn *c)
{
    if (c->parked_item != NULL)
        host.engine->release(host.engine, c->parked_item);
    c->parked_item = NULL;
}

void conn_ref(conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void conn_unref(conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    c->magic = 0;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool conn_take_error(conn *c, char *buf, size_t cap, uint64_t *uid, bool *has_uid)
{
    pthread_mutex_lock(&c->lock);
    bool has = c->has_error_ctx;
    snprintf(buf, cap, "%s", has ? c->error_ctx : "");
    *uid = c->error_uid;
    *has_uid = c->has_error_uid;
    c->has_error_ctx = c->has_error_uid = false;
    pthread_mutex_unlock(&c->lock);
    return has;
}

void conn_clear_error(conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->has_error_ctx = c->has_error_uid = false;
    pthread_mutex_unlock(&c->lock);
}

void conn_link(conn *c)
{
    worker *w = c->w;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
}

static void conn_unlink(conn *c)
{
    worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void conn_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    conn_unlink(c);
    conn_drop_parked_item(c);
    auth_scram_clear(&c->scram);
    if (c->durable_timer != NULL)
        event_free(c->durable_timer);
    c->durable_timer = NULL;
    if (c->sasl_timer != NULL)
        event_free(c->sasl_timer);
    c->sasl_timer = NULL;
    host.engine->disconnect(host.engine, c);
    event_free(c->rev);
    event_free(c->wev);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->rev = c->wev = NULL;
    c->in = c->out = NULL;
    atomic_fetch_sub(&host.conns, 1);
    conn_unref(c); /* the socket's reference; engine reserves keep the rest */
}

/* A closing connection's answers are all written: shut the write side and
 * read until the client closes (for CONN_DRAIN_MS at most), so that bytes it sent
 * after the last command do not make the close a reset that could destroy
 * answers still in flight. A client that already sent FIN is closed now. */
static void conn_finish(conn *c)
{
    if (c->ssl != NULL && !c->eof)
        SSL_shutdown(c->ssl); /* close_notify, on a best-effort basis */
    if (c->eof || shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->draining = true;
    c->closing_since = host_now_ms();
    conn_update_reading(c);
}

/* Writes queued output through TLS, a chunk at a time; false if the
 * connection broke. */
static bool flush_tls(conn *c)
{
    c->tls_write_wants_read = false;
    while (evbuffer_get_length(c->out) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1)
            break;
        tls_io how;
        size_t n = tls_write(c->ssl, v.iov_base, v.iov_len, &how);
        if (how == TLS_DONE) {
            evbuffer_drain(c->out, n);
            atomic_fetch_add_explicit(&c->w->counts.bytes_out, n, memory_order_relaxed);
            continue;
        }
        if (how == TLS_WANT_READ)
            c->tls_write_wants_read = true; /* on_readable flushes again */
        if (how == TLS_WANT_READ || how == TLS_WANT_WRITE)
            break;
        return false;
    }
    return true;
}

/* Writes what is queued; arms the write event if the socket takes less, and
 * closes a quitting connection once all is written. */
void conn_flush(conn *c)
{
    if (c->closed)
        return;
    if (c->ssl != NULL && !flush_tls(c)) {
        conn_close(c);
        return;
    }
    while (c->ssl == NULL && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
        atomic_fetch_add_explicit(&c->w->counts.bytes_out, (uint64_t)n,
                                  memory_order_relaxed);
    }
    if (c->closed)
        return;
    if (c->tls_write_wants_read)
        conn_update_reading(c); /* the read brings what the write waits for */
    else if (evbuffer_get_length(c->out) > 0)
        event_add(c->wev, NULL);
    else if (c->closing && !c->draining)
        conn_finish(c);
}

size_t conn_output_limit(const conn *c)
{
    return host.users != NULL && !c->authed &&
                   host.max_output > UNAUTHENTICATED_OUTPUT_MAX
               ? UNAUTHENTICATED_OUTPUT_MAX
               : host.max_output;
}

/* Reading stops while answers pile up unread, while a parked command holds
 * the input (it must not grow behind it without bound), and after FIN; a
 * closing connection whose answers are all written reads only to discard. */
bool conn_may_read(const conn *c)
{
    if (c->tls_read_wants_write)
        return false; /* on_writable reads again */
    if (c->draining || c->tls_write_wants_read)
        return !c->closed;
    return !c->closed && !c->closing && !c->eof &&
           evbuffer_get_length(c->out) < conn_output_limit(c) &&
           !(c->parked && evbuffer_get_length(c->in) >= PARKED_INPUT_MAX);
}

void conn_update_reading(conn *c)
{
    bool want = conn_may_read(c);
    if (c->closed || want == c->reading)
        return;
    if (want ? event_add(c->rev, NULL) : event_del(c->rev)) {
        fprintf(stderr, "kvhost: cannot change a connection's read event; closing it\n");
        conn_close(c);
        return;
    }
    c->reading = want;
    /* TLS may hold bytes it already took off the socket: the socket will not
     * say readable for those. */
    if (want && c->ssl != NULL && SSL_pending(c->ssl) > 0)
        event_active(c->rev, EV_READ, 0);
}
