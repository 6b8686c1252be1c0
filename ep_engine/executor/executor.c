/*
 * executor.c - task pools of the engine: one queue and a fixed set of threads
 * per task type.
 *
 * Each type has two heaps under its pool mutex: `future` (tasks waiting for
 * their wake time, ordered by wake time) and `ready` (wake time passed, ordered
 * by priority, then wake time, then schedule order). A worker moves due tasks
 * from future to ready, takes the best ready task, drops the lock and runs it.
 * It must never hold the lock while a run or cancel function executes.
 */
#include "executor.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum task_state {
    TASK_NEW,     /* made, not yet scheduled */
    TASK_FUTURE,  /* in the future heap */
    TASK_READY,   /* in the ready heap */
    TASK_RUNNING, /* a worker is in its run function */
    TASK_FINISHED /* run returned EXEC_DONE, or cancelled */
};

/* Per-description statistics; entries live as long as the pool. */
typedef struct task_stats {
    struct task_stats *next;
    char *desc;
    _Atomic uint64_t runs;
    _Atomic uint64_t total_ns;
    _Atomic uint64_t max_ns;
    _Atomic uint64_t delay_total_ns; /* wake time to start of run */
    _Atomic uint64_t delay_max_ns;
    _Atomic uint64_t cancels;
} task_stats;

struct exec_task {
    struct type_queue *q;
    task_stats *stats;
    exec_run_fn run;
    exec_cancel_fn cancel;
    void *arg;
    int priority;
    _Atomic int refs;
    /* Guarded by q->lock: */
    enum task_state state;
    bool wake_pending;   /* exec_wake while running */
    bool cancel_pending; /* exec_cancel while running */
    size_t heap_index;
    uint64_t wake_ns;
    uint64_t seq;
};

typedef struct heap {
    exec_task **v;
    size_t n, cap;
    bool by_priority; /* ready heap: priority first */
} heap;

/* One task type's queue and threads. */
typedef struct type_queue {
    exec_pool *pool;
    pthread_mutex_t lock; /* guards both heaps, every task's state fields, stopping */
    pthread_cond_t cond;  /* signalled when a task becomes due or on shutdown */
    heap future;
    heap ready;
    uint64_t next_seq;
    unsigned running; /* tasks in their run function (the tasks stats) */
    bool stopping;
    int nthreads;
    pthread_t *threads;
} type_queue;

struct exec_pool {
    type_queue q[EXEC_NTYPES];
    pthread_mutex_t stats_lock; /* guards the stats list (not the counters) */
    task_stats *stats;
};

static const char *const type_names[EXEC_NTYPES] = {"reader", "writer", "auxio", "nonio"};

uint64_t exec_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- heaps ---- */

static bool task_before(const heap *h, const exec_task *a, const exec_task *b)
{
    if (h->by_priority && a->priority != b->priority)
        return a->priority < b->priority;
    if (a->wake_ns != b->wake_ns)
        return a->wake_ns < b->wake_ns;
    return a->seq < b->seq;
}

static void heap_set(heap *h, size_t i, exec_task *t)
{
    h->v[i] = t;
    t->heap_index = i;
}

static void heap_up(heap *h, size_t i)
{
    exec_task *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!task_before(h, t, h->v[parent]))
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void heap_down(heap *h, size_t i)
{
    exec_task *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && task_before(h, h->v[c + 1], h->v[c]))
            c++;
        if (!task_before(h, h->v[c], t))
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, t);
}

static bool heap_push(heap *h, exec_task *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        exec_task **v = realloc(h->v, cap * sizeof(*v));
        if (v == NULL)
            return false;
        h->v = v;
        h->cap = cap;
    }
    heap_set(h, h->n++, t);
    heap_up(h, h->n - 1);
    return true;
}

static void heap_remove(heap *h, exec_task *t)
{
    size_t i = t->heap_index;
    exec_task *last = h->v[--h->n];
    if (i == h->n)
        return;
    heap_set(h, i, last);
    heap_up(h, i);
    heap_down(h, last->heap_index);
}

/* ---- queueing (q->lock held) ---- */

static uint64_t wake_after(int64_t delay_ms)
{
    if (delay_ms <= 0)
        return exec_now_ns();
    if (delay_ms >= (int64_t)(UINT64_MAX / 2000000u))
        return UINT64_MAX;
    return exec_now_ns() + (uint64_t)delay_ms * 1000000u;
}

/* Puts a task in the future heap; false on out of memory. */
static bool enqueue_locked(type_queue *q, exec_task *t, uint64_t wake_ns)
{
    t->wake_ns = wake_ns;
    t->seq = q->next_seq++;
    t->state = TASK_FUTURE;
    if (!heap_push(&q->future, t)) {
        t->state = TASK_NEW;
        return false;
    }
    pthread_cond_signal(&q->cond);
    return true;
}

