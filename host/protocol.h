/*
 * protocol.h - the memcached binary protocol and Couchbase's extensions over a
 * connection's input and output (protocol.c; the commands are in cmd_*.c).
 * It never closes or writes to a socket itself: kvhost.c does, from what the
 * protocol left in the connection (its output, `closing`, `parked`).
 */
#ifndef KVHOST_PROTOCOL_H
#define KVHOST_PROTOCOL_H

#include "conn.h"

/* Consumes whole packets from the input; stops when parked, when the output
 * passes the connection's limit, or at a malformed packet (answers of the
 * packets before it are kept; `closing` is set, so the connection closes once
 * they are written). True if a whole packet is left unconsumed (parked or
 * output full). */
bool protocol_read(conn *c);
/* A parked command's notify arrived (on the worker thread): re-runs or
 * answers it. True when the command is done and the input should be read on;
 * false when it parked again or the connection is closed. */
bool protocol_resume(conn *c, engine_errc status);

#endif
