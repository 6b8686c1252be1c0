/*
 * clock.c - the server API's monotonic clock (clock.h).
 */
#include "clock.h"

#define NS_PER_S            INT64_C(1000000000)
#define START_S             2                   /* rel time at the start */
#define MAX_RELATIVE_EXPIRY (60 * 60 * 24 * 30) /* larger is a Unix time */

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t system_wall(void)
{
    return read_clock(CLOCK_REALTIME);
}

static int64_t system_mono(void)
{
    return read_clock(CLOCK_MONOTONIC_COARSE);
}

void host_clock_init(host_clock *c, host_clock_source wall, host_clock_source mono)
{
    c->wall = wall ? wall : system_wall;
    c->mono = mono ? mono : system_mono;
    c->epoch = (time_t)(c->wall() / NS_PER_S) - START_S;
    c->mono0_ns = c->mono();
    atomic_store(&c->offset_s, 0);
}

engine_rel_time host_clock_now(host_clock *c)
{
    int64_t since = (c->mono() - c->mono0_ns) / NS_PER_S;
    return (engine_rel_time)(START_S + since + atomic_load(&c->offset_s));
}

engine_rel_time host_clock_realtime(host_clock *c, uint32_t exptime)
{
    if (exptime == 0)
        return 0;
    if (exptime > MAX_RELATIVE_EXPIRY) {
        if ((time_t)exptime <= c->epoch)
            return 1;
        return (engine_rel_time)((time_t)exptime - c->epoch);
    }
    return exptime + host_clock_now(c);
}

time_t host_clock_abstime(host_clock *c, engine_rel_time t)
{
    return c->epoch + t;
}

void host_clock_advance(host_clock *c, int seconds)
{
    atomic_fetch_add(&c->offset_s, seconds);
}

uint64_t host_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t host_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
