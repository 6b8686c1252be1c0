/*
 * hashtable.c - lock-striped chained hash table with incremental growth.
 *
 * Two table slots exist; between growths only one is in use. To grow, the new
 * bucket array is put in the free slot, then each stripe in turn is locked, its
 * chains moved to the new array and its `tab` flipped. An operation reads its
 * stripe's `tab` under the stripe lock, so it always sees whole chains. Once all
 * stripes are flipped nobody can reach the old array and it is freed.
 */
#include "hashtable.h"

#include "../common/mix.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The grower stores `buckets`, `mask` and `cur` with __atomic stores, so that
 * ht_prefetch may read them without a lock (a hint that may be stale); every
 * other reader holds a stripe lock, which orders it after the growth. */
typedef struct ht_table {
    ep_item **buckets;
    uint64_t mask; /* buckets - 1 */
} ht_table;

struct ep_ht {
    ht_stripe *stripes;
    uint64_t stripe_mask;
    ht_table tab[2]; /* tab[i] is written only while no stripe points to it */
    unsigned cur;    /* slot every stripe points to outside a growth; grower only */
    _Atomic bool grow_asked; /* need_grow called and ht_grow not yet done */
    _Atomic uint64_t resizes;
    ht_grow_fn need_grow;
    void *grow_ctx;
};

/* Average chain length that asks for growth. */
static const uint64_t ht_max_load = 1;

#define HT_HUGE_BYTES (2u << 20) /* a huge page */

void *ht_large_calloc(size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    if (bytes >= HT_HUGE_BYTES) {
        void *p =
            mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: fine if refused */
        return p;
    }
#endif
    return calloc(1, bytes);
}

