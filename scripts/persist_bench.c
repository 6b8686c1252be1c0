/*
 * persist_bench - measures ep_engine's persistence and prints each figure next
 * to a baseline measured in the same run, in the same directory.
 *
 *   persist_bench /path/to/ep_engine.so DIR [--items N] [--big-items N]
 *
 * 1. Flusher throughput: N items of 100 B and M of 4 KiB stored, until the
 *    queue is empty, against sequential 1 MiB writes + one fsync of as many
 *    bytes, through the page cache (dd bs=1M conv=fsync) and with O_DIRECT
 *    (dd oflag=direct); the faster of the two is the baseline. Three
 *    alternating rounds, median.
 * 2. Durable write latency (set -> notify -> re-call) against a bare 4 KiB
 *    write + fsync.
 * 3. Warmup of the N items after a clean shutdown, cold cache, each in a
 *    fresh process as at a restart: items/s and MB/s against reading the same
 *    files sequentially, cold, through the page cache and with O_DIRECT (the
 *    faster is the baseline); three rounds, median.
 * 4. Disk bytes after compaction against the live record bytes.
 * 5. Resident memory per item beyond key and value.
 * 6. Get latency of an evicted value (background fetch) against a bare
 *    open + pread + close in the same files; and the same gets while a
 *    writer stores a steady stream (the flusher writing and fsyncing the
 *    same shards) against the same gets with the flusher idle, alternating.
 */
#include "../engine_api.h"
#include "../testsuite/engine_testapp/suite_helpers.h"
#include "../testsuite/mock_server/mock_server.h"
#include "bench_util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <malloc.h>
#include <unistd.h>

static engine_create_instance_fn create_fn;
typedef int (*control_fn)(engine_handle *h, const char *cmd, char *why, size_t whylen);
static control_fn control;

static engine_handle *start(const char *dir, bool wait_warm, int writers)
{
    char config[1200];
    snprintf(config, sizeof(config),
             "dbname=%s;max_size=17179869184;num_shards=4;num_writer_threads=%d;"
             "compaction_interval_ms=86400000",
             dir, writers);
    engine_handle *h = NULL;
    if (create_fn(ENGINE_API_VERSION, mock_get_server_api, &h) != ENGINE_SUCCESS ||
        h->initialize(h, config) != ENGINE_SUCCESS) {
        fprintf(stderr, "persist_bench: engine failed to start\n");
        exit(1);
    }
    if (wait_warm) {
        char state[32] = "";
        do {
            usleep(1000);
            stat_str(h, "warmup", "ep_warmup_state", state, sizeof(state));
        } while (strcmp(state, "running") == 0);
    }
    return h;
}

static void store(engine_handle *h, size_t i, size_t vlen, const char *fill)
{
    char key[40];
    snprintf(key, sizeof(key), "bench:%012zu", i);
    engine_doc_key k = {0, (uint16_t)strlen(key), key};
    engine_item *it;
    if (h->allocate(h, NULL, &it, &k, vlen, 0, 0, 0, (uint16_t)(i % 64)) !=
        ENGINE_SUCCESS) {
        fprintf(stderr, "persist_bench: allocate failed\n");
        exit(1);
    }
    engine_item_info info;
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, fill, vlen);
    h->store(h, NULL, it, NULL, ENGINE_STORE_SET);
    h->release(h, it);
}

static void wait_flushed(engine_handle *h)
{
    while (stat_u64(h, NULL, "ep_queue_size") != 0)
        usleep(500);
}

/* Sequential 1 MiB writes and one fsync of `bytes` into DIR/baseline: through
 * the page cache (what dd bs=1M conv=fsync does) or with O_DIRECT (dd
 * oflag=direct). */
