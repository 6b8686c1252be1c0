/*
 * flusher.c - the dirty queues and the writer tasks that drain them.
 *
 * A task takes its shard's whole queue, writes the newest version of each key
 * in it (older ones in the same batch are written once, as the newest), fsyncs
 * once, then answers every durable waiter of the batch. A failed batch goes
 * back to the front of the queue and is retried; its waiters are told at once
 * that their write is not durable (it stays in memory and on the queue). A
 * durable waiter is notified exactly once, on every path, and released after.
 */
#include "flusher.h"

#include "../core/core.h"
#include "../kvstore/kvstore.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dirty {
    ep_item *it;       /* a stored item (a reference), or NULL for a deletion */
    ep_item *gone;     /* for a deletion: the deleted item (a reference) */
    uint64_t cas;      /* the deletion's CAS */
    ep_waiter *waiter; /* a durable write's, or NULL */
} dirty;

typedef struct dqueue {
    dirty *v;
    size_t n, cap;
} dqueue;

typedef struct fshard {
    ep_flusher *f;
    unsigned no;
    pthread_mutex_t lock; /* guards q, timed and maybe_dups */
    dqueue q;
    bool maybe_dups; /* q may hold a key twice: the batch is de-duplicated */
    bool timed;      /* a batch is being written or the next run is set for after the
                        batch delay: plain writes do not wake the task meanwhile */
    exec_task *task;
    _Atomic uint64_t batches, records, bytes, failures, deduped, waiters, prefills;
    _Atomic uint64_t last_batch_us;
    _Atomic uint64_t inflight; /* writes taken from q and being written */
} fshard;

struct ep_flusher {
    ep_engine *e;
    unsigned nshards;
    fshard *shards;
    /* Set by flusher_close, before the executor stops: */
    _Atomic bool closing;           /* nobody can re-call the engine any more */
    bool drain;                     /* the shard tasks' cancel writes what is queued */
    _Atomic unsigned fail_enqueues; /* test hook: insertions still to refuse */
};

