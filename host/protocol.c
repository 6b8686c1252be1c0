/*
 * protocol.c - the dispatcher of the memcached binary protocol with
 * Couchbase's extensions: which handler a packet goes to, what it must carry,
 * who may send it; and the park and resume of a command on would_block.
 *
 * A packet is consumed only once its command is answered; a command whose
 * engine call returns would_block leaves its packet in the input and parks the
 * connection until the notify, then runs again (on success) or answers with the
 * notify's status. Bad input is answered or the connection is closed; it never
 * reaches the engine unchecked.
 */
#include "protocol.h"

#include "clock.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

/* ---- dispatch ---- */

/* Extras lengths a command takes besides one fixed length. */
#define EXT_0_OR_4  (-1)
#define EXT_0_OR_1  (-2)
#define EXT_HANDLER (-3) /* the handler checks the extras itself */

typedef struct command {
    handler fn;
    int extlen;    /* required extras length, or EXT_0_OR_4 / EXT_0_OR_1 */
    bool key;      /* needs a key (decoded for collections) */
    bool value_ok; /* may carry a value */
    bool no_key;   /* must not carry a key */
    bool admin;    /* with a users file: the admin role only (bucket-wide) */
} command;

static const command *command_of(uint8_t op)
{
    static const command get = {cmd_get, 0, true, false, false, false};
    static const command store = {cmd_store, 8, true, true, false, false};
    static const command concat = {cmd_store, 0, true, true, false, false};
    static const command del = {cmd_delete, 0, true, false, false, false};
    static const command arith = {cmd_arith, 20, true, false, false, false};
    static const command quit = {cmd_quit, 0, false, false, true, false};
    static const command flush = {cmd_flush, EXT_0_OR_4, false, false, true, true};
    static const command get_meta = {cmd_get_meta, EXT_0_OR_1, true, false, false, false};
    static const command get_locked = {cmd_get_locked, EXT_0_OR_4, true,
                                       false,          false,      false};
    static const command unlock = {cmd_unlock, 0, true, false, false, false};
    static const command noop = {cmd_noop, 0, false, false, true, false};
    static const command version = {cmd_version, 0, false, false, true, false};
    static const command stat = {cmd_stat, 0, false, false, false, false};
    static const command touch = {cmd_touch, 4, true, false, false, false};
    static const command gat = {cmd_get, 4, true, false, false, false};
    static const command hello = {cmd_hello, 0, false, true, false, false};
    static const command set_manifest = {cmd_collections, 0, false, true, true, true};
    static const command get_manifest = {cmd_collections, 0, false, false, true, false};
    static const command ids = {cmd_collections, 0, false, true, false, false};
    static const command sasl = {cmd_sasl, 0, false, true, false, false};
    static const command select_bucket = {
        cmd_select_bucket, 0, false, false, false, false};
    static const command cluster_config = {
        cmd_cluster_config, 0, false, false, true, false};
    static const command error_map = {cmd_error_map, 0, false, true, true, false};
    static const command subdoc_multi = {
        cmd_subdoc_multi, EXT_HANDLER, true, true, false, false};
    static const command subdoc_single = {
        cmd_subdoc_single, EXT_HANDLER, true, true, false, false};
    switch (op) {
    case OP_GET:
    case OP_GETQ:
    case OP_GETK:
    case OP_GETKQ:
        return &get;
    case OP_SET:
    case OP_SETQ:
    case OP_ADD:
    case OP_ADDQ:
    case OP_REPLACE:
    case OP_REPLACEQ:
        return &store;
    case OP_APPEND:
    case OP_APPENDQ:
    case OP_PREPEND:
    case OP_PREPENDQ:
        return &concat;
    case OP_DELETE:
    case OP_DELETEQ:
        return &del;
    case OP_INCR:
    case OP_INCRQ:
    case OP_DECR:
    case OP_DECRQ:
        return &arith;
    case OP_QUIT:
    case OP_QUITQ:
        return &quit;
    case OP_FLUSH:
    case OP_FLUSHQ:
        return &flush;
    case OP_NOOP:
        return &noop;
    case OP_VERSION:
        return &version;
    case OP_STAT:
        return &stat;
    case OP_TOUCH:
        return &touch;
    case OP_GAT:
    case OP_GATQ:
        return &gat;
    case OP_HELLO:
        return &hello;
    case OP_SET_MANIFEST:
        return &set_manifest;
    case OP_GET_MANIFEST:
        return &get_manifest;
    case OP_GET_CID:
    case OP_GET_SID:
        return &ids;
    case OP_SASL_LIST_MECHS:
    case OP_SASL_AUTH:
    case OP_SASL_STEP:
        return &sasl;
    case OP_SELECT_BUCKET:
        return &select_bucket;
    case OP_GET_META:
        return &get_meta;
    case OP_GET_LOCKED:
        return &get_locked;
    case OP_UNLOCK_KEY:
        return &unlock;
    case OP_GET_CLUSTER_CONFIG:
        return &cluster_config;
    case OP_GET_ERROR_MAP:
        return &error_map;
    case OP_SUBDOC_MULTI_LOOKUP:
    case OP_SUBDOC_MULTI_MUTATION:
        return &subdoc_multi;
    case OP_SUBDOC_GET_COUNT:
        return &subdoc_single;
    default:
        return op >= OP_SUBDOC_GET && op <= OP_SUBDOC_COUNTER ? &subdoc_single : NULL;
    }
}

