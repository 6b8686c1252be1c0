/*
 * progress.c - the progress of long work (progress.h).
 */
#include "progress.h"

#include <stdio.h>

void progress_begin(ep_progress *p, const char *what, uint64_t parts, uint64_t now_ns)
{
    p->what = what;
    atomic_store(&p->records, 0);
    atomic_store(&p->bytes, 0);
    atomic_store(&p->part, 0);
    atomic_store(&p->parts, parts);
    atomic_store(&p->start_ns, now_ns);
    atomic_store(&p->logged_ns, 0); /* no line yet */
    atomic_store(&p->running, true);
}

void progress_end(ep_progress *p, bool finished)
{
    if (finished)
        atomic_store(&p->part, atomic_load(&p->parts));
    atomic_store(&p->running, false);
}

void progress_read(const ep_progress *p, uint64_t now_ns, progress_view *v)
{
    ep_progress *q = (ep_progress *)p;
    v->running = atomic_load(&q->running);
    v->records = atomic_load_explicit(&q->records, memory_order_relaxed);
    v->bytes = atomic_load_explicit(&q->bytes, memory_order_relaxed);
    v->part = atomic_load_explicit(&q->part, memory_order_relaxed);
    v->parts = atomic_load_explicit(&q->parts, memory_order_relaxed);
    uint64_t start = atomic_load_explicit(&q->start_ns, memory_order_relaxed);
    v->elapsed = now_ns > start ? (double)(now_ns - start) / 1e9 : 0;
    v->fraction = v->parts > 0 ? (double)v->part / (double)v->parts : v->running ? 0 : 1;
    if (v->fraction > 1)
        v->fraction = 1;
    v->rate = v->elapsed > 0 ? (double)v->bytes / v->elapsed : 0;
    v->seconds_left = v->fraction > 0 ? v->elapsed * (1 - v->fraction) / v->fraction : -1;
}

void progress_tick(ep_progress *p, const engine_server_api *api, uint64_t now_ns)
{
    uint64_t start = atomic_load_explicit(&p->start_ns, memory_order_relaxed),
             last = atomic_load_explicit(&p->logged_ns, memory_order_relaxed);
    if (now_ns < start + p->quiet_ns || (last != 0 && now_ns < last + 1000000000ull))
        return;
    /* One thread logs this second's line. */
    if (!atomic_compare_exchange_strong(&p->logged_ns, &last, now_ns))
        return;
    progress_view v;
    progress_read(p, now_ns, &v);
    char left[32] = "unknown";
    if (v.seconds_left >= 0)
        snprintf(left, sizeof(left), "about %.0f s", v.seconds_left);
    api->log(ENGINE_LOG_INFO,
             "ep_engine: %s: %llu records, %.1f MB, %.0f%% done, %.1f MB/s, %s left",
             p->what, (unsigned long long)v.records, (double)v.bytes / 1e6,
             v.fraction * 100, v.rate / 1e6, left);
}