static double baseline_write_mbs(const char *dir, uint64_t bytes, bool direct)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/baseline.write", dir);
    const size_t chunk = 1u << 20;
    char *buf = aligned_alloc(4096, chunk);
    memset(buf, 'b', chunk);
    uint64_t t0 = now_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
    for (uint64_t done = 0; fd >= 0 && done < bytes; done += chunk)
        if (write(fd, buf, chunk) != (ssize_t)chunk) {
            perror("baseline write");
            break;
        }
    fsync(fd);
    close(fd);
    double secs = (double)(now_ns() - t0) / 1e9;
    unlink(path);
    free(buf);
    return (double)bytes / 1e6 / secs;
}

/* Drops the data files from the page cache (they are clean: fsync'd), so the
 * next read comes from the disk. */
static void drop_cache(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(d);
}

/* Reads the data files in 1 MiB reads (through the page cache, or with
 * O_DIRECT), or with read_all false only sums their sizes. */
static uint64_t read_dir_bytes(const char *dir, bool read_all, bool direct, double *secs)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    const size_t chunk = 1u << 20;
    char *buf = aligned_alloc(4096, chunk);
    uint64_t total = 0, t0 = now_ns();
    while ((ent = readdir(d)) != NULL) {
        if (strstr(ent->d_name, ".seg") == NULL && strstr(ent->d_name, ".base") == NULL)
            continue;
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
        ssize_t n;
        if (read_all)
            while ((n = read(fd, buf, chunk)) > 0)
                total += (uint64_t)n;
        else
            total += (uint64_t)lseek(fd, 0, SEEK_END);
        close(fd);
    }
    closedir(d);
    free(buf);
    if (secs)
        *secs = (double)(now_ns() - t0) / 1e9;
    return total;
}

/* Removes the files of a data directory (not the directory). */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        if (ent->d_name[0] != '.')
            unlink(path);
    }
    if (d != NULL)
        closedir(d);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define FLUSH_ROUNDS 3

/* One round: everything is queued while the writer threads (2, the default)
 * are held, then timed from release until the queue is empty; then the dd-like
 * baseline writes as many bytes. Returns flusher MB/s over baseline MB/s. */
static double flush_round(const char *dir, size_t n, size_t vlen, const char *fill,
                          int round)
{
    engine_handle *h = start(dir, true, 2);
    char why[256];
    if (control(h, "hold_writer", why, sizeof(why)) != 0)
        fprintf(stderr, "persist_bench: %s\n", why);
    uint64_t disk0 = stat_u64(h, NULL, "ep_disk_bytes");
    for (size_t i = 0; i < n; i++)
        store(h, i, vlen, fill);
    uint64_t t0 = now_ns();
    control(h, "release_writer", why, sizeof(why));
    wait_flushed(h);
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t written = stat_u64(h, NULL, "ep_disk_bytes") - disk0;
    h->destroy(h, false);
    double mbs = (double)written / 1e6 / secs;
    double cached = baseline_write_mbs(dir, written, false);
    double direct = baseline_write_mbs(dir, written, true);
    double base = cached > direct ? cached : direct;
    printf("|   round %d: %8.0f items/s, %7.1f MB/s; dd-like baselines: conv=fsync %7.1f "
           "MB/s, oflag=direct %7.1f MB/s; share of the faster: %5.1f%%\n",
           round, (double)n / secs, mbs, cached, direct, 100.0 * mbs / base);
    return mbs / base;
}

/* Flusher rounds alternate with baseline rounds (the disk's speed drifts on a
 * shared machine); the median share is the figure. The last round's data stays
 * in DIR for the phases after. */
static void flush_phase(const char *dir, size_t n, size_t vlen)
{
    char *fill = malloc(vlen);
    memset(fill, 'v', vlen);
    printf("| flusher, %zu x %zu B, 2 writer threads, %d rounds:\n", n, vlen,
           FLUSH_ROUNDS);
    double share[FLUSH_ROUNDS];
    for (int r = 0; r < FLUSH_ROUNDS; r++) {
        empty_dir(dir);
        share[r] = flush_round(dir, n, vlen, fill, r + 1);
    }
    qsort(share, FLUSH_ROUNDS, sizeof(double), cmp_double);
    printf(
        "| flusher, %zu x %zu B | median %5.1f%% of the faster dd-like baseline (rounds "
        "%.1f-%.1f%%) | target >= 60%%\n",
        n, vlen, 100.0 * share[FLUSH_ROUNDS / 2], 100.0 * share[0],
        100.0 * share[FLUSH_ROUNDS - 1]);
    free(fill);
}