static bool dq_push(dqueue *q, dirty d)
{
    if (q->n == q->cap) {
        if (q->cap >= SIZE_MAX / 2 / sizeof(dirty))
            return false;
        size_t cap = q->cap ? q->cap * 2 : 256;
        dirty *v = realloc(q->v, cap * sizeof(dirty));
        if (v == NULL)
            return false;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = d;
    return true;
}

static const ep_item *key_of(const dirty *d)
{
    return d->it ? d->it : d->gone;
}

static fshard *shard_for(ep_flusher *f, uint16_t vbucket)
{
    return &f->shards[kvs_shard_of(f->nshards, vbucket)];
}

/* `dup`: the write replaces or deletes a version that is not on disk yet, so
 * the queue may hold its key twice. (A duplicate that goes unnoticed is only
 * written twice, in CAS order: still correct.) */
static bool enqueue(ep_flusher *f, dirty d, bool dup)
{
    fshard *sh = shard_for(f, key_of(&d)->vbucket);
    unsigned fail = atomic_load_explicit(&f->fail_enqueues, memory_order_relaxed);
    if (fail > 0 && atomic_compare_exchange_strong(&f->fail_enqueues, &fail, fail - 1))
        return false;
    pthread_mutex_lock(&sh->lock);
    bool was_empty = sh->q.n == 0;
    bool ok = dq_push(&sh->q, d);
    sh->maybe_dups |= ok && dup;
    /* A durable waiter is written at once; other writes join the next batch. */
    bool wake = ok && (d.waiter != NULL || (was_empty && !sh->timed));
    pthread_mutex_unlock(&sh->lock);
    if (wake)
        exec_wake(sh->task);
    return ok;
}

bool flusher_enqueue_set(ep_flusher *f, ep_item *it, const ep_item *replaced,
                         ep_waiter *w)
{
    item_ref(it);
    bool dup = replaced != NULL && item_loc(replaced) == 0;
    if (enqueue(f, (dirty){it, NULL, 0, w}, dup))
        return true;
    ep_item_put(f->e, it); /* not the last reference: the caller holds one */
    return false;
}

bool flusher_enqueue_delete(ep_flusher *f, const ep_item *gone, uint64_t cas,
                            ep_waiter *w)
{
    item_ref((ep_item *)gone);
    if (enqueue(f, (dirty){NULL, (ep_item *)gone, cas, w}, item_loc(gone) == 0))
        return true;
    ep_item_put(f->e, (ep_item *)gone);
    return false;
}

void flusher_fail_next_enqueues(ep_flusher *f, unsigned n)
{
    atomic_store(&f->fail_enqueues, n);
}

/* ---- writing a batch ---- */

static uint64_t key_hash(const ep_item *it)
{
    return ht_hash(it->vbucket, it->collection, it->data, it->nkey);
}

static bool same_key(const ep_item *a, const ep_item *b)
{
    return a->nkey == b->nkey && a->vbucket == b->vbucket &&
           a->collection == b->collection && memcmp(a->data, b->data, a->nkey) == 0;
}

typedef struct slot {
    uint32_t at1; /* entry index + 1; 0 = free */
    uint32_t tag; /* the key hash's upper half: most probes end here */
} slot;

#define DEDUPE_AHEAD 8 /* slots fetched ahead of their probe */

/* Bytes of the record an entry becomes. */
static size_t dirty_bytes(const dirty *d)
{
    const ep_item *it = key_of(d);
    return kvs_record_size(
        &(kvs_record){.nkey = it->nkey, .nvalue = d->it ? it->nvalue : 0});
}

/* Marks the newest entry of each key (entries are in CAS order per key, so the
 * last one) with want[i] = 1, older ones 0. Returns how many are kept, and
 * their record bytes in *total. The table is far bigger than the caches for a
 * large batch, so each probe's slot is fetched a few entries ahead. */
static size_t newest_per_key(const dqueue *b, bool dups, uint64_t *want, uint64_t *total)
{
    size_t n = b->n, size = 16, kept = 0;
    while (dups && size < n * 2)
        size *= 2;
    slot *slots = dups && n < UINT32_MAX ? calloc(size, sizeof(slot)) : NULL;
    *total = 0;
    if (slots == NULL) {
        /* No key twice, or no memory to look: write them all (still correct:
         * versions of a key are written in order, the newest last). */
        for (size_t i = 0; i < n; i++) {
            want[i] = 1;
            *total += dirty_bytes(&b->v[i]);
        }
        return n;
    }
    uint64_t ahead[DEDUPE_AHEAD];
    for (size_t k = 0; k < n && k < DEDUPE_AHEAD; k++) {
        ahead[k] = key_hash(key_of(&b->v[n - 1 - k]));
        __builtin_prefetch(&slots[ahead[k] & (size - 1)]);
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = n - 1 - k; /* newest first */
        uint64_t h = ahead[k % DEDUPE_AHEAD];
        if (k + DEDUPE_AHEAD < n) {
            uint64_t next = key_hash(key_of(&b->v[i - DEDUPE_AHEAD]));
            ahead[k % DEDUPE_AHEAD] = next;
            __builtin_prefetch(&slots[next & (size - 1)]);
        }
        const ep_item *key = key_of(&b->v[i]);
        uint32_t tag = (uint32_t)(h >> 32);
        size_t s = h & (size - 1);
        bool seen = false;
        for (; slots[s].at1 != 0; s = (s + 1) & (size - 1))
            if (slots[s].tag == tag && same_key(key_of(&b->v[slots[s].at1 - 1]), key)) {
                seen = true;
                break;
            }
        want[i] = !seen;
        if (!seen) {
            slots[s] = (slot){(uint32_t)i + 1, tag};
            *total += dirty_bytes(&b->v[i]);
            kept++;
        }
    }
    free(slots);
    return kept;
}

static kvs_record to_record(ep_engine *e, const dirty *d)
{
    const ep_item *it = key_of(d);
    kvs_record r = {d->it ? KVS_SET : KVS_DELETE,
                    d->it ? item_datatype(it) : 0,
                    it->vbucket,
                    it->collection,
                    d->it ? it->cas : d->cas,
                    d->it ? it->flags : 0,
                    0,
                    it->nkey,
                    d->it ? it->nvalue : 0,
                    it->data,
                    d->it ? it->data + it->nkey : NULL,
                    0};
    if (d->it && it->exptime != 0)
        r.exptime = (uint32_t)e->sapi->core.abstime(it->exptime);
    return r;
}

/* Tells one waiter how its write went (it then lets the cookie go). */
static void answer(ep_flusher *f, const dirty *d, engine_errc status, const char *why)
{
    if (status == ENGINE_SUCCESS && atomic_load(&f->closing)) {
        /* The host never calls a destroyed engine again: a success would wait
         * for a re-call that cannot come. Say it in the reason instead. */
        status = ENGINE_TEMPORARY_FAILURE;
        why = "the engine shut down; the write was made durable first";
    }
    waiter_finish(d->waiter, status, d->it ? d->it->cas : d->cas, why);
}

static void drop_refs(ep_engine *e, dqueue *b)
{
    for (size_t i = 0; i < b->n; i++)
        ep_item_put(e, b->v[i].it ? b->v[i].it : b->v[i].gone);
    free(b->v);
    *b = (dqueue){0};
}

/* Writes one batch: locs[i] is then where entry i's record is, or 0 for an
 * older version of a key written once as its newest. 0, or -errno (why says
 * what failed). */
static int write_batch(fshard *sh, dqueue *b, bool dups, uint64_t *locs, char *why,
                       size_t whylen)
{
    ep_engine *e = sh->f->e;
    uint64_t total;
    size_t kept = newest_per_key(b, dups, locs, &total);
    uint64_t t0 = exec_now_ns();
    kvs_appender a;
    kvs_append_begin(e->store, sh->no, total, &a);
    for (size_t i = 0; i < b->n; i++) {
        if (locs[i] != 0) {
            kvs_record r = to_record(e, &b->v[i]);
            kvs_append_add(&a, &r, &locs[i]);
        }
    }
    int rc = kvs_append_commit(&a, why, whylen);
    if (rc == 0) {
        atomic_fetch_add(&sh->batches, 1);
        atomic_fetch_add(&sh->records, kept);
        atomic_fetch_add(&sh->bytes, total);
        atomic_fetch_add(&sh->deduped, b->n - kept);
        atomic_store(&sh->last_batch_us, (exec_now_ns() - t0) / 1000);
    }
    return rc;
}

/* After a batch is durable, in one pass: the written items are clean (their
 * values may be evicted; a compaction may have placed one in a base already,
 * that stays), each waiter hears, and the batch's references go. */
static void finish_batch(ep_flusher *f, dqueue *b, const uint64_t *locs)
{
    for (size_t i = 0; i < b->n; i++) {
        dirty *d = &b->v[i];
        if (d->it != NULL && locs[i] != 0)
            item_set_loc_if_none(d->it, locs[i]);
        if (d->waiter != NULL)
            answer(f, d, ENGINE_SUCCESS, NULL);
        ep_item_put(f->e, d->it ? d->it : d->gone);
    }
    free(b->v);
    *b = (dqueue){0};
}

/* Answers the waiters of a batch and forgets them (a requeued batch must not
 * answer them twice). */
static void answer_all(ep_flusher *f, dqueue *b, engine_errc status, const char *why)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i].waiter != NULL) {
            answer(f, &b->v[i], status, why);
            b->v[i].waiter = NULL;
        }
    }
}

