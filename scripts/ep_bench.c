/*
 * ep_bench - measures the engine in-process through the vtable, and its
 * executor, and prints what it measured. No figure here is a target check:
 * scripts/bench prints the targets beside the measurements.
 *
 *   ep_bench /path/to/ep_engine.so [--keys N] [--quick]
 *
 * KV: N keys of 32 bytes with 100-byte values; a set pass then a get pass in
 * random key order, with 1 and then 2 threads (each thread its own key range).
 * A get copies the value out. Baseline, same run, 1 thread: a plain chained
 * hash table of the same keys and values (one malloc per item, the engine's
 * hash function, as many buckets as keys), the same passes in the same order:
 * first insert, overwrite, lookup with the value copied out - no engine, no
 * vtable, no references, no locks.
 * Latency is sampled on one operation in 16 (timing every call would cost as
 * much as the call) and reported as p50/p99 of the samples.
 * Executor: tasks scheduled-and-run per second with 1 and 2 threads, and the
 * latency from exec_wake to the start of the run on an idle pool.
 * Sub-document: a counter on 1,000 JSON documents of 1 KB through
 * subdoc_mutate, against what a client does without it (get, parse, add,
 * print, CAS store), alternating rounds of 0.5 s each, 1 thread.
 */
#include "../engine_api.h"
#include "../ep_engine/executor/executor.h"
#include "../ep_engine/hashtable.h"
#include "../testsuite/mock_server/mock_server.h"
#include "bench_util.h"

#include <dlfcn.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_LEN      32
#define VALUE_LEN    100
#define SAMPLE_EVERY 16

static void make_key(char *buf, size_t i)
{
    snprintf(buf, KEY_LEN + 1, "bench:key:%021zu", i);
}

typedef struct kv_job {
    engine_handle *h;
    const uint32_t *order; /* key indexes in random order */
    size_t from, to;
    bool do_set;
    uint64_t *samples;
    size_t nsamples;
    int errors;
} kv_job;

static void *kv_thread(void *arg)
{
    kv_job *j = arg;
    engine_handle *h = j->h;
    char key[KEY_LEN + 1], value[VALUE_LEN];
    memset(value, 'v', sizeof(value));
    for (size_t i = j->from; i < j->to; i++) {
        make_key(key, j->order[i]);
        engine_doc_key k = {0, KEY_LEN, key};
        bool sample = (i % SAMPLE_EVERY) == 0;
        uint64_t t0 = sample ? now_ns() : 0;
        engine_item *it = NULL;
        engine_item_info info;
        if (j->do_set) {
            if (h->allocate(h, NULL, &it, &k, VALUE_LEN, 0, 0, 0, 0) != ENGINE_SUCCESS) {
                j->errors++;
                continue;
            }
            h->get_item_info(h, it, &info);
            memcpy(info.value.iov_base, value, VALUE_LEN);
            if (h->store(h, NULL, it, NULL, ENGINE_STORE_SET) != ENGINE_SUCCESS)
                j->errors++;
            h->release(h, it);
        } else {
            if (h->get(h, NULL, &it, &k, 0) != ENGINE_SUCCESS) {
                j->errors++;
                continue;
            }
            h->get_item_info(h, it, &info);
            memcpy(value, info.value.iov_base, VALUE_LEN); /* the value copied out */
            if (value[VALUE_LEN - 1] != 'v')
                j->errors++;
            h->release(h, it);
        }
        if (sample)
            j->samples[j->nsamples++] = now_ns() - t0;
    }
    return NULL;
}

static double run_kv(engine_handle *h, const uint32_t *order, size_t nkeys, int threads,
                     bool do_set)
{
    kv_job jobs[2];
    pthread_t tid[2];
    size_t per = nkeys / (size_t)threads;
    uint64_t t0 = now_ns();
    for (int t = 0; t < threads; t++) {
        jobs[t] =
            (kv_job){h,
                     order,
                     per * (size_t)t,
                     t == threads - 1 ? nkeys : per * (size_t)(t + 1),
                     do_set,
                     malloc((per + SAMPLE_EVERY) / SAMPLE_EVERY * sizeof(uint64_t) + 64),
                     0,
                     0};
        pthread_create(&tid[t], NULL, kv_thread, &jobs[t]);
    }
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        errors += jobs[t].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t ns = 0;
    for (int t = 0; t < threads; t++)
        ns += jobs[t].nsamples;
    uint64_t *all = malloc(ns * sizeof(uint64_t) + 8);
    size_t at = 0;
    for (int t = 0; t < threads; t++) {
        memcpy(all + at, jobs[t].samples, jobs[t].nsamples * sizeof(uint64_t));
        at += jobs[t].nsamples;
        free(jobs[t].samples);
    }
    printf("| kv %-3s | %d thread%s | %10.0f ops/s | p50 %6.0f ns | p99 %6.0f ns |%s\n",
           do_set ? "set" : "get", threads, threads > 1 ? "s" : " ", (double)nkeys / secs,
           (double)percentile(all, ns, 0.50), (double)percentile(all, ns, 0.99),
           errors ? " ERRORS" : "");
    if (errors)
        printf("  %d operations failed\n", errors);
    free(all);
    return (double)nkeys / secs;
}

