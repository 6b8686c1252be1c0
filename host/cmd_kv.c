/*
 * cmd_kv.c - the KV commands: get, get-and-touch, get-locked, unlock, get-meta,
 * touch, the stores (set, add, replace, append, prepend), delete,
 * increment/decrement, flush; durable writes and their timeout.
 */
#include "commands.h"

#include "clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A durable write the engine cannot make durable: refused whole with
 * durability-invalid-level (never stored as a plain write). `rc` is what the
 * engine answered, or ENGINE_SUCCESS when the host refuses before asking it.
 * True if the request was answered here. */
static bool durability_refused(conn *c, const req *r, engine_errc rc)
{
    if (r->durability == ENGINE_DURABILITY_NONE)
        return false;
    if (host.engine->interface < ENGINE_API_VERSION_2) {
        wire_refuse(c, r, ST_DURABILITY_INVALID_LEVEL,
                    "the engine cannot make writes durable (engine interface v1): "
                    "nothing was stored");
        return true;
    }
    if (rc == ENGINE_NOT_SUPPORTED) {
        wire_send_error_status(c, r, ST_DURABILITY_INVALID_LEVEL);
        return true;
    }
    return false;
}

/* The durability timeout of a parked durable write ran out: answer
 * sync-write-ambiguous now (the write stays queued and may still reach the
 * disk); the engine's notify, when it comes, ends the park without a second
 * answer. */
static void durable_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    req r;
    uint8_t *pkt = NULL;
    if (c->closed || !c->parked || c->answered_early ||
        wire_parse_packet(c, &r, &pkt) != 1)
        return;
    wire_refuse(c, &r, ST_SYNC_WRITE_AMBIGUOUS,
                "the durability timeout passed before the write was on disk; "
                "it stays queued and may still be made durable");
    c->answered_early = true;
    conn_command_done(c, HOST_OP_DURABLE_STORE); /* what the client waited */
    atomic_fetch_add(&host.durable_timeouts, 1);
    conn_flush(c);
}

/* Starts the durability timeout of a write that just parked. */
void cmd_arm_durable_timeout(conn *c, const req *r)
{
    if (r->durability == ENGINE_DURABILITY_NONE || r->durability_timeout_ms == 0)
        return;
    if (c->durable_timer == NULL)
        c->durable_timer = evtimer_new(c->w->base, durable_timeout, c);
    else if (evtimer_pending(c->durable_timer, NULL))
        return; /* parked again by the same command: its deadline stands */
    struct timeval tv = {r->durability_timeout_ms / 1000,
                         (r->durability_timeout_ms % 1000) * 1000};
    if (c->durable_timer != NULL)
        evtimer_add(c->durable_timer, &tv);
}

/* ---- commands ---- */

/* Replaces the item with a copy carrying a new expiry (a CAS loop); the new
 * item comes back referenced in *out. */
static engine_errc touch_item(conn *c, req *r, uint32_t exptime, engine_item **out)
{
    engine_handle *h = host.engine;
    for (int tries = 0; tries < 100; tries++) {
        engine_item *it = NULL, *nit = NULL;
        engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info info, ninfo;
        h->get_item_info(h, it, &info);
        rc = h->allocate(h, c, &nit, &r->dk, info.value.iov_len, info.flags, exptime,
                         info.datatype, r->vbucket);
        if (rc == ENGINE_SUCCESS) {
            h->get_item_info(h, nit, &ninfo);
            memcpy(ninfo.value.iov_base, info.value.iov_base, info.value.iov_len);
            h->item_set_cas(h, nit, info.cas);
            rc = h->store(h, c, nit, NULL, ENGINE_STORE_CAS);
        }
        h->release(h, it);
        if (rc == ENGINE_SUCCESS) {
            *out = nit;
            return rc;
        }
        h->release(h, nit);
        if (rc != ENGINE_KEY_EXISTS)
            return rc;
    }
    return ENGINE_TEMPORARY_FAILURE;
}

/* An item's body: its value past the extended-attribute section, if it has
 * one (datatype 0x04). Gets answer it; incr/decr count in it. */
