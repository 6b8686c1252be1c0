/*
 * commands.h - the command handlers, by family: cmd_kv.c, cmd_collections.c,
 * cmd_sasl.c, cmd_admin.c (stats and the like), cmd_bootstrap.c (the SDK's
 * connect-time commands). The dispatcher (protocol.c) checks a packet's shape
 * and the client's rights before it calls one.
 */
#ifndef KVHOST_COMMANDS_H
#define KVHOST_COMMANDS_H

#include "wire.h"

engine_errc cmd_arith(conn *c, req *r);
engine_errc cmd_cluster_config(conn *c, req *r);
engine_errc cmd_collections(conn *c, req *r);
engine_errc cmd_delete(conn *c, req *r);
engine_errc cmd_error_map(conn *c, req *r);
engine_errc cmd_flush(conn *c, req *r);
engine_errc cmd_get(conn *c, req *r);
engine_errc cmd_get_locked(conn *c, req *r);
engine_errc cmd_get_meta(conn *c, req *r);
engine_errc cmd_hello(conn *c, req *r);
engine_errc cmd_noop(conn *c, req *r);
engine_errc cmd_quit(conn *c, req *r);
engine_errc cmd_sasl(conn *c, req *r);
engine_errc cmd_select_bucket(conn *c, req *r);
engine_errc cmd_stat(conn *c, req *r);
engine_errc cmd_store(conn *c, req *r);
engine_errc cmd_touch(conn *c, req *r);
engine_errc cmd_unlock(conn *c, req *r);
engine_errc cmd_version(conn *c, req *r);

/* cmd_subdoc.c: the multi-path and single-path sub-document commands. */
engine_errc cmd_subdoc_multi(conn *c, req *r);
engine_errc cmd_subdoc_single(conn *c, req *r);

/* Starts the durability timeout of a write that just parked (cmd_kv.c). */
void cmd_arm_durable_timeout(conn *c, const req *r);

#endif
