/*
 * kvhost - a memcached-binary-protocol server that loads a storage engine.
 *
 *   kvhost -e ENGINE.so [-c CONFIG] [-d DATADIR] [-l ADDR] [-p PORT] [-t THREADS]
 *          [-m MAX_CONNS] [-b MAX_PACKET] [-O MAX_OUTPUT] [-i IDLE_S] [-R REQUEST_S]
 *          [-A AUTH_S] [-U USERS] [-B BUCKET] [-v]
 *
 * The main thread accepts connections and hands each to one of the worker
 * threads, which own their connections (libevent base per worker). Engine
 * threads reach a connection only through notify_io_complete, which queues the
 * connection on its worker. SIGTERM / SIGINT stop the server cleanly: workers
 * stop, connections close (the engine's disconnect runs for each), and the
 * engine's destroy flushes its data.
 *
 * What one client can hold is bounded: its unread answers (-O; reading stops
 * past it), the input behind a parked command, packets before authentication
 * (small ones only), and its time: a started request must arrive whole within
 * -R seconds, a login within -A, and with -i a connection that completes no
 * request for that long is closed. Accepting pauses when descriptors run out.
 */
#include "authq.h"
#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "hostapi.h"
#include "metrics.h"
#include "protocol.h"
#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static worker *workers;
static int nworkers;
static struct event_base *main_base;
static _Atomic unsigned next_worker;
static struct evconnlistener *listener, *tls_listener_ev;
static struct event *accept_resume_ev;

/* Bytes read from a socket per readable event at most (then the others). */
#define READ_CHUNK     (16 * 1024)
#define READ_PER_EVENT (256 * 1024)
/* Runs the commands the input holds and writes their answers, as far as the
 * output limit lets; closes a connection whose client sent FIN once all it
 * sent is answered; arms or stops reading. */
static void kvhost_pump(conn *c)
{
    for (;;) {
        bool held = protocol_read(c);
        conn_flush(c);
        if (c->closed)
            return;
        if (!held || c->parked || evbuffer_get_length(c->out) >= conn_output_limit(c))
            break;
    }
    /* After FIN: every whole packet ran (none is held) and none is parked. */
    if (c->eof && !c->parked && !c->closing &&
        evbuffer_get_length(c->out) < conn_output_limit(c)) {
        c->closing = true;
        conn_flush(c);
        if (c->closed)
            return;
    }
    conn_update_reading(c);
}

/* Reads through TLS into the input buffer, as far as the connection may
 * read and TLS has bytes (some may be buffered in TLS already). */
static void read_tls(conn *c)
{
    if (c->tls_write_wants_read) {
        conn_flush(c); /* the peer's bytes a write waited for may be here */
        if (c->closed)
            return;
    }
    for (size_t total = 0; conn_may_read(c) && total < READ_PER_EVENT;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
            conn_close(c); /* out of memory */
            return;
        }
        tls_io how;
        size_t n = tls_read(c->ssl, v.iov_base,
                            v.iov_len < READ_CHUNK ? v.iov_len : READ_CHUNK, &how);
        v.iov_len = n;
        evbuffer_commit_space(c->in, &v, 1);
        total += n;
        atomic_fetch_add_explicit(&c->w->counts.bytes_in, n, memory_order_relaxed);
        if (how == TLS_DONE) {
            if (n == READ_CHUNK || SSL_pending(c->ssl) > 0)
                continue;
            break;
        }
        if (how == TLS_WANT_WRITE) {
            c->tls_read_wants_write = true; /* on_writable reads again */
            event_add(c->wev, NULL);
            conn_update_reading(c);
        } else if (how == TLS_EOF) {
            c->eof = true;
            c->eof_at = host_now_ms();
        } else if (how == TLS_ERROR) {
            atomic_fetch_add(&host.tls_errors, 1);
            if (host.verbose)
                fprintf(stderr, "kvhost: TLS error from %s; closing the connection\n",
                        c->peer);
            conn_close(c); /* not TLS, a failed handshake, or a broken connection */
        }
        break;
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    conn_ref(c); /* the protocol may close the connection: keep c until done */
    if (c->draining) {
        char sink[4096];
        ssize_t n;
        while ((n = read(fd, sink, sizeof(sink))) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_close(c);
        conn_unref(c);
        return;
    }
    bool was_empty = evbuffer_get_length(c->in) == 0;
    if (c->ssl != NULL)
        read_tls(c);
    /* Straight into the input buffer with read(2): one system call when the
     * socket holds less than the space offered (evbuffer_read would first ask
     * the kernel how much there is, and then read again to see EAGAIN). */
    for (size_t total = 0;
         c->ssl == NULL && conn_may_read(c) && total < READ_PER_EVENT;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1) {
            conn_close(c); /* out of memory */
            break;
        }
        ssize_t n = read(fd, v.iov_base, v.iov_len < READ_CHUNK ? v.iov_len : READ_CHUNK);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            total += (size_t)n;
            atomic_fetch_add_explicit(&c->w->counts.bytes_in, (uint64_t)n,
                                      memory_order_relaxed);
            if ((size_t)n == READ_CHUNK)
                continue; /* there may be more */
            break;
        }
        evbuffer_commit_space(c->in, &v, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            c->eof = true; /* the client is done sending: answer it all, then close */
            c->eof_at = host_now_ms();
            break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c); /* the connection broke */
        break;
    }
    if (!c->closed) {
        if (was_empty && evbuffer_get_length(c->in) > 0)
            c->req_started = host_now_ms();
        kvhost_pump(c);
    }
    conn_unref(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    conn_ref(c);
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        conn_update_reading(c);
        event_active(c->rev, EV_READ, 0); /* the read that waited goes on */
    }
    conn_flush(c);
    /* Room again: run what was held back and read on. */
    if (!c->closed && !c->draining && evbuffer_get_length(c->out) < conn_output_limit(c))
        kvhost_pump(c);
    conn_unref(c);
}