/* Puts a failed batch back in front of what arrived meanwhile. */
static void requeue(fshard *sh, dqueue *b)
{
    pthread_mutex_lock(&sh->lock);
    dqueue later = sh->q;
    sh->q = *b;
    *b = (dqueue){0};
    sh->maybe_dups = true; /* the batch and what came after may share keys */
    size_t lost = 0;
    for (size_t i = 0; i < later.n; i++)
        if (!dq_push(&sh->q, later.v[i]))
            later.v[lost++] = later.v[i]; /* answered below, with no lock held */
    pthread_mutex_unlock(&sh->lock);
    for (size_t i = 0; i < lost; i++) {
        if (later.v[i].waiter != NULL)
            answer(sh->f, &later.v[i], ENGINE_TEMPORARY_FAILURE,
                   "out of memory queueing the write; it is in memory only");
        ep_item_put(sh->f->e, later.v[i].it ? later.v[i].it : later.v[i].gone);
    }
    free(later.v);
    if (lost > 0)
        sh->f->e->sapi->log(
            ENGINE_LOG_ERROR,
            "ep_engine: shard %u: out of memory: %zu writes stay in memory "
            "only and will not be persisted",
            sh->no, lost);
}

/* With nothing else queued, writes zeros ahead of the segment's data, so the
 * next appends are overwrites (cheaper to make durable). Before the waiters are
 * answered, so nothing a client does next races with it. */