static void dequeue_locked(type_queue *q, exec_task *t)
{
    heap_remove(t->state == TASK_READY ? &q->ready : &q->future, t);
}

static void promote_due_locked(type_queue *q, uint64_t now)
{
    while (q->future.n > 0 && q->future.v[0]->wake_ns <= now) {
        exec_task *t = q->future.v[0];
        heap_remove(&q->future, t);
        t->state = TASK_READY;
        if (!heap_push(&q->ready, t)) {
            /* Cannot grow the ready heap: leave the task due in future. */
            t->state = TASK_FUTURE;
            heap_push(&q->future, t); /* slot just freed, cannot fail */
            break;
        }
    }
}

/* ---- statistics ---- */

static void atomic_max(_Atomic uint64_t *v, uint64_t x)
{
    uint64_t cur = atomic_load_explicit(v, memory_order_relaxed);
    while (cur < x && !atomic_compare_exchange_weak_explicit(
                          v, &cur, x, memory_order_relaxed, memory_order_relaxed))
        ;
}

static task_stats *stats_for(exec_pool *pool, const char *desc)
{
    pthread_mutex_lock(&pool->stats_lock);
    task_stats *s;
    for (s = pool->stats; s != NULL; s = s->next)
        if (strcmp(s->desc, desc) == 0)
            goto out;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    s->desc = strdup(desc);
    if (s->desc == NULL) {
        free(s);
        s = NULL;
        goto out;
    }
    s->next = pool->stats;
    pool->stats = s;
out:
    pthread_mutex_unlock(&pool->stats_lock);
    return s;
}

/* ---- task lifetime ---- */

exec_task *exec_task_new(exec_pool *pool, const char *desc, exec_type type, int priority,
                         exec_run_fn run, exec_cancel_fn cancel, void *arg)
{
    if (pool == NULL || type < 0 || type >= EXEC_NTYPES || run == NULL || desc == NULL)
        return NULL;
    exec_task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->stats = stats_for(pool, desc);
    if (t->stats == NULL) {
        free(t);
        return NULL;
    }
    t->q = &pool->q[type];
    t->run = run;
    t->cancel = cancel;
    t->arg = arg;
    t->priority = priority;
    t->state = TASK_NEW;
    atomic_init(&t->refs, 1);
    return t;
}

void exec_task_get(exec_task *task)
{
    atomic_fetch_add_explicit(&task->refs, 1, memory_order_relaxed);
}

void exec_task_put(exec_task *task)
{
    if (task != NULL &&
        atomic_fetch_sub_explicit(&task->refs, 1, memory_order_acq_rel) == 1)
        free(task);
}

static void task_cancelled(exec_task *t)
{
    atomic_fetch_add_explicit(&t->stats->cancels, 1, memory_order_relaxed);
    if (t->cancel != NULL)
        t->cancel(t, t->arg);
    exec_task_put(t); /* the pool's reference */
}

bool exec_schedule(exec_task *task, int64_t delay_ms)
{
    type_queue *q = task->q;
    bool ok = false;
    pthread_mutex_lock(&q->lock);
    if (q->stopping || task->state != TASK_NEW)
        goto out;
    exec_task_get(task);
    ok = enqueue_locked(q, task, wake_after(delay_ms));
    if (!ok)
        exec_task_put(task); /* not the last reference: the caller holds one */
out:
    pthread_mutex_unlock(&q->lock);
    return ok;
}