void ht_large_free(void *p, size_t bytes)
{
    if (p == NULL)
        return;
#if defined(MADV_HUGEPAGE)
    if (bytes >= HT_HUGE_BYTES) {
        munmap(p, bytes);
        return;
    }
#endif
    free(p);
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* The last n < 8 bytes as one word, as memcpy into a zeroed word gives them
 * (little-endian), from whole 4-, 2- and 1-byte loads: a word read back from
 * bytes copied one by one waits for them to reach the cache (a store-forwarding
 * stall; BENCHMARKS.md has its cost). */
static inline uint64_t load_tail(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    unsigned at = 0;
    if (n & 4) {
        uint32_t x;
        memcpy(&x, p, 4);
        w = x;
        at = 4;
    }
    if (n & 2) {
        uint16_t x;
        memcpy(&x, p + at, 2);
        w |= (uint64_t)x << (at * 8);
        at += 2;
    }
    if (n & 1)
        w |= (uint64_t)p[at] << (at * 8);
    return w;
}

uint64_t ht_hash(uint16_t vbucket, uint32_t collection, const void *key, size_t nkey)
{
    const uint64_t m = UINT64_C(0x9e3779b97f4a7c15);
    const unsigned char *p = key;
    uint64_t h = ((uint64_t)collection << 16 | vbucket) * m ^ (uint64_t)nkey;
    while (nkey >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl64(h ^ (w * m), 29) * UINT64_C(0xbf58476d1ce4e5b9);
        p += 8;
        nkey -= 8;
    }
    h = rotl64(h ^ (load_tail(p, nkey) * m), 29) * UINT64_C(0xbf58476d1ce4e5b9);
    return mix64(h);
}

ep_ht *ht_create(size_t buckets, size_t stripes, ht_grow_fn need_grow, void *ctx)
{
    if (stripes == 0 || (stripes & (stripes - 1)) != 0 || buckets < stripes ||
        (buckets & (buckets - 1)) != 0)
        return NULL;
    ep_ht *ht = calloc(1, sizeof(*ht));
    if (ht == NULL)
        return NULL;
    ht->stripes = aligned_alloc(64, stripes * sizeof(ht_stripe));
    ht->tab[0].buckets = ht_large_calloc(buckets * sizeof(ep_item *));
    if (ht->stripes == NULL || ht->tab[0].buckets == NULL) {
        free(ht->stripes);
        ht_large_free(ht->tab[0].buckets, buckets * sizeof(ep_item *));
        free(ht);
        return NULL;
    }
    memset(ht->stripes, 0, stripes * sizeof(ht_stripe));
    for (size_t i = 0; i < stripes; i++)
        pthread_mutex_init(&ht->stripes[i].lock, NULL);
    ht->tab[0].mask = buckets - 1;
    ht->stripe_mask = stripes - 1;
    ht->need_grow = need_grow;
    ht->grow_ctx = ctx;
    return ht;
}

void ht_destroy(ep_ht *ht, void (*free_item)(ep_item *, void *), void *ctx)
{
    if (ht == NULL)
        return;
    ht_table *t = &ht->tab[ht->cur];
    for (uint64_t b = 0; b <= t->mask; b++) {
        ep_item *it = t->buckets[b];
        while (it != NULL) {
            ep_item *next = it->next;
            if (item_unref(it))
                free_item(it, ctx);
            it = next;
        }
    }
    for (uint64_t i = 0; i <= ht->stripe_mask; i++)
        pthread_mutex_destroy(&ht->stripes[i].lock);
    ht_large_free(t->buckets, (t->mask + 1) * sizeof(ep_item *));
    free(ht->stripes);
    free(ht);
}

ht_stripe *ht_lock(ep_ht *ht, uint64_t hash)
{
    ht_stripe *s = &ht->stripes[hash & ht->stripe_mask];
    pthread_mutex_lock(&s->lock);
    return s;
}

void ht_unlock(ht_stripe *s)
{
    pthread_mutex_unlock(&s->lock);
}

void ht_prefetch(ep_ht *ht, uint64_t hash)
{
    const ht_table *t = &ht->tab[__atomic_load_n(&ht->cur, __ATOMIC_RELAXED)];
    ep_item **buckets = __atomic_load_n(&t->buckets, __ATOMIC_RELAXED);
    uint64_t mask = __atomic_load_n(&t->mask, __ATOMIC_RELAXED);
    /* Mid-growth the two may not match: a prefetch never faults. */
    if (buckets != NULL)
        __builtin_prefetch(&buckets[hash & mask]);
}

ep_item **ht_bucket(ep_ht *ht, ht_stripe *s, uint64_t hash)
{
    ht_table *t = &ht->tab[s->tab];
    return &t->buckets[hash & t->mask];
}

ep_item **ht_find(ep_ht *ht, ht_stripe *s, uint64_t hash, uint16_t vbucket,
                  uint32_t collection, const void *key, size_t nkey)
{
    ht_table *t = &ht->tab[s->tab];
    ep_item **link = &t->buckets[hash & t->mask];
    for (ep_item *it = *link; it != NULL; link = &it->next, it = *link) {
        if (it->nkey == nkey && it->collection == collection && it->vbucket == vbucket &&
            memcmp(it->data, key, nkey) == 0)
            return link;
    }
    return link;
}

ep_item *ht_put(ep_ht *ht, ht_stripe *s, ep_item **link, ep_item *it, bool replace)
{
    ep_item *old = replace ? *link : NULL;
    if (old != NULL) {
        it->next = old->next;
        old->next = NULL;
    } else {
        it->next = *link;
        s->count++;
        ht_table *t = &ht->tab[s->tab];
        /* A stripe holds 1/nstripes of the buckets; judge the load locally. */
        uint64_t stripe_buckets = (t->mask + 1) >> __builtin_ctzll(ht->stripe_mask + 1);
        if (s->count > stripe_buckets * ht_max_load && ht->need_grow != NULL &&
            !atomic_exchange_explicit(&ht->grow_asked, true, memory_order_relaxed))
            ht->need_grow(ht->grow_ctx);
    }
    *link = it;
    return old;
}

ep_item *ht_unlink(ht_stripe *s, ep_item **link)
{
    ep_item *it = *link;
    *link = it->next;
    it->next = NULL;
    s->count--;
    return it;
}

void ht_for_each_stripe(ep_ht *ht, ht_visit_fn fn, void *ctx)
{
    for (uint64_t i = 0; i <= ht->stripe_mask; i++) {
        ht_stripe *s = &ht->stripes[i];
        pthread_mutex_lock(&s->lock);
        fn(ht, s, ctx);
        pthread_mutex_unlock(&s->lock);
    }
}

uint64_t ht_stripes(const ep_ht *ht)
{
    return ht->stripe_mask + 1;
}

bool ht_visit_stripe(ep_ht *ht, uint64_t index, ht_visit_fn fn, void *ctx)
{
    if (index > ht->stripe_mask)
        return false;
    ht_stripe *s = &ht->stripes[index];
    pthread_mutex_lock(&s->lock);
    fn(ht, s, ctx);
    pthread_mutex_unlock(&s->lock);
    return true;
}

void ht_stripe_scan(ep_ht *ht, ht_stripe *s, bool (*fn)(ep_item *, void *),
                    void (*drop)(ep_item *, void *), void *ctx)
{
    ht_table *t = &ht->tab[s->tab];
    uint64_t nstripes = ht->stripe_mask + 1;
    for (uint64_t b = (uint64_t)(s - ht->stripes); b <= t->mask; b += nstripes) {
        ep_item **link = &t->buckets[b];
        while (*link != NULL) {
            ep_item *it = *link;
            if (fn(it, ctx))
                drop(ht_unlink(s, link), ctx);
            else
                link = &it->next;
        }
    }
}

void ht_stripe_walk(ep_ht *ht, ht_stripe *s, bool (*fn)(ep_item **link, void *),
                    void *ctx)
{
    ht_table *t = &ht->tab[s->tab];
    uint64_t nstripes = ht->stripe_mask + 1;
    for (uint64_t b = (uint64_t)(s - ht->stripes); b <= t->mask; b += nstripes) {
        for (ep_item **link = &t->buckets[b]; *link != NULL; link = &(*link)->next) {
            if (!fn(link, ctx))
                return;
        }
    }
}

int ht_grow(ep_ht *ht)
{
    ht_table *old = &ht->tab[ht->cur];
    uint64_t nstripes = ht->stripe_mask + 1;
    uint64_t items = 0;
    for (uint64_t i = 0; i < nstripes; i++) {
        pthread_mutex_lock(&ht->stripes[i].lock);
        items += ht->stripes[i].count;
        pthread_mutex_unlock(&ht->stripes[i].lock);
    }
    if (items <= (old->mask + 1) * ht_max_load)
        return 0; /* still asked: see ht_grow_rearm */
    unsigned next = ht->cur ^ 1u;
    ht_table *nt = &ht->tab[next];
    uint64_t nbuckets = (old->mask + 1) * 2;
    /* 2^32 buckets (32 GiB of heads) is the ceiling. */
    if (nbuckets > (UINT64_C(1) << 32)) {
        atomic_store(&ht->grow_asked, false);
        return 0;
    }
    /* Grow to a load of at most one item per bucket (memory is a budget too). */
    while (items > nbuckets * ht_max_load && nbuckets < (UINT64_C(1) << 32))
        nbuckets *= 2;
    ep_item **buckets = ht_large_calloc(nbuckets * sizeof(ep_item *));
    if (buckets == NULL) {
        atomic_store(&ht->grow_asked, false);
        return -1;
    }
    __atomic_store_n(&nt->buckets, buckets, __ATOMIC_RELAXED);
    __atomic_store_n(&nt->mask, nbuckets - 1, __ATOMIC_RELAXED);

    for (uint64_t i = 0; i < nstripes; i++) {
        ht_stripe *s = &ht->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (uint64_t b = i; b <= old->mask; b += nstripes) {
            ep_item *it = old->buckets[b];
            while (it != NULL) {
                ep_item *next = it->next;
                uint64_t h = ht_hash(it->vbucket, it->collection, it->data, it->nkey);
                ep_item **head = &nt->buckets[h & nt->mask];
                it->next = *head;
                *head = it;
                it = next;
            }
        }
        s->tab = next;
        pthread_mutex_unlock(&s->lock);
    }
    ep_item **gone = old->buckets;
    size_t gone_bytes = (old->mask + 1) * sizeof(ep_item *);
    __atomic_store_n(&ht->cur, next, __ATOMIC_RELAXED);
    __atomic_store_n(&old->buckets, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&old->mask, 0, __ATOMIC_RELAXED);
    ht_large_free(gone, gone_bytes);
    atomic_fetch_add(&ht->resizes, 1);
    atomic_store(&ht->grow_asked, false);
    return 1;
}

void ht_grow_rearm(ep_ht *ht)
{
    atomic_store(&ht->grow_asked, false);
}

void ht_get_info(ep_ht *ht, ht_info *out, bool max_chain)
{
    memset(out, 0, sizeof(*out));
    out->stripes = ht->stripe_mask + 1;
    out->resizes = atomic_load(&ht->resizes);
    for (uint64_t i = 0; i <= ht->stripe_mask; i++) {
        ht_stripe *s = &ht->stripes[i];
        pthread_mutex_lock(&s->lock);
        ht_table *t = &ht->tab[s->tab];
        out->items += s->count;
        for (int j = 0; j < HT_STAT_SLOTS; j++)
            out->stat[j] += s->stat[j];
        if (i == 0)
            out->buckets = t->mask + 1;
        if (max_chain) {
            for (uint64_t b = i; b <= t->mask; b += ht->stripe_mask + 1) {
                uint64_t n = 0;
                for (ep_item *it = t->buckets[b]; it != NULL; it = it->next)
                    n++;
                if (n > out->max_chain)
                    out->max_chain = n;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void ht_reset_stats(ep_ht *ht)
{
    for (uint64_t i = 0; i <= ht->stripe_mask; i++) {
        ht_stripe *s = &ht->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (int j = 0; j < HT_STAT_SLOTS; j++)
            s->stat[j] = 0;
        pthread_mutex_unlock(&s->lock);
    }
}
