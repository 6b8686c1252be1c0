/*
 * warmup.c - rebuilds the hash table from disk on a reader task after
 * initialize, shard by shard, before the engine serves data (data operations
 * answer temporary_failure until it is done).
 *
 * For each record in write order: the newest version of a key wins (by CAS),
 * a tombstone removes older versions, and records of dropped collections (or
 * of an earlier incarnation of a re-added id) and expired items are skipped. A
 * torn tail is dropped and reported. It never links an item that is not the
 * newest version on disk.
 */
#include "warmup.h"
#include "../evict/evict.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Records are applied through a short queue: a record's item is made and its
 * bucket fetched when it is read, and it is linked WARM_AHEAD records later,
 * once the bucket is in the cache (the table is much bigger than the caches, so
 * the wait for each bucket was most of warmup's time). Records of one key stay
 * in order: a shard's records are applied in the order they were read.
 *
 * Searching a chain for a key that is not there touches every item in it (a
 * cache miss each), and most keys warmup reads are new. A filter of the key
 * hashes seen so far, shared by the shards (a key may have records in two
 * shards if num_shards changed), says when a key cannot be in the table: its
 * item is then linked at the head of its bucket without a search. The filter
 * bit is tested and set under the key's stripe lock, so two records of one key
 * can never both take it for new. */
#define WARM_AHEAD         16
#define WARM_PUBLISH       1024 /* records between updates of the shared counters */
#define WARM_FILTER_MIN    (UINT64_C(1) << 16) /* bits */
#define WARM_FILTER_MAX    (UINT64_C(1) << 30) /* bits (128 MiB) */
#define WARM_BYTES_PER_BIT 4 /* of data on disk: 40 bits for a 160-byte record */

typedef struct warm_filter {
    _Atomic uint64_t *words;
    size_t bytes;
    unsigned shift; /* a hash's bit is hash >> shift */
} warm_filter;

/* One reader task per shard. */

/* One shard's warmup task. */
typedef struct warm_shard {
    ep_engine *e;
    unsigned shard;
    exec_task *task;
} warm_shard;

struct ep_warmup {
    ep_engine *e;
    warm_shard *shards;   /* kvs_shards of them */
    warm_filter *filter;  /* keys seen so far; freed by the last shard to finish */
    uint64_t t0;          /* when warmup began (exec_now_ns) */
    _Atomic bool failed;  /* a shard failed */
    ep_progress progress; /* records and bytes read so far, of the files' bytes */
    struct {
        _Atomic uint64_t shards_done, records, bytes, loaded, tombstones, skipped_dropped,
            skipped_expired, skipped_older, skipped_invalid, torn_segments, torn_bytes,
            duration_us;
    } stats;
};

/* Bytes of every shard's files: what warmup will read. */
static uint64_t disk_bytes(ep_engine *e)
{
    uint64_t bytes = 0;
    for (unsigned i = 0; i < kvs_shards(e->store); i++)
        bytes += kvs_shard_bytes(e->store, i);
    return bytes;
}

/* Sized by the data on disk; its memory is outside the quota while warmup
 * runs, so it is kept to a sixteenth of max_size (a smaller filter only says
 * "maybe seen" more often: more chains are searched). */
static warm_filter *filter_new(ep_engine *e)
{
    uint64_t bytes = disk_bytes(e), bits = WARM_FILTER_MIN;
    unsigned log2 = 16;
    while (bits < bytes / WARM_BYTES_PER_BIT && bits < WARM_FILTER_MAX &&
           bits * 2 <= e->cfg.max_size / 2) {
        bits *= 2;
        log2++;
    }
    warm_filter *f = malloc(sizeof(*f));
    if (f == NULL)
        return NULL;
    f->bytes = bits / 8;
    f->words = ht_large_calloc(f->bytes);
    if (f->words == NULL) {
        free(f);
        return NULL; /* warmup searches every chain then */
    }
    f->shift = 64 - log2;
    return f;
}

static void filter_free(warm_filter *f)
{
    if (f != NULL)
        ht_large_free((void *)f->words, f->bytes);
    free(f);
}

static void filter_prefetch(const warm_filter *f, uint64_t hash)
{
    if (f != NULL)
        __builtin_prefetch(&f->words[(hash >> f->shift) / 64]);
}

/* Under the key's stripe lock: whether the key may have been seen (always, with
 * no filter); with `set`, marks it seen. */
static bool filter_seen(warm_filter *f, uint64_t hash, bool set)
{
    if (f == NULL)
        return true;
    uint64_t bit = hash >> f->shift, mask = UINT64_C(1) << (bit % 64);
    _Atomic uint64_t *w = &f->words[bit / 64];
    if (set)
        return (atomic_fetch_or_explicit(w, mask, memory_order_relaxed) & mask) != 0;
    return (atomic_load_explicit(w, memory_order_relaxed) & mask) != 0;
}

typedef struct pending {
    uint64_t hash;
    ep_item *it; /* the new version, or NULL (a tombstone, or an expired set) */
    uint8_t type;
    uint16_t vbucket;
    uint16_t nkey;
    uint32_t collection;
    uint64_t cas;
    char key[ENGINE_KEY_MAX_LEN]; /* when there is no item to hold it */
} pending;

enum { W_LOADED, W_TOMBSTONES, W_DROPPED, W_EXPIRED, W_OLDER, W_INVALID, W_NCOUNTS };

typedef struct warm_ctx {
    ep_engine *e;
    engine_rel_time now;
    pending ring[WARM_AHEAD];
    size_t head, queued;
    uint64_t counts[W_NCOUNTS]; /* not yet added to warm_stats */
    uint64_t max_cas;           /* highest CAS read, not yet in cas_seq */
    uint64_t unpublished;       /* records since the counters were added */
    uint64_t unpublished_bytes; /* ... and their bytes */
    uint64_t since_grow;        /* item bytes allocated since the last grow_hint */
    ep_alloc_credit credit;     /* quota bytes and engine references taken ahead */
    ep_coll_tally tally;        /* collection counters not yet added */
    arena_cursor cursor;        /* this shard's place in e->arena */
    char error[256];
} warm_ctx;

static void warn(const char *msg, void *ctx)
{
    warm_ctx *w = ctx;
    w->e->sapi->log(ENGINE_LOG_WARNING, "ep_engine: warmup: %s", msg);
}

/* Adds this shard's counts to the engine's (the warmup stats show progress) and
 * to the collections', and raises cas_seq to the highest CAS read. */
static void publish(warm_ctx *w)
{
    ep_engine *e = w->e;
    _Atomic uint64_t *to[W_NCOUNTS] = {
        &e->warmup->stats.loaded,          &e->warmup->stats.tombstones,
        &e->warmup->stats.skipped_dropped, &e->warmup->stats.skipped_expired,
        &e->warmup->stats.skipped_older,   &e->warmup->stats.skipped_invalid};
    for (int i = 0; i < W_NCOUNTS; i++) {
        if (w->counts[i] != 0)
            atomic_fetch_add(to[i], w->counts[i]);
        w->counts[i] = 0;
    }
    ep_coll_tally_flush(&w->tally);
    progress_add(&e->warmup->progress, w->unpublished, w->unpublished_bytes,
                 w->unpublished_bytes);
    progress_tick(&e->warmup->progress, e->sapi, exec_now_ns());
    w->unpublished_bytes = 0;
    uint64_t cas = atomic_load(&e->cas_seq);
    while (w->max_cas > cas &&
           !atomic_compare_exchange_weak(&e->cas_seq, &cas, w->max_cas))
        ;
    w->unpublished = 0;
}

/* Links (or unlinks) one queued record under its stripe lock. */
static void link_pending(warm_ctx *w, pending *p)
{
    ep_engine *e = w->e;
    const char *key = p->it != NULL ? p->it->data : p->key;
    ep_item *old = NULL;
    ht_stripe *s = ht_lock(e->ht, p->hash);
    const coll_collection *c = coll_find_collection(s->view, p->collection);
    ep_item **link, *cur;
    if (filter_seen(e->warmup->filter, p->hash, p->it != NULL)) {
        link = ht_find(e->ht, s, p->hash, p->vbucket, p->collection, key, p->nkey);
        cur = *link;
    } else {
        link = ht_bucket(e->ht, s, p->hash); /* new: inserted at the head */
        cur = NULL;
    }
    if (c == NULL || p->cas <= c->state->start_cas) {
        w->counts[W_DROPPED]++;
    } else if (cur != NULL && cur->cas >= p->cas) {
        w->counts[W_OLDER]++;
    } else if (p->it != NULL) {
        old = ep_link_new_item(e, s, link, p->it, cur != NULL, &w->tally);
        p->it = NULL; /* our reference is the table's now */
        w->counts[W_LOADED]++;
    } else {
        if (cur != NULL)
            old = ep_unlink_item(e, s, link, &w->tally);
        w->counts[p->type == KVS_SET ? W_EXPIRED : W_TOMBSTONES]++;
    }
    ht_unlock(s);
    if (old != NULL)
        ep_item_put(e, old);
    if (p->it != NULL)
        ep_item_put(e, p->it); /* not linked: freed */
    p->it = NULL;
}

/* Links every queued record (link), or drops them (warmup failed). */
static void drain(warm_ctx *w, bool link)
{
    for (; w->queued > 0; w->queued--) {
        pending *p = &w->ring[w->head];
        w->head = (w->head + 1) % WARM_AHEAD;
        if (link) {
            link_pending(w, p);
        } else if (p->it != NULL) {
            ep_item_put(w->e, p->it);
            p->it = NULL;
        }
    }
}

/* glibc grows a thread's arena one page (one mprotect call) at a time as
 * small blocks are carved from its end, and warmup allocates hundreds of MB of
 * items in a row: one system call per page. So every WARM_GROW_EVERY bytes of
 * items, one block of WARM_GROW_BLOCK (under the 128 KiB at which glibc maps a
 * block of its own) is allocated, its pages are made present in one call
 * (rather than a fault per page as the items land on them), and it is freed:
 * the arena grows by it in one call and the next items are carved from that
 * space (the figures: BENCHMARKS.md). Elsewhere it is one cheap malloc and
 * free. */
#define WARM_GROW_EVERY (64u << 10)
#define WARM_GROW_BLOCK (120u << 10)

static void grow_hint(warm_ctx *w, size_t bytes)
{
    w->since_grow += sizeof(ep_item) + bytes;
    if (w->since_grow < WARM_GROW_EVERY)
        return;
    w->since_grow = 0;
    void *volatile block = malloc(WARM_GROW_BLOCK); /* volatile: kept */
#if defined(MADV_POPULATE_WRITE)
    if (block != NULL) {
        uintptr_t page = 4096, from = ((uintptr_t)block + page - 1) & ~(page - 1),
                  to = ((uintptr_t)block + WARM_GROW_BLOCK) & ~(page - 1);
        (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE); /* a hint */
    }
#endif
    free(block);
}

/* Reads one record: makes its item, starts fetching its bucket, queues it, and
 * links the one queued WARM_AHEAD records ago. */
static int apply(const kvs_record *r, void *ctx)
{
    warm_ctx *w = ctx;
    ep_engine *e = w->e;
    w->unpublished_bytes += kvs_record_size(r);
    if (++w->unpublished >= WARM_PUBLISH)
        publish(w);
    if (r->vbucket >= e->cfg.max_vbuckets || r->nkey == 0 ||
        r->nkey > ENGINE_KEY_MAX_LEN) {
        w->counts[W_INVALID]++;
        return 0;
    }
    if (r->cas > w->max_cas)
        w->max_cas = r->cas;
    engine_rel_time exptime = r->exptime ? e->sapi->core.realtime(r->exptime) : 0;
    bool is_set = r->type == KVS_SET && !(exptime != 0 && exptime <= w->now);
    ep_item *it = NULL;
    if (is_set) {
        if (w->credit.cursor == NULL || w->cursor.full)
            grow_hint(w, r->nkey + r->nvalue); /* the item comes from malloc */
        engine_doc_key key = {r->collection, r->nkey, r->key};
        engine_errc rc;
        it = ep_item_alloc_credit(e, &key, r->nvalue, &w->credit, &rc);
        /* More data than memory: values loaded so far are clean, evict some. */
        for (bool evicted = true;
             it == NULL && rc == ENGINE_TEMPORARY_FAILURE && evicted;) {
            /* Quota taken ahead goes back, and the queued records are linked,
             * so that they can be evicted too. */
            ep_alloc_credit_return(e, &w->credit);
            drain(w, true);
            ep_coll_tally_flush(&w->tally); /* the pass takes from these counters */
            /* Another shard's pass may have made the room: try again after
             * each pass; give up when a pass finds nothing left to evict. */
            evicted = evict_pass(e->evictor) > 0;
            it = ep_item_alloc(e, NULL, &key, r->nvalue, &rc);
        }
        if (it == NULL) {
            snprintf(w->error, sizeof(w->error),
                     "the data does not fit in max_size (%" PRIu64 " bytes)",
                     e->cfg.max_size);
            return -1;
        }
        it->flags = r->flags;
        it->exptime = exptime;
        it->vbucket = r->vbucket;
        it->cas = r->cas;
        if (r->nvalue > 0)
            memcpy(item_value(it), r->value, r->nvalue);
        /* Stored, and clean (its value may be evicted). */
        item_init_state(it, r->datatype, true, r->loc);
    }
    if (w->queued == WARM_AHEAD) {
        link_pending(w, &w->ring[w->head]);
        w->head = (w->head + 1) % WARM_AHEAD;
        w->queued--;
    }
    pending *p = &w->ring[(w->head + w->queued) % WARM_AHEAD];
    w->queued++;
    /* Field by field: a compound literal would clear the whole key array. */
    p->hash = ht_hash(r->vbucket, r->collection, r->key, r->nkey);
    p->it = it;
    p->type = r->type;
    p->vbucket = r->vbucket;
    p->nkey = r->nkey;
    p->collection = r->collection;
    p->cas = r->cas;
    if (it == NULL)
        memcpy(p->key, r->key, r->nkey);
    ht_prefetch(e->ht, p->hash);
    filter_prefetch(e->warmup->filter, p->hash);
    return 0;
}

/* The last shard to finish declares the engine warm (or failed). */
static void shard_finished(ep_engine *e, bool failed)
{
    if (failed)
        atomic_store(&e->warmup->failed, true);
    unsigned n = kvs_shards(e->store);
    if (atomic_fetch_add(&e->warmup->stats.shards_done, 1) + 1 != n)
        return;
    progress_end(&e->warmup->progress, !atomic_load(&e->warmup->failed));
    filter_free(e->warmup->filter); /* the other shards are done with it */
    e->warmup->filter = NULL;
    atomic_store(&e->warmup->stats.duration_us, (exec_now_ns() - e->warmup->t0) / 1000);
    if (atomic_load(&e->warmup->failed)) {
        atomic_store(&e->warm_state, EP_WARM_FAILED);
        return;
    }
    e->sapi->log(ENGINE_LOG_INFO,
                 "ep_engine: warmup done: %" PRIu64 " records, %" PRIu64
                 " items loaded in %" PRIu64 " ms; %" PRIu64 " torn bytes dropped",
                 atomic_load(&e->warmup->stats.records),
                 atomic_load(&e->warmup->stats.loaded),
                 atomic_load(&e->warmup->stats.duration_us) / 1000,
                 atomic_load(&e->warmup->stats.torn_bytes));
    atomic_store(&e->warm_state, EP_WARM_DONE);
}

static int64_t warm_shard_run(exec_task *task, void *arg)
{
    (void)task;
    warm_shard *ws = arg;
    ep_engine *e = ws->e;
    warm_ctx *w = calloc(1, sizeof(*w));
    char why[512] = "";
    kvs_scan_stats st = {0};
    int rc = -1;
    if (w == NULL) {
        snprintf(why, sizeof(why), "out of memory for the warmup queue");
    } else {
        *w = (warm_ctx){.e = e, .now = e->sapi->core.get_current_time()};
        if (e->arena != NULL)
            w->credit.cursor = &w->cursor;
        rc = kvs_scan(e->store, ws->shard, apply, w, &st, warn, why, sizeof(why));
        drain(w, rc == 0);
        publish(w);
        ep_alloc_credit_return(e, &w->credit);
        if (e->arena != NULL)
            arena_cursor_close(e->arena, &w->cursor);
    }
    atomic_fetch_add(&e->warmup->stats.records, st.records);
    atomic_fetch_add(&e->warmup->stats.bytes, st.bytes);
    atomic_fetch_add(&e->warmup->stats.torn_segments, st.torn_segments);
    atomic_fetch_add(&e->warmup->stats.torn_bytes, st.torn_bytes);
    if (rc != 0)
        e->sapi->log(ENGINE_LOG_ERROR, "ep_engine: warmup of shard %u failed: %s",
                     ws->shard, w != NULL && w->error[0] ? w->error : why);
    free(w);
    shard_finished(e, rc != 0);
    return EXEC_DONE;
}

static void warm_shard_cancel(exec_task *task, void *arg)
{
    (void)task;
    warm_shard *ws = arg;
    shard_finished(ws->e, true); /* shut down before it ran */
}

/* Warmup's items come from an arena when the data on disk fits in the free
 * quota. An item takes no more memory than its record on disk (a 48-byte
 * header for the record's 48) plus up to 7 bytes of alignment, so the arena then
 * holds what was loaded and no more, within the quota. Data that may not fit
 * is loaded with malloc, which reuses what eviction frees as warmup goes (the
 * arena never reuses memory). */
static ep_arena *arena_for(ep_engine *e)
{
    uint64_t bytes = disk_bytes(e);
    if (!e->cfg.warmup_arena || bytes == 0 ||
        ep_load(&e->mem_used) + bytes > e->cfg.max_size)
        return NULL;
    /* Alignment (7 bytes at most per item of 49 or more), and a partly filled
     * block per shard. Should it still fall short, malloc serves the rest. */
    return arena_new(bytes + bytes / 7 +
                     (kvs_shards(e->store) + 1) * (uint64_t)ARENA_BLOCK_BYTES);
}

ep_warmup *warmup_create(ep_engine *e)
{
    ep_warmup *wu = calloc(1, sizeof(*wu));
    if (wu == NULL)
        return NULL;
    wu->e = e;
    wu->shards = calloc(kvs_shards(e->store), sizeof(*wu->shards));
    if (wu->shards == NULL) {
        warmup_free(wu);
        return NULL;
    }
    return wu;
}

bool warmup_start(ep_warmup *wu)
{
    ep_engine *e = wu->e;
    unsigned n = kvs_shards(e->store);
    warm_shard *ws = wu->shards;
    wu->t0 = exec_now_ns();
    wu->progress.quiet_ns = e->cfg.progress_log_after_ms * 1000000;
    progress_begin(&wu->progress, "warmup", disk_bytes(e), wu->t0);
    wu->filter = filter_new(e);
    e->arena = arena_for(e); /* NULL: malloc, as everywhere else */
    for (unsigned i = 0; i < n; i++) {
        ws[i] = (warm_shard){e, i, NULL};
        ws[i].task = exec_task_new(e->pool, "warmup", EXEC_READER, 0, warm_shard_run,
                                   warm_shard_cancel, &ws[i]);
        if (ws[i].task == NULL || !exec_schedule(ws[i].task, 0))
            return false;
    }
    return true;
}

void warmup_free(ep_warmup *wu)
{
    if (wu == NULL)
        return;
    for (unsigned i = 0; wu->shards != NULL && i < kvs_shards(wu->e->store); i++)
        exec_task_put(wu->shards[i].task);
    free(wu->shards);
    filter_free(wu->filter);
    free(wu);
}

const ep_progress *warmup_progress(const ep_warmup *wu)
{
    return wu != NULL ? &wu->progress : NULL;
}

void warmup_figures_get(ep_warmup *wu, warmup_figures *f)
{
    *f = (warmup_figures){0};
    if (wu == NULL)
        return;
    f->shards_done = ep_load(&wu->stats.shards_done);
    f->records = ep_load(&wu->stats.records);
    f->bytes = ep_load(&wu->stats.bytes);
    f->loaded = ep_load(&wu->stats.loaded);
    f->tombstones = ep_load(&wu->stats.tombstones);
    f->skipped_dropped = ep_load(&wu->stats.skipped_dropped);
    f->skipped_expired = ep_load(&wu->stats.skipped_expired);
    f->skipped_older = ep_load(&wu->stats.skipped_older);
    f->skipped_invalid = ep_load(&wu->stats.skipped_invalid);
    f->torn_segments = ep_load(&wu->stats.torn_segments);
    f->torn_bytes = ep_load(&wu->stats.torn_bytes);
    f->duration_us = ep_load(&wu->stats.duration_us);
}