/* ---- executor ---- */

static _Atomic uint64_t tasks_done;

static int64_t count_run(exec_task *t, void *arg)
{
    (void)t;
    (void)arg;
    atomic_fetch_add_explicit(&tasks_done, 1, memory_order_relaxed);
    return EXEC_DONE;
}

static void bench_task_rate(int threads, size_t n)
{
    exec_config cfg = {{1, 1, 1, threads}};
    exec_pool *pool = exec_pool_create(&cfg);
    atomic_store(&tasks_done, 0);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        exec_task *t = exec_task_new(pool, "bench", EXEC_NONIO, 0, count_run, NULL, NULL);
        exec_schedule(t, 0);
        exec_task_put(t);
    }
    while (atomic_load(&tasks_done) < n)
        ;
    double secs = (double)(now_ns() - t0) / 1e9;
    exec_pool_destroy(pool);
    printf("| executor schedule+run | %d thread%s | %10.0f tasks/s |\n", threads,
           threads > 1 ? "s" : " ", (double)n / secs);
}

typedef struct wake_probe {
    _Atomic uint64_t woke_at;
} wake_probe;

static int64_t wake_run(exec_task *t, void *arg)
{
    (void)t;
    wake_probe *w = arg;
    atomic_store(&w->woke_at, now_ns());
    return EXEC_FOREVER;
}

static void bench_wake_latency(size_t samples)
{
    exec_config cfg = {{1, 1, 1, 1}};
    exec_pool *pool = exec_pool_create(&cfg);
    wake_probe w = {0};
    exec_task *t = exec_task_new(pool, "wake", EXEC_NONIO, 0, wake_run, NULL, &w);
    exec_schedule(t, EXEC_FOREVER);
    uint64_t *lat = malloc(samples * sizeof(uint64_t));
    for (size_t i = 0; i < samples; i++) {
        struct timespec pause = {0, 200000}; /* let the pool go idle */
        nanosleep(&pause, NULL);
        atomic_store(&w.woke_at, 0);
        uint64_t t0 = now_ns();
        exec_wake(t);
        uint64_t at;
        while ((at = atomic_load(&w.woke_at)) == 0)
            ;
        lat[i] = at - t0;
    }
    printf("| executor wake latency (idle) | p50 %6.1f us | p99 %6.1f us |\n",
           (double)percentile(lat, samples, 0.50) / 1000.0,
           (double)percentile(lat, samples, 0.99) / 1000.0);
    free(lat);
    exec_pool_destroy(pool);
    exec_task_put(t);
}

/* ---- the baseline: a plain chained hash table ---- */

typedef struct bare_item {
    struct bare_item *next;
    uint64_t hash;
    uint32_t nkey, nvalue;
    char data[]; /* key, then value */
} bare_item;

typedef struct bare_table {
    bare_item **b;
    size_t mask;
} bare_table;

static bare_item **bare_find(bare_table *t, uint64_t hash, const char *key, size_t nkey)
{
    bare_item **p = &t->b[hash & t->mask];
    while (*p != NULL && ((*p)->hash != hash || (*p)->nkey != nkey ||
                          memcmp((*p)->data, key, nkey) != 0))
        p = &(*p)->next;
    return p;
}

/* One pass as the engine's: insert or overwrite (set), or look up and copy
 * the value out (get). ops/s. */
