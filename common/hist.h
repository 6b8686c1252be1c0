/*
 * hist.h - a latency histogram for metrics: fixed buckets from 1 µs to 10 s
 * (1, 2.5 and 5 times each power of ten), counts and the sum kept in relaxed
 * atomics, so recording costs three uncontended additions and reading needs
 * no lock. Readers see each figure exactly, the set of them nearly at once.
 */
#ifndef EP_HIST_H
#define EP_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_BUCKETS 22 /* upper bounds 1 µs ... 10 s; one more for above */

/** The upper bound of bucket i, in nanoseconds. */
static inline uint64_t hist_bound_ns(int i)
{
    static const uint64_t bounds[HIST_BUCKETS] = {
        1000ull,       2500ull,        5000ull,      10000ull,      25000ull,
        50000ull,      100000ull,      250000ull,    500000ull,     1000000ull,
        2500000ull,    5000000ull,     10000000ull,  25000000ull,   50000000ull,
        100000000ull,  250000000ull,   500000000ull, 1000000000ull, 2500000000ull,
        5000000000ull, 10000000000ull,
    };
    return bounds[i];
}

typedef struct hist {
    _Atomic uint64_t bucket[HIST_BUCKETS + 1]; /* the last: above 10 s; the
                                                  count is their sum */
    _Atomic uint64_t sum_ns;
} hist;

static inline void hist_record(hist *h, uint64_t ns)
{
    int i = 0;
    while (i < HIST_BUCKETS && ns > hist_bound_ns(i))
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/** The cumulative count of bucket i (observations <= its bound). */
static inline uint64_t hist_cumulative(const hist *h, int i)
{
    uint64_t n = 0;
    for (int k = 0; k <= i; k++)
        n += atomic_load_explicit(&((hist *)h)->bucket[k], memory_order_relaxed);
    return n;
}

#endif
