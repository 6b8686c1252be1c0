/*
 * bench_util.h - what the benchmark programs share: a monotonic clock and
 * percentiles of latency samples.
 */
#ifndef EP_BENCH_UTIL_H
#define EP_BENCH_UTIL_H

#include "../engine_api.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..1) of n samples; sorts them. 0 for no samples. */
static inline uint64_t percentile(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[(size_t)(p * (double)(n - 1))];
}

/* Waits until the engine serves data (warmup done); false after 60 s. */
static inline bool wait_serving(engine_handle *h)
{
    for (int i = 0; i < 6000; i++) {
        engine_doc_key k = {0, 5, "probe"};
        engine_item *it;
        engine_errc rc = h->get(h, NULL, &it, &k, 0);
        if (rc == ENGINE_SUCCESS)
            h->release(h, it);
        if (rc != ENGINE_TEMPORARY_FAILURE)
            return true;
        usleep(10000);
    }
    return false;
}

#endif
