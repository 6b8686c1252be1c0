/*
 * metrics.h - kvhost's figures for Prometheus: GET /metrics on an HTTP port
 * of its own (libevent's HTTP server, on a thread of its own), in the text
 * exposition format 0.0.4: the engine's stats groups and kvhost's counters as
 * counters, gauges and latency histograms, in base units.
 *
 * With a users file every request must carry HTTP basic auth of one of its
 * users (any role); without one, the port listens on loopback addresses only.
 */
#ifndef KVHOST_METRICS_H
#define KVHOST_METRICS_H

#include "conn.h"

#include <stddef.h>

/**
 * Starts the HTTP server on addr:port (port 0: any; the port taken in
 * *bound). `bucket` labels the engine's figures. 0, or -1 with a reason.
 */
int metrics_start(const char *addr, int port, const char *bucket, int *bound, char *why,
                  size_t whylen);

/** Stops it (the thread ends, the port closes). */
void metrics_stop(void);

#endif
