/*
 * gate.c - the writer gate (gate.h).
 */
#include "gate.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define GATE_MAX_TASKS 64 /* as many as num_writer_threads can be */

struct ep_gate {
    pthread_mutex_t lock; /* guards parked and released */
    pthread_cond_t cond;
    unsigned parked; /* gate tasks holding a writer thread */
    bool released;
    exec_task *tasks[GATE_MAX_TASKS]; /* the caller's thread only */
    unsigned ntasks;
};

ep_gate *gate_create(void)
{
    ep_gate *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    return g;
}

static int64_t gate_run(exec_task *task, void *arg)
{
    (void)task;
    ep_gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->parked++;
    pthread_cond_broadcast(&g->cond);
    while (!g->released)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return EXEC_DONE;
}

int gate_hold(ep_gate *g, exec_pool *pool, unsigned writers, char *why, size_t whylen)
{
    if (g->ntasks > 0) {
        snprintf(why, whylen, "the writer pool is already held once");
        return -1;
    }
    if (writers > GATE_MAX_TASKS) {
        snprintf(why, whylen, "more writer threads than the gate can hold");
        return -1;
    }
    for (unsigned i = 0; i < writers; i++) {
        exec_task *t =
            exec_task_new(pool, "test_gate", EXEC_WRITER, -100, gate_run, NULL, g);
        if (t == NULL) {
            snprintf(why, whylen, "cannot create the gate tasks");
            return -1;
        }
        g->tasks[g->ntasks++] = t;
        if (!exec_schedule(t, 0)) {
            snprintf(why, whylen, "cannot schedule the gate tasks");
            return -1;
        }
    }
    pthread_mutex_lock(&g->lock);
    while (g->parked < writers && !g->released)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

void gate_release(ep_gate *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    g->released = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void gate_destroy(ep_gate *g)
{
    if (g == NULL)
        return;
    for (unsigned i = 0; i < g->ntasks; i++)
        exec_task_put(g->tasks[i]);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}