static const uint8_t *item_body(const engine_item_info *info, size_t *len)
{
    const uint8_t *v = info->value.iov_base;
    size_t n = info->value.iov_len, skip = 0;
    if ((info->datatype & ENGINE_DATATYPE_XATTR) && n >= 4) {
        skip = 4 + (size_t)wire_be32(v);
        skip = skip <= n ? skip : n;
    }
    *len = n - skip;
    return v + skip;
}

/* Answers a get of `it` (its flags, value and datatype) with `cas`, the key
 * too for GETK, and releases the item. */
static engine_errc send_item(conn *c, req *r, engine_item *it, bool with_key,
                             uint64_t cas)
{
    engine_handle *h = host.engine;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    uint32_t flags = htonl(info.flags);
    /* A get answers the body: extended attributes are read by sub-document
     * lookups only. */
    size_t len;
    const uint8_t *value = item_body(&info, &len);
    wire_send(c, r, ST_SUCCESS, &flags, 4, with_key ? r->key : NULL,
              with_key ? r->keylen : 0, value, (uint32_t)len,
              c->json ? info.datatype & ENGINE_DATATYPE_JSON : 0,
              cas == 0 ? info.cas : cas);
    h->release(h, it);
    return ENGINE_SUCCESS;
}

engine_errc cmd_get(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_item *it = NULL;
    engine_errc rc = r->opcode == OP_GAT || r->opcode == OP_GATQ
                         ? touch_item(c, r, wire_be32(r->extras), &it)
                         : h->get(h, c, &it, &r->dk, r->vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    return send_item(c, r, it, r->opcode == OP_GETK || r->opcode == OP_GETKQ, 0);
}

/* GET_LOCKED (getAndLock): extras, if any, the lock time in seconds; the
 * answer is a get's, with the lock's CAS. */
engine_errc cmd_get_locked(conn *c, req *r)
{
    engine_handle *h = host.engine;
    if (h->interface < ENGINE_API_VERSION_3)
        return ENGINE_NOT_SUPPORTED;
    engine_item *it = NULL;
    uint64_t lock_cas = 0;
    uint32_t secs = r->extlen == 4 ? wire_be32(r->extras) : 0;
    engine_errc rc = h->get_locked(h, c, &it, &r->dk, r->vbucket, secs, &lock_cas);
    if (rc != ENGINE_SUCCESS)
        return rc;
    return send_item(c, r, it, false, lock_cas);
}

/* UNLOCK_KEY: the CAS of the request is the lock's. */
engine_errc cmd_unlock(conn *c, req *r)
{
    engine_handle *h = host.engine;
    if (h->interface < ENGINE_API_VERSION_3)
        return ENGINE_NOT_SUPPORTED;
    engine_errc rc = h->unlock(h, c, &r->dk, r->vbucket, r->cas);
    if (rc == ENGINE_SUCCESS)
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}

/* GET_META (the SDK's exists): the metadata of a live document. Extras:
 * deleted (always 0: a deleted document is not found), flags, expiry (Unix
 * time, 0 = none), seqno (0: the engine keeps none), and the datatype when
 * the request asks for version 2. */
engine_errc cmd_get_meta(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_item *it = NULL;
    engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    uint8_t ext[21];
    uint32_t deleted = 0, flags = htonl(info.flags),
             exp = htonl(info.exptime > 0 ? (uint32_t)info.exptime : 0);
    uint64_t seqno = 0;
    memcpy(ext, &deleted, 4);
    memcpy(ext + 4, &flags, 4);
    memcpy(ext + 8, &exp, 4);
    memcpy(ext + 12, &seqno, 8);
    ext[20] = c->json ? info.datatype : 0;
    bool v2 = r->extlen == 1 && r->extras[0] == 2;
    wire_send(c, r, ST_SUCCESS, ext, v2 ? 21 : 20, NULL, 0, NULL, 0, 0, info.cas);
    h->release(h, it);
    return ENGINE_SUCCESS;
}

engine_errc cmd_touch(conn *c, req *r)
{
    engine_item *it = NULL;
    engine_errc rc = touch_item(c, r, wire_be32(r->extras), &it);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    host.engine->get_item_info(host.engine, it, &info);
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, info.cas);
    host.engine->release(host.engine, it);
    return ENGINE_SUCCESS;
}

