/*
 * stats.h - the vtable's get_stats and reset_stats (stats.c): the engine's
 * figures by group, each subsystem's taken through its own header.
 */
#ifndef EP_STATS_H
#define EP_STATS_H

#include "../engine_api.h"

engine_errc stats_get(engine_handle *h, const void *cookie, const char *group,
                      engine_add_stat_fn add_stat, void *ctx);
void stats_reset(engine_handle *h, const void *cookie);

#endif