static void durable_latency(const char *dir, int rounds)
{
    engine_handle *h = start(dir, true, 2);
    const void *cookie = mock_cookie_create();
    uint64_t *eng = malloc(sizeof(uint64_t) * (size_t)rounds);
    uint64_t *bare = malloc(sizeof(uint64_t) * (size_t)rounds);
    uint64_t *app = malloc(sizeof(uint64_t) * (size_t)rounds);
    char path[1200], apath[1200];
    snprintf(path, sizeof(path), "%s/baseline.fsync", dir);
    snprintf(apath, sizeof(apath), "%s/baseline.append", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int afd = open(apath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    static char page[4096];
    memset(page, 'p', sizeof(page));
    for (int i = 0; i < rounds; i++) {
        char key[32];
        snprintf(key, sizeof(key), "durable:%d", i % 100);
        engine_doc_key k = {0, (uint16_t)strlen(key), key};
        engine_item *it;
        h->allocate(h, cookie, &it, &k, 100, 0, 0, 0, 0);
        uint64_t t0 = now_ns();
        mock_call_begin(cookie);
        engine_errc rc = h->store_durable(h, cookie, it, NULL, ENGINE_STORE_SET,
                                          ENGINE_DURABILITY_PERSIST);
        mock_call_end(cookie, rc);
        if (rc == ENGINE_WOULD_BLOCK &&
            mock_wait_notify(cookie, 60000) == ENGINE_SUCCESS) {
            mock_call_begin(cookie);
            rc = h->store_durable(h, cookie, it, NULL, ENGINE_STORE_SET,
                                  ENGINE_DURABILITY_PERSIST);
            mock_call_end(cookie, rc);
        }
        eng[i] = now_ns() - t0;
        h->release(h, it);
        if (rc != ENGINE_SUCCESS) {
            fprintf(stderr, "persist_bench: durable write failed: 0x%x\n", rc);
            exit(1);
        }
        /* Interleaved: the same noise hits both. */
        t0 = now_ns();
        if (pwrite(fd, page, sizeof(page), (off_t)(i % 64) * 4096) !=
            (ssize_t)sizeof(page))
            perror("baseline pwrite");
        fsync(fd);
        bare[i] = now_ns() - t0;
        /* What one record appended and made durable costs by itself. */
        t0 = now_ns();
        if (write(afd, page, 180) != 180)
            perror("baseline append");
        fdatasync(afd);
        app[i] = now_ns() - t0;
    }
    close(fd);
    close(afd);
    unlink(path);
    unlink(apath);
    uint64_t e50 = percentile(eng, (size_t)rounds, 0.5),
             b50 = percentile(bare, (size_t)rounds, 0.5);
    uint64_t e99 = percentile(eng, (size_t)rounds, 0.99),
             b99 = percentile(bare, (size_t)rounds, 0.99);
    printf("| durable set (%d) | p50 %6.1f us p99 %6.1f us | bare 4 KiB write+fsync p50 "
           "%6.1f us "
           "p99 %6.1f us | p50 %4.2fx | target <= 1.5x\n",
           rounds, (double)e50 / 1e3, (double)e99 / 1e3, (double)b50 / 1e3,
           (double)b99 / 1e3, (double)e50 / (double)b50);
    uint64_t a50 = percentile(app, (size_t)rounds, 0.5);
    printf("|   the same against a bare 180 B append + fdatasync (one record) | p50 "
           "%6.1f us | "
           "p50 %4.2fx (the append alone is %4.2fx the page overwrite)\n",
           (double)a50 / 1e3, (double)e50 / (double)a50, (double)a50 / (double)b50);
    h->destroy(h, false);
    free(eng);
    free(bare);
    free(app);
}

/* A random data file of DIR (a base or a segment) and its size. */
static int random_file(const char *dir, char *path, size_t cap, off_t *size)
{
    char names[64][300];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d != NULL && n < 64 && (ent = readdir(d)) != NULL)
        if (strncmp(ent->d_name, "shard", 5) == 0)
            snprintf(names[n++], sizeof(names[0]), "%s", ent->d_name);
    if (d != NULL)
        closedir(d);
    if (n == 0)
        return -1;
    snprintf(path, cap, "%s/%s", dir, names[rand() % n]);
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    *size = st.st_size;
    return 0;
}

/* One get of key `key_no` as a host makes it (get -> would_block -> notify ->
 * re-call); how long it took. Exits if it fails. */
static uint64_t timed_fetch(engine_handle *h, const void *cookie, size_t key_no)
{
    char key[40];
    snprintf(key, sizeof(key), "bench:%012zu", key_no);
    engine_doc_key k = {0, (uint16_t)strlen(key), key};
    engine_item *it = NULL;
    uint64_t t0 = now_ns();
    mock_call_begin(cookie);
    engine_errc rc = h->get(h, cookie, &it, &k, (uint16_t)(key_no % 64));
    mock_call_end(cookie, rc);
    if (rc == ENGINE_WOULD_BLOCK && mock_wait_notify(cookie, 60000) == ENGINE_SUCCESS) {
        mock_call_begin(cookie);
        rc = h->get(h, cookie, &it, &k, (uint16_t)(key_no % 64));
        mock_call_end(cookie, rc);
    }
    uint64_t took = now_ns() - t0;
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "persist_bench: fetch of %s failed: 0x%x\n", key, rc);
        exit(1);
    }
    h->release(h, it);
    return took;
}

