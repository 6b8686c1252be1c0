/*
 * conn.h - the floor every part of kvhost stands on: the server's settings and
 * counters (`host`), the worker threads, and the connection (which is also the
 * engine's cookie) with what is done to it from any floor above: its
 * references, its error context, writing its output, the state of its
 * reading, and closing it.
 */
#ifndef KVHOST_CONN_H
#define KVHOST_CONN_H

#include "../common/hist.h"
#include "../engine_api.h"
#include "auth.h"

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define KVHOST_VERSION "1.0.0"

/* How long a finished connection reads (and discards) before its close. */
#define CONN_DRAIN_MS 2000

typedef struct worker worker;

/* The kinds of operation whose latency kvhost measures, from the first run
 * of a command to its answer (a parked one's wait included). */
typedef enum host_op_kind {
    HOST_OP_GET,
    HOST_OP_STORE,
    HOST_OP_DURABLE_STORE, /* any write with a durability level */
    HOST_OP_DELETE,
    HOST_OP_SUBDOC_LOOKUP,
    HOST_OP_SUBDOC_MUTATION,
    HOST_OP_OTHER,
    HOST_OP_KINDS
} host_op_kind;

/* Where a SASL command parked off the worker thread stands. */
typedef enum sasl_wait {
    SASL_NONE,     /* nothing parked */
    SASL_CHECKING, /* a PLAIN check is on the auth threads (authq.h) */
    SASL_CHECKED,  /* its result is in sasl_user */
    SASL_DELAYING, /* a refusal held back: failed logins from this address */
} sasl_wait;

/* A live connection's magic: the server API checks a cookie by it. */
#define CONN_MAGIC 0x6b76636fu

/* One client connection; its address is the engine's cookie. */
typedef struct conn {
    unsigned magic;
    worker *w;
    int fd;
    struct evbuffer *in, *out; /* bytes read and not yet consumed; to write */
    struct event *rev, *wev;   /* readable (persistent); writable (armed on need) */
    SSL *ssl;                  /* a connection to the TLS listener, else NULL */
    bool tls_read_wants_write; /* TLS: a read waits for the socket to take bytes */
    bool tls_write_wants_read; /* TLS: a write waits for bytes from the peer */
    bool loopback;             /* the client's address is a loopback one */
    _Atomic int refs;          /* the socket's, plus one per engine reserve */
    pthread_mutex_t lock;      /* guards engine_data and the error context fields */
    void *engine_data;         /* engine-specific (engine_server_api.cookie) */
    char error_ctx[512];
    bool has_error_ctx;
    uint64_t error_uid;
    bool has_error_uid;
    /* Worker-thread state: */
    bool parked; /* a command returned would_block; input paused */
    /* The item of a store parked on would_block: its re-call passes the same
     * item (the same arguments, rule 3), so no allocate between the notify and
     * the re-call can fail and leave the outcome uncollected. */
    engine_item *parked_item;
    engine_store_op parked_op;   /* and the operation it was stored with */
    struct event *durable_timer; /* a parked durable write's timeout */
    bool answered_early;         /* it ran out: answered, the notify says nothing */
    bool closing;                /* QUIT: close once the output is written */
    bool closed;                 /* the client is gone */
    bool eof;                    /* the client sent FIN: answer what came, then close */
    bool reading;                /* the read event is armed */
    bool draining;               /* closing: answers written, write side shut */
    /* Deadlines (host_now_ms()): the sweep closes a connection that stays
     * too long unauthenticated, in the middle of a request, or idle. */
    uint64_t accepted_at, last_done, req_started, closing_since, eof_at;
    char peer[INET6_ADDRSTRLEN]; /* the client's address */
    sasl_wait sasl_wait;
    const struct auth_user *sasl_user; /* SASL_CHECKED: the user, or NULL */
    struct event *sasl_timer;          /* SASL_DELAYING */
    bool xerror, collections, json, tcp_nodelay, xattr;
    bool bucket_selected;     /* SELECT_BUCKET named the bucket */
    bool authed;              /* SASL done (or no users file) */
    bool admin;               /* may change the collections manifest */
    auth_scram scram;         /* a SCRAM exchange between its two messages */
    unsigned auth_failures;   /* failed logins; the connection closes at a few */
    struct conn *notify_next; /* in the worker's notify list */
    bool notify_queued;       /* in it (under the worker's lock) */
    engine_errc notify_status;
    struct conn *prev, *next; /* the worker's connections */
    uint64_t commands;
    uint64_t op_started_ns; /* the command being run: its first run (0: none) */
} conn;

