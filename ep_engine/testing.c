/*
 * testing.c - the test variant's hook, ep_testing_control: built only into
 * ep_engine_testing.so (meson), never into the shipped ep_engine.so, whose one
 * exported symbol is create_instance. The hook is not part of the ABI.
 */
#include "compactor/compactor.h"
#include "core/core.h"
#include "evict/evict.h"
#include "flusher/flusher.h"
#include "gate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "fail_enqueue=N": the flusher's next N queue insertions fail as if out of
 * memory. */
static int fail_enqueue(ep_engine *e, const char *arg, char *why, size_t whylen)
{
    if (e->flusher == NULL) {
        snprintf(why, whylen, "no data directory");
        return -1;
    }
    char *end;
    unsigned long n = strtoul(arg, &end, 10);
    if (end == arg || *end != '\0' || n > 1000000) {
        snprintf(why, whylen, "fail_enqueue takes a count");
        return -1;
    }
    flusher_fail_next_enqueues(e->flusher, (unsigned)n);
    return 0;
}

/**
 * For tests only. `h` must be the engine's own handle. Commands:
 *  - an I/O fault command (see io_control in ep_engine/io/io.h), also before
 *    initialize (for the files initialize opens);
 *  - "hold_writer": occupy every writer thread with a task that waits for
 *    "release_writer" or destroy;
 *  - "release_writer";
 *  - "fail_enqueue=N": the flusher's next N queue insertions fail;
 *  - "compact": compact every shard now, on the caller's thread;
 *  - "evict": evict every clean value now, on the caller's thread (why gets
 *    how many);
 *  - "evict_pass": one pass of the item pager now, down to the low watermark,
 *    with its second chances (why gets how many).
 * Returns 0, or -1 with a reason in why.
 */
__attribute__((visibility("default"))) int
ep_testing_control(engine_handle *h, const char *cmd, char *why, size_t whylen)
{
    ep_engine *e = eng(h);
    if (!e->initialized) {
        if (e->io != NULL && !e->init_called) /* arm a fault for initialize */
            return io_control(e->io, cmd, why, whylen);
        snprintf(why, whylen, "engine is not initialized");
        return -1;
    }
    if (strcmp(cmd, "hold_writer") == 0)
        return gate_hold(e->gate, e->pool, (unsigned)e->cfg.num_writer_threads, why,
                         whylen);
    if (strcmp(cmd, "release_writer") == 0) {
        gate_release(e->gate);
        return 0;
    }
    if (strncmp(cmd, "fail_enqueue=", 13) == 0)
        return fail_enqueue(e, cmd + 13, why, whylen);
    if (strcmp(cmd, "compact") == 0) {
        if (e->store == NULL) {
            snprintf(why, whylen, "no data directory");
            return -1;
        }
        compactor_now(e->compactor, true);
        return 0;
    }
    bool all = strcmp(cmd, "evict") == 0;
    if (all || strcmp(cmd, "evict_pass") == 0) {
        if (e->store == NULL) {
            snprintf(why, whylen, "no data directory");
            return -1;
        }
        snprintf(why, whylen, "%" PRIu64,
                 all ? evict_all(e->evictor) : evict_pass(e->evictor));
        return 0;
    }
    return io_control(e->io, cmd, why, whylen);
}