/* Memory per item of items stored by clients (malloc'd, one each), measured
 * as what malloc holds: a memory-only engine in this process, n items of the
 * warmup's key and value sizes stored through the vtable; malloc's in-use
 * bytes (heap chunks, their headers included, and mmapped blocks: the table)
 * after, less before, per item, less the key and value. */
static void memory_of_client_items(size_t n)
{
    if (n == 0)
        return;
    char *fill = malloc(100);
    memset(fill, 'm', 100);
    struct mallinfo2 a = mallinfo2();
    engine_handle *h = NULL;
    if (create_fn(ENGINE_API_VERSION, mock_get_server_api, &h) != ENGINE_SUCCESS ||
        h->initialize(h, "max_size=17179869184") != ENGINE_SUCCESS) {
        fprintf(stderr, "persist_bench: memory-only engine failed to start\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        store(h, i, 100, fill);
    struct mallinfo2 b = mallinfo2();
    double used = (double)(b.uordblks + b.hblkhd) - (double)(a.uordblks + a.hblkhd);
    char key[40];
    size_t nkey = (size_t)snprintf(key, sizeof(key), "bench:%012zu", (size_t)0);
    printf(
        "| memory per item beyond key and value, items stored by clients (malloc) | "
        "%.1f B measured (malloc's in-use bytes, table included, per item, less %zu B of "
        "key and value) | target <= 48 B\n",
        used / (double)n - (double)(nkey + 100), nkey + 100);
    h->destroy(h, true);
    free(fill);
}

/* The fault layer's spec that makes every read that must not wait for the
 * disk miss the page cache: evicted values are then read in the background. */
#define PAGE_CACHE_MISSES "op=read_cached;nth=1;count=0;errno=EAGAIN"

/* Background fetch: every value evicted, then gets of random keys (get ->
 * would_block -> notify -> re-call) against a bare 4 KiB pread at a random
 * place in the same files, interleaved: of a file already open (the
 * baseline), and with its open and close. */
static void fetch_latency(engine_handle *h, const char *dir, size_t items, int rounds)
{
    char why[256];
    if (control(h, "evict", why, sizeof(why)) != 0) {
        fprintf(stderr, "persist_bench: evict: %s\n", why);
        return;
    }
    const void *cookie = mock_cookie_create();
    uint64_t *eng = malloc(sizeof(uint64_t) * (size_t)rounds);
    uint64_t *bare = calloc((size_t)rounds, sizeof(uint64_t));
    uint64_t *opened = calloc((size_t)rounds, sizeof(uint64_t));
    static char page[4096];
    srand(7);
    for (int i = 0; i < rounds; i++) {
        eng[i] = timed_fetch(h, cookie, ((size_t)rand() * 7919u + (size_t)i) % items);
        char path[1400];
        off_t size = 0;
        if (random_file(dir, path, sizeof(path), &size) != 0 || size < 8192)
            continue;
        uint64_t t0 = now_ns();
        int fd = open(path, O_RDONLY);
        if (fd < 0 || pread(fd, page, sizeof(page), (off_t)(rand() % (size - 4096))) < 0)
            perror("baseline pread");
        close(fd);
        opened[i] = now_ns() - t0;
        fd = open(path, O_RDONLY); /* untimed: the baseline's file is open */
        t0 = now_ns();
        if (fd < 0 || pread(fd, page, sizeof(page), (off_t)(rand() % (size - 4096))) < 0)
            perror("baseline pread");
        bare[i] = now_ns() - t0;
        close(fd);
    }
    uint64_t e50 = percentile(eng, (size_t)rounds, 0.5),
             b50 = percentile(bare, (size_t)rounds, 0.5),
             o50 = percentile(opened, (size_t)rounds, 0.5);
    uint64_t e99 = percentile(eng, (size_t)rounds, 0.99),
             b99 = percentile(bare, (size_t)rounds, 0.99);
    printf(
        "| get of an evicted value (%d), page cache warm | p50 %6.1f us p99 %6.1f us | "
        "bare 4 KiB pread of an open file p50 %6.1f us p99 %6.1f us | p50 %4.2fx "
        "(open+pread+close p50 %6.1f us: %4.2fx) | target <= 3x\n",
        rounds, (double)e50 / 1e3, (double)e99 / 1e3, (double)b50 / 1e3,
        (double)b99 / 1e3, (double)e50 / (double)b50, (double)o50 / 1e3,
        (double)e50 / (double)o50);
    free(opened);
    /* The same gets through the background read. */
    char off[256];
    if (control(h, PAGE_CACHE_MISSES, off, sizeof(off)) == 0) {
        int n = rounds < 2000 ? rounds : 2000;
        control(h, "evict", off, sizeof(off));
        for (int i = 0; i < n; i++)
            eng[i] = timed_fetch(h, cookie, ((size_t)rand() * 7919u + (size_t)i) % items);
        control(h, "clear", off, sizeof(off));
        uint64_t g50 = percentile(eng, (size_t)n, 0.5),
                 g99 = percentile(eng, (size_t)n, 0.99);
        printf(
            "|   the same through the background read (page-cache misses forced, %d) | "
            "p50 %6.1f us p99 %6.1f us | p50 %4.2fx the bare pread\n",
            n, (double)g50 / 1e3, (double)g99 / 1e3, (double)g50 / (double)b50);
    }
    printf(
        "| eviction | %llu values evicted; memory %.0f MB with every value evicted |\n",
        (unsigned long long)strtoull(why, NULL, 10),
        (double)stat_u64(h, NULL, "mem_used") / 1e6);
    free(eng);
    free(bare);
}

/* A steady stream of 4 KiB stores (other keys, the same vbuckets), 100 every
 * 5 ms (80 MB/s), until told to stop: the flusher writes and fsyncs batches
 * all along, and the stream leaves the cores mostly to the gets (this row is
 * about waiting for the disk, not for a core). */
typedef struct streamer {
    engine_handle *h;
    _Atomic bool stop;
    uint64_t stored;
} streamer;

static void *stream_main(void *arg)
{
    streamer *st = arg;
    static char fill[4096];
    memset(fill, 's', sizeof(fill));
    for (size_t i = 0; !atomic_load(&st->stop); i++) {
        char key[40];
        snprintf(key, sizeof(key), "stream:%06zu", i % 100000);
        engine_doc_key k = {0, (uint16_t)strlen(key), key};
        engine_item *it;
        if (st->h->allocate(st->h, NULL, &it, &k, sizeof(fill), 0, 0, 0,
                            (uint16_t)(i % 64)) != ENGINE_SUCCESS)
            continue;
        engine_item_info info;
        st->h->get_item_info(st->h, it, &info);
        memcpy(info.value.iov_base, fill, sizeof(fill));
        st->h->store(st->h, NULL, it, NULL, ENGINE_STORE_SET);
        st->h->release(st->h, it);
        if (++st->stored % 100 == 0)
            usleep(5000);
    }
    return NULL;
}

/* One round of `n` gets of evicted values (every value evicted first); the
 * latencies go to lat. */
static void fetch_round(engine_handle *h, const void *cookie, size_t items, int n,
                        uint64_t *lat)
{
    char why[256];
    if (control(h, "evict", why, sizeof(why)) != 0) {
        fprintf(stderr, "persist_bench: evict: %s\n", why);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        lat[i] = timed_fetch(h, cookie, ((size_t)rand() * 7919u + (size_t)i) % items);
}

/* Gets of evicted values with the flusher idle and with it writing a steady
 * stream, in alternating rounds: each round's p50 and p99, and the range of
 * the busy/idle p99 ratio over the pairs. */
static void fetch_under_flush(engine_handle *h, size_t items)
{
    enum { ROUNDS = 5, GETS = 10000 };
    const void *cookie = mock_cookie_create();
    /* Through the background read (page-cache misses forced): this row is
     * about that read waiting for the flusher's work. */
    char off[256];
    if (control(h, PAGE_CACHE_MISSES, off, sizeof(off)) != 0) {
        fprintf(stderr, "persist_bench: cannot force page-cache misses: %s\n", off);
        return;
    }
    uint64_t *lat = malloc(sizeof(uint64_t) * GETS);
    double lo = 1e9, hi = 0;
    for (int r = 0; r < ROUNDS; r++) {
        fetch_round(h, cookie, items, GETS, lat);
        uint64_t i50 = percentile(lat, GETS, 0.5), i99 = percentile(lat, GETS, 0.99);
        streamer st = {.h = h};
        pthread_t t;
        pthread_create(&t, NULL, stream_main, &st);
        usleep(20000); /* the flusher is busy by now */
        uint64_t b0 = stat_u64(h, NULL, "ep_flusher_batches");
        fetch_round(h, cookie, items, GETS, lat);
        uint64_t batches = stat_u64(h, NULL, "ep_flusher_batches") - b0;
        atomic_store(&st.stop, true);
        pthread_join(t, NULL);
        wait_flushed(h);
        uint64_t b50 = percentile(lat, GETS, 0.5), b99 = percentile(lat, GETS, 0.99);
        double ratio = (double)b99 / (double)i99;
        lo = ratio < lo ? ratio : lo;
        hi = ratio > hi ? ratio : hi;
        printf(
            "|   round %d: get of an evicted value, flusher idle: p50 %6.1f us p99 %6.1f "
            "us; flusher writing (%llu stores, %llu batches meanwhile): p50 %6.1f us "
            "p99 %6.1f us; p99 %4.2fx\n",
            r + 1, (double)i50 / 1e3, (double)i99 / 1e3, (unsigned long long)st.stored,
            (unsigned long long)batches, (double)b50 / 1e3, (double)b99 / 1e3, ratio);
    }
    control(h, "clear", off, sizeof(off));
    printf("| get of an evicted value while the flusher writes (background read) | p99 "
           "%4.2f-%4.2fx the same get with the flusher idle | target <= 2x\n",
           lo, hi);
    free(lat);
}

static const char *engine_path;

/* One warmup in a new process (this program run with --warmup-only), as at a
 * restart: a fresh heap. (A fork would share this process's heap, freed items
 * and all, and pay a copy per page it reuses.) False if it failed. */
static bool warmup_in_child(const char *dir, uint64_t out[3])
{
    char cmd[3000];
    snprintf(cmd, sizeof(cmd), "/proc/%d/exe '%s' '%s' --warmup-only 1", (int)getpid(),
             engine_path, dir);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return false;
    unsigned long long v[3];
    int got = fscanf(p, "%llu %llu %llu", &v[0], &v[1], &v[2]);
    int status = pclose(p);
    for (int i = 0; i < 3; i++)
        out[i] = v[i];
    return got == 3 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* --warmup-only: warms up DIR, prints duration (us), records and bytes. */
static int warmup_only(const char *dir)
{
    engine_handle *h = start(dir, true, 2);
    printf("%llu %llu %llu\n",
           (unsigned long long)stat_u64(h, "warmup", "ep_warmup_duration_us"),
           (unsigned long long)stat_u64(h, "warmup", "ep_warmup_records"),
           (unsigned long long)stat_u64(h, "warmup", "ep_warmup_bytes"));
    h->destroy(h, false);
    return 0;
}

static void warmup_phase(const char *dir, size_t items_stored)
{
    /* Rounds of a cold sequential read of the files and a cold warmup of them
     * in a fresh process (the files are dropped from the page cache before
     * each), alternating; the median share is the figure. Each warmup follows
     * a clean shutdown. */
    double share[FLUSH_ROUNDS];
    for (int r = 0; r < FLUSH_ROUNDS; r++) {
        double read_secs, direct_secs;
        drop_cache(dir);
        uint64_t bytes = read_dir_bytes(dir, true, false, &read_secs);
        read_dir_bytes(dir, true, true, &direct_secs);
        double cached_mbs = (double)bytes / 1e6 / read_secs;
        double direct_mbs = (double)bytes / 1e6 / direct_secs;
        double read_mbs = cached_mbs > direct_mbs ? cached_mbs : direct_mbs;
        drop_cache(dir);
        uint64_t v[3];
        if (!warmup_in_child(dir, v)) {
            fprintf(stderr, "persist_bench: the warmup process failed\n");
            exit(1);
        }
        uint64_t us = v[0], records = v[1], wbytes = v[2];
        double wmbs = (double)wbytes / (double)us;
        share[r] = wmbs / read_mbs;
        printf(
            "|   round %d: warmup of %llu records (%.0f MB), cold cache: %8.0f items/s, "
            "%7.1f MB/s; sequential 1 MiB reads of the same files, cold: %7.1f MB/s, "
            "O_DIRECT: %7.1f MB/s; share of the faster: %5.1f%%\n",
            r + 1, (unsigned long long)records, (double)wbytes / 1e6,
            (double)records * 1e6 / (double)us, wmbs, cached_mbs, direct_mbs,
            100.0 * share[r]);
    }
    qsort(share, FLUSH_ROUNDS, sizeof(double), cmp_double);
    printf("| warmup (2 reader threads) | median %5.1f%% of the faster cold read (rounds "
           "%.1f-%.1f%%) | target >= 70%%\n",
           100.0 * share[FLUSH_ROUNDS / 2], 100.0 * share[0],
           100.0 * share[FLUSH_ROUNDS - 1]);

    /* The phases below on an instance of this process. */
    engine_handle *h = start(dir, true, 2);

    /* Memory per item, from the engine's own accounting and the table; when
     * warmup loaded every item into its arena, what the arena holds beyond the
     * items (alignment, block tails) is measured too, else malloc's chunk
     * header is named, not measured. */
    uint64_t items = stat_u64(h, NULL, "curr_items"), mem = stat_u64(h, NULL, "mem_used");
    uint64_t overhead = stat_u64(h, "memory", "ep_item_overhead_bytes");
    uint64_t ht_mem = stat_u64(h, "memory", "ep_ht_memory");
    uint64_t arena_items = stat_u64(h, "memory", "ep_arena_items");
    uint64_t arena_bytes = stat_u64(h, "memory", "ep_arena_resident_bytes");
    double table = (double)ht_mem / (double)items;
    if (items > 0 && arena_items == items && arena_bytes >= mem) {
        double alloc = (double)(arena_bytes - mem) / (double)items;
        printf(
            "| memory per item beyond key and value | item header %llu B + table %.1f B "
            "+ "
            "warmup's arena %.1f B (alignment, block tails) = %.1f B | target <= 48 B\n",
            (unsigned long long)overhead, table, alloc, (double)overhead + table + alloc);
    } else {
        printf("| memory per item beyond key and value | item header %llu B + table %.1f "
               "B = "
               "%.1f B (+ malloc's chunk header, 8-16 B) | target <= 48 B\n",
               (unsigned long long)overhead, table, (double)overhead + table);
    }

    memory_of_client_items(items);

    /* Overwrite every key once more (half the disk is now dead), then compact. */
    char *fill = malloc(100);
    memset(fill, 'w', 100);
    for (size_t i = 0; i < items_stored; i++)
        store(h, i, 100, fill);
    free(fill);
    wait_flushed(h);
    items = stat_u64(h, NULL, "curr_items");
    mem = stat_u64(h, NULL, "mem_used");
    /* Live record bytes: each item's key and value plus the 40-byte record header. */
    uint64_t live = mem - items * overhead + items * 40;
    uint64_t before = stat_u64(h, NULL, "ep_disk_bytes"), t0 = now_ns();
    char why[256];
    if (control(h, "compact", why, sizeof(why)) != 0)
        fprintf(stderr, "persist_bench: compact: %s\n", why);
    double csecs = (double)(now_ns() - t0) / 1e9;
    uint64_t after = stat_u64(h, NULL, "ep_disk_bytes");
    printf("| compaction of %llu items | %.0f -> %.0f MB in %.2f s | live data %.0f MB | "
           "after/live %.2fx | target <= 1.3x\n",
           (unsigned long long)items, (double)before / 1e6, (double)after / 1e6, csecs,
           (double)live / 1e6, (double)after / (double)live);
    fetch_latency(h, dir, items_stored, 20000);
    fetch_under_flush(h, items_stored);
    h->destroy(h, false);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: persist_bench engine.so DIR [--items N] [--big-items N]\n");
        return 2;
    }
    size_t n = 1000000, big = 250000;
    bool only_warmup = false;
    for (int i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--items") == 0)
            n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--big-items") == 0)
            big = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--warmup-only") == 0)
            only_warmup = atoi(argv[++i]) != 0;
    }
    engine_path = argv[1];
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "persist_bench: %s\n", dlerror());
        return 1;
    }
    *(void **)&create_fn = dlsym(dl, "create_instance");
    *(void **)&control = dlsym(dl, "ep_testing_control");
    const char *dir = argv[2];
    if (only_warmup)
        return warmup_only(dir);
    char sub[1024];
    snprintf(sub, sizeof(sub), "%s/big", dir);
    mkdir(sub, 0755);
    flush_phase(sub, big, 4096);
    snprintf(sub, sizeof(sub), "%s/small", dir);
    mkdir(sub, 0755);
    flush_phase(sub, n, 100);
    durable_latency(sub, 2000);
    warmup_phase(sub, n);
    return 0;
}
