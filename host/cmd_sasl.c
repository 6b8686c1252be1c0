/*
 * cmd_sasl.c - SASL: list mechanisms, PLAIN (checked on the auth threads) and
 * SCRAM-SHA512/256/1, failed-login delays.
 */
#include "commands.h"

#include "authq.h"
#include "clock.h"
#include "hostapi.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SASL ---- */

/* Failed logins a connection may make before it is closed. */
#define AUTH_FAILURES_MAX 3

static void sasl_refused(conn *c, const req *r)
{
    atomic_fetch_add(&host.auth_failures, 1);
    auth_scram_clear(&c->scram);
    if (c->authed && host.users != NULL)
        c->accepted_at = host_now_ms(); /* logged out: the login deadline starts now */
    c->authed = host.users == NULL;
    c->admin = false;
    wire_send(c, r, ST_AUTH_ERROR, NULL, 0, NULL, 0, "Auth failure", 12, 0, 0);
    if (++c->auth_failures >= AUTH_FAILURES_MAX)
        c->closing = true; /* answered, then closed */
}

static void sasl_accepted(conn *c, const req *r, const auth_user *u, const char *value)
{
    c->authed = true;
    c->admin = u == NULL || u->admin; /* no users file: loopback, open */
    c->auth_failures = 0;
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, value, (uint32_t)strlen(value), 0, 0);
}

/* Failed logins an address may make in a minute before its refusals are
 * answered late, and how late. */
#define FAILURES_FREE    3
#define FAILURE_DELAY_MS 500

static void sasl_delay_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kvhost_server_api()->cookie.notify_io_complete(arg, ENGINE_SUCCESS);
}

/* A login failed. Past FAILURES_FREE failures from its address in a minute
 * the refusal waits FAILURE_DELAY_MS (the connection parked, the worker
 * serving others); the re-call after the wait answers. */
static engine_errc sasl_failed(conn *c, const req *r)
{
    if (c->sasl_wait == SASL_DELAYING) {
        c->sasl_wait = SASL_NONE;
        sasl_refused(c, r);
        return ENGINE_SUCCESS;
    }
    if (authq_failed(c->peer) > FAILURES_FREE) {
        if (c->sasl_timer == NULL)
            c->sasl_timer = evtimer_new(c->w->base, sasl_delay_over, c);
        struct timeval tv = {0, FAILURE_DELAY_MS * 1000};
        if (c->sasl_timer != NULL && evtimer_add(c->sasl_timer, &tv) == 0) {
            c->sasl_wait = SASL_DELAYING;
            auth_scram_clear(&c->scram);
            return ENGINE_WOULD_BLOCK;
        }
    }
    sasl_refused(c, r);
    return ENGINE_SUCCESS;
}

/* PLAIN: [authzid] NUL user NUL password, checked on the auth threads. */
static engine_errc sasl_plain(conn *c, const req *r)
{
    if (c->sasl_wait == SASL_CHECKED) {
        const auth_user *u = c->sasl_user;
        c->sasl_wait = SASL_NONE;
        c->sasl_user = NULL;
        if (u == NULL)
            return sasl_failed(c, r);
        sasl_accepted(c, r, u, "Authenticated");
        return ENGINE_SUCCESS;
    }
    const char *v = (const char *)r->value, *end = v + r->valuelen;
    const char *nul1 = memchr(v, 0, r->valuelen);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1)) : NULL;
    if (nul2 == NULL)
        return sasl_failed(c, r);
    if (!authq_check_plain(c, nul1 + 1, (size_t)(nul2 - nul1 - 1), nul2 + 1,
                           (size_t)(end - nul2 - 1))) {
        wire_send_error_status(c, r, ST_ETMPFAIL); /* too many logins at once: retry */
        return ENGINE_SUCCESS;
    }
    return ENGINE_WOULD_BLOCK; /* SASL_CHECKING until the notify */
}

/* PLAIN sends the password itself: only where nobody can read it on the way
 * (TLS, or a loopback address). */
static bool plain_allowed(const conn *c)
{
    return c->ssl != NULL || c->loopback;
}

/* SASL_LIST_MECHS, SASL_AUTH and SASL_STEP. Without a users file (loopback
 * only) every login succeeds at once, whatever the mechanism. One exchange
 * at a time per connection: a new SASL_AUTH forgets an unfinished one. A
 * failure says only "auth error", whatever was wrong. */
engine_errc cmd_sasl(conn *c, req *r)
{
    if (r->opcode == OP_SASL_LIST_MECHS) {
        const char *mechs = plain_allowed(c) ? AUTH_MECHANISMS : AUTH_MECHANISMS_SCRAM;
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, mechs, (uint32_t)strlen(mechs), 0,
                  0);
        return ENGINE_SUCCESS;
    }
    if (c->sasl_wait == SASL_DELAYING)
        return sasl_failed(c, r); /* the wait is over: refuse */
    auth_mech mech = auth_mech_named((const char *)r->key, r->keylen);
    if (mech == AUTH_UNKNOWN || r->valuelen > AUTH_MAX_PAYLOAD)
        return sasl_failed(c, r);
    if (host.users == NULL) {
        auth_scram_clear(&c->scram);
        sasl_accepted(c, r, NULL, "Authenticated");
        return ENGINE_SUCCESS;
    }
    char reply[512];
    const auth_user *u = NULL;
    if (r->opcode == OP_SASL_AUTH && mech == AUTH_PLAIN && !plain_allowed(c)) {
        /* Not a failed login (no password was checked): said as it is. */
        auth_scram_clear(&c->scram);
        wire_refuse(c, r, ST_AUTH_ERROR,
                    "PLAIN is accepted only over TLS or from a loopback address: use "
                    "SCRAM-SHA512 (or connect with TLS)");
        return ENGINE_SUCCESS;
    }
    if (r->opcode == OP_SASL_AUTH && mech == AUTH_PLAIN) {
        auth_scram_clear(&c->scram);
        return sasl_plain(c, r);
    }
    if (r->opcode == OP_SASL_AUTH) {
        if (auth_scram_start(host.users, &c->scram, mech, (const char *)r->value,
                             r->valuelen, reply, sizeof(reply)) != 0)
            return sasl_failed(c, r);
        wire_send(c, r, ST_AUTH_CONTINUE, NULL, 0, NULL, 0, reply,
                  (uint32_t)strlen(reply), 0, 0);
    } else if (!c->scram.active || c->scram.mech != mech ||
               auth_scram_finish(&c->scram, (const char *)r->value, r->valuelen, reply,
                                 sizeof(reply), &u) != 0) {
        return sasl_failed(c, r);
    } else {
        sasl_accepted(c, r, u, reply);
    }
    return ENGINE_SUCCESS;
}
