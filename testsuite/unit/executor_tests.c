/*
 * executor_tests.c - unit tests (Check) of ep_engine/executor: ordering, snooze
 * and wake, cancel racing with run, shutdown with many queued and
 * self-rescheduling tasks, pool isolation, and the exactly-once end of every
 * task (run returned EXEC_DONE, or cancel called, never both, never neither).
 */
#include "ep_engine/executor/executor.h"

#include "../sleep_ms.h"
#include "run_suite.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static exec_pool *pool_of(int threads)
{
    exec_config cfg = {{threads, threads, threads, threads}};
    exec_pool *p = exec_pool_create(&cfg);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* A task that records the order it ran in and how it ended. */
typedef struct probe {
    int id;
    _Atomic int runs;
    _Atomic int cancels;
    _Atomic int done; /* run returned EXEC_DONE */
    int64_t again;    /* what run returns while runs < stop_after */
    int stop_after;
    int *order;
    _Atomic int *next;
} probe;

static int64_t probe_run(exec_task *t, void *arg)
{
    (void)t;
    probe *p = arg;
    int n = atomic_fetch_add(&p->runs, 1) + 1;
    if (p->order != NULL)
        p->order[atomic_fetch_add(p->next, 1)] = p->id;
    if (p->stop_after > 0 && n >= p->stop_after) {
        atomic_store(&p->done, 1);
        return EXEC_DONE;
    }
    if (p->again == EXEC_DONE)
        atomic_store(&p->done, 1);
    return p->again;
}

static void probe_cancel(exec_task *t, void *arg)
{
    (void)t;
    probe *p = arg;
    atomic_fetch_add(&p->cancels, 1);
}

/* A task that blocks its thread until released. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool entered, open;
} gate;

static int64_t gate_run(exec_task *t, void *arg)
{
    (void)t;
    gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->entered = true;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return EXEC_DONE;
}

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->entered = g->open = false;
}

static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static bool wait_until(_Atomic int *v, int want, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(v) >= want)
            return true;
        sleep_ms(1);
    }
    return atomic_load(v) >= want;
}

static exec_task *spawn(exec_pool *pool, exec_type type, int prio, probe *p,
                        int64_t delay)
{
    exec_task *t = exec_task_new(pool, "probe", type, prio, probe_run, probe_cancel, p);
    ck_assert_ptr_nonnull(t);
    ck_assert(exec_schedule(t, delay));
    return t;
}

START_TEST(ready_tasks_run_by_priority)
{
    exec_pool *pool = pool_of(1);
    gate g;
    gate_init(&g);
    exec_task *gt = exec_task_new(pool, "gate", EXEC_WRITER, 0, gate_run, NULL, &g);
    ck_assert(exec_schedule(gt, 0));
    gate_wait_entered(&g);
    int order[5];
    _Atomic int next = 0;
    const int prios[5] = {5, 1, 4, 2, 3};
    probe p[5];
    exec_task *t[5];
    for (int i = 0; i < 5; i++) {
        p[i] = (probe){.id = prios[i], .again = EXEC_DONE, .order = order, .next = &next};
        t[i] = spawn(pool, EXEC_WRITER, prios[i], &p[i], 0);
    }
    gate_open(&g);
    for (int i = 0; i < 5; i++)
        ck_assert(wait_until(&p[i].done, 1, 5000));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(order[i], i + 1);
    exec_pool_destroy(pool);
    for (int i = 0; i < 5; i++)
        exec_task_put(t[i]);
    exec_task_put(gt);
}
END_TEST

START_TEST(future_tasks_run_by_wake_time)
{
    exec_pool *pool = pool_of(1);
    int order[4];
    _Atomic int next = 0;
    const int delays[4] = {80, 20, 60, 40};
    probe p[4];
    exec_task *t[4];
    for (int i = 0; i < 4; i++) {
        /* Priority would say the reverse order: wake time must win. */
        p[i] =
            (probe){.id = delays[i], .again = EXEC_DONE, .order = order, .next = &next};
        t[i] = spawn(pool, EXEC_AUXIO, 100 - delays[i], &p[i], delays[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert(wait_until(&p[i].done, 1, 5000));
    ck_assert_int_eq(order[0], 20);
    ck_assert_int_eq(order[1], 40);
    ck_assert_int_eq(order[2], 60);
    ck_assert_int_eq(order[3], 80);
    exec_pool_destroy(pool);
    for (int i = 0; i < 4; i++)
        exec_task_put(t[i]);
}
END_TEST

START_TEST(wake_runs_a_sleeping_task_now)
{
    exec_pool *pool = pool_of(1);
    probe p = {.again = EXEC_FOREVER};
    exec_task *t = spawn(pool, EXEC_NONIO, 0, &p, EXEC_FOREVER);
    sleep_ms(50);
    ck_assert_int_eq(atomic_load(&p.runs), 0);
    exec_wake(t);
    ck_assert(wait_until(&p.runs, 1, 5000));
    /* It snoozed forever again: another wake, another run. */
    sleep_ms(20);
    ck_assert_int_eq(atomic_load(&p.runs), 1);
    exec_wake(t);
    ck_assert(wait_until(&p.runs, 2, 5000));
    exec_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&p.cancels), 1); /* it never returned EXEC_DONE */
    exec_task_put(t);
}
END_TEST