static void prefill_if_idle(fshard *sh)
{
    ep_engine *e = sh->f->e;
    if (e->cfg.segment_prefill_bytes == 0)
        return;
    pthread_mutex_lock(&sh->lock);
    bool idle = sh->q.n == 0;
    pthread_mutex_unlock(&sh->lock);
    if (!idle)
        return;
    int rc = kvs_prefill(e->store, sh->no, e->cfg.segment_prefill_bytes);
    if (rc > 0)
        atomic_fetch_add(&sh->prefills, 1);
    else if (rc < 0)
        e->sapi->log(ENGINE_LOG_INFO,
                     "ep_engine: shard %u: writing ahead failed; the next batch starts "
                     "a new segment",
                     sh->no);
}

/* Drains the shard once: 1 if a batch was written, 0 if empty, -errno. */
static int flush_once(fshard *sh)
{
    ep_engine *e = sh->f->e;
    pthread_mutex_lock(&sh->lock);
    dqueue b = sh->q;
    sh->q = (dqueue){0};
    bool dups = sh->maybe_dups;
    sh->maybe_dups = false;
    atomic_store(&sh->inflight, b.n);
    /* Under the lock that enqueue takes: an empty queue means the next write
     * must wake the task again. */
    sh->timed = b.n > 0 && e->cfg.flusher_batch_delay_ms > 0;
    pthread_mutex_unlock(&sh->lock);
    if (b.n == 0)
        return 0;
    char why[512] = "";
    uint64_t *locs = calloc(b.n, sizeof(uint64_t));
    int rc = -ENOMEM;
    if (locs != NULL)
        rc = write_batch(sh, &b, dups, locs, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "out of memory for a batch of %zu writes", b.n);
    if (rc == 0) {
        prefill_if_idle(sh);
        finish_batch(sh->f, &b, locs);
        free(locs);
        atomic_store(&sh->inflight, 0);
        return 1;
    }
    free(locs);
    atomic_fetch_add(&sh->failures, 1);
    e->sapi->log(ENGINE_LOG_WARNING,
                 "ep_engine: flush of shard %u failed (will retry): %s", sh->no, why);
    char reason[600];
    snprintf(reason, sizeof(reason),
             "the write is in memory but is not durable yet: %s (it will be retried)",
             why);
    answer_all(sh->f, &b, ENGINE_TEMPORARY_FAILURE, reason);
    requeue(sh, &b);
    atomic_store(&sh->inflight, 0);
    return rc;
}

static int64_t flush_run(exec_task *task, void *arg)
{
    (void)task;
    fshard *sh = arg;
    int rc = flush_once(sh);
    if (rc < 0)
        return (int64_t)sh->f->e->cfg.flusher_retry_ms;
    if (rc == 0)
        return EXEC_FOREVER;
    /* Let writes gather for the next batch: fewer, larger fsyncs. */
    return (int64_t)sh->f->e->cfg.flusher_batch_delay_ms;
}

/* ---- lifecycle ---- */

/* Empties a shard's queue at shutdown: what could not be written is dropped,
 * and its waiters hear that it is not durable. */
