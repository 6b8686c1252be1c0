/*
 * progress.h - the progress of long work (warmup, compaction): figures a
 * stats reader sees while it runs, and a log line at most once a second once
 * it has run longer than a second.
 *
 * The worker threads add to the figures as they go (relaxed atomics); any
 * of them may call progress_tick, and one of them logs when a second has
 * passed since the last line.
 */
#ifndef EP_PROGRESS_H
#define EP_PROGRESS_H

#include "../engine_api.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ep_progress {
    const char *what; /* "warmup", "compaction of shard 2" ... */
    _Atomic bool running;
    _Atomic uint64_t records;   /* done */
    _Atomic uint64_t bytes;     /* read or written */
    _Atomic uint64_t part;      /* of parts: how far it is */
    _Atomic uint64_t parts;     /* warmup: the bytes of the files; compaction: stripes */
    _Atomic uint64_t start_ns;  /* when it started */
    _Atomic uint64_t logged_ns; /* the last line (0: none yet) */
    uint64_t quiet_ns;          /* no line before this much time has passed */
} ep_progress;

/** What the figures say now (for stats and the log line). */
typedef struct progress_view {
    bool running;
    uint64_t records, bytes, part, parts;
    double fraction;     /* part of parts, 0-1 */
    double rate;         /* bytes per second */
    double seconds_left; /* at the pace so far (-1: not known yet) */
    double elapsed;      /* seconds */
} progress_view;

/** Starts (or restarts) the figures: nothing done yet of `parts`. */
void progress_begin(ep_progress *p, const char *what, uint64_t parts, uint64_t now_ns);

/** Work done since the last call: records, bytes, and parts of the whole. */
static inline void progress_add(ep_progress *p, uint64_t records, uint64_t bytes,
                                uint64_t part)
{
    atomic_fetch_add_explicit(&p->records, records, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->part, part, memory_order_relaxed);
}

/** Logs a line through `api` if the work has run longer than its quiet
 * time and no line was logged in the last second. */
void progress_tick(ep_progress *p, const engine_server_api *api, uint64_t now_ns);

/** The work is over (the figures stay readable); finished: all of it was
 * done (the fraction reads 1). */
void progress_end(ep_progress *p, bool finished);

void progress_read(const ep_progress *p, uint64_t now_ns, progress_view *v);

#endif