START_TEST(snooze_moves_wake_time)
{
    exec_pool *pool = pool_of(1);
    probe p = {.again = EXEC_DONE};
    exec_task *t = spawn(pool, EXEC_NONIO, 0, &p, 20);
    ck_assert(exec_snooze(t, 100000));
    sleep_ms(100);
    ck_assert_int_eq(atomic_load(&p.runs), 0);
    ck_assert(exec_snooze(t, 0));
    ck_assert(wait_until(&p.runs, 1, 5000));
    sleep_ms(10);
    ck_assert(!exec_snooze(t, 10)); /* finished: nothing to snooze */
    exec_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&p.cancels), 0);
    exec_task_put(t);
}
END_TEST

/* A task that, while running, is woken: it must run again even though it asked
 * to sleep forever (no lost wake-up). */
typedef struct waker {
    exec_task *self;
    _Atomic int runs;
} waker;

static int64_t wake_self_run(exec_task *t, void *arg)
{
    waker *w = arg;
    if (atomic_fetch_add(&w->runs, 1) == 0)
        exec_wake(t);
    return EXEC_FOREVER;
}

START_TEST(wake_while_running_is_not_lost)
{
    exec_pool *pool = pool_of(1);
    waker w = {0};
    exec_task *t = exec_task_new(pool, "waker", EXEC_NONIO, 0, wake_self_run, NULL, &w);
    ck_assert(exec_schedule(t, 0));
    ck_assert(wait_until(&w.runs, 2, 5000));
    exec_pool_destroy(pool);
    exec_task_put(t);
}
END_TEST

START_TEST(cancel_races_with_run)
{
    enum { N = 1000 };
    exec_pool *pool = pool_of(2);
    probe *p = calloc(N, sizeof(probe));
    for (int i = 0; i < N; i++) {
        /* Odd: a task that finishes in one run; even: one that asks to run
         * again forever and so can only end by cancel. */
        p[i].again = (i % 2) ? EXEC_DONE : 0;
        exec_task *t = spawn(pool, (exec_type)(i % EXEC_NTYPES), 0, &p[i], 0);
        if (i % 3 == 0)
            sleep_ms(0);
        ck_assert(exec_cancel(t) || atomic_load(&p[i].done) == 1);
        /* Wait for the task to end one way or the other. */
        for (int w = 0;
             w < 5000 && atomic_load(&p[i].done) + atomic_load(&p[i].cancels) == 0; w++)
            sleep_ms(1);
        exec_task_put(t);
    }
    exec_pool_destroy(pool);
    for (int i = 0; i < N; i++) {
        int ends = atomic_load(&p[i].done) + atomic_load(&p[i].cancels);
        ck_assert_msg(ends == 1, "task %d ended %d times", i, ends);
        if (p[i].again == 0)
            ck_assert_int_eq(atomic_load(&p[i].cancels), 1);
    }
    free(p);
}
END_TEST