/* Why a connection's time is up, or NULL. A parked command is the engine's
 * (its own timeouts answer it); a closing one gets the request deadline to
 * have its last answers read. */
static const char *deadline_passed(conn *c, uint64_t now)
{
    if (c->closing) {
        if (c->closing_since == 0)
            c->closing_since = now;
        /* Answers written and the write side shut: the client has a moment
         * to read them; the request deadline to read them at all. */
        uint64_t limit =
            c->draining ? CONN_DRAIN_MS : (uint64_t)host.request_timeout_s * 1000;
        return now - c->closing_since >= limit ? "its last answers were not read in time"
                                               : NULL;
    }
    if (c->eof && now - c->eof_at >= (uint64_t)host.request_timeout_s * 1000)
        return "the client left and its last request did not finish in time";
    if (c->parked)
        return NULL;
    if (host.users != NULL && !c->authed &&
        now - c->accepted_at >= (uint64_t)host.auth_timeout_s * 1000)
        return "it did not authenticate in time";
    if (evbuffer_get_length(c->in) > 0 && c->req_started != 0 &&
        now - c->req_started >= (uint64_t)host.request_timeout_s * 1000)
        return "a request did not arrive whole in time";
    if (host.idle_timeout_s > 0 &&
        now - c->last_done >= (uint64_t)host.idle_timeout_s * 1000)
        return "it completed no request in the idle timeout";
    return NULL;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    uint64_t now = host_now_ms();
    for (conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        const char *why = deadline_passed(c, now);
        if (why == NULL)
            continue;
        atomic_fetch_add(&host.deadline_closes, 1);
        if (host.verbose)
            fprintf(stderr, "kvhost: closing a connection from %s: %s\n", c->peer, why);
        conn_close(c);
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    pthread_mutex_lock(&w->lock);
    conn *list = w->notify_head;
    w->notify_head = NULL;
    pthread_mutex_unlock(&w->lock);
    while (list != NULL) {
        /* One at a time under the lock: a connection leaves the list (and may
         * be queued again) only once its link has been read. */
        pthread_mutex_lock(&w->lock);
        conn *c = list;
        list = c->notify_next;
        c->notify_next = NULL;
        c->notify_queued = false;
        engine_errc status = c->notify_status;
        pthread_mutex_unlock(&w->lock);
        if (c->closed)
            atomic_fetch_add(&host.notifies_dropped, 1); /* the client is gone */
        else if (!c->parked)
            atomic_fetch_add(&host.notifies_duplicate, 1); /* nothing waits for it */
        else if (protocol_resume(c, status))
            kvhost_pump(c); /* what the client sent meanwhile */
        conn_unref(c);      /* taken by notify_io_complete */
    }
}

static bool is_loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

static void on_accepted(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    int n;
    pthread_mutex_lock(&w->lock);
    n = w->nnew;
    new_conn fresh[sizeof(w->new_fds) / sizeof(w->new_fds[0])];
    memcpy(fresh, w->new_fds, (size_t)n * sizeof(fresh[0]));
    w->nnew = 0;
    pthread_mutex_unlock(&w->lock);
    uint64_t now = host_now_ms();
    for (int i = 0; i < n; i++) {
        int fd = fresh[i].fd;
        evutil_make_socket_nonblocking(fd);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = conn_new(w, fd);
        if (c != NULL) {
            c->in = evbuffer_new();
            c->out = evbuffer_new();
            c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, c);
            c->wev = event_new(w->base, fd, EV_WRITE, on_writable, c);
        }
        if (c == NULL || c->in == NULL || c->out == NULL || c->rev == NULL ||
            c->wev == NULL) {
            if (c != NULL) {
                c->closed = true; /* never opened to the engine */
                if (c->rev)
                    event_free(c->rev);
                if (c->wev)
                    event_free(c->wev);
                if (c->in)
                    evbuffer_free(c->in);
                if (c->out)
                    evbuffer_free(c->out);
                conn_unref(c);
            }
            close(fd);
            atomic_fetch_sub(&host.conns, 1);
            continue;
        }
        if (fresh[i].tls) {
            c->ssl = SSL_new(host.tls_ctx);
            if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
                conn_link(c);
                conn_close(c); /* out of memory */
                continue;
            }
            SSL_set_accept_state(c->ssl); /* the handshake runs in the first reads */
            atomic_fetch_add(&host.tls_conns, 1);
        }
        c->loopback = fresh[i].loopback;
        c->authed = host.users == NULL;
        c->accepted_at = c->last_done = now;
        snprintf(c->peer, sizeof(c->peer), "%s", fresh[i].peer);
        conn_link(c);
        conn_update_reading(c);
    }
}

