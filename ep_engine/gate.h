/*
 * gate.h - the writer gate, a test hook's (testing.c's "hold_writer"):
 * occupies every writer thread with a task that blocks it until released, so
 * a test can hold writes in the queue for as long as it needs.
 */
#ifndef EP_GATE_H
#define EP_GATE_H

#include "executor/executor.h"

#include <stddef.h>

typedef struct ep_gate ep_gate;

/* NULL on out of memory. */
ep_gate *gate_create(void);
/* Occupies `writers` writer threads of the pool and waits until they all
 * hold a gate task (or the gate is released). 0, or -1 with a reason. */
int gate_hold(ep_gate *g, exec_pool *pool, unsigned writers, char *why, size_t whylen);
/* Lets the gate tasks end; also at destroy, so none outlives the pool. */
void gate_release(ep_gate *g);
/* After the executor is gone. */
void gate_destroy(ep_gate *g);

#endif