/* An accepted socket on its way to its worker. */
typedef struct new_conn {
    int fd;
    bool tls, loopback;
    char peer[INET6_ADDRSTRLEN];
} new_conn;

/* Figures a worker thread counts for metrics. Each worker has its own, in its
 * own cache lines: two workers adding to one shared counter would pass its line
 * between the cores at every command. */
typedef struct host_counts {
    _Atomic uint64_t bytes_in, bytes_out; /* TLS: the protocol's bytes */
    _Atomic uint64_t commands[256];       /* each once, however often a parked
                                             one runs again */
    hist latency[HOST_OP_KINDS];
} host_counts;

struct worker {
    _Alignas(64) host_counts counts; /* its connections' figures */
    _Alignas(64) pthread_t tid;      /* a line apart from the counts */
    struct event_base *base;
    struct event *notify_ev; /* activated from any thread */
    struct event *accept_ev;
    pthread_mutex_t lock; /* guards notify_head, new_fds */
    conn *notify_head;
    new_conn new_fds[256];
    int nnew;
    conn *conns;            /* every open connection (worker thread only) */
    struct event *sweep_ev; /* once a second: deadlines */
};

typedef struct kvhost {
    engine_handle *engine;
    const engine_info *info;
    uint32_t max_packet; /* bytes of body accepted */
    unsigned max_conns;
    _Atomic unsigned conns;
    _Atomic uint64_t total_conns, rejected_conns, notifies_dropped, durable_timeouts;
    _Atomic uint64_t notifies_duplicate, deadline_closes, accept_pauses;
    size_t max_output;     /* pending output that stops reading a connection */
    int idle_timeout_s;    /* no request completed for this long: closed (0: never) */
    int request_timeout_s; /* a started request must arrive whole within this */
    int auth_timeout_s;    /* with users: authenticate within this */
    bool verbose;
    auth_db *users;   /* NULL: no authentication (loopback only) */
    SSL_CTX *tls_ctx; /* the TLS listener's, or NULL: none */
    _Atomic uint64_t auth_failures;
    _Atomic uint64_t tls_conns, tls_errors; /* accepted on the TLS port; dropped for a
                                               TLS error (not TLS, failed handshake) */
    worker *workers; /* set before any client or scrape; never freed */
    int nworkers;
} kvhost;

extern kvhost host;

/* The connection's life: made with one reference (the socket's); the last
 * unref frees it. */
conn *conn_new(worker *w, int fd);
void conn_ref(conn *c);
void conn_unref(conn *c);
/* Puts it in (takes it out of) its worker's list of open connections. */
void conn_link(conn *c);
/* The error context the engine left on the connection (copied), or "". */
bool conn_take_error(conn *c, char *buf, size_t cap, uint64_t *uid, bool *has_uid);
void conn_clear_error(conn *c);
/* The command being run is answered: its latency (from its first run) goes to
 * the kind's histogram, once. */
void conn_command_done(conn *c, host_op_kind kind);
/* The workers' figures added up (for metrics; any thread). */
void host_counts_sum(host_counts *out);
/* Lets go of the item of a parked store, if any. */
void conn_drop_parked_item(conn *c);

/* Writes the queued output (arming the write event if the socket takes less);
 * a quitting connection whose answers are all written is finished: its write
 * side shut, it reads to discard until the client closes, then closes. */
void conn_flush(conn *c);
/* Closes now: the engine's disconnect, the socket, the events. */
void conn_close(conn *c);
/* Whether the connection is to be read now (conn.c says when). */
bool conn_may_read(const conn *c);
/* Arms or stops reading, as conn_may_read says. */
void conn_update_reading(conn *c);
/* The unread answers a connection may hold before it stops being read (less
 * before authentication). */
size_t conn_output_limit(const conn *c);

#endif
