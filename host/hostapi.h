/*
 * hostapi.h - kvhost's engine_server_api (hostapi.c): the clock, logging, and
 * the cookie functions over connections.
 */
#ifndef KVHOST_HOSTAPI_H
#define KVHOST_HOSTAPI_H

#include "conn.h"

const engine_server_api *kvhost_server_api(void);

#endif