/* arg: the listener's kind, &tls_listener or &plain_listener. */
static const bool plain_listener = false, tls_listener = true;

static void on_listen(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int len, void *arg)
{
    (void)l;
    (void)len;
    char peer[INET6_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)addr)->sin_addr, peer, sizeof(peer));
    else if (addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)addr)->sin6_addr, peer,
                  sizeof(peer));
    if (atomic_fetch_add(&host.conns, 1) >= host.max_conns) {
        atomic_fetch_sub(&host.conns, 1);
        atomic_fetch_add(&host.rejected_conns, 1);
        close(fd);
        return;
    }
    atomic_fetch_add(&host.total_conns, 1);
    worker *w = &workers[atomic_fetch_add(&next_worker, 1) % (unsigned)nworkers];
    pthread_mutex_lock(&w->lock);
    bool queued = w->nnew < (int)(sizeof(w->new_fds) / sizeof(w->new_fds[0]));
    if (queued) {
        w->new_fds[w->nnew].fd = fd;
        w->new_fds[w->nnew].tls = *(const bool *)arg;
        w->new_fds[w->nnew].loopback = is_loopback(addr);
        memcpy(w->new_fds[w->nnew].peer, peer, sizeof(peer));
        w->nnew++;
    }
    pthread_mutex_unlock(&w->lock);
    if (!queued) {
        atomic_fetch_sub(&host.conns, 1);
        close(fd);
        return;
    }
    event_active(w->accept_ev, EV_READ, 0);
}

