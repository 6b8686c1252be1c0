/*
 * kvhost - a memcached-binary-protocol server that loads a storage engine.
 *
 *   kvhost -e ENGINE.so [-c CONFIG] [-d DATADIR] [-l ADDR] [-p PORT] [-t THREADS]
 *          [-m MAX_CONNS] [-b MAX_PACKET] [-i IDLE_S] [-U USERS] [-v]
 *
 * The main thread accepts connections and hands each to one of the worker
 * threads, which own their connections (libevent base per worker). Engine
 * threads reach a connection only through notify_io_complete, which queues the
 * connection on its worker. SIGTERM / SIGINT stop the server cleanly: workers
 * stop, connections close (the engine's disconnect runs for each), and the
 * engine's destroy flushes its data.
 */
#include "kvhost.h"

#include "cluster.h"

#include <dlfcn.h>
#include <errno.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

kvhost host;

static worker *workers;
static int nworkers;
static struct event_base *main_base;
static _Atomic unsigned next_worker;

void kvhost_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    conn_drop_parked_item(c);
    auth_scram_clear(&c->scram);
    if (c->durable_timer != NULL)
        event_free(c->durable_timer);
    c->durable_timer = NULL;
    host.engine->disconnect(host.engine, c);
    event_free(c->rev);
    event_free(c->wev);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    close(c->fd);
    c->rev = c->wev = NULL;
    c->in = c->out = NULL;
    atomic_fetch_sub(&host.conns, 1);
    conn_unref(c); /* the socket's reference; engine reserves keep the rest */
}

/* Writes what is queued; arms the write event if the socket takes less, and
 * closes a quitting connection once all is written. */
void kvhost_flush(conn *c)
{
    if (c->closed)
        return;
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            kvhost_close(c);
            return;
        }
        if (n == 0)
            break;
    }
    if (evbuffer_get_length(c->out) > 0)
        event_add(c->wev, NULL);
    else if (c->closing)
        kvhost_close(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (what & EV_TIMEOUT) {
        kvhost_close(c); /* idle */
        return;
    }
    conn_ref(c); /* protocol_read may close the connection: keep c until done */
    /* Straight into the input buffer with read(2): one system call when the
     * socket holds less than the space offered (evbuffer_read would first ask
     * the kernel how much there is, and then read again to see EAGAIN). */
    for (;;) {
        struct evbuffer_iovec v;
        const size_t want = 16 * 1024;
        if (evbuffer_reserve_space(c->in, (ev_ssize_t)want, &v, 1) < 1) {
            kvhost_close(c); /* out of memory */
            break;
        }
        ssize_t n = read(fd, v.iov_base, v.iov_len < want ? v.iov_len : want);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            if ((size_t)n == want)
                continue; /* there may be more */
            break;
        }
        evbuffer_commit_space(c->in, &v, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            kvhost_close(c); /* the client left */
            break;
        }
        break;
    }
    if (!c->closed) {
        protocol_read(c);
        kvhost_flush(c);
    }
    conn_unref(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    conn_ref(c);
    kvhost_flush(c);
    conn_unref(c);
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
        conn *c = list;
        list = c->notify_next;
        if (c->closed)
            atomic_fetch_add(&host.notifies_dropped, 1); /* the client is gone */
        else
            protocol_resume(c, c->notify_status);
        conn_unref(c); /* taken by notify_io_complete */
    }
}

static void on_accepted(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    int fds[256], n;
    pthread_mutex_lock(&w->lock);
    n = w->nnew;
    memcpy(fds, w->new_fds, (size_t)n * sizeof(int));
    w->nnew = 0;
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < n; i++) {
        evutil_make_socket_nonblocking(fds[i]);
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = conn_new(w, fds[i]);
        if (c != NULL) {
            c->in = evbuffer_new();
            c->out = evbuffer_new();
            c->rev = event_new(w->base, fds[i], EV_READ | EV_PERSIST, on_readable, c);
            c->wev = event_new(w->base, fds[i], EV_WRITE, on_writable, c);
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
            close(fds[i]);
            atomic_fetch_sub(&host.conns, 1);
            continue;
        }
        c->authed = host.users == NULL;
        struct timeval tv = {host.idle_timeout_s, 0};
        event_add(c->rev, host.idle_timeout_s > 0 ? &tv : NULL);
    }
}

static void on_listen(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int len, void *arg)
{
    (void)l;
    (void)addr;
    (void)len;
    (void)arg;
    if (atomic_fetch_add(&host.conns, 1) >= host.max_conns) {
        atomic_fetch_sub(&host.conns, 1);
        atomic_fetch_add(&host.rejected_conns, 1);
        close(fd);
        return;
    }
    atomic_fetch_add(&host.total_conns, 1);
    worker *w = &workers[atomic_fetch_add(&next_worker, 1) % (unsigned)nworkers];
    pthread_mutex_lock(&w->lock);
    bool queued = w->nnew < (int)(sizeof(w->new_fds) / sizeof(int));
    if (queued)
        w->new_fds[w->nnew++] = fd;
    pthread_mutex_unlock(&w->lock);
    if (!queued) {
        atomic_fetch_sub(&host.conns, 1);
        close(fd);
        return;
    }
    event_active(w->accept_ev, EV_READ, 0);
}

static void *worker_main(void *arg)
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

