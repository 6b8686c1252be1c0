/*
 * kvload - a binary-protocol load generator: N connections (one thread each)
 * send batches of `depth` pipelined GET/SET requests over K keys and wait for
 * all answers before the next batch.
 *
 *   kvload HOST PORT [--conns N] [--depth D] [--get-pct P] [--seconds S]
 *          [--keys K] [--value-size V]
 *
 * Prints ops/s and the p50/p99 of the batch round trip (for depth 1: of one
 * request). The keys are written once first, so gets hit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

typedef struct opts {
    const char *host;
    int port, conns, depth, get_pct, seconds, keys, vsize;
} opts;

typedef struct loader {
    const opts *o;
    int id;
    uint64_t ops, errors;
    uint64_t *lat;
    size_t nlat, cap;
} loader;

static int connect_to(const opts *o)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)o->port);
    inet_pton(AF_INET, o->host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("kvload: connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static size_t put_request(uint8_t *p, bool get, int keyno, int vsize)
{
    char key[32];
    int klen = snprintf(key, sizeof(key), "kvload:%08d", keyno);
    int extlen = get ? 0 : 8;
    uint32_t body = (uint32_t)(extlen + klen + (get ? 0 : vsize));
    p[0] = 0x80;
    p[1] = get ? 0x00 : 0x01;
    p[2] = 0;
    p[3] = (uint8_t)klen;
    p[4] = (uint8_t)extlen;
    memset(p + 5, 0, 19);
    uint32_t bl = htonl(body);
    memcpy(p + 8, &bl, 4);
    size_t n = 24;
    if (!get) {
        memset(p + n, 0, 8);
        n += 8;
    }
    memcpy(p + n, key, (size_t)klen);
    n += (size_t)klen;
    if (!get) {
        memset(p + n, 'v', (size_t)vsize);
        n += (size_t)vsize;
    }
    return n;
}

static bool read_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* Reads one response; its status. */
static int read_response(int fd, uint8_t *scratch, size_t cap)
{
    uint8_t h[24];
    if (!read_exact(fd, h, 24))
        return -1;
    uint32_t bl;
    memcpy(&bl, h + 8, 4);
    bl = ntohl(bl);
    if (bl > cap || !read_exact(fd, scratch, bl))
        return -1;
    return h[6] << 8 | h[7];
}

static void *load_main(void *arg)
{
    loader *l = arg;
    const opts *o = l->o;
    int fd = connect_to(o);
    size_t cap = (size_t)o->depth * (64 + (size_t)o->vsize);
    uint8_t *out = malloc(cap), *scratch = malloc(1 << 20);
    unsigned seed = 7919u * (unsigned)(l->id + 1);
    uint64_t end = now_ns() + (uint64_t)o->seconds * 1000000000u;
    while (now_ns() < end) {
        size_t n = 0;
        for (int i = 0; i < o->depth; i++) {
            bool get = (int)(rand_r(&seed) % 100) < o->get_pct;
            n += put_request(out + n, get, (int)(rand_r(&seed) % (unsigned)o->keys),
                             o->vsize);
        }
        uint64_t t0 = now_ns();
        if (write(fd, out, n) != (ssize_t)n) {
            perror("kvload: write");
            exit(1);
        }
        for (int i = 0; i < o->depth; i++) {
            int st = read_response(fd, scratch, 1 << 20);
            if (st < 0) {
                fprintf(stderr, "kvload: connection lost\n");
                exit(1);
            }
            if (st != 0)
                l->errors++;
        }
        if (l->nlat == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 65536;
            l->lat = realloc(l->lat, l->cap * sizeof(uint64_t));
        }
        l->lat[l->nlat++] = now_ns() - t0;
        l->ops += (uint64_t)o->depth;
    }
    close(fd);
    free(out);
    free(scratch);
    return NULL;
}

static void populate(const opts *o)
{
    int fd = connect_to(o);
    uint8_t *buf = malloc(64 + (size_t)o->vsize), scratch[256];
    for (int k = 0; k < o->keys; k++) {
        size_t n = put_request(buf, false, k, o->vsize);
        if (write(fd, buf, n) != (ssize_t)n ||
            read_response(fd, scratch, sizeof(scratch)) != 0) {
            fprintf(stderr, "kvload: populating key %d failed\n", k);
            exit(1);
        }
    }
    free(buf);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kvload HOST PORT [--conns N] [--depth D] [--get-pct P] "
                        "[--seconds S] [--keys K] [--value-size V]\n");
        return 2;
    }
    opts o = {argv[1], atoi(argv[2]), 4, 1, 90, 5, 10000, 100};
    for (int i = 3; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--conns"))
            o.conns = v;
        else if (!strcmp(argv[i], "--depth"))
            o.depth = v;
        else if (!strcmp(argv[i], "--get-pct"))
            o.get_pct = v;
        else if (!strcmp(argv[i], "--seconds"))
            o.seconds = v;
        else if (!strcmp(argv[i], "--keys"))
            o.keys = v;
        else if (!strcmp(argv[i], "--value-size"))
            o.vsize = v;
    }
    populate(&o);
    loader *ls = calloc((size_t)o.conns, sizeof(loader));
    pthread_t *t = calloc((size_t)o.conns, sizeof(pthread_t));
    uint64_t t0 = now_ns();
    for (int i = 0; i < o.conns; i++) {
        ls[i] = (loader){&o, i, 0, 0, NULL, 0, 0};
        pthread_create(&t[i], NULL, load_main, &ls[i]);
    }
    uint64_t ops = 0, errors = 0;
    size_t nlat = 0;
    for (int i = 0; i < o.conns; i++) {
        pthread_join(t[i], NULL);
        ops += ls[i].ops;
        errors += ls[i].errors;
        nlat += ls[i].nlat;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t *all = malloc((nlat + 1) * sizeof(uint64_t));
    size_t at = 0;
    for (int i = 0; i < o.conns; i++) {
        memcpy(all + at, ls[i].lat, ls[i].nlat * sizeof(uint64_t));
        at += ls[i].nlat;
        free(ls[i].lat);
    }
    printf("%10.0f ops/s  p50 %7.1f us  p99 %7.1f us  (%d conns, depth %d, %d%% gets, "
           "%llu errors)\n",
           (double)ops / secs, (double)percentile(all, nlat, 0.5) / 1e3,
           (double)percentile(all, nlat, 0.99) / 1e3, o.conns, o.depth, o.get_pct,
           (unsigned long long)errors);
    return errors ? 1 : 0;
}