/* accept failed: out of descriptors (or memory), accepting pauses for a
 * second instead of failing again at once, with one log line per 10 s. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    static time_t last_said;
    static uint64_t unsaid;
    time_t now = time(NULL);
    bool pause = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    if (pause) {
        evconnlistener_disable(l);
        atomic_fetch_add(&host.accept_pauses, 1);
        struct timeval tv = {1, 0};
        event_add(accept_resume_ev, &tv);
    }
    if (now - last_said >= 10) {
        fprintf(stderr,
                "kvhost: cannot accept a connection: %s%s (%llu more since the last "
                "line)\n",
                strerror(err), pause ? "; accepting again in 1 s" : "",
                (unsigned long long)unsaid);
        last_said = now;
        unsaid = 0;
    } else {
        unsaid++;
    }
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    evconnlistener_enable(listener);
    if (tls_listener_ev != NULL)
        evconnlistener_enable(tls_listener_ev);
}

static void *worker_loop(void *arg)
{
    worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    fprintf(stderr, "kvhost: signal %d: shutting down\n", (int)sig);
    event_base_loopbreak(main_base);
}

/* SIGHUP: the cluster map is read again (a newer one moves vbuckets). */
static void on_hangup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    char why[600];
    int rc = cluster_reload_map(why, sizeof(why));
    fprintf(stderr, "kvhost: SIGHUP: %s%s\n", rc < 0 ? "the map in use stays: " : "",
            why);
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: kvhost -e ENGINE.so [-c CONFIG] [-d DATADIR] [-l ADDR] [-p PORT]\n"
        "              [-t THREADS] [-m MAX_CONNS] [-b MAX_PACKET] [-O MAX_OUTPUT]\n"
        "              [-i IDLE_S] [-R REQUEST_S] [-A AUTH_S] [-U USERS] [-B BUCKET]\n"
        "              [-C CHAIN.pem -K KEY.pem [-S TLS_PORT] [-V CLIENT_CA.pem]]\n"
        "              [-M MAP.json -N NODE] [-P METRICS_PORT [-L METRICS_ADDR]] [-v]\n"
        "  -e  engine shared object (create_instance)\n"
        "  -c  engine configuration string key=value;...\n"
        "  -d  data directory (passed to the engine as dbname)\n"
        "  -l  listen address or host name (default 127.0.0.1; only loopback without\n"
        "      SASL users)\n"
        "  -p  port (default 11210)\n"
        "  -t  worker threads (default 2)\n"
        "  -m  maximum connections (default 1024)\n"
        "  -b  maximum packet body in bytes (default 21 MiB)\n"
        "  -O  unread answers per connection, in bytes, before its reading stops\n"
        "      (default 4 MiB)\n"
        "  -i  close a connection that completes no request for this many seconds\n"
        "      (default 0: never)\n"
        "  -R  a started request must arrive whole within this many seconds (default "
        "60)\n"
        "  -A  with -U: a connection must authenticate within this many seconds\n"
        "      (default 30)\n"
        "  -U  users file (scripts/kvhost-user, readable by its owner only): SASL\n"
        "      (SCRAM-SHA512/256/1, PLAIN) is required, and any address may be used\n"
        "  -B  the bucket's name for Couchbase clients (default 'default')\n"
        "  -C  TLS: the server's certificate chain (PEM); with -K, a TLS listener\n"
        "  -K  TLS: the server's private key (PEM)\n"
        "  -S  TLS port (default 11207)\n"
        "  -V  TLS: require client certificates signed by these CAs (PEM)\n"
        "  -M  cluster map (JSON): serve as one node of several, each vbucket on the\n"
        "      node the map names; SIGHUP reads it again (docs/cluster.md)\n"
        "  -N  this node's index in the map's \"nodes\" (with -M)\n"
        "  -P  serve GET /metrics (Prometheus) on this HTTP port (default: off; 0: any\n"
        "      free port); with -U it asks for HTTP basic auth of a user\n"
        "  -L  the metrics address (default 127.0.0.1; only loopback without -U)\n"
        "  -v  log more: malformed packets, closed connections, the engine's info\n");
    exit(2);
}

static engine_handle *load_engine(const char *path, const char *config)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "kvhost: cannot load %s: %s\n", path, dlerror());
        exit(1);
    }
    engine_create_instance_fn create;
    *(void **)&create = dlsym(dl, "create_instance");
    engine_handle *h = NULL;
    engine_errc rc =
        create ? create(ENGINE_API_VERSION, kvhost_server_api, &h) : ENGINE_NOT_SUPPORTED;
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "kvhost: create_instance of %s failed: 0x%x\n", path, rc);
        exit(1);
    }
    rc = h->initialize(h, config);
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "kvhost: the engine refused its configuration '%s': 0x%x\n",
                config, rc);
        h->destroy(h, true);
        exit(1);
    }
    return h;
}

static int bound_port(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                          : ((const struct sockaddr_in *)a)->sin_port);
}

/* The addresses to listen on: a numeric address, or a host name's addresses
 * in getaddrinfo's order (the first that binds is used). The list, or NULL
 * with a reason. */
static struct addrinfo *resolve(const char *addr, int port, char *why, size_t whylen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(addr, service, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(why, whylen, "cannot listen on '%s': %s", addr,
                 rc != 0 ? gai_strerror(rc) : "no address");
        return NULL;
    }
    return res;
}