/* The kind of operation a request is, for its latency. */
static host_op_kind kind_of(const req *r)
{
    const command *cmd = command_of(r->opcode);
    if (cmd == NULL)
        return HOST_OP_OTHER;
    if (r->durability != ENGINE_DURABILITY_NONE)
        return HOST_OP_DURABLE_STORE;
    if (cmd->fn == cmd_get || cmd->fn == cmd_get_locked || cmd->fn == cmd_get_meta)
        return HOST_OP_GET;
    if (cmd->fn == cmd_store || cmd->fn == cmd_arith || cmd->fn == cmd_touch)
        return HOST_OP_STORE;
    if (cmd->fn == cmd_delete)
        return HOST_OP_DELETE;
    if (wire_subdoc_is_lookup(r->opcode))
        return HOST_OP_SUBDOC_LOOKUP;
    if (cmd->fn == cmd_subdoc_multi || cmd->fn == cmd_subdoc_single)
        return HOST_OP_SUBDOC_MUTATION;
    return HOST_OP_OTHER;
}

/* A command is answered: its latency, from its first run (a durable write
 * answered at its timeout was counted then). */
static void command_done(conn *c, const req *r)
{
    conn_command_done(c, kind_of(r));
}

/* Runs the command of a parsed packet. true if it is finished (the packet can
 * be consumed); false if it is parked on would_block. */
