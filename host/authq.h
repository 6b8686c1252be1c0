/*
 * authq.h - kvhost's login work kept off the threads that serve commands.
 *
 * A PLAIN login is checked by a key derivation (PBKDF2 at the users file's
 * iteration count: slow by design). Those run on a few threads of their own,
 * with a bounded queue, while the connection is parked like a command waiting
 * on the engine; the result is handed back through notify_io_complete.
 *
 * Failed logins are also counted per client address over the last minute, so
 * that a guesser's refusals can be answered late.
 */
#ifndef KVHOST_AUTHQ_H
#define KVHOST_AUTHQ_H

#include "conn.h"

#include <stdbool.h>
#include <stddef.h>

/** Starts `threads` checking threads; at most `max_waiting` checks queue
 * behind them. 0, or -1. */
int authq_start(unsigned threads, unsigned max_waiting);

/** Stops the threads; queued checks are answered as failures. */
void authq_stop(void);

/**
 * Queues the check of a PLAIN user and password (copied) for c, which is
 * referenced until its result is in c->sasl_user (c->sasl_wait becomes
 * SASL_CHECKED) and c is notified with ENGINE_SUCCESS. false if the queue is
 * full, or c's address already has a few checks queued or running (nothing
 * queued: answer "try again").
 */
bool authq_check_plain(conn *c, const char *user, size_t ulen, const char *password,
                       size_t plen);

/** Counts a failed login from `peer`; returns its failures in the last
 * minute, this one included. */
unsigned authq_failed(const char *peer);

#endif
