/*
 * executor.h - the engine's own task pool: the whole interface of the executor.
 *
 * One executor per engine instance, with a fixed set of threads per task type
 * (reader, writer, auxio, nonio). A task is run by one thread at a time and is
 * never run while a pool lock is held. Every task that is scheduled ends in
 * exactly one of two ways: its run function returns EXEC_DONE, or its cancel
 * function is called (by exec_cancel, or by exec_shutdown for a task still
 * queued or asking to run again). That one guarantee is what lets a task that
 * owns a pending cookie notify it exactly once.
 */
#ifndef EP_EXECUTOR_H
#define EP_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

typedef enum exec_type {
    EXEC_READER = 0,
    EXEC_WRITER = 1,
    EXEC_AUXIO = 2,
    EXEC_NONIO = 3,
    EXEC_NTYPES = 4
} exec_type;

/** Returned by a run function: the task has finished and is freed. */
#define EXEC_DONE (-1)
/** A snooze that waits only for exec_wake (or cancel / shutdown). */
#define EXEC_FOREVER INT64_MAX

typedef struct exec_pool exec_pool;
typedef struct exec_task exec_task;

/**
 * Does one step of work. Returns EXEC_DONE, or the number of milliseconds after
 * which it wants to run again (0 = as soon as possible; EXEC_FOREVER = only
 * when woken). If exec_wake was called while it ran, a returned delay is
 * ignored and the task runs again at once.
 */
typedef int64_t (*exec_run_fn)(exec_task *task, void *arg);

/** Called exactly once for a task that ends without its run returning EXEC_DONE. */
typedef void (*exec_cancel_fn)(exec_task *task, void *arg);

typedef struct exec_config {
    int threads[EXEC_NTYPES]; /**< threads per type, each >= 1 */
} exec_config;

/** Starts the pool's threads. NULL if threads or memory could not be had. */
exec_pool *exec_pool_create(const exec_config *cfg);

/**
 * Stops the pool from starting tasks: after it returns no queued task starts
 * and no schedule is accepted; running tasks go on, and the pool's threads
 * cancel the queued ones. Lets an owner unblock its running tasks for shutdown
 * without queued ones slipping in. Idempotent.
 */
void exec_pool_stop(exec_pool *pool);

/**
 * Stops the pool: no new schedule is accepted, every queued task is cancelled
 * (its cancel function runs on one of the pool's threads, never the caller's),
 * running tasks are waited for (and cancelled if they ask to run again),
 * threads are joined, and the pool is freed. After it returns no run or cancel
 * function of this pool runs. Must not be called from a task.
 */
void exec_pool_destroy(exec_pool *pool);

/**
 * Makes a task. `desc` names the task in the `tasks` stats (copied); priority:
 * lower runs first among ready tasks of one type. The caller holds one reference
 * (drop it with exec_task_put). NULL on out of memory.
 */
exec_task *exec_task_new(exec_pool *pool, const char *desc, exec_type type, int priority,
                         exec_run_fn run, exec_cancel_fn cancel, void *arg);

/** Takes / drops a reference. The task is freed with its last reference. */
void exec_task_get(exec_task *task);
void exec_task_put(exec_task *task);

/**
 * Queues a new task to run after `delay_ms`. The pool takes its own reference.
 * false if the pool is shutting down or the task was scheduled before; the task
 * is then not the pool's and its cancel function is not called.
 */
bool exec_schedule(exec_task *task, int64_t delay_ms);

/** Moves a queued task's wake time to now + delay_ms. false if not queued. */
bool exec_snooze(exec_task *task, int64_t delay_ms);

/** Runs a queued task now, or makes a running one run again at once. */
void exec_wake(exec_task *task);

/**
 * Cancels a task. A queued task is removed and its cancel function runs before
 * exec_cancel returns (on the caller's thread). A running task is not
 * interrupted: if its run returns anything but EXEC_DONE, its cancel function
 * then runs on the pool thread. Returns true if the task had not yet finished.
 */
bool exec_cancel(exec_task *task);

/** Reports the `tasks` stats group. */
typedef void (*exec_stat_fn)(const char *key, const char *val, void *ctx);
void exec_stats(exec_pool *pool, exec_stat_fn add, void *ctx);
void exec_stats_reset(exec_pool *pool);

/** Monotonic time in nanoseconds. */
uint64_t exec_now_ns(void);

#endif
