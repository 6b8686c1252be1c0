/*
 * mock_server.h - a complete engine_server_api for tests: a clock tests can move,
 * captured log lines, and cookies that record every would_block, notify,
 * reserve and release so that a test fails when the engine breaks the
 * would_block contract (engine_api.h).
 */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include "../../engine_api.h"

#include <stdbool.h>
#include <stddef.h>

/** The server API. Valid for the process. */
const engine_server_api *mock_get_server_api(void);

/** Forgets every cookie, log line and violation; the clock restarts. */
void mock_reset(void);

/** Moves the clock forward by `seconds`. */
void mock_time_travel(int seconds);

/** Echo engine log lines to stderr (default off; they are always captured). */
void mock_set_log_echo(bool on);
/** True if a captured log line contains `text`. */
bool mock_log_contains(const char *text);

/** A new cookie, owned by the mock server until mock_reset. */
const void *mock_cookie_create(void);
/** The test is done with the cookie (as a host whose client went away). */
void mock_cookie_close(const void *cookie);
/** The last error context left on the cookie ("" if none). */
const char *mock_cookie_error(const void *cookie);
/** The manifest uid left on the cookie, or UINT64_MAX if none. */
uint64_t mock_cookie_error_uid(const void *cookie);
/** Current number of reserve() not yet released. */
int mock_cookie_reservations(const void *cookie);

/* Bookkeeping around one engine call that takes a cookie (the harness wraps the
 * vtable with these, so every call is seen). */
void mock_call_begin(const void *cookie);
void mock_call_end(const void *cookie, engine_errc rc);

/**
 * Waits up to timeout_ms for the next notify on the cookie and returns its
 * status; ENGINE_FAILED (and a violation) on timeout.
 */
engine_errc mock_wait_notify(const void *cookie, int timeout_ms);

/** From now on, a notify is a violation (the engine has been destroyed). */
void mock_engine_destroyed(bool destroyed);

/**
 * Checks the whole run: every would_block had exactly one notify, no notify came
 * unasked or on the caller's thread, no reservation is left. Returns the number
 * of violations and writes their descriptions to buf.
 */
int mock_check(char *buf, size_t len);

#endif
