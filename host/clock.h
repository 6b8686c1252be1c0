/*
 * clock.h - the server API's clock (engine_api.h: core), for kvhost and the
 * mock server alike.
 *
 * get_current_time is monotonic: seconds counted on CLOCK_MONOTONIC since the
 * clock started, two seconds in (so rel time 1 is already the past). Unix
 * times convert through the wall-clock time read once at the start, so a step
 * of the wall clock (an NTP correction, an operator's `date -s`) moves neither
 * the engine's notion of now nor any expiry already set.
 */
#ifndef HOST_CLOCK_H
#define HOST_CLOCK_H

#include "../engine_api.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/** A time source in nanoseconds (tests pass their own). */
typedef int64_t (*host_clock_source)(void);

typedef struct host_clock {
    host_clock_source wall, mono;
    time_t epoch;             /* Unix time of rel time 0 */
    int64_t mono0_ns;         /* the monotonic reading at rel time 2 */
    _Atomic int64_t offset_s; /* moved forward by tests (mock_time_travel) */
} host_clock;

/** Starts the clock now. NULL sources mean the system's clocks. */
void host_clock_init(host_clock *c, host_clock_source wall, host_clock_source mono);
/** Seconds since the clock's rel time 0. Monotonic. */
engine_rel_time host_clock_now(host_clock *c);
/** A protocol expiry as engine time (engine_api.h: core.realtime). */
engine_rel_time host_clock_realtime(host_clock *c, uint32_t exptime);
/** Engine time as a Unix time. */
time_t host_clock_abstime(host_clock *c, engine_rel_time t);
/** Moves the clock forward (tests). */
void host_clock_advance(host_clock *c, int seconds);

/** Milliseconds on a monotonic clock (coarse: kvhost's deadlines only). */
uint64_t host_now_ms(void);
/** Nanoseconds on a monotonic clock (latencies). */
uint64_t host_now_ns(void);

#endif
