/*
 * sleep_ms.h - a millisecond sleep for the tests (engine suites and unit
 * tests alike; the two include different harness headers).
 */
#ifndef EP_TEST_SLEEP_MS_H
#define EP_TEST_SLEEP_MS_H

#include <time.h>

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