bool exec_snooze(exec_task *task, int64_t delay_ms)
{
    type_queue *q = task->q;
    bool ok = false;
    pthread_mutex_lock(&q->lock);
    if (task->state == TASK_FUTURE || task->state == TASK_READY) {
        dequeue_locked(q, task);
        ok = enqueue_locked(q, task, wake_after(delay_ms));
        if (!ok) {
            /* Out of memory re-queueing a task that was queued: the slot we
             * just freed makes this push succeed. */
            task->state = TASK_FUTURE;
            heap_push(&q->future, task);
            ok = true;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

void exec_wake(exec_task *task)
{
    type_queue *q = task->q;
    pthread_mutex_lock(&q->lock);
    if (task->state == TASK_FUTURE) {
        heap_remove(&q->future, task);
        enqueue_locked(q, task, exec_now_ns()); /* slot just freed: succeeds */
    } else if (task->state == TASK_RUNNING) {
        task->wake_pending = true;
    }
    pthread_mutex_unlock(&q->lock);
}

bool exec_cancel(exec_task *task)
{
    type_queue *q = task->q;
    pthread_mutex_lock(&q->lock);
    switch (task->state) {
    case TASK_FUTURE:
    case TASK_READY:
        dequeue_locked(q, task);
        task->state = TASK_FINISHED;
        pthread_mutex_unlock(&q->lock);
        task_cancelled(task);
        return true;
    case TASK_RUNNING:
        task->cancel_pending = true;
        pthread_mutex_unlock(&q->lock);
        return true;
    default:
        pthread_mutex_unlock(&q->lock);
        return false;
    }
}

/* ---- workers ---- */

static void run_one(type_queue *q, exec_task *t, uint64_t start)
{
    task_stats *s = t->stats;
    uint64_t delay = start > t->wake_ns ? start - t->wake_ns : 0;
    int64_t again = t->run(t, t->arg);
    uint64_t took = exec_now_ns() - start;

    atomic_fetch_add_explicit(&s->runs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->total_ns, took, memory_order_relaxed);
    atomic_max(&s->max_ns, took);
    atomic_fetch_add_explicit(&s->delay_total_ns, delay, memory_order_relaxed);
    atomic_max(&s->delay_max_ns, delay);

    pthread_mutex_lock(&q->lock);
    q->running--;
    bool cancel = false;
    if (again == EXEC_DONE) {
        t->state = TASK_FINISHED;
    } else if (t->cancel_pending || q->stopping) {
        t->state = TASK_FINISHED;
        cancel = true;
    } else {
        uint64_t wake = t->wake_pending ? exec_now_ns() : wake_after(again);
        t->wake_pending = false;
        if (!enqueue_locked(q, t, wake)) {
            t->state = TASK_FINISHED;
            cancel = true;
        }
    }
    pthread_mutex_unlock(&q->lock);

    if (cancel)
        task_cancelled(t);
    else if (again == EXEC_DONE)
        exec_task_put(t);
}

/* A stopping queue's tasks end with their cancel functions, on the caller's
 * thread: the queue's own threads call it, so a cancel that answers a cookie
 * never runs on the thread that stops the pool (which may be the very thread
 * the cookie's call came on). */
static void cancel_queued_locked(type_queue *q)
{
    for (;;) {
        heap *h = q->ready.n > 0 ? &q->ready : q->future.n > 0 ? &q->future : NULL;
        if (h == NULL)
            return;
        exec_task *t = h->v[h->n - 1];
        heap_remove(h, t);
        t->state = TASK_FINISHED;
        pthread_mutex_unlock(&q->lock);
        task_cancelled(t); /* may cancel or schedule others: all rejected or drained */
        pthread_mutex_lock(&q->lock);
    }
}

static void *worker_main(void *arg)
{
    type_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    while (!q->stopping) {
        uint64_t now = exec_now_ns();
        promote_due_locked(q, now);
        if (q->ready.n == 0) {
            if (q->future.n == 0 || q->future.v[0]->wake_ns == UINT64_MAX) {
                pthread_cond_wait(&q->cond, &q->lock);
            } else {
                uint64_t wake = q->future.v[0]->wake_ns;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t abs_ns = (uint64_t)ts.tv_sec * 1000000000u +
                                  (uint64_t)ts.tv_nsec + (wake - now);
                ts.tv_sec = (time_t)(abs_ns / 1000000000u);
                ts.tv_nsec = (long)(abs_ns % 1000000000u);
                pthread_cond_timedwait(&q->cond, &q->lock, &ts);
            }
            continue;
        }
        exec_task *t = q->ready.v[0];
        heap_remove(&q->ready, t);
        t->state = TASK_RUNNING;
        t->wake_pending = false;
        q->running++;
        pthread_mutex_unlock(&q->lock);
        run_one(q, t, now);
        pthread_mutex_lock(&q->lock);
    }
    cancel_queued_locked(q);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- pool ---- */

static void queue_init(type_queue *q, exec_pool *pool, int nthreads)
{
    q->pool = pool;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    q->ready.by_priority = true;
    q->nthreads = nthreads;
}

/* Stops one queue: its threads cancel the queued tasks and finish the running
 * ones (cancelling those that ask to run again), then exit; joins them. */
static void queue_stop(type_queue *q, int started)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < started; i++)
        pthread_join(q->threads[i], NULL);
    /* Only a queue whose threads never started (exec_pool_create failing) can
     * still hold a task here, and nothing was scheduled on such a pool. */
    pthread_mutex_lock(&q->lock);
    cancel_queued_locked(q);
    pthread_mutex_unlock(&q->lock);
}

static void queue_free(type_queue *q)
{
    free(q->future.v);
    free(q->ready.v);
    free(q->threads);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}

static void pool_free(exec_pool *pool)
{
    for (int i = 0; i < EXEC_NTYPES; i++)
        queue_free(&pool->q[i]);
    while (pool->stats != NULL) {
        task_stats *s = pool->stats;
        pool->stats = s->next;
        free(s->desc);
        free(s);
    }
    pthread_mutex_destroy(&pool->stats_lock);
    free(pool);
}

exec_pool *exec_pool_create(const exec_config *cfg)
{
    exec_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pthread_mutex_init(&pool->stats_lock, NULL);
    for (int i = 0; i < EXEC_NTYPES; i++)
        queue_init(&pool->q[i], pool, cfg->threads[i] < 1 ? 1 : cfg->threads[i]);

    int type, started = 0;
    for (type = 0; type < EXEC_NTYPES; type++) {
        type_queue *q = &pool->q[type];
        q->threads = calloc((size_t)q->nthreads, sizeof(pthread_t));
        if (q->threads == NULL)
            goto err_threads;
        for (started = 0; started < q->nthreads; started++)
            if (pthread_create(&q->threads[started], NULL, worker_main, q) != 0)
                goto err_threads;
    }
    return pool;

err_threads:
    /* Stop the partly started queue, then the fully started ones before it. */
    queue_stop(&pool->q[type], started);
    while (--type >= 0)
        queue_stop(&pool->q[type], pool->q[type].nthreads);
    pool_free(pool);
    return NULL;
}

void exec_pool_stop(exec_pool *pool)
{
    if (pool == NULL)
        return;
    /* Every queue at once (all their locks held, in type order; nothing else
     * holds two): a thread that starts cancelling its queue's tasks must find
     * every other queue refusing schedules already. */
    for (int i = 0; i < EXEC_NTYPES; i++)
        pthread_mutex_lock(&pool->q[i].lock);
    for (int i = 0; i < EXEC_NTYPES; i++) {
        pool->q[i].stopping = true;
        pthread_cond_broadcast(&pool->q[i].cond);
    }
    for (int i = EXEC_NTYPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&pool->q[i].lock);
}

void exec_pool_destroy(exec_pool *pool)
{
    if (pool == NULL)
        return;
    /* Mark every queue stopping first, so that a cancel function running during
     * the drain of one queue cannot schedule into another. */
    exec_pool_stop(pool);
    for (int i = 0; i < EXEC_NTYPES; i++)
        queue_stop(&pool->q[i], pool->q[i].nthreads);
    pool_free(pool);
}

void exec_stats(exec_pool *pool, exec_stat_fn add, void *ctx)
{
    char key[256], val[64];
    for (int i = 0; i < EXEC_NTYPES; i++) {
        type_queue *q = &pool->q[i];
        pthread_mutex_lock(&q->lock);
        size_t queued = q->future.n + q->ready.n, ready = q->ready.n;
        unsigned running = q->running;
        pthread_mutex_unlock(&q->lock);
        snprintf(key, sizeof(key), "pool:%s:threads", type_names[i]);
        snprintf(val, sizeof(val), "%d", q->nthreads);
        add(key, val, ctx);
        snprintf(key, sizeof(key), "pool:%s:queued", type_names[i]);
        snprintf(val, sizeof(val), "%zu", queued);
        add(key, val, ctx);
        snprintf(key, sizeof(key), "pool:%s:ready", type_names[i]);
        snprintf(val, sizeof(val), "%zu", ready);
        add(key, val, ctx);
        snprintf(key, sizeof(key), "pool:%s:running", type_names[i]);
        snprintf(val, sizeof(val), "%u", running);
        add(key, val, ctx);
    }
    pthread_mutex_lock(&pool->stats_lock);
    for (task_stats *s = pool->stats; s != NULL; s = s->next) {
        uint64_t runs = atomic_load(&s->runs);
        const struct {
            const char *name;
            uint64_t v;
        } f[] = {
            {"runs", runs},
            {"cancels", atomic_load(&s->cancels)},
            {"total_us", atomic_load(&s->total_ns) / 1000},
            {"max_us", atomic_load(&s->max_ns) / 1000},
            {"delay_avg_us", runs ? atomic_load(&s->delay_total_ns) / runs / 1000 : 0},
            {"delay_max_us", atomic_load(&s->delay_max_ns) / 1000},
        };
        for (size_t j = 0; j < sizeof(f) / sizeof(f[0]); j++) {
            snprintf(key, sizeof(key), "task:%s:%s", s->desc, f[j].name);
            snprintf(val, sizeof(val), "%" PRIu64, f[j].v);
            add(key, val, ctx);
        }
    }
    pthread_mutex_unlock(&pool->stats_lock);
}

void exec_stats_reset(exec_pool *pool)
{
    pthread_mutex_lock(&pool->stats_lock);
    for (task_stats *s = pool->stats; s != NULL; s = s->next) {
        atomic_store(&s->runs, 0);
        atomic_store(&s->cancels, 0);
        atomic_store(&s->total_ns, 0);
        atomic_store(&s->max_ns, 0);
        atomic_store(&s->delay_total_ns, 0);
        atomic_store(&s->delay_max_ns, 0);
    }
    pthread_mutex_unlock(&pool->stats_lock);
}