engine_errc cmd_store(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_store_op op;
    uint32_t flags = 0, exptime = 0;
    switch (r->opcode) {
    case OP_SET:
    case OP_SETQ:
        op = r->cas ? ENGINE_STORE_CAS : ENGINE_STORE_SET;
        break;
    case OP_ADD:
    case OP_ADDQ:
        op = ENGINE_STORE_ADD;
        break;
    case OP_REPLACE:
    case OP_REPLACEQ:
        op = ENGINE_STORE_REPLACE;
        break;
    case OP_APPEND:
    case OP_APPENDQ:
        op = ENGINE_STORE_APPEND;
        break;
    default:
        op = ENGINE_STORE_PREPEND;
        break;
    }
    if (r->extlen == 8) {
        flags = wire_be32(r->extras);
        exptime = wire_be32(r->extras + 4);
    }
    if (op == ENGINE_STORE_ADD && r->cas != 0)
        return ENGINE_INVALID_ARGUMENTS;
    if (durability_refused(c, r, ENGINE_SUCCESS))
        return ENGINE_SUCCESS;
    if (r->datatype & ENGINE_DATATYPE_XATTR) {
        /* Attributes are written by sub-document mutations only. */
        wire_invalid(c, r, "a store takes no extended-attribute section (datatype 0x04)");
        return ENGINE_SUCCESS;
    }
    uint8_t datatype = c->json ? (r->datatype & 0x01) : 0;
    uint64_t cas = 0, compare = r->cas;
    engine_errc rc = ENGINE_SUCCESS;
    bool own_compare = false; /* the compare CAS is ours (preserve-expiry) */
    /* The re-call after a would_block passes the item of the first call. */
    engine_item *it = c->parked_item;
    c->parked_item = NULL;
    if (it != NULL)
        op = c->parked_op;
    if (it == NULL && r->preserve_expiry &&
        (op == ENGINE_STORE_SET || op == ENGINE_STORE_CAS ||
         op == ENGINE_STORE_REPLACE)) {
        /* Keep the expiry of the document being replaced: read it, and store
         * only over that version (its CAS) so a change meanwhile is not
         * overwritten with a stale expiry. */
        engine_item *cur = NULL;
        rc = h->get(h, c, &cur, &r->dk, r->vbucket);
        if (rc == ENGINE_SUCCESS) {
            engine_item_info ci;
            h->get_item_info(h, cur, &ci);
            exptime = ci.exptime > 0 ? (uint32_t)ci.exptime : 0;
            own_compare = compare == 0;
            compare = compare ? compare : ci.cas;
            op = ENGINE_STORE_CAS;
            h->release(h, cur);
        } else if (rc != ENGINE_NO_SUCH_KEY) {
            return rc; /* would_block (a value read back from disk): run again */
        }
    }
    if (it == NULL) {
        rc = h->allocate(h, c, &it, &r->dk, r->valuelen, flags, exptime, datatype,
                         r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info info;
        h->get_item_info(h, it, &info);
        memcpy(info.value.iov_base, r->value, r->valuelen);
        h->item_set_cas(h, it, compare);
    }
    if (r->durability != ENGINE_DURABILITY_NONE)
        rc = h->store_durable(h, c, it, &cas, op, r->durability);
    else
        rc = h->store(h, c, it, &cas, op);
    if (rc == ENGINE_WOULD_BLOCK) {
        c->parked_item = it;
        c->parked_op = op;
        return rc;
    }
    h->release(h, it);
    if (rc == ENGINE_KEY_EXISTS && own_compare) {
        /* The document changed between reading its expiry and the store. */
        conn_clear_error(c);
        return ENGINE_TEMPORARY_FAILURE;
    }
    if (durability_refused(c, r, rc))
        return ENGINE_SUCCESS;
    if (rc == ENGINE_NOT_STORED && (op == ENGINE_STORE_REPLACE))
        rc = ENGINE_NO_SUCH_KEY; /* memcached answers a replace of a missing key so */
    if (rc == ENGINE_SUCCESS && !wire_quiet(r->opcode))
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, cas);
    return rc;
}