static void discard_queue(fshard *sh)
{
    pthread_mutex_lock(&sh->lock);
    dqueue b = sh->q;
    sh->q = (dqueue){0};
    pthread_mutex_unlock(&sh->lock);
    if (b.n == 0)
        return;
    sh->f->e->sapi->log(ENGINE_LOG_WARNING,
                        "ep_engine: shard %u: %zu writes were not persisted at shutdown",
                        sh->no, b.n);
    answer_all(sh->f, &b, ENGINE_TEMPORARY_FAILURE,
               "the engine shut down before the write was durable");
    drop_refs(sh->f->e, &b);
}

/* The executor ends a shard task this way at shutdown, on a writer thread: the
 * last batch (unless a forced stop) and every waiter's answer come from an
 * engine thread, never from the thread that destroys the engine. */
static void flush_cancel(exec_task *task, void *arg)
{
    (void)task;
    fshard *sh = arg;
    if (sh->f->drain)
        while (flush_once(sh) > 0)
            ;
    discard_queue(sh);
}

ep_flusher *flusher_create(ep_engine *e)
{
    ep_flusher *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->e = e;
    f->shards = calloc(kvs_shards(e->store), sizeof(fshard));
    if (f->shards == NULL) {
        flusher_destroy(f);
        return NULL;
    }
    f->nshards = kvs_shards(e->store);
    for (unsigned i = 0; i < f->nshards; i++) {
        fshard *sh = &f->shards[i];
        sh->f = f;
        sh->no = i;
        pthread_mutex_init(&sh->lock, NULL);
        sh->task = exec_task_new(e->pool, "flusher", EXEC_WRITER, 1, flush_run,
                                 flush_cancel, sh);
        if (sh->task == NULL) {
            flusher_destroy(f);
            return NULL;
        }
    }
    return f;
}

bool flusher_start(ep_flusher *f)
{
    for (unsigned i = 0; i < f->nshards; i++)
        if (!exec_schedule(f->shards[i].task, EXEC_FOREVER))
            return false;
    return true;
}

void flusher_close(ep_flusher *f, bool drain)
{
    if (f == NULL)
        return;
    f->drain = drain;
    atomic_store(&f->closing, true);
}

void flusher_destroy(ep_flusher *f)
{
    if (f == NULL)
        return;
    for (unsigned i = 0; i < f->nshards; i++) {
        fshard *sh = &f->shards[i];
        if (sh->task == NULL)
            continue;
        /* Empty already: the task's cancel ran (or the task never started,
         * initialize failed, and no write was ever queued). A waiter found here
         * would be answered from the destroying thread, which the contract
         * does not allow: there is none. */
        discard_queue(sh);
        exec_task_put(sh->task);
        pthread_mutex_destroy(&sh->lock);
    }
    free(f->shards);
    free(f);
}

void flusher_stats(ep_flusher *f, flusher_stat_fn add, void *ctx)
{
    uint64_t batches = 0, records = 0, bytes = 0, failures = 0, deduped = 0, queued = 0,
             prefills = 0;
    for (unsigned i = 0; i < f->nshards; i++) {
        fshard *sh = &f->shards[i];
        batches += atomic_load(&sh->batches);
        records += atomic_load(&sh->records);
        bytes += atomic_load(&sh->bytes);
        failures += atomic_load(&sh->failures);
        deduped += atomic_load(&sh->deduped);
        prefills += atomic_load(&sh->prefills);
        pthread_mutex_lock(&sh->lock);
        queued += sh->q.n + atomic_load(&sh->inflight);
        pthread_mutex_unlock(&sh->lock);
    }
    add("ep_flusher_batches", batches, ctx);
    add("ep_flusher_records", records, ctx);
    add("ep_flusher_bytes", bytes, ctx);
    add("ep_flusher_failures", failures, ctx);
    add("ep_flusher_deduplicated", deduped, ctx);
    add("ep_flusher_prefills", prefills, ctx);
    add("ep_queue_size", queued, ctx);
    uint64_t disk = 0;
    for (unsigned i = 0; i < f->nshards; i++)
        disk += kvs_shard_bytes(f->e->store, i);
    add("ep_disk_bytes", disk, ctx);
}