static const char *address_text(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%d", ip, bound_port(a));
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%d", ip, bound_port(a));
    }
    return buf;
}

/* Descriptors: the soft limit is raised to the hard one; max_conns is lowered
 * to what is left after those kept for the engine's files (ep_engine: a
 * segment being written per shard, up to 64, and up to 64 kept open for
 * reads), the listener, the event loops and stdio. */
static void fit_descriptors(void)
{
    const rlim_t kept = 192;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    if ((rlim_t)host.max_conns + kept <= rl.rlim_cur)
        return;
    unsigned was = host.max_conns;
    host.max_conns =
        (unsigned)(rl.rlim_cur > 2 * kept ? rl.rlim_cur - kept : rl.rlim_cur / 2);
    fprintf(
        stderr,
        "kvhost: max_conns lowered from %u to %u: the descriptor limit (ulimit -n) is "
        "%llu and %llu are kept for the engine's files and the server\n",
        was, host.max_conns, (unsigned long long)rl.rlim_cur, (unsigned long long)kept);
}

/* A listener on the first of `addrs` that binds (arg: the listener's kind),
 * or NULL with the reason printed. */
static struct evconnlistener *listen_on(struct addrinfo *addrs, const char *addr,
                                        int port, const bool *kind)
{
    struct evconnlistener *l = NULL;
    int bind_errno = 0;
    for (struct addrinfo *a = addrs; a != NULL && l == NULL; a = a->ai_next) {
        l = evconnlistener_new_bind(main_base, on_listen, (void *)kind,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
                                    a->ai_addr, (int)a->ai_addrlen);
        bind_errno = errno;
    }
    if (l == NULL)
        fprintf(stderr, "kvhost: cannot listen on %s:%d: %s\n", addr, port,
                strerror(bind_errno));
    else
        evconnlistener_set_error_cb(l, on_accept_error);
    return l;
}

/* A start that fails after the listeners and the engine are up: says why,
 * closes the listeners, lets the engine go. The exit status. */
static int abandon_start(const char *why)
{
    fprintf(stderr, "kvhost: %s\n", why);
    evconnlistener_free(listener);
    if (tls_listener_ev != NULL)
        evconnlistener_free(tls_listener_ev);
    host.engine->destroy(host.engine, true);
    return 1;
}