static bool execute(conn *c, req *r)
{
    const command *cmd = command_of(r->opcode);
    c->commands++;
    if (c->op_started_ns == 0) { /* its first run (a parked one runs again) */
        c->op_started_ns = host_now_ns();
        atomic_fetch_add_explicit(&c->w->counts.commands[r->opcode], 1,
                                  memory_order_relaxed);
    }
    if (cmd == NULL) {
        conn_clear_error(c);
        wire_send(c, r, ST_UNKNOWN_COMMAND, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    bool ext_ok = cmd->extlen == EXT_HANDLER  ? true
                  : cmd->extlen == EXT_0_OR_1 ? r->extlen <= 1
                  : cmd->extlen == EXT_0_OR_4 ? (r->extlen == 0 || r->extlen == 4)
                                              : r->extlen == cmd->extlen;
    if (!ext_ok || (cmd->key && r->keylen == 0) || (cmd->no_key && r->keylen != 0) ||
        (!cmd->value_ok && r->valuelen != 0 && r->opcode != OP_STAT)) {
        wire_invalid(c, r, "wrong extras, key or value for this command");
        return true;
    }
    if (!c->authed && host.users != NULL && r->opcode != OP_HELLO &&
        r->opcode != OP_NOOP && r->opcode != OP_SASL_LIST_MECHS &&
        r->opcode != OP_SASL_AUTH && r->opcode != OP_SASL_STEP) {
        conn_clear_error(c);
        wire_send(c, r, ST_AUTH_ERROR, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    if (cmd->admin && host.users != NULL && !c->admin) {
        conn_clear_error(c);
        wire_send(c, r, ST_EACCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    if (r->magic == MAGIC_ALT_REQ && !wire_parse_frame(c, r))
        return true;
    if (r->durability != ENGINE_DURABILITY_NONE && cmd->fn != cmd_store &&
        cmd->fn != cmd_delete && cmd->fn != cmd_arith && cmd->fn != cmd_subdoc_multi &&
        cmd->fn != cmd_subdoc_single) {
        wire_invalid(c, r, "a durability requirement on a command that writes nothing");
        return true;
    }
    if (cmd->key && !wire_decode_key(c, r))
        return true;
    engine_errc rc = cmd->fn(c, r);
    if (rc == ENGINE_WOULD_BLOCK) {
        cmd_arm_durable_timeout(c, r);
        return false;
    }
    conn_drop_parked_item(c); /* a store finished: its item is released already */
    if (rc != ENGINE_SUCCESS) {
        bool silent =
            rc == ENGINE_NO_SUCH_KEY &&
            (r->opcode == OP_GETQ || r->opcode == OP_GETKQ || r->opcode == OP_GATQ);
        if (silent)
            conn_clear_error(c);
        else
            wire_send_error(c, r, rc);
    }
    return true;
}

bool protocol_read(conn *c)
{
    uint64_t now = host_now_ms();
    while (!c->parked && !c->closed && !c->closing) {
        req r;
        uint8_t *pkt = NULL;
        int got = wire_parse_packet(c, &r, &pkt);
        if (got == 0)
            return false;
        if (got < 0) {
            /* The answers of the packets before it go out, then the close. */
            if (host.verbose)
                fprintf(stderr, "kvhost: malformed packet; closing the connection\n");
            evbuffer_drain(c->in, evbuffer_get_length(c->in));
            c->closing = true;
            return false;
        }
        if (evbuffer_get_length(c->out) >= conn_output_limit(c))
            return true; /* the client is not reading its answers: wait */
        if (!execute(c, &r)) {
            c->parked = true;
            return true;
        }
        command_done(c, &r);
        evbuffer_drain(c->in, HEADER_BYTES + (size_t)r.bodylen);
        c->last_done = now;
        c->req_started = evbuffer_get_length(c->in) > 0 ? now : 0;
    }
    return false;
}

bool protocol_resume(conn *c, engine_errc status)
{
    if (c->closed || !c->parked)
        return false;
    req r;
    uint8_t *pkt = NULL;
    if (wire_parse_packet(c, &r, &pkt) != 1) {
        conn_close(c);
        return false;
    }
    c->parked = false;
    if (c->durable_timer != NULL)
        evtimer_del(c->durable_timer);
    if (c->answered_early) {
        /* Answered at its durability timeout: the outcome goes unsaid (a
         * success stays with the engine until another request, rule 7). */
        c->answered_early = false;
        c->sasl_wait = SASL_NONE;
        c->sasl_user = NULL;
        conn_drop_parked_item(c);
        conn_clear_error(c);
    } else if (status == ENGINE_SUCCESS) {
        if (!execute(c, &r)) {
            c->parked = true;
            return false;
        }
    } else {
        conn_drop_parked_item(c); /* no re-call: the status is the answer */
        if (r.magic == MAGIC_ALT_REQ)
            wire_parse_frame(c, &r); /* checked when the command first ran */
        /* A durable write that waited and failed may or may not be on disk
         * (its batch is retried): sync-write-ambiguous, never
         * temporary_failure, which clients retry as if nothing happened. A
         * refusal before any wait says what it says (nothing was written). */
        if (r.durability != ENGINE_DURABILITY_NONE && status == ENGINE_TEMPORARY_FAILURE)
            wire_send_error_status(c, &r, ST_SYNC_WRITE_AMBIGUOUS);
        else
            wire_send_error(c, &r, status);
    }
    command_done(c, &r);
    evbuffer_drain(c->in, HEADER_BYTES + (size_t)r.bodylen);
    c->last_done = host_now_ms();
    c->req_started = evbuffer_get_length(c->in) > 0 ? c->last_done : 0;
    return true;
}
