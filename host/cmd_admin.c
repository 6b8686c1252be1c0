/*
 * cmd_admin.c - stats, noop, version, quit.
 */
#include "commands.h"

#include "clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct stat_ctx {
    conn *c;
    const req *r;
} stat_ctx;

static void add_stat(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                     void *ctx)
{
    stat_ctx *s = ctx;
    wire_send(s->c, s->r, ST_SUCCESS, NULL, 0, key, klen, val, vlen, 0, 0);
}

static void host_stat(stat_ctx *s, const char *key, uint64_t v)
{
    char val[32];
    snprintf(val, sizeof(val), "%" PRIu64, v);
    add_stat(key, (uint16_t)strlen(key), val, (uint32_t)strlen(val), s);
}

engine_errc cmd_stat(conn *c, req *r)
{
    char group[256] = "";
    if (r->keylen >= sizeof(group))
        return ENGINE_INVALID_ARGUMENTS;
    memcpy(group, r->key, r->keylen);
    stat_ctx s = {c, r};
    if (group[0] == '\0') {
        host_stat(&s, "pid", (uint64_t)getpid());
        host_stat(&s, "curr_connections", atomic_load(&host.conns));
        host_stat(&s, "total_connections", atomic_load(&host.total_conns));
        host_stat(&s, "rejected_connections", atomic_load(&host.rejected_conns));
        host_stat(&s, "notifies_dropped", atomic_load(&host.notifies_dropped));
        host_stat(&s, "durable_timeouts", atomic_load(&host.durable_timeouts));
        host_stat(&s, "notifies_duplicate", atomic_load(&host.notifies_duplicate));
        host_stat(&s, "deadline_closes", atomic_load(&host.deadline_closes));
        host_stat(&s, "accept_pauses", atomic_load(&host.accept_pauses));
        host_stat(&s, "auth_failures", atomic_load(&host.auth_failures));
        host_stat(&s, "tls_connections", atomic_load(&host.tls_conns));
        host_stat(&s, "tls_errors", atomic_load(&host.tls_errors));
        const char *v = KVHOST_VERSION;
        add_stat("version", 7, v, (uint32_t)strlen(v), &s);
    }
    engine_errc rc = host.engine->get_stats(host.engine, c, group, add_stat, &s);
    if (rc == ENGINE_SUCCESS)
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}

engine_errc cmd_noop(conn *c, req *r)
{
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return ENGINE_SUCCESS;
}

engine_errc cmd_version(conn *c, req *r)
{
    char v[128];
    int n = snprintf(v, sizeof(v), "%s", KVHOST_VERSION);
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, v, (uint32_t)n, 0, 0);
    return ENGINE_SUCCESS;
}

engine_errc cmd_quit(conn *c, req *r)
{
    if (r->opcode == OP_QUIT)
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    c->closing = true;
    return ENGINE_SUCCESS;
}