engine_errc cmd_delete(conn *c, req *r)
{
    engine_handle *h = host.engine;
    uint64_t cas = 0;
    engine_errc rc;
    if (durability_refused(c, r, ENGINE_SUCCESS))
        return ENGINE_SUCCESS;
    if (r->durability != ENGINE_DURABILITY_NONE)
        rc = h->remove_durable(h, c, &r->dk, r->cas, r->vbucket, &cas, r->durability);
    else
        rc = h->remove(h, c, &r->dk, r->cas, r->vbucket, &cas);
    if (durability_refused(c, r, rc))
        return ENGINE_SUCCESS;
    /* memcached answers a delete with CAS 0; clients of the Couchbase lineage
     * (they negotiate XERROR) get the deletion's CAS. */
    if (rc == ENGINE_SUCCESS && !wire_quiet(r->opcode))
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, c->xerror ? cas : 0);
    return rc;
}

/* incr/decr: a CAS loop over the ASCII decimal value. */
engine_errc cmd_arith(conn *c, req *r)
{
    engine_handle *h = host.engine;
    bool incr = r->opcode == OP_INCR || r->opcode == OP_INCRQ;
    uint64_t delta = wire_be64(r->extras), initial = wire_be64(r->extras + 8);
    uint32_t exptime = wire_be32(r->extras + 16);
    for (int tries = 0; tries < 1000; tries++) {
        engine_item *it = NULL;
        engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
        uint64_t value, cas_in = 0;
        engine_store_op op;
        uint32_t flags = 0, keep_exp = exptime;
        if (rc == ENGINE_NO_SUCH_KEY) {
            if (exptime == 0xffffffffu)
                return ENGINE_NO_SUCH_KEY;
            value = initial;
            op = ENGINE_STORE_ADD;
        } else if (rc != ENGINE_SUCCESS) {
            return rc;
        } else {
            engine_item_info info;
            h->get_item_info(h, it, &info);
            char digits[24];
            size_t n;
            /* The number is the body; the store below keeps the attributes. */
            const char *body = (const char *)item_body(&info, &n);
            bool numeric = n > 0 && n < sizeof(digits);
            for (size_t i = 0; numeric && i < n; i++)
                numeric = body[i] >= '0' && body[i] <= '9';
            if (!numeric) {
                h->release(h, it);
                return ENGINE_DELTA_BADVAL;
            }
            memcpy(digits, body, n);
            digits[n] = '\0';
            value = strtoull(digits, NULL, 10);
            value = incr ? value + delta : (delta > value ? 0 : value - delta);
            cas_in = info.cas;
            flags = info.flags;
            keep_exp = info.exptime ? (uint32_t)info.exptime : 0;
            op = ENGINE_STORE_CAS;
            h->release(h, it);
            if (r->cas != 0 && r->cas != cas_in)
                return ENGINE_KEY_EXISTS;
        }
        char text[24];
        int len = snprintf(text, sizeof(text), "%" PRIu64, value);
        engine_item *nit = NULL;
        rc = h->allocate(h, c, &nit, &r->dk, (size_t)len, flags,
                         op == ENGINE_STORE_ADD ? exptime : keep_exp, 0, r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info ninfo;
        h->get_item_info(h, nit, &ninfo);
        memcpy(ninfo.value.iov_base, text, (size_t)len);
        h->item_set_cas(h, nit, cas_in);
        uint64_t cas = 0;
        rc = h->store(h, c, nit, &cas, op);
        h->release(h, nit);
        if (rc == ENGINE_SUCCESS) {
            if (!wire_quiet(r->opcode)) {
                uint64_t be = ((uint64_t)htonl((uint32_t)value) << 32) |
                              htonl((uint32_t)(value >> 32));
                wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, &be, 8, 0, cas);
            }
            return rc;
        }
        if (rc != ENGINE_KEY_EXISTS || r->cas != 0)
            return rc;
        /* Someone else changed it: read again. */
    }
    return ENGINE_TEMPORARY_FAILURE;
}

engine_errc cmd_flush(conn *c, req *r)
{
    if (r->extlen == 4 && wire_be32(r->extras) != 0)
        return ENGINE_NOT_SUPPORTED; /* delayed flush */
    engine_errc rc = host.engine->flush(host.engine, c);
    if (rc == ENGINE_SUCCESS && r->opcode == OP_FLUSH)
        wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}