START_TEST(shutdown_cancels_everything_once)
{
    enum { N = 10000, SPINNERS = 8 };
    exec_pool *pool = pool_of(2);
    probe *p = calloc(N + SPINNERS, sizeof(probe));
    exec_task **t = calloc(N + SPINNERS, sizeof(exec_task *));
    for (int i = 0; i < N; i++) {
        p[i].again = EXEC_DONE;
        t[i] =
            spawn(pool, (exec_type)(i % EXEC_NTYPES), i % 7, &p[i], (i % 2) ? 0 : 60000);
    }
    for (int i = N; i < N + SPINNERS; i++) {
        p[i].again = 0; /* reschedules itself forever */
        t[i] = spawn(pool, (exec_type)(i % EXEC_NTYPES), 0, &p[i], 0);
    }
    sleep_ms(20);
    exec_pool_destroy(pool);
    int snapshot = 0;
    for (int i = 0; i < N + SPINNERS; i++) {
        int ends = atomic_load(&p[i].done) + atomic_load(&p[i].cancels);
        ck_assert_msg(ends == 1, "task %d ended %d times", i, ends);
        snapshot += atomic_load(&p[i].runs);
    }
    for (int i = N; i < N + SPINNERS; i++)
        ck_assert_int_eq(atomic_load(&p[i].cancels), 1);
    /* Nothing runs after destroy returned. */
    sleep_ms(50);
    int later = 0;
    for (int i = 0; i < N + SPINNERS; i++)
        later += atomic_load(&p[i].runs);
    ck_assert_int_eq(later, snapshot);
    for (int i = 0; i < N + SPINNERS; i++)
        exec_task_put(t[i]);
    free(p);
    free(t);
}
END_TEST

START_TEST(blocked_writer_does_not_delay_nonio)
{
    exec_pool *pool = pool_of(1);
    gate g;
    gate_init(&g);
    exec_task *gt =
        exec_task_new(pool, "stuck writer", EXEC_WRITER, 0, gate_run, NULL, &g);
    ck_assert(exec_schedule(gt, 0));
    gate_wait_entered(&g);
    probe p = {.again = EXEC_DONE};
    exec_task *t = spawn(pool, EXEC_NONIO, 0, &p, 0);
    probe w = {.again = EXEC_DONE};
    exec_task *wt = spawn(pool, EXEC_WRITER, 0, &w, 0);
    ck_assert(wait_until(&p.runs, 1, 5000));
    ck_assert_int_eq(atomic_load(&w.runs), 0); /* the writer pool is still stuck */
    gate_open(&g);
    ck_assert(wait_until(&w.runs, 1, 5000));
    exec_pool_destroy(pool);
    exec_task_put(t);
    exec_task_put(wt);
    exec_task_put(gt);
}
END_TEST

START_TEST(cancel_of_queued_task_runs_cancel_on_caller)
{
    exec_pool *pool = pool_of(1);
    probe p = {.again = EXEC_DONE};
    exec_task *t = spawn(pool, EXEC_READER, 0, &p, 60000);
    ck_assert(exec_cancel(t));
    ck_assert_int_eq(atomic_load(&p.cancels), 1); /* before exec_cancel returned */
    ck_assert(!exec_cancel(t));
    ck_assert(!exec_schedule(t, 0)); /* a task is scheduled once */
    exec_pool_destroy(pool);
    ck_assert_int_eq(atomic_load(&p.cancels), 1);
    ck_assert_int_eq(atomic_load(&p.runs), 0);
    exec_task_put(t);
}
END_TEST

typedef struct stat_probe {
    const char *want;
    char val[64];
    bool found;
} stat_probe;

static void find(const char *key, const char *val, void *ctx)
{
    stat_probe *s = ctx;
    if (strcmp(key, s->want) == 0) {
        strncpy(s->val, val, sizeof(s->val) - 1);
        s->found = true;
    }
}