static void usage(void)
{
    fprintf(
        stderr,
        "usage: kvhost -e ENGINE.so [-c CONFIG] [-d DATADIR] [-l ADDR] [-p PORT]\n"
        "              [-t THREADS] [-m MAX_CONNS] [-b MAX_PACKET] [-i IDLE_S] [-U "
        "USERS]\n"
        "              [-B BUCKET] [-v]\n"
        "  -e  engine shared object (create_instance)\n"
        "  -c  engine configuration string key=value;...\n"
        "  -d  data directory (passed to the engine as dbname)\n"
        "  -l  listen address (default 127.0.0.1; only loopback without SASL users)\n"
        "  -p  port (default 11210)\n"
        "  -t  worker threads (default 2)\n"
        "  -m  maximum connections (default 1024)\n"
        "  -b  maximum packet body in bytes (default 21 MiB)\n"
        "  -i  idle timeout in seconds (default 0: none)\n"
        "  -U  users file (scripts/kvhost-user): SASL (SCRAM-SHA512/256/1, PLAIN) is\n"
        "      required, and any address may be used\n"
        "  -B  the bucket's name for Couchbase clients (default 'default')\n");
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

static bool is_loopback(const char *addr)
{
    struct in_addr a;
    return inet_pton(AF_INET, addr, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

int main(int argc, char **argv)
{
    const char *engine_path = NULL, *config = "", *datadir = NULL, *addr = "127.0.0.1",
               *users = NULL;
    int port = 11210, threads = 2, opt;
    host.max_conns = 1024;
    host.max_packet = 21u << 20;
    const char *bucket = "default";
    while ((opt = getopt(argc, argv, "e:c:d:l:p:t:m:b:i:U:B:v")) != -1) {
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
            host.max_conns = (unsigned)atoi(optarg);
            break;
        case 'b':
            host.max_packet = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'i':
            host.idle_timeout_s = atoi(optarg);
            break;
        case 'U':
            users = optarg;
            break;
        case 'B':
            bucket = optarg;
            break;
        case 'v':
            host.verbose = true;
            break;
        default:
            usage();
        }
    }
    if (engine_path == NULL || port <= 0 || port > 65535 || threads < 1 || threads > 64)
        usage();
    static auth_db db;
    if (users != NULL) {
        char why[512];
        if (auth_load(&db, users, why, sizeof(why)) != 0) {
            fprintf(stderr, "kvhost: %s\n", why);
            return 2;
        }
        host.users = &db;
    }
    if (host.users == NULL && !is_loopback(addr)) {
        fprintf(stderr,
                "kvhost: refusing to listen on %s: without SASL users only loopback "
                "addresses are allowed\n",
                addr);
        return 2;
    }
    char full_config[4096];
    snprintf(full_config, sizeof(full_config), "%s%s%s%s", config,
             datadir && config[0] ? ";" : "", datadir ? "dbname=" : "",
             datadir ? datadir : "");
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    host.engine = load_engine(engine_path, full_config);
    host.engine->get_info(host.engine, &host.info);

    nworkers = threads;
    workers = calloc((size_t)threads, sizeof(worker));
    for (int i = 0; i < threads; i++) {
        worker *w = &workers[i];
        pthread_mutex_init(&w->lock, NULL);
        w->base = event_base_new();
        w->notify_ev = event_new(w->base, -1, 0, on_notify, w);
        w->accept_ev = event_new(w->base, -1, 0, on_accepted, w);
        pthread_create(&w->tid, NULL, worker_main, w);
    }

    main_base = event_base_new();
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    struct evconnlistener *listener = evconnlistener_new_bind(
        main_base, on_listen, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
        (struct sockaddr *)&sin, sizeof(sin));
    if (listener == NULL) {
        fprintf(stderr, "kvhost: cannot listen on %s:%d: %s\n", addr, port,
                strerror(errno));
        host.engine->destroy(host.engine, true);
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    char why[512] = "cannot read the listening socket's address";
    if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&bound, &blen) !=
            0 ||
        cluster_init(host.engine, bucket, bound_port(&bound), datadir, why,
                     sizeof(why)) != 0) {
        fprintf(stderr, "kvhost: %s\n", why);
        evconnlistener_free(listener);
        host.engine->destroy(host.engine, true);
        return 1;
    }
    struct event *sigterm = evsignal_new(main_base, SIGTERM, on_signal, NULL);
    struct event *sigint = evsignal_new(main_base, SIGINT, on_signal, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    fprintf(stderr, "kvhost %s: %s on %s:%d, %d worker threads%s%s\n", KVHOST_VERSION,
            host.info->description, addr, port, threads, datadir ? ", data in " : "",
            datadir ? datadir : "");
    event_base_dispatch(main_base);

    /* Shutdown: stop accepting, stop the workers, then the engine (its destroy
     * answers any parked command and flushes the data). */
    evconnlistener_free(listener);
    for (int i = 0; i < threads; i++)
        event_base_loopbreak(workers[i].base);
    for (int i = 0; i < threads; i++)
        pthread_join(workers[i].tid, NULL);
    host.engine->destroy(host.engine, false);
    fprintf(stderr, "kvhost: stopped\n");
    event_free(sigterm);
    event_free(sigint);
    event_base_free(main_base);
    return 0;
}