static int positive(const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 0 || v > 1000000000)
        usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *engine_path = NULL, *config = "", *datadir = NULL, *addr = "127.0.0.1",
               *users = NULL;
    const char *tls_chain = NULL, *tls_key = NULL, *tls_ca = NULL, *map = NULL;
    int node = -1, metrics_port = -1;
    const char *metrics_addr = "127.0.0.1";
    int port = 11210, tls_port = 11207, threads = 2, opt;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN); /* until its handler is in place (after the map) */
    host.max_conns = 1024;
    host.max_packet = 21u << 20;
    host.max_output = 4u << 20;
    host.request_timeout_s = 60;
    host.auth_timeout_s = 30;
    const char *bucket = "default";
    while ((opt = getopt(argc, argv, "e:c:d:l:p:t:m:b:O:i:R:A:U:B:C:K:S:V:M:N:P:L:v")) !=
           -1) {
        switch (opt) {
        case 'e':
            engine_path = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'd':
            datadir = optarg;
            break;
        case 'l':
            addr = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'm':
            host.max_conns = (unsigned)positive(optarg);
            break;
        case 'b':
            host.max_packet = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'O':
            host.max_output = (size_t)positive(optarg);
            break;
        case 'i':
            host.idle_timeout_s = positive(optarg);
            break;
        case 'R':
            host.request_timeout_s = positive(optarg);
            break;
        case 'A':
            host.auth_timeout_s = positive(optarg);
            break;
        case 'U':
            users = optarg;
            break;
        case 'B':
            bucket = optarg;
            break;
        case 'C':
            tls_chain = optarg;
            break;
        case 'K':
            tls_key = optarg;
            break;
        case 'S':
            tls_port = positive(optarg);
            break;
        case 'V':
            tls_ca = optarg;
            break;
        case 'M':
            map = optarg;
            break;
        case 'N':
            node = positive(optarg);
            break;
        case 'P': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 65535)
                usage();
            metrics_port = (int)v;
            break;
        }
        case 'L':
            metrics_addr = optarg;
            break;
        case 'v':
            host.verbose = true;
            break;
        default:
            usage();
        }
    }
    if (engine_path == NULL || port <= 0 || port > 65535 || threads < 1 || threads > 64 ||
        host.max_conns == 0 || host.max_output == 0 || host.request_timeout_s == 0 ||
        host.auth_timeout_s == 0 || tls_port <= 0 || tls_port > 65535 ||
        (tls_chain == NULL) != (tls_key == NULL) ||
        (tls_ca != NULL && tls_chain == NULL) || (map == NULL) != (node < 0))
        usage();
    if (tls_chain != NULL) {
        char why[768];
        host.tls_ctx = tls_server_context(tls_chain, tls_key, tls_ca, why, sizeof(why));
        if (host.tls_ctx == NULL) {
            fprintf(stderr, "kvhost: %s\n", why);
            return 2;
        }
    }
    static auth_db db;
    if (users != NULL) {
        char why[512];
        struct stat st;
        if (stat(users, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
            fprintf(stderr,
                    "kvhost: refusing the users file %s: it is readable or writable by "
                    "others (mode %03o); chmod 600 it\n",
                    users, (unsigned)(st.st_mode & 0777));
            return 2;
        }
        if (auth_load(&db, users, why, sizeof(why)) != 0) {
            fprintf(stderr, "kvhost: %s\n", why);
            return 2;
        }
        host.users = &db;
    }
    char why[512];
    struct addrinfo *addrs = resolve(addr, port, why, sizeof(why));
    if (addrs == NULL) {
        fprintf(stderr, "kvhost: %s\n", why);
        return 2;
    }
    if (metrics_port >= 0 && host.users == NULL) {
        struct addrinfo *ma = resolve(metrics_addr, metrics_port, why, sizeof(why));
        bool loop = ma != NULL;
        for (struct addrinfo *a = ma; a != NULL; a = a->ai_next)
            loop = loop && is_loopback(a->ai_addr);
        if (ma != NULL)
            freeaddrinfo(ma);
        if (!loop) {
            fprintf(stderr,
                    "kvhost: refusing to serve metrics on %s: without SASL users (-U) "
                    "only loopback addresses are allowed\n",
                    metrics_addr);
            freeaddrinfo(addrs);
            return 2;
        }
    }
    for (struct addrinfo *a = addrs; a != NULL && host.users == NULL; a = a->ai_next) {
        if (!is_loopback(a->ai_addr)) {
            fprintf(stderr,
                    "kvhost: refusing to listen on %s: without SASL users only loopback "
                    "addresses are allowed\n",
                    addr);
            freeaddrinfo(addrs);
            return 2;
        }
    }
    fit_descriptors();
    if (host.users != NULL && authq_start(2, 64) != 0) {
        fprintf(stderr, "kvhost: cannot start the authentication threads\n");
        freeaddrinfo(addrs);
        return 1;
    }
    char full_config[4096];
    snprintf(full_config, sizeof(full_config), "%s%s%s%s", config,
             datadir && config[0] ? ";" : "", datadir ? "dbname=" : "",
             datadir ? datadir : "");
    evthread_use_pthreads();
    host.engine = load_engine(engine_path, full_config);
    host.engine->get_info(host.engine, &host.info);

    nworkers = threads;
    /* Aligned as each worker's counters are (their own cache lines). */
    workers = aligned_alloc(_Alignof(worker), (size_t)threads * sizeof(worker));
    if (workers == NULL) {
        fprintf(stderr, "kvhost: out of memory for %d workers\n", threads);
        host.engine->destroy(host.engine, true);
        freeaddrinfo(addrs);
        return 1;
    }
    memset(workers, 0, (size_t)threads * sizeof(worker));
    host.workers = workers;
    host.nworkers = threads;
    for (int i = 0; i < threads; i++) {
        worker *w = &workers[i];
        pthread_mutex_init(&w->lock, NULL);
        w->base = event_base_new();
        w->notify_ev = event_new(w->base, -1, 0, on_notify, w);
        w->accept_ev = event_new(w->base, -1, 0, on_accepted, w);
        w->sweep_ev = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
        struct timeval second = {1, 0};
        if (w->base == NULL || w->notify_ev == NULL || w->accept_ev == NULL ||
            w->sweep_ev == NULL || event_add(w->sweep_ev, &second) != 0) {
            fprintf(stderr, "kvhost: cannot set up worker %d\n", i);
            host.engine->destroy(host.engine, true);
            freeaddrinfo(addrs);
            return 1;
        }
        pthread_create(&w->tid, NULL, worker_loop, w);
    }

    main_base = event_base_new();
    listener = listen_on(addrs, addr, port, &plain_listener);
    if (listener != NULL && host.tls_ctx != NULL) {
        struct addrinfo *tls_addrs = resolve(addr, tls_port, why, sizeof(why));
        tls_listener_ev =
            tls_addrs ? listen_on(tls_addrs, addr, tls_port, &tls_listener) : NULL;
        if (tls_addrs != NULL)
            freeaddrinfo(tls_addrs);
        else
            fprintf(stderr, "kvhost: %s\n", why);
    }
    freeaddrinfo(addrs);
    if (listener == NULL || (host.tls_ctx != NULL && tls_listener_ev == NULL)) {
        if (listener != NULL)
            evconnlistener_free(listener);
        host.engine->destroy(host.engine, true);
        return 1;
    }
    accept_resume_ev = evtimer_new(main_base, on_accept_resume, NULL);
    struct sockaddr_storage bound, tls_bound;
    socklen_t blen = sizeof(bound), tlen = sizeof(tls_bound);
    snprintf(why, sizeof(why), "cannot read the listening socket's address");
    if (accept_resume_ev == NULL ||
        getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&bound, &blen) !=
            0 ||
        (tls_listener_ev != NULL &&
         getsockname(evconnlistener_get_fd(tls_listener_ev),
                     (struct sockaddr *)&tls_bound, &tlen) != 0) ||
        cluster_init(host.engine, bucket, bound_port(&bound),
                     tls_listener_ev ? bound_port(&tls_bound) : 0, datadir, why,
                     sizeof(why)) != 0 ||
        (map != NULL && cluster_use_map(map, (unsigned)node, why, sizeof(why)) != 0))
        return abandon_start(why);
    struct event *sigterm = evsignal_new(main_base, SIGTERM, on_signal, NULL);
    struct event *sigint = evsignal_new(main_base, SIGINT, on_signal, NULL);
    struct event *sighup = evsignal_new(main_base, SIGHUP, on_hangup, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    char where[80], tls_where[80] = "";
    if (tls_listener_ev != NULL)
        address_text(&tls_bound, tls_where, sizeof(tls_where));
    fprintf(stderr,
            "kvhost %s: %s on %s%s%s, %d worker threads, at most %u connections%s%s\n",
            KVHOST_VERSION, host.info->description,
            address_text(&bound, where, sizeof(where)), tls_where[0] ? ", TLS on " : "",
            tls_where, threads, host.max_conns, datadir ? ", data in " : "",
            datadir ? datadir : "");
    if (map != NULL)
        fprintf(stderr, "kvhost: node %d of the cluster map %s: %u vbuckets here\n", node,
                map, cluster_owned());
    if (metrics_port >= 0) {
        int mport = 0;
        if (metrics_start(metrics_addr, metrics_port, bucket, &mport, why, sizeof(why)) !=
            0)
            return abandon_start(why);
        fprintf(stderr, "kvhost: metrics on http://%s:%d/metrics%s\n", metrics_addr,
                mport, host.users != NULL ? " (basic auth)" : "");
    }
    event_base_dispatch(main_base);

    /* Shutdown: stop accepting, stop the workers, close every connection (the
     * engine's disconnect runs for each), then the engine (its destroy answers
     * any parked command and flushes the data). */
    evconnlistener_free(listener);
    if (tls_listener_ev != NULL)
        evconnlistener_free(tls_listener_ev);
    metrics_stop(); /* before the engine goes: a scrape reads its stats */
    for (int i = 0; i < threads; i++)
        event_base_loopbreak(workers[i].base);
    for (int i = 0; i < threads; i++)
        pthread_join(workers[i].tid, NULL);
    unsigned closed = 0;
    for (int i = 0; i < threads; i++)
        for (; workers[i].conns != NULL; closed++)
            conn_close(workers[i].conns);
    fprintf(stderr, "kvhost: closed %u client connections\n", closed);
    authq_stop();
    host.engine->destroy(host.engine, false);
    fprintf(stderr, "kvhost: stopped\n");
    event_free(accept_resume_ev);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    cluster_end();
    event_base_free(main_base);
    SSL_CTX_free(host.tls_ctx);
    return 0;
}