START_TEST(task_stats_and_reset)
{
    exec_pool *pool = pool_of(1);
    probe p = {.again = 0, .stop_after = 5};
    exec_task *t =
        exec_task_new(pool, "counted", EXEC_NONIO, 0, probe_run, probe_cancel, &p);
    ck_assert(exec_schedule(t, 0));
    ck_assert(wait_until(&p.done, 1, 5000));
    stat_probe s = {.want = "task:counted:runs"};
    exec_stats(pool, find, &s);
    ck_assert(s.found);
    ck_assert_str_eq(s.val, "5");
    stat_probe q = {.want = "pool:nonio:threads"};
    exec_stats(pool, find, &q);
    ck_assert_str_eq(q.val, "1");
    exec_stats_reset(pool);
    s.found = false;
    exec_stats(pool, find, &s);
    ck_assert_str_eq(s.val, "0");
    exec_pool_destroy(pool);
    exec_task_put(t);
}
END_TEST

/* A cancel function that schedules another task during shutdown: the schedule
 * is refused and nothing leaks or runs. */
typedef struct chain {
    exec_pool *pool;
    probe child;
    exec_task *child_task;
    _Atomic int refused;
} chain;

static void chain_cancel(exec_task *t, void *arg)
{
    (void)t;
    chain *c = arg;
    c->child_task = exec_task_new(c->pool, "child", EXEC_NONIO, 0, probe_run,
                                  probe_cancel, &c->child);
    if (c->child_task != NULL && !exec_schedule(c->child_task, 0))
        atomic_store(&c->refused, 1);
}

static int64_t never_run(exec_task *t, void *arg)
{
    (void)t;
    (void)arg;
    return EXEC_DONE;
}

START_TEST(schedule_during_shutdown_is_refused)
{
    chain c = {0};
    c.pool = pool_of(1);
    c.child.again = EXEC_DONE;
    exec_task *t =
        exec_task_new(c.pool, "parent", EXEC_WRITER, 0, never_run, chain_cancel, &c);
    ck_assert(exec_schedule(t, 60000));
    exec_pool_destroy(c.pool);
    ck_assert_int_eq(atomic_load(&c.refused), 1);
    ck_assert_int_eq(atomic_load(&c.child.runs), 0);
    ck_assert_int_eq(atomic_load(&c.child.cancels), 0);
    exec_task_put(c.child_task);
    exec_task_put(t);
}
END_TEST

/* Records the thread its cancel ran on. */
typedef struct where {
    pthread_t thread;
    _Atomic int cancels;
} where;

static void where_cancel(exec_task *t, void *arg)
{
    (void)t;
    where *w = arg;
    w->thread = pthread_self();
    atomic_fetch_add(&w->cancels, 1);
}

/* A cancel may notify a cookie: at shutdown it must not run on the thread that
 * destroys the pool, which may be the thread the cookie's call came on. */
START_TEST(shutdown_cancels_on_pool_threads)
{
    enum { N = 64 };
    exec_pool *pool = pool_of(1);
    where w[N];
    exec_task *t[N];
    for (int i = 0; i < N; i++) {
        atomic_init(&w[i].cancels, 0);
        t[i] = exec_task_new(pool, "queued", (exec_type)(i % EXEC_NTYPES), 0, never_run,
                             where_cancel, &w[i]);
        ck_assert(exec_schedule(t[i], 60000));
    }
    exec_pool_destroy(pool);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&w[i].cancels), 1);
        ck_assert_msg(!pthread_equal(w[i].thread, pthread_self()),
                      "task %d was cancelled on the destroying thread", i);
        exec_task_put(t[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, ready_tasks_run_by_priority);
    tcase_add_test(tc, future_tasks_run_by_wake_time);
    tcase_add_test(tc, wake_runs_a_sleeping_task_now);
    tcase_add_test(tc, snooze_moves_wake_time);
    tcase_add_test(tc, wake_while_running_is_not_lost);
    tcase_add_test(tc, cancel_races_with_run);
    tcase_add_test(tc, shutdown_cancels_everything_once);
    tcase_add_test(tc, blocked_writer_does_not_delay_nonio);
    tcase_add_test(tc, cancel_of_queued_task_runs_cancel_on_caller);
    tcase_add_test(tc, task_stats_and_reset);
    tcase_add_test(tc, schedule_during_shutdown_is_refused);
    tcase_add_test(tc, shutdown_cancels_on_pool_threads);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