static double bare_pass(bare_table *t, const uint32_t *order, size_t nkeys, int mode)
{
    char key[KEY_LEN + 1], value[VALUE_LEN];
    memset(value, 'v', sizeof(value));
    size_t errors = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < nkeys; i++) {
        make_key(key, order[i]);
        uint64_t hash = ht_hash(0, 0, key, KEY_LEN);
        bare_item **p = bare_find(t, hash, key, KEY_LEN);
        if (mode == 2) { /* get */
            if (*p == NULL) {
                errors++;
                continue;
            }
            memcpy(value, (*p)->data + KEY_LEN, VALUE_LEN);
            errors += value[VALUE_LEN - 1] != 'v';
        } else if (*p == NULL) { /* first insert */
            bare_item *it = malloc(sizeof(*it) + KEY_LEN + VALUE_LEN);
            *it = (bare_item){NULL, hash, KEY_LEN, VALUE_LEN};
            memcpy(it->data, key, KEY_LEN);
            memcpy(it->data + KEY_LEN, value, VALUE_LEN);
            *p = it;
        } else { /* overwrite: a new item in place of the old, as a store does */
            bare_item *it = malloc(sizeof(*it) + KEY_LEN + VALUE_LEN);
            *it = (bare_item){(*p)->next, hash, KEY_LEN, VALUE_LEN};
            memcpy(it->data, key, KEY_LEN);
            memcpy(it->data + KEY_LEN, value, VALUE_LEN);
            free(*p);
            *p = it;
        }
    }
    double rate = (double)nkeys * 1e9 / (double)(now_ns() - t0);
    if (errors)
        printf("  bare table: %zu errors\n", errors);
    return rate;
}

static void bare_free(bare_table *t)
{
    for (size_t i = 0; i <= t->mask; i++)
        for (bare_item *it = t->b[i], *next; it != NULL; it = next) {
            next = it->next;
            free(it);
        }
    free(t->b);
}

/* 1 thread, the engine against the bare table in the same process: first
 * insert once each, then `rounds` alternating rounds of overwrite and get.
 * Each row gives both rates and the engine's share. */
static void bench_against_bare(engine_handle *h, const uint32_t *order, size_t nkeys,
                               int rounds)
{
    size_t n = 1;
    while (n < nkeys)
        n <<= 1;
    bare_table t = {calloc(n, sizeof(bare_item *)), n - 1};
    double b = bare_pass(&t, order, nkeys, 0);
    double e = run_kv(h, order, nkeys, 1, true);
    printf("| vs bare: first insert | engine %10.0f | bare %10.0f ops/s | %.2fx |\n", e,
           b, e / b);
    for (int r = 1; r <= rounds; r++) {
        b = bare_pass(&t, order, nkeys, 1);
        e = run_kv(h, order, nkeys, 1, true);
        printf("| vs bare: overwrite, round %d | engine %10.0f | bare %10.0f ops/s | "
               "%.2fx |\n",
               r, e, b, e / b);
        b = bare_pass(&t, order, nkeys, 2);
        e = run_kv(h, order, nkeys, 1, false);
        printf("| vs bare: get, round %d | engine %10.0f | bare %10.0f ops/s | %.2fx |\n",
               r, e, b, e / b);
    }
    bare_free(&t);
}

/* ---- sub-document counter vs get + set ---- */

#define SD_DOCS 1000

static engine_doc_key sd_key(char *buf, size_t i)
{
    int n = snprintf(buf, 32, "sd:%zu", i);
    return (engine_doc_key){0, (uint16_t)n, buf};
}

static void null_result(size_t index, engine_errc status, const void *value, size_t len,
                        void *ctx)
{
    (void)index, (void)status, (void)value, (void)len, (void)ctx;
}
#define NULL_RESULT null_result

static bool sd_counter(engine_handle *h, size_t i)
{
    char kb[32];
    engine_doc_key k = sd_key(kb, i);
    engine_subdoc_spec s = {ENGINE_SUBDOC_COUNTER, 0, 1, 1, "n", "1"};
    uint64_t cas;
    size_t failed;
    return h->subdoc_mutate(h, NULL, &k, 0, &s, 1, 0, 0, 0, ENGINE_DURABILITY_NONE,
                            NULL_RESULT, NULL, &cas, &failed) == ENGINE_SUCCESS;
}

static bool sd_get_set(engine_handle *h, size_t i)
{
    char kb[32];
    engine_doc_key k = sd_key(kb, i);
    engine_item *it = NULL, *nit = NULL;
    if (h->get(h, NULL, &it, &k, 0) != ENGINE_SUCCESS)
        return false;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    json_t *doc = json_loadb(info.value.iov_base, info.value.iov_len, 0, NULL);
    uint64_t cas = info.cas;
    h->release(h, it);
    if (doc == NULL)
        return false;
    json_object_set_new(doc, "n",
                        json_integer(json_integer_value(json_object_get(doc, "n")) + 1));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    size_t len = strlen(text);
    bool ok = h->allocate(h, NULL, &nit, &k, len, 0, 0, 1, 0) == ENGINE_SUCCESS;
    if (ok) {
        engine_item_info ni;
        h->get_item_info(h, nit, &ni);
        memcpy(ni.value.iov_base, text, len);
        h->item_set_cas(h, nit, cas);
        ok = h->store(h, NULL, nit, NULL, ENGINE_STORE_CAS) == ENGINE_SUCCESS;
        h->release(h, nit);
    }
    free(text);
    return ok;
}

static double sd_round(engine_handle *h, bool (*op)(engine_handle *, size_t))
{
    uint64_t start = now_ns(), n = 0;
    while (now_ns() - start < 500000000ull) {
        for (int j = 0; j < 256; j++, n++)
            if (!op(h, (n * 7919) % SD_DOCS))
                return -1;
    }
    return (double)n * 1e9 / (double)(now_ns() - start);
}

static void bench_subdoc(engine_handle *h, int rounds)
{
    char pad[1001];
    memset(pad, 'x', 980);
    pad[980] = '\0';
    for (size_t i = 0; i < SD_DOCS; i++) {
        char kb[32], doc[1100];
        engine_doc_key k = sd_key(kb, i);
        int len = snprintf(doc, sizeof(doc), "{\"n\":0,\"pad\":\"%s\"}", pad);
        engine_item *it;
        engine_item_info info;
        if (h->allocate(h, NULL, &it, &k, (size_t)len, 0, 0, 1, 0) != ENGINE_SUCCESS)
            return;
        h->get_item_info(h, it, &info);
        memcpy(info.value.iov_base, doc, (size_t)len);
        h->store(h, NULL, it, NULL, ENGINE_STORE_SET);
        h->release(h, it);
    }
    for (int r = 0; r < rounds; r++) {
        double sd = sd_round(h, sd_counter);
        double gs = sd_round(h, sd_get_set);
        printf("| subdoc counter, 1 KB doc | round %d | %9.0f ops/s | get+parse+set "
               "%9.0f ops/s "
               "| ratio %.2fx |\n",
               r + 1, sd, gs, gs > 0 ? sd / gs : 0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ep_bench engine.so [--keys N] [--quick]\n");
        return 2;
    }
    size_t nkeys = 1000000, ntasks = 1000000, nwakes = 5000;
    const char *extra = "";
    bool quick = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
            nkeys = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            extra = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
            nkeys = 100000;
            ntasks = 100000;
            nwakes = 500;
        }
    }
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "ep_bench: %s\n", dlerror());
        return 1;
    }
    engine_create_instance_fn create;
    *(void **)&create = dlsym(dl, "create_instance");

    uint32_t *order = malloc(nkeys * sizeof(uint32_t));
    for (size_t i = 0; i < nkeys; i++)
        order[i] = (uint32_t)i;
    srand(12345);
    for (size_t i = nkeys - 1; i > 0; i--) {
        size_t j = ((size_t)rand() * (size_t)RAND_MAX + (size_t)rand()) % (i + 1);
        uint32_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }

    printf("keys %zu x %d B, values %d B, engine config 'max_size=8589934592;%s'\n",
           nkeys, KEY_LEN, VALUE_LEN, extra);
    for (int threads = 1; threads <= 2; threads++) {
        engine_handle *h;
        char config[512];
        snprintf(config, sizeof(config), "max_size=8589934592;%s", extra);
        if (create(ENGINE_API_VERSION, mock_get_server_api, &h) != ENGINE_SUCCESS ||
            h->initialize(h, config) != ENGINE_SUCCESS) {
            fprintf(stderr, "ep_bench: engine failed to start\n");
            return 1;
        }
        if (threads == 1) {
            bench_against_bare(h, order, nkeys, 3);
            bench_subdoc(h, quick ? 2 : 3);
        } else {
            run_kv(h, order, nkeys, threads, true);
            run_kv(h, order, nkeys, threads, true); /* overwrite: table already sized */
            run_kv(h, order, nkeys, threads, false);
        }
        h->destroy(h, false);
    }
    bench_task_rate(1, ntasks);
    bench_task_rate(2, ntasks);
    bench_wake_latency(nwakes);
    free(order);
    return 0;
}
